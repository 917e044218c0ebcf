/**
 * Per-peer inbound rate limits (issue 7, item 6; docs/protocol.md, Server-to-server §3): one
 * token bucket per authenticated peer domain, refilled at `rate` per second up to `burst`.
 *
 * For durable traffic the bucket is `quiet`: once it ran dry it stays closed until the peer has
 * been silent long enough to refill it to half, and every refused frame restarts that wait. The
 * sender's outbound driver keeps a window of objects in flight and, after a transient REJECT,
 * waits for all of them to be answered, backs off, and resends from its oldest unacknowledged
 * entry. A bucket that reopened while the rest of a refused window was still arriving would take
 * later objects after refusing earlier ones, out of order; refusing the whole window keeps a
 * peer's objects in order across the refusal. A peer that keeps sending while refused stays
 * refused; its back-off is what lets it in again. That is why the default is a flood guard well
 * above what one link delivers, not a throughput cap.
 *
 * Look-ups have no order to keep and are not retried by a driver: their bucket is a plain one
 * (refill whatever happens), so a peer asking a little too often is slowed, not shut out.
 */
import { performance } from 'node:perf_hooks';
import { ImppError } from '../errors.js';

/** A token bucket's parameters: `rate` tokens a second, at most `burst` saved up. */
export interface RateLimit {
  readonly rate: number;
  readonly burst: number;
}

/**
 * DATA frames per peer (every kind): a flood guard above what one link delivers through the
 * router (each object a device look-up and a durable write, one at a time), so that an honest
 * peer draining its queue after an outage is not throttled.
 */
export const DEFAULT_PEER_DATA_LIMIT: RateLimit = Object.freeze({ rate: 5000, burst: 10_000 });

/**
 * Look-ups per peer. Each bundle look-up hands out one-time prekeys of our users, which a peer
 * could otherwise drain for all of them (the client protocol bounds a session the same way).
 */
export const DEFAULT_PEER_LOOKUP_LIMIT: RateLimit = Object.freeze({ rate: 20, burst: 100 });

/** What {@link PeerRateLimiter.take} says. */
export type TakeResult =
  /** Within the limit. */
  | 'ok'
  /** Refused, and the first refusal since the peer was last within it (worth one audit line). */
  | 'tripped'
  /** Refused again. */
  | 'refused';

interface Bucket {
  tokens: number;
  last: number;
  /** Refused since the last success (a `quiet` bucket stays so until refilled to half). */
  closed: boolean;
}

/**
 * Token buckets keyed by peer domain. Only authenticated peers reach a limiter, so the map is
 * bounded by the federation's peers.
 *
 * @example
 * ```ts
 * const limiter = new PeerRateLimiter({ rate: 5000, burst: 10_000 }, { quiet: true });
 * if (limiter.take('b.example') !== 'ok') throw new ImppError('ERR_RATE_LIMITED', 'slow down');
 * ```
 */
export class PeerRateLimiter {
  readonly #limit: RateLimit;
  readonly #quiet: boolean;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  /**
   * @param options.quiet closed after running dry until the peer was silent long enough (see the
   *   module comment); default false
   * @param now milliseconds, monotonic enough (injectable for tests)
   */
  constructor(
    limit: RateLimit,
    options: { readonly quiet?: boolean } = {},
    now: () => number = () => performance.now(),
  ) {
    if (
      !Number.isFinite(limit.rate) ||
      limit.rate <= 0 ||
      !Number.isSafeInteger(limit.burst) ||
      limit.burst < 1
    ) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'a rate limit needs rate > 0 and burst >= 1');
    }
    this.#limit = limit;
    this.#quiet = options.quiet === true;
    this.#now = now;
  }

  /** Spends one of `peer`'s tokens. */
  take(peer: string): TakeResult {
    const now = this.#now();
    let bucket = this.#buckets.get(peer);
    if (bucket === undefined) {
      bucket = { tokens: this.#limit.burst, last: now, closed: false };
      this.#buckets.set(peer, bucket);
    }
    const refilled = Math.min(
      this.#limit.burst,
      bucket.tokens + (Math.max(0, now - bucket.last) * this.#limit.rate) / 1000,
    );
    bucket.last = now;
    if (bucket.closed && this.#quiet) {
      if (refilled < Math.max(1, this.#limit.burst / 2)) {
        // The silence it needed starts again from here.
        return 'refused';
      }
    }
    bucket.tokens = refilled;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      bucket.closed = false;
      return 'ok';
    }
    if (bucket.closed) return 'refused';
    bucket.closed = true;
    return 'tripped';
  }
}
