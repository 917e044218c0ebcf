/**
 * Quotas of the service (docs/security-model.md T25), end to end over real TLS: each quota is
 * answered with a clear ERROR (`ERR_QUOTA_EXCEEDED`, `ERR_RATE_LIMITED` for the per-session
 * request rate), the flooding connection stays usable, and other sessions carry on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImppClient, ReceivedMessage } from '../../src/client/client.js';
import { generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import { ClientFrame, PROTOCOL_LIMITS } from '../../src/service/protocol.js';
import { type Env, next, startEnv } from './harness.js';

let env: Env;
let alice: ImppClient;
let bob: ImppClient;
let dave: ImppClient;
/**
 * A small bucket: a flood of 3 × burst is refused in part however slowly the machine serves it
 * (it would have to take 2 s for the refill to cover it), so the test does not depend on speed.
 */
const COSTLY = { rate: 20, burst: 20 };

beforeAll(async () => {
  env = await startEnv({
    quotas: { queueMaxCount: 5, subscriptionsPerWatcher: 2, oneTimePrekeysMax: 60 },
    costlyRequests: COSTLY,
  });
  alice = env.client('alice', 'laptop');
  bob = env.client('bob', 'phone');
  dave = env.client('dave', 'tablet');
  const carol = env.client('carol', 'desk');
  for (const c of [alice, bob, carol, dave]) await c.connect();
  await carol.close(); // offline from here on: its queue fills
});
afterAll(async () => {
  await env.close();
});

describe('quotas (T25)', () => {
  it('a full offline queue answers ERR_QUOTA_EXCEEDED; the sender and others carry on', async () => {
    for (let i = 0; i < 5; i++) await bob.sendMessage('carol@example.org', `queued ${i}`);
    await expect(bob.sendMessage('carol@example.org', 'one too many')).rejects.toMatchObject({
      code: 'ERR_QUOTA_EXCEEDED',
    });
    expect((await env.store.queue.usage('carol@example.org/desk')).count).toBe(5);
    // The same connection is still usable, and so is everyone else's.
    const atDave = next<ReceivedMessage>(dave, 'message');
    await bob.sendMessage('dave@example.org', 'bob is still connected');
    expect((await atDave).text).toBe('bob is still connected');
    const atBob = next<ReceivedMessage>(bob, 'message');
    await alice.sendMessage('bob@example.org', 'and alice was never affected');
    expect((await atBob).text).toBe('and alice was never affected');
    // Once the owner drains its queue, the sender gets through again.
    const carol = env.client('carol', 'desk');
    const got: string[] = [];
    carol.on('message', (m) => got.push(m.text));
    await carol.connect();
    for (let i = 0; i < 100 && got.length < 5; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual(['queued 0', 'queued 1', 'queued 2', 'queued 3', 'queued 4']);
    for (let i = 0; i < 100; i++) {
      if ((await env.store.queue.usage('carol@example.org/desk')).count === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const later = next<ReceivedMessage>(carol, 'message');
    await bob.sendMessage('carol@example.org', 'room again');
    expect((await later).text).toBe('room again');
  });

  it('too many active subscriptions answer ERR_QUOTA_EXCEEDED until one ends', async () => {
    expect(await dave.subscribe('alice@example.org')).toBe('pending');
    expect(await dave.subscribe('bob@example.org')).toBe('pending');
    await expect(dave.subscribe('carol@example.org')).rejects.toMatchObject({
      code: 'ERR_QUOTA_EXCEEDED',
    });
    expect(await dave.unsubscribe('bob@example.org')).toBe('none');
    expect(await dave.subscribe('carol@example.org')).toBe('pending');
    // Others are not limited by dave's count.
    expect(await bob.subscribe('carol@example.org')).toBe('pending');
  });

  it('one-time prekeys over the quota are refused whole', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => ({
      id: 1_000_000 + i,
      publicKey: randomBytes(32),
    }));
    await expect(
      alice.rawRequest(ClientFrame.ADD_PREKEYS, { oneTimePrekeys: keys }),
    ).rejects.toMatchObject({ code: 'ERR_QUOTA_EXCEEDED' });
    const status = await alice.rawRequest(ClientFrame.ADD_PREKEYS, {});
    expect(status.count).toBeLessThanOrEqual(60);
  });

  it('an account with the most devices allowed cannot register another', async () => {
    // Filled directly in the store: 64 TLS logins would only make the test slow.
    const existing = (await env.store.devices.list('carol@example.org')).length;
    for (let i = existing; i < PROTOCOL_LIMITS.maxDevicesPerAccount; i++) {
      await env.store.devices.register({
        address: 'carol@example.org',
        deviceId: `filler${i}`,
        identityKey: generateSigningKeyPair().publicKey,
        enrolment: Uint8Array.from([1]),
        createdAt: Date.now(),
      });
    }
    const extra = env.client('carol', 'one-too-many');
    await expect(extra.connect()).rejects.toMatchObject({ code: 'ERR_QUOTA_EXCEEDED' });
    expect(await env.store.devices.get('carol@example.org', 'one-too-many')).toBeUndefined();
    // Nobody else is affected.
    const atBob = next<ReceivedMessage>(bob, 'message');
    await alice.sendMessage('bob@example.org', 'business as usual');
    expect((await atBob).text).toBe('business as usual');
  });

  it('a flood of bundle requests is rate limited per session; the session and others carry on', async () => {
    const flood = 3 * COSTLY.burst; // well under the transport's frame burst
    const results = await Promise.allSettled(
      Array.from({ length: flood }, () =>
        dave.rawRequest(ClientFrame.GET_BUNDLES, { address: 'bob@example.org' }),
      ),
    );
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    expect(results.length - refused.length).toBeGreaterThanOrEqual(COSTLY.burst);
    for (const r of refused) {
      expect(r.reason).toMatchObject({ code: 'ERR_RATE_LIMITED' });
    }
    // Cheap requests on the same connection still work, and another session is not limited.
    expect(await dave.subscriptions()).toBeDefined();
    const other = await alice.rawRequest(ClientFrame.GET_BUNDLES, { address: 'bob@example.org' });
    expect(Array.isArray(other.bundles)).toBe(true);
    // The limit is a rate, not a ban: after a few refill periods dave's costly requests work again.
    await new Promise((r) => setTimeout(r, (3 * 1000) / COSTLY.rate));
    const atAlice = next<ReceivedMessage>(alice, 'message');
    await dave.sendMessage('alice@example.org', 'dave is still connected');
    expect((await atAlice).text).toBe('dave is still connected');
  });
});
