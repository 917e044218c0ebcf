/**
 * A container for secret bytes that will not leak through logging or serialisation.
 *
 * `JSON.stringify`, `util.inspect` (and so `console.log` and pino), template strings and
 * `String()` all print a redaction marker instead of the bytes. The bytes are reachable only
 * through {@link SecretBytes.expose}, which makes every use of a secret visible in review.
 */
import { inspect } from 'node:util';
import { ImppError } from '../errors.js';
import { wipe } from './bytes.js';

const REDACTED = '[redacted]';

/**
 * Secret key material with redaction and wiping.
 *
 * @example
 * ```ts
 * const key = new SecretBytes(randomBytes(32));
 * JSON.stringify({ key }); // '{"key":"[redacted]"}'
 * key.wipe();
 * ```
 */
export class SecretBytes {
  readonly #bytes: Uint8Array;
  #wiped = false;

  /** Takes ownership of `bytes` (no copy): wipe the original by wiping this object. */
  constructor(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'secret must be a Uint8Array');
    }
    this.#bytes = bytes;
  }

  /** Number of bytes held. */
  get length(): number {
    return this.#bytes.length;
  }

  /** `true` once {@link wipe} has run; a wiped secret refuses to be exposed. */
  get wiped(): boolean {
    return this.#wiped;
  }

  /** The underlying bytes. Do not keep references longer than the operation that needs them. */
  expose(): Uint8Array {
    if (this.#wiped)
      throw new ImppError('ERR_CRYPTO_INVALID_KEY', 'secret was wiped and cannot be used');
    return this.#bytes;
  }

  /** Zeroes the bytes in place; later {@link expose} calls throw. */
  wipe(): void {
    wipe(this.#bytes);
    this.#wiped = true;
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `SecretBytes(${REDACTED} ${this.#bytes.length} bytes)`;
  }
}
