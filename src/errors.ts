/**
 * The one error module of impp.
 *
 * Every failure the library reports is an {@link ImppError} with a string `code` from the
 * {@link ImppErrorCode} union, so callers branch on codes, never on messages. Messages name the
 * field or rule that failed and say what to do next; they never contain user content, passwords,
 * tokens or key material.
 *
 * @example
 * ```ts
 * try { parseAddress(input); }
 * catch (e) { if (isImppError(e, 'ERR_ADDRESS_INVALID')) showHint(e.message); else throw e; }
 * ```
 */

export const IMPP_ERROR_CODES = [
  // input validation
  'ERR_INVALID_ARGUMENT',
  'ERR_ADDRESS_INVALID',
  'ERR_CONFIG_INVALID',
  // crypto
  'ERR_CRYPTO_NOT_READY',
  'ERR_CRYPTO_INVALID_KEY',
  'ERR_CRYPTO_WEAK_KEY',
  'ERR_CRYPTO_VERIFY_FAILED',
  // trust
  'ERR_KEYLOG_PROOF_INVALID',
  'ERR_KEYLOG_INCONSISTENT',
  'ERR_DEVICE_LIST_INVALID',
  'ERR_ENROLMENT_INVALID',
  'ERR_IDENTITY_UNTRUSTED',
  'ERR_IDENTITY_CHANGED',
  // sealing
  'ERR_SEAL_OPEN_FAILED',
  'ERR_SEAL_UNSUPPORTED',
  'ERR_SEAL_REPLAY',
  'ERR_SEAL_ROLLBACK',
  'ERR_SEAL_MALFORMED',
  'ERR_SEAL_TOO_LARGE',
  'ERR_SEAL_SESSION_STATE',
  'ERR_PAYLOAD_INVALID',
  // authentication
  'ERR_AUTH_FAILED',
  'ERR_AUTH_MALFORMED',
  'ERR_AUTH_MECHANISM_UNAVAILABLE',
  'ERR_AUTH_INSECURE_CHANNEL',
  'ERR_AUTH_DOWNGRADE',
  'ERR_AUTH_RATE_LIMITED',
  'ERR_AUTH_PROVIDER_UNAVAILABLE',
  'ERR_AUTH_REGISTRATION',
  // transport and service
  'ERR_FRAME_TOO_LARGE',
  'ERR_FRAME_MALFORMED',
  'ERR_PROTOCOL',
  'ERR_VERSION_UNSUPPORTED',
  'ERR_RATE_LIMITED',
  'ERR_SLOW_CONSUMER',
  'ERR_CONNECTION_LIMIT',
  'ERR_CONNECTION_CLOSED',
  'ERR_TIMEOUT',
  'ERR_QUOTA_EXCEEDED',
  'ERR_NOT_AUTHORIZED',
  'ERR_NOT_FOUND',
  'ERR_STORAGE',
  'ERR_CONFLICT',
  'ERR_DOMAIN_NOT_SERVED',
] as const;

/** The closed set of error codes. A new failure gets a new code here, never a free-form string. */
export type ImppErrorCode = (typeof IMPP_ERROR_CODES)[number];

/**
 * Base class of every error impp throws on purpose.
 *
 * @example
 * ```ts
 * throw new ImppError('ERR_ADDRESS_INVALID', 'address has no "@": expected user@domain');
 * ```
 */
export class ImppError extends Error {
  readonly code: ImppErrorCode;

  constructor(code: ImppErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ImppError';
  }
}

/**
 * Type guard: `true` when `value` is an {@link ImppError}, optionally with the given code.
 *
 * @example
 * ```ts
 * if (isImppError(err, 'ERR_SEAL_OPEN_FAILED')) dropSilently();
 * ```
 */
export function isImppError<C extends ImppErrorCode>(
  value: unknown,
  code?: C,
): value is ImppError & { code: C } {
  return value instanceof ImppError && (code === undefined || value.code === code);
}
