/**
 * The offline queue: order, acknowledgement, idempotent enqueue, quotas (count and bytes),
 * group commit (one transaction per batch, a failing operation rejected alone), and a
 * fast-check model test against a plain in-memory model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../../src/crypto/index.js';
import { isImppError, type ImppErrorCode } from '../../../src/errors.js';
import type { QueuedKind } from '../../../src/service/store/index.js';
import {
  addDevice,
  freshStore,
  messageId,
  sealedMessage,
  sealedPresence,
  tempDir,
} from './helpers.js';

const dir = tempDir();

async function rejectsWith(promise: Promise<unknown>, code: ImppErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isImppError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

/** A queue entry whose bytes are a well-formed envelope for that device and id. */
function obj(
  recipientDevice: string,
  size = 200,
  id = messageId(),
  kind: 'message' | 'keyDistribution' = 'message',
) {
  const bytes = sealedMessage(recipientDevice, id, size, kind);
  return { id, recipientDevice, kind: kind as QueuedKind, bytes, receivedAt: Date.now() };
}

describe('message queue', () => {
  it('lists pending objects per device in enqueue order and deletes acknowledged ones', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const bobPhone = await addDevice(store, 'bob', 'phone');
    const sent = [obj(bob), obj(bob, 150, messageId(), 'keyDistribution'), obj(bob)];
    const other = obj(bobPhone);
    const outcomes = await Promise.all([...sent, other].map((o) => store.queue.enqueue(o)));
    expect(outcomes.map((o) => o.status)).toEqual(['stored', 'stored', 'stored', 'stored']);
    const pending = await store.queue.pending(bob);
    expect(pending.map((p) => p.id)).toEqual(sent.map((s) => s.id));
    expect(pending.map((p) => p.bytes)).toEqual(sent.map((s) => s.bytes));
    expect(pending.map((p) => p.kind)).toEqual(['message', 'keyDistribution', 'message']);
    expect(pending.every((p) => p.recipientDevice === bob)).toBe(true);
    expect(pending.map((p) => p.seq)).toEqual([...pending.map((p) => p.seq)].sort((a, b) => a - b));
    expect(await store.queue.usage(bob)).toEqual({
      count: 3,
      bytes: sent.reduce((n, s) => n + s.bytes.length, 0),
    });
    // Paging with a resume cursor.
    const first = await store.queue.pending(bob, { limit: 1 });
    expect(first.map((p) => p.id)).toEqual([sent[0]!.id]);
    const rest = await store.queue.pending(bob, { after: first[0]!.seq });
    expect(rest.map((p) => p.id)).toEqual([sent[1]!.id, sent[2]!.id]);
    // Acknowledge: only this device's objects; unknown ids count zero.
    expect(await store.queue.acknowledge(bob, [sent[0]!.id, other.id, randomBytes(16)])).toBe(1);
    expect(await store.queue.acknowledge(bob, [sent[0]!.id])).toBe(0);
    expect((await store.queue.pending(bob)).map((p) => p.id)).toEqual([sent[1]!.id, sent[2]!.id]);
    expect((await store.queue.pending(bobPhone)).map((p) => p.id)).toEqual([other.id]);
    expect(await store.queue.acknowledge(bob, [])).toBe(0);
    expect(await store.queue.acknowledge(bob, [sent[1]!.id, sent[2]!.id])).toBe(2);
    expect(await store.queue.usage(bob)).toEqual({ count: 0, bytes: 0 });
    await store.close();
  });

  it('is idempotent by id per device: a retry stores no second copy', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const carol = await addDevice(store, 'carol', 'desk');
    const o = obj(bob);
    const first = await store.queue.enqueue(o);
    const again = await store.queue.enqueue({ ...o, receivedAt: o.receivedAt + 5 });
    // Concurrent retries in one batch as well.
    const burst = await Promise.all([store.queue.enqueue(o), store.queue.enqueue(o)]);
    expect(first.status).toBe('stored');
    expect(again).toEqual({ status: 'duplicate', seq: first.seq });
    expect(burst).toEqual([
      { status: 'duplicate', seq: first.seq },
      { status: 'duplicate', seq: first.seq },
    ]);
    expect(await store.queue.pending(bob)).toHaveLength(1);
    // The same id for another device is another object.
    expect((await store.queue.enqueue(obj(carol, 200, o.id))).status).toBe('stored');
    // Retries with other bytes under the same id do not replace what is stored.
    await store.queue.enqueue({ ...o, bytes: obj(bob, 300, o.id).bytes });
    expect((await store.queue.pending(bob))[0]?.bytes).toEqual(o.bytes);
    await store.close();
  });

  it('enforces the count quota per device, and a retry of a stored id still succeeds', async () => {
    const store = freshStore(dir, { quotas: { queueMaxCount: 3 } });
    const bob = await addDevice(store, 'bob', 'laptop');
    const carol = await addDevice(store, 'carol', 'desk');
    const objects = [obj(bob), obj(bob), obj(bob)];
    for (const o of objects) await store.queue.enqueue(o);
    await rejectsWith(store.queue.enqueue(obj(bob)), 'ERR_QUOTA_EXCEEDED');
    expect((await store.queue.enqueue(objects[1]!)).status).toBe('duplicate');
    // Other devices are not affected; an ack frees room.
    expect((await store.queue.enqueue(obj(carol))).status).toBe('stored');
    await store.queue.acknowledge(bob, [objects[0]!.id]);
    expect((await store.queue.enqueue(obj(bob))).status).toBe('stored');
    await rejectsWith(store.queue.enqueue(obj(bob)), 'ERR_QUOTA_EXCEEDED');
    await store.close();
  });

  it('enforces the byte quota per device', async () => {
    const store = freshStore(dir, { quotas: { queueMaxBytes: 1000 } });
    const bob = await addDevice(store, 'bob', 'laptop');
    await store.queue.enqueue(obj(bob, 600));
    await rejectsWith(store.queue.enqueue(obj(bob, 401)), 'ERR_QUOTA_EXCEEDED');
    expect((await store.queue.enqueue(obj(bob, 400))).status).toBe('stored');
    expect(await store.queue.usage(bob)).toEqual({ count: 2, bytes: 1000 });
    await rejectsWith(store.queue.enqueue(obj(bob, 1)), 'ERR_QUOTA_EXCEEDED');
    const fresh = await addDevice(store, 'bob', 'tablet');
    await rejectsWith(store.queue.enqueue(obj(fresh, 1001)), 'ERR_QUOTA_EXCEEDED');
    await store.close();
  });

  it('refuses unknown devices and malformed objects, storing nothing', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    await rejectsWith(store.queue.enqueue(obj('nobody@example.org/x')), 'ERR_NOT_FOUND');
    for (const bad of [
      { ...obj(bob), id: new Uint8Array(0) },
      { ...obj(bob), id: randomBytes(65) },
      { ...obj(bob), bytes: new Uint8Array(0) },
      { ...obj(bob), bytes: new Uint8Array(256 * 1024 + 1) },
      { ...obj(bob), kind: 'plaintext' as QueuedKind },
      { ...obj(bob), recipientDevice: 'bob@example.org' },
      { ...obj(bob), recipientDevice: 'BOB@example.org/laptop' },
      { ...obj(bob), receivedAt: Number.NaN },
    ]) {
      await rejectsWith(store.queue.enqueue(bad), 'ERR_INVALID_ARGUMENT');
    }
    await rejectsWith(store.queue.pending(bob, { limit: 1_000_000 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(store.queue.acknowledge(bob, [new Uint8Array(0)]), 'ERR_INVALID_ARGUMENT');
    expect(await store.queue.usage(bob)).toEqual({ count: 0, bytes: 0 });
    await store.close();
  });

  it('refuses plaintext and envelopes filed under another device, id or kind', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const carol = await addDevice(store, 'carol', 'desk');
    const id = messageId();
    const base = { id, recipientDevice: bob, kind: 'message' as QueuedKind, receivedAt: 1 };
    const text = new TextEncoder().encode('From: <im:alice@example.org>\r\n\r\nhello bob');
    await rejectsWith(store.queue.enqueue({ ...base, bytes: text }), 'ERR_SEAL_MALFORMED');
    await rejectsWith(
      store.queue.enqueue({ ...base, bytes: new Uint8Array(300).fill(0x41) }),
      'ERR_SEAL_MALFORMED',
    );
    await rejectsWith(
      store.queue.enqueue({ ...base, bytes: sealedMessage(carol, id) }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.queue.enqueue({ ...base, bytes: sealedMessage(bob, messageId()) }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.queue.enqueue({ ...base, bytes: sealedMessage(bob, id, 200, 'keyDistribution') }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.queue.enqueue({ ...base, bytes: sealedPresence('alice@example.org', 1) }),
      'ERR_INVALID_ARGUMENT',
    );
    // A tampered version byte: refused as unsupported, never read as something else.
    const tampered = sealedMessage(bob, id);
    tampered[2] = 2;
    await rejectsWith(store.queue.enqueue({ ...base, bytes: tampered }), 'ERR_SEAL_UNSUPPORTED');
    // A presence update may be queued for a device as is.
    expect(
      (
        await store.queue.enqueue({
          ...base,
          kind: 'presence',
          bytes: sealedPresence('alice@example.org', 3),
        })
      ).status,
    ).toBe('stored');
    expect(await store.queue.usage(bob)).toMatchObject({ count: 1 });
    await store.close();
  });

  it('groups concurrent enqueues into few commits and rejects a failing one alone', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const before = { ...store.batchStats };
    const good = Array.from({ length: 200 }, () => obj(bob));
    const results = await Promise.allSettled([
      ...good.slice(0, 100).map((o) => store.queue.enqueue(o)),
      store.queue.enqueue(obj('ghost@example.org/x')),
      ...good.slice(100).map((o) => store.queue.enqueue(o)),
    ]);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect((await store.queue.usage(bob)).count).toBe(200);
    const batches = store.batchStats.batches - before.batches;
    expect(store.batchStats.operations - before.operations).toBe(201);
    expect(batches).toBeLessThanOrEqual(2);
    await store.close();
  });

  it('commits each operation alone when batching is off', async () => {
    const store = freshStore(dir, { batch: { enabled: false } });
    const bob = await addDevice(store, 'bob', 'laptop');
    const before = store.batchStats.batches;
    await Promise.all(Array.from({ length: 10 }, () => store.queue.enqueue(obj(bob))));
    expect(store.batchStats.batches - before).toBe(10);
    await store.close();
  });

  it('resolves an enqueue only once its batch is visible to another connection', async () => {
    const store = freshStore(dir, { batch: { maxDelayMs: 5 } });
    const bob = await addDevice(store, 'bob', 'laptop');
    const o = obj(bob);
    const path = store.db.name;
    const { openSqliteDatabase } = await import('../../../src/service/store/index.js');
    const reader = openSqliteDatabase(path);
    const count = (): number =>
      reader.prepare<[], number>('SELECT count(*) FROM queue').pluck().get() ?? 0;
    const promise = store.queue.enqueue(o);
    expect(count()).toBe(0); // not committed yet: not acknowledged either
    await promise;
    expect(count()).toBe(1);
    reader.close();
    await store.close();
  });

  it('refuses writes after close and flushes what was queued', async () => {
    const store = freshStore(dir, { batch: { maxDelayMs: 50 } });
    const bob = await addDevice(store, 'bob', 'laptop');
    const pending = store.queue.enqueue(obj(bob));
    await store.close();
    expect((await pending).status).toBe('stored');
    await rejectsWith(store.queue.enqueue(obj(bob)), 'ERR_STORAGE');
  });

  it('behaves like a simple model under random enqueue/ack sequences (fast-check)', async () => {
    // Durability is not under test here: NORMAL keeps the many sequential commits fast.
    const store = freshStore(dir, {
      synchronous: 'normal',
      quotas: { queueMaxCount: 8, queueMaxBytes: 4000 },
    });
    const devices = [await addDevice(store, 'm', 'a'), await addDevice(store, 'm', 'b')];
    const ids = Array.from({ length: 12 }, (_, i) => new Uint8Array(16).fill(i + 1));
    const op = fc.oneof(
      fc.record({
        t: fc.constant('enq' as const),
        d: fc.nat(1),
        i: fc.nat(11),
        size: fc.integer({ min: 150, max: 900 }),
      }),
      fc.record({ t: fc.constant('ack' as const), d: fc.nat(1), i: fc.nat(11) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        // Start each run empty.
        for (const d of devices) await store.queue.acknowledge(d, ids);
        const model = devices.map(() => new Map<number, number>()); // id → size, in order
        for (const o of ops) {
          const device = devices[o.d]!;
          const m = model[o.d]!;
          if (o.t === 'ack') {
            const n = await store.queue.acknowledge(device, [ids[o.i]!]);
            expect(n).toBe(m.delete(o.i) ? 1 : 0);
            continue;
          }
          const used = [...m.values()].reduce((a, b) => a + b, 0);
          // The model counts the envelope's real length: the requested payload size plus a CBOR
          // header whose own length depends on it.
          const bytes = sealedMessage(device, ids[o.i]!, o.size);
          const result = await store.queue
            .enqueue({
              id: ids[o.i]!,
              recipientDevice: device,
              kind: 'message',
              bytes,
              receivedAt: 1,
            })
            .then(
              (r) => r.status,
              (e: unknown) => (isImppError(e, 'ERR_QUOTA_EXCEEDED') ? 'quota' : 'other'),
            );
          const expected = m.has(o.i)
            ? 'duplicate'
            : m.size + 1 > 8 || used + bytes.length > 4000
              ? 'quota'
              : 'stored';
          expect(result).toBe(expected);
          if (expected === 'stored') m.set(o.i, bytes.length);
        }
        for (const [k, device] of devices.entries()) {
          const pending = await store.queue.pending(device);
          expect(pending.map((p) => p.id[0]! - 1)).toEqual([...model[k]!.keys()]);
          const usage = await store.queue.usage(device);
          expect(usage.count).toBe(model[k]!.size);
          expect(usage.bytes).toBe([...model[k]!.values()].reduce((a, b) => a + b, 0));
        }
      }),
      { numRuns: 60, endOnFailure: true },
    );
    await store.close();
  });
});
