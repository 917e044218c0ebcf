/**
 * The queue's commit notices (MessageQueueRepository.watch), which the server follows to push a
 * just-stored object from memory: only stored objects, only after the WAL sync covering their
 * commit, before the enqueue resolves, and in queue order per device under group commit.
 */
import { describe, expect, it } from 'vitest';
import type { PendingObject, QueuedKind } from '../../../src/service/store/index.js';
import { addDevice, freshStore, messageId, sealedMessage, tempDir } from './helpers.js';

const dir = tempDir();

function obj(recipientDevice: string, id = messageId()) {
  const bytes = sealedMessage(recipientDevice, id, 200);
  return { id, recipientDevice, kind: 'message' as QueuedKind, bytes, receivedAt: Date.now() };
}

describe('queue watch', () => {
  it('reports each stored object once, durable, in seq order per device, before enqueue resolves', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const carol = await addDevice(store, 'carol', 'phone');
    const heard: { object: PendingObject; syncs: number }[] = [];
    const settled = new Set<string>();
    const stop = store.queue.watch({
      stored: (object) => {
        // The enqueue of this object has not resolved yet.
        expect(settled.has(Buffer.from(object.id).toString('hex'))).toBe(false);
        heard.push({ object, syncs: store.syncStats.syncs });
      },
      unsure: () => {
        throw new Error('no storage failure here');
      },
    });
    const syncsBefore = store.syncStats.syncs;
    // Three waves that land in several group commits and WAL syncs, two devices interleaved.
    const objects = [];
    for (let wave = 0; wave < 3; wave++) {
      const batch = Array.from({ length: 40 }, (_, i) => obj(i % 3 === 0 ? carol : bob));
      objects.push(...batch);
      await Promise.all(
        batch.map((o) =>
          store.queue.enqueue(o).then((r) => {
            settled.add(Buffer.from(o.id).toString('hex'));
            return r;
          }),
        ),
      );
    }
    expect(store.batchStats.batches).toBeGreaterThan(1);
    expect(heard).toHaveLength(objects.length);
    for (const { syncs } of heard) expect(syncs).toBeGreaterThan(syncsBefore);
    for (const device of [bob, carol]) {
      const mine = heard.map((h) => h.object).filter((o) => o.recipientDevice === device);
      const pending = await store.queue.pending(device, { limit: 1000 });
      expect(mine.map((o) => o.seq)).toEqual(pending.map((p) => p.seq));
      expect(mine.map((o) => o.id)).toEqual(pending.map((p) => p.id));
      expect(mine.map((o) => o.bytes)).toEqual(pending.map((p) => p.bytes));
    }
    // A retry (duplicate) and a refusal are not stored, so not reported.
    const count = heard.length;
    expect((await store.queue.enqueue(objects[0]!)).status).toBe('duplicate');
    await expect(store.queue.enqueue(obj('nobody@example.org/x'))).rejects.toThrow();
    expect(heard).toHaveLength(count);
    // After stop(), nothing more.
    stop();
    await store.queue.enqueue(obj(bob));
    expect(heard).toHaveLength(count);
    await store.close();
  });

  it('a watcher that throws does not fail the enqueue', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    store.queue.watch({
      stored: () => {
        throw new Error('watcher bug');
      },
      unsure: () => undefined,
    });
    expect((await store.queue.enqueue(obj(bob))).status).toBe('stored');
    expect((await store.queue.usage(bob)).count).toBe(1);
    await store.close();
  });

  it('tells the watchers "unsure" when the store itself fails a write', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const unsure: string[] = [];
    store.queue.watch({ stored: () => undefined, unsure: (d) => unsure.push(d) });
    await store.close();
    await expect(store.queue.enqueue(obj(bob))).rejects.toThrow();
    expect(unsure).toEqual([bob]);
  });
});
