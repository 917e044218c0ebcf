/**
 * Latest sealed presence per presentity on SQLite. Versions only go up: the comparison and the
 * write are one statement, so no caller (buggy, compromised or racing) can roll presence back.
 */
import { ImppError } from '../../../errors.js';
import type { PresenceRepository, StoredPresence } from '../types.js';
import {
  assertAddress,
  assertEnvelope,
  assertSealed,
  assertTime,
  assertUint,
} from '../validate.js';
import { blob, checked, read, toBuffer, type SqliteContext } from './context.js';

interface Row {
  presentity: string;
  version: number;
  bytes: Buffer;
  received_at: number;
}

/**
 * {@link PresenceRepository} on SQLite.
 *
 * @example
 * ```ts
 * const h = readEnvelopeHeader(bytes); // kind 'presence'
 * await store.presence.put({ presentity: h.presentity, version: h.presenceVersion, bytes,
 *   receivedAt: Date.now() });
 * ```
 */
export class SqlitePresenceRepository implements PresenceRepository {
  readonly #ctx: SqliteContext;
  readonly #get;
  readonly #upsert;

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    this.#get = ctx.db.prepare<[string], Row>('SELECT * FROM presence WHERE presentity = ?');
    this.#upsert = ctx.db.prepare<[string, number, Buffer, number]>(
      `INSERT INTO presence (presentity, version, bytes, received_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (presentity) DO UPDATE SET version = excluded.version, bytes = excluded.bytes,
         received_at = excluded.received_at
       WHERE excluded.version > presence.version`,
    );
  }

  latest(presentity: string): Promise<StoredPresence | undefined> {
    return read(() => {
      const row = this.#get.get(presentity);
      return row === undefined
        ? undefined
        : {
            presentity: row.presentity,
            version: row.version,
            bytes: blob(row.bytes),
            receivedAt: row.received_at,
          };
    });
  }

  put(update: StoredPresence): Promise<boolean> {
    return checked(() => {
      const presentity = assertAddress('presentity', update.presentity);
      const version = assertUint('version', update.version);
      const bytes = toBuffer(assertSealed('bytes', update.bytes));
      const at = assertTime('receivedAt', update.receivedAt);
      if (this.#ctx.verifyEnvelopes)
        assertEnvelope(bytes, { kind: 'presence', presentity, version }, update.bytes);
      return this.#ctx.batcher.run(() => {
        if (this.#upsert.run(presentity, version, bytes, at).changes === 1) return true;
        const current = this.#get.get(presentity);
        if (current?.version === version && Buffer.compare(current.bytes, bytes) === 0) {
          return false;
        }
        throw new ImppError(
          'ERR_SEAL_ROLLBACK',
          'presence version must be higher than the stored one',
        );
      });
    });
  }
}
