/**
 * The federation tables of the SQLite store (real SQLite files): the per-peer outbound queue
 * (order, window, ACK deletion, bounds, expiry, retry state, restart) and the store-backed
 * duplicate filter (the InboundDedup contract, restart, age bound, atomic delivery).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreDedup } from '../../src/federation/index.js';
import { type SqliteServiceStore, openSqliteServiceStore } from '../../src/service/store/index.js';
import { dedupContract } from './dedup-contract.js';
import { newId } from './helpers.js';

const dirs: string[] = [];
const stores: SqliteServiceStore[] = [];

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'impp-fedstore-'));
  dirs.push(dir);
  return join(dir, 'store.db');
}

function open(path: string, extra: Parameters<typeof openSqliteServiceStore>[0] = { path }) {
  const store = openSqliteServiceStore({ ...extra, path });
  stores.push(store);
  return store;
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function entry(peer: string, sender: string, at = 1000, body = new Uint8Array([1, 2, 3])) {
  return { peer, sender, id: newId(), kind: 1, body, enqueuedAt: at };
}

describe('federation outbound queue (SQLite)', () => {
  it('keeps entries per peer in enqueue order, peeks a window, deletes on ACK', async () => {
    const store = open(tempPath());
    const q = store.federationQueue;
    const toB = [entry('b.example', 'alice@a.example/1'), entry('b.example', 'bob@a.example/1')];
    const toC = entry('c.example', 'alice@a.example/1');
    for (const e of [toB[0], toC, toB[1]]) {
      expect((await q.enqueue(e!)).status).toBe('stored');
    }
    const b = await q.peek('b.example');
    expect(b.map((e) => e.sender)).toEqual(['alice@a.example/1', 'bob@a.example/1']);
    expect(b[0]?.body).toEqual(new Uint8Array([1, 2, 3]));
    expect(b[0]?.attempts).toBe(0);
    // A window after a cursor.
    const rest = await q.peek('b.example', { after: b[0]!.seq, limit: 1 });
    expect(rest.map((e) => e.seq)).toEqual([b[1]!.seq]);
    expect(await q.peers()).toEqual(['b.example', 'c.example']);
    expect(await q.remove('b.example', [toB[0]!.id, toC.id])).toBe(1); // toC is not b's
    expect((await q.peek('b.example')).map((e) => e.seq)).toEqual([b[1]!.seq]);
    expect(await q.usage('b.example')).toEqual({ count: 1, bytes: 3 });
  });

  it('treats a repeated id as an idempotent retry', async () => {
    const q = open(tempPath()).federationQueue;
    const e = entry('b.example', 's');
    const first = await q.enqueue(e);
    expect(await q.enqueue(e)).toEqual({ status: 'duplicate', seq: first.seq });
    expect((await q.usage('b.example')).count).toBe(1);
  });

  it('bounds each peer queue with ERR_QUOTA_EXCEEDED, counting and bytes', async () => {
    const path = tempPath();
    const q = open(path, { path, federationQuotas: { maxCount: 2, maxBytes: 10 } }).federationQueue;
    const a = entry('b.example', 's');
    await q.enqueue(a);
    await q.enqueue(entry('b.example', 's'));
    await expect(q.enqueue(entry('b.example', 's'))).rejects.toMatchObject({
      code: 'ERR_QUOTA_EXCEEDED',
      message: expect.stringContaining('b.example') as string,
    });
    // A retry of a queued object still succeeds; another peer has its own bound.
    expect((await q.enqueue(a)).status).toBe('duplicate');
    await q.enqueue(entry('c.example', 's'));
    await expect(q.enqueue(entry('d.example', 's', 1, new Uint8Array(11)))).rejects.toMatchObject({
      code: 'ERR_QUOTA_EXCEEDED',
    });
  });

  it('refuses malformed entries', async () => {
    const q = open(tempPath()).federationQueue;
    await expect(
      q.enqueue({ ...entry('b.example', 's'), id: new Uint8Array(15) }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(q.enqueue({ ...entry('b.example', 's'), kind: 70_000 })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    await expect(q.enqueue({ ...entry('', 's') })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('lists expired entries oldest first without removing them', async () => {
    const q = open(tempPath()).federationQueue;
    const old1 = entry('b.example', 's', 100);
    const fresh = entry('b.example', 's', 5000);
    const old2 = entry('c.example', 's', 50);
    for (const e of [old1, fresh, old2]) await q.enqueue(e);
    const all = await q.expired(1000);
    expect(all.map((e) => e.enqueuedAt)).toEqual([50, 100]);
    expect((await q.expired(1000, { peer: 'b.example' })).map((e) => e.peer)).toEqual([
      'b.example',
    ]);
    expect((await q.usage('b.example')).count).toBe(2);
  });

  it('keeps entries, attempts and peer retry state across a restart', async () => {
    const path = tempPath();
    const first = open(path);
    const e = entry('b.example', 's');
    await first.federationQueue.enqueue(e);
    await first.federationQueue.noteAttempt('b.example', [e.id]);
    await first.federationQueue.setPeerState('b.example', {
      attempts: 3,
      nextAttemptAt: 12345,
      lastError: 'ERR_CONNECTION_CLOSED',
    });
    await first.close();
    const again = open(path);
    const [kept] = await again.federationQueue.peek('b.example');
    expect(kept?.id).toEqual(e.id);
    expect(kept?.attempts).toBe(1);
    expect(await again.federationQueue.peerState('b.example')).toEqual({
      attempts: 3,
      nextAttemptAt: 12345,
      lastError: 'ERR_CONNECTION_CLOSED',
    });
    expect(await again.federationQueue.peerState('x.example')).toEqual({
      attempts: 0,
      nextAttemptAt: 0,
      lastError: null,
    });
  });
});

dedupContract('StoreDedup', () => new StoreDedup(open(tempPath()).federationSeen));

describe('StoreDedup', () => {
  it('remembers confirmed ids across a restart, not unconfirmed claims', async () => {
    const path = tempPath();
    const first = open(path);
    const dedup = new StoreDedup(first.federationSeen);
    const delivered = newId();
    const inFlight = newId();
    expect(await dedup.claim('a.example', delivered)).toBe(true);
    await dedup.confirm('a.example', delivered);
    expect(await dedup.claim('a.example', inFlight)).toBe(true);
    await first.close();
    const again = new StoreDedup(open(path).federationSeen);
    expect(await again.claim('a.example', delivered)).toBe(false);
    // Claimed but never delivered before the "crash": the peer's retry must be delivered.
    expect(await again.claim('a.example', inFlight)).toBe(true);
  });

  it('forgets ids older than its age bound', async () => {
    let now = 1_000_000;
    const store = open(tempPath());
    const dedup = new StoreDedup(store.federationSeen, { maxAgeMs: 1000, clock: () => now });
    const old = newId();
    await dedup.claim('a.example', old);
    await dedup.confirm('a.example', old);
    now += 500;
    const recent = newId();
    await dedup.claim('a.example', recent);
    await dedup.confirm('a.example', recent);
    now += 600;
    expect(await dedup.prune()).toBe(1);
    expect(await store.federationSeen.count()).toBe(1);
    expect(await dedup.claim('a.example', recent)).toBe(false);
  });

  it('commits an atomic delivery and its id together, or neither', async () => {
    const store = open(tempPath());
    store.db.exec('CREATE TABLE app (id BLOB PRIMARY KEY)');
    const insert = store.db.prepare<[Buffer]>('INSERT INTO app (id) VALUES (?)');
    const dedup = new StoreDedup(store.federationSeen);
    const deliver = dedup.atomicDeliver((o) => {
      if (o.body === 'fail') throw new Error('application refused');
      insert.run(Buffer.from(o.id));
    });
    const ok = newId();
    const bad = newId();
    expect(await dedup.claim('a.example', ok)).toBe(true);
    await deliver({ arrivedFrom: 'a.example', id: ok, kind: 1, body: 'x' });
    await dedup.confirm('a.example', ok);
    expect(await dedup.claim('a.example', bad)).toBe(true);
    await expect(
      deliver({ arrivedFrom: 'a.example', id: bad, kind: 1, body: 'fail' }),
    ).rejects.toThrow();
    await dedup.release('a.example', bad);
    expect(await store.federationSeen.has('a.example', ok)).toBe(true);
    expect(await store.federationSeen.has('a.example', bad)).toBe(false);
    expect(store.db.prepare('SELECT count(*) AS n FROM app').get()).toEqual({ n: 1 });
    expect(await dedup.claim('a.example', bad)).toBe(true);
  });
});
