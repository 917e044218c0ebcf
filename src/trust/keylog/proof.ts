/**
 * Inclusion and consistency proofs of RFC 9162 §2.1.3 and §2.1.4: generation over any source of
 * subtree hashes, and the verification algorithms of §2.1.3.2 and §2.1.4.2, step by step.
 *
 * Verification functions return `false` for every malformed or wrong input (a proof element not
 * 32 bytes, an index out of range, a path too short or too long) and never throw, so callers
 * have exactly one failure path; the log verifier turns `false` into a typed error.
 */
import { KEYLOG_HASH_BYTES, isPowerOfTwo, nodeHash, splitPoint } from './hash.js';

/** Upper bound on proof length: enough for any tree of up to 2⁶³ leaves. */
export const MAX_PROOF_HASHES = 64;

/** `MTH(D[start:end])` for 0 ≤ start < end ≤ size; supplied by the log's storage. */
export type RangeHasher = (start: number, end: number) => Uint8Array;

function isSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === KEYLOG_HASH_BYTES;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

const half = (x: number): number => Math.floor(x / 2);
const odd = (x: number): boolean => x % 2 === 1;

/**
 * `PATH(m, D[n])` of RFC 9162 §2.1.3.1 for the leaf at `index` in a tree of `size` leaves,
 * ordered from the leaf's sibling up to the root's child.
 *
 * @example
 * ```ts
 * const proof = inclusionPath(3, 10, (a, b) => log.rangeHash(a, b));
 * ```
 */
export function inclusionPath(index: number, size: number, range: RangeHasher): Uint8Array[] {
  if (!isSize(size) || !isSize(index) || index >= size) {
    throw new RangeError('inclusionPath: index must be < size');
  }
  const path: Uint8Array[] = [];
  // Walk down from the root, remembering siblings; the RFC's recursion appends them bottom-up.
  let start = 0;
  let end = size;
  let m = index;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (m < k) {
      path.push(range(start + k, end));
      end = start + k;
    } else {
      path.push(range(start, start + k));
      start += k;
      m -= k;
    }
  }
  return path.reverse();
}

/**
 * `PROOF(m, D[n])` of RFC 9162 §2.1.4.1: the consistency proof from the tree of `first` leaves
 * to the tree of `second` leaves (0 < first ≤ second). Empty when first = second.
 *
 * @example
 * ```ts
 * const proof = consistencyPath(6, 8, (a, b) => log.rangeHash(a, b));
 * ```
 */
export function consistencyPath(first: number, second: number, range: RangeHasher): Uint8Array[] {
  if (!isSize(first) || !isSize(second) || first < 1 || first > second) {
    throw new RangeError('consistencyPath: need 0 < first <= second');
  }
  const proof: Uint8Array[] = [];
  // SUBPROOF(m, D[start:end], b), unrolled: each level appends one hash after the sub-proof,
  // so collect top-down and reverse at the end.
  let start = 0;
  let end = second;
  let m = first;
  let b = true;
  while (m !== end - start) {
    const n = end - start;
    const k = splitPoint(n);
    if (m <= k) {
      proof.push(range(start + k, end));
      end = start + k;
    } else {
      proof.push(range(start, start + k));
      start += k;
      m -= k;
      b = false;
    }
  }
  // SUBPROOF(m, D[m], b): empty when b is still true, else MTH(D[m]) itself.
  if (!b) proof.push(range(start, end));
  return proof.reverse();
}

/**
 * The root an inclusion proof leads to, per RFC 9162 §2.1.3.2 steps 1–5, or `undefined` when
 * the proof is malformed for this index and size.
 *
 * @example
 * ```ts
 * const root = rootFromInclusionProof(leafHash(entry), 3, 10, proof);
 * ```
 */
export function rootFromInclusionProof(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
): Uint8Array | undefined {
  if (!isSize(index) || !isSize(size) || !isHash(leaf)) return undefined;
  if (!Array.isArray(proof) || proof.length > MAX_PROOF_HASHES) return undefined;
  // 1. leaf_index >= tree_size fails.
  if (index >= size) return undefined;
  // 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  // 4. For each p in the inclusion path:
  for (const p of proof) {
    if (!isHash(p)) return undefined;
    if (sn === 0) return undefined;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 5. sn must be 0.
  return sn === 0 ? r : undefined;
}

/**
 * Verifies an inclusion proof (RFC 9162 §2.1.3.2): `true` only if `leaf` (a leaf *hash*) is at
 * `index` in the tree of `size` leaves whose root is `root`.
 *
 * @example
 * ```ts
 * if (!verifyInclusion(leafHash(entry), index, head.treeSize, proof, head.rootHash)) reject();
 * ```
 */
export function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(root)) return false;
  const computed = rootFromInclusionProof(leaf, index, size, proof);
  return computed !== undefined && bytesEqual(computed, root);
}

/**
 * Verifies a consistency proof (RFC 9162 §2.1.4.2): `true` only if the tree of `second` leaves
 * with root `secondRoot` extends the tree of `first` leaves with root `firstRoot`.
 * Equal sizes need an empty proof and equal roots; from an empty tree anything is consistent
 * with an empty proof; a smaller second tree never is.
 *
 * @example
 * ```ts
 * if (!verifyConsistency(old.treeSize, next.treeSize, proof, old.rootHash, next.rootHash)) fork();
 * ```
 */
export function verifyConsistency(
  first: number,
  second: number,
  proof: readonly Uint8Array[],
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
): boolean {
  if (!isSize(first) || !isSize(second) || first > second) return false;
  if (!isHash(firstRoot) || !isHash(secondRoot)) return false;
  if (!Array.isArray(proof) || proof.length > MAX_PROOF_HASHES) return false;
  if (!proof.every(isHash)) return false;
  if (first === second) return proof.length === 0 && bytesEqual(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0;
  // 1. An empty consistency path fails.
  if (proof.length === 0) return false;
  // 2. If first is an exact power of 2, prepend first_hash.
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  // 3. fn = first - 1, sn = second - 1.
  let fn = first - 1;
  let sn = second - 1;
  // 4. If LSB(fn) is set, right-shift both until it is not.
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // 5. fr = sr = first value of the path.
  let fr = path[0] as Uint8Array;
  let sr = fr;
  // 6. For each subsequent value c:
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 7. fr = first_hash, sr = second_hash, sn = 0.
  return sn === 0 && bytesEqual(fr, firstRoot) && bytesEqual(sr, secondRoot);
}
