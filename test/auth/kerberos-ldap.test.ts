/**
 * The usual enterprise combination, with both real servers: Kerberos single sign-on (MIT KDC) for
 * the login, the LDAP directory (slapd) for "is this account enabled, which groups". The directory
 * is consulted through the LDAP provider's `lookup`, by address, after the KDC-verified principal
 * has been mapped — the directory can veto or enrich, never substitute another user.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import { authenticate } from '../../src/auth/client.js';
import { gs2Krb5Clients, gs2Krb5Server, GS2_KRB5 } from '../../src/auth/kerberos/gs2-krb5.js';
import { kerberosProvider } from '../../src/auth/kerberos/provider.js';
import { ldapProvider, type LdapCredentialProvider } from '../../src/auth/ldap/provider.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy } from '../../src/auth/policy.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { Authenticator } from '../../src/auth/server.js';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { REALM, SERVICE, startKdc, type KdcFixture } from '../infra/kdc.js';
import {
  GROUPS,
  PEOPLE,
  SERVICE_DN,
  SERVICE_PASSWORD,
  startSlapd,
  type SlapdFixture,
} from '../infra/slapd.js';
import { SessionTransport, tlsChannel } from './helpers.js';

const DOMAIN = 'example.test';
let kdc: KdcFixture;
let slapd: SlapdFixture;
const caches: Record<string, string> = {};

beforeAll(async () => {
  [kdc, slapd] = await Promise.all([
    startKdc([
      { name: 'alice', password: 'alice-krb-pw' },
      { name: 'carol', password: 'carol-krb-pw' }, // locked in the directory
      { name: 'zoe', password: 'zoe-krb-pw' }, // in the realm, not in the directory
    ]),
    startSlapd(),
  ]);
  for (const [k, v] of Object.entries(kdc.env)) process.env[k] = v;
  for (const user of ['alice', 'carol', 'zoe'])
    caches[user] = await kdc.kinit(user, `${user}-krb-pw`);
});
afterAll(async () => {
  await Promise.all([kdc.stop(), slapd.stop()]);
});

async function server() {
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(gs2Krb5Server());
  const ldap = (await registry.registerProvider(
    ldapProvider({
      url: slapd.url,
      startTls: true,
      caPem: slapd.caPem,
      serviceAccount: { dn: SERVICE_DN, password: SERVICE_PASSWORD },
      userBase: PEOPLE,
      userFilter: '(&(objectClass=inetOrgPerson)(uid={user}))',
      disabledFilter: '(pwdAccountLockedTime=*)',
      groups: { base: GROUPS, filter: '(&(objectClass=groupOfNames)(member={dn}))' },
    }),
  )) as LdapCredentialProvider;
  await registry.registerProvider(
    kerberosProvider({
      service: SERVICE,
      keytab: kdc.keytab,
      realms: [{ realm: REALM }],
      accountLookup: (address) => ldap.lookup(address),
    }),
  );
  const audit = new MemoryAuditSink();
  const policy = makeAuthPolicy(DOMAIN, [{ mechanism: GS2_KRB5, provider: 'kerberos' }], {
    limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
  });
  return { authenticator: new Authenticator(registry, policy, { audit }), audit };
}

async function loginAs(user: string) {
  const { authenticator, audit } = await server();
  process.env.KRB5CCNAME = `FILE:${caches[user] ?? ''}`;
  const channel = tlsChannel();
  const session = authenticator.begin(channel);
  const transport = new SessionTransport(session);
  await authenticate(
    transport,
    gs2Krb5Clients({ service: SERVICE }),
    session.offered,
    channel,
  ).catch(() => undefined);
  return { last: transport.last, event: audit.events.at(-1) };
}

describe('Kerberos login, directory decides enabled/groups', () => {
  it('alice: ticket from the KDC, groups from the directory', async () => {
    const { last } = await loginAs('alice');
    expect(last?.type).toBe('success');
    if (last?.type !== 'success') return;
    expect(last.result.principal).toEqual({ user: 'alice', domain: DOMAIN });
    expect(last.result.attributes.groups).toEqual(['admins', 'staff']);
  });

  it('carol: valid ticket, locked in the directory → disabled', async () => {
    const { last, event } = await loginAs('carol');
    expect(last).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(event?.reason).toBe('disabled');
  });

  it('zoe: valid ticket, no directory entry → unknown user', async () => {
    const { last, event } = await loginAs('zoe');
    expect(last).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(event?.reason).toBe('unknown-user');
  });
});
