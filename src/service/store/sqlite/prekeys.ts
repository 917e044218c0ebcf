/**
 * Signed and one-time prekeys on SQLite (X3DH §3.2: the server hands each one-time prekey to at
 * most one initiator).
 */
import { ImppError } from '../../../errors.js';
import type { OneTimePrekey, PrekeyRepository, SignedPrekeyRecord } from '../types.js';
import { assertBytes, assertDeviceAddress, assertTime, assertUint } from '../validate.js';
import { blob, checked, read, toBuffer, type SqliteContext } from './context.js';

const MAX_KEY_ID = 0xffff_ffff;
/** Largest upload batch. */
const MAX_UPLOAD = 1000;

interface SignedRow {
  key_id: number;
  public_key: Buffer;
  signature: Buffer;
  uploaded_at: number;
}

interface OneTimeRow {
  key_id: number;
  public_key: Buffer;
}

/**
 * {@link PrekeyRepository} on SQLite. Taking a one-time prekey is a single
 * `DELETE … RETURNING` in a write transaction: SQLite serialises writers (also across
 * processes sharing the file), so two takers can never get the same row, and the promise
 * resolves only once the deletion is durable.
 *
 * @example
 * ```ts
 * const opk = await store.prekeys.takeOneTimePrekey('bob@example.org/laptop');
 * ```
 */
export class SqlitePrekeyRepository implements PrekeyRepository {
  readonly #ctx: SqliteContext;
  readonly #active;
  readonly #putSigned;
  readonly #getSigned;
  readonly #insertOneTime;
  readonly #take;
  readonly #count;

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    const db = ctx.db;
    this.#active = db.prepare<[string], { ok: number }>(
      'SELECT 1 AS ok FROM devices WHERE device = ? AND revoked_at IS NULL',
    );
    this.#putSigned = db.prepare<[string, number, Buffer, Buffer, number]>(
      `INSERT INTO signed_prekeys (device, key_id, public_key, signature, uploaded_at)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (device) DO UPDATE SET key_id = excluded.key_id,
         public_key = excluded.public_key, signature = excluded.signature,
         uploaded_at = excluded.uploaded_at`,
    );
    this.#getSigned = db.prepare<[string], SignedRow>(
      'SELECT key_id, public_key, signature, uploaded_at FROM signed_prekeys WHERE device = ?',
    );
    this.#insertOneTime = db.prepare<[string, number, Buffer]>(
      'INSERT INTO one_time_prekeys (device, key_id, public_key) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    );
    this.#take = db.prepare<[string], OneTimeRow>(
      `DELETE FROM one_time_prekeys WHERE seq =
         (SELECT seq FROM one_time_prekeys WHERE device = ? ORDER BY seq LIMIT 1)
       RETURNING key_id, public_key`,
    );
    this.#count = db.prepare<[string], { n: number }>(
      'SELECT count(*) AS n FROM one_time_prekeys WHERE device = ?',
    );
  }

  #assertActive(device: string): void {
    if (this.#active.get(device) === undefined) {
      throw new ImppError('ERR_NOT_FOUND', 'device is not registered');
    }
  }

  putSignedPrekey(device: string, prekey: SignedPrekeyRecord): Promise<void> {
    return checked(() => {
      assertDeviceAddress('device', device);
      const keyId = assertUint('keyId', prekey.keyId, MAX_KEY_ID);
      const pub = assertBytes('publicKey', prekey.publicKey, 32);
      const sig = assertBytes('signature', prekey.signature, 64);
      const at = assertTime('uploadedAt', prekey.uploadedAt);
      return this.#ctx.batcher.run(() => {
        this.#assertActive(device);
        this.#putSigned.run(device, keyId, toBuffer(pub), toBuffer(sig), at);
      });
    });
  }

  signedPrekey(device: string): Promise<SignedPrekeyRecord | undefined> {
    return read(() => {
      const row = this.#getSigned.get(device);
      return row === undefined
        ? undefined
        : {
            keyId: row.key_id,
            publicKey: blob(row.public_key),
            signature: blob(row.signature),
            uploadedAt: row.uploaded_at,
          };
    });
  }

  addOneTimePrekeys(device: string, keys: readonly OneTimePrekey[]): Promise<void> {
    return checked(() => {
      assertDeviceAddress('device', device);
      const input: unknown = keys;
      if (!Array.isArray(input) || keys.length === 0 || keys.length > MAX_UPLOAD) {
        throw new ImppError('ERR_INVALID_ARGUMENT', `keys: expected 1..${MAX_UPLOAD} prekeys`);
      }
      const rows = keys.map((k) => ({
        id: assertUint('keyId', k.keyId, MAX_KEY_ID),
        pub: toBuffer(assertBytes('publicKey', k.publicKey, 32)),
      }));
      // The savepoint around this operation makes the batch all or nothing.
      return this.#ctx.batcher.run(() => {
        this.#assertActive(device);
        const have = this.#count.get(device)?.n ?? 0;
        if (have + rows.length > this.#ctx.quotas.oneTimePrekeysMax) {
          throw new ImppError('ERR_QUOTA_EXCEEDED', 'too many one-time prekeys for this device');
        }
        for (const r of rows) {
          if (this.#insertOneTime.run(device, r.id, r.pub).changes === 0) {
            throw new ImppError('ERR_CONFLICT', 'one-time prekey id already uploaded');
          }
        }
      });
    });
  }

  takeOneTimePrekey(device: string): Promise<OneTimePrekey | undefined> {
    return this.#ctx.batcher.run(() => {
      const row = this.#take.get(device);
      return row === undefined ? undefined : { keyId: row.key_id, publicKey: blob(row.public_key) };
    });
  }

  countOneTimePrekeys(device: string): Promise<number> {
    return read(() => this.#count.get(device)?.n ?? 0);
  }
}
