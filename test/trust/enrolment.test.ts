/**
 * Enrolment statements: issue/verify, tampering, wrong keys and labels, unknown versions, client
 * policy, key-log integration, and PKI mode with a real test CA over Ed25519 device keys.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair, sign } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseAddress, parseDeviceAddress } from '../../src/trust/address.js';
import { encodeCanonical, signingInput } from '../../src/trust/canonical.js';
import {
  issueDeviceCertificate,
  verifyDeviceCertificate,
} from '../../src/trust/device-certificate.js';
import {
  ENROLMENT_LABEL,
  enrolmentLogEntry,
  evaluateEnrolmentPolicy,
  issueEnrolmentStatement,
  statementFromLogEntry,
  verifyEnrolmentStatement,
  type EnrolmentStatementFields,
} from '../../src/trust/enrolment.js';
import { KeyLog, KeyLogVerifier, MemoryKeyLogStorage } from '../../src/trust/keylog/index.js';

const alice = parseAddress('alice@example.com');
const domainKey = generateSigningKeyPair(new Uint8Array(32).fill(40));
const otherDomainKey = generateSigningKeyPair(new Uint8Array(32).fill(41));
const device = generateSigningKeyPair(new Uint8Array(32).fill(42));
const NOW = Date.UTC(2026, 0, 15);

const fields: EnrolmentStatementFields = {
  address: alice,
  deviceId: 'laptop',
  identityKey: device.publicKey,
  mechanism: 'GS2-KRB5',
  provider: 'corp-kdc',
  channelBound: true,
  authenticatedAt: NOW - 60_000,
  issuedAt: NOW - 59_000,
  certificate: null,
};

function expectInvalid(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isImppError(caught, 'ERR_ENROLMENT_INVALID'), String(caught)).toBe(true);
}

/** The statement's field values in wire order (without the signature). */
function wireFields(f: EnrolmentStatementFields): unknown[] {
  return [
    1,
    'alice@example.com',
    f.deviceId,
    f.identityKey,
    f.mechanism,
    f.provider,
    f.channelBound,
    f.authenticatedAt,
    f.issuedAt,
    f.certificate,
  ];
}

describe('enrolment statements', () => {
  it('verify and parse back every field', () => {
    const s = issueEnrolmentStatement(fields, domainKey.secretKey);
    const v = verifyEnrolmentStatement(s.bytes, { domainKey: domainKey.publicKey, address: alice });
    expect(v.certificateStatus).toBe('absent');
    expect(v.statement.mechanism).toBe('GS2-KRB5');
    expect(v.statement.provider).toBe('corp-kdc');
    expect(v.statement.channelBound).toBe(true);
    expect(v.statement.deviceId).toBe('laptop');
    expect(v.statement.identityKey).toEqual(device.publicKey);
    expect(v.statement.authenticatedAt).toBe(NOW - 60_000);
    expect(v.statement.address).toEqual(alice);
  });

  it('refuse every single-byte change of the encoding', () => {
    const s = issueEnrolmentStatement(fields, domainKey.secretKey);
    for (let i = 0; i < s.bytes.length; i++) {
      const t = Uint8Array.from(s.bytes);
      t[i] = (t[i] ?? 0) ^ 0x04;
      expectInvalid(() => verifyEnrolmentStatement(t, { domainKey: domainKey.publicKey }));
    }
  });

  it('refuse tampered fields re-encoded canonically (mechanism, channel binding, key, time)', () => {
    const s = issueEnrolmentStatement(
      { ...fields, mechanism: 'SCRAM-SHA-256', channelBound: false },
      domainKey.secretKey,
    );
    const tampered: EnrolmentStatementFields[] = [
      { ...fields, mechanism: 'GS2-KRB5', channelBound: false },
      { ...fields, mechanism: 'SCRAM-SHA-256', channelBound: true },
      {
        ...fields,
        mechanism: 'SCRAM-SHA-256',
        channelBound: false,
        identityKey: otherDomainKey.publicKey,
      },
      { ...fields, mechanism: 'SCRAM-SHA-256', channelBound: false, authenticatedAt: NOW },
    ];
    for (const f of tampered) {
      const bytes = encodeCanonical([...wireFields(f), s.signature] as never);
      expectInvalid(() => verifyEnrolmentStatement(bytes, { domainKey: domainKey.publicKey }));
    }
  });

  it('refuse the wrong domain key, the wrong address, another label and unknown versions', () => {
    const s = issueEnrolmentStatement(fields, domainKey.secretKey);
    expectInvalid(() => verifyEnrolmentStatement(s.bytes, { domainKey: otherDomainKey.publicKey }));
    expectInvalid(() =>
      verifyEnrolmentStatement(s.bytes, {
        domainKey: domainKey.publicKey,
        address: parseAddress('bob@example.com'),
      }),
    );
    const f = wireFields(fields);
    const otherLabel = sign(domainKey.secretKey, signingInput('impp/device-list/v1', f as never));
    expectInvalid(() =>
      verifyEnrolmentStatement(encodeCanonical([...f, otherLabel] as never), {
        domainKey: domainKey.publicKey,
      }),
    );
    const noLabel = sign(domainKey.secretKey, encodeCanonical(f as never));
    expectInvalid(() =>
      verifyEnrolmentStatement(encodeCanonical([...f, noLabel] as never), {
        domainKey: domainKey.publicKey,
      }),
    );
    const v2 = [2, ...f.slice(1)];
    const v2sig = sign(domainKey.secretKey, signingInput(ENROLMENT_LABEL, v2 as never));
    expectInvalid(() =>
      verifyEnrolmentStatement(encodeCanonical([...v2, v2sig] as never), {
        domainKey: domainKey.publicKey,
      }),
    );
    // The same construction with the right label verifies: the refusals above are for the reasons named.
    const good = sign(domainKey.secretKey, signingInput(ENROLMENT_LABEL, f as never));
    expect(
      verifyEnrolmentStatement(encodeCanonical([...f, good] as never), {
        domainKey: domainKey.publicKey,
      }).statement.deviceId,
    ).toBe('laptop');
  });

  it('refuse malformed fields at issue and at verification', () => {
    for (const bad of [
      { ...fields, mechanism: 'scram-sha-256' },
      { ...fields, mechanism: 'A'.repeat(21) },
      { ...fields, provider: 'has space' },
      { ...fields, deviceId: 'bad/id' },
    ]) {
      expectInvalid(() => issueEnrolmentStatement(bad, domainKey.secretKey));
      const f = wireFields(bad);
      const sig = sign(domainKey.secretKey, signingInput(ENROLMENT_LABEL, f as never));
      expectInvalid(() =>
        verifyEnrolmentStatement(encodeCanonical([...f, sig] as never), {
          domainKey: domainKey.publicKey,
        }),
      );
    }
  });

  it('go into the key log and come back out verifiably', () => {
    const log = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });
    const logKey = generateSigningKeyPair();
    const s = issueEnrolmentStatement(fields, domainKey.secretKey);
    log.append(
      enrolmentLogEntry(
        issueEnrolmentStatement({ ...fields, deviceId: 'phone' }, domainKey.secretKey),
      ),
    );
    const { index } = log.append(enrolmentLogEntry(s));
    const verifier = new KeyLogVerifier({ domain: 'example.com', logKey: logKey.publicKey });
    verifier.update(log.signHead(logKey.secretKey).bytes, []);
    const entry = log.entry(index);
    verifier.verifyEntry(entry, index, log.inclusionProof(index));
    const v = verifyEnrolmentStatement(statementFromLogEntry(entry), {
      domainKey: domainKey.publicKey,
      address: alice,
    });
    expect(v.statement.deviceId).toBe('laptop');
    expectInvalid(() => statementFromLogEntry(encodeCanonical([1, 'revocation', s.bytes])));
    expectInvalid(() => statementFromLogEntry(encodeCanonical([2, 'enrolment', s.bytes])));
  });
});

describe('enrolment policy', () => {
  const verified = (f: Partial<EnrolmentStatementFields>) =>
    verifyEnrolmentStatement(
      issueEnrolmentStatement({ ...fields, ...f }, domainKey.secretKey).bytes,
      {
        domainKey: domainKey.publicKey,
      },
    );
  const strict = {
    requireMechanisms: ['GS2-KRB5', 'EXTERNAL'],
    requireChannelBinding: true,
    maxAge: 86_400_000,
  };

  it('accepts what the policy allows', () => {
    expect(evaluateEnrolmentPolicy(verified({}), strict, NOW)).toEqual({ accept: true });
    expect(evaluateEnrolmentPolicy(verified({ mechanism: 'EXTERNAL' }), strict, NOW).accept).toBe(
      true,
    );
    expect(
      evaluateEnrolmentPolicy(verified({ mechanism: 'PLAIN', channelBound: false }), {}, NOW)
        .accept,
    ).toBe(true);
  });

  it('refuses with a reason', () => {
    const cases: [Partial<EnrolmentStatementFields>, object, string][] = [
      [{ mechanism: 'SCRAM-SHA-256-PLUS' }, strict, 'mechanism'],
      [{ channelBound: false }, strict, 'channel-binding'],
      [
        { authenticatedAt: NOW - 2 * 86_400_000, issuedAt: NOW - 2 * 86_400_000 },
        strict,
        'too-old',
      ],
      [{ authenticatedAt: NOW + 3_600_000 }, strict, 'from-the-future'],
      [{}, { requireProviders: ['ldap-corp'] }, 'provider'],
      [{}, { requireCertificate: true }, 'certificate'],
    ];
    for (const [f, policy, reason] of cases) {
      const d = evaluateEnrolmentPolicy(verified(f), policy, NOW);
      expect(d.accept).toBe(false);
      if (!d.accept) expect(d.reason).toBe(reason);
    }
  });
});

describe('PKI mode: device certificates from the enterprise CA', () => {
  const ED = { name: 'Ed25519' } as const;
  interface Ca {
    der: Uint8Array;
    keys: webcrypto.CryptoKeyPair;
  }
  let ca: Ca;
  let otherCa: Ca;

  async function makeCa(name: string): Promise<Ca> {
    const keys = (await webcrypto.subtle.generateKey(ED, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name,
      notBefore: new Date(NOW - 86_400_000),
      notAfter: new Date(NOW + 365 * 86_400_000),
      keys: keys as never,
      signingAlgorithm: ED,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      ],
    });
    return { der: new Uint8Array(cert.rawData), keys };
  }

  const issue = (
    c: Ca,
    deviceAddress = 'alice@example.com/laptop',
    key = device.publicKey,
  ): Promise<Uint8Array> =>
    issueDeviceCertificate({
      caCertificate: c.der,
      caPrivateKey: c.keys.privateKey,
      device: parseDeviceAddress(deviceAddress),
      identityKey: key,
      notBefore: new Date(NOW - 3_600_000),
      notAfter: new Date(NOW + 30 * 86_400_000),
    });

  beforeAll(async () => {
    ca = await makeCa('CN=Example Corp Device CA');
    otherCa = await makeCa('CN=Example Corp Device CA'); // same name, different key
  });

  it('a certificate from the trusted CA over the device key verifies, inside a statement too', async () => {
    const der = await issue(ca);
    const v = verifyDeviceCertificate(der, {
      trustAnchors: [ca.der],
      address: alice,
      identityKey: device.publicKey,
      now: NOW,
    });
    expect(v.address).toEqual(alice);
    expect(v.identityKey).toEqual(device.publicKey);
    const s = issueEnrolmentStatement(
      { ...fields, mechanism: 'EXTERNAL', certificate: der },
      domainKey.secretKey,
    );
    const opts = { domainKey: domainKey.publicKey, now: NOW };
    expect(verifyEnrolmentStatement(s.bytes, opts).certificateStatus).toBe('unchecked');
    const checked = verifyEnrolmentStatement(s.bytes, { ...opts, certificateAnchors: [ca.der] });
    expect(checked.certificateStatus).toBe('verified');
    expect(evaluateEnrolmentPolicy(checked, { requireCertificate: true }, NOW).accept).toBe(true);
    expect(
      evaluateEnrolmentPolicy(
        verifyEnrolmentStatement(s.bytes, opts),
        { requireCertificate: true },
        NOW,
      ).accept,
    ).toBe(false);
  });

  it('a certificate from another CA (even with the same name) is refused', async () => {
    const der = await issue(otherCa);
    expectInvalid(() =>
      verifyDeviceCertificate(der, {
        trustAnchors: [ca.der],
        address: alice,
        identityKey: device.publicKey,
        now: NOW,
      }),
    );
    const s = issueEnrolmentStatement({ ...fields, certificate: der }, domainKey.secretKey);
    expectInvalid(() =>
      verifyEnrolmentStatement(s.bytes, {
        domainKey: domainKey.publicKey,
        certificateAnchors: [ca.der],
        now: NOW,
      }),
    );
  });

  it("a certificate naming another address than the statement's is refused", async () => {
    const der = await issue(ca, 'mallory@example.com/laptop');
    const s = issueEnrolmentStatement({ ...fields, certificate: der }, domainKey.secretKey);
    expectInvalid(() =>
      verifyEnrolmentStatement(s.bytes, {
        domainKey: domainKey.publicKey,
        certificateAnchors: [ca.der],
        now: NOW,
      }),
    );
  });

  it('a certificate over another key, outside its validity, or a CA certificate is refused', async () => {
    const other = generateSigningKeyPair();
    const der = await issue(ca, 'alice@example.com/laptop', other.publicKey);
    const opts = { trustAnchors: [ca.der], address: alice, identityKey: device.publicKey };
    expectInvalid(() => verifyDeviceCertificate(der, { ...opts, now: NOW }));
    const good = await issue(ca);
    expectInvalid(() => verifyDeviceCertificate(good, { ...opts, now: NOW + 31 * 86_400_000 }));
    expectInvalid(() => verifyDeviceCertificate(good, { ...opts, now: NOW - 2 * 3_600_000 }));
    expectInvalid(() => verifyDeviceCertificate(ca.der, { ...opts, now: NOW }));
    expectInvalid(() =>
      verifyDeviceCertificate(Uint8Array.of(0x30, 0x03, 1, 2, 3), { ...opts, now: NOW }),
    );
    await expect(issue(ca, 'alice@example.com/laptop', new Uint8Array(31))).rejects.toThrow(
      /32 bytes/,
    );
  });

  it('a certificate with no im: address, or two of them, is refused', async () => {
    const make = async (names: x509.JsonGeneralName[]): Promise<Uint8Array> => {
      const publicKey = await webcrypto.subtle.importKey('raw', device.publicKey, ED, true, [
        'verify',
      ]);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: '05',
        subject: 'CN=alice@example.com/laptop',
        issuer: new x509.X509Certificate(ca.der).subject,
        notBefore: new Date(NOW - 3_600_000),
        notAfter: new Date(NOW + 86_400_000),
        publicKey: publicKey as never,
        signingKey: ca.keys.privateKey as never,
        signingAlgorithm: ED,
        extensions: [new x509.SubjectAlternativeNameExtension(names)],
      });
      return new Uint8Array(cert.rawData);
    };
    const opts = {
      trustAnchors: [ca.der],
      address: alice,
      identityKey: device.publicKey,
      now: NOW,
    };
    for (const names of [
      [{ type: 'dns', value: 'example.com' }],
      [
        { type: 'url', value: 'im:alice@example.com' },
        { type: 'url', value: 'im:mallory@example.com' },
      ],
      [{ type: 'url', value: 'im:not an address' }],
    ] as x509.JsonGeneralName[][]) {
      const der = await make(names);
      expectInvalid(() => verifyDeviceCertificate(der, opts));
    }
    // The same construction with exactly one matching im: URI verifies.
    const ok = await make([{ type: 'url', value: 'im:alice@example.com' }]);
    expect(verifyDeviceCertificate(ok, opts).address).toEqual(alice);
  });
});
