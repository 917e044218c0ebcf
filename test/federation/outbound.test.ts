/**
 * The outbound driver over real TLS links on loopback and a real SQLite queue: order per sender,
 * deletion on ACK, back-off with full jitter while the peer is down, bounces of expired and
 * refused objects, restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ImppError } from '../../src/errors.js';
import {
  FederationOutbound,
  type FederationOutboundOptions,
  type OutboundBounce,
  backoffDelay,
  secureRandom,
} from '../../src/federation/index.js';
import { type SqliteServiceStore, openSqliteServiceStore } from '../../src/service/store/index.js';
import {
  type RunningEndpoint,
  type TestDomain,
  makeDomain,
  newId,
  route,
  startEndpoint,
  until,
} from './helpers.js';

let a: TestDomain;
let b: TestDomain;
const running: RunningEndpoint[] = [];
const drivers: FederationOutbound[] = [];
const stores: SqliteServiceStore[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
});

afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close();
  await Promise.all(running.splice(0).map((r) => r.endpoint.close()));
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function storePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'impp-fedout-'));
  dirs.push(dir);
  return join(dir, 'store.db');
}

function openStore(path = storePath()): SqliteServiceStore {
  const s = openSqliteServiceStore({ path });
  stores.push(s);
  return s;
}

async function startA(): Promise<RunningEndpoint> {
  const A = await startEndpoint(a, [
    { domain: 'b.example', proof: 'key', publicKey: b.key.publicKey },
  ]);
  running.push(A);
  return A;
}

async function startB(options: Parameters<typeof startEndpoint>[2] = {}): Promise<RunningEndpoint> {
  const B = await startEndpoint(
    b,
    [{ domain: 'a.example', proof: 'key', publicKey: a.key.publicKey }],
    options,
  );
  running.push(B);
  return B;
}

function driver(
  A: RunningEndpoint,
  store: SqliteServiceStore,
  extra: Partial<FederationOutboundOptions> = {},
): { out: FederationOutbound; bounces: OutboundBounce[] } {
  const bounces: OutboundBounce[] = [];
  const out = new FederationOutbound({
    endpoint: A.endpoint,
    queue: store.federationQueue,
    bounce: (list) => {
      bounces.push(...list);
    },
    retry: { baseMs: 20, maxMs: 100 },
    ...extra,
  });
  drivers.push(out);
  return { out, bounces };
}

function body(sender: number, n: number): Uint8Array {
  return Uint8Array.from([sender, n >> 8, n & 0xff]);
}

/** Queues objects 0..count-1 of sender u0 for b.example, one after the other. */
async function enqueueFromU0(out: FederationOutbound, count: number): Promise<void> {
  for (let n = 0; n < count; n++) {
    await out.enqueue({
      peer: 'b.example',
      sender: 'u0@a.example/1',
      id: newId(),
      kind: 1,
      body: body(0, n),
    });
  }
}

/** Per sender, the object numbers in the order B delivered them. */
function bySender(B: RunningEndpoint): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const o of B.delivered) {
    const bytes = o.body as Uint8Array;
    const s = bytes[0] ?? 0;
    m.set(s, [...(m.get(s) ?? []), ((bytes[1] ?? 0) << 8) | (bytes[2] ?? 0)]);
  }
  return m;
}

describe('backoffDelay (full jitter)', () => {
  it('draws from [0, min(max, base·2^(n-1))]', () => {
    const policy = { baseMs: 100, maxMs: 1000 };
    expect(backoffDelay(1, policy, () => 0)).toBe(0);
    expect(backoffDelay(1, policy, () => 0.5)).toBe(50);
    expect(backoffDelay(3, policy, () => 0.5)).toBe(200);
    // Capped, and never the cap itself even for a random of 1.
    expect(backoffDelay(30, policy, () => 0.5)).toBe(500);
    expect(backoffDelay(30, policy, () => 1)).toBeLessThan(1000);
    expect(backoffDelay(1e9, policy, () => 0.999)).toBeLessThanOrEqual(1000);
  });

  it('uses a CSPRNG uniform in [0, 1) by default', () => {
    const xs = Array.from({ length: 1000 }, secureRandom);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(new Set(xs).size).toBe(1000);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });
});

describe('FederationOutbound', () => {
  it('sends every object once, in order per sender, and deletes it on ACK', async () => {
    const [A, B] = await Promise.all([startA(), startB()]);
    route(A, 'b.example', B);
    const store = openStore();
    const { out } = driver(A, store);
    let acked = 0;
    out.on('delivered', (_peer, n) => (acked += n));
    const perSender = 200;
    const jobs: Promise<unknown>[] = [];
    for (let n = 0; n < perSender; n++) {
      for (let s = 0; s < 3; s++) {
        jobs.push(
          out.enqueue({
            peer: 'B.Example',
            sender: `u${s}@a.example/1`,
            id: newId(),
            kind: 1,
            body: body(s, n),
          }),
        );
      }
    }
    await Promise.all(jobs);
    await until(() => acked === 3 * perSender, 10_000);
    expect(B.delivered).toHaveLength(3 * perSender);
    for (const [, ns] of bySender(B)) expect(ns).toEqual([...Array(perSender).keys()]);
    expect(B.delivered.every((o) => o.arrivedFrom === 'a.example')).toBe(true);
    expect((await store.federationQueue.usage('b.example')).count).toBe(0);
    await until(() => out.activePeers.length === 0);
  });

  it('keeps order and loses nothing when the link is cut mid-stream', async () => {
    const [A, B] = await Promise.all([startA(), startB()]);
    route(A, 'b.example', B);
    const store = openStore();
    const { out } = driver(A, store);
    let cut = false;
    out.on('delivered', () => {
      if (!cut && B.delivered.length > 100) {
        cut = true;
        // The peer drops the connection with frames in flight.
        A.endpoint.linkTo('b.example')?.close('ERR_TIMEOUT', 'test cut');
      }
    });
    await enqueueFromU0(out, 600);
    await until(() => out.activePeers.length === 0 && B.delivered.length >= 600, 10_000);
    expect(cut).toBe(true);
    // The in-memory filter of B drops what arrived twice; order survives the resend.
    expect(bySender(B).get(0)).toEqual([...Array(600).keys()]);
    expect((await store.federationQueue.usage('b.example')).count).toBe(0);
  });

  it('retries with back-off while the peer is down, then drains when it is back', async () => {
    const A = await startA();
    // Nothing listens there yet.
    A.routes.set('b.example', [{ host: '127.0.0.1', port: 1 }]);
    const store = openStore();
    const randoms: number[] = [];
    const { out } = driver(A, store, {
      random: () => {
        randoms.push(0.5);
        return 0.5;
      },
    });
    const retries: { attempts: number; delayMs: number; code: string }[] = [];
    out.on('retry', (_peer, info) => retries.push(info));
    await enqueueFromU0(out, 50);
    await until(() => retries.length >= 4, 5000);
    expect(retries.slice(0, 4).map((r) => r.attempts)).toEqual([1, 2, 3, 4]);
    // Full jitter with random 0.5: half the cap, the cap doubling from 20 ms up to 100 ms.
    expect(retries.slice(0, 4).map((r) => r.delayMs)).toEqual([10, 20, 40, 50]);
    expect(retries[0]?.code).toBe('ERR_CONNECTION_CLOSED');
    const state = await store.federationQueue.peerState('b.example');
    expect(state.attempts).toBeGreaterThanOrEqual(4);
    expect(state.lastError).toBe('ERR_CONNECTION_CLOSED');
    const B = await startB();
    route(A, 'b.example', B);
    await until(() => B.delivered.length === 50, 5000);
    expect(bySender(B).get(0)).toEqual([...Array(50).keys()]);
    await until(() => out.activePeers.length === 0);
    expect((await store.federationQueue.peerState('b.example')).attempts).toBe(0);
  });

  it('keeps the back-off at its first step while a throttling peer takes objects', async () => {
    // B takes ten objects, then refuses one with ERR_RATE_LIMITED (transient), and so on: every
    // round moves objects, so the drain goes on at B's pace instead of backing off further.
    let taken = 0;
    const B = await startB({
      // One object in flight at a time: each refusal ends its round, so rounds are countable.
      limits: { window: 1 },
      deliver: () => {
        if (taken === 10) {
          taken = 0;
          throw new ImppError('ERR_RATE_LIMITED', 'slow down');
        }
        taken += 1;
      },
    });
    const A = await startA();
    route(A, 'b.example', B);
    const store = openStore();
    const { out } = driver(A, store, { random: () => 0.5 });
    const retries: { attempts: number; delayMs: number; code: string }[] = [];
    out.on('retry', (_peer, info) => retries.push(info));
    await enqueueFromU0(out, 100);
    await until(() => out.activePeers.length === 0, 10_000);
    expect(retries.length).toBe(9); // objects 11, 22, … 99 of the deliveries are refused once
    expect(new Set(retries.map((r) => r.code))).toEqual(new Set(['ERR_RATE_LIMITED']));
    expect(retries.every((r) => r.attempts === 1)).toBe(true);
    const numbers = bySender(B).get(0) ?? [];
    expect(numbers.length).toBe(100);
    expect(new Set(numbers).size).toBe(100);
  });

  it('bounces objects queued past expireAfterMs while the peer stays down', async () => {
    const A = await startA();
    A.routes.set('b.example', [{ host: '127.0.0.1', port: 1 }]);
    const store = openStore();
    let now = 1_000_000;
    const { out, bounces } = driver(A, store, {
      clock: () => now,
      expireAfterMs: 60_000,
      sweepIntervalMs: 20,
    });
    const old = newId();
    await out.enqueue({
      peer: 'b.example',
      sender: 'u0@a.example/1',
      id: old,
      kind: 7,
      body: body(0, 0),
    });
    now += 30_000;
    const young = newId();
    await out.enqueue({
      peer: 'b.example',
      sender: 'u1@a.example/1',
      id: young,
      kind: 1,
      body: body(1, 0),
    });
    now += 31_000;
    await until(() => bounces.length === 1, 5000);
    expect(bounces[0]).toMatchObject({
      peer: 'b.example',
      sender: 'u0@a.example/1',
      kind: 7,
      enqueuedAt: 1_000_000,
      reason: 'expired',
      code: 'ERR_TIMEOUT',
    });
    expect(bounces[0]?.id).toEqual(old);
    expect((await store.federationQueue.peek('b.example')).map((e) => e.id)).toEqual([young]);
  });

  it('offers a bounce again when the bounce callback fails', async () => {
    const A = await startA();
    A.routes.set('b.example', [{ host: '127.0.0.1', port: 1 }]);
    const store = openStore();
    let now = 1_000_000;
    let fail = true;
    const got: OutboundBounce[] = [];
    const { out } = driver(A, store, {
      clock: () => now,
      expireAfterMs: 1000,
      sweepIntervalMs: 20,
      bounce: (list) => {
        if (fail) throw new Error('router down');
        got.push(...list);
      },
    });
    await out.enqueue({ peer: 'b.example', sender: 's', id: newId(), kind: 1, body: body(0, 0) });
    now += 2000;
    await new Promise((r) => setTimeout(r, 150));
    expect((await store.federationQueue.usage('b.example')).count).toBe(1);
    fail = false;
    await until(() => got.length === 1, 5000);
    // The entry is removed only after the callback has returned: wait for that commit.
    await until(async () => (await store.federationQueue.usage('b.example')).count === 0, 5000);
    expect(got.length).toBe(1);
  });

  it('bounces an object the peer refuses for good and retries one it could not store', async () => {
    const refused = newId();
    const flaky = newId();
    let flakyFailures = 0;
    const [A, B] = await Promise.all([
      startA(),
      startB({
        deliver: (o) => {
          if (Buffer.from(o.id).equals(Buffer.from(refused))) {
            throw new ImppError('ERR_NOT_FOUND', 'no such recipient');
          }
          if (Buffer.from(o.id).equals(Buffer.from(flaky)) && flakyFailures++ === 0) {
            throw new ImppError('ERR_STORAGE', 'disk hiccup');
          }
        },
      }),
    ]);
    route(A, 'b.example', B);
    const store = openStore();
    const { out, bounces } = driver(A, store);
    const retried: string[] = [];
    out.on('retry', (_p, info) => retried.push(info.code));
    await out.enqueue({ peer: 'b.example', sender: 's1', id: refused, kind: 1, body: body(1, 0) });
    await out.enqueue({ peer: 'b.example', sender: 's2', id: flaky, kind: 1, body: body(2, 0) });
    await out.enqueue({ peer: 'b.example', sender: 's2', id: newId(), kind: 1, body: body(2, 1) });
    await until(() => out.activePeers.length === 0 && B.delivered.length === 2, 5000);
    expect(bounces).toHaveLength(1);
    expect(bounces[0]).toMatchObject({ sender: 's1', reason: 'refused', code: 'ERR_NOT_FOUND' });
    expect(retried).toContain('ERR_STORAGE');
    expect((await store.federationQueue.usage('b.example')).count).toBe(0);
  });

  it('surfaces a full peer queue to the caller', async () => {
    const A = await startA();
    A.routes.set('b.example', [{ host: '127.0.0.1', port: 1 }]);
    const path = storePath();
    const store = openSqliteServiceStore({ path, federationQuotas: { maxCount: 3 } });
    stores.push(store);
    const { out } = driver(A, store);
    for (let n = 0; n < 3; n++) {
      await out.enqueue({ peer: 'b.example', sender: 's', id: newId(), kind: 1, body: body(0, n) });
    }
    await expect(
      out.enqueue({ peer: 'b.example', sender: 's', id: newId(), kind: 1, body: body(0, 3) }),
    ).rejects.toMatchObject({ code: 'ERR_QUOTA_EXCEEDED' });
  });

  it('resumes a queue left by a previous process after start()', async () => {
    const path = storePath();
    const first = openSqliteServiceStore({ path });
    for (let n = 0; n < 20; n++) {
      await first.federationQueue.enqueue({
        peer: 'b.example',
        sender: 's',
        id: newId(),
        kind: 1,
        body: body(0, n),
        enqueuedAt: Date.now(),
      });
    }
    await first.close();
    const [A, B] = await Promise.all([startA(), startB()]);
    route(A, 'b.example', B);
    const { out } = driver(A, openStore(path));
    await out.start();
    await until(() => B.delivered.length === 20, 5000);
    expect(bySender(B).get(0)).toEqual([...Array(20).keys()]);
  });
});

describe('pipelined delivery at the receiver (LinkLimits.deliverPipeline)', () => {
  async function run(pipeline: number): Promise<{ order: number[]; maxRunning: number }> {
    const order: number[] = [];
    let runningNow = 0;
    let maxRunning = 0;
    const B = await startB({
      limits: { deliverPipeline: pipeline },
      deliver: async (o) => {
        const n = ((o.body as Uint8Array)[1] ?? 0) * 256 + ((o.body as Uint8Array)[2] ?? 0);
        order.push(n);
        runningNow += 1;
        maxRunning = Math.max(maxRunning, runningNow);
        // Later objects finish first: completion order differs from call order.
        await new Promise((r) => setTimeout(r, (n % 5) * 3));
        runningNow -= 1;
      },
    });
    const A = await startA();
    route(A, 'b.example', B);
    const { out } = driver(A, openStore());
    for (let n = 0; n < 60; n++) {
      await out.enqueue({ peer: 'b.example', sender: 's', id: newId(), kind: 1, body: body(0, n) });
    }
    await until(() => B.delivered.length === 60 && out.activePeers.length === 0, 5000);
    return { order, maxRunning };
  }

  it('calls deliver in sequence order, several at once', async () => {
    const { order, maxRunning } = await run(8);
    expect(order).toEqual([...Array(60).keys()]);
    expect(maxRunning).toBeGreaterThan(1);
    expect(maxRunning).toBeLessThanOrEqual(8);
  });

  it('delivers one at a time by default', async () => {
    const { order, maxRunning } = await run(1);
    expect(order).toEqual([...Array(60).keys()]);
    expect(maxRunning).toBe(1);
  });
});
