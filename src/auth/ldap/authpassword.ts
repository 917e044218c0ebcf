/**
 * SCRAM verifiers stored in a directory attribute in the RFC 5803 `authPassword` format:
 *
 *   `SCRAM-SHA-256$<iteration count>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>`
 *
 * (RFC 5803 §3 defines the layout for SCRAM-SHA-1; RFC 7677 reuses it for SCRAM-SHA-256.) The
 * directory holds verifiers, never passwords, so SCRAM works against it without the server ever
 * seeing the cleartext.
 */
import type { ScramCredential } from '../types.js';

const SCHEME = 'SCRAM-SHA-256';
const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** RFC 7677 §4 asks for at least 4096 iterations; more than 10 million is a misconfiguration. */
const MIN_ITERATIONS = 4096;
const MAX_ITERATIONS = 10_000_000;

function decodeB64(text: string, expectedLength?: number): Uint8Array | null {
  if (!B64.test(text) || text.length % 4 !== 0) return null;
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (expectedLength !== undefined && bytes.length !== expectedLength) return null;
  return bytes;
}

/**
 * Parses one `authPassword` value. Returns `null` for another scheme or any malformed value
 * (wrong field count, bad base64, key not 32 bytes, salt shorter than 8 bytes, iteration count
 * outside 4096..10 000 000): a malformed verifier is treated as "no verifier", never guessed at.
 *
 * @example
 * ```ts
 * const cred = parseScramAuthPassword('SCRAM-SHA-256$4096:c2FsdHNhbHQ=$…:…');
 * ```
 */
export function parseScramAuthPassword(value: string): ScramCredential | null {
  const parts = value.trim().split('$');
  if (parts.length !== 3 || parts[0]?.toUpperCase() !== SCHEME) return null;
  const [iterText, saltText] = (parts[1] ?? '').split(':');
  const [storedText, serverText] = (parts[2] ?? '').split(':');
  if ((parts[1] ?? '').split(':').length !== 2 || (parts[2] ?? '').split(':').length !== 2)
    return null;
  if (iterText === undefined || !/^[1-9][0-9]{0,9}$/.test(iterText)) return null;
  const iterations = Number(iterText);
  if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) return null;
  const salt = decodeB64(saltText ?? '');
  const storedKey = decodeB64(storedText ?? '', 32);
  const serverKey = decodeB64(serverText ?? '', 32);
  if (salt === null || salt.length < 8 || storedKey === null || serverKey === null) return null;
  return { salt, iterations, storedKey, serverKey };
}

/**
 * Formats a verifier as an `authPassword` value (for provisioning tools and tests).
 *
 * @example
 * ```ts
 * await ldap.modify(dn, new Change({ operation: 'replace',
 *   modification: new Attribute({ type: 'authPassword', values: [formatScramAuthPassword(c)] }) }));
 * ```
 */
export function formatScramAuthPassword(credential: ScramCredential): string {
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
  return `${SCHEME}$${String(credential.iterations)}:${b64(credential.salt)}$${b64(credential.storedKey)}:${b64(credential.serverKey)}`;
}
