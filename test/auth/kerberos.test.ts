/**
 * GS2-KRB5 / GS2-KRB5-PLUS (RFC 5801) and the Kerberos provider against a real MIT KDC
 * (test/infra/kdc.ts): a throwaway realm, `kinit` with a password, both GSS back ends (the
 * `kerberos` package and impp's native channel-binding addon), and the attacks: replayed AP-REQ
 * on a second connection, an AP-REQ relayed from another TLS connection, a rewritten GS2 header,
 * a stripped -PLUS offer, garbage and tampered tokens, a forged AP-REP, authzid mismatch, other
 * realms, instance principals. The provider contract suite runs over both mechanisms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import { authenticate } from '../../src/auth/client.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy } from '../../src/auth/policy.js';
import { DEFAULT_RATE_LIMIT } from '../../src/auth/rate-limit.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { Authenticator } from '../../src/auth/server.js';
import type { CredentialProvider, IdentityLookup } from '../../src/auth/types.js';
import {
  gs2Krb5Client,
  gs2Krb5Clients,
  gs2Krb5Server,
  GS2_KRB5,
  GS2_KRB5_PLUS,
} from '../../src/auth/kerberos/gs2-krb5.js';
import { loadNativeAddon, type GssBackendChoice } from '../../src/auth/kerberos/backend.js';
import { kerberosProvider, type KerberosProviderConfig } from '../../src/auth/kerberos/provider.js';
import { KERBEROS_INSTALL_HINT, loadKerberos } from '../../src/auth/kerberos/gss.js';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseAddress } from '../../src/trust/address.js';
import { REALM, SERVICE, startKdc, type KdcFixture } from '../infra/kdc.js';
import { SessionTransport, tlsChannel } from './helpers.js';
import { runProviderContract } from './provider-contract.js';
import type { ChannelInfo, ClientMechanismFactory } from '../../src/auth/types.js';
import { stripTokenHeader } from '../../src/auth/kerberos/gs2.js';

const DOMAIN = 'example.test';
let kdc: KdcFixture;
/** The GSS back end the current block runs with (both are tested). */
let backend: GssBackendChoice = 'auto';
// `npm test` builds the addon first (npm run build:native); without it the -PLUS half of this
// file would have nothing to test, so it fails loudly rather than skipping.
if (loadNativeAddon() === null) {
  throw new Error('native/gss-cb is not built: run `npm run build:native` (needs libkrb5-dev)');
}
let aliceCache: string;

beforeAll(async () => {
  kdc = await startKdc(
    [
      { name: 'alice', password: 'alice-krb-pw' },
      { name: 'bob', password: 'bob-krb-pw', disabled: true },
      { name: 'carol/admin', password: 'carol-admin-pw' },
      { name: 'dave', password: 'dave-krb-pw' },
      { name: 'erin', password: 'erin-krb-pw' },
    ],
    ['other'],
  );
  // The GSS-API library reads these from the process environment when it creates a context:
  // set them before the first Kerberos call of this process (vitest runs each file in its own).
  for (const [k, v] of Object.entries(kdc.env)) process.env[k] = v;
  aliceCache = await kdc.kinit('alice', 'alice-krb-pw');
  useCache(aliceCache);
});
afterAll(async () => {
  await kdc.stop();
});

function useCache(path: string): void {
  process.env.KRB5CCNAME = `FILE:${path}`;
}

async function domain(
  overrides: Partial<KerberosProviderConfig> = {},
  extra: { audit?: MemoryAuditSink; accountBurst?: number; plus?: boolean } = {},
): Promise<{ authenticator: Authenticator; audit: MemoryAuditSink; provider: CredentialProvider }> {
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  if (extra.plus === true) registry.registerMechanism(gs2Krb5Server({ plus: true }));
  registry.registerMechanism(gs2Krb5Server({ gss: backend }));
  const provider = await registry.registerProvider(
    kerberosProvider({
      service: SERVICE,
      keytab: kdc.keytab,
      realms: [{ realm: REALM }],
      ...overrides,
    }),
  );
  const audit = extra.audit ?? new MemoryAuditSink();
  const mechanisms = [
    ...(extra.plus === true ? [{ mechanism: GS2_KRB5_PLUS, provider: 'kerberos' }] : []),
    { mechanism: GS2_KRB5, provider: 'kerberos' },
  ];
  const policy = makeAuthPolicy(DOMAIN, mechanisms, {
    rateLimit: { ...DEFAULT_RATE_LIMIT, accountBurst: extra.accountBurst ?? 5 },
    limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
  });
  return { authenticator: new Authenticator(registry, policy, { audit }), audit, provider };
}

async function login(authenticator: Authenticator, authzid?: string) {
  const channel = tlsChannel();
  const session = authenticator.begin(channel);
  const transport = new SessionTransport(session);
  const client = gs2Krb5Client({
    service: SERVICE,
    gss: backend,
    ...(authzid === undefined ? {} : { authzid }),
  });
  const outcome = await authenticate(transport, [client], session.offered, channel).catch(
    (e: unknown) => e,
  );
  return { outcome, transport, last: transport.last };
}

/** The client's first message, as sent on the wire by an earlier exchange. */
function firstMessage(transport: SessionTransport): Uint8Array {
  const start = transport.wire.find((w) => w.dir === 'c2s');
  const b64 = start?.data.split(' ')[1] ?? '';
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

async function replayOnNewConnection(authenticator: Authenticator, message: Uint8Array) {
  const session = authenticator.begin(tlsChannel());
  return session.start(GS2_KRB5, message);
}

describe.each(['native', 'package'] as const)(
  'GS2-KRB5 against a real KDC (%s GSS back end)',
  (gss) => {
    beforeAll(() => {
      backend = gss;
    });
    afterAll(() => {
      backend = 'auto';
    });
    it('logs alice in from her credential cache, with mutual authentication', async () => {
      const { authenticator, audit } = await domain();
      const { outcome, last, transport } = await login(authenticator);
      expect(outcome).toMatchObject({ mechanism: GS2_KRB5, channelBound: false });
      expect(last?.type).toBe('success');
      if (last?.type !== 'success') return;
      expect(last.result.principal).toEqual(parseAddress('alice@example.test'));
      expect(last.result.provider).toBe('kerberos');
      expect(last.result.channelBound).toBe(false);
      expect(last.additionalData?.length).toBeGreaterThan(0); // the AP-REP
      const event = audit.events.at(-1);
      expect(event).toMatchObject({
        type: 'auth.success',
        principal: 'alice@example.test',
        claimedIdentity: `alice@${REALM}`,
      });
      // No ticket bytes in the audit trail.
      const ticket = Buffer.from(firstMessage(transport).subarray(3, 40)).toString('base64');
      expect(JSON.stringify(audit.events)).not.toContain(ticket);
    });

    it('refuses a replayed AP-REQ on a second connection (MIT replay cache)', async () => {
      const { authenticator, audit } = await domain();
      const { transport, last } = await login(authenticator);
      expect(last?.type).toBe('success');
      const replay = await replayOnNewConnection(authenticator, firstMessage(transport));
      expect(replay).toEqual({ type: 'failure', failure: 'not-authorized' });
      expect(audit.events.at(-1)).toMatchObject({ type: 'auth.failure', reason: 'replay' });
      // Also across authenticators (a restarted server shares the on-disk replay cache).
      const other = await domain();
      expect((await replayOnNewConnection(other.authenticator, firstMessage(transport))).type).toBe(
        'failure',
      );
      expect(other.audit.events.at(-1)?.reason).toBe('replay');
    });

    it('refuses garbage, tampered and truncated tokens with a clean failure', async () => {
      const { authenticator, audit } = await domain();
      const { transport } = await login(authenticator);
      const good = firstMessage(transport);
      const header = 3; // "n,,"
      const tampered = Uint8Array.from(good);
      tampered[good.length - 20] = (tampered[good.length - 20] ?? 0) ^ 0x01; // inside the encrypted authenticator
      const cases: [string, Uint8Array][] = [
        ['random bytes', Uint8Array.from([0x6e, 0x2c, 0x2c, ...randomBytes(200)])],
        ['tampered authenticator', tampered],
        ['truncated', good.subarray(0, header + 100)],
        ['header only', new TextEncoder().encode('n,,')],
        ['no header', good.subarray(header)],
        ['bad flag', Uint8Array.from([0x78, ...good.subarray(1)])],
        ['non-standard token flag', new TextEncoder().encode('F,n,,xx')],
      ];
      for (const [label, message] of cases) {
        const out = await replayOnNewConnection(authenticator, message);
        expect(out.type, label).toBe('failure');
        const reason = audit.events.at(-1)?.reason;
        expect(['malformed', 'bad-credential', 'replay'], `${label}: ${String(reason)}`).toContain(
          reason,
        );
      }
    });

    it('refuses a channel-binding request (no GS2-KRB5-PLUS is offered)', async () => {
      const { authenticator, audit } = await domain();
      const { transport } = await login(authenticator);
      const good = firstMessage(transport);
      const bound = Uint8Array.from([
        ...new TextEncoder().encode('p=tls-exporter,,'),
        ...good.subarray(3),
      ]);
      expect((await replayOnNewConnection(authenticator, bound)).type).toBe('failure');
      expect(audit.events.at(-1)?.reason).toBe('channel-binding-mismatch');
    });

    it('honours an authzid equal to the mapped identity and refuses any other', async () => {
      const { authenticator, audit } = await domain();
      expect((await login(authenticator, 'alice@example.test')).last?.type).toBe('success');
      const { last } = await login(authenticator, 'bob@example.test');
      expect(last).toEqual({ type: 'failure', failure: 'not-authorized' });
      expect(audit.events.at(-1)?.reason).toBe('authzid-refused');
    });

    it('refuses principals from realms without a rule, and instance principals', async () => {
      const other = await domain({ realms: [{ realm: 'OTHER.TEST' }] });
      expect((await login(other.authenticator)).last?.type).toBe('failure');
      expect(other.audit.events.at(-1)?.reason).toBe('unknown-user');
      const carol = await kdc.kinit('carol/admin', 'carol-admin-pw');
      useCache(carol);
      try {
        const { authenticator, audit } = await domain();
        expect((await login(authenticator)).last?.type).toBe('failure');
        expect(audit.events.at(-1)).toMatchObject({
          reason: 'unknown-user',
          claimedIdentity: `carol/admin@${REALM}`,
        });
      } finally {
        useCache(aliceCache);
      }
    });

    it('a disabled account: the KDC issues no ticket, and a directory veto is honoured', async () => {
      await expect(kdc.kinit('bob', 'bob-krb-pw')).rejects.toThrow(/revoked/);
      await expect(kdc.kinit('alice', 'wrong-password')).rejects.toThrow();
      const lookup = (address: string): Promise<IdentityLookup> =>
        Promise.resolve({
          status: 'disabled',
          identity: { principal: parseAddress(address), kind: 'person' },
        });
      const { authenticator, audit } = await domain({ accountLookup: lookup });
      expect((await login(authenticator)).last?.type).toBe('failure');
      expect(audit.events.at(-1)?.reason).toBe('disabled');
    });

    it('the client refuses a server that cannot produce a valid AP-REP (mutual authentication)', async () => {
      const { authenticator } = await domain();
      const channel = tlsChannel();
      const session = authenticator.begin(channel);
      const inner = new SessionTransport(session);
      const forging = {
        start: async (m: string, i: Uint8Array | null) => {
          const reply = await inner.start(m, i);
          if (reply.type !== 'success' || reply.additionalData === null) return reply;
          const forged = Uint8Array.from(reply.additionalData);
          forged[forged.length - 5] = (forged[forged.length - 5] ?? 0) ^ 0xff;
          return { ...reply, additionalData: forged };
        },
        respond: (d: Uint8Array) => inner.respond(d),
      };
      const err = await authenticate(
        forging,
        [gs2Krb5Client({ service: SERVICE, gss })],
        session.offered,
        channel,
      ).catch((e: unknown) => e);
      expect(isImppError(err, 'ERR_AUTH_FAILED')).toBe(true);
      const none = {
        start: async (m: string, i: Uint8Array | null) => {
          const reply = await new SessionTransport(authenticator.begin(channel)).start(m, i);
          return reply.type === 'success' ? { ...reply, additionalData: null } : reply;
        },
        respond: (d: Uint8Array) => inner.respond(d),
      };
      await expect(
        authenticate(none, [gs2Krb5Client({ service: SERVICE, gss })], session.offered, channel),
      ).rejects.toThrow(/AP-REP/);
    });

    it('is not offered outside TLS, and refuses to run there', async () => {
      const { authenticator } = await domain();
      expect(authenticator.offer({ secure: false })).toEqual([]);
      expect(authenticator.offer(tlsChannel())).toEqual([GS2_KRB5]);
    });

    it('applies the per-account rate limit to the principal and audits every attempt', async () => {
      const audit = new MemoryAuditSink();
      const { authenticator } = await domain(
        { accountLookup: () => Promise.resolve({ status: 'unknown' }) },
        { audit, accountBurst: 1 },
      );
      for (let i = 0; i < 3; i++) await login(authenticator);
      const reasons = audit.events.map((e) => e.reason);
      expect(reasons.slice(0, 1)).toEqual(['unknown-user']);
      expect(reasons).toContain('rate-limited');
      expect(audit.events.every((e) => e.type === 'auth.failure')).toBe(true);
    });
  },
);

describe('GS2-KRB5-PLUS: the Kerberos login bound to the TLS channel (native addon)', () => {
  /** A client that builds its first message on `channel` but lets the test decide where it goes. */
  async function firstMessageOn(
    channel: ChannelInfo,
    offered: readonly string[],
    plus: boolean,
  ): Promise<Uint8Array> {
    const mech = gs2Krb5Client({ service: SERVICE, plus }).create({
      channel,
      offeredMechanisms: offered,
    });
    const first = await mech.start();
    if (first === null) throw new Error('no initial response');
    return first;
  }

  it('logs in with -PLUS, bound to the tls-exporter value, preferred over GS2-KRB5', async () => {
    const { authenticator, audit } = await domain({}, { plus: true });
    const channel = tlsChannel();
    const session = authenticator.begin(channel);
    expect(session.offered).toEqual([GS2_KRB5_PLUS, GS2_KRB5]);
    const transport = new SessionTransport(session);
    const out = await authenticate(
      transport,
      gs2Krb5Clients({ service: SERVICE }),
      session.offered,
      channel,
    );
    expect(out).toMatchObject({ mechanism: GS2_KRB5_PLUS, channelBound: true });
    expect(transport.last?.type === 'success' && transport.last.result.channelBound).toBe(true);
    expect(audit.events.at(-1)).toMatchObject({
      type: 'auth.success',
      mechanism: GS2_KRB5_PLUS,
      channelBound: true,
    });
    expect(Buffer.from(firstMessage(transport).subarray(0, 16)).toString()).toBe(
      'p=tls-exporter,,',
    );
  });

  it('refuses a fresh AP-REQ relayed from another TLS connection (different exporter)', async () => {
    const { authenticator, audit } = await domain({}, { plus: true });
    const victim = tlsChannel(); // the client's TLS connection, to a relaying man in the middle
    const message = await firstMessageOn(victim, [GS2_KRB5_PLUS, GS2_KRB5], true);
    const out = await authenticator.begin(tlsChannel()).start(GS2_KRB5_PLUS, message);
    expect(out).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(audit.events.at(-1)?.reason).toBe('channel-binding-mismatch');
  });

  it('refuses a bound AP-REQ whose GS2 header was rewritten to the non-PLUS form', async () => {
    const { authenticator, audit } = await domain({}, { plus: true });
    const message = await firstMessageOn(tlsChannel(), [GS2_KRB5_PLUS, GS2_KRB5], true);
    const stripped = Uint8Array.from([...new TextEncoder().encode('n,,'), ...message.subarray(16)]);
    const out = await authenticator.begin(tlsChannel()).start(GS2_KRB5, stripped);
    expect(out.type).toBe('failure');
    expect(audit.events.at(-1)?.reason).toBe('channel-binding-mismatch');
  });

  it('detects a stripped -PLUS offer: the client says "y", the server that offered -PLUS refuses', async () => {
    const { authenticator, audit } = await domain({}, { plus: true });
    const channel = tlsChannel();
    // The attacker removed GS2-KRB5-PLUS from the list the client saw.
    const message = await firstMessageOn(channel, [GS2_KRB5], false);
    expect(Buffer.from(message.subarray(0, 3)).toString()).toBe('y,,');
    const out = await authenticator.begin(channel).start(GS2_KRB5, message);
    expect(out.type).toBe('failure');
    expect(audit.events.at(-1)?.reason).toBe('downgrade');
  });

  it('refuses an initiator that sends no channel bindings on -PLUS (the kerberos package cannot bind)', async () => {
    const { authenticator, audit } = await domain({}, { plus: true });
    const krb = await loadKerberos();
    const ctx = await krb.initializeClient(SERVICE, {
      mechOID: krb.GSS_MECH_OID_KRB5,
      gssFlag: krb.GSS_C_MUTUAL_FLAG,
    });
    const token = stripTokenHeader(new Uint8Array(Buffer.from(await ctx.step(''), 'base64')));
    const message = Uint8Array.from([...new TextEncoder().encode('p=tls-exporter,,'), ...token]);
    const out = await authenticator.begin(tlsChannel()).start(GS2_KRB5_PLUS, message);
    expect(out.type).toBe('failure');
    expect(audit.events.at(-1)?.reason).toBe('channel-binding-mismatch');
  });

  it('is offered only on channels with a tls-exporter value', async () => {
    const { authenticator } = await domain({}, { plus: true });
    expect(authenticator.offer({ secure: true })).toEqual([GS2_KRB5]);
  });
});

describe('the optional kerberos package', () => {
  it('a missing package is ERR_AUTH_PROVIDER_UNAVAILABLE naming what to install', async () => {
    const missing = () =>
      Promise.reject(
        Object.assign(new Error("Cannot find package 'kerberos'"), {
          code: 'ERR_MODULE_NOT_FOUND',
        }),
      );
    const err = await loadKerberos(missing).catch((e: unknown) => e);
    expect(isImppError(err, 'ERR_AUTH_PROVIDER_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toBe(KERBEROS_INSTALL_HINT);
    expect(KERBEROS_INSTALL_HINT).toContain('apt-get install libkrb5-dev');
    expect(KERBEROS_INSTALL_HINT).toContain('npm install kerberos');
    expect(
      isImppError(
        await loadKerberos(() => Promise.resolve({ nope: 1 })).catch((e: unknown) => e),
        'ERR_AUTH_PROVIDER_UNAVAILABLE',
      ),
    ).toBe(true);
  });

  it('the mechanism turns a missing package into a temporary failure, audited', async () => {
    const registry = new AuthRegistry({
      domain: DOMAIN,
      serverSecret: new SecretBytes(randomBytes(32)),
    });
    registry.registerMechanism(
      gs2Krb5Server({
        gss: 'package',
        loader: () => loadKerberos(() => Promise.reject(new Error('gone'))),
      }),
    );
    await registry.registerProvider(
      kerberosProvider({ service: SERVICE, realms: [{ realm: REALM }] }),
    );
    const audit = new MemoryAuditSink();
    const policy = makeAuthPolicy(DOMAIN, [{ mechanism: GS2_KRB5, provider: 'kerberos' }], {
      limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
    });
    const auth = new Authenticator(registry, policy, { audit });
    const out = await auth
      .begin(tlsChannel())
      .start(GS2_KRB5, new TextEncoder().encode('n,,\u0001\u0002'));
    expect(out).toEqual({ type: 'failure', failure: 'temporary-auth-failure' });
    expect(audit.events.at(-1)?.reason).toBe('provider-unavailable');
  });

  it('refuses to start with the replay cache disabled', () => {
    const saved = process.env.KRB5RCACHETYPE;
    process.env.KRB5RCACHETYPE = 'none';
    try {
      expect(() =>
        kerberosProvider({ service: SERVICE, realms: [{ realm: REALM }] })({
          domain: DOMAIN,
          now: Date.now,
        }),
      ).toThrow(/replay cache/);
    } finally {
      if (saved === undefined) delete process.env.KRB5RCACHETYPE;
      else process.env.KRB5RCACHETYPE = saved;
    }
  });

  it('GS2-KRB5-PLUS cannot be registered without the native addon', () => {
    const registry = new AuthRegistry({
      domain: DOMAIN,
      serverSecret: new SecretBytes(randomBytes(32)),
    });
    expect(() => registry.registerMechanism(gs2Krb5Server({ plus: true, gss: 'package' }))).toThrow(
      /node-gyp/,
    );
  });

  it('refuses a second, different keytab in the same process', () => {
    expect(() =>
      kerberosProvider({
        service: SERVICE,
        keytab: '/nonexistent/other.keytab',
        realms: [{ realm: REALM }],
      })({
        domain: DOMAIN,
        now: Date.now,
      }),
    ).toThrow(/process-wide/);
  });
});

// ── The provider contract suite against the real KDC ───────────────────────────────────────────
// The directory behind the provider (accountLookup) knows alice (active) and erin (disabled);
// dave has a valid ticket but no account ("unknown user"). The wrong secret is a ticket for
// another service (other/localhost), whose key impp's keytab does not hold.

/** Presents the credential cache `cache` (KRB5CCNAME is read when the GSS context is created). */
function fromCache(cache: () => string, factory: ClientMechanismFactory): ClientMechanismFactory {
  return {
    metadata: factory.metadata,
    create: (ctx) => {
      const inner = factory.create(ctx);
      return {
        name: inner.name,
        get channelBound() {
          return inner.channelBound;
        },
        start: async () => {
          useCache(cache());
          try {
            return await inner.start();
          } finally {
            useCache(aliceCache);
          }
        },
        step: (c) => inner.step(c),
        finish: (d) => inner.finish(d),
      };
    },
  };
}

runProviderContract('Kerberos over GS2-KRB5 (real MIT KDC)', async () => {
  const caches = {
    dave: await kdc.kinit('dave', 'dave-krb-pw'),
    erin: await kdc.kinit('erin', 'erin-krb-pw'),
  };
  const directory: Record<string, 'ok' | 'disabled'> = {
    'alice@example.test': 'ok',
    'erin@example.test': 'disabled',
  };
  const accountLookup = (address: string): Promise<IdentityLookup> => {
    const status = directory[address];
    return Promise.resolve(
      status === undefined
        ? { status: 'unknown' }
        : { status, identity: { principal: parseAddress(address), kind: 'person' } },
    );
  };
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(gs2Krb5Server());
  await registry.registerProvider(
    kerberosProvider({
      service: SERVICE,
      keytab: kdc.keytab,
      realms: [{ realm: REALM }],
      accountLookup,
    }),
  );
  const channel = (remoteAddress: string) => tlsChannel(randomBytes(32), remoteAddress);
  const client = (cache: () => string, service = SERVICE) => ({
    mechanisms: [fromCache(cache, gs2Krb5Client({ service }))],
    channel,
  });
  return {
    registry,
    domain: DOMAIN,
    mechanisms: [{ mechanism: GS2_KRB5, provider: 'kerberos' }],
    providerName: 'kerberos',
    good: client(() => aliceCache),
    wrongSecret: client(() => aliceCache, 'other@localhost'),
    unknownUser: client(() => caches.dave),
    disabledUser: client(() => caches.erin),
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets: ['alice-krb-pw', 'dave-krb-pw', 'erin-krb-pw'],
    close: () => Promise.resolve(),
  };
});

runProviderContract('Kerberos over GS2-KRB5-PLUS (real MIT KDC, tls-exporter bound)', async () => {
  const caches = {
    dave: await kdc.kinit('dave', 'dave-krb-pw'),
    erin: await kdc.kinit('erin', 'erin-krb-pw'),
  };
  const directory: Record<string, 'ok' | 'disabled'> = {
    'alice@example.test': 'ok',
    'erin@example.test': 'disabled',
  };
  const accountLookup = (address: string): Promise<IdentityLookup> => {
    const status = directory[address];
    return Promise.resolve(
      status === undefined
        ? { status: 'unknown' }
        : { status, identity: { principal: parseAddress(address), kind: 'person' } },
    );
  };
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(gs2Krb5Server({ plus: true }));
  await registry.registerProvider(
    kerberosProvider({
      service: SERVICE,
      keytab: kdc.keytab,
      realms: [{ realm: REALM }],
      accountLookup,
    }),
  );
  const channel = (remoteAddress: string) => tlsChannel(randomBytes(32), remoteAddress);
  const client = (cache: () => string, service = SERVICE) => ({
    mechanisms: [fromCache(cache, gs2Krb5Client({ service, plus: true }))],
    channel,
  });
  return {
    registry,
    domain: DOMAIN,
    mechanisms: [{ mechanism: GS2_KRB5_PLUS, provider: 'kerberos' }],
    providerName: 'kerberos',
    good: client(() => aliceCache),
    wrongSecret: client(() => aliceCache, 'other@localhost'),
    unknownUser: client(() => caches.dave),
    disabledUser: client(() => caches.erin),
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets: ['alice-krb-pw', 'dave-krb-pw', 'erin-krb-pw'],
    close: () => Promise.resolve(),
  };
});
