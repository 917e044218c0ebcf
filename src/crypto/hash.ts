/**
 * Hashes, MACs and key derivation composed from libsodium.
 *
 * SHA-256 and HMAC-SHA-256 are libsodium's. HKDF (RFC 5869) and PBKDF2 (RFC 8018 §5.2) are
 * *constructions* over HMAC-SHA-256, written here in a few lines each because libsodium.js does
 * not export them; they are checked against the Wycheproof HKDF and PBKDF2 vectors.
 */
import { ImppError } from '../errors.js';
import { concatBytes, wipe } from './bytes.js';
import { sodium } from './sodium.js';

export const SHA256_BYTES = 32;

/** SHA-256 (FIPS 180-4). */
export function sha256(data: Uint8Array): Uint8Array {
  return sodium.crypto_hash_sha256(data);
}

/** HMAC-SHA-256 (RFC 2104) with a key of any length. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  // The one-shot call takes only 32-byte keys; it saves three WebAssembly round trips on the
  // hot paths (SCRAM proofs, ratchet chain steps), which all use 32-byte keys.
  if (key.length === 32) return sodium.crypto_auth_hmacsha256(data, key);
  const state = sodium.crypto_auth_hmacsha256_init(key);
  sodium.crypto_auth_hmacsha256_update(state, data);
  return sodium.crypto_auth_hmacsha256_final(state);
}

/** BLAKE2b (RFC 7693) with an output of 16 to 64 bytes and an optional key. */
export function blake2b(data: Uint8Array, outputBytes = 32, key?: Uint8Array): Uint8Array {
  return sodium.crypto_generichash(outputBytes, data, key ?? null);
}

/**
 * HKDF-SHA-256 (RFC 5869 §2.2 extract, §2.3 expand). `salt` empty means a string of HashLen
 * zeros (§2.2). `length` at most 255 × 32 bytes (§2.3).
 *
 * @example
 * ```ts
 * const okm = hkdfSha256(sharedSecret, salt, utf8('impp/x3dh/v1'), 32);
 * ```
 */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * SHA256_BYTES) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'HKDF length must be 0..8160 bytes');
  }
  const prk = hmacSha256(salt.length === 0 ? new Uint8Array(SHA256_BYTES) : salt, ikm);
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  for (let i = 0, offset = 0; offset < length; i++) {
    const block = hmacSha256(prk, concatBytes(previous, info, Uint8Array.of(i + 1)));
    out.set(block.subarray(0, Math.min(SHA256_BYTES, length - offset)), offset);
    offset += SHA256_BYTES;
    wipe(previous);
    previous = block;
  }
  wipe(prk, previous);
  return out;
}

/**
 * PBKDF2 with HMAC-SHA-256 (RFC 8018 §5.2). SCRAM's `Hi()` (RFC 5802 §2.2) is this function
 * with dkLen = 32.
 */
export function pbkdf2HmacSha256(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  length: number,
): Uint8Array {
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'PBKDF2 iterations must be a positive integer');
  }
  if (!Number.isInteger(length) || length < 1 || length > 1 << 20) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'PBKDF2 length must be 1..1048576 bytes');
  }
  const out = new Uint8Array(length);
  const blockIndex = new Uint8Array(4);
  for (let block = 1, offset = 0; offset < length; block++) {
    new DataView(blockIndex.buffer).setUint32(0, block);
    let u = hmacSha256(password, concatBytes(salt, blockIndex));
    const t = Uint8Array.from(u);
    for (let i = 1; i < iterations; i++) {
      const next = hmacSha256(password, u);
      wipe(u);
      u = next;
      for (let j = 0; j < t.length; j++) t[j] = (t[j] ?? 0) ^ (u[j] ?? 0);
    }
    out.set(t.subarray(0, Math.min(SHA256_BYTES, length - offset)), offset);
    offset += SHA256_BYTES;
    wipe(u, t);
  }
  return out;
}
