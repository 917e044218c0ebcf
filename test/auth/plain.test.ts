import { describe, expect, it } from 'vitest';
import { SecretBytes, randomBytes, utf8 } from '../../src/crypto/index.js';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import { authenticate } from '../../src/auth/client.js';
import {
  PLAIN_METADATA,
  parsePlainMessage,
  plainClient,
  plainServer,
} from '../../src/auth/plain.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy } from '../../src/auth/policy.js';
import { localProvider } from '../../src/auth/providers/local.js';
import { SqliteLocalAccountRepository } from '../../src/auth/providers/local-store.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { Authenticator } from '../../src/auth/server.js';
import { AuthError, type CredentialProvider, type PasswordVerdict } from '../../src/auth/types.js';
import { DOMAIN, PLAINTEXT_CHANNEL, SessionTransport, tlsChannel } from './helpers.js';
import { runProviderContract } from './provider-contract.js';

/**
 * A cleartext-verifying provider over a fixed table, standing in for a directory. `delayMs`
 * simulates the directory round-trip of a bind for known users only (the realistic worst case
 * for timing: unknown users are answered after the search alone).
 */
function tableProvider(
  users: Record<string, { password: string; disabled?: boolean }>,
  delayMs = 0,
): { provider: CredentialProvider; calls: string[] } {
  const calls: string[] = [];
  const provider: CredentialProvider = {
    name: 'table',
    kind: 'test',
    capabilities: ['verify-password'],
    async verifyPassword(username, password): Promise<PasswordVerdict> {
      calls.push(username);
      const u = users[username];
      if (u === undefined) return { status: 'unknown' };
      await new Promise((r) => setTimeout(r, delayMs));
      const identity = { principal: { user: username, domain: DOMAIN }, kind: 'person' as const };
      if (u.password !== password) return { status: 'bad-password' };
      return u.disabled === true ? { status: 'disabled', identity } : { status: 'ok', identity };
    },
  };
  return { provider, calls };
}

async function plainEnv(provider: CredentialProvider, minFailureMs = 0) {
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(plainServer());
  await registry.registerProvider(() => provider);
  const audit = new MemoryAuditSink();
  const policy = makeAuthPolicy(DOMAIN, [{ mechanism: 'PLAIN', provider: provider.name }], {
    limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs },
  });
  return { registry, audit, authenticator: new Authenticator(registry, policy, { audit }) };
}

runProviderContract('table provider over PLAIN (stands in for a directory)', async () => {
  const { provider } = tableProvider({
    alice: { password: 'alice-plain-pw' },
    dave: { password: 'dave-plain-pw', disabled: true },
  });
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(plainServer());
  await registry.registerProvider(() => provider);
  const channel = (remoteAddress: string) => tlsChannel(randomBytes(32), remoteAddress);
  return {
    registry,
    domain: DOMAIN,
    mechanisms: [{ mechanism: 'PLAIN', provider: 'table' }],
    providerName: 'table',
    good: { mechanisms: [plainClient({ username: 'alice', password: 'alice-plain-pw' })], channel },
    wrongSecret: {
      mechanisms: [plainClient({ username: 'alice', password: 'wrong-plain-pw' })],
      channel,
    },
    unknownUser: {
      mechanisms: [plainClient({ username: 'zed', password: 'alice-plain-pw' })],
      channel,
    },
    disabledUser: {
      mechanisms: [plainClient({ username: 'dave', password: 'dave-plain-pw' })],
      channel,
    },
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets: ['alice-plain-pw', 'wrong-plain-pw', 'dave-plain-pw'],
    close: () => Promise.resolve(),
  };
});

describe('PLAIN message parsing (RFC 4616 §2)', () => {
  const nul = (...parts: string[]) => utf8(parts.join('\u0000'));
  it('parses authzid, authcid and password', () => {
    expect(parsePlainMessage(nul('', 'alice', 'pw'))).toEqual({
      authzid: '',
      authcid: 'alice',
      password: 'pw',
    });
    expect(parsePlainMessage(nul('alice', 'alice', 'p w'))).toEqual({
      authzid: 'alice',
      authcid: 'alice',
      password: 'p w',
    });
  });
  const bad: [string, Uint8Array][] = [
    ['one separator', nul('alice', 'pw')],
    ['three separators', nul('', 'alice', 'pw', 'x')],
    ['empty authcid', nul('', '', 'pw')],
    ['field over 255 octets', nul('', 'a'.repeat(256), 'pw')],
    ['invalid UTF-8', Uint8Array.of(0, 0x61, 0, 0xff, 0xfe)],
    ['overall too long', nul('a'.repeat(255), 'b'.repeat(255), 'c'.repeat(255), '')],
  ];
  for (const [label, bytes] of bad) {
    it(`refuses ${label}`, () => {
      expect(() => parsePlainMessage(bytes)).toThrow(AuthError);
    });
  }
});

describe('PLAIN policy', () => {
  it('is never offered outside TLS, and a forced attempt is refused', async () => {
    const { provider, calls } = tableProvider({ alice: { password: 'pw' } });
    const env = await plainEnv(provider);
    const session = env.authenticator.begin(PLAINTEXT_CHANNEL);
    expect(session.offered).toEqual([]);
    expect(await session.start('PLAIN', utf8('\u0000alice\u0000pw'))).toEqual({
      type: 'failure',
      failure: 'invalid-mechanism',
    });
    expect(calls).toEqual([]);
    await expect(
      authenticate(
        new SessionTransport(env.authenticator.begin(PLAINTEXT_CHANNEL)),
        [plainClient({ username: 'alice', password: 'pw' })],
        ['PLAIN'],
        PLAINTEXT_CHANNEL,
      ),
    ).rejects.toMatchObject({ reason: 'mechanism-unavailable' });
  });

  it('cannot be paired with the local provider (it stores verifiers, not passwords)', async () => {
    const registry = new AuthRegistry({
      domain: DOMAIN,
      serverSecret: new SecretBytes(randomBytes(32)),
    });
    registry.registerMechanism(plainServer());
    await registry.registerProvider(
      localProvider({ repository: new SqliteLocalAccountRepository(':memory:') }),
    );
    expect(() =>
      registry.resolve(makeAuthPolicy(DOMAIN, [{ mechanism: 'PLAIN', provider: 'local' }])),
    ).toThrow(expect.objectContaining({ code: 'ERR_AUTH_REGISTRATION' }) as Error);
    expect(() =>
      registry.registerMechanism(() => ({
        metadata: { ...PLAIN_METADATA, name: 'PLAIN2', needsSecureChannel: false },
        create: () => {
          throw new Error('unused');
        },
      })),
    ).toThrow(expect.objectContaining({ code: 'ERR_AUTH_REGISTRATION' }) as Error);
    await registry.close();
  });

  it('refuses an empty password before calling the provider, and a foreign authzid', async () => {
    const { provider, calls } = tableProvider({ alice: { password: 'pw' } });
    const env = await plainEnv(provider);
    const empty = await env.authenticator
      .begin(tlsChannel())
      .start('PLAIN', utf8('\u0000alice\u0000'));
    expect(empty).toEqual({ type: 'failure', failure: 'not-authorized' });
    const foreign = await env.authenticator
      .begin(tlsChannel())
      .start('PLAIN', utf8('bob\u0000alice\u0000pw'));
    expect(foreign).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(calls).toEqual([]);
    expect(env.audit.events.map((e) => e.reason)).toEqual(['bad-credential', 'authzid-refused']);
    const same = await env.authenticator
      .begin(tlsChannel())
      .start('PLAIN', utf8('alice\u0000alice\u0000pw'));
    expect(same.type).toBe('success');
  });

  it('the minimum failure time hides the directory round-trip (measured)', async () => {
    const { provider } = tableProvider({ alice: { password: 'pw' } }, 40);
    const env = await plainEnv(provider, 120);
    const time = async (msg: string): Promise<number> => {
      const t0 = performance.now();
      const out = await env.authenticator
        .begin(tlsChannel(randomBytes(32), `192.0.2.${msg.length}`))
        .start('PLAIN', utf8(msg));
      expect(out).toEqual({ type: 'failure', failure: 'not-authorized' });
      return performance.now() - t0;
    };
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 3; i++) {
      unknown.push(await time('\u0000zed\u0000pw'));
      wrong.push(await time('\u0000alice\u0000bad'));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
    console.log(
      `PLAIN failure timing: unknown median ${median(unknown).toFixed(1)} ms, wrong password median ${median(wrong).toFixed(1)} ms`,
    );
    for (const t of [...unknown, ...wrong]) expect(t).toBeGreaterThanOrEqual(115);
    expect(Math.abs(median(unknown) - median(wrong))).toBeLessThan(30);
  });
});
