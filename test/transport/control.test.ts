/**
 * Control-frame parsing, version negotiation (no downgrade), limits validation, the token
 * bucket and source grouping for the per-address cap.
 */
import { describe, expect, test } from 'vitest';
import { ImppError, isImppError } from '../../src/errors.js';
import { Admission, sourceKey } from '../../src/transport/admission.js';
import {
  negotiateVersion,
  parseClose,
  parseHello,
  parseLimits,
  parseWelcome,
} from '../../src/transport/control.js';
import { DEFAULT_LIMITS, resolveLimits } from '../../src/transport/limits.js';
import { TokenBucket } from '../../src/transport/rate-limit.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isImppError(e) ? e.code : 'not an ImppError';
  }
  return undefined;
}

describe('version negotiation', () => {
  test('picks the highest common version', () => {
    expect(negotiateVersion([1, 2, 3], [1, 2], 1)).toBe(2);
    expect(negotiateVersion([3, 1], [1, 2, 3], 1)).toBe(3);
  });
  test('never goes below the minimum: refuses instead', () => {
    expect(code(() => negotiateVersion([1], [1, 2], 2))).toBe('ERR_VERSION_UNSUPPORTED');
    expect(code(() => negotiateVersion([4, 5], [1, 2], 1))).toBe('ERR_VERSION_UNSUPPORTED');
  });
});

describe('control bodies', () => {
  test('HELLO', () => {
    expect(parseHello({ versions: [1], maxFrameBytes: 4096, future: 'ignored' })).toEqual({
      versions: [1],
      maxFrameBytes: 4096,
    });
    for (const bad of [
      null,
      [1],
      { versions: [], maxFrameBytes: 4096 },
      { versions: [0], maxFrameBytes: 4096 },
      { versions: Array(17).fill(1), maxFrameBytes: 4096 },
      { versions: [1], maxFrameBytes: 10 },
      { versions: [1], maxFrameBytes: 2 ** 30 },
      { versions: [1] },
    ]) {
      expect(
        code(() => parseHello(bad as never)),
        JSON.stringify(bad),
      ).toBe('ERR_PROTOCOL');
    }
  });

  test('WELCOME requires every limit and a ping interval below the idle time-out', () => {
    const ok = {
      version: 1,
      maxFrameBytes: 4096,
      authMaxFrameBytes: 65_536,
      preAuthTimeoutMs: 1,
      pingIntervalMs: 10,
      idleTimeoutMs: 20,
      frameRate: 1,
      frameBurst: 1,
    };
    expect(parseWelcome(ok)).toEqual(ok);
    expect(code(() => parseWelcome({ ...ok, pingIntervalMs: 20 }))).toBe('ERR_PROTOCOL');
    expect(code(() => parseWelcome({ ...ok, frameRate: -1 }))).toBe('ERR_PROTOCOL');
    expect(code(() => parseLimits({ maxFrameBytes: 1 }))).toBe('ERR_PROTOCOL');
  });

  test('CLOSE is parsed leniently', () => {
    expect(parseClose({ code: 'ERR_TIMEOUT', message: 'idle' })).toEqual({
      code: 'ERR_TIMEOUT',
      message: 'idle',
    });
    expect(parseClose({ message: 'bye' })).toEqual({ code: null, message: 'bye' });
    expect(parseClose({ code: 'ERR_MADE_UP', message: 'x' }).code).toBe('ERR_PROTOCOL');
    expect(parseClose('garbage').code).toBe('ERR_PROTOCOL');
    expect(parseClose({ code: 'ERR_TIMEOUT', message: 'x'.repeat(1000) }).message).toHaveLength(
      200,
    );
  });
});

describe('limits', () => {
  test('defaults are consistent', () => {
    expect(resolveLimits()).toEqual(DEFAULT_LIMITS);
  });
  test.each([
    [{ maxFrameBytes: 0 }],
    [{ preAuthMaxFrameBytes: 512 }],
    [{ preAuthMaxFrameBytes: 2 ** 20, maxFrameBytes: 2 ** 19, maxOutboundBytes: 2 ** 21 }],
    [{ pingIntervalMs: 10, idleTimeoutMs: 10 }],
    [{ maxOutboundBytes: 1024 }],
    [{ maxFrameBytes: 2 ** 25 }],
    [{ idleTimeoutMs: 1.5 }],
  ])('refuses %j', (overrides) => {
    expect(code(() => resolveLimits(overrides))).toBe('ERR_CONFIG_INVALID');
  });
});

describe('token bucket', () => {
  test('allows the burst, then the rate', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 5, () => now);
    for (let i = 0; i < 5; i++) expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    now += 100; // one token at 10/s
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    now += 10_000; // refills only up to the burst
    for (let i = 0; i < 5; i++) expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
  });
});

describe('admission', () => {
  test('source keys group IPv6 by /64 and unmap IPv4', () => {
    expect(sourceKey('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(sourceKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceKey(undefined)).toBe('unknown');
  });

  test('per-source and global caps, release and authentication free slots', () => {
    const admission = new Admission({
      maxConnections: 3,
      maxPreAuthPerIp: 2,
      preAuthTimeoutMs: 60_000,
    });
    const noop = (): void => undefined;
    const a = admission.admit('10.0.0.1', noop);
    const b = admission.admit('10.0.0.1', noop);
    const c = admission.admit('10.0.0.1', noop);
    expect(isImppError(c, 'ERR_CONNECTION_LIMIT')).toBe(true);
    if (a instanceof ImppError || b instanceof ImppError) throw new Error('unexpected refusal');
    a.markAuthenticated();
    const d = admission.admit('10.0.0.1', noop);
    expect(isImppError(d)).toBe(false);
    expect(isImppError(admission.admit('10.0.0.2', noop), 'ERR_CONNECTION_LIMIT')).toBe(true); // global
    b.release();
    b.release(); // idempotent
    expect(admission.stats).toEqual({ connections: 2, unauthenticated: 1, sources: 1 });
  });

  test('the deadline fires for unauthenticated tickets only', async () => {
    const admission = new Admission({
      maxConnections: 10,
      maxPreAuthPerIp: 10,
      preAuthTimeoutMs: 20,
    });
    let fired = 0;
    const t1 = admission.admit('10.0.0.1', () => fired++);
    const t2 = admission.admit('10.0.0.1', () => fired++);
    if (t1 instanceof ImppError || t2 instanceof ImppError) throw new Error('unexpected refusal');
    t2.markAuthenticated();
    await new Promise<void>((resolve) => {
      t1.onDeadline(() => {
        fired++;
        resolve();
      });
    });
    expect(fired).toBe(1);
  });
});
