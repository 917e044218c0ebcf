/** Byte helpers used across layers: constant-time comparison, wiping, encodings. */
import { ImppError } from '../errors.js';
import { sodium } from './sodium.js';

/**
 * Compares two byte strings in time that depends only on their lengths (libsodium `memcmp`).
 * Use it for every comparison of a secret or of a value derived from one (MACs, proofs, tags).
 *
 * @example
 * ```ts
 * if (!constantTimeEqual(expectedProof, receivedProof)) fail();
 * ```
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.length === 0) return true;
  return sodium.memcmp(a, b);
}

/**
 * Overwrites a buffer with zeros (libsodium `memzero`). JavaScript cannot promise that no other
 * copy exists (the engine may have moved or copied the memory), so this narrows the window in
 * which a secret sits in memory; it does not close it. See docs/security-model.md, "Residual risks".
 */
export function wipe(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) if (b !== undefined && b.length > 0) sodium.memzero(b);
}

/** `true` when every byte is zero, in constant time. */
export function isAllZero(bytes: Uint8Array): boolean {
  return sodium.is_zero(bytes);
}

/** Concatenates byte strings into a new buffer. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 encoding of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Strict UTF-8 decoding: invalid sequences throw `ERR_INVALID_ARGUMENT` instead of becoming U+FFFD. */
export function fromUtf8(bytes: Uint8Array, field = 'value'): string {
  try {
    return strictDecoder.decode(bytes);
  } catch (cause) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${field} is not valid UTF-8`, { cause });
  }
}

/** Lower-case hexadecimal. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Parses hexadecimal, refusing odd lengths and non-hex characters. */
export function fromHex(hex: string, field = 'value'): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `${field} is not an even-length hexadecimal string`,
    );
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Unpadded base64url (RFC 4648 §5). */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Parses unpadded base64url, refusing any other alphabet. */
export function fromBase64Url(text: string, field = 'value'): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${field} is not unpadded base64url`);
  }
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

/**
 * Asserts that `value` is a Uint8Array of exactly `length` bytes, naming the field on failure.
 */
export function assertBytes(value: unknown, length: number | undefined, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${field} must be a Uint8Array`);
  }
  if (length !== undefined && value.length !== length) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `${field} must be ${length} bytes, got ${value.length}`,
    );
  }
  return value;
}
