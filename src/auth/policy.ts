/**
 * Authentication policy helpers: defaults, validation, and the mapping from failure reasons to
 * the uniform wire answer.
 */
import { ImppError } from '../errors.js';
import { DEFAULT_RATE_LIMIT } from './rate-limit.js';
import type {
  AuthFailureReason,
  AuthPolicy,
  AuthWireFailure,
  ExchangeLimits,
  MechanismBinding,
} from './types.js';

/** Defaults: 8 KiB messages, 10 steps, 30 s per exchange, failures answered after ≥ 50 ms. */
export const DEFAULT_EXCHANGE_LIMITS: ExchangeLimits = {
  maxMessageBytes: 8192,
  maxSteps: 10,
  timeoutMs: 30_000,
  minFailureMs: 50,
};

/**
 * The uniform wire answer for each failure reason. Every reason that depends on the account or the
 * credential collapses into `'not-authorized'`, so unknown user, wrong password, disabled account,
 * replay, channel-binding mismatch and downgrade are indistinguishable to the client.
 *
 * @example
 * ```ts
 * wireFailureFor('unknown-user') === wireFailureFor('bad-credential'); // true
 * ```
 */
export function wireFailureFor(reason: AuthFailureReason): AuthWireFailure {
  switch (reason) {
    case 'malformed':
      return 'malformed-request';
    case 'mechanism-unavailable':
      return 'invalid-mechanism';
    case 'insecure-channel':
      return 'encryption-required';
    case 'rate-limited':
    case 'provider-unavailable':
    case 'internal':
      return 'temporary-auth-failure';
    case 'aborted':
      return 'aborted';
    case 'unknown-user':
    case 'bad-credential':
    case 'disabled':
    case 'channel-binding-mismatch':
    case 'downgrade':
    case 'replay':
    case 'authzid-refused':
      return 'not-authorized';
  }
}

/** The fixed, content-free text a transport may show with each wire failure. */
export const WIRE_FAILURE_TEXT: Readonly<Record<AuthWireFailure, string>> = {
  'not-authorized': 'authentication failed',
  'malformed-request': 'malformed authentication message',
  'invalid-mechanism': 'mechanism not available',
  'encryption-required': 'this mechanism requires TLS',
  'temporary-auth-failure': 'temporary failure, try again later',
  aborted: 'authentication aborted',
};

/**
 * Builds and validates a policy. Refuses empty or duplicate mechanism lists and nonsensical limits.
 *
 * @example
 * ```ts
 * const policy = makeAuthPolicy('example.com', [
 *   { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
 *   { mechanism: 'SCRAM-SHA-256', provider: 'local' },
 * ]);
 * ```
 */
export function makeAuthPolicy(
  domain: string,
  mechanisms: readonly MechanismBinding[],
  overrides: Partial<Pick<AuthPolicy, 'rateLimit' | 'limits'>> = {},
): AuthPolicy {
  if (domain.length === 0)
    throw new ImppError('ERR_CONFIG_INVALID', 'auth policy: domain is empty');
  if (mechanisms.length === 0)
    throw new ImppError('ERR_CONFIG_INVALID', 'auth policy: no mechanisms');
  const seen = new Set<string>();
  for (const m of mechanisms) {
    if (seen.has(m.mechanism)) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `auth policy: mechanism ${m.mechanism} listed twice`,
      );
    }
    seen.add(m.mechanism);
  }
  const limits = overrides.limits ?? DEFAULT_EXCHANGE_LIMITS;
  const rateLimit = overrides.rateLimit ?? DEFAULT_RATE_LIMIT;
  const positive: [string, number][] = [
    ['limits.maxMessageBytes', limits.maxMessageBytes],
    ['limits.maxSteps', limits.maxSteps],
    ['limits.timeoutMs', limits.timeoutMs],
    ['rateLimit.baseDelayMs', rateLimit.baseDelayMs],
    ['rateLimit.maxDelayMs', rateLimit.maxDelayMs],
    ['rateLimit.forgetAfterMs', rateLimit.forgetAfterMs],
    ['rateLimit.globalPerSecond', rateLimit.globalPerSecond],
  ];
  for (const [field, value] of positive) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new ImppError('ERR_CONFIG_INVALID', `auth policy: ${field} must be positive`);
    }
  }
  if (limits.minFailureMs < 0 || rateLimit.accountBurst < 0 || rateLimit.sourceBurst < 0) {
    throw new ImppError('ERR_CONFIG_INVALID', 'auth policy: negative limit');
  }
  return { domain, mechanisms: [...mechanisms], rateLimit, limits };
}
