/**
 * Durable commits without blocking the event loop (docs/storage.md, "Durability").
 *
 * With `synchronous = FULL`, SQLite fsyncs the WAL inside COMMIT, and better-sqlite3 runs COMMIT
 * on the event loop: every batch stalled every connection for one fsync. The store therefore
 * runs the connection at `synchronous = NORMAL` (a COMMIT only write()s its WAL frames, which
 * already survives SIGKILL) and makes each commit durable itself, with `fdatasync` of the WAL
 * file on libuv's thread pool; the write promises of a batch resolve only after that sync.
 *
 * Why this is as durable as FULL for everything the store acknowledges:
 * - the WAL is append-only between checkpoints, and fdatasync flushes every byte written to the
 *   file before the call, so a completed sync covers all commits made before it started (and the
 *   WAL header, which SQLite at NORMAL itself syncs whenever it starts reusing the file);
 * - SQLite at NORMAL still syncs the WAL before each checkpoint and the database file after it,
 *   so a checkpoint never exposes unsynced frames;
 * - the WAL file is removed only when the last connection closes, and this store's connection
 *   stays open until {@link WalSync.close}, so the descriptor always names the live WAL.
 * What differs from FULL: another reader may see a commit a moment before it is durable. The
 * service never acknowledges on the strength of a read, and a power loss drops whole commits
 * from the end of the WAL only, in order, like FULL loses the commit whose fsync was running.
 *
 * One sync runs at a time; commits that land meanwhile share the next one (group commit at the
 * fsync level, the same shape as the batcher one level up).
 */
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';
import { ImppError } from '../../../errors.js';

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * Syncs a database's WAL file off the event loop.
 *
 * @example
 * ```ts
 * db.pragma('synchronous = NORMAL');
 * const wal = WalSync.open(`${path}-wal`);
 * commit();
 * await wal.durable(); // every commit before this call is on stable storage
 * ```
 */
export class WalSync {
  readonly #fd: number;
  #syncing = false;
  #waiting: Waiter[] = [];
  #failure: ImppError | undefined;
  #closed = false;
  /** fdatasync calls made, for tests and benchmarks. */
  readonly stats = { syncs: 0 };

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens the WAL file of a database in WAL mode (it exists once the database was written). */
  static open(walPath: string): WalSync {
    try {
      // Read-write only because some platforms refuse to sync a read-only descriptor; nothing
      // is ever written through it.
      return new WalSync(openSync(walPath, 'r+'));
    } catch (cause) {
      throw new ImppError('ERR_STORAGE', 'cannot open the write-ahead log for syncing', { cause });
    }
  }

  /** Resolves once every commit made before this call is durable. */
  durable(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new ImppError('ERR_STORAGE', 'the store is closed'));
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#start();
    });
  }

  /** Syncs now, blocking: for the rare synchronous writers (key log, migrations, unbatched). */
  durableNow(): void {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      fdatasyncSync(this.#fd);
      this.stats.syncs++;
    } catch (cause) {
      throw this.#fail(cause);
    }
  }

  #start(): void {
    if (this.#syncing || this.#waiting.length === 0) return;
    const covered = this.#waiting;
    this.#waiting = [];
    this.#syncing = true;
    fdatasync(this.#fd, (error) => {
      this.#syncing = false;
      if (error !== null) {
        const failure = this.#fail(error);
        for (const w of covered) w.reject(failure);
        for (const w of this.#waiting) w.reject(failure);
        this.#waiting = [];
        return;
      }
      this.stats.syncs++;
      for (const w of covered) w.resolve();
      this.#start();
    });
  }

  /**
   * After a failed sync the kernel may have dropped the dirty pages and a retry can report
   * success for data that never reached the disk, so the store refuses every later write rather
   * than acknowledge something that may be lost.
   */
  #fail(cause: unknown): ImppError {
    this.#failure ??= new ImppError('ERR_STORAGE', 'syncing the write-ahead log failed', {
      cause,
    });
    return this.#failure;
  }

  /** Waits for the running sync, then closes the descriptor. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#syncing || this.#waiting.length > 0) {
      await new Promise<void>((resolve) => {
        // A failed last sync was already reported to its writers; closing goes ahead.
        this.#waiting.push({
          resolve,
          reject: () => {
            resolve();
          },
        });
        this.#start();
      });
    }
    closeSync(this.#fd);
  }
}
