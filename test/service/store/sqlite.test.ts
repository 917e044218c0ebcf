/**
 * The SQLite backend itself: file permissions, pragmas, schema versions and migrations
 * (ordered, atomic, a newer database refused), and the key log storage contract suite.
 */
import { pbkdf2 } from 'node:crypto';
import { statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../../src/crypto/index.js';
import { isImppError } from '../../../src/errors.js';
import {
  SERVICE_MIGRATIONS,
  SERVICE_SCHEMA_VERSION,
  SqliteKeyLogStorage,
  migrate,
  openSqliteDatabase,
  openSqliteServiceStore,
  schemaVersion,
  type Migration,
} from '../../../src/service/store/index.js';
import { KeyLog, leafHash } from '../../../src/trust/keylog/index.js';
import { keyLogStorageContract } from '../../trust/keylog-storage.contract.js';
import { addDevice, messageId, sealedMessage, tempDir } from './helpers.js';

const dir = tempDir();
let n = 0;
const nextPath = (): string => join(dir, `db-${++n}.db`);

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function throwsCode(fn: () => unknown, code: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(isImppError(error) && error.code === code, String(error)).toBe(true);
}

describe('opening the database', () => {
  it('creates the database and its WAL files with mode 0600 and sets the pragmas', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    await addDevice(store, 'alice', 'phone');
    expect(mode(path)).toBe(0o600);
    expect(mode(`${path}-wal`)).toBe(0o600);
    expect(mode(`${path}-shm`)).toBe(0o600);
    const db = store.db;
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    // FULL durability with the fsync off the event loop: the connection commits at NORMAL and
    // the store syncs the WAL itself before a write resolves (src/service/store/sqlite/wal-sync.ts).
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(store.syncStats.syncs).toBeGreaterThan(0);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('trusted_schema', { simple: true })).toBe(0);
    await store.close();
  });

  it('tightens an existing world-readable file and honours synchronous = normal', () => {
    const path = nextPath();
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    const db = openSqliteDatabase(path, { synchronous: 'normal' });
    expect(mode(path)).toBe(0o600);
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    db.close();
  });

  it('refuses an unknown durability level and a file that is not a database', () => {
    throwsCode(
      () => openSqliteDatabase(nextPath(), { synchronous: 'off' as 'full' }),
      'ERR_INVALID_ARGUMENT',
    );
    const path = nextPath();
    writeFileSync(
      path,
      'this is not a database, just text that is long enough to matter '.repeat(20),
    );
    throwsCode(() => openSqliteServiceStore({ path }), 'ERR_STORAGE');
    throwsCode(() => openSqliteServiceStore({ path: join(dir, 'missing', 'x.db') }), 'ERR_STORAGE');
  });

  it('refuses invalid quotas', () => {
    throwsCode(
      () => openSqliteServiceStore({ path: ':memory:', quotas: { queueMaxCount: 0 } }),
      'ERR_INVALID_ARGUMENT',
    );
  });
});

describe('durable commits with the WAL synced off the event loop', () => {
  it('settles a write only after a WAL sync that began after its commit', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    const device = await addDevice(store, 'alice', 'phone');
    const before = store.syncStats.syncs;
    const id1 = messageId();
    let settledAt = -1;
    const write = store.queue
      .enqueue({
        id: id1,
        recipientDevice: device,
        kind: 'message',
        bytes: sealedMessage(device, id1),
        receivedAt: Date.now(),
      })
      .then((r) => {
        settledAt = store.syncStats.syncs;
        return r;
      });
    expect((await write).status).toBe('stored');
    expect(settledAt).toBeGreaterThan(before);
    await store.close();
  });

  it('keeps the event loop free while a commit waits for its sync', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    const device = await addDevice(store, 'erin', 'phone');
    // Occupy every thread-pool thread (real work, no mock): the WAL sync must queue behind it.
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    let hashed = 0;
    const busy = Array.from(
      { length: threads * 2 },
      () =>
        new Promise<void>((resolve, reject) => {
          pbkdf2('load', 'salt', 200_000, 32, 'sha256', (error) => {
            hashed++;
            if (error === null) resolve();
            else reject(error);
          });
        }),
    );
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const id = messageId();
    let ticksWhenStored = -1;
    let hashedWhenStored = -1;
    await store.queue
      .enqueue({
        id,
        recipientDevice: device,
        kind: 'message',
        bytes: sealedMessage(device, id),
        receivedAt: Date.now(),
      })
      .then(() => {
        ticksWhenStored = ticks;
        hashedWhenStored = hashed;
      });
    clearInterval(timer);
    await Promise.all(busy);
    // Timers ran while the write waited, and it was acknowledged only once the pool freed up.
    expect(ticksWhenStored).toBeGreaterThan(0);
    expect(hashedWhenStored).toBeGreaterThan(0);
    await store.close();
  });

  it('shares one sync among writes that commit together, and a sync among batches', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    const device = await addDevice(store, 'bob', 'phone');
    const ids = Array.from({ length: 200 }, () => messageId());
    const syncs = store.syncStats.syncs;
    const batches = store.batchStats.batches;
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        store.queue.enqueue({
          id: ids[i] as Uint8Array,
          recipientDevice: device,
          kind: 'message',
          bytes: sealedMessage(device, ids[i] as Uint8Array),
          receivedAt: Date.now(),
        }),
      ),
    );
    expect(store.syncStats.syncs - syncs).toBeLessThanOrEqual(store.batchStats.batches - batches);
    expect(store.syncStats.syncs - syncs).toBeLessThan(10);
    await store.close();
  });

  it('syncs each key log append before it returns, and none at synchronous = normal', async () => {
    const store = openSqliteServiceStore({ path: nextPath() });
    const log = new KeyLog({ domain: 'example.org', storage: store.keyLog });
    const syncs = store.syncStats.syncs;
    log.append(utf8('entry'));
    expect(store.syncStats.syncs).toBe(syncs + 1);
    await store.close();
    const normal = openSqliteServiceStore({ path: nextPath(), synchronous: 'normal' });
    await addDevice(normal, 'carol', 'phone');
    expect(normal.syncStats.syncs).toBe(0);
    expect(normal.db.pragma('synchronous', { simple: true })).toBe(1);
    await normal.close();
  });

  it('lets close wait for the last batch to be synced, and keeps what it acknowledged', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    const device = await addDevice(store, 'dave', 'phone');
    const ids = Array.from({ length: 20 }, () => messageId());
    const writes = Array.from({ length: 20 }, (_, i) =>
      store.queue.enqueue({
        id: ids[i] as Uint8Array,
        recipientDevice: device,
        kind: 'message',
        bytes: sealedMessage(device, ids[i] as Uint8Array),
        receivedAt: Date.now(),
      }),
    );
    await store.close();
    const outcomes = await Promise.all(writes);
    expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
    const again = openSqliteServiceStore({ path });
    expect((await again.queue.pending(device)).length).toBe(20);
    await again.close();
  });
});

describe('schema versions and migrations', () => {
  it('creates the current schema and reopens without migrating again', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    expect(store.schemaVersion).toBe(SERVICE_SCHEMA_VERSION);
    const device = await addDevice(store, 'alice', 'phone');
    await store.close();
    const again = openSqliteServiceStore({ path });
    expect(again.schemaVersion).toBe(SERVICE_SCHEMA_VERSION);
    expect((await again.devices.list('alice@example.org')).map((d) => d.deviceId)).toEqual([
      device.split('/')[1],
    ]);
    await again.close();
  });

  it('refuses a database whose schema is newer than the code, and leaves it untouched', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    await addDevice(store, 'alice', 'phone');
    store.db
      .prepare('INSERT INTO impp_service_schema (version, name, applied_at) VALUES (?, ?, ?)')
      .run(SERVICE_SCHEMA_VERSION + 1, 'from the future', 0);
    await store.close();
    let error: unknown;
    try {
      openSqliteServiceStore({ path });
    } catch (e) {
      error = e;
    }
    expect(isImppError(error, 'ERR_STORAGE')).toBe(true);
    expect((error as Error).message).toMatch(/newer than this impp/);
    const db = openSqliteDatabase(path);
    expect(schemaVersion(db)).toBe(SERVICE_SCHEMA_VERSION + 1);
    db.close();
  });

  it('applies only the newer migrations, in order, each once', () => {
    const path = nextPath();
    const applied: number[] = [];
    const step = (version: number): Migration => ({
      version,
      name: `step ${version}`,
      up(db) {
        applied.push(version);
        db.exec(`CREATE TABLE t${version} (x INTEGER) STRICT`);
      },
    });
    const db = openSqliteDatabase(path);
    expect(migrate(db, [step(1), step(2)])).toBe(2);
    expect(migrate(db, [step(1), step(2), step(3), step(4)])).toBe(4);
    expect(migrate(db, [step(1), step(2), step(3), step(4)])).toBe(4);
    expect(applied).toEqual([1, 2, 3, 4]);
    throwsCode(() => migrate(db, [step(1), step(2)]), 'ERR_STORAGE');
    throwsCode(() => migrate(db, [step(1), step(3)]), 'ERR_STORAGE'); // a gap
    db.close();
  });

  it('rolls a failing migration back entirely and keeps the previous version', () => {
    const path = nextPath();
    const db = openSqliteDatabase(path);
    migrate(db, SERVICE_MIGRATIONS);
    const broken: Migration = {
      version: SERVICE_SCHEMA_VERSION + 1,
      name: 'half done',
      up(d) {
        d.exec('CREATE TABLE half (x INTEGER)');
        throw new Error('crash in the middle');
      },
    };
    expect(() => migrate(db, [...SERVICE_MIGRATIONS, broken])).toThrow('crash in the middle');
    expect(schemaVersion(db)).toBe(SERVICE_SCHEMA_VERSION);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'half'").get()).toEqual(
      { n: 0 },
    );
    db.close();
  });
});

describe('key log storage on SQLite', () => {
  keyLogStorageContract('SqliteKeyLogStorage', () => {
    const db = openSqliteDatabase(':memory:');
    migrate(db);
    return new SqliteKeyLogStorage(db);
  });

  it('survives a reopen with the same roots, and keeps named logs apart', async () => {
    const path = nextPath();
    const store = openSqliteServiceStore({ path });
    const log = new KeyLog({ domain: 'example.org', storage: store.keyLog });
    for (let i = 0; i < 21; i++) log.append(utf8(`entry ${i}`));
    const root = log.root();
    const other = new SqliteKeyLogStorage(store.db, 'other.example');
    expect(other.size()).toBe(0);
    await store.close();
    const again = openSqliteServiceStore({ path });
    const reopened = new KeyLog({ domain: 'example.org', storage: again.keyLog });
    expect(reopened.size).toBe(21);
    expect(reopened.root()).toEqual(root);
    expect(again.keyLog.entry(20)).toEqual(utf8('entry 20'));
    // A node out of order stores nothing (atomic append).
    expect(() => {
      again.keyLog.append(utf8('x'), [{ level: 3, index: 7, hash: leafHash(utf8('x')) }]);
    }).toThrow();
    expect(again.keyLog.size()).toBe(21);
    await again.close();
  });
});
