/**
 * The authenticator `impp serve` builds from the configuration's trust section: which mechanisms
 * it offers, and which configurations it refuses at start (unwired providers, ambiguous
 * mechanisms, missing secrets). Logins against a real directory are in enterprise-login.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/auth/index.js';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseServerConfig } from '../../src/service/config/server-config.js';
import {
  authenticatorFromConfig,
  type SecretEnvironment,
} from '../../src/service/authenticator.js';

const dir = mkdtempSync(join(tmpdir(), 'impp-authcfg-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const tls = { secure: true, tlsVersion: 'TLSv1.3', tlsExporter: new Uint8Array(32).fill(9) };
let dbCounter = 0;

function ldap(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'ldap',
    id: 'corp',
    url: 'ldaps://127.0.0.1:1',
    bind: { dn: 'cn=svc,dc=example,dc=org', password: { env: 'IMPP_TEST_LDAP_PW' } },
    userSearch: { base: 'dc=example,dc=org', filter: '(uid={user})' },
    ...extra,
  };
}

function trustWith(
  mechanisms: string[],
  providers: unknown[],
): ReturnType<typeof parseServerConfig> {
  return parseServerConfig({
    version: 1,
    domain: 'example.org',
    dataDir: dir,
    trust: { authentication: { mechanisms, providers } },
  });
}

async function build(
  config: ReturnType<typeof parseServerConfig>,
  env: SecretEnvironment = {},
  baseDir?: string,
): Promise<Awaited<ReturnType<typeof authenticatorFromConfig>>> {
  dbCounter++;
  return authenticatorFromConfig({
    trust: config.trust,
    accountsDbPath: join(dir, `a${dbCounter}.db`),
    domainKey: generateSigningKeyPair(),
    audit: new MemoryAuditSink(),
    env,
    ...(baseDir === undefined ? {} : { baseDir }),
  });
}

/** The ERR_CONFIG_INVALID message `promise` rejects with (fails the test otherwise). */
async function refusal(promise: Promise<unknown>): Promise<string> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isImppError(error, 'ERR_CONFIG_INVALID')).toBe(true);
  return (error as Error).message;
}

describe('authenticatorFromConfig', () => {
  it('offers the configured local mechanisms in the configured order', async () => {
    const config = parseServerConfig({ version: 1, domain: 'example.org', dataDir: dir });
    const configured = await build(config);
    try {
      expect(configured.authenticator.offer(tls)).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    } finally {
      await configured.close();
    }
  });

  it('wires an LDAP provider for PLAIN next to the local provider, secret from the environment', async () => {
    const config = trustWith(
      ['SCRAM-SHA-256-PLUS', 'PLAIN', 'SCRAM-SHA-256'],
      [{ type: 'local', id: 'local' }, ldap()],
    );
    const configured = await build(config, { IMPP_TEST_LDAP_PW: 'service-pw' });
    try {
      expect(configured.authenticator.offer(tls)).toEqual([
        'SCRAM-SHA-256-PLUS',
        'PLAIN',
        'SCRAM-SHA-256',
      ]);
      // PLAIN is never offered outside TLS (RFC 4616 §6).
      expect(configured.authenticator.offer({ secure: false })).not.toContain('PLAIN');
    } finally {
      await configured.close();
    }
  });

  it('reads the service-account password from a file reference', async () => {
    const secret = join(dir, 'ldap.secret');
    writeFileSync(secret, 'from-a-file\n', { mode: 0o600 });
    const config = trustWith(
      ['PLAIN'],
      [ldap({ bind: { dn: 'cn=svc,dc=example,dc=org', password: { file: secret } } })],
    );
    const configured = await build(config);
    try {
      expect(configured.authenticator.offer(tls)).toEqual(['PLAIN']);
    } finally {
      await configured.close();
    }
  });

  it('resolves relative provider paths against the configuration folder, never the working folder', async () => {
    writeFileSync(join(dir, 'relative.secret'), 'relative-secret', { mode: 0o600 });
    const config = trustWith(
      ['PLAIN'],
      [ldap({ bind: { dn: 'cn=svc,dc=example,dc=org', password: { file: 'relative.secret' } } })],
    );
    const configured = await build(config, {}, dir);
    await configured.close();
    expect(await refusal(build(config))).toContain('must be an absolute path');
  });

  it('refuses to start when the secret reference cannot be resolved, without leaking values', async () => {
    const config = trustWith(['PLAIN'], [ldap()]);
    expect(await refusal(build(config, {}))).toContain(
      'environment variable IMPP_TEST_LDAP_PW is not set',
    );
    expect(await refusal(build(config, { IMPP_TEST_LDAP_PW: '' }))).toContain('secret is empty');
    const missing = trustWith(
      ['PLAIN'],
      [ldap({ bind: { dn: 'cn=x', password: { file: join(dir, 'nope') } } })],
    );
    const m = await refusal(build(missing));
    expect(m).toContain('cannot read the secret file');
    expect(m).not.toContain(join(dir, 'nope'));
  });

  it('refuses LDAP settings the server cannot honour (no service account, one-level scope)', async () => {
    const noBind = { ...ldap() };
    delete noBind.bind;
    expect(await refusal(build(trustWith(['PLAIN'], [noBind])))).toContain(
      'needs a service account',
    );
    const oneLevel = ldap({
      userSearch: { base: 'dc=example,dc=org', filter: '(uid={user})', scope: 'one' },
    });
    expect(
      await refusal(build(trustWith(['PLAIN'], [oneLevel]), { IMPP_TEST_LDAP_PW: 'x' })),
    ).toContain('userSearch.scope');
  });

  it('refuses a mechanism answered by two providers instead of silently using one', async () => {
    const config = trustWith(['PLAIN'], [ldap(), ldap({ id: 'corp2' })]);
    expect(await refusal(build(config, { IMPP_TEST_LDAP_PW: 'x' }))).toContain(
      'answered by 2 providers (corp, corp2)',
    );
  });

  it('wires a Kerberos provider for GS2-KRB5 from keytab, service principal and realm', async () => {
    const kerberos = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      type: 'kerberos',
      id: 'krb',
      keytab: join(dir, 'impp.keytab'),
      servicePrincipal: 'impp/im.example.org@EXAMPLE.ORG',
      realm: 'EXAMPLE.ORG',
      ...extra,
    });
    const configured = await build(
      trustWith(['GS2-KRB5', 'SCRAM-SHA-256-PLUS'], [kerberos(), { type: 'local', id: 'local' }]),
    );
    try {
      expect(configured.authenticator.offer(tls)).toEqual(['GS2-KRB5', 'SCRAM-SHA-256-PLUS']);
    } finally {
      await configured.close();
    }
    // A clock skew the GSS-API library would not apply is refused, not silently ignored.
    expect(
      await refusal(build(trustWith(['GS2-KRB5'], [kerberos({ maxClockSkewSeconds: 60 })]))),
    ).toContain('set clockskew in krb5.conf');
  });

  it('wires a PKI provider for EXTERNAL and hands its CA and CRL to the TLS listeners', async () => {
    const { createCa, createCrl } = await import('../infra/certs.js');
    const ca = await createCa();
    writeFileSync(join(dir, 'pki-ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'pki.crl.pem'), await createCrl(ca, []));
    const pki = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      type: 'pki',
      id: 'pki',
      trustAnchors: { path: 'pki-ca.pem' },
      ...extra,
    });
    const configured = await build(
      trustWith(
        ['EXTERNAL', 'SCRAM-SHA-256-PLUS'],
        [pki({ crlPaths: ['pki.crl.pem'] }), { type: 'local', id: 'local' }],
      ),
      {},
      dir,
    );
    try {
      expect(configured.authenticator.offer(tls)).toEqual(['EXTERNAL', 'SCRAM-SHA-256-PLUS']);
      expect(configured.clientCertificates?.ca).toEqual([ca.certPem]);
      expect(configured.clientCertificates?.crl).toHaveLength(1);
    } finally {
      await configured.close();
    }
    // Without a PKI provider, the listeners are not told to ask for certificates.
    const plain = await build(
      parseServerConfig({ version: 1, domain: 'example.org', dataDir: dir }),
    );
    expect(plain.clientCertificates).toBeUndefined();
    await plain.close();
    // Revocation must be something the server does.
    expect(await refusal(build(trustWith(['EXTERNAL'], [pki()]), {}, dir))).toContain(
      'no CRL file is listed',
    );
    expect(
      await refusal(build(trustWith(['EXTERNAL'], [pki({ revocation: 'ocsp' })]), {}, dir)),
    ).toContain('ocsp is not supported');
    expect(
      await refusal(
        build(
          trustWith(['EXTERNAL'], [pki({ revocation: 'none', crlPaths: ['pki.crl.pem'] })]),
          {},
          dir,
        ),
      ),
    ).toContain('set revocation: crl');
    expect(
      await refusal(
        build(
          trustWith(
            ['EXTERNAL'],
            [pki({ revocation: 'none', trustAnchors: { path: 'nope.pem' } })],
          ),
          {},
          dir,
        ),
      ),
    ).toContain('cannot read the CA bundle');
  });

  it('wires GS2-KRB5-PLUS (the native addon is built) and keeps it above GS2-KRB5', async () => {
    const kerberos = {
      type: 'kerberos',
      id: 'krb',
      keytab: join(dir, 'impp.keytab'),
      servicePrincipal: 'impp/im.example.org@EXAMPLE.ORG',
      realm: 'EXAMPLE.ORG',
    };
    const configured = await build(trustWith(['GS2-KRB5-PLUS', 'GS2-KRB5'], [kerberos]));
    try {
      expect(configured.authenticator.offer(tls)).toEqual(['GS2-KRB5-PLUS', 'GS2-KRB5']);
      // -PLUS needs the exporter: not offered on a channel without one.
      expect(configured.authenticator.offer({ secure: true })).toEqual(['GS2-KRB5']);
    } finally {
      await configured.close();
    }
    expect(() => trustWith(['GS2-KRB5', 'GS2-KRB5-PLUS'], [kerberos])).toThrow(
      /GS2-KRB5 must come after GS2-KRB5-PLUS/,
    );
  });

  it('wires SCRAM from LDAP authPassword only with a disabled-account filter', async () => {
    const withScram = ldap({
      scramAttribute: 'authPassword',
      disabledFilter: '(pwdAccountLockedTime=*)',
    });
    const configured = await build(
      trustWith(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN'], [withScram]),
      { IMPP_TEST_LDAP_PW: 'x' },
    );
    try {
      expect(configured.authenticator.offer(tls)).toEqual([
        'SCRAM-SHA-256-PLUS',
        'SCRAM-SHA-256',
        'PLAIN',
      ]);
    } finally {
      await configured.close();
    }
    // SCRAM never binds as the user, so the directory's own lock would not be consulted.
    expect(() =>
      trustWith(['SCRAM-SHA-256-PLUS'], [ldap({ scramAttribute: 'authPassword' })]),
    ).toThrow(/disabledFilter: is needed with scramAttribute/);
    // Without scramAttribute an LDAP provider does not answer SCRAM.
    expect(() => trustWith(['SCRAM-SHA-256-PLUS'], [ldap()])).toThrow(/has no provider/);
    // With a local provider too, SCRAM would have two answers: refused, not guessed.
    expect(
      await refusal(
        build(trustWith(['SCRAM-SHA-256-PLUS'], [{ type: 'local', id: 'local' }, withScram]), {
          IMPP_TEST_LDAP_PW: 'x',
        }),
      ),
    ).toContain('answered by 2 providers');
  });

  it('refuses custom providers with a start-up message naming the reason', async () => {
    const custom = trustWith(
      ['PLAIN'],
      [{ type: 'custom', id: 'mine', module: './mine.js', mechanisms: ['PLAIN'] }],
    );
    expect(await refusal(build(custom))).toContain('custom provider is not wired');
  });
});
