/**
 * Per-peer limits of the receiving router (issue 7, item 6) between real endpoints on loopback
 * with real SQLite stores: the DATA rate limit trips, is audited once, holds until the bucket
 * has refilled to half, and recovers; the sending domain's driver takes it as transient and
 * delivers everything, in order, without a bounce; the cheaper look-up limit; and a peer denied
 * by a configuration reload while its link stays open.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FederationKind, PeerRateLimiter } from '../../src/federation/index.js';
import { sealedMessage } from '../service/store/envelopes.js';
import { type TestDomain, makeDomain, newId, trustFor, until } from './helpers.js';
import {
  BOB,
  Harness,
  RawLink,
  addDevice,
  codeOf,
  eventually,
  link,
  pendingOf,
  send,
} from './router-harness.js';
import { randomBytes, toHex } from '../../src/crypto/index.js';

let a: TestDomain;
let b: TestDomain;

beforeAll(async () => {
  [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
});

const harness = new Harness((d) =>
  d === a
    ? [{ domain: 'b.example', proof: 'key', publicKey: b.key.publicKey }]
    : [{ domain: 'a.example', proof: 'key', publicKey: a.key.publicKey }],
);

afterEach(() => harness.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PeerRateLimiter', () => {
  it('refuses past the burst, reopens after enough silence, and keeps peers apart', () => {
    let now = 0;
    const limiter = new PeerRateLimiter({ rate: 10, burst: 4 }, { quiet: true }, () => now);
    expect([1, 2, 3, 4, 5, 6].map(() => limiter.take('b'))).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
      'tripped',
      'refused',
    ]);
    expect(limiter.take('c')).toBe('ok');
    now += 100; // one token's worth of silence: not half the burst
    expect(limiter.take('b')).toBe('refused');
    now += 100; // that refusal restarted the wait: still one token's worth
    expect(limiter.take('b')).toBe('refused');
    now += 200; // two tokens' worth of silence
    expect(limiter.take('b')).toBe('ok');
    expect(limiter.take('b')).toBe('ok');
    expect(limiter.take('b')).toBe('tripped');
    now += 10_000; // refills to the burst, no further
    expect([1, 2, 3, 4, 5].map(() => limiter.take('b'))).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
      'tripped',
    ]);
    expect(() => new PeerRateLimiter({ rate: 0, burst: 1 })).toThrow();
  });

  it('without quiet, refills whatever the peer does: slowed, not shut out', () => {
    let now = 0;
    const limiter = new PeerRateLimiter({ rate: 10, burst: 2 }, {}, () => now);
    expect([1, 2, 3, 4].map(() => limiter.take('b'))).toEqual(['ok', 'ok', 'tripped', 'refused']);
    now += 100;
    expect(limiter.take('b')).toBe('ok');
    expect(limiter.take('b')).toBe('tripped');
    now += 50;
    expect(limiter.take('b')).toBe('refused');
    now += 50;
    expect(limiter.take('b')).toBe('ok');
  });
});

describe('per-peer rate limits', () => {
  it('trips, is audited once, holds while the peer keeps sending, and recovers', async () => {
    // The router's clock, moved by hand: the bucket sees exactly the time the test says.
    let now = 1_700_000_000_000;
    const B = await harness.start(b, {
      router: { peerRate: { rate: 5, burst: 10 }, clock: () => now },
    });
    await addDevice(B.store, BOB);
    const raw = new RawLink(await harness.raw(a, B), 'a.example');
    const message = () => sealedMessage(BOB, newId());
    const answers = [];
    for (let i = 0; i < 14; i++) answers.push(await raw.data(FederationKind.sealed, message()));
    expect(answers).toEqual([
      ...Array<string>(10).fill('ACK'),
      ...Array<string>(4).fill('ERR_RATE_LIMITED'),
    ]);
    expect(B.audit).toEqual([expect.objectContaining({ type: 'federation.rate-limited' })]);
    expect(await B.store.audit.list({ kind: 'federation.rate-limited' })).toHaveLength(1);
    // Closed until the peer was silent long enough to refill half the burst (1 s here); a frame
    // sent before that restarts the wait.
    now += 700;
    expect(await raw.data(FederationKind.sealed, message())).toBe('ERR_RATE_LIMITED');
    now += 700;
    expect(await raw.data(FederationKind.sealed, message())).toBe('ERR_RATE_LIMITED');
    now += 1000;
    expect(await raw.data(FederationKind.sealed, message())).toBe('ACK');
    expect(await pendingOf(B, BOB)).toHaveLength(11);
    expect(B.audit).toHaveLength(1);
    // Look-ups and their answers count too: every kind is DATA.
    for (let i = 0; i < 4; i++) await raw.data(FederationKind.sealed, message());
    expect(await raw.data(FederationKind.lookup, randomBytes(8))).toBe('ERR_RATE_LIMITED');
  });

  it("is transient for the sender's driver: everything arrives, in order, nothing bounces", async () => {
    // b.example's clock stands still while a.example backs off and resends a refused window;
    // after each refused round it moves on by enough silence to open the bucket again.
    let now = 1_700_000_000_000;
    const [A, B] = await Promise.all([
      harness.start(a, { outbound: { retry: { baseMs: 50, maxMs: 200 } } }),
      harness.start(b, { router: { peerRate: { rate: 1, burst: 16 }, clock: () => now } }),
    ]);
    await addDevice(B.store, BOB);
    // Queued while b.example cannot be reached, then sent as one window once it can.
    const objects: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) objects.push((await send(A, BOB)).object);
    let refusedRounds = 0;
    A.outbound.on('retry', (_peer, info) => {
      if (info.code !== 'ERR_RATE_LIMITED') return;
      refusedRounds += 1;
      now += 60_000;
    });
    link(A, B);
    await A.outbound.peerUp('b.example');
    await eventually(
      async () => (await A.store.federationQueue.usage('b.example')).count === 0,
      8000,
    );
    expect(await pendingOf(B, BOB)).toEqual(objects.map(toHex));
    expect(A.bounces).toEqual([]);
    // 16 + 16 + 8: two windows were cut short by the limit and resent.
    expect(refusedRounds).toBe(2);
  });

  it('limits look-ups apart from other traffic, and recovers', async () => {
    const [A, B] = await Promise.all([
      harness.start(a),
      harness.start(b, { router: { lookupRate: { rate: 4, burst: 3 } } }),
    ]);
    link(A, B);
    await addDevice(B.store, BOB);
    const ask = () => codeOf(A.router.bundles('bob@b.example', 'alice@a.example'));
    const results = [await ask(), await ask(), await ask(), await ask()];
    expect(results).toEqual([
      { resolved: [] },
      { resolved: [] },
      { resolved: [] },
      'ERR_RATE_LIMITED',
    ]);
    expect(B.local.lookups).toHaveLength(3);
    // Messages are not held up by the look-up limit.
    await send(A, BOB);
    await until(() => B.local.notified.length === 1);
    await sleep(500);
    expect(await ask()).toEqual({ resolved: [] });
  });
});

describe('a peer denied by a configuration reload while its link is open', () => {
  it('is refused for every kind, and our own side stops asking it', async () => {
    const [A, B] = await Promise.all([harness.start(a), harness.start(b)]);
    link(A, B);
    link(B, A);
    await addDevice(B.store, BOB);
    await A.router.devices('bob@b.example', 'alice@a.example');
    const open = A.endpoint.linkTo('b.example');
    expect(open?.isOpen).toBe(true);
    B.reloaded.trust = trustFor('b.example', [{ domain: 'a.example', proof: 'deny' }]);
    expect(await codeOf(A.router.devices('bob@b.example', 'alice@a.example'))).toBe(
      'ERR_DOMAIN_NOT_SERVED',
    );
    await A.router.subscription({
      presentity: 'bob@b.example',
      watcher: 'alice@a.example',
      action: 'request',
    });
    await send(A, BOB);
    await until(() => A.bounces.length === 2);
    expect(A.bounces.map((x) => x.code)).toEqual(['ERR_NOT_AUTHORIZED', 'ERR_NOT_AUTHORIZED']);
    expect(B.local.subscriptions).toEqual([]);
    expect(await pendingOf(B, BOB)).toEqual([]);
    expect(new Set(B.audit.map((e) => e.type))).toEqual(new Set(['federation.peer-refused']));
    // The same link, still open: the refusal is per delivery, not only at link open.
    expect(A.endpoint.linkTo('b.example')).toBe(open);
    // b.example's own router no longer asks a.example anything.
    expect(await codeOf(B.router.devices('alice@a.example', 'bob@b.example'))).toBe(
      'ERR_DOMAIN_NOT_SERVED',
    );
  });
});
