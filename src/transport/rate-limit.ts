/**
 * Token bucket (the classic shaper: `burst` tokens, refilled at `rate` per second) for the
 * per-connection frame-rate limit.
 */
import { performance } from 'node:perf_hooks';

/**
 * A token bucket. `take()` spends one token and says whether one was there.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket(200, 400);
 * if (!bucket.take()) conn.close(new ImppError('ERR_RATE_LIMITED', 'too many frames'));
 * ```
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  /**
   * @param rate tokens added per second
   * @param burst bucket size (and initial fill)
   * @param now clock in milliseconds (injectable for tests)
   */
  constructor(rate: number, burst: number, now: () => number = () => performance.now()) {
    this.#rate = rate;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  /** Spends one token; `false` when the bucket is empty. */
  take(): boolean {
    const now = this.#now();
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
      this.#last = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
