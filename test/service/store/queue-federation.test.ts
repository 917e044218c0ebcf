/**
 * The queue's federation additions (migration 3): the `arrivedFrom` stamp and the `notice` kind,
 * and the migration of a database file written by the previous schema (version 2).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../../src/crypto/index.js';
import { isImppError } from '../../../src/errors.js';
import {
  DELIVERY_NOTICE_VERSION,
  MAX_NOTICE_BYTES,
  encodeDeliveryNotice,
} from '../../../src/protocol/notice.js';
import {
  SERVICE_MIGRATIONS,
  SERVICE_SCHEMA_VERSION,
  migrate,
  openSqliteDatabase,
  openSqliteServiceStore,
  schemaVersion,
  type PendingObject,
} from '../../../src/service/store/index.js';
import { addDevice, freshStore, messageId, sealedMessage, tempDir } from './helpers.js';

const dir = tempDir('impp-queue-fed-');

function notice(): Uint8Array {
  return encodeDeliveryNotice({
    v: DELIVERY_NOTICE_VERSION,
    type: 'delivery-failure',
    messageId: randomBytes(16),
    recipient: 'bob@b.example/phone',
    domain: 'b.example',
    reason: 'expired',
    code: 'ERR_TIMEOUT',
    queuedAt: 1_700_000_000_000,
    at: 1_700_000_100_000,
  });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isImppError(e) ? e.code : 'other';
  }
}

describe('queue: the arrivedFrom stamp and notices', () => {
  it('keeps the stamp of an object from another domain, and null for a local one', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'phone');
    const heard: PendingObject[] = [];
    const stop = store.queue.watch({ stored: (o) => heard.push(o), unsure: () => undefined });
    const [local, remote] = [messageId(), messageId()];
    const base = { recipientDevice: bob, kind: 'message' as const, receivedAt: 1 };
    await store.queue.enqueue({ ...base, id: local, bytes: sealedMessage(bob, local) });
    await store.queue.enqueue({
      ...base,
      id: remote,
      bytes: sealedMessage(bob, remote),
      arrivedFrom: 'a.example',
    });
    stop();
    const pending = await store.queue.pending(bob);
    expect(pending.map((p) => p.arrivedFrom)).toEqual([null, 'a.example']);
    expect(heard.map((p) => p.arrivedFrom)).toEqual([null, 'a.example']);
    await store.close();
  });

  it('stores a notice without an envelope, and refuses anything that is not a small notice', async () => {
    const store = freshStore(dir);
    const alice = await addDevice(store, 'alice', 'phone');
    const id = randomBytes(16);
    const bytes = notice();
    const base = { recipientDevice: alice, kind: 'notice' as const, receivedAt: 1 };
    expect((await store.queue.enqueue({ ...base, id, bytes })).status).toBe('stored');
    expect((await store.queue.enqueue({ ...base, id, bytes })).status).toBe('duplicate');
    const [item] = await store.queue.pending(alice);
    expect(item).toMatchObject({ kind: 'notice', arrivedFrom: null });
    expect(Uint8Array.from(item?.bytes ?? [])).toEqual(Uint8Array.from(bytes));

    const refused = await Promise.all([
      // A sealed message filed as a notice, and noise.
      codeOf(
        store.queue.enqueue({ ...base, id: randomBytes(16), bytes: sealedMessage(alice, id) }),
      ),
      codeOf(store.queue.enqueue({ ...base, id: randomBytes(16), bytes: randomBytes(300) })),
      // Bigger than any notice, whatever it holds.
      codeOf(
        store.queue.enqueue({
          ...base,
          id: randomBytes(16),
          bytes: new Uint8Array(MAX_NOTICE_BYTES + 1),
        }),
      ),
      // A notice is this server's own: it never arrives from a peer.
      codeOf(
        store.queue.enqueue({ ...base, id: randomBytes(16), bytes, arrivedFrom: 'x.example' }),
      ),
      // A stamp must be a canonical domain.
      codeOf(
        store.queue.enqueue({
          recipientDevice: alice,
          kind: 'message',
          receivedAt: 1,
          id,
          bytes: sealedMessage(alice, id),
          arrivedFrom: 'A.Example',
        }),
      ),
      codeOf(
        store.queue.enqueue({
          recipientDevice: alice,
          kind: 'message',
          receivedAt: 1,
          id,
          bytes: sealedMessage(alice, id),
          arrivedFrom: 'not a domain',
        }),
      ),
    ]);
    expect(refused).toEqual(Array<string>(6).fill('ERR_INVALID_ARGUMENT'));
    expect((await store.queue.usage(alice)).count).toBe(1);
    await store.close();
  });
});

describe('migration 3 on an existing version 2 database file', () => {
  it('keeps every queued object, its seq, the usage counts, and never reuses a seq', async () => {
    const path = join(dir, 'v2.db');
    const db = openSqliteDatabase(path);
    expect(migrate(db, SERVICE_MIGRATIONS.slice(0, 2))).toBe(2);
    // Rows as impp with schema 2 wrote them.
    const device = 'bob@example.org/phone';
    db.prepare(
      `INSERT INTO devices (address, device_id, device, identity_key, enrolment, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ).run('bob@example.org', 'phone', device, Buffer.from(randomBytes(32)), Buffer.alloc(10), 1);
    const insert = db.prepare(
      'INSERT INTO queue (device, id, kind, received_at, size, bytes) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const ids = [messageId(), messageId(), messageId()];
    const objects = ids.map((id) => sealedMessage(device, id));
    ids.forEach((id, i) => {
      const bytes = objects[i] as Uint8Array;
      insert.run(device, Buffer.from(id), 1, 10 + i, bytes.length, Buffer.from(bytes));
    });
    // The last one acknowledged: the highest seq handed out (3) is no longer in the table.
    db.prepare('DELETE FROM queue WHERE seq = 3').run();
    db.close();

    const store = openSqliteServiceStore({ path });
    expect(store.schemaVersion).toBe(3);
    expect(SERVICE_SCHEMA_VERSION).toBe(3);
    const pending = await store.queue.pending(device);
    expect(pending.map((p) => [p.seq, p.kind, p.arrivedFrom, p.receivedAt])).toEqual([
      [1, 'message', null, 10],
      [2, 'message', null, 11],
    ]);
    expect(pending.map((p) => p.bytes)).toEqual(objects.slice(0, 2));
    const size = (objects[0]?.length ?? 0) + (objects[1]?.length ?? 0);
    expect(await store.queue.usage(device)).toEqual({ count: 2, bytes: size });

    // New rows: past the old counter, with the new column and kind; usage triggers still run.
    const fresh = messageId();
    const stamped = await store.queue.enqueue({
      id: fresh,
      recipientDevice: device,
      kind: 'message',
      bytes: sealedMessage(device, fresh),
      receivedAt: 20,
      arrivedFrom: 'a.example',
    });
    expect(stamped).toEqual({ status: 'stored', seq: 4 });
    const bounced = await store.queue.enqueue({
      id: randomBytes(16),
      recipientDevice: device,
      kind: 'notice',
      bytes: notice(),
      receivedAt: 21,
    });
    expect(bounced).toEqual({ status: 'stored', seq: 5 });
    expect((await store.queue.usage(device)).count).toBe(4);
    expect(await store.queue.acknowledge(device, [ids[0] as Uint8Array, fresh])).toBe(2);
    expect((await store.queue.usage(device)).count).toBe(2);
    // Revocation still removes the device's objects (the rebuilt table kept its foreign key).
    expect(await store.devices.revoke('bob@example.org', 'phone', 30)).toBe(true);
    expect(await store.queue.pending(device)).toEqual([]);
    const indexes = store.db
      .prepare<[], { name: string }>(
        "SELECT name FROM sqlite_master WHERE tbl_name = 'queue' AND type IN ('index', 'trigger') ORDER BY name",
      )
      .all()
      .map((r) => r.name);
    expect(indexes).toEqual(
      expect.arrayContaining(['queue_by_device', 'queue_usage_delete', 'queue_usage_insert']),
    );
    expect(schemaVersion(store.db)).toBe(3);
    await store.close();
  });

  it('migrates an empty version 2 queue and a fresh database alike', async () => {
    const path = join(dir, 'v2-empty.db');
    const db = openSqliteDatabase(path);
    migrate(db, SERVICE_MIGRATIONS.slice(0, 2));
    db.close();
    const store = openSqliteServiceStore({ path });
    const device = await addDevice(store, 'carol', 'tab');
    const id = messageId();
    const r = await store.queue.enqueue({
      id,
      recipientDevice: device,
      kind: 'message',
      bytes: sealedMessage(device, id),
      receivedAt: 1,
    });
    expect(r).toEqual({ status: 'stored', seq: 1 });
    const columns = (name: string): string[] =>
      store.db
        .prepare<[], { name: string }>(`PRAGMA table_info(${name})`)
        .all()
        .map((c) => c.name);
    const fresh = freshStore(dir);
    expect(columns('queue')).toEqual(
      fresh.db
        .prepare<[], { name: string }>('PRAGMA table_info(queue)')
        .all()
        .map((c) => c.name),
    );
    expect(columns('queue')).toContain('arrived_from');
    await fresh.close();
    await store.close();
  });
});
