/**
 * Ed25519 signatures (RFC 8032) from libsodium.
 *
 * libsodium's `crypto_sign_verify_detached` (since 1.0.16) refuses non-canonical S (RFC 8032
 * §5.1.7 "S < L"), non-canonical and small-order public keys and R values. We rely on that
 * strictness and test it with Wycheproof `ed25519_test.json`: signature malleability is not an
 * acceptable behaviour for identity keys, because ids and replay caches are computed over
 * signed objects.
 */
import { ImppError } from '../errors.js';
import { assertBytes } from './bytes.js';
import { SecretBytes } from './secret.js';
import { sodium } from './sodium.js';

export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SECRET_KEY_BYTES = 64;
export const ED25519_SEED_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;

/** An Ed25519 key pair. The secret key (libsodium's 64-byte seed‖public form) is redacted. */
export interface SigningKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: SecretBytes;
}

/**
 * Generates an Ed25519 key pair, or derives it from a 32-byte seed (for known-answer tests).
 *
 * @example
 * ```ts
 * const device = generateSigningKeyPair();
 * const sig = sign(device.secretKey, message);
 * ```
 */
export function generateSigningKeyPair(seed?: Uint8Array): SigningKeyPair {
  const kp =
    seed === undefined
      ? sodium.crypto_sign_keypair()
      : sodium.crypto_sign_seed_keypair(assertBytes(seed, ED25519_SEED_BYTES, 'seed'));
  return { publicKey: kp.publicKey, secretKey: new SecretBytes(kp.privateKey) };
}

/** Detached Ed25519 signature over `message`. */
export function sign(secretKey: SecretBytes, message: Uint8Array): Uint8Array {
  const sk = secretKey.expose();
  if (sk.length !== ED25519_SECRET_KEY_BYTES) {
    throw new ImppError('ERR_CRYPTO_INVALID_KEY', 'Ed25519 secret key must be 64 bytes');
  }
  return sodium.crypto_sign_detached(message, sk);
}

/**
 * Verifies a detached Ed25519 signature. Returns `false` for any malformed input (wrong
 * lengths included) rather than throwing, so callers have one failure path.
 */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES) return false;
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return sodium.crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** Like {@link verify}, but throws `ERR_CRYPTO_VERIFY_FAILED` naming what was being verified. */
export function assertSignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  what: string,
): void {
  if (!verify(publicKey, message, signature)) {
    throw new ImppError('ERR_CRYPTO_VERIFY_FAILED', `${what}: signature does not verify`);
  }
}

/** Checks that `publicKey` is a 32-byte Ed25519 key; throws naming the field otherwise. */
export function assertSigningPublicKey(publicKey: unknown, field: string): Uint8Array {
  return assertBytes(publicKey, ED25519_PUBLIC_KEY_BYTES, field);
}
