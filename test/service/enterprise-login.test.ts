/**
 * Enterprise providers through the whole server: an ImppServer whose authenticator is built by
 * `authenticatorFromConfig` from a configuration naming an LDAP provider, a real OpenLDAP slapd
 * (test/infra/slapd.ts, StartTLS with its own CA), and a client speaking the client protocol over
 * real TLS on loopback that logs in with PLAIN (the SDK speaks only SCRAM, so the test drives the
 * SASL exchange itself with the library's PLAIN client). The same for a Kerberos provider with a
 * real MIT KDC (test/infra/kdc.ts) and GS2-KRB5 (RFC 5801), and GS2-KRB5-PLUS (bound to the TLS
 * exporter through impp's native GSS addon); and SCRAM-SHA-256(-PLUS) over RFC 5803 verifiers
 * that the directory holds in `authPassword`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MemoryAuditSink,
  authenticate,
  plainClient,
  scramClient,
  type ClientMechanismFactory,
  type ClientSaslTransport,
  type ServerReply,
} from '../../src/auth/index.js';
import { gs2Krb5Client } from '../../src/auth/kerberos/gs2-krb5.js';
import type { AuthWireFailure } from '../../src/auth/types.js';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import {
  authenticatorFromConfig,
  type ConfiguredAuthenticator,
} from '../../src/service/authenticator.js';
import { parseServerConfig } from '../../src/service/config/server-config.js';
import { ClientFrame } from '../../src/service/protocol.js';
import { ImppServer } from '../../src/service/server.js';
import { openSqliteServiceStore, type SqliteServiceStore } from '../../src/service/store/index.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { createLoopbackPki } from '../helpers/tls-fixtures.js';
import {
  GROUPS,
  PEOPLE,
  SERVICE_DN,
  SERVICE_PASSWORD,
  startSlapd,
  type SlapdFixture,
} from '../infra/slapd.js';
import { REALM, SERVICE, startKdc, type KdcFixture } from '../infra/kdc.js';
import { RawClient } from './raw.js';

const DOMAIN = 'example.org';

interface Served {
  readonly port: number;
  readonly ca: string;
  readonly audit: MemoryAuditSink;
  close(): Promise<void>;
}

/** An ImppServer on loopback whose authenticator comes from `authentication` via the config. */
async function serve(
  authentication: Record<string, unknown>,
  env: Readonly<Record<string, string>> = {},
): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'impp-enterprise-'));
  const pki = await createLoopbackPki();
  const config = parseServerConfig({
    version: 1,
    domain: DOMAIN,
    dataDir: dir,
    trust: { authentication },
  });
  const audit = new MemoryAuditSink();
  const configured: ConfiguredAuthenticator = await authenticatorFromConfig({
    trust: config.trust,
    accountsDbPath: join(dir, 'accounts.db'),
    domainKey: generateSigningKeyPair(),
    audit,
    env,
  });
  const store: SqliteServiceStore = openSqliteServiceStore({ path: join(dir, 'service.db') });
  const server = new ImppServer({
    domain: DOMAIN,
    tls: { key: pki.server.keyPem, cert: pki.server.certPem },
    store,
    authenticator: configured.authenticator,
    domainKey: generateSigningKeyPair(),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    port,
    ca: pki.ca.certPem,
    audit,
    async close() {
      await server.close();
      await store.close();
      await configured.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type Body = { readonly [key: string]: CborValue };
type Outcome =
  | { readonly ok: true; readonly offered: readonly string[] }
  | { readonly ok: false; readonly failure: AuthWireFailure; readonly offered: readonly string[] };

/**
 * Connects over TLS and runs the SASL client `mechanism` of src/auth against `served`. With
 * `foreignExporter` the client binds to that value instead of its own connection's (what a
 * login relayed from another TLS connection looks like).
 */
async function login(
  served: Served,
  mechanism: ClientMechanismFactory | readonly ClientMechanismFactory[],
  foreignExporter?: Uint8Array,
): Promise<Outcome> {
  const conn = await connectTls({
    host: '127.0.0.1',
    port: served.port,
    ca: served.ca,
    servername: 'localhost',
  });
  const raw = new RawClient(conn);
  try {
    const offer = await raw.take(ClientFrame.AUTH_OFFER);
    const offered = (offer.mechanisms as CborValue[]).filter(
      (m): m is string => typeof m === 'string',
    );
    let failure: AuthWireFailure | undefined;
    const reply = async (): Promise<ServerReply> => {
      for (let i = 0; i < 100; i++) {
        const f = raw.frames.find((x) =>
          [ClientFrame.AUTH_CHALLENGE, ClientFrame.AUTH_SUCCESS, ClientFrame.AUTH_FAILURE].includes(
            x.type as 19 | 20 | 21,
          ),
        );
        if (f !== undefined) {
          raw.frames.splice(raw.frames.indexOf(f), 1);
          const b = f.body as Body;
          if (f.type === ClientFrame.AUTH_CHALLENGE)
            return { type: 'challenge', challenge: b.data as Uint8Array };
          if (f.type === ClientFrame.AUTH_SUCCESS) {
            // GS2-KRB5 puts the server's AP-REP here (mutual authentication, RFC 5801 §4).
            const ad = b.additionalData;
            return { type: 'success', additionalData: ad instanceof Uint8Array ? ad : null };
          }
          failure = b.failure as AuthWireFailure;
          return { type: 'failure', failure };
        }
        await raw.wait();
      }
      throw new Error('no authentication answer');
    };
    const transport: ClientSaslTransport = {
      start: (mechanism, initial) => {
        conn.send(ClientFrame.AUTH_START, { mechanism, initial });
        return reply();
      },
      respond: (data) => {
        conn.send(ClientFrame.AUTH_RESPONSE, { data });
        return reply();
      },
    };
    try {
      await authenticate(transport, Array.isArray(mechanism) ? mechanism : [mechanism], offered, {
        secure: true,
        tlsVersion: 'TLSv1.3',
        tlsExporter: foreignExporter ?? conn.channelBinding(),
      });
      return { ok: true, offered };
    } catch (e) {
      if (failure === undefined || !isImppError(e)) throw e;
      return { ok: false, failure, offered };
    }
  } finally {
    conn.close();
  }
}

describe('impp serve with the LDAP provider from the configuration (real slapd, real TLS)', () => {
  let slapd: SlapdFixture;
  let served: Served;
  /** The directory as the only provider, answering SCRAM from authPassword as well as PLAIN. */
  let scramServed: Served;
  const plainLogin = (user: string, password: string): Promise<Outcome> =>
    login(served, plainClient({ username: user, password }));

  beforeAll(async () => {
    slapd = await startSlapd();
    served = await serve(
      {
        mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN'],
        providers: [
          { type: 'local', id: 'local' },
          {
            type: 'ldap',
            id: 'corp',
            url: slapd.url,
            startTls: true,
            bind: { dn: SERVICE_DN, password: { env: 'IMPP_TEST_LDAP_BIND_PW' } },
            userSearch: { base: PEOPLE, filter: '(&(objectClass=inetOrgPerson)(uid={user}))' },
            groupSearch: { base: GROUPS, filter: '(&(objectClass=groupOfNames)(member={dn}))' },
            caBundle: { pem: slapd.caPem },
          },
        ],
      },
      { IMPP_TEST_LDAP_BIND_PW: SERVICE_PASSWORD },
    );
    scramServed = await serve(
      {
        mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN'],
        providers: [
          {
            type: 'ldap',
            id: 'corp-scram',
            url: slapd.url,
            startTls: true,
            bind: { dn: SERVICE_DN, password: { env: 'IMPP_TEST_LDAP_BIND_PW' } },
            userSearch: { base: PEOPLE, filter: '(&(objectClass=inetOrgPerson)(uid={user}))' },
            caBundle: { pem: slapd.caPem },
            scramAttribute: 'authPassword',
            // SCRAM never binds as the user: the lock must be read from the entry.
            disabledFilter: '(pwdAccountLockedTime=*)',
          },
        ],
      },
      { IMPP_TEST_LDAP_BIND_PW: SERVICE_PASSWORD },
    );
  }, 30_000);
  afterAll(async () => {
    await served.close();
    await scramServed.close();
    await slapd.stop();
  });

  it('logs a directory user in with SCRAM-SHA-256-PLUS over the verifier in authPassword', async () => {
    const before = scramServed.audit.events.length;
    const outcome = await login(
      scramServed,
      scramClient({ username: 'alice', password: 'alice-ldap-pw', channelBinding: 'require' }),
    );
    expect(outcome.offered).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN']);
    expect(outcome.ok).toBe(true);
    expect(scramServed.audit.events.slice(before)).toMatchObject([
      {
        type: 'auth.success',
        principal: `alice@${DOMAIN}`,
        mechanism: 'SCRAM-SHA-256-PLUS',
        provider: 'corp-scram',
        channelBound: true,
      },
    ]);
  });

  it('refuses SCRAM with a wrong password, a relayed binding, a user without a verifier, a disabled user', async () => {
    const scram = (user: string, password: string): ClientMechanismFactory[] =>
      scramClient({ username: user, password, channelBinding: 'require' });
    const wrong = await login(scramServed, scram('alice', 'not-alices-pw'));
    const relayed = await login(
      scramServed,
      scram('alice', 'alice-ldap-pw'),
      new Uint8Array(32).fill(7),
    );
    const noVerifier = await login(scramServed, scram('bob', 'bob-ldap-pw'));
    const disabled = await login(scramServed, scram('carol', 'carol-ldap-pw'));
    expect(
      [wrong, relayed, noVerifier, disabled].map((o) => (o.ok ? 'accepted' : o.failure)),
    ).toEqual(['not-authorized', 'not-authorized', 'not-authorized', 'not-authorized']);
    const reasons = scramServed.audit.events
      .filter((e) => e.type === 'auth.failure')
      .map((e) => e.reason);
    expect(reasons).toContain('channel-binding-mismatch');
    // Bob has no verifier in the directory, but PLAIN (an LDAP bind) still works for him.
    expect(
      (await login(scramServed, plainClient({ username: 'bob', password: 'bob-ldap-pw' }))).ok,
    ).toBe(true);
  });

  it('offers PLAIN after the SCRAM mechanisms, as configured', async () => {
    const outcome = await plainLogin('alice', 'alice-ldap-pw');
    expect(outcome.offered).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN']);
  });

  it('logs a directory user in with PLAIN and the directory password', async () => {
    expect((await plainLogin('bob', 'bob-ldap-pw')).ok).toBe(true);
    expect((await plainLogin(`alice@${DOMAIN}`, 'alice-ldap-pw')).ok).toBe(true);
    const success = served.audit.events.find(
      (e) => e.type === 'auth.success' && e.principal === `bob@${DOMAIN}`,
    );
    expect(success?.mechanism).toBe('PLAIN');
    expect(success?.provider).toBe('corp');
  });

  it('answers a wrong password, an unknown user and a disabled user with the same failure', async () => {
    const wrong = await plainLogin('bob', 'not-bobs-password');
    const unknown = await plainLogin('mallory', 'whatever-pw');
    const disabled = await plainLogin('carol', 'carol-ldap-pw');
    const failures = [wrong, unknown, disabled].map((o) => (o.ok ? 'accepted' : o.failure));
    expect(failures).toEqual(['not-authorized', 'not-authorized', 'not-authorized']);
    // The audit trail keeps the real reason; the locked account is refused by the directory.
    const carol = served.audit.events.filter((e) => e.claimedIdentity === 'carol');
    expect(carol.map((e) => e.reason)).toEqual(['bad-credential']);
    expect(
      served.audit.events.filter((e) => e.claimedIdentity === 'mallory').map((e) => e.reason),
    ).toEqual(['unknown-user']);
  });

  it('does not let a user of another domain or an injected filter through', async () => {
    expect((await plainLogin('alice@evil.example', 'alice-ldap-pw')).ok).toBe(false);
    expect((await plainLogin('*', 'alice-ldap-pw')).ok).toBe(false);
    expect((await plainLogin('alice)(uid=*', 'alice-ldap-pw')).ok).toBe(false);
  });

  it('the directory saw the binds only inside TLS (StartTLS before any BIND)', async () => {
    const log = await slapd.log();
    const firstBind = log.indexOf('BIND');
    const firstStartTls = log.indexOf('STARTTLS');
    expect(firstBind).toBeGreaterThan(-1);
    expect(firstStartTls).toBeGreaterThan(-1);
    expect(firstStartTls).toBeLessThan(firstBind);
  });
});

describe('impp serve with the Kerberos provider from the configuration (real KDC, real TLS)', () => {
  let kdc: KdcFixture;
  let served: Served;
  /** GS2-KRB5-PLUS first (the native addon is built by .ci/run), GS2-KRB5 after it. */
  let plusServed: Served;

  beforeAll(async () => {
    kdc = await startKdc([
      { name: 'alice', password: 'alice-krb-pw' },
      { name: 'carol/admin', password: 'carol-admin-pw' },
    ]);
    // The GSS-API library reads its settings from the process environment (this file runs in
    // its own worker): the client side needs the KDC's krb5.conf and a credential cache.
    for (const [k, v] of Object.entries(kdc.env)) process.env[k] = v;
    const [service, host] = SERVICE.split('@');
    served = await serve({
      mechanisms: ['GS2-KRB5', 'SCRAM-SHA-256-PLUS'],
      providers: [
        {
          type: 'kerberos',
          id: 'corp-krb',
          keytab: kdc.keytab,
          servicePrincipal: `${service ?? ''}/${host ?? ''}@${REALM}`,
          realm: REALM,
        },
        { type: 'local', id: 'local' },
      ],
    });
    plusServed = await serve({
      mechanisms: ['GS2-KRB5-PLUS', 'GS2-KRB5'],
      providers: [
        {
          type: 'kerberos',
          id: 'corp-krb',
          keytab: kdc.keytab,
          servicePrincipal: `${service ?? ''}/${host ?? ''}@${REALM}`,
          realm: REALM,
        },
      ],
    });
  }, 30_000);
  afterAll(async () => {
    await served.close();
    await plusServed.close();
    await kdc.stop();
  });

  it('logs in with GS2-KRB5-PLUS, bound to this TLS connection', async () => {
    process.env.KRB5CCNAME = `FILE:${await kdc.kinit('alice', 'alice-krb-pw')}`;
    const before = plusServed.audit.events.length;
    const outcome = await login(plusServed, gs2Krb5Client({ service: SERVICE, plus: true }));
    expect(outcome.offered).toEqual(['GS2-KRB5-PLUS', 'GS2-KRB5']);
    expect(outcome.ok).toBe(true);
    expect(plusServed.audit.events.slice(before)).toMatchObject([
      {
        type: 'auth.success',
        principal: `alice@${DOMAIN}`,
        mechanism: 'GS2-KRB5-PLUS',
        channelBound: true,
      },
    ]);
  });

  it('refuses a GS2-KRB5-PLUS login bound to another TLS connection (a relayed AP-REQ)', async () => {
    process.env.KRB5CCNAME = `FILE:${await kdc.kinit('alice', 'alice-krb-pw')}`;
    const before = plusServed.audit.events.length;
    const outcome = await login(
      plusServed,
      gs2Krb5Client({ service: SERVICE, plus: true }),
      new Uint8Array(32).fill(3),
    );
    expect(outcome.ok ? 'accepted' : outcome.failure).toBe('not-authorized');
    expect(plusServed.audit.events.slice(before).map((e) => e.reason)).toEqual([
      'channel-binding-mismatch',
    ]);
  });

  it('logs a user with a ticket in with GS2-KRB5 and maps the principal to the domain', async () => {
    process.env.KRB5CCNAME = `FILE:${await kdc.kinit('alice', 'alice-krb-pw')}`;
    const outcome = await login(served, gs2Krb5Client({ service: SERVICE }));
    expect(outcome.offered).toEqual(['GS2-KRB5', 'SCRAM-SHA-256-PLUS']);
    expect(outcome.ok).toBe(true);
    const success = served.audit.events.find((e) => e.type === 'auth.success');
    expect(success?.principal).toBe(`alice@${DOMAIN}`);
    expect(success?.provider).toBe('corp-krb');
  });

  it('refuses an instance principal (carol/admin) with the uniform failure', async () => {
    process.env.KRB5CCNAME = `FILE:${await kdc.kinit('carol/admin', 'carol-admin-pw')}`;
    const outcome = await login(served, gs2Krb5Client({ service: SERVICE }));
    expect(outcome.ok ? 'accepted' : outcome.failure).toBe('not-authorized');
    const failure = served.audit.events.find((e) => e.type === 'auth.failure');
    expect(failure?.reason).toBe('unknown-user');
  });
});
