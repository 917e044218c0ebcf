/**
 * The SQLite backend itself: file permissions, pragmas, schema versions and migrations
 * (ordered, atomic, a newer database refused), and the key log storage contract suite.
 */
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
import { addDevice, tempDir } from './helpers.js';

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
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
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
