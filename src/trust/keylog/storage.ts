/**
 * Storage seam of the key log. The log logic (log.ts) computes every hash; storage only keeps
 * entries and the hashes of *perfect* subtrees (2^level leaves, aligned), which is all that is
 * needed to answer any root or proof in O(log n) lookups and hashes.
 *
 * The interface is synchronous on purpose: the production backend is better-sqlite3 (synchronous
 * too), and `append` must be one transaction (entry and nodes together, or nothing).
 */

/** The hash of the perfect subtree covering leaves `[index·2^level, (index+1)·2^level)`. */
export interface KeyLogNode {
  readonly level: number;
  readonly index: number;
  readonly hash: Uint8Array;
}

/**
 * Where a key log keeps its entries and subtree hashes.
 *
 * What it is *not* trusted for: nothing read back from storage is re-verified by the log, so a
 * backend must return exactly what was appended. Clients do not trust the log at all: they check
 * signed tree heads and proofs with {@link KeyLogVerifier}.
 */
export interface KeyLogStorage {
  /** Number of entries appended so far. */
  size(): number;
  /** The entry at `index`, or `undefined` when out of range. */
  entry(index: number): Uint8Array | undefined;
  /** The perfect-subtree hash at (`level`, `index`), or `undefined` when not (yet) complete. */
  node(level: number, index: number): Uint8Array | undefined;
  /**
   * Appends entry number `size()` together with the perfect subtrees it completes (level 0 is its
   * leaf hash). Atomic: on failure nothing is stored.
   */
  append(entry: Uint8Array, nodes: readonly KeyLogNode[]): void;
}

/**
 * In-memory {@link KeyLogStorage}. FOR TESTS AND DEVELOPMENT ONLY: everything is lost when the
 * process exits, and a key log that forgets its history cannot prove consistency afterwards.
 *
 * @example
 * ```ts
 * const log = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });
 * ```
 */
export class MemoryKeyLogStorage implements KeyLogStorage {
  readonly #entries: Uint8Array[] = [];
  /** levels[level][index]: perfect subtree hashes; about 2n hashes in total. */
  readonly #levels: Uint8Array[][] = [];

  size(): number {
    return this.#entries.length;
  }

  entry(index: number): Uint8Array | undefined {
    const e = this.#entries[index];
    return e === undefined ? undefined : Uint8Array.from(e);
  }

  node(level: number, index: number): Uint8Array | undefined {
    return this.#levels[level]?.[index];
  }

  append(entry: Uint8Array, nodes: readonly KeyLogNode[]): void {
    // Validate everything before mutating so a failed append stores nothing.
    for (const n of nodes) {
      const row = this.#levels[n.level];
      const length = row?.length ?? 0;
      if (n.index !== length) throw new RangeError('node appended out of order');
    }
    this.#entries.push(Uint8Array.from(entry));
    for (const n of nodes) {
      let row = this.#levels[n.level];
      if (row === undefined) {
        row = [];
        this.#levels[n.level] = row;
      }
      row.push(Uint8Array.from(n.hash));
    }
  }
}
