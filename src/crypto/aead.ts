/**
 * AEAD from libsodium: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03) for everything impp
 * seals, and ChaCha20-Poly1305 IETF (RFC 8439 §2.8) for interoperability checks.
 *
 * Opening fails with one error code and one message whatever went wrong (tag, key, nonce
 * length, truncation), so no caller can turn the AEAD into an oracle, and no partial plaintext
 * is ever returned: libsodium verifies the tag before decrypting.
 */
import { ImppError } from '../errors.js';
import { sodium } from './sodium.js';
import type { SecretBytes } from './secret.js';

export const XCHACHA_KEY_BYTES = 32;
export const XCHACHA_NONCE_BYTES = 24;
export const CHACHA_IETF_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;

function openFailed(cause?: unknown): ImppError {
  return new ImppError('ERR_CRYPTO_VERIFY_FAILED', 'decryption failed', { cause });
}

/** One libsodium AEAD construction: its nonce length and its encrypt/decrypt calls. */
interface AeadSuite {
  readonly nonceBytes: number;
  encrypt(m: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
  decrypt(c: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
}

const XCHACHA: AeadSuite = {
  nonceBytes: XCHACHA_NONCE_BYTES,
  encrypt: (m, ad, n, k) => sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(m, ad, null, n, k),
  decrypt: (c, ad, n, k) => sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, c, ad, n, k),
};

const CHACHA_IETF: AeadSuite = {
  nonceBytes: CHACHA_IETF_NONCE_BYTES,
  encrypt: (m, ad, n, k) => sodium.crypto_aead_chacha20poly1305_ietf_encrypt(m, ad, null, n, k),
  decrypt: (c, ad, n, k) => sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, c, ad, n, k),
};

function seal(
  suite: AeadSuite,
  key: SecretBytes,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array {
  const k = key.expose();
  if (k.length !== XCHACHA_KEY_BYTES) {
    throw new ImppError('ERR_CRYPTO_INVALID_KEY', 'AEAD key must be 32 bytes');
  }
  if (nonce.length !== suite.nonceBytes) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `AEAD nonce must be ${suite.nonceBytes} bytes`);
  }
  return suite.encrypt(plaintext, associatedData, nonce, k);
}

function open(
  suite: AeadSuite,
  key: SecretBytes,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array {
  const k = key.expose();
  if (
    k.length !== XCHACHA_KEY_BYTES ||
    nonce.length !== suite.nonceBytes ||
    ciphertext.length < AEAD_TAG_BYTES
  ) {
    throw openFailed();
  }
  try {
    return suite.decrypt(ciphertext, associatedData, nonce, k);
  } catch (cause) {
    throw openFailed(cause);
  }
}

/**
 * XChaCha20-Poly1305 encryption; returns ciphertext‖tag.
 *
 * @example
 * ```ts
 * const nonce = randomBytes(XCHACHA_NONCE_BYTES);
 * const ct = xchachaSeal(key, nonce, plaintext, header);
 * ```
 */
export function xchachaSeal(
  key: SecretBytes,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array {
  return seal(XCHACHA, key, nonce, plaintext, associatedData);
}

/** XChaCha20-Poly1305 decryption. Any failure is `ERR_CRYPTO_VERIFY_FAILED` "decryption failed". */
export function xchachaOpen(
  key: SecretBytes,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array {
  return open(XCHACHA, key, nonce, ciphertext, associatedData);
}

/** ChaCha20-Poly1305 IETF (RFC 8439 §2.8) encryption; returns ciphertext‖tag. */
export function chachaIetfSeal(
  key: SecretBytes,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array {
  return seal(CHACHA_IETF, key, nonce, plaintext, associatedData);
}

/** ChaCha20-Poly1305 IETF decryption; any failure is `ERR_CRYPTO_VERIFY_FAILED`. */
export function chachaIetfOpen(
  key: SecretBytes,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array {
  return open(CHACHA_IETF, key, nonce, ciphertext, associatedData);
}
