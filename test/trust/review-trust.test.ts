/**
 * Adversarial review of src/trust: one regression test per defect found, and fast-check fuzzing of
 * every decode/verify entry point asserting that only ImppError with the documented code escapes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError, type ImppErrorCode } from '../../src/errors.js';
import { parseAddress, parseDeviceAddress } from '../../src/trust/address.js';
import { encodeCanonical, type CanonicalValue } from '../../src/trust/canonical.js';
import { parseDomainTrustConfig } from '../../src/trust/config.js';
import { verifyDeviceCertificate } from '../../src/trust/device-certificate.js';
import {
  createDeviceList,
  decodeDeviceList,
  verifyDeviceList,
} from '../../src/trust/device-list.js';
import {
  evaluateEnrolmentPolicy,
  issueEnrolmentStatement,
  statementFromLogEntry,
  verifyEnrolmentStatement,
  type VerifiedEnrolment,
} from '../../src/trust/enrolment.js';
import { decodeDeviceIdentity, encodeDeviceIdentity } from '../../src/trust/identity.js';
import {
  KeyLog,
  KeyLogVerifier,
  MemoryKeyLogStorage,
  verifyConsistency,
  verifyInclusion,
  verifyTreeHead,
} from '../../src/trust/keylog/index.js';
import { leafHash } from '../../src/trust/keylog/hash.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isImppError(e) ? e.code : `non-ImppError: ${String(e)}`;
  }
  return undefined;
}

function expectCode(fn: () => unknown, code: ImppErrorCode): void {
  expect(codeOf(fn)).toBe(code);
}

/** Returns normally or throws an ImppError whose code is one of `codes`. */
function onlyCodes(fn: () => unknown, codes: readonly ImppErrorCode[]): void {
  const c = codeOf(fn);
  if (c !== undefined) expect(codes).toContain(c);
}

const alice = parseAddress('alice@example.com');
const domainKey = generateSigningKeyPair(new Uint8Array(32).fill(7));
const phone = generateSigningKeyPair(new Uint8Array(32).fill(8));
const NOW = Date.UTC(2026, 0, 15);

describe('review: configuration', () => {
  const withLdapUrl = (url: string): unknown => ({
    version: 1,
    domain: 'example.com',
    authentication: {
      mechanisms: ['PLAIN'],
      providers: [
        {
          type: 'ldap',
          id: 'corp',
          url,
          userSearch: { base: 'dc=example,dc=com', filter: '(uid={user})' },
        },
      ],
    },
  });

  it('an ldap:// URL spelt with white space or controls cannot skip the StartTLS rule', () => {
    // The WHATWG URL parser strips leading/trailing C0-and-space and removes tabs and newlines
    // anywhere, so each of these is ldap:// to a URL parser; none may pass without startTls.
    for (const url of [
      ' ldap://h.example',
      '\tldap://h.example',
      'l\tdap://h.example',
      'ldap:\n//h.example',
      'ldap://h.example ',
    ]) {
      expectCode(() => parseDomainTrustConfig(withLdapUrl(url)), 'ERR_CONFIG_INVALID');
    }
    // The honest spellings keep working.
    expect(() => parseDomainTrustConfig(withLdapUrl('ldaps://h.example'))).not.toThrow();
    expectCode(() => parseDomainTrustConfig(withLdapUrl('LDAP://h.example')), 'ERR_CONFIG_INVALID');
  });
});

describe('review: device identity records', () => {
  const key = phone.publicKey;

  it('decoding refuses a non-canonical device address with the documented code', () => {
    // Two encodings of one record must not both decode: the canonical re-encoding would differ.
    const bytes = encodeCanonical([1, 'Alice@Example.com/phone', key, 5]);
    expectCode(() => decodeDeviceIdentity(bytes), 'ERR_INVALID_ARGUMENT');
    const good = encodeDeviceIdentity({
      device: parseDeviceAddress('alice@example.com/phone'),
      identityKey: key,
      created: 5,
    });
    expect(decodeDeviceIdentity(good).device.address).toEqual(alice);
  });

  it('decoding a malformed device address throws the documented ERR_INVALID_ARGUMENT', () => {
    for (const text of [
      'nope',
      'alice@example.com',
      'alice@example.com/a b',
      'im:a@example.com/p',
    ]) {
      expectCode(
        () => decodeDeviceIdentity(encodeCanonical([1, text, key, 5])),
        'ERR_INVALID_ARGUMENT',
      );
    }
  });
});

describe('review: enrolment policy', () => {
  const verified = (at: number): VerifiedEnrolment =>
    verifyEnrolmentStatement(
      issueEnrolmentStatement(
        {
          address: alice,
          deviceId: 'phone',
          identityKey: phone.publicKey,
          mechanism: 'PLAIN',
          provider: 'corp',
          channelBound: false,
          authenticatedAt: at,
          issuedAt: at,
          certificate: null,
        },
        domainKey.secretKey,
      ).bytes,
      { domainKey: domainKey.publicKey },
    );

  it('a malformed maxAge or maxClockSkew is refused, never read as "no limit"', () => {
    const old = verified(NOW - 365 * 86_400_000);
    const future = verified(NOW + 365 * 86_400_000);
    for (const maxAge of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
      expectCode(() => evaluateEnrolmentPolicy(old, { maxAge }, NOW), 'ERR_INVALID_ARGUMENT');
    }
    for (const maxClockSkew of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
      expectCode(
        () => evaluateEnrolmentPolicy(future, { maxClockSkew }, NOW),
        'ERR_INVALID_ARGUMENT',
      );
    }
    expectCode(() => evaluateEnrolmentPolicy(old, {}, Number.NaN), 'ERR_INVALID_ARGUMENT');
    // Well-formed limits still decide as before.
    expect(evaluateEnrolmentPolicy(old, { maxAge: 86_400_000 }, NOW).accept).toBe(false);
    expect(evaluateEnrolmentPolicy(future, {}, NOW).accept).toBe(false);
    expect(evaluateEnrolmentPolicy(verified(NOW), { maxAge: 0 }, NOW).accept).toBe(true);
  });
});

describe('review: key log proofs bind the signed sizes', () => {
  const log = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });
  for (let i = 0; i < 70; i++) log.append(Uint8Array.of(1, i));
  const logKey = generateSigningKeyPair(new Uint8Array(32).fill(9));

  it('a proof for (m, n) never verifies against the honest head of another size', () => {
    // The RFC 9162 algorithms do not bind the size on their own (a proof for n can have the shape
    // of one for n + 1); the verifier is safe because it only ever uses sizes and roots that come
    // together from one signed head. Check that an honest head of size n' != n is never accepted
    // with the proof for n.
    for (let n = 2; n <= 64; n++) {
      for (let m = 1; m < n; m++) {
        const proof = log.consistencyProof(m, n);
        for (const other of [n - 1, n + 1, n + 2]) {
          if (other <= m || other > log.size) continue;
          expect(verifyConsistency(m, other, proof, log.root(m), log.root(other))).toBe(false);
        }
      }
      for (let i = 0; i < n; i++) {
        const proof = log.inclusionProof(i, n);
        for (const other of [n - 1, n + 1]) {
          if (other <= i || other > log.size) continue;
          expect(verifyInclusion(leafHash(log.entry(i)), i, other, proof, log.root(other))).toBe(
            false,
          );
        }
      }
    }
  });

  it('the verifier takes the size from the signed head, never from the caller', () => {
    const head = (size: number, timestamp: number): Uint8Array => {
      const small = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });
      for (let i = 0; i < size; i++) small.append(log.entry(i));
      return small.signHead(logKey.secretKey, timestamp).bytes;
    };
    const v = new KeyLogVerifier({ domain: 'example.com', logKey: logKey.publicKey });
    v.update(head(5, 1), []);
    // The genuine head of size 7 with the proof for size 6 is refused.
    expectCode(() => v.update(head(7, 2), log.consistencyProof(5, 6)), 'ERR_KEYLOG_INCONSISTENT');
    expect(v.trusted?.treeSize).toBe(5);
    v.update(head(7, 2), log.consistencyProof(5, 7));
    // An inclusion proof made for a tree of 6 does not verify against the trusted head of 7.
    expectCode(() => {
      v.verifyEntry(log.entry(6), 6, log.inclusionProof(6, 6 + 1).slice(1));
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      v.verifyEntry(log.entry(4), 4, log.inclusionProof(4, 6));
    }, 'ERR_KEYLOG_PROOF_INVALID');
    v.verifyEntry(log.entry(4), 4, log.inclusionProof(4, 7));
  });
});

describe('review: key log state cannot be changed through returned values', () => {
  it('editing a returned root or proof leaves the log unchanged', () => {
    const log = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });
    for (let i = 0; i < 8; i++) log.append(Uint8Array.of(2, i));
    const root = Uint8Array.from(log.root());
    const proof = log.inclusionProof(3, 8).map((h) => Uint8Array.from(h));
    // Sizes that are powers of two are answered straight from stored perfect subtrees.
    for (const r of [log.root(), log.root(4), log.rangeHash(0, 2)]) r.fill(0);
    for (const h of [...log.inclusionProof(3, 8), ...log.consistencyProof(2, 8)]) h.fill(0);
    expect(log.root()).toEqual(root);
    expect(log.inclusionProof(3, 8)).toEqual(proof);
    expect(verifyInclusion(leafHash(log.entry(3)), 3, 8, proof, root)).toBe(true);
  });
});

describe('review: decoders of untrusted bytes throw only their documented code', () => {
  const list = createDeviceList({
    address: alice,
    counter: 1,
    devices: [{ deviceId: 'phone', identityKey: phone.publicKey }],
    signer: { deviceId: 'phone', secretKey: phone.secretKey },
    issued: NOW,
  });
  const statement = issueEnrolmentStatement(
    {
      address: alice,
      deviceId: 'phone',
      identityKey: phone.publicKey,
      mechanism: 'GS2-KRB5',
      provider: 'corp',
      channelBound: true,
      authenticatedAt: NOW,
      issuedAt: NOW,
      certificate: Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01),
    },
    domainKey.secretKey,
  );
  const log = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });
  log.append(statement.bytes);
  const head = log.signHead(domainKey.secretKey, NOW).bytes;

  const canonicalValue: fc.Arbitrary<CanonicalValue> = fc.letrec<{ v: CanonicalValue }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.nat(),
      fc.string({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('v'), { maxLength: 11 }),
    ),
  })).v;

  /** Arbitrary bytes, mutations of valid encodings, and canonical values of the wrong shape. */
  const inputs = (valid: Uint8Array): fc.Arbitrary<Uint8Array> =>
    fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      canonicalValue.map((v) => encodeCanonical(v)),
      fc
        .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
        .map((edits) => {
          const b = Uint8Array.from(valid);
          for (const [at, value] of edits) b[at % b.length] = value;
          return b;
        }),
      fc.nat().map((cut) => valid.slice(0, cut % valid.length)),
    );

  it('device lists, identities, enrolments, log entries, tree heads', () => {
    fc.assert(
      fc.property(inputs(list.bytes), (b) => {
        onlyCodes(() => decodeDeviceList(b), ['ERR_DEVICE_LIST_INVALID']);
        onlyCodes(
          () => verifyDeviceList(b, { address: alice, previous: list }),
          ['ERR_DEVICE_LIST_INVALID'],
        );
        onlyCodes(
          () => verifyDeviceList(b, { address: alice, firstSight: 'self-signed' }),
          ['ERR_DEVICE_LIST_INVALID'],
        );
      }),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(
        inputs(encodeCanonical([1, 'alice@example.com/phone', phone.publicKey, 1])),
        (b) => {
          onlyCodes(() => decodeDeviceIdentity(b), ['ERR_INVALID_ARGUMENT']);
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(inputs(statement.bytes), (b) => {
        onlyCodes(
          () => verifyEnrolmentStatement(b, { domainKey: domainKey.publicKey, address: alice }),
          ['ERR_ENROLMENT_INVALID'],
        );
        onlyCodes(() => statementFromLogEntry(b), ['ERR_ENROLMENT_INVALID']);
      }),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(inputs(head), (b) => {
        onlyCodes(
          () => verifyTreeHead(b, { domain: 'example.com', logKey: domainKey.publicKey }),
          ['ERR_KEYLOG_PROOF_INVALID'],
        );
        const v = new KeyLogVerifier({
          domain: 'example.com',
          logKey: domainKey.publicKey,
          trusted: head,
        });
        onlyCodes(() => v.update(b, []), ['ERR_KEYLOG_PROOF_INVALID', 'ERR_KEYLOG_INCONSISTENT']);
        onlyCodes(() => {
          v.verifyEntry(b, 0, []);
        }, ['ERR_KEYLOG_PROOF_INVALID']);
      }),
      { numRuns: 300 },
    );
  });

  it('device certificates', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        (der, anchor) => {
          onlyCodes(
            () =>
              verifyDeviceCertificate(der, {
                trustAnchors: [anchor],
                address: alice,
                identityKey: phone.publicKey,
              }),
            ['ERR_ENROLMENT_INVALID'],
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('configuration documents', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        onlyCodes(() => parseDomainTrustConfig(value), ['ERR_CONFIG_INVALID']);
      }),
      { numRuns: 300 },
    );
  });
});
