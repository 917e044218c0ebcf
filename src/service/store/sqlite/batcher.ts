/**
 * Group commit for better-sqlite3: write operations submitted close together run in one
 * transaction, and each one's promise settles only after that transaction's COMMIT returned.
 * With `synchronous = FULL` that is one fsync per batch instead of one per operation, and the
 * resolution of a promise is the durable acknowledgement point.
 *
 * better-sqlite3 is synchronous, so a commit blocks the event loop for the statements it runs;
 * whatever arrives meanwhile waits in the socket buffers and lands in the next batch. Batching
 * therefore adapts to load by itself: one operation per batch when idle, many under load. With
 * a {@link WalSync} (the store's default at FULL durability) the fsync itself runs off the event
 * loop: COMMIT only writes the WAL, and the batch's promises settle once the WAL sync covering it
 * completed, while the next batch is already being built and committed.
 *
 * Each operation runs in its own SAVEPOINT inside the batch: one that throws is rolled back and
 * rejected alone, the others commit. If the COMMIT itself fails, every operation of the batch
 * is rejected, none is reported stored.
 */
import type Database from 'better-sqlite3';
import { ImppError } from '../../../errors.js';
import type { WalSync } from './wal-sync.js';

/** Options of a {@link CommitBatcher}. */
export interface BatchOptions {
  /**
   * `false`: every operation commits on its own (one fsync each), synchronously. Default `true`.
   */
  readonly enabled?: boolean;
  /**
   * How long the first operation of a batch waits for company, ms. `0` (default) flushes on the
   * next turn of the event loop (`setImmediate`), which already groups everything that arrived
   * together; a few ms more trade latency for larger batches.
   */
  readonly maxDelayMs?: number;
  /** A batch this large is committed at once. Default 1024. */
  readonly maxBatch?: number;
}

interface Pending {
  readonly op: () => unknown;
  /** Runs without its own savepoint (see {@link CommitBatcher.run}). */
  readonly atomic: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
}

/** Maps anything thrown by the driver to `ERR_STORAGE`; keeps impp errors as they are. */
export function storageError(cause: unknown): ImppError {
  if (cause instanceof ImppError) return cause;
  return new ImppError('ERR_STORAGE', 'the store failed', { cause });
}

/**
 * Runs write operations in batched transactions.
 *
 * @example
 * ```ts
 * const batcher = new CommitBatcher(db, { maxDelayMs: 0 });
 * const seq = await batcher.run(() => insert.run(row).lastInsertRowid); // durable here
 * ```
 */
export class CommitBatcher {
  readonly #db: Database.Database;
  readonly #enabled: boolean;
  readonly #maxDelayMs: number;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #closed = false;
  readonly #savepoint: Database.Transaction<(op: () => unknown) => unknown>;
  readonly #batch: Database.Transaction<(items: readonly Pending[]) => unknown[]>;
  /** Batches committed and operations run, for benchmarks and tests. */
  readonly stats = { batches: 0, operations: 0 };

  readonly #wal: WalSync | undefined;

  /**
   * @param wal when given, the connection runs at `synchronous = NORMAL` and each batch is
   *   made durable by syncing the WAL before its promises settle (./wal-sync.ts).
   */
  constructor(db: Database.Database, options: BatchOptions = {}, wal?: WalSync) {
    this.#db = db;
    this.#wal = wal;
    this.#enabled = options.enabled ?? true;
    this.#maxDelayMs = Math.max(0, options.maxDelayMs ?? 0);
    this.#maxBatch = Math.max(1, options.maxBatch ?? 1024);
    // Nested inside #batch, better-sqlite3 runs this as SAVEPOINT … RELEASE (or ROLLBACK TO).
    this.#savepoint = db.transaction((op: () => unknown) => op());
    this.#batch = db.transaction((items: readonly Pending[]) =>
      items.map((item) => {
        try {
          return { ok: true, value: item.atomic ? item.op() : this.#savepoint(item.op) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    );
  }

  /**
   * Submits a synchronous write operation; resolves with its result after the commit.
   * The operation must not await: it runs inside the batch transaction.
   *
   * `atomic: true` skips the operation's savepoint (two statements, a few µs): only for an
   * operation that makes at most one write statement and throws only before it, so that a
   * failure leaves nothing to roll back (SQLite undoes a failed statement by itself).
   */
  run<T>(op: () => T, options: { readonly atomic?: boolean } = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new ImppError('ERR_STORAGE', 'the store is closed'));
    if (!this.#enabled) {
      try {
        this.stats.batches++;
        this.stats.operations++;
        const value = this.#db.transaction(op).immediate();
        this.#wal?.durableNow();
        return Promise.resolve(value);
      } catch (error) {
        return Promise.reject(storageError(error));
      }
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        op,
        atomic: options.atomic === true,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (this.#queue.length >= this.#maxBatch) this.flush();
      else this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer =
      this.#maxDelayMs === 0
        ? setImmediate(() => {
            this.#timer = undefined;
            this.flush();
          })
        : setTimeout(() => {
            this.#timer = undefined;
            this.flush();
          }, this.#maxDelayMs);
  }

  /** Commits everything queued now (synchronously), then settles the promises. */
  flush(): void {
    if (this.#timer !== undefined) {
      // Each clear function only for its own kind: clearImmediate on a Timeout corrupts
      // Node's immediate queue.
      if (this.#maxDelayMs === 0) clearImmediate(this.#timer as NodeJS.Immediate);
      else clearTimeout(this.#timer as NodeJS.Timeout);
      this.#timer = undefined;
    }
    const items = this.#queue;
    if (items.length === 0) return;
    this.#queue = [];
    let results: unknown[];
    try {
      results = this.#batch.immediate(items);
    } catch (error) {
      const failure = storageError(error);
      for (const item of items) item.reject(failure);
      return;
    }
    this.stats.batches++;
    this.stats.operations += items.length;
    const settle = (): void => {
      items.forEach((item, i) => {
        const r = results[i] as { ok: true; value: unknown } | { ok: false; error: unknown };
        if (r.ok) item.resolve(r.value);
        else item.reject(storageError(r.error));
      });
    };
    if (this.#wal === undefined) {
      settle();
      return;
    }
    // Committed but not yet durable: nobody hears "stored" before the sync covering it.
    this.#wal.durable().then(settle, (error: unknown) => {
      const failure = storageError(error);
      for (const item of items) item.reject(failure);
    });
  }

  /** Commits what is queued and refuses further operations. */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}
