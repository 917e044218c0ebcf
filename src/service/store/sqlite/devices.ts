/**
 * Devices and signed device lists on SQLite.
 */
import { ImppError } from '../../../errors.js';
import type {
  DeviceListRepository,
  DeviceRecord,
  DeviceRepository,
  NewDevice,
  StoredDeviceList,
} from '../types.js';
import {
  assertAddress,
  assertBytes,
  assertDeviceIdField,
  assertTime,
  assertUint,
} from '../validate.js';
import { blob, checked, read, toBuffer, type SqliteContext } from './context.js';

interface DeviceRow {
  address: string;
  device_id: string;
  identity_key: Buffer;
  enrolment: Buffer;
  created_at: number;
  revoked_at: number | null;
}

function toDevice(row: DeviceRow): DeviceRecord {
  return {
    address: row.address,
    deviceId: row.device_id,
    identityKey: blob(row.identity_key),
    enrolment: blob(row.enrolment),
    createdAt: row.created_at,
    revoked: row.revoked_at !== null,
    revokedAt: row.revoked_at,
  };
}

/** Largest enrolment statement stored (a statement with a certificate fits easily). */
const MAX_ENROLMENT_BYTES = 64 * 1024;

/**
 * {@link DeviceRepository} on SQLite.
 *
 * @example
 * ```ts
 * await store.devices.register({ address: 'alice@example.org', deviceId: 'phone',
 *   identityKey, enrolment: statement.bytes, createdAt: Date.now() });
 * ```
 */
export class SqliteDeviceRepository implements DeviceRepository {
  readonly #ctx: SqliteContext;
  readonly #insert;
  readonly #get;
  readonly #list;
  readonly #listActive;
  readonly #revoke;
  readonly #dropSigned;
  readonly #dropOneTime;
  readonly #dropQueue;

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    const db = ctx.db;
    this.#insert = db.prepare<[string, string, string, Buffer, Buffer, number]>(
      `INSERT INTO devices (address, device_id, device, identity_key, enrolment, created_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    this.#get = db.prepare<[string, string], DeviceRow>(
      'SELECT * FROM devices WHERE address = ? AND device_id = ?',
    );
    this.#list = db.prepare<[string], DeviceRow>(
      'SELECT * FROM devices WHERE address = ? ORDER BY device_id',
    );
    this.#listActive = db.prepare<[string], DeviceRow>(
      'SELECT * FROM devices WHERE address = ? AND revoked_at IS NULL ORDER BY device_id',
    );
    this.#revoke = db.prepare<[number, string, string]>(
      'UPDATE devices SET revoked_at = ? WHERE address = ? AND device_id = ? AND revoked_at IS NULL',
    );
    this.#dropSigned = db.prepare<[string]>('DELETE FROM signed_prekeys WHERE device = ?');
    this.#dropOneTime = db.prepare<[string]>('DELETE FROM one_time_prekeys WHERE device = ?');
    this.#dropQueue = db.prepare<[string]>('DELETE FROM queue WHERE device = ?');
  }

  register(device: NewDevice): Promise<void> {
    return checked(() => {
      const address = assertAddress('address', device.address);
      const deviceId = assertDeviceIdField('deviceId', device.deviceId);
      const key = assertBytes('identityKey', device.identityKey, 32);
      const enrolment = assertBytes('enrolment', device.enrolment, 1, MAX_ENROLMENT_BYTES);
      const at = assertTime('createdAt', device.createdAt);
      return this.#ctx.batcher.run(() => {
        const r = this.#insert.run(
          address,
          deviceId,
          `${address}/${deviceId}`,
          toBuffer(key),
          toBuffer(enrolment),
          at,
        );
        if (r.changes === 0) throw new ImppError('ERR_CONFLICT', 'device id already registered');
      });
    });
  }

  get(address: string, deviceId: string): Promise<DeviceRecord | undefined> {
    return read(() => {
      const row = this.#get.get(address, deviceId);
      return row === undefined ? undefined : toDevice(row);
    });
  }

  list(address: string, options: { includeRevoked?: boolean } = {}): Promise<DeviceRecord[]> {
    return read(() =>
      (options.includeRevoked === true ? this.#list : this.#listActive).all(address).map(toDevice),
    );
  }

  revoke(address: string, deviceId: string, at: number): Promise<boolean> {
    return checked(() => {
      assertTime('at', at);
      return this.#ctx.batcher.run(() => {
        if (this.#revoke.run(at, address, deviceId).changes === 0) return false;
        const device = `${address}/${deviceId}`;
        this.#dropSigned.run(device);
        this.#dropOneTime.run(device);
        this.#dropQueue.run(device);
        return true;
      });
    });
  }
}

interface ListRow {
  address: string;
  counter: number;
  bytes: Buffer;
  stored_at: number;
}

/** Largest signed device list stored (64 devices with keys and a signature fit easily). */
const MAX_DEVICE_LIST_BYTES = 16 * 1024;

/**
 * {@link DeviceListRepository} on SQLite: the counter check and the write are one statement
 * inside the batch transaction, so no interleaving can store an older list.
 */
export class SqliteDeviceListRepository implements DeviceListRepository {
  readonly #ctx: SqliteContext;
  readonly #get;
  readonly #upsert;

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    this.#get = ctx.db.prepare<[string], ListRow>('SELECT * FROM device_lists WHERE address = ?');
    this.#upsert = ctx.db.prepare<[string, number, Buffer, number]>(
      `INSERT INTO device_lists (address, counter, bytes, stored_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (address) DO UPDATE SET counter = excluded.counter, bytes = excluded.bytes,
         stored_at = excluded.stored_at
       WHERE excluded.counter > device_lists.counter`,
    );
  }

  latest(address: string): Promise<StoredDeviceList | undefined> {
    return read(() => {
      const row = this.#get.get(address);
      return row === undefined
        ? undefined
        : {
            address: row.address,
            counter: row.counter,
            bytes: blob(row.bytes),
            storedAt: row.stored_at,
          };
    });
  }

  put(list: StoredDeviceList): Promise<boolean> {
    return checked(() => {
      const address = assertAddress('address', list.address);
      const counter = assertUint('counter', list.counter);
      const bytes = assertBytes('bytes', list.bytes, 1, MAX_DEVICE_LIST_BYTES);
      const at = assertTime('storedAt', list.storedAt);
      return this.#ctx.batcher.run(() => {
        if (this.#upsert.run(address, counter, toBuffer(bytes), at).changes === 1) return true;
        const current = this.#get.get(address);
        if (current?.counter === counter && Buffer.compare(current.bytes, toBuffer(bytes)) === 0) {
          return false;
        }
        throw new ImppError(
          'ERR_CONFLICT',
          'device list counter must be larger than the stored one',
        );
      });
    });
  }
}
