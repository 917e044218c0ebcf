/**
 * {@link KeyLogStorage} on SQLite. Synchronous by the interface's contract; each `append` is its
 * own IMMEDIATE transaction (entry and nodes together, or nothing) committed at the database's
 * durability level before it returns.
 */
import type Database from 'better-sqlite3';
import type { KeyLogNode, KeyLogStorage } from '../../../trust/keylog/storage.js';
import { blob, toBuffer } from './context.js';

/**
 * A key log kept in the service database. Several logs can share one database under different
 * `name`s (one per served domain).
 *
 * @example
 * ```ts
 * const log = new KeyLog({ domain: 'example.org', storage: new SqliteKeyLogStorage(db, 'example.org') });
 * ```
 */
export class SqliteKeyLogStorage implements KeyLogStorage {
  readonly #size;
  readonly #entry;
  readonly #node;
  readonly #levelSize;
  readonly #append: Database.Transaction<(entry: Uint8Array, nodes: readonly KeyLogNode[]) => void>;

  readonly #durable: () => void;

  /**
   * @param durable called after each append committed; the service store passes its blocking
   *   WAL sync here, since its connection commits at `synchronous = NORMAL` (./wal-sync.ts).
   */
  constructor(db: Database.Database, name = 'default', durable: () => void = () => undefined) {
    this.#durable = durable;
    const entry = db
      .prepare<[string, number], Buffer>(
        'SELECT entry FROM keylog_entries WHERE log = ? AND idx = ?',
      )
      .pluck();
    const node = db
      .prepare<[string, number, number], Buffer>(
        'SELECT hash FROM keylog_nodes WHERE log = ? AND level = ? AND idx = ?',
      )
      .pluck();
    // max(idx) + 1 through the primary key: O(log n), unlike count(*).
    const levelSize = db
      .prepare<[string, number], number>(
        'SELECT coalesce(max(idx) + 1, 0) FROM keylog_nodes WHERE log = ? AND level = ?',
      )
      .pluck();
    const insertEntry = db.prepare<[string, number, Buffer]>(
      'INSERT INTO keylog_entries (log, idx, entry) VALUES (?, ?, ?)',
    );
    const insertNode = db.prepare<[string, number, number, Buffer]>(
      'INSERT INTO keylog_nodes (log, level, idx, hash) VALUES (?, ?, ?, ?)',
    );
    const lastIndex = db
      .prepare<[string], number>(
        'SELECT coalesce(max(idx) + 1, 0) FROM keylog_entries WHERE log = ?',
      )
      .pluck();
    this.#size = (): number => lastIndex.get(name) ?? 0;
    this.#entry = (index: number): Buffer | undefined => entry.get(name, index);
    this.#node = (level: number, index: number): Buffer | undefined => node.get(name, level, index);
    this.#levelSize = (level: number): number => levelSize.get(name, level) ?? 0;
    this.#append = db.transaction((e: Uint8Array, nodes: readonly KeyLogNode[]) => {
      // Same checks as the in-memory backend: entries and each level grow by exactly one slot.
      for (const n of nodes) {
        if (n.index !== this.#levelSize(n.level))
          throw new RangeError('node appended out of order');
        insertNode.run(name, n.level, n.index, toBuffer(n.hash));
      }
      insertEntry.run(name, this.#size(), toBuffer(e));
    });
  }

  size(): number {
    return this.#size();
  }

  entry(index: number): Uint8Array | undefined {
    const e = this.#entry(index);
    return e === undefined ? undefined : blob(e);
  }

  node(level: number, index: number): Uint8Array | undefined {
    const h = this.#node(level, index);
    return h === undefined ? undefined : blob(h);
  }

  append(entry: Uint8Array, nodes: readonly KeyLogNode[]): void {
    this.#append.immediate(entry, nodes);
    this.#durable();
  }
}
