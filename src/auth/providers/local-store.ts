/**
 * Storage of local accounts: a small repository interface and its SQLite implementation
 * (better-sqlite3, WAL). Only SCRAM verifiers are stored (RFC 5802 §3), never passwords.
 *
 * Schema versioning: a `schema_version` table holds one row; opening a database with a newer
 * version than this code knows is refused (never silently downgraded).
 */
import Database from 'better-sqlite3';
import { ImppError } from '../../errors.js';
import { isPrincipalKind, type PrincipalKind } from '../../trust/principal.js';
import type { ScramCredential } from '../types.js';

/** One stored account. */
export interface LocalAccountRecord {
  /** Canonical local part (`alice` of `alice@example.com`). */
  readonly username: string;
  readonly kind: PrincipalKind;
  readonly disabled: boolean;
  readonly credential: ScramCredential;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** What `list()` returns: no key material. */
export type LocalAccountSummary = Omit<LocalAccountRecord, 'credential'> & {
  readonly iterations: number;
};

/**
 * The repository the local provider needs. Implement it over another database to share accounts
 * between nodes (see the architecture brief §6).
 */
export interface LocalAccountRepository {
  get(username: string): LocalAccountRecord | undefined;
  /** @throws ImppError `ERR_INVALID_ARGUMENT` when the username exists. */
  insert(record: LocalAccountRecord): void;
  /** @returns `false` when the account does not exist. */
  updateCredential(username: string, credential: ScramCredential, at: number): boolean;
  /** @returns `false` when the account does not exist. */
  setDisabled(username: string, disabled: boolean, at: number): boolean;
  /** @returns `false` when the account does not exist. */
  delete(username: string): boolean;
  list(): LocalAccountSummary[];
  /**
   * Accounts updated at or after `since` (password, disabled flag): what the server polls to end
   * sessions after a change made by another process. Optional for other implementations.
   */
  changedSince?(since: number): readonly { username: string; updatedAt: number }[];
  close(): void;
}

/** Current schema version of the local account store. */
export const LOCAL_STORE_SCHEMA_VERSION = 1;

interface Row {
  username: string;
  kind: string;
  disabled: number;
  salt: Buffer;
  iterations: number;
  stored_key: Buffer;
  server_key: Buffer;
  created_at: number;
  updated_at: number;
}

function toRecord(row: Row): LocalAccountRecord {
  if (!isPrincipalKind(row.kind))
    throw new ImppError('ERR_STORAGE', 'local account has an unknown kind');
  return {
    username: row.username,
    kind: row.kind,
    disabled: row.disabled !== 0,
    credential: {
      salt: new Uint8Array(row.salt),
      iterations: row.iterations,
      storedKey: new Uint8Array(row.stored_key),
      serverKey: new Uint8Array(row.server_key),
    },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * SQLite repository. `path` `':memory:'` gives a throwaway database (tests).
 *
 * @example
 * ```ts
 * const repo = new SqliteLocalAccountRepository('/var/lib/impp/accounts.db');
 * ```
 */
export class SqliteLocalAccountRepository implements LocalAccountRepository {
  readonly #db: Database.Database;
  readonly #get: Database.Statement<[string], Row>;

  constructor(path: string) {
    try {
      this.#db = new Database(path);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('foreign_keys = ON');
      this.#migrate();
      this.#get = this.#db.prepare<[string], Row>(
        'SELECT * FROM local_accounts WHERE username = ?',
      );
    } catch (cause) {
      if (cause instanceof ImppError) throw cause;
      throw new ImppError('ERR_STORAGE', 'cannot open the local account store', { cause });
    }
  }

  #migrate(): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = this.#db
      .prepare<[], { version: number }>('SELECT version FROM schema_version')
      .get();
    if (row !== undefined && row.version > LOCAL_STORE_SCHEMA_VERSION) {
      throw new ImppError(
        'ERR_STORAGE',
        `local account store has schema ${row.version}, newer than this impp`,
      );
    }
    if (row === undefined) {
      this.#db.transaction(() => {
        this.#db.exec(`CREATE TABLE local_accounts (
          username   TEXT PRIMARY KEY NOT NULL,
          kind       TEXT NOT NULL,
          disabled   INTEGER NOT NULL DEFAULT 0,
          salt       BLOB NOT NULL,
          iterations INTEGER NOT NULL CHECK (iterations >= 4096),
          stored_key BLOB NOT NULL CHECK (length(stored_key) = 32),
          server_key BLOB NOT NULL CHECK (length(server_key) = 32),
          created_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL
        ) STRICT`);
        this.#db
          .prepare('INSERT INTO schema_version (version) VALUES (?)')
          .run(LOCAL_STORE_SCHEMA_VERSION);
      })();
    }
  }

  get(username: string): LocalAccountRecord | undefined {
    const row = this.#get.get(username);
    return row === undefined ? undefined : toRecord(row);
  }

  insert(r: LocalAccountRecord): void {
    const result = this.#db
      .prepare(
        `INSERT INTO local_accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(username) DO NOTHING`,
      )
      .run(
        r.username,
        r.kind,
        r.disabled ? 1 : 0,
        Buffer.from(r.credential.salt),
        r.credential.iterations,
        Buffer.from(r.credential.storedKey),
        Buffer.from(r.credential.serverKey),
        r.createdAt,
        r.updatedAt,
      );
    if (result.changes === 0) throw new ImppError('ERR_INVALID_ARGUMENT', 'account already exists');
  }

  updateCredential(username: string, c: ScramCredential, at: number): boolean {
    return (
      this.#db
        .prepare(
          'UPDATE local_accounts SET salt = ?, iterations = ?, stored_key = ?, server_key = ?, updated_at = ? WHERE username = ?',
        )
        .run(
          Buffer.from(c.salt),
          c.iterations,
          Buffer.from(c.storedKey),
          Buffer.from(c.serverKey),
          at,
          username,
        ).changes === 1
    );
  }

  setDisabled(username: string, disabled: boolean, at: number): boolean {
    return (
      this.#db
        .prepare('UPDATE local_accounts SET disabled = ?, updated_at = ? WHERE username = ?')
        .run(disabled ? 1 : 0, at, username).changes === 1
    );
  }

  delete(username: string): boolean {
    return (
      this.#db.prepare('DELETE FROM local_accounts WHERE username = ?').run(username).changes === 1
    );
  }

  list(): LocalAccountSummary[] {
    return this.#db
      .prepare<[], Row>('SELECT * FROM local_accounts ORDER BY username')
      .all()
      .map((row) => {
        const { credential, ...rest } = toRecord(row);
        return { ...rest, iterations: credential.iterations };
      });
  }

  changedSince(since: number): { username: string; updatedAt: number }[] {
    return this.#db
      .prepare<[number], { username: string; updated_at: number }>(
        'SELECT username, updated_at FROM local_accounts WHERE updated_at >= ?',
      )
      .all(since)
      .map((r) => ({ username: r.username, updatedAt: r.updated_at }));
  }

  close(): void {
    this.#db.close();
  }
}
