/**
 * Opens a SQLite database the way every impp server store wants it: file mode 0600, WAL,
 * the chosen `synchronous` level, foreign keys on, a busy time-out, untrusted schema off.
 *
 * Durability (docs/storage.md, "Durability"): in WAL mode a COMMIT appends to the `-wal` file.
 * With `synchronous = FULL` SQLite fsyncs the WAL on every commit, so a transaction that returned
 * survives a process kill *and* a power loss or kernel crash. With `NORMAL` the WAL is fsynced
 * only at checkpoints: a committed transaction survives SIGKILL (the bytes are in the kernel's
 * page cache once `write()` returned) but the last commits can be lost on power loss. impp
 * acknowledges messages to senders, so the default is FULL; batched commits pay one fsync per
 * batch rather than per message.
 */
import { chmodSync, closeSync, lstatSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ImppError } from '../../../errors.js';

/** The two durability levels impp allows (OFF is never acceptable for a server). */
export type SqliteSynchronous = 'full' | 'normal';

/** Options of {@link openSqliteDatabase}. */
export interface OpenSqliteOptions {
  /** Default `full`. */
  readonly synchronous?: SqliteSynchronous;
  /** How long a writer waits for another connection's lock, ms. Default 5000. */
  readonly busyTimeoutMs?: number;
}

/** Files SQLite may create next to the database. */
const SIDE_FILES = ['-wal', '-shm', '-journal'] as const;

/**
 * Creates the file with mode 0600 if needed and tightens an existing one: ciphertext and
 * metadata (who talks to whom, when) are still private. SQLite creates `-wal` and `-shm` with
 * the mode of the database file, and we tighten them too in case they pre-exist.
 */
function prepareFile(path: string): void {
  const fd = openSync(path, 'a', 0o600);
  closeSync(fd);
  chmodSync(path, 0o600);
  for (const suffix of SIDE_FILES) {
    try {
      if (lstatSync(path + suffix).isFile()) chmodSync(path + suffix, 0o600);
    } catch {
      // absent: SQLite will create it with the database file's mode
    }
  }
}

/**
 * Opens (creating if needed) a database. `':memory:'` gives a throwaway one for tests (no WAL).
 * Throws `ERR_STORAGE` when the file cannot be opened or WAL cannot be enabled.
 *
 * @example
 * ```ts
 * const db = openSqliteDatabase('/var/lib/impp/store.db', { synchronous: 'full' });
 * ```
 */
export function openSqliteDatabase(
  path: string,
  options: OpenSqliteOptions = {},
): Database.Database {
  const memory = path === ':memory:';
  let db: Database.Database | undefined;
  try {
    if (!memory) prepareFile(path);
    db = new Database(path);
    if (!memory) {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') {
        throw new ImppError('ERR_STORAGE', 'the database does not support WAL journaling');
      }
    }
    const synchronous: string = options.synchronous ?? 'full';
    if (synchronous !== 'full' && synchronous !== 'normal') {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'synchronous: expected full or normal');
    }
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${String(Math.trunc(options.busyTimeoutMs ?? 5000))}`);
    // Schema objects never run functions with side effects on our behalf.
    db.pragma('trusted_schema = OFF');
    if (!memory) {
      // Side files exist now (WAL mode creates them on first access): make sure of their mode.
      for (const suffix of SIDE_FILES) {
        try {
          chmodSync(path + suffix, 0o600);
        } catch {
          // not created (yet)
        }
      }
    }
    return db;
  } catch (cause) {
    db?.close();
    if (cause instanceof ImppError) throw cause;
    throw new ImppError('ERR_STORAGE', 'cannot open the database', { cause });
  }
}
