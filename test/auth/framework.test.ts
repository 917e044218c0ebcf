import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SecretBytes, randomBytes, utf8 } from '../../src/crypto/index.js';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import { selectMechanism } from '../../src/auth/client.js';
import { plainServer } from '../../src/auth/plain.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy, wireFailureFor } from '../../src/auth/policy.js';
import { AuthRegistry, checkMechanismMetadata, checkProvider } from '../../src/auth/registry.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { Authenticator } from '../../src/auth/server.js';
import type {
  CredentialProvider,
  MechanismMetadata,
  ServerMechanismFactory,
} from '../../src/auth/types.js';
import { DOMAIN, PLAINTEXT_CHANNEL, localEnv, tlsChannel } from './helpers.js';

const base: MechanismMetadata = {
  name: 'X-TEST',
  needsSecureChannel: false,
  channelBinding: 'none',
  needsCleartextPassword: false,
  providerCapability: 'scram-sha-256',
};

describe('registry metadata checks', () => {
  const bad: [string, Partial<MechanismMetadata>][] = [
    ['lower-case name', { name: 'plain' }],
    ['name too long', { name: 'A'.repeat(21) }],
    [
      'cleartext without TLS',
      { needsCleartextPassword: true, providerCapability: 'verify-password' },
    ],
    [
      'cleartext with a non-password capability',
      { needsCleartextPassword: true, needsSecureChannel: true },
    ],
    ['verify-password without cleartext', { providerCapability: 'verify-password' }],
    ['binding without TLS', { name: 'X-PLUS', channelBinding: 'tls-exporter' }],
    ['-PLUS name without binding', { name: 'X-PLUS', needsSecureChannel: true }],
    ['binding without -PLUS name', { channelBinding: 'tls-exporter', needsSecureChannel: true }],
  ];
  for (const [label, patch] of bad) {
    it(`refuses: ${label}`, () => {
      expect(() => {
        checkMechanismMetadata({ ...base, ...patch });
      }).toThrow(expect.objectContaining({ code: 'ERR_AUTH_REGISTRATION' }) as Error);
    });
  }

  it('refuses providers whose capabilities do not match their methods, and duplicates', async () => {
    const p = (over: Partial<CredentialProvider>): CredentialProvider => ({
      name: 'p',
      kind: 'k',
      capabilities: [],
      ...over,
    });
    expect(() => {
      checkProvider(p({ capabilities: ['verify-password'] }));
    }).toThrow(/declared without/);
    expect(() => {
      checkProvider(
        p({
          capabilities: ['scram-sha-256'],
          getScramCredential: () => Promise.resolve({ status: 'unknown' }),
          verifyPassword: () => Promise.resolve({ status: 'unknown' }),
        }),
      );
    }).toThrow(/missing for/);
    expect(() => {
      checkProvider(p({}));
    }).toThrow(/no capability/);
    const registry = new AuthRegistry({
      domain: DOMAIN,
      serverSecret: new SecretBytes(randomBytes(32)),
    });
    registry.registerMechanism(plainServer());
    expect(() => registry.registerMechanism(plainServer())).toThrow(/twice/);
    const ok = p({
      capabilities: ['verify-password'],
      verifyPassword: () => Promise.resolve({ status: 'unknown' }),
    });
    await registry.registerProvider(() => ok);
    await expect(registry.registerProvider(() => ok)).rejects.toThrow(/twice/);
    expect(
      () => new AuthRegistry({ domain: DOMAIN, serverSecret: new SecretBytes(randomBytes(16)) }),
    ).toThrow(/32 bytes/);
  });

  it('policy names only registered mechanisms and providers; order comes from policy', async () => {
    const env = await localEnv({
      mechanisms: [
        { mechanism: 'SCRAM-SHA-256', provider: 'local' },
        { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
      ],
    });
    expect(env.authenticator.offer(tlsChannel())).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS']);
    expect(env.authenticator.offer(PLAINTEXT_CHANNEL)).toEqual(['SCRAM-SHA-256']);
    expect(() =>
      env.registry.resolve(makeAuthPolicy(DOMAIN, [{ mechanism: 'GSSAPI', provider: 'local' }])),
    ).toThrow(/unregistered mechanism/);
    expect(() =>
      env.registry.resolve(
        makeAuthPolicy(DOMAIN, [{ mechanism: 'SCRAM-SHA-256', provider: 'ldap' }]),
      ),
    ).toThrow(/unregistered provider/);
    expect(() => makeAuthPolicy(DOMAIN, [])).toThrow();
    expect(() =>
      makeAuthPolicy(DOMAIN, [
        { mechanism: 'A', provider: 'b' },
        { mechanism: 'A', provider: 'c' },
      ]),
    ).toThrow(/twice/);
    await env.close();
  });
});

describe('client mechanism selection', () => {
  const factories = scramClient({ username: 'a', password: 'b' });
  it('prefers -PLUS when offered and possible, in the client order not the server order', () => {
    expect(
      selectMechanism(factories, ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'], tlsChannel()).factory
        .metadata.name,
    ).toBe('SCRAM-SHA-256-PLUS');
    expect(
      selectMechanism(factories, ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'], { secure: true }).factory
        .metadata.name,
    ).toBe('SCRAM-SHA-256');
  });
  it('flags a stripped list on a binding channel, and refuses it when binding is required', () => {
    expect(selectMechanism(factories, ['SCRAM-SHA-256'], tlsChannel()).downgradeSuspected).toBe(
      true,
    );
    expect(() =>
      selectMechanism(factories, ['SCRAM-SHA-256'], tlsChannel(), { requireChannelBinding: true }),
    ).toThrow(expect.objectContaining({ code: 'ERR_AUTH_DOWNGRADE' }) as Error);
    expect(() => selectMechanism(factories, ['DIGEST-MD5'], tlsChannel())).toThrow(
      expect.objectContaining({ code: 'ERR_AUTH_MECHANISM_UNAVAILABLE' }) as Error,
    );
  });
});

describe('authentication session limits', () => {
  it('every credential-dependent reason has the same wire answer', () => {
    const reasons = [
      'unknown-user',
      'bad-credential',
      'disabled',
      'channel-binding-mismatch',
      'downgrade',
      'replay',
      'authzid-refused',
    ] as const;
    expect(new Set(reasons.map(wireFailureFor))).toEqual(new Set(['not-authorized']));
  });

  it('a session is single-use, counts steps, and aborts are audited', async () => {
    const env = await localEnv();
    const s = env.authenticator.begin(tlsChannel());
    expect(await s.respond(utf8('x'))).toEqual({ type: 'failure', failure: 'aborted' });
    expect(await s.start('SCRAM-SHA-256', null)).toEqual({ type: 'failure', failure: 'aborted' });
    const s2 = env.authenticator.begin(tlsChannel());
    expect((await s2.start('SCRAM-SHA-256', null)).type).toBe('challenge');
    await s2.abort();
    expect(await s2.respond(utf8('n,,n=a,r=abcdefghij'))).toEqual({
      type: 'failure',
      failure: 'aborted',
    });
    expect(env.audit.events.map((e) => e.reason)).toEqual(['aborted', 'aborted']);
    await env.close();
  });

  it('a hanging provider is cut off by the exchange time-out', async () => {
    const registry = new AuthRegistry({
      domain: DOMAIN,
      serverSecret: new SecretBytes(randomBytes(32)),
    });
    registry.registerMechanism(plainServer());
    await registry.registerProvider(() => ({
      name: 'slow',
      kind: 'test',
      capabilities: ['verify-password'],
      verifyPassword: () => new Promise(() => undefined),
    }));
    const audit = new MemoryAuditSink();
    const policy = makeAuthPolicy(DOMAIN, [{ mechanism: 'PLAIN', provider: 'slow' }], {
      limits: { ...DEFAULT_EXCHANGE_LIMITS, timeoutMs: 100, minFailureMs: 0 },
    });
    const auth = new Authenticator(registry, policy, { audit });
    const out = await auth.begin(tlsChannel()).start('PLAIN', utf8('\u0000a\u0000b'));
    expect(out).toEqual({ type: 'failure', failure: 'aborted' });
    expect(audit.events[0]?.reason).toBe('aborted');
  });

  it('a provider returning a principal of another domain is refused', async () => {
    const registry = new AuthRegistry({
      domain: DOMAIN,
      serverSecret: new SecretBytes(randomBytes(32)),
    });
    registry.registerMechanism(plainServer());
    await registry.registerProvider(() => ({
      name: 'rogue',
      kind: 'test',
      capabilities: ['verify-password'],
      verifyPassword: () =>
        Promise.resolve({
          status: 'ok',
          identity: { principal: { user: 'a', domain: 'evil.example' }, kind: 'person' },
        }),
    }));
    const audit = new MemoryAuditSink();
    const auth = new Authenticator(
      registry,
      makeAuthPolicy(DOMAIN, [{ mechanism: 'PLAIN', provider: 'rogue' }]),
      { audit },
    );
    const out = await auth.begin(tlsChannel()).start('PLAIN', utf8('\u0000a\u0000b'));
    expect(out).toEqual({ type: 'failure', failure: 'temporary-auth-failure' });
    expect(audit.events[0]?.reason).toBe('internal');
  });

  it('unused factory fields are not needed for the checks', () => {
    const f: ServerMechanismFactory = {
      metadata: base,
      create: () => ({ name: 'X-TEST', step: () => Promise.reject(new Error('x')) }),
    };
    expect(() => {
      checkMechanismMetadata(f.metadata);
    }).not.toThrow();
  });
});

describe('authentication session under random message sequences (property)', () => {
  it('never throws, ends in at most one audit event, and never succeeds without the password', async () => {
    const env = await localEnv({
      rateLimit: { sourceBurst: 1e9, accountBurst: 1e9, globalPerSecond: 1e9 },
    });
    env.accounts.create('alice', 'pencil');
    const piece = fc.oneof(
      fc.constantFrom(
        'n,,',
        'y,,',
        'p=tls-exporter,,',
        'n=alice',
        'r=abcdefghijkl',
        'c=biws',
        'p=',
        's=',
        'i=4096',
        ',',
        '=2C',
        'a=alice,',
      ),
      fc.string({ maxLength: 12 }),
      fc.base64String({ maxLength: 48 }),
    );
    const message = fc.array(piece, { maxLength: 8 }).map((parts) => utf8(parts.join('')));
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('start' as const),
        mech: fc.constantFrom('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'PLAIN', 'X'),
        data: fc.option(message),
      }),
      fc.record({ kind: fc.constant('respond' as const), data: message }),
      fc.record({ kind: fc.constant('abort' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 5 }), async (steps) => {
        const before = env.audit.events.length;
        const session = env.authenticator.begin(tlsChannel());
        let ended = false;
        for (const s of steps) {
          if (s.kind === 'abort') {
            await session.abort();
            ended = true;
            continue;
          }
          const out =
            s.kind === 'start'
              ? await session.start(s.mech, s.data)
              : await session.respond(s.data);
          expect(out.type).not.toBe('success');
          if (out.type === 'failure') ended = true;
        }
        const events = env.audit.events.length - before;
        expect(events).toBeLessThanOrEqual(1);
        if (ended) expect(events).toBe(1);
      }),
      { numRuns: 300 },
    );
    await env.close();
  });
});
