/**
 * Authentication rate limits: per account, per source address, and one global throttle.
 *
 * Algorithm (deliberately NOT a lockout). Each key (an account name, a source address) has a
 * failure count that decays: after `forgetAfterMs` without failures it is forgotten. The first
 * `burst` failures cost nothing; after that, each failure pushes the next allowed attempt for that
 * key out by `baseDelayMs × 2^(failures − burst)`, capped at `maxDelayMs`. An attempt that
 * arrives before that time is answered `temporary-auth-failure` without asking the provider.
 *
 * Why this shape:
 * - A hard lockout ("5 failures and the account is locked") lets anyone lock any user out. Here the
 *   worst an attacker can do to an account is hold it at one attempt per `maxDelayMs`.
 * - Known-good sources: a source address from which an account has logged in successfully (within
 *   `forgetAfterMs × 24`) skips the *account* penalty for that account (it still pays its own
 *   source penalty). So an attacker hammering `alice` from elsewhere slows the attacker, not
 *   Alice's laptop. (A source sharing Alice's NAT address shares that benefit: documented limit.)
 * - Per-source limits slow one attacker spraying many accounts; the global throttle bounds the
 *   CPU an attack from many addresses can consume (exchanges started per second).
 * - Unknown accounts are limited exactly like known ones (keys are the claimed names), so the
 *   limiter is no enumeration oracle.
 *
 * Memory is bounded: each table holds at most `maxEntries` keys, evicting the oldest.
 */
import { AuthError, type RateLimitPolicy } from './types.js';

interface Penalty {
  failures: number;
  lastFailureAt: number;
  notBefore: number;
}

/** Defaults: 5 free failures, then 250 ms doubling up to 60 s; forget after 15 min; 2000 starts/s. */
export const DEFAULT_RATE_LIMIT: RateLimitPolicy = {
  accountBurst: 5,
  sourceBurst: 20,
  baseDelayMs: 250,
  maxDelayMs: 60_000,
  forgetAfterMs: 15 * 60_000,
  globalPerSecond: 2000,
};

/**
 * In-memory rate limiter for one server process.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter(DEFAULT_RATE_LIMIT);
 * limiter.checkStart('192.0.2.1');            // throws AuthError 'rate-limited' when throttled
 * limiter.checkAccount('alice', '192.0.2.1');
 * limiter.recordFailure('alice', '192.0.2.1');
 * ```
 */
export class RateLimiter {
  readonly #accounts = new Map<string, Penalty>();
  readonly #sources = new Map<string, Penalty>();
  readonly #knownGood = new Map<string, number>();
  #tokens: number;
  #refilledAt: number;

  constructor(
    private readonly policy: RateLimitPolicy,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {
    this.#tokens = policy.globalPerSecond;
    this.#refilledAt = now();
  }

  /** At the start of an exchange: the global throttle and the source penalty. */
  checkStart(source: string | undefined): void {
    const t = this.now();
    const elapsed = Math.max(0, t - this.#refilledAt);
    this.#tokens = Math.min(
      this.policy.globalPerSecond,
      this.#tokens + (elapsed * this.policy.globalPerSecond) / 1000,
    );
    this.#refilledAt = t;
    if (this.#tokens < 1) throw new AuthError('rate-limited', 'global authentication throttle');
    this.#tokens -= 1;
    if (source !== undefined && this.#blocked(this.#sources, source, t)) {
      throw new AuthError('rate-limited', 'source address is backing off after failures');
    }
  }

  /** When the claimed account is known: the account penalty, unless the source is known-good. */
  checkAccount(account: string, source: string | undefined): void {
    const t = this.now();
    if (source !== undefined && this.#isKnownGood(account, source, t)) return;
    if (this.#blocked(this.#accounts, account, t)) {
      throw new AuthError('rate-limited', 'account is backing off after failures');
    }
  }

  /** Records a failed exchange against the claimed account (if any) and the source. */
  recordFailure(account: string | null, source: string | undefined): void {
    const t = this.now();
    if (account !== null) this.#penalise(this.#accounts, account, this.policy.accountBurst, t);
    if (source !== undefined) this.#penalise(this.#sources, source, this.policy.sourceBurst, t);
  }

  /**
   * Records a success: remembers the source as known-good for this account. It deliberately
   * clears no penalty: otherwise an attacker with one valid account could reset its source's
   * back-off between guesses at other accounts by logging into its own.
   */
  recordSuccess(account: string, source: string | undefined): void {
    if (source === undefined) return;
    const key = `${account}\u0000${source}`;
    this.#knownGood.delete(key);
    this.#knownGood.set(key, this.now());
    this.#bound(this.#knownGood);
  }

  #isKnownGood(account: string, source: string, t: number): boolean {
    const at = this.#knownGood.get(`${account}\u0000${source}`);
    return at !== undefined && t - at < this.policy.forgetAfterMs * 24;
  }

  #blocked(table: Map<string, Penalty>, key: string, t: number): boolean {
    const p = table.get(key);
    if (p === undefined) return false;
    if (t - p.lastFailureAt > this.policy.forgetAfterMs) {
      table.delete(key);
      return false;
    }
    return t < p.notBefore;
  }

  #penalise(table: Map<string, Penalty>, key: string, burst: number, t: number): void {
    let p = table.get(key);
    if (p === undefined || t - p.lastFailureAt > this.policy.forgetAfterMs) {
      p = { failures: 0, lastFailureAt: t, notBefore: 0 };
    }
    table.delete(key); // re-insert: Map order = recency, for eviction
    p.failures += 1;
    p.lastFailureAt = t;
    if (p.failures > burst) {
      const exponent = Math.min(30, p.failures - burst - 1);
      p.notBefore = t + Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** exponent);
    }
    table.set(key, p);
    this.#bound(table);
  }

  #bound(table: Map<string, unknown>): void {
    while (table.size > this.maxEntries) {
      const oldest = table.keys().next();
      if (oldest.done === true) break;
      table.delete(oldest.value);
    }
  }
}
