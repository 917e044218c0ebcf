/**
 * The replay cache of a receiving device: message ids it has opened, each with the SHA-256 of
 * the exact object, bounded and evicted oldest first (a replay older than the cache still fails,
 * because the ratchet deleted its message key: Double Ratchet §6.4).
 */
import { constantTimeEqual, toHex } from '../crypto/index.js';
import { REPLAY_CACHE_SIZE } from './constants.js';

/**
 * Bounded set of seen message ids.
 *
 * @example
 * ```ts
 * const cache = new ReplayCache(10_000);
 * if (cache.isExactReplay(id, sha256(bytes))) refuse();
 * ```
 */
export class ReplayCache {
  readonly #seen = new Map<string, Uint8Array>();
  readonly #capacity: number;

  constructor(capacity = REPLAY_CACHE_SIZE) {
    this.#capacity = capacity;
  }

  /** `true` when this id was opened before. */
  has(messageId: Uint8Array): boolean {
    return this.#seen.has(toHex(messageId));
  }

  /** `true` when exactly these bytes (by digest) were opened before under this id. */
  isExactReplay(messageId: Uint8Array, digest: Uint8Array): boolean {
    const known = this.#seen.get(toHex(messageId));
    return known !== undefined && constantTimeEqual(known, digest);
  }

  /** Records an opened object; evicts the oldest entries beyond the capacity. */
  add(messageId: Uint8Array, digest: Uint8Array): void {
    this.#seen.set(toHex(messageId), Uint8Array.from(digest));
    while (this.#seen.size > this.#capacity) {
      const oldest = this.#seen.keys().next().value;
      if (oldest === undefined) break;
      this.#seen.delete(oldest);
    }
  }

  /** Number of remembered ids. */
  get size(): number {
    return this.#seen.size;
  }

  /** Entries oldest first, as `[messageId, digest]`. */
  entries(): [Uint8Array, Uint8Array][] {
    return [...this.#seen].map(([id, d]) => [Uint8Array.from(Buffer.from(id, 'hex')), d]);
  }
}
