/**
 * The offline message queue on SQLite: sealed objects per recipient device, in enqueue order,
 * kept until acknowledged, with batched durable commits.
 */
import { ImppError, isImppError } from '../../../errors.js';
import type {
  EnqueueOutcome,
  MessageQueueRepository,
  PendingObject,
  QueuedKind,
  QueuedObject,
  QueueUsage,
  QueueWatcher,
} from '../types.js';
import {
  MAX_QUEUE_ID_BYTES,
  assertArrivedFrom,
  assertBytes,
  assertDeviceAddress,
  assertEnvelope,
  assertNotice,
  assertQueuedKind,
  assertSealed,
  assertTime,
  assertUint,
} from '../validate.js';
import { blob, checked, read, toBuffer, type SqliteContext } from './context.js';

/** Stored kind numbers: the envelope's kind values (docs/formats.md §2). */
const KIND_CODE: Readonly<Record<QueuedKind, number>> = {
  message: 1,
  presence: 2,
  keyDistribution: 3,
  // Not an envelope kind: a delivery-failure notice from this server (migration 3).
  notice: 4,
};
const KIND_NAME: ReadonlyMap<number, QueuedKind> = new Map([
  [1, 'message'],
  [2, 'presence'],
  [3, 'keyDistribution'],
  [4, 'notice'],
]);

function kindName(code: number): QueuedKind {
  const name = KIND_NAME.get(code);
  if (name === undefined) throw new ImppError('ERR_STORAGE', 'stored object has an unknown kind');
  return name;
}

interface QueueRow {
  seq: number;
  device: string;
  id: Buffer;
  kind: number;
  received_at: number;
  bytes: Buffer;
  arrived_from: string | null;
}

/** Largest page of `pending`. */
const MAX_PAGE = 1000;
/** Largest number of ids per `acknowledge`. */
const MAX_ACK = 1000;

/**
 * {@link MessageQueueRepository} on SQLite. Every write goes through the commit batcher, so an
 * `enqueue` promise resolves only after the batch holding it committed: the durable point at
 * which the service acknowledges receipt to the sender.
 *
 * @example
 * ```ts
 * const r = await store.queue.enqueue({ id, recipientDevice, kind: 'message', bytes, receivedAt });
 * if (r.status === 'duplicate') { ... } // a retry: already stored, ack again
 * ```
 */
export class SqliteMessageQueueRepository implements MessageQueueRepository {
  readonly #ctx: SqliteContext;
  readonly #active;
  readonly #existing;
  readonly #usage;
  readonly #insert;
  readonly #pending;
  readonly #delete;
  readonly #watchers = new Set<QueueWatcher>();

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    const db = ctx.db;
    this.#active = db.prepare<[string], { ok: number }>(
      'SELECT 1 AS ok FROM devices WHERE device = ? AND revoked_at IS NULL',
    );
    this.#existing = db.prepare<[string, Buffer], { seq: number }>(
      'SELECT seq FROM queue WHERE device = ? AND id = ?',
    );
    this.#usage = db.prepare<[string], { count: number; bytes: number }>(
      'SELECT count, bytes FROM queue_usage WHERE device = ?',
    );
    this.#insert = db.prepare<[string, Buffer, number, number, number, Buffer, string | null]>(
      `INSERT INTO queue (device, id, kind, received_at, size, bytes, arrived_from)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (device, id) DO NOTHING`,
    );
    this.#pending = db.prepare<[string, number, number], QueueRow>(
      `SELECT seq, device, id, kind, received_at, bytes, arrived_from FROM queue
       WHERE device = ? AND seq > ? ORDER BY seq LIMIT ?`,
    );
    this.#delete = db.prepare<[string, Buffer]>('DELETE FROM queue WHERE device = ? AND id = ?');
  }

  enqueue(object: QueuedObject): Promise<EnqueueOutcome> {
    return checked(() => {
      const device = assertDeviceAddress('recipientDevice', object.recipientDevice);
      const id = toBuffer(assertBytes('id', object.id, 1, MAX_QUEUE_ID_BYTES));
      const kind = KIND_CODE[assertQueuedKind(object.kind)];
      const notice = object.kind === 'notice';
      const bytes = toBuffer(
        notice ? assertNotice(object.bytes) : assertSealed('bytes', object.bytes),
      );
      const at = assertTime('receivedAt', object.receivedAt);
      const arrivedFrom = assertArrivedFrom(object.arrivedFrom);
      // A notice is this server's own word, never something that arrived from a peer.
      if (notice && arrivedFrom !== null) {
        throw new ImppError('ERR_INVALID_ARGUMENT', 'arrivedFrom: a notice arrives from nowhere');
      }
      if (this.#ctx.verifyEnvelopes && object.kind !== 'notice') {
        assertEnvelope(
          bytes,
          object.kind === 'presence'
            ? { kind: 'presence' }
            : { kind: object.kind, recipientDevice: device, id },
          object.bytes,
        );
      }
      const { queueMaxCount, queueMaxBytes } = this.#ctx.quotas;
      // One write statement (the insert, its usage trigger included), and every throw comes
      // before it: nothing to roll back, so no savepoint of its own (batcher.ts, `atomic`).
      const outcome = this.#ctx.batcher.run(
        (): EnqueueOutcome => {
          if (this.#active.get(device) === undefined) {
            throw new ImppError('ERR_NOT_FOUND', 'recipient device is not registered');
          }
          const usage = this.#usage.get(device);
          if (
            usage !== undefined &&
            (usage.count + 1 > queueMaxCount || usage.bytes + bytes.length > queueMaxBytes)
          ) {
            // Full, but a retry of an object already stored still succeeds (idempotent).
            const existing = this.#existing.get(device, id);
            if (existing !== undefined) return { status: 'duplicate', seq: existing.seq };
            throw new ImppError('ERR_QUOTA_EXCEEDED', 'the recipient device queue is full');
          }
          if (usage === undefined && bytes.length > queueMaxBytes) {
            throw new ImppError('ERR_QUOTA_EXCEEDED', 'the recipient device queue is full');
          }
          // A duplicate id is ignored by the insert (one index probe), then looked up.
          const r = this.#insert.run(device, id, kind, at, bytes.length, bytes, arrivedFrom);
          if (r.changes === 0) {
            const existing = this.#existing.get(device, id);
            if (existing === undefined) throw new ImppError('ERR_STORAGE', 'queue insert ignored');
            return { status: 'duplicate', seq: existing.seq };
          }
          return { status: 'stored', seq: Number(r.lastInsertRowid) };
        },
        { atomic: true },
      );
      if (this.#watchers.size === 0) return outcome;
      // The batcher settles its operations in commit order, and every enqueue adds exactly this
      // one reaction, so the watchers hear of one device's objects in `seq` order.
      return outcome.then(
        (done) => {
          if (done.status === 'stored') {
            this.#tell({
              seq: done.seq,
              recipientDevice: device,
              id: object.id,
              kind: object.kind,
              bytes: object.bytes,
              receivedAt: at,
              arrivedFrom,
            });
          }
          return done;
        },
        (error: unknown) => {
          if (isImppError(error, 'ERR_STORAGE')) {
            for (const w of this.#watchers) w.unsure(device);
          }
          throw error;
        },
      );
    });
  }

  /**
   * Watchers hear of each stored object after its durable commit, in queue order per device
   * ({@link MessageQueueRepository.watch}).
   */
  watch(watcher: QueueWatcher): () => void {
    this.#watchers.add(watcher);
    return () => {
      this.#watchers.delete(watcher);
    };
  }

  #tell(object: PendingObject): void {
    for (const w of this.#watchers) {
      try {
        w.stored(object);
      } catch {
        // A watcher's failure must not turn a stored object into a failed enqueue.
      }
    }
  }

  pending(
    device: string,
    options: { after?: number; limit?: number } = {},
  ): Promise<PendingObject[]> {
    return checked(() => {
      const after = assertUint('after', options.after ?? 0);
      const limit = assertUint('limit', options.limit ?? 100, MAX_PAGE);
      return read(() =>
        this.#pending.all(device, after, limit).map((row) => ({
          seq: row.seq,
          recipientDevice: row.device,
          id: blob(row.id),
          kind: kindName(row.kind),
          bytes: blob(row.bytes),
          receivedAt: row.received_at,
          arrivedFrom: row.arrived_from,
        })),
      );
    });
  }

  acknowledge(device: string, ids: readonly Uint8Array[]): Promise<number> {
    return checked(() => {
      const input: unknown = ids;
      if (!Array.isArray(input) || ids.length > MAX_ACK) {
        throw new ImppError('ERR_INVALID_ARGUMENT', `ids: expected at most ${MAX_ACK} ids`);
      }
      const keys = ids.map((id) => toBuffer(assertBytes('id', id, 1, MAX_QUEUE_ID_BYTES)));
      if (keys.length === 0) return Promise.resolve(0);
      return this.#ctx.batcher.run(() => {
        let deleted = 0;
        for (const key of keys) deleted += this.#delete.run(device, key).changes;
        return deleted;
      });
    });
  }

  usage(device: string): Promise<QueueUsage> {
    return read(() => {
      const row = this.#usage.get(device);
      return { count: row?.count ?? 0, bytes: row?.bytes ?? 0 };
    });
  }
}
