/**
 * Duplicate suppression at the receiving domain (T46): every object that crosses a link carries
 * an id unique per origin domain, and the receiver delivers each (origin, id) at most once.
 *
 * The seam is small and async so that a store-backed implementation (the next step of issue 7:
 * ids kept in SQLite beside the delivered objects, in the same transaction) can replace the
 * in-memory one without touching the link.
 */
import { toHex } from '../crypto/index.js';
import { positiveInteger } from './options.js';

/**
 * Remembers which object ids have been received from which origin domain.
 *
 * When `claim` is called, the link has checked that `origin` is the authenticated peer; `id` is
 * 16 bytes chosen by that peer and is not otherwise verified.
 */
export interface InboundDedup {
  /**
   * Records `(origin, id)`; true if it had not been recorded before (deliver it). While an
   * earlier claim of the same id is being delivered (a retry on a new link racing the old link's
   * delivery), waits for its outcome: false once it is confirmed, true (this claim takes over)
   * once it is released. Answering "duplicate" at once would have the peer drop an object whose
   * only delivery may still fail.
   */
  claim(origin: string, id: Uint8Array): Promise<boolean> | boolean;
  /** Forgets a claim whose delivery failed, so that the peer's retry is delivered. */
  release(origin: string, id: Uint8Array): Promise<void> | void;
  /**
   * Called after the object was delivered (durably) and before the ACK: a durable filter
   * records the id here, so that a crash between claim and delivery loses nothing.
   */
  confirm?(origin: string, id: Uint8Array): Promise<void> | void;
}

/** The key of one `(origin, id)` in both filters. */
export function claimKey(origin: string, id: Uint8Array): string {
  return `${origin} ${toHex(id)}`;
}

/**
 * Claims whose delivery is running: a later claim of the same key waits for the outcome.
 * Shared by both implementations.
 */
export class ClaimsInFlight {
  readonly #running = new Map<string, { readonly done: Promise<void>; readonly end: () => void }>();

  /** Whether `key` is being delivered. */
  has(key: string): boolean {
    return this.#running.has(key);
  }

  /**
   * Resolves when the delivery of `key` running now ends. Callers loop on {@link has}: several
   * may wake at once, and the first to check again (synchronously, then {@link begin}) wins.
   */
  wait(key: string): Promise<void> {
    return this.#running.get(key)?.done ?? Promise.resolve();
  }

  /** Marks `key` as being delivered. */
  begin(key: string): void {
    let end = (): void => undefined;
    const done = new Promise<void>((resolve) => {
      end = resolve;
    });
    this.#running.set(key, { done, end });
  }

  /** The delivery of `key` ended (confirmed or released): wake whoever waits. */
  end(key: string): void {
    const running = this.#running.get(key);
    if (running === undefined) return;
    this.#running.delete(key);
    running.end();
  }
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
  readonly #inFlight = new ClaimsInFlight();

  constructor(options: { readonly capacity?: number } = {}) {
    this.#capacity = positiveInteger('capacity', options.capacity ?? 100_000);
  }

  /** Ids currently remembered. */
  get size(): number {
    return this.#seen.size;
  }

  claim(origin: string, id: Uint8Array): boolean | Promise<boolean> {
    const key = claimKey(origin, id);
    if (this.#inFlight.has(key)) {
      return this.#inFlight.wait(key).then(() => this.claim(origin, id));
    }
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    this.#inFlight.begin(key);
    if (this.#seen.size > this.#capacity) {
      // Sets iterate in insertion order: the first key is the oldest.
      const oldest = this.#seen.values().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
    return true;
  }

  confirm(origin: string, id: Uint8Array): void {
    this.#inFlight.end(claimKey(origin, id));
  }

  release(origin: string, id: Uint8Array): void {
    const key = claimKey(origin, id);
    this.#seen.delete(key);
    this.#inFlight.end(key);
  }
}
