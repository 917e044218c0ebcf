/**
 * Duplicate suppression at the receiving domain (T46): every object that crosses a link carries
 * an id unique per origin domain, and the receiver delivers each (origin, id) at most once.
 *
 * The seam is small and async so that a store-backed implementation (the next step of issue 7:
 * ids kept in SQLite beside the delivered objects, in the same transaction) can replace the
 * in-memory one without touching the link.
 */
import { toHex } from '../crypto/index.js';
import { ImppError } from '../errors.js';

/**
 * Remembers which object ids have been received from which origin domain.
 *
 * When `claim` is called, the link has checked that `origin` is the authenticated peer; `id` is
 * 16 bytes chosen by that peer and is not otherwise verified.
 */
export interface InboundDedup {
  /** Records `(origin, id)`; true if it had not been recorded before (deliver it). */
  claim(origin: string, id: Uint8Array): Promise<boolean> | boolean;
  /** Forgets a claim whose delivery failed, so that the peer's retry is delivered. */
  release(origin: string, id: Uint8Array): Promise<void> | void;
  /**
   * Called after the object was delivered (durably) and before the ACK: a durable filter
   * records the id here, so that a crash between claim and delivery loses nothing.
   */
  confirm?(origin: string, id: Uint8Array): Promise<void> | void;
}

/**
 * In-memory {@link InboundDedup}, bounded: it remembers the last `capacity` ids (oldest forgotten
 * first). For tests and single-process development; a restart forgets everything, so durable
 * deployments need the store-backed implementation.
 *
 * @example
 * ```ts
 * const dedup = new MemoryDedup({ capacity: 100_000 });
 * if (await dedup.claim('b.example', id)) deliver(object);
 * ```
 */
export class MemoryDedup implements InboundDedup {
  readonly #capacity: number;
  readonly #seen = new Set<string>();

  constructor(options: { readonly capacity?: number } = {}) {
    const capacity = options.capacity ?? 100_000;
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'capacity must be a positive integer');
    }
    this.#capacity = capacity;
  }

  /** Ids currently remembered. */
  get size(): number {
    return this.#seen.size;
  }

  claim(origin: string, id: Uint8Array): boolean {
    const key = `${origin} ${toHex(id)}`;
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    if (this.#seen.size > this.#capacity) {
      // Sets iterate in insertion order: the first key is the oldest.
      const oldest = this.#seen.values().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
    return true;
  }

  release(origin: string, id: Uint8Array): void {
    this.#seen.delete(`${origin} ${toHex(id)}`);
  }
}
