/**
 * SCRAM-SHA-256 key derivation (RFC 5802 §3, RFC 7677 §3) over src/crypto.
 *
 * ```
 * SaltedPassword := Hi(Normalize(password), salt, i)      Hi = PBKDF2-HMAC-SHA-256, dkLen 32
 * ClientKey      := HMAC(SaltedPassword, "Client Key")
 * StoredKey      := H(ClientKey)
 * ServerKey      := HMAC(SaltedPassword, "Server Key")
 * ```
 *
 * Normalize is SASLprep (RFC 4013) with the password treated as a *stored string* (unassigned
 * code points prohibited, RFC 5802 §2.2); usernames are prepared as *query strings* (§5.1).
 */
import saslprep from '@mongodb-js/saslprep';
import {
  constantTimeEqual,
  hmacSha256,
  pbkdf2HmacSha256,
  randomBytes,
  sha256,
  utf8,
  wipe,
} from '../../crypto/index.js';
import { ImppError } from '../../errors.js';
import { AuthError, type ScramCredential } from '../types.js';

/** RFC 7677 §4: at least 4096 iterations. impp refuses anything lower, on both sides. */
export const SCRAM_MIN_ITERATIONS = 4096;
/** Upper bound a client accepts, so a hostile server cannot make it spin for minutes. */
export const SCRAM_MAX_ITERATIONS = 10_000_000;
/** Salt length for new verifiers (RFC 5802 does not fix it; 16 bytes is common practice). */
export const SCRAM_SALT_BYTES = 16;

const CLIENT_KEY = utf8('Client Key');
const SERVER_KEY = utf8('Server Key');

/** Client-side derived keys: what a client may cache per (password, salt, iterations) (RFC 5802 §5.1). */
export interface ScramClientKeys {
  readonly clientKey: Uint8Array;
  readonly serverKey: Uint8Array;
}

/**
 * SASLprep of a password as a stored string (RFC 4013, RFC 5802 §2.2).
 *
 * @throws AuthError `'malformed'` when the password contains prohibited characters or is empty
 *   after preparation.
 */
export function preparePassword(password: string): string {
  let prepared: string;
  try {
    prepared = saslprep(password);
  } catch (cause) {
    throw new AuthError('malformed', 'password contains characters SASLprep prohibits', { cause });
  }
  if (prepared.length === 0) throw new AuthError('malformed', 'password is empty after SASLprep');
  return prepared;
}

/**
 * SASLprep of a username as a query string (unassigned code points allowed; RFC 5802 §5.1).
 *
 * @throws AuthError `'malformed'` when the username contains prohibited characters or is empty.
 */
export function prepareUsername(username: string): string {
  let prepared: string;
  try {
    prepared = saslprep(username, { allowUnassigned: true });
  } catch (cause) {
    throw new AuthError('malformed', 'username contains characters SASLprep prohibits', { cause });
  }
  if (prepared.length === 0) throw new AuthError('malformed', 'username is empty after SASLprep');
  return prepared;
}

/** Derives ClientKey and ServerKey from a password (client side, and verifier generation). */
export function deriveScramKeys(
  password: string,
  salt: Uint8Array,
  iterations: number,
): ScramClientKeys {
  const salted = pbkdf2HmacSha256(utf8(preparePassword(password)), salt, iterations, 32);
  try {
    return { clientKey: hmacSha256(salted, CLIENT_KEY), serverKey: hmacSha256(salted, SERVER_KEY) };
  } finally {
    wipe(salted);
  }
}

/**
 * Makes a stored verifier from a password, with a fresh random salt (RFC 5802 §3). The password
 * is not kept.
 *
 * @example
 * ```ts
 * const credential = makeScramCredential('correct horse', 4096);
 * ```
 */
export function makeScramCredential(
  password: string,
  iterations: number,
  salt: Uint8Array = randomBytes(SCRAM_SALT_BYTES),
): ScramCredential {
  if (
    !Number.isInteger(iterations) ||
    iterations < SCRAM_MIN_ITERATIONS ||
    iterations > SCRAM_MAX_ITERATIONS
  ) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `SCRAM iterations must be an integer in ${SCRAM_MIN_ITERATIONS}..${SCRAM_MAX_ITERATIONS}`,
    );
  }
  if (salt.length < 8)
    throw new ImppError('ERR_INVALID_ARGUMENT', 'SCRAM salt must be at least 8 bytes');
  const keys = deriveScramKeys(password, salt, iterations);
  const storedKey = sha256(keys.clientKey);
  wipe(keys.clientKey);
  return { salt: Uint8Array.from(salt), iterations, storedKey, serverKey: keys.serverKey };
}

/** XOR of two equal-length byte strings. */
export function xorBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

/**
 * Server check of a ClientProof (RFC 5802 §3): recovers ClientKey = proof ⊕ HMAC(StoredKey,
 * AuthMessage) and compares H(ClientKey) with StoredKey in constant time.
 */
export function verifyClientProof(
  credential: Pick<ScramCredential, 'storedKey'>,
  authMessage: Uint8Array,
  proof: Uint8Array,
): boolean {
  const signature = hmacSha256(credential.storedKey, authMessage);
  const clientKey = xorBytes(proof, signature);
  const candidate = sha256(clientKey);
  const ok = proof.length === 32 && constantTimeEqual(candidate, credential.storedKey);
  wipe(signature, clientKey, candidate);
  return ok;
}

/** ServerSignature = HMAC(ServerKey, AuthMessage) (RFC 5802 §3). */
export function serverSignature(serverKey: Uint8Array, authMessage: Uint8Array): Uint8Array {
  return hmacSha256(serverKey, authMessage);
}

/** ClientProof = ClientKey ⊕ HMAC(H(ClientKey), AuthMessage) (RFC 5802 §3). */
export function clientProof(clientKey: Uint8Array, authMessage: Uint8Array): Uint8Array {
  const storedKey = sha256(clientKey);
  const signature = hmacSha256(storedKey, authMessage);
  const proof = xorBytes(clientKey, signature);
  wipe(storedKey, signature);
  return proof;
}
