/**
 * The LDAP / Active Directory provider against a real OpenLDAP slapd (test/infra/slapd.ts):
 * password check by binding as the user, groups, disabled accounts, SCRAM verifiers in
 * authPassword, StartTLS / LDAPS with CA verification, and the attacks: empty password (AD's
 * unauthenticated bind), LDAP filter and DN injection, a directory with the wrong certificate.
 */
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isImppError } from '../../src/errors.js';
import {
  ldapProvider,
  type LdapCredentialProvider,
  type LdapProviderConfig,
} from '../../src/auth/ldap/provider.js';
import type { CredentialProvider } from '../../src/auth/types.js';
import { plainClient, plainServer } from '../../src/auth/plain.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { scramServer } from '../../src/auth/scram/server.js';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { runProviderContract } from './provider-contract.js';
import { tlsChannel } from './helpers.js';
import { createCa } from '../infra/certs.js';
import {
  GROUPS,
  PEOPLE,
  SERVICE_DN,
  SERVICE_PASSWORD,
  startSlapd,
  SUFFIX,
  type SlapdFixture,
} from '../infra/slapd.js';

const DOMAIN = 'example.test';
let slapd: SlapdFixture;

beforeAll(async () => {
  slapd = await startSlapd();
});
afterAll(async () => {
  await slapd.stop();
});

function baseConfig(overrides: Partial<LdapProviderConfig> = {}): LdapProviderConfig {
  return {
    url: slapd.url,
    startTls: true,
    caPem: slapd.caPem,
    serviceAccount: { dn: SERVICE_DN, password: SERVICE_PASSWORD },
    userBase: PEOPLE,
    userFilter: '(&(objectClass=inetOrgPerson)(uid={user}))',
    disabledFilter: '(pwdAccountLockedTime=*)',
    groups: { base: GROUPS, filter: '(&(objectClass=groupOfNames)(member={dn}))' },
    scramAttribute: 'authPassword',
    ...overrides,
  };
}

async function provider(overrides: Partial<LdapProviderConfig> = {}): Promise<CredentialProvider> {
  return ldapProvider(baseConfig(overrides))({ domain: DOMAIN, now: Date.now });
}

describe('LDAP provider: password verification by user bind (StartTLS, service account)', () => {
  it('accepts the right password and reports the identity with groups', async () => {
    const p = await provider();
    const verdict = await p.verifyPassword!('alice', 'alice-ldap-pw');
    expect(verdict.status).toBe('ok');
    if (verdict.status !== 'ok') return;
    expect(verdict.identity.principal).toEqual({ user: 'alice', domain: DOMAIN });
    expect(verdict.identity.kind).toBe('person');
    expect(verdict.identity.attributes?.groups).toEqual(['admins', 'staff']);
    expect(verdict.identity.attributes?.displayName).toBe('Alice Example');
  });

  it('takes the canonical name from the directory, accepts user@our-domain, refuses other domains', async () => {
    const p = await provider();
    const upper = await p.verifyPassword!('ALICE', 'alice-ldap-pw');
    expect(upper.status === 'ok' && upper.identity.principal.user).toBe('alice');
    expect((await p.verifyPassword!('alice@example.test', 'alice-ldap-pw')).status).toBe('ok');
    expect((await p.verifyPassword!('alice@evil.test', 'alice-ldap-pw')).status).toBe('unknown');
  });

  it('answers bad-password for a wrong password and unknown for an unknown user', async () => {
    const p = await provider();
    expect((await p.verifyPassword!('alice', 'alice-ldap-pw-wrong')).status).toBe('bad-password');
    expect((await p.verifyPassword!('mallory', 'whatever')).status).toBe('unknown');
  });

  it('refuses a disabled (ppolicy-locked) account even with the right password', async () => {
    const p = await provider();
    const verdict = await p.verifyPassword!('carol', 'carol-ldap-pw');
    expect(verdict.status).toBe('disabled');
    expect(verdict.status === 'disabled' && verdict.identity.principal.user).toBe('carol');
  });

  it('refuses an empty password before any directory traffic (AD unauthenticated-bind pitfall)', async () => {
    // First show that the pitfall is real in this directory: a DN with an empty password "binds".
    const raw = new Client({ url: slapd.url });
    await raw.bind(`uid=bob,${PEOPLE}`, '');
    await raw.unbind();
    // The provider never opens a connection for it: count connections on a decoy directory.
    let connections = 0;
    const decoy: Server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => decoy.listen(0, '127.0.0.1', r));
    const port = (decoy.address() as { port: number }).port;
    try {
      const p = await provider({ url: `ldap://127.0.0.1:${port}` });
      expect((await p.verifyPassword!('bob', '')).status).toBe('bad-password');
      expect(connections).toBe(0);
      // Positive control: a non-empty password does reach the decoy (and fails as unavailable).
      await expect(p.verifyPassword!('bob', 'x')).rejects.toSatisfy((e) =>
        isImppError(e, 'ERR_AUTH_PROVIDER_UNAVAILABLE'),
      );
      expect(connections).toBe(1);
    } finally {
      await new Promise((r) => decoy.close(r));
    }
    // And against the real slapd.
    expect((await (await provider()).verifyPassword!('bob', '')).status).toBe('bad-password');
  });

  it('escapes user names in filters: `*)(uid=*` and friends match nobody', async () => {
    const p = await provider();
    for (const name of [
      '*)(uid=*',
      '*',
      'alice)(uid=*',
      'al*',
      '*)(|(uid=*',
      'alice\\',
      '(uid=alice)',
    ]) {
      expect((await p.verifyPassword!(name, 'alice-ldap-pw')).status, name).toBe('unknown');
    }
    const log = await slapd.log();
    expect(log).toContain('(uid=\\2A\\29\\28uid=\\2A)');
  });

  it('refuses control characters and over-long names without asking the directory', async () => {
    const p = await provider();
    expect((await p.verifyPassword!('alice\u0000', 'alice-ldap-pw')).status).toBe('unknown');
    expect((await p.verifyPassword!('a'.repeat(300), 'pw')).status).toBe('unknown');
  });
});

describe('LDAP provider: lookup for other providers (Kerberos / PKI accountLookup)', () => {
  it('answers ok, disabled and unknown by address, without a credential', async () => {
    const p = (await provider()) as LdapCredentialProvider;
    const alice = await p.lookup('alice@example.test');
    expect(alice.status === 'ok' && alice.identity.attributes?.groups).toEqual(['admins', 'staff']);
    expect((await p.lookup('carol@example.test')).status).toBe('disabled');
    expect((await p.lookup('nobody@example.test')).status).toBe('unknown');
    expect((await p.lookup('alice@other.test')).status).toBe('unknown');
    expect((await p.lookup('*')).status).toBe('unknown');
  });
});

describe('LDAP provider: search after bind (no service account)', () => {
  const template = `uid={user},${PEOPLE}`;
  it('binds as the user, then searches with the user connection', async () => {
    const config = { ...baseConfig(), userBindTemplate: template };
    delete config.serviceAccount;
    delete config.scramAttribute;
    // Registered through the core registry: its capability check must agree (no SCRAM method).
    const registry = new AuthRegistry({
      domain: DOMAIN,
      serverSecret: new SecretBytes(randomBytes(32)),
    });
    const p = await registry.registerProvider(ldapProvider(config));
    expect(p.capabilities).toEqual(['verify-password']);
    const ok = await p.verifyPassword!('bob', 'bob-ldap-pw');
    expect(ok.status === 'ok' && ok.identity.attributes?.groups).toEqual(['staff']);
    expect((await p.verifyPassword!('bob', 'nope')).status).toBe('bad-password');
    // The directory's ppolicy refuses the locked account's bind.
    expect((await p.verifyPassword!('carol', 'carol-ldap-pw')).status).toBe('bad-password');
    // DN injection: the name is escaped into the RDN value, so this is not alice's DN.
    expect((await p.verifyPassword!(`alice,${PEOPLE}`, 'alice-ldap-pw')).status).toBe(
      'bad-password',
    );
  });
});

describe('LDAP provider: SCRAM verifiers from authPassword (RFC 5803)', () => {
  it('reads the verifier, which matches the password (RFC 5802 §3)', async () => {
    const p = await provider();
    const lookup = await p.getScramCredential!('alice');
    expect(lookup.status).toBe('ok');
    if (lookup.status === 'unknown') return;
    const { salt, iterations, storedKey, serverKey } = lookup.credential;
    expect(iterations).toBe(4096);
    const salted = pbkdf2Sync('alice-ldap-pw', salt, iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    expect(Buffer.from(storedKey)).toEqual(createHash('sha256').update(clientKey).digest());
    expect(Buffer.from(serverKey)).toEqual(
      createHmac('sha256', salted).update('Server Key').digest(),
    );
    expect(lookup.identity.attributes?.groups).toEqual(['admins', 'staff']);
  });

  it('answers unknown without a verifier, and disabled (with the verifier) for a locked account', async () => {
    const p = await provider();
    expect((await p.getScramCredential!('bob')).status).toBe('unknown');
    expect((await p.getScramCredential!('nobody')).status).toBe('unknown');
    expect((await p.getScramCredential!('*')).status).toBe('unknown');
    expect((await p.getScramCredential!('carol')).status).toBe('disabled');
  });
});

describe('LDAP provider: TLS to the directory', () => {
  it('works over LDAPS with the right CA', async () => {
    const p = await provider({ url: slapd.ldapsUrl, startTls: false });
    expect((await p.verifyPassword!('alice', 'alice-ldap-pw')).status).toBe('ok');
  });

  it('fails closed with another CA (LDAPS and StartTLS), without sending the password', async () => {
    const other = await createCa('CN=impp LDAP test CA,O=impp tests'); // same name, other key
    for (const overrides of [
      { url: slapd.ldapsUrl, startTls: false, caPem: other.certPem },
      { caPem: other.certPem },
    ]) {
      const p = await provider(overrides);
      await expect(p.verifyPassword!('alice', 'alice-ldap-pw')).rejects.toSatisfy((e) =>
        isImppError(e, 'ERR_AUTH_PROVIDER_UNAVAILABLE'),
      );
    }
  });

  it('refuses ldap:// without StartTLS in the configuration', () => {
    expect(() => ldapProvider({ ...baseConfig(), startTls: false })).toThrow(/startTls/);
    const noAccount = baseConfig();
    delete noAccount.serviceAccount;
    expect(() => ldapProvider(noAccount)).toThrow(/scramAttribute|serviceAccount/);
  });

  it('reports an unreachable directory as provider-unavailable', async () => {
    const p = await provider({ url: 'ldap://127.0.0.1:1', timeoutMs: 1000 });
    await expect(p.verifyPassword!('alice', 'alice-ldap-pw')).rejects.toSatisfy((e) =>
      isImppError(e, 'ERR_AUTH_PROVIDER_UNAVAILABLE'),
    );
  });

  it('the directory saw binds only inside TLS', async () => {
    const log = await slapd.log();
    expect(log).toContain('STARTTLS');
    expect(log).toContain(`BIND dn="${SERVICE_DN}"`);
    expect(SUFFIX).toBe('dc=example,dc=test');
  });
});

// ── The provider contract suite, against the same slapd ───────────────────────────────────────

async function ldapRegistry(): Promise<AuthRegistry> {
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(plainServer());
  registry.registerMechanism(scramServer({ plus: true }));
  await registry.registerProvider(ldapProvider(baseConfig()));
  return registry;
}

const contractSecrets = ['alice-ldap-pw', 'alice-wrong-pw', 'carol-ldap-pw'];

runProviderContract('LDAP over PLAIN (user bind against slapd)', async () => {
  const channel = (remoteAddress: string) => tlsChannel(randomBytes(32), remoteAddress);
  return {
    registry: await ldapRegistry(),
    domain: DOMAIN,
    mechanisms: [{ mechanism: 'PLAIN', provider: 'ldap' }],
    providerName: 'ldap',
    good: { mechanisms: [plainClient({ username: 'alice', password: 'alice-ldap-pw' })], channel },
    wrongSecret: {
      mechanisms: [plainClient({ username: 'alice', password: 'alice-wrong-pw' })],
      channel,
    },
    unknownUser: {
      mechanisms: [plainClient({ username: 'mallory', password: 'alice-ldap-pw' })],
      channel,
    },
    disabledUser: {
      mechanisms: [plainClient({ username: 'carol', password: 'carol-ldap-pw' })],
      channel,
    },
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets: contractSecrets,
    close: () => Promise.resolve(),
  };
});

runProviderContract('LDAP over SCRAM-SHA-256-PLUS (RFC 5803 verifiers in slapd)', async () => {
  const channel = (remoteAddress: string) => tlsChannel(randomBytes(32), remoteAddress);
  const scram = (username: string, password: string) =>
    scramClient({ username, password, channelBinding: 'require' });
  return {
    registry: await ldapRegistry(),
    domain: DOMAIN,
    mechanisms: [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'ldap' }],
    providerName: 'ldap',
    good: { mechanisms: scram('alice', 'alice-ldap-pw'), channel },
    wrongSecret: { mechanisms: scram('alice', 'alice-wrong-pw'), channel },
    unknownUser: { mechanisms: scram('mallory', 'alice-ldap-pw'), channel },
    disabledUser: { mechanisms: scram('carol', 'carol-ldap-pw'), channel },
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets: contractSecrets,
    close: () => Promise.resolve(),
  };
});
