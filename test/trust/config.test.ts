/**
 * The domain trust configuration: valid configurations, defaults, and one test per class of
 * error, each checking that the single ERR_CONFIG_INVALID names the path of the bad field.
 */
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access,
   @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return,
   @typescript-eslint/no-unsafe-assignment --
   these tests build deliberately malformed configurations by editing untyped clones */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toBase64Url } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import {
  AUTH_MECHANISMS,
  MIN_SCRAM_ITERATIONS,
  enrolmentMechanisms,
  parseDomainTrustConfig,
  parseDomainTrustConfigYaml,
  peerTrustFor,
  providersForMechanism,
  type DomainTrustConfigInput,
} from '../../src/trust/config.js';

/** A self-signed Ed25519 CA certificate made with openssl for these tests (no key kept). */
const TEST_CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBTzCCAQGgAwIBAgIUdRgvkmpq4byLW28VeJ0awe9B6l0wBQYDK2VwMB0xGzAZ
BgNVBAMMElRlc3QgRmVkZXJhdGlvbiBDQTAeFw0yNjExMjUyMjQ0NTdaFw0zNjEx
MjIyMjQ0NTdaMB0xGzAZBgNVBAMMElRlc3QgRmVkZXJhdGlvbiBDQTAqMAUGAytl
cAMhABToctkL64w9EVrSJTyghRwqH00n9hQYWcIin90+/kuLo1MwUTAdBgNVHQ4E
FgQUwwVE8yFtkWLT7s3HRxkqieYZ4iIwHwYDVR0jBBgwFoAUwwVE8yFtkWLT7s3H
RxkqieYZ4iIwDwYDVR0TAQH/BAUwAwEB/zAFBgMrZXADQQBkfEUVOLy/iTmmm3+f
kcubdGqHeZq91MK7q0SACCCXy6oshTms4yUPdZOW1blqLpXDyCmJABSnn4vA5CYn
iMcB
-----END CERTIFICATE-----
`;

const PINNED_KEY = new Uint8Array(32).map((_, i) => i + 1);

/** A complete, valid configuration using every provider type. Fresh object on each call. */
function full(): Record<string, unknown> & DomainTrustConfigInput {
  return {
    version: 1,
    domain: 'Example.COM',
    authentication: {
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'GS2-KRB5', 'EXTERNAL', 'PLAIN'],
      providers: [
        { type: 'local', id: 'local' },
        {
          type: 'ldap',
          id: 'corp-ldap',
          url: 'ldaps://ldap.example.com',
          bind: { dn: 'cn=impp,dc=example,dc=com', password: { file: '/run/secrets/ldap' } },
          userSearch: { base: 'ou=people,dc=example,dc=com', filter: '(uid={user})' },
          groupSearch: { base: 'ou=groups,dc=example,dc=com', filter: '(member={dn})' },
        },
        {
          type: 'kerberos',
          id: 'krb',
          keytab: '/etc/impp/impp.keytab',
          servicePrincipal: 'impp/chat.example.com@EXAMPLE.COM',
          realm: 'EXAMPLE.COM',
        },
        { type: 'pki', id: 'corp-ca', trustAnchors: { path: '/etc/impp/corp-ca.pem' } },
      ],
    },
    policy: {
      scram: { iterations: 200_000 },
      rateLimits: {
        perAccount: { attempts: 5, windowSeconds: 300 },
        perSource: { attempts: 50, windowSeconds: 60 },
      },
      deviceEnrolment: { mechanisms: ['GS2-KRB5', 'EXTERNAL'], maxDevicesPerUser: 4 },
    },
    federation: {
      unlisted: 'deny',
      peers: [
        {
          domain: 'Partner.Example',
          mode: 'allow',
          proof: { type: 'x509', trustAnchors: { pem: TEST_CA_PEM } },
        },
        {
          domain: 'bücher.example',
          mode: 'allow',
          proof: { type: 'pinned-key', publicKey: toBase64Url(PINNED_KEY) },
        },
        { domain: 'spam.example', mode: 'deny' },
      ],
    },
  };
}

/** The smallest valid configuration. */
function minimal(): Record<string, unknown> & DomainTrustConfigInput {
  return {
    version: 1,
    domain: 'example.com',
    authentication: {
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
      providers: [{ type: 'local', id: 'local' }],
    },
  };
}

/** Runs the parser and returns the ERR_CONFIG_INVALID message (failing if it does not throw). */
function configErrorOf(input: unknown): string {
  try {
    parseDomainTrustConfig(input);
  } catch (e) {
    expect(isImppError(e, 'ERR_CONFIG_INVALID'), String(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected ERR_CONFIG_INVALID, but the configuration was accepted');
}

/** Deep-clones `full()` and applies `edit`. */
function edited(edit: (c: any) => void): unknown {
  const c = structuredClone(full());
  edit(c);
  return c;
}

describe('valid configurations', () => {
  it('fills defaults in the minimal configuration', () => {
    const c = parseDomainTrustConfig(minimal());
    expect(c.policy).toEqual({
      requireTls: true,
      scram: { iterations: 100_000 },
      rateLimits: {
        perAccount: { attempts: 10, windowSeconds: 900 },
        perSource: { attempts: 100, windowSeconds: 60 },
        lockoutSeconds: 900,
      },
      deviceEnrolment: { maxDevicesPerUser: 10, requireExistingDeviceApproval: false },
    });
    expect(c.federation).toEqual({ unlisted: 'deny', peers: [] });
    expect(enrolmentMechanisms(c)).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
  });

  it('accepts the full configuration and canonicalizes domain names', () => {
    const c = parseDomainTrustConfig(full());
    expect(c.domain).toBe('example.com');
    expect(c.federation.peers.map((p) => p.domain)).toEqual([
      'partner.example',
      'xn--bcher-kva.example',
      'spam.example',
    ]);
    expect(enrolmentMechanisms(c)).toEqual(['GS2-KRB5', 'EXTERNAL']);
    expect(providersForMechanism(c, 'PLAIN').map((p) => p.id)).toEqual(['corp-ldap']);
    expect(providersForMechanism(c, 'SCRAM-SHA-256-PLUS').map((p) => p.id)).toEqual(['local']);
    expect(providersForMechanism(c, 'GS2-KRB5').map((p) => p.id)).toEqual(['krb']);
    expect(providersForMechanism(parseDomainTrustConfig(minimal()), 'EXTERNAL')).toEqual([]);
  });

  it('accepts ldap:// only together with StartTLS', () => {
    const c = edited((x) => {
      x.authentication.providers[1].url = 'ldap://ldap.example.com:389';
      x.authentication.providers[1].startTls = true;
    });
    expect(() => parseDomainTrustConfig(c)).not.toThrow();
  });

  it('accepts a custom provider that declares its mechanisms', () => {
    const c = parseDomainTrustConfig({
      ...minimal(),
      authentication: {
        mechanisms: ['PLAIN'],
        providers: [
          {
            type: 'custom',
            id: 'acme-sso',
            module: '@acme/impp-provider',
            mechanisms: ['PLAIN'],
            options: { realm: 'acme' },
          },
        ],
      },
    });
    expect(providersForMechanism(c, 'PLAIN').map((p) => p.id)).toEqual(['acme-sso']);
  });

  it('parses YAML and validates it', () => {
    const c = parseDomainTrustConfigYaml(`
version: 1
domain: example.com
authentication:
  mechanisms: [SCRAM-SHA-256-PLUS, SCRAM-SHA-256]
  providers:
    - { type: local, id: local }
federation:
  peers:
    - domain: partner.example
      mode: allow
      proof: { type: pinned-key, publicKey: ${toBase64Url(PINNED_KEY)} }
`);
    expect(peerTrustFor(c, 'partner.example')).toEqual({
      federated: true,
      domain: 'partner.example',
      proof: { type: 'pinned-key', publicKey: PINNED_KEY },
    });
  });
});

describe('peerTrustFor', () => {
  const c = parseDomainTrustConfig(full());

  it('says how each listed peer must prove itself', () => {
    expect(peerTrustFor(c, 'PARTNER.example')).toEqual({
      federated: true,
      domain: 'partner.example',
      proof: { type: 'x509', trustAnchors: { pem: TEST_CA_PEM } },
    });
    const pinned = peerTrustFor(c, 'bücher.example');
    expect(pinned.federated && pinned.proof).toEqual({ type: 'pinned-key', publicKey: PINNED_KEY });
  });

  it('refuses denied, unlisted and self', () => {
    expect(peerTrustFor(c, 'spam.example')).toEqual({
      federated: false,
      domain: 'spam.example',
      reason: 'denied',
    });
    expect(peerTrustFor(c, 'other.example')).toMatchObject({
      federated: false,
      reason: 'not-listed',
    });
    expect(peerTrustFor(c, 'EXAMPLE.com')).toMatchObject({ federated: false, reason: 'self' });
  });

  it('with unlisted: webpki, unlisted domains need a public-CA certificate; denied stay denied', () => {
    const open = parseDomainTrustConfig(edited((x) => (x.federation.unlisted = 'webpki')));
    expect(peerTrustFor(open, 'other.example')).toEqual({
      federated: true,
      domain: 'other.example',
      proof: { type: 'webpki' },
    });
    expect(peerTrustFor(open, 'spam.example')).toMatchObject({
      federated: false,
      reason: 'denied',
    });
  });

  it('refuses an invalid domain with ERR_ADDRESS_INVALID', () => {
    expect(() => peerTrustFor(c, '192.0.2.1')).toThrow(
      expect.objectContaining({ code: 'ERR_ADDRESS_INVALID' }),
    );
  });
});

describe('every class of error is ERR_CONFIG_INVALID naming the path', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['not an object', () => 'version: 1', /\(top level\): Invalid input: expected object/],
    ['missing version', () => edited((x) => delete x.version), /- version: is required/],
    ['unknown version', () => edited((x) => (x.version = 2)), /- version: must be 1/],
    ['missing domain', () => edited((x) => delete x.domain), /- domain: is required/],
    [
      'invalid domain',
      () => edited((x) => (x.domain = 'exa mple.com')),
      /- domain: domain contains U\+0020/,
    ],
    ['IP literal domain', () => edited((x) => (x.domain = '10.0.0.1')), /- domain: .*IP address/],
    ['unknown top-level key', () => edited((x) => (x.domian = 'x')), /- domian: unknown field/],
    [
      'inline password (unknown key, with a hint)',
      () => edited((x) => (x.authentication.providers[1].bind.bindPassword = 'hunter2')),
      /authentication\.providers\[1\]\.bind\.bindPassword: unknown field.*secrets are never written inline/,
    ],
    [
      'empty mechanisms',
      () => edited((x) => (x.authentication.mechanisms = [])),
      /authentication\.mechanisms: must list at least one mechanism/,
    ],
    [
      'unknown mechanism',
      () => edited((x) => x.authentication.mechanisms.push('DIGEST-MD5')),
      /authentication\.mechanisms\[5\]: must be one of SCRAM-SHA-256-PLUS/,
    ],
    [
      'duplicate mechanism',
      () => edited((x) => x.authentication.mechanisms.push('PLAIN')),
      /authentication\.mechanisms\[5\]: mechanism is listed more than once/,
    ],
    [
      'SCRAM ranked above SCRAM-PLUS',
      () => edited((x) => (x.authentication.mechanisms = ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'])),
      /authentication\.mechanisms\[0\]: SCRAM-SHA-256 must come after SCRAM-SHA-256-PLUS/,
    ],
    [
      'mechanism without provider',
      () => edited((x) => x.authentication.providers.splice(2, 1)),
      /authentication\.mechanisms\[2\]: GS2-KRB5 has no provider .*kerberos/,
    ],
    [
      'PLAIN with only a local (SCRAM) provider',
      () => ({
        ...minimal(),
        authentication: { mechanisms: ['PLAIN'], providers: [{ type: 'local', id: 'l' }] },
      }),
      /authentication\.mechanisms\[0\]: PLAIN has no provider .*ldap/,
    ],
    [
      'no providers',
      () => edited((x) => (x.authentication.providers = [])),
      /authentication\.providers: must list at least one provider/,
    ],
    [
      'unknown provider type',
      () => edited((x) => (x.authentication.providers[0].type = 'radius')),
      /authentication\.providers\[0\]\.type: Invalid discriminator value/,
    ],
    [
      'bad provider id',
      () => edited((x) => (x.authentication.providers[0].id = 'Local Store')),
      /authentication\.providers\[0\]\.id: must be 1\.\.32 characters/,
    ],
    [
      'duplicate provider id',
      () => edited((x) => (x.authentication.providers[2].id = 'local')),
      /authentication\.providers\[2\]\.id: provider id is listed more than once/,
    ],
    [
      'LDAP over ldap:// without StartTLS',
      () => edited((x) => (x.authentication.providers[1].url = 'ldap://ldap.example.com')),
      /authentication\.providers\[1\]\.startTls: must be true for an ldap:\/\/ URL/,
    ],
    [
      'LDAP URL of another scheme',
      () => edited((x) => (x.authentication.providers[1].url = 'https://ldap.example.com')),
      /authentication\.providers\[1\]\.url: must be an ldaps:\/\/host\[:port\] or ldap:\/\/host/,
    ],
    [
      'LDAP URL without host',
      () => edited((x) => (x.authentication.providers[1].url = 'ldaps://')),
      /authentication\.providers\[1\]\.url: must be an ldaps:\/\/host/,
    ],
    [
      'LDAP URL with a DN path',
      () => edited((x) => (x.authentication.providers[1].url = 'ldaps://h/dc=example,dc=com')),
      /authentication\.providers\[1\]\.url: .*no path, query or fragment/,
    ],
    [
      'LDAP URL with credentials',
      () => edited((x) => (x.authentication.providers[1].url = 'ldaps://admin:hunter2@h')),
      /authentication\.providers\[1\]\.url: must not contain credentials/,
    ],
    [
      'LDAP URL that is not a URL',
      () => edited((x) => (x.authentication.providers[1].url = 'ldap.example.com')),
      /authentication\.providers\[1\]\.url: must be an ldaps:\/\/host/,
    ],
    [
      'LDAP filter without placeholder',
      () => edited((x) => (x.authentication.providers[1].userSearch.filter = '(uid=alice)')),
      /authentication\.providers\[1\]\.userSearch\.filter: must contain the \{user\} placeholder/,
    ],
    [
      'secret reference with both file and env',
      () => edited((x) => (x.authentication.providers[1].bind.password = { file: '/a', env: 'B' })),
      /authentication\.providers\[1\]\.bind\.password: must have exactly one of "file" or "env"/,
    ],
    [
      'lower-case Kerberos realm',
      () => edited((x) => (x.authentication.providers[2].realm = 'example.com')),
      /authentication\.providers\[2\]\.realm: must be an upper-case Kerberos realm/,
    ],
    [
      'trust anchors with both path and pem',
      () =>
        edited(
          (x) => (x.authentication.providers[3].trustAnchors = { path: '/a', pem: TEST_CA_PEM }),
        ),
      /authentication\.providers\[3\]\.trustAnchors: must have exactly one of "path"/,
    ],
    [
      'empty path',
      () => edited((x) => (x.authentication.providers[3].trustAnchors = { path: '' })),
      /authentication\.providers\[3\]\.trustAnchors\.path: must be a non-empty file path/,
    ],
    [
      'PLAIN without TLS (requireTls: false)',
      () => edited((x) => (x.policy.requireTls = false)),
      /policy\.requireTls: must be true: impp has no plaintext mode, and PLAIN without TLS/,
    ],
    [
      'SCRAM iterations below 4096',
      () => edited((x) => (x.policy.scram.iterations = 4095)),
      /policy\.scram\.iterations: must be at least 4096 \(RFC 7677 §4\)/,
    ],
    [
      'non-integer iterations',
      () => edited((x) => (x.policy.scram.iterations = 5000.5)),
      /policy\.scram\.iterations: /,
    ],
    [
      'zero rate limit',
      () => edited((x) => (x.policy.rateLimits.perSource.attempts = 0)),
      /policy\.rateLimits\.perSource\.attempts: /,
    ],
    [
      'enrolment mechanism not accepted',
      () =>
        edited((x) => {
          x.authentication.mechanisms = ['SCRAM-SHA-256-PLUS', 'GS2-KRB5', 'EXTERNAL', 'PLAIN'];
          x.policy.deviceEnrolment.mechanisms = ['SCRAM-SHA-256'];
        }),
      /policy\.deviceEnrolment\.mechanisms\[0\]: SCRAM-SHA-256 is not in authentication\.mechanisms/,
    ],
    [
      'duplicate peer (after normalization)',
      () => edited((x) => x.federation.peers.push({ domain: 'PARTNER.example', mode: 'deny' })),
      /federation\.peers\[3\]\.domain: peer domain is listed more than once/,
    ],
    [
      'duplicate peer (U-label vs A-label)',
      () =>
        edited((x) => x.federation.peers.push({ domain: 'xn--bcher-kva.example', mode: 'deny' })),
      /federation\.peers\[3\]\.domain: peer domain is listed more than once/,
    ],
    [
      'self-federation',
      () => edited((x) => x.federation.peers.push({ domain: 'EXAMPLE.com', mode: 'deny' })),
      /federation\.peers\[3\]\.domain: is this domain itself/,
    ],
    [
      'invalid peer domain',
      () => edited((x) => (x.federation.peers[0].domain = 'partner.example.')),
      /federation\.peers\[0\]\.domain: domain ends with "\."/,
    ],
    [
      'allowed peer without proof',
      () => edited((x) => delete x.federation.peers[0].proof),
      /federation\.peers\[0\]\.proof: is required/,
    ],
    [
      'denied peer with a proof',
      () =>
        edited(
          (x) => (x.federation.peers[2].proof = { type: 'x509', trustAnchors: { path: '/a' } }),
        ),
      /federation\.peers\[2\]\.proof: unknown field/,
    ],
    [
      'unknown peer mode',
      () => edited((x) => (x.federation.peers[0].mode = 'maybe')),
      /federation\.peers\[0\]\.mode: Invalid discriminator value/,
    ],
    [
      'unknown proof type',
      () => edited((x) => (x.federation.peers[0].proof.type = 'dane')),
      /federation\.peers\[0\]\.proof\.type: Invalid discriminator value/,
    ],
    [
      'inline PEM that is not a certificate',
      () =>
        edited(
          (x) =>
            (x.federation.peers[0].proof.trustAnchors.pem =
              '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'),
        ),
      /federation\.peers\[0\]\.proof\.trustAnchors\.pem: must be a PEM bundle/,
    ],
    [
      'inline PEM with trailing junk',
      () => edited((x) => (x.federation.peers[0].proof.trustAnchors.pem = `${TEST_CA_PEM}junk`)),
      /federation\.peers\[0\]\.proof\.trustAnchors\.pem: must be a PEM bundle/,
    ],
    [
      'pinned key of the wrong length',
      () =>
        edited(
          (x) => (x.federation.peers[1].proof.publicKey = toBase64Url(new Uint8Array(31).fill(7))),
        ),
      /federation\.peers\[1\]\.proof\.publicKey: must encode a 32-byte Ed25519 public key, got 31 bytes/,
    ],
    [
      'pinned key in padded base64',
      () =>
        edited(
          (x) =>
            (x.federation.peers[1].proof.publicKey = Buffer.from(PINNED_KEY).toString('base64')),
        ),
      /federation\.peers\[1\]\.proof\.publicKey: must be unpadded base64url/,
    ],
    [
      'pinned key, non-canonical base64url (trailing bits set)',
      () =>
        edited(
          (x) =>
            (x.federation.peers[1].proof.publicKey = `${toBase64Url(PINNED_KEY).slice(0, -1)}B`),
        ),
      /federation\.peers\[1\]\.proof\.publicKey: must be unpadded base64url/,
    ],
    [
      'all-zero pinned key',
      () =>
        edited((x) => (x.federation.peers[1].proof.publicKey = toBase64Url(new Uint8Array(32)))),
      /federation\.peers\[1\]\.proof\.publicKey: must not be the all-zero key/,
    ],
    [
      'unknown unlisted mode',
      () => edited((x) => (x.federation.unlisted = 'allow')),
      /federation\.unlisted: /,
    ],
  ])('%s', (_name, make, pattern) => {
    expect(configErrorOf(make())).toMatch(pattern);
  });

  it('lists every field problem at once, with a count; cross-field rules once fields are valid', () => {
    const message = configErrorOf(
      edited((x) => {
        x.policy.scram.iterations = 1000;
        x.policy.requireTls = false;
        x.federation.peers.push({ domain: 'example.com', mode: 'deny' });
      }),
    );
    expect(message).toMatch(/^domain trust configuration is invalid \(2 problems\):/);
    expect(message).toContain('- policy.requireTls:');
    expect(message).toContain('- policy.scram.iterations:');
    const crossField = configErrorOf(
      edited((x) => {
        x.federation.peers.push({ domain: 'example.com', mode: 'deny' });
        x.federation.peers.push({ domain: 'spam.example', mode: 'deny' });
        x.authentication.mechanisms.push('PLAIN');
      }),
    );
    expect(crossField).toMatch(/\(3 problems\)/);
    expect(crossField).toContain('- federation.peers[3].domain: is this domain itself');
    expect(crossField).toContain(
      '- federation.peers[4].domain: peer domain is listed more than once',
    );
    expect(crossField).toContain(
      '- authentication.mechanisms[5]: mechanism is listed more than once',
    );
  });

  it('caps the list of problems', () => {
    const peers = Array.from({ length: 40 }, () => ({ domain: 'bad domain', mode: 'deny' }));
    const message = configErrorOf(edited((x) => (x.federation.peers = peers)));
    expect(message).toMatch(/\(40 problems\)/);
    expect(message).toContain('... and 15 more');
  });

  it('never echoes values (a misplaced secret stays out of the message)', () => {
    const message = configErrorOf(
      edited((x) => (x.authentication.providers[1].bind.password = 'hunter2-secret')),
    );
    expect(message).toContain('authentication.providers[1].bind.password');
    expect(message).not.toContain('hunter2');
  });

  it('every mechanism name in the closed set is accepted by the schema', () => {
    for (const m of AUTH_MECHANISMS) {
      const c = {
        ...minimal(),
        authentication: {
          mechanisms: [m],
          providers: [{ type: 'custom', id: 'c', module: 'm', mechanisms: [m] }],
        },
      };
      expect(parseDomainTrustConfig(c).authentication.mechanisms).toEqual([m]);
    }
    expect(MIN_SCRAM_ITERATIONS).toBe(4096);
  });
});

describe('YAML errors', () => {
  it('refuses duplicate keys with a line number', () => {
    expect(() => parseDomainTrustConfigYaml('version: 1\nversion: 1\n')).toThrow(
      expect.objectContaining({
        code: 'ERR_CONFIG_INVALID',
        message: expect.stringMatching(/line 2.*DUPLICATE_KEY/),
      }),
    );
  });

  it('refuses syntax errors and alias bombs without echoing content', () => {
    try {
      parseDomainTrustConfigYaml('domain: [unclosed secret-value');
      expect.unreachable();
    } catch (e) {
      expect(isImppError(e, 'ERR_CONFIG_INVALID')).toBe(true);
      expect((e as Error).message).not.toContain('secret-value');
    }
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++)
      bomb.push(
        `${'bcdefghij'[i]}: &${'bcdefghij'[i]} [${Array(9).fill(`*${'abcdefghij'[i]}`).join(', ')}]`,
      );
    expect(() => parseDomainTrustConfigYaml(bomb.join('\n'))).toThrow(
      expect.objectContaining({
        code: 'ERR_CONFIG_INVALID',
        message: 'domain trust configuration expands YAML aliases too often (at most 100)',
      }),
    );
  });

  it('validates the parsed document', () => {
    expect(() => parseDomainTrustConfigYaml('version: 1\ndomain: example.com\n')).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/authentication: is required/) }),
    );
  });
});

describe('docs/trust.md', () => {
  it('the YAML example in the reference is a valid configuration', () => {
    const doc = readFileSync(new URL('../../docs/trust.md', import.meta.url), 'utf8');
    const block = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(block).toBeDefined();
    const c = parseDomainTrustConfigYaml(block!);
    expect(c.domain).toBe('example.com');
    expect(peerTrustFor(c, 'lab.example')).toMatchObject({
      federated: true,
      proof: { type: 'pinned-key', publicKey: PINNED_KEY },
    });
    expect(providersForMechanism(c, 'PLAIN').map((p) => p.id)).toEqual(['corp-ldap', 'acme-sso']);
  });
});
