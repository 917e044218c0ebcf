/**
 * Random bytes for keys, nonces and ids: the operating system's CSPRNG through Node's
 * `crypto.randomFillSync` (OpenSSL's RAND_bytes, the same generator the platform's TLS uses).
 *
 * Why not libsodium's `randombytes_buf`: libsodium.js in Node reaches the very same OS source,
 * but through its WebAssembly glue at ~90 µs per call against ~2 µs here (measured on this
 * project's 2-core CI machine); every seal draws 2–4 values, so it dominated sealing time. Key
 * generation inside libsodium (`crypto_sign_keypair`) still uses libsodium's own source.
 */
import { randomFillSync } from 'node:crypto';
import { ImppError } from '../errors.js';

/** `length` bytes from the operating system's CSPRNG. */
export function randomBytes(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 1 << 20) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'random length must be 0..1048576 bytes');
  }
  return randomFillSync(new Uint8Array(length));
}
