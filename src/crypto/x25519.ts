/**
 * X25519 Diffie-Hellman (RFC 7748) from libsodium, with the all-zero output check.
 *
 * RFC 7748 §6.1: "implementations MAY check whether the output is all zero and abort". We
 * always do (libsodium's `crypto_scalarmult` already returns -1 for it, and we re-check the
 * output ourselves so a change of library cannot silently remove the defence): a low-order
 * public key from an attacker would otherwise force a known shared secret.
 */
import { ImppError } from '../errors.js';
import { assertBytes, isAllZero } from './bytes.js';
import { SecretBytes } from './secret.js';
import { randomBytes } from './random.js';
import { sodium } from './sodium.js';

export const X25519_KEY_BYTES = 32;

/** An X25519 key pair; the private scalar is redacted. */
export interface DhKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: SecretBytes;
}

/**
 * Generates an X25519 key pair from libsodium's CSPRNG, or from a 32-byte secret (for tests).
 *
 * @example
 * ```ts
 * const prekey = generateDhKeyPair();
 * ```
 */
export function generateDhKeyPair(secret?: Uint8Array): DhKeyPair {
  const sk =
    secret === undefined
      ? randomBytes(X25519_KEY_BYTES)
      : Uint8Array.from(assertBytes(secret, X25519_KEY_BYTES, 'secret'));
  return { publicKey: sodium.crypto_scalarmult_base(sk), secretKey: new SecretBytes(sk) };
}

/**
 * X25519(secret, public). Throws `ERR_CRYPTO_WEAK_KEY` when the result is all zero (a
 * low-order or otherwise degenerate public key), `ERR_CRYPTO_INVALID_KEY` on wrong lengths.
 *
 * @example
 * ```ts
 * const shared = x25519(alice.secretKey, bob.publicKey);
 * ```
 */
export function x25519(secretKey: SecretBytes, publicKey: Uint8Array): SecretBytes {
  const sk = secretKey.expose();
  if (sk.length !== X25519_KEY_BYTES || publicKey.length !== X25519_KEY_BYTES) {
    throw new ImppError('ERR_CRYPTO_INVALID_KEY', 'X25519 keys must be 32 bytes');
  }
  let shared: Uint8Array;
  try {
    shared = sodium.crypto_scalarmult(sk, publicKey);
  } catch (cause) {
    throw new ImppError('ERR_CRYPTO_WEAK_KEY', 'X25519 produced an all-zero shared secret', {
      cause,
    });
  }
  if (isAllZero(shared)) {
    throw new ImppError('ERR_CRYPTO_WEAK_KEY', 'X25519 produced an all-zero shared secret');
  }
  return new SecretBytes(shared);
}

/** Converts an Ed25519 public key to its X25519 form (libsodium `crypto_sign_ed25519_pk_to_curve25519`). */
export function ed25519PublicKeyToX25519(publicKey: Uint8Array): Uint8Array {
  try {
    return sodium.crypto_sign_ed25519_pk_to_curve25519(publicKey);
  } catch (cause) {
    throw new ImppError('ERR_CRYPTO_INVALID_KEY', 'not a valid Ed25519 public key', { cause });
  }
}

/**
 * Converts an Ed25519 secret key (libsodium's 64-byte seed‖public form) to the X25519 scalar
 * of the same key pair (libsodium `crypto_sign_ed25519_sk_to_curve25519`), so that one device
 * identity key can both sign and take part in X3DH (X3DH §2.4, "identity key"). The result
 * matches {@link ed25519PublicKeyToX25519} of the public half.
 *
 * @example
 * ```ts
 * const idDh = ed25519SecretKeyToX25519(identity.secretKey);
 * const shared = x25519(idDh, ed25519PublicKeyToX25519(peerIdentityKey));
 * ```
 */
export function ed25519SecretKeyToX25519(secretKey: SecretBytes): SecretBytes {
  const sk = secretKey.expose();
  if (sk.length !== 64) {
    throw new ImppError('ERR_CRYPTO_INVALID_KEY', 'Ed25519 secret key must be 64 bytes');
  }
  return new SecretBytes(sodium.crypto_sign_ed25519_sk_to_curve25519(sk));
}
