/**
 * The server side of authentication: which mechanisms to offer on a channel, running one
 * exchange, rate limits, uniform failure answers and the audit trail.
 *
 * A transport creates one {@link AuthSession} per connection attempt with
 * {@link Authenticator.begin}, sends `session.offered` to the client, and relays messages:
 * `session.start(mechanism, initialResponse)` then `session.respond(bytes)` until the outcome is
 * `success` or `failure`. Failures are *values*, already reduced to the uniform wire answer; the
 * detailed reason goes only to the audit sink.
 */
import { ALL_AUTH_CHECKS, WEAKEN_AUTH, type AuthChecks, type BeginOptions } from './checks.js';
import { randomBytes, toHex } from '../crypto/index.js';
import { formatAddress } from '../trust/address.js';
import { wireFailureFor } from './policy.js';
import { RateLimiter } from './rate-limit.js';
import type { AuthRegistry, ResolvedBinding } from './registry.js';
import {
  AuthError,
  type AccountChange,
  type AuditSink,
  type AuthFailureReason,
  type AuthPolicy,
  type AuthResult,
  type AuthWireFailure,
  type ChannelInfo,
  type ServerMechanism,
} from './types.js';

const EXCHANGE_PREFIX = toHex(randomBytes(4));
let exchangeCounter = 0;

/** What the transport sends back after each client message. */
export type SessionOutcome =
  | { readonly type: 'challenge'; readonly challenge: Uint8Array }
  | {
      readonly type: 'success';
      readonly additionalData: Uint8Array | null;
      readonly result: AuthResult;
    }
  | { readonly type: 'failure'; readonly failure: AuthWireFailure };

/** Options of {@link Authenticator}. */
export interface AuthenticatorOptions {
  readonly audit: AuditSink;
  /** Share one limiter between authenticators of the same process; default: a new one. */
  readonly rateLimiter?: RateLimiter;
  readonly now?: () => number;
}

/**
 * Offers the mechanisms a policy allows on a given channel and runs exchanges.
 *
 * Offer rules (order always from the policy, never from the wire):
 * - mechanisms that need a secure channel (PLAIN, -PLUS) are not offered without TLS;
 * - `tls-exporter` mechanisms are offered only when the channel has an exporter value.
 *
 * @example
 * ```ts
 * const auth = new Authenticator(registry, policy, { audit: new PinoAuditSink(log) });
 * const session = auth.begin(channelInfoFromSocket(socket));
 * send({ mechanisms: session.offered });
 * ```
 */
export class Authenticator {
  readonly #bindings: ResolvedBinding[];
  readonly #limiter: RateLimiter;
  readonly #now: () => number;

  constructor(
    registry: AuthRegistry,
    readonly policy: AuthPolicy,
    private readonly options: AuthenticatorOptions,
  ) {
    this.#bindings = registry.resolve(policy);
    this.#now = options.now ?? Date.now;
    this.#limiter = options.rateLimiter ?? new RateLimiter(policy.rateLimit, this.#now);
  }

  /**
   * Accounts changed at or after `since`, from every provider of the policy that can tell
   * ({@link CredentialProvider.changedAccounts}): the server ends their older sessions (T21).
   */
  async changedAccounts(since: number): Promise<AccountChange[]> {
    const out: AccountChange[] = [];
    for (const provider of new Set(this.#bindings.map((b) => b.provider))) {
      if (provider.changedAccounts !== undefined)
        out.push(...(await provider.changedAccounts(since)));
    }
    return out;
  }

  /** The mechanism names offered on `channel`, in policy order. */
  offer(channel: ChannelInfo): string[] {
    return this.#usable(channel).map((b) => b.factory.metadata.name);
  }

  /**
   * Starts a session for one authentication attempt on `channel`. `options` is for the threat
   * suite's own tests only (src/auth/checks.ts); every check is on without it.
   */
  begin(channel: ChannelInfo, options?: BeginOptions): AuthSession {
    const checks = options?.[WEAKEN_AUTH];
    return new AuthSession(
      this.#usable(channel),
      channel,
      this.policy,
      this.#limiter,
      this.options.audit,
      this.#now,
      checks === undefined ? ALL_AUTH_CHECKS : { ...ALL_AUTH_CHECKS, ...checks },
    );
  }

  #usable(channel: ChannelInfo): ResolvedBinding[] {
    return this.#bindings.filter(({ factory: { metadata: m } }) => {
      if (m.needsSecureChannel && !channel.secure) return false;
      if (m.channelBinding === 'tls-exporter' && channel.tlsExporter?.length !== 32) return false;
      return true;
    });
  }
}

/**
 * One authentication attempt. Not reusable: after success or failure every call fails with
 * `aborted`.
 */
export class AuthSession {
  /** Mechanisms offered on this channel, in policy order. */
  readonly offered: readonly string[];
  /** Correlation id, unique per process run: not a secret, so a counter (randomness costs ~90 µs here). */
  readonly exchangeId = `${EXCHANGE_PREFIX}-${(exchangeCounter++).toString(36)}`;
  readonly #startedAt: number;
  #mechanism: ServerMechanism | null = null;
  #binding: ResolvedBinding | null = null;
  #claimed: string | null = null;
  #steps = 0;
  #finished = false;

  constructor(
    private readonly bindings: readonly ResolvedBinding[],
    private readonly channel: ChannelInfo,
    private readonly policy: AuthPolicy,
    private readonly limiter: RateLimiter,
    private readonly audit: AuditSink,
    private readonly now: () => number,
    private readonly checks: AuthChecks = ALL_AUTH_CHECKS,
  ) {
    this.offered = bindings.map((b) => b.factory.metadata.name);
    this.#startedAt = now();
  }

  /** Starts the exchange with the client's chosen mechanism and optional initial response. */
  async start(mechanism: string, initialResponse: Uint8Array | null): Promise<SessionOutcome> {
    return this.#guard(async () => {
      if (this.#mechanism !== null) throw new AuthError('aborted', 'exchange already started');
      if (this.checks.rateLimit) this.limiter.checkStart(this.channel.remoteAddress);
      const binding = this.bindings.find((b) => b.factory.metadata.name === mechanism);
      if (binding === undefined) {
        // Not in this channel's offer: unknown, not allowed by policy, or needing TLS / binding.
        // Chosen from our list only: a name from the wire never selects code by itself.
        throw new AuthError('mechanism-unavailable', 'mechanism not offered on this channel');
      }
      this.#binding = binding;
      this.#mechanism = binding.factory.create({
        domain: this.policy.domain,
        channel: this.channel,
        provider: binding.provider,
        offeredMechanisms: this.offered,
        checks: this.checks,
        claimIdentity: (authcid) => {
          this.#claimed = authcid;
          if (this.checks.rateLimit) this.limiter.checkAccount(authcid, this.channel.remoteAddress);
          return Promise.resolve();
        },
      });
      return this.#step(initialResponse);
    });
  }

  /** Processes the client's next message. */
  async respond(data: Uint8Array): Promise<SessionOutcome> {
    return this.#guard(() => {
      if (this.#mechanism === null) throw new AuthError('aborted', 'exchange not started');
      return this.#step(data);
    });
  }

  /** The client aborted (RFC 4422 §3.5) or the connection closed: records the failure. */
  async abort(): Promise<void> {
    if (this.#finished) return;
    await this.#fail(new AuthError('aborted', 'client aborted the exchange'), false);
  }

  async #step(input: Uint8Array | null): Promise<SessionOutcome> {
    const mechanism = this.#mechanism;
    if (mechanism === null) throw new AuthError('internal', 'no mechanism');
    this.#steps += 1;
    if (this.#steps > this.policy.limits.maxSteps) throw new AuthError('aborted', 'too many steps');
    if (input !== null && input.length > this.policy.limits.maxMessageBytes) {
      throw new AuthError('malformed', 'client message exceeds the size limit');
    }
    const remaining = this.#startedAt + this.policy.limits.timeoutMs - this.now();
    if (remaining <= 0) throw new AuthError('aborted', 'exchange timed out');
    const out = await withTimeout(mechanism.step(input), remaining);
    if (out.type === 'challenge') return out;
    const binding = this.#binding;
    if (binding === null) throw new AuthError('internal', 'no binding');
    if (out.identity.principal.domain !== this.policy.domain) {
      throw new AuthError('internal', 'provider returned a principal outside this domain');
    }
    const result: AuthResult = {
      principal: out.identity.principal,
      kind: out.identity.kind,
      mechanism: binding.factory.metadata.name,
      provider: binding.provider.name,
      channelBound: out.channelBound,
      authenticatedAt: this.now(),
      attributes: out.identity.attributes ?? {},
    };
    this.#finished = true;
    mechanism.dispose?.();
    this.limiter.recordSuccess(
      this.#claimed ?? formatAddress(result.principal),
      this.channel.remoteAddress,
    );
    await this.audit.record({
      type: 'auth.success',
      at: result.authenticatedAt,
      exchangeId: this.exchangeId,
      domain: this.policy.domain,
      mechanism: result.mechanism,
      provider: result.provider,
      claimedIdentity: this.#claimed,
      principal: formatAddress(result.principal),
      reason: null,
      wire: null,
      secureChannel: this.channel.secure,
      channelBound: result.channelBound,
      remoteAddress: this.channel.remoteAddress ?? null,
      durationMs: result.authenticatedAt - this.#startedAt,
    });
    return { type: 'success', additionalData: out.additionalData ?? null, result };
  }

  async #guard(run: () => Promise<SessionOutcome>): Promise<SessionOutcome> {
    if (this.#finished) return { type: 'failure', failure: 'aborted' };
    try {
      return await run();
    } catch (e) {
      return this.#fail(e, true);
    }
  }

  async #fail(e: unknown, delay: boolean): Promise<SessionOutcome> {
    this.#finished = true;
    this.#mechanism?.dispose?.();
    const reason: AuthFailureReason = e instanceof AuthError ? e.reason : 'internal';
    const wire = wireFailureFor(reason);
    if (reason !== 'rate-limited' && reason !== 'aborted' && reason !== 'mechanism-unavailable') {
      this.limiter.recordFailure(
        reason === 'malformed' ? null : this.#claimed,
        this.channel.remoteAddress,
      );
    }
    if (delay) {
      // Same minimum time for every failure path, so timing does not tell them apart.
      const wait = this.#startedAt + this.policy.limits.minFailureMs - this.now();
      if (wait > 0) await sleep(wait);
    }
    const at = this.now();
    await this.audit.record({
      type: 'auth.failure',
      at,
      exchangeId: this.exchangeId,
      domain: this.policy.domain,
      mechanism: this.#binding?.factory.metadata.name ?? null,
      provider: this.#binding?.provider.name ?? null,
      claimedIdentity: this.#claimed,
      principal: null,
      reason,
      wire,
      secureChannel: this.channel.secure,
      channelBound: false,
      remoteAddress: this.channel.remoteAddress ?? null,
      durationMs: at - this.#startedAt,
    });
    return { type: 'failure', failure: wire };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new AuthError('aborted', 'exchange timed out'));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}
