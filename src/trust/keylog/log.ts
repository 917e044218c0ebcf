/**
 * The server side of a domain's key log: an append-only Merkle log (RFC 9162 §2.1) of
 * address→key binding entries (enrolment statements), with roots, inclusion proofs, consistency
 * proofs and signed tree heads.
 *
 * Complexity (n entries): `append` costs 1 leaf hash plus one node hash per perfect subtree the
 * new leaf completes: O(log n) worst case, O(1) amortised (≤ 2 hashes on average). `root(size)`
 * for any historical size costs O(log n) hashes (one per 1-bit of the size). Proofs cost
 * O(log n) lookups and at most O(log² n) hashes (each non-perfect right-hand subtree on the path
 * is hashed from its O(log n) perfect parts); in practice a few dozen hashes. Storage keeps about
 * 2n hashes.
 */
import { ImppError } from '../../errors.js';
import { type SecretBytes } from '../../crypto/index.js';
import { assertTimestamp } from '../identity.js';
import { emptyRoot, isPowerOfTwo, leafHash, nodeHash, splitPoint } from './hash.js';
import { consistencyPath, inclusionPath } from './proof.js';
import { type KeyLogNode, type KeyLogStorage } from './storage.js';
import { signTreeHead, type SignedTreeHead } from './tree-head.js';

/** Largest entry the log accepts (an enrolment statement with a certificate fits easily). */
export const KEYLOG_MAX_ENTRY_BYTES = 64 * 1024;

/** Where an appended entry landed. */
export interface KeyLogAppendResult {
  readonly index: number;
  readonly leafHash: Uint8Array;
}

/**
 * A domain's append-only key log over a {@link KeyLogStorage}.
 *
 * @example
 * ```ts
 * const log = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });
 * const { index } = log.append(statement.bytes);
 * const head = log.signHead(domainLogKey.secretKey);
 * const proof = log.inclusionProof(index, head.treeSize);
 * ```
 */
export class KeyLog {
  readonly domain: string;
  readonly #storage: KeyLogStorage;

  constructor(options: { domain: string; storage: KeyLogStorage }) {
    this.domain = options.domain;
    this.#storage = options.storage;
  }

  /** Number of entries. */
  get size(): number {
    return this.#storage.size();
  }

  /** Appends one entry (opaque bytes, 1..64 KiB) and returns its index and leaf hash. */
  append(entry: Uint8Array): KeyLogAppendResult {
    if (
      !(entry instanceof Uint8Array) ||
      entry.length === 0 ||
      entry.length > KEYLOG_MAX_ENTRY_BYTES
    ) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        `key log entry must be 1..${KEYLOG_MAX_ENTRY_BYTES} bytes`,
      );
    }
    const index = this.#storage.size();
    const leaf = leafHash(entry);
    const nodes: KeyLogNode[] = [{ level: 0, index, hash: leaf }];
    // Each time the new node is a right child, its parent subtree becomes complete.
    let hash = leaf;
    let i = index;
    let level = 0;
    while (i % 2 === 1) {
      const left = this.#storage.node(level, i - 1);
      if (left === undefined)
        throw new ImppError('ERR_STORAGE', 'key log storage lost a subtree hash');
      hash = nodeHash(left, hash);
      i = (i - 1) / 2;
      level++;
      nodes.push({ level, index: i, hash });
    }
    this.#storage.append(entry, nodes);
    return { index, leafHash: leaf };
  }

  /** The entry at `index`. */
  entry(index: number): Uint8Array {
    const e = this.#storage.entry(index);
    if (e === undefined) throw new ImppError('ERR_NOT_FOUND', 'no key log entry at that index');
    return e;
  }

  /**
   * `MTH(D[start:end])` (RFC 9162 §2.1.1), from stored perfect subtrees where aligned.
   *
   * @example
   * ```ts
   * const right = log.rangeHash(8, 13);
   * ```
   */
  rangeHash(start: number, end: number): Uint8Array {
    const n = end - start;
    if (!Number.isSafeInteger(start) || start < 0 || n < 1 || end > this.size) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'range is outside the log');
    }
    if (isPowerOfTwo(n) && start % n === 0) {
      const level = Math.log2(n);
      const stored = this.#storage.node(level, start / n);
      if (stored === undefined)
        throw new ImppError('ERR_STORAGE', 'key log storage lost a subtree hash');
      // A copy: roots and proofs go to callers, and a caller that edits one must not edit the
      // log (storage may hand out the array it keeps).
      return Uint8Array.from(stored);
    }
    const k = splitPoint(n);
    return nodeHash(this.rangeHash(start, start + k), this.rangeHash(start + k, end));
  }

  /** The root hash of the tree of the first `size` entries (default: all). */
  root(size = this.size): Uint8Array {
    this.#checkSize(size);
    return size === 0 ? emptyRoot() : this.rangeHash(0, size);
  }

  /** Inclusion proof of entry `index` in the tree of `size` entries (RFC 9162 §2.1.3.1). */
  inclusionProof(index: number, size = this.size): Uint8Array[] {
    this.#checkSize(size);
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'index is outside the tree');
    }
    return inclusionPath(index, size, (a, b) => this.rangeHash(a, b));
  }

  /** Consistency proof from the tree of `first` entries to that of `second` (RFC 9162 §2.1.4.1). */
  consistencyProof(first: number, second = this.size): Uint8Array[] {
    this.#checkSize(second);
    if (!Number.isSafeInteger(first) || first < 0 || first > second) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'first size must be 0..second');
    }
    if (first === 0) return [];
    return consistencyPath(first, second, (a, b) => this.rangeHash(a, b));
  }

  /** Signs the current head with the domain's Ed25519 log key. */
  signHead(logKey: SecretBytes, timestamp = Date.now()): SignedTreeHead {
    return signTreeHead(
      {
        domain: this.domain,
        treeSize: this.size,
        rootHash: this.root(),
        timestamp: assertTimestamp(timestamp, 'timestamp'),
      },
      logKey,
    );
  }

  #checkSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'tree size is outside the log');
    }
  }
}
