import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/crypto/index.js';
import { authenticate } from '../../src/auth/client.js';
import { DEFAULT_RATE_LIMIT, RateLimiter } from '../../src/auth/rate-limit.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { AuthError, type RateLimitPolicy } from '../../src/auth/types.js';
import { SessionTransport, localEnv, tlsChannel } from './helpers.js';

const policy: RateLimitPolicy = {
  accountBurst: 2,
  sourceBurst: 3,
  baseDelayMs: 100,
  maxDelayMs: 1000,
  forgetAfterMs: 10_000,
  globalPerSecond: 5,
};

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const limited = (f: () => void): boolean => {
  try {
    f();
    return false;
  } catch (e) {
    if (e instanceof AuthError && e.reason === 'rate-limited') return true;
    throw e;
  }
};

describe('RateLimiter', () => {
  it('lets the burst through, then backs off exponentially up to the cap', () => {
    const c = clock();
    const rl = new RateLimiter({ ...policy, globalPerSecond: 1e6 }, c.now);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      rl.recordFailure('alice', undefined);
      let waited = 0;
      while (
        limited(() => {
          rl.checkAccount('alice', undefined);
        }) &&
        waited < 5000
      ) {
        c.advance(10);
        waited += 10;
      }
      delays.push(waited);
    }
    expect(delays).toEqual([0, 0, 100, 200, 400, 800, 1000, 1000]);
  });

  it('forgets after the quiet period (a penalty is never permanent)', () => {
    const c = clock();
    const rl = new RateLimiter(policy, c.now);
    for (let i = 0; i < 20; i++) rl.recordFailure('bob', '192.0.2.1');
    expect(
      limited(() => {
        rl.checkAccount('bob', '192.0.2.9');
      }),
    ).toBe(true);
    c.advance(policy.maxDelayMs + 1);
    expect(
      limited(() => {
        rl.checkAccount('bob', '192.0.2.9');
      }),
    ).toBe(false);
    c.advance(policy.forgetAfterMs + 1);
    rl.recordFailure('bob', undefined);
    expect(
      limited(() => {
        rl.checkAccount('bob', '192.0.2.9');
      }),
    ).toBe(false);
  });

  it('a known-good source skips the account penalty but not its own source penalty', () => {
    const c = clock();
    const rl = new RateLimiter({ ...policy, globalPerSecond: 1e6 }, c.now);
    rl.recordSuccess('carol', '10.0.0.1');
    for (let i = 0; i < 10; i++) rl.recordFailure('carol', '203.0.113.66');
    expect(
      limited(() => {
        rl.checkAccount('carol', '203.0.113.66');
      }),
    ).toBe(true);
    expect(
      limited(() => {
        rl.checkAccount('carol', '198.51.100.7');
      }),
    ).toBe(true);
    expect(
      limited(() => {
        rl.checkAccount('carol', '10.0.0.1');
      }),
    ).toBe(false);
    expect(
      limited(() => {
        rl.checkStart('203.0.113.66');
      }),
    ).toBe(true);
    expect(
      limited(() => {
        rl.checkStart('10.0.0.1');
      }),
    ).toBe(false);
  });

  it('global throttle: at most globalPerSecond starts per second, refilling over time', () => {
    const c = clock();
    const rl = new RateLimiter(policy, c.now);
    let ok = 0;
    for (let i = 0; i < 20; i++)
      if (
        !limited(() => {
          rl.checkStart(`192.0.2.${i}`);
        })
      )
        ok++;
    expect(ok).toBe(5);
    c.advance(400);
    ok = 0;
    for (let i = 0; i < 20; i++)
      if (
        !limited(() => {
          rl.checkStart(`192.0.2.${i}`);
        })
      )
        ok++;
    expect(ok).toBe(2);
  });

  it('memory is bounded whatever the number of keys (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 8 }), { maxLength: 300 }), (names) => {
        const rl = new RateLimiter(DEFAULT_RATE_LIMIT, Date.now, 50);
        for (const n of names) rl.recordFailure(n, n);
        for (const n of names) {
          // Never throws anything but the typed rate-limit error.
          limited(() => {
            rl.checkAccount(n, n);
          });
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe('rate limits through the authenticator', () => {
  it('unknown and known accounts are limited alike (the limiter is no enumeration oracle)', async () => {
    const env = await localEnv({
      rateLimit: { accountBurst: 1, sourceBurst: 100, baseDelayMs: 60_000 },
    });
    env.accounts.create('alice', 'pw');
    const answers: string[] = [];
    for (const user of ['alice', 'ghost']) {
      for (let i = 0; i < 3; i++) {
        const ch = tlsChannel(undefined, `192.0.2.${answers.length}`);
        const s = env.authenticator.begin(ch);
        const t = new SessionTransport(s);
        await authenticate(
          t,
          scramClient({ username: user, password: 'wrong' }),
          s.offered,
          ch,
        ).catch(() => undefined);
        answers.push(`${user}:${t.wire.at(-1)?.data ?? ''}`);
      }
    }
    const na = '{"type":"failure","failure":"not-authorized"}';
    const temp = '{"type":"failure","failure":"temporary-auth-failure"}';
    // accountBurst 1: the first failure is free, the second starts the back-off.
    expect(answers.map((a) => a.replace(/^\w+:/, ''))).toEqual([na, na, temp, na, na, temp]);
    await env.close();
  });

  it('a rate-limited exchange never reaches the provider', async () => {
    const env = await localEnv({ rateLimit: { sourceBurst: 0, baseDelayMs: 60_000 } });
    const ch = tlsChannel(undefined, '192.0.2.200');
    const first = await env.authenticator
      .begin(ch)
      .start('SCRAM-SHA-256', utf8('n,,n=alice,r=abcdefghijkl'));
    expect(first.type).toBe('challenge');
    // That exchange is abandoned: record a failure for the source via a malformed message.
    await env.authenticator.begin(ch).start('SCRAM-SHA-256', utf8('garbage'));
    const blocked = await env.authenticator
      .begin(ch)
      .start('SCRAM-SHA-256', utf8('n,,n=alice,r=abcdefghijkl'));
    expect(blocked).toEqual({ type: 'failure', failure: 'temporary-auth-failure' });
    expect(env.audit.events.at(-1)).toMatchObject({
      reason: 'rate-limited',
      claimedIdentity: null,
    });
    await env.close();
  });
});

describe('rate limits cannot be reset by a valid account', () => {
  it("logging into one's own account does not clear the source's back-off", () => {
    const c = clock();
    const rl = new RateLimiter({ ...policy, globalPerSecond: 1e6 }, c.now);
    for (let i = 0; i < 5; i++) rl.recordFailure(`victim${i}`, '203.0.113.9');
    expect(
      limited(() => {
        rl.checkStart('203.0.113.9');
      }),
    ).toBe(true);
    rl.recordSuccess('mallory', '203.0.113.9');
    expect(
      limited(() => {
        rl.checkStart('203.0.113.9');
      }),
    ).toBe(true);
  });
});
