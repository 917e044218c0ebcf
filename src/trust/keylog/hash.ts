/**
 * Merkle tree hashing of RFC 9162 §2.1.1 (unchanged from RFC 6962 §2.1), with SHA-256.
 *
 * The 0x00 / 0x01 prefixes separate leaves from interior nodes, so no interior node can be passed
 * off as a leaf (second-preimage resistance of the tree, RFC 9162 §2.1.1).
 */
import { concatBytes, sha256, SHA256_BYTES } from '../../crypto/index.js';

/** Length of every hash in the log (SHA-256). */
export const KEYLOG_HASH_BYTES = SHA256_BYTES;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/**
 * The hash of an empty tree: `MTH({}) = HASH()` (RFC 9162 §2.1.1).
 *
 * @example
 * ```ts
 * toHex(emptyRoot()); // 'e3b0c442…'
 * ```
 */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/**
 * Leaf hash: `MTH({d(0)}) = HASH(0x00 || d(0))` (RFC 9162 §2.1.1).
 *
 * @example
 * ```ts
 * const h = leafHash(entryBytes);
 * ```
 */
export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256(concatBytes(LEAF_PREFIX, entry));
}

/**
 * Interior node hash: `HASH(0x01 || left || right)` (RFC 9162 §2.1.1).
 *
 * @example
 * ```ts
 * const parent = nodeHash(leftChild, rightChild);
 * ```
 */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

/**
 * The largest power of two strictly smaller than `n` (n ≥ 2): the split point `k` of
 * RFC 9162 §2.1.1. Arithmetic, not bit operations, so sizes up to 2⁵³ work.
 */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** `true` when `n` is a power of two (n ≥ 1). */
export function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  let x = n;
  while (x % 2 === 0) x /= 2;
  return x === 1;
}

/**
 * Reference Merkle Tree Hash over a list of entries, written directly from the recursive
 * definition of RFC 9162 §2.1.1. O(n) hashes; used by tests and small logs.
 *
 * @example
 * ```ts
 * const root = merkleTreeHash([entry0, entry1, entry2]);
 * ```
 */
export function merkleTreeHash(entries: readonly Uint8Array[]): Uint8Array {
  const n = entries.length;
  if (n === 0) return emptyRoot();
  if (n === 1) return leafHash(entries[0] as Uint8Array);
  const k = splitPoint(n);
  return nodeHash(merkleTreeHash(entries.slice(0, k)), merkleTreeHash(entries.slice(k)));
}
