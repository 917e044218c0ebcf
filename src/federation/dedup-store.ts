/**
 * The durable {@link InboundDedup}: ids received from each origin domain, kept in the store
 * (table `fed_inbound_seen`, docs/storage.md) for a bounded time, so that duplicate suppression
 * (T46) survives a restart of the receiving server.
 *
 * An id is recorded only once its object was delivered (`confirm`, called by the link after
 * `deliver` resolved and before the ACK), or in the same transaction as the delivery
 * ({@link StoreDedup.atomicDeliver}). While a delivery runs, the claim is held in memory: a
 * second claim of the same id in this process waits for its outcome (a duplicate once it is
 * confirmed; delivered if it is released), and a crash forgets the claim, so the peer's retry (it
 * never got the ACK) is delivered. Nothing claimed but undelivered is lost; with
 * `atomicDeliver` nothing is delivered twice either (with a separate delivery, a crash between
 * its commit and the record can deliver the retry again).
 *
 * The age bound must exceed the longest time a peer may keep retrying an object (its queue
 * expiry, see outbound.ts): an id forgotten earlier could be delivered twice.
 */
import type { FederationSeenRepository } from '../service/store/types.js';
import { ClaimsInFlight, type InboundDedup, claimKey } from './dedup.js';
import type { InboundObject } from './link.js';
import { positiveInteger } from './options.js';

/** Options of {@link StoreDedup}. */
export interface StoreDedupOptions {
  /** How long an id is remembered, ms. Default 7 days. */
  readonly maxAgeMs?: number;
  /** Prune ids older than `maxAgeMs` after this many confirmations. Default 1000. */
  readonly pruneEvery?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
}

/** Default age bound of remembered ids: longer than the default outbound expiry (2 days). */
export const DEFAULT_DEDUP_MAX_AGE_MS = 7 * 24 * 3600_000;

/**
 * {@link InboundDedup} over a {@link FederationSeenRepository}.
 *
 * @example
 * ```ts
 * const dedup = new StoreDedup(store.federationSeen);
 * const fed = new FederationEndpoint({ local, trust, deliver, dedup });
 * ```
 */
export class StoreDedup implements InboundDedup {
  readonly #seen: FederationSeenRepository;
  readonly #maxAgeMs: number;
  readonly #pruneEvery: number;
  readonly #clock: () => number;
  /** Claims whose delivery is running in this process. */
  readonly #claimed = new ClaimsInFlight();
  /** Claims recorded with their delivery by {@link atomicDeliver}: `confirm` has nothing to do. */
  readonly #recorded = new Set<string>();
  #sincePrune = 0;

  constructor(seen: FederationSeenRepository, options: StoreDedupOptions = {}) {
    this.#seen = seen;
    this.#maxAgeMs = positiveInteger('maxAgeMs', options.maxAgeMs ?? DEFAULT_DEDUP_MAX_AGE_MS);
    this.#pruneEvery = positiveInteger('pruneEvery', options.pruneEvery ?? 1000);
    this.#clock = options.clock ?? Date.now;
  }

  async claim(origin: string, id: Uint8Array): Promise<boolean> {
    const key = claimKey(origin, id);
    while (this.#claimed.has(key)) await this.#claimed.wait(key);
    // Reserved before the read, so that two claims racing across the await cannot both win.
    this.#claimed.begin(key);
    try {
      if (await this.#seen.has(origin, id)) {
        this.#claimed.end(key);
        return false;
      }
    } catch (error) {
      this.#claimed.end(key);
      throw error;
    }
    return true;
  }

  async confirm(origin: string, id: Uint8Array): Promise<void> {
    const key = claimKey(origin, id);
    if (this.#recorded.delete(key)) {
      this.#claimed.end(key);
      return;
    }
    try {
      await this.#seen.record(origin, id, this.#clock());
    } finally {
      this.#claimed.end(key);
    }
    this.#sincePrune += 1;
    if (this.#sincePrune >= this.#pruneEvery) {
      this.#sincePrune = 0;
      // Best effort: a failed prune is retried after the next batch of confirmations.
      this.prune().catch(() => undefined);
    }
  }

  async release(origin: string, id: Uint8Array): Promise<void> {
    const key = claimKey(origin, id);
    this.#recorded.delete(key);
    try {
      await this.#seen.forget(origin, id);
    } finally {
      this.#claimed.end(key);
    }
  }

  /**
   * A `deliver` callback for the endpoint whose delivery is `write`, run in the same transaction
   * as the id record. `write` must be synchronous and write only to the database behind the
   * repository (SQLite: the same store). Then a crash either keeps both (the retry is dropped
   * as a duplicate) or neither (the retry is delivered): exactly once, where the plain
   * claim → deliver → confirm sequence is at least once.
   *
   * @example
   * ```ts
   * const deliver = dedup.atomicDeliver((o) => insertInbound.run(o.arrivedFrom, o.id, o.body));
   * new FederationEndpoint({ local, trust, dedup, deliver });
   * ```
   */
  atomicDeliver(write: (object: InboundObject) => void): (object: InboundObject) => Promise<void> {
    return async (object) => {
      const key = claimKey(object.arrivedFrom, object.id);
      await this.#seen.record(object.arrivedFrom, object.id, this.#clock(), () => {
        write(object);
      });
      this.#recorded.add(key);
    };
  }

  /** Forgets ids older than the age bound; resolves with how many. */
  async prune(): Promise<number> {
    let total = 0;
    const before = Math.max(0, this.#clock() - this.#maxAgeMs);
    for (;;) {
      const n = await this.#seen.prune(before, 10_000);
      total += n;
      if (n < 10_000) return total;
    }
  }
}
