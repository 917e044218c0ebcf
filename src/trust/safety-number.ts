/**
 * Safety numbers: a 60-digit number two people compare out of band (read aloud, side by side) to
 * check that each sees the other's real device keys, and not keys a server substituted.
 *
 * Encoding, version 1 (also in docs/trust.md, "Safety numbers"):
 *
 * 1. For each party P, take its canonical address `A_P = formatAddress(P.address)` and the *set* of
 *    its device identity keys (Ed25519, 32 bytes each): duplicates removed, sorted in ascending
 *    byte-wise lexicographic order, 1..256 keys.
 * 2. `input_P = CBOR ["impp/safety-number/v1", 1, A_P, [key_1, …, key_k]]` in the deterministic
 *    encoding of canonical.ts (so the label, version, address and key list are unambiguous).
 * 3. Iterated hashing with SHA-256: `h_1 = SHA-256(input_P)` and
 *    `h_i = SHA-256(h_{i-1} ‖ input_P)` for i = 2..4096; the half's digest is `h_4096`.
 *    The iterations multiply the cost of searching for another key set whose half matches.
 * 4. Digits of a half: bytes 0..29 of the digest as six 5-byte chunks; each chunk is read as an
 *    unsigned 40-bit big-endian integer, reduced modulo 100000 and written as 5 decimal digits
 *    with leading zeros. A half is 30 digits (≈ 99.7 bits; the modulo bias is below 10⁻⁷).
 * 5. The two halves are ordered by their addresses (ascending byte-wise order of the UTF-8
 *    encoding); for equal addresses, by the digit strings. The safety number is
 *    `first ‖ second`: 60 digits, shown as 12 groups of 5. Both parties compute the same
 *    number whichever side they are on, and the number changes when any key of either party is
 *    added, removed or replaced.
 */
import { assertSigningPublicKey, sha256, concatBytes, utf8 } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import { formatAddress, type Address } from './address.js';
import { encodeCanonical } from './canonical.js';
import { compareBytes } from './identity.js';

/** Version of the safety-number encoding. */
export const SAFETY_NUMBER_VERSION = 1;
/** Domain-separation label hashed into every half. */
export const SAFETY_NUMBER_LABEL = 'impp/safety-number/v1';
/** SHA-256 invocations per half. */
export const SAFETY_NUMBER_ITERATIONS = 4096;
/** Largest number of device keys a party may contribute. */
export const SAFETY_NUMBER_MAX_KEYS = 256;

const CHUNKS_PER_HALF = 6;
const CHUNK_BYTES = 5;
const DIGITS_PER_CHUNK = 5;

/** One side of a conversation: an address and the identity keys of all its devices. */
export interface SafetyNumberParty {
  readonly address: Address;
  readonly identityKeys: readonly Uint8Array[];
}

/** A computed safety number. */
export interface SafetyNumber {
  readonly version: typeof SAFETY_NUMBER_VERSION;
  /** 60 decimal digits. */
  readonly digits: string;
  /** The digits as 12 groups of 5. */
  readonly groups: readonly string[];
}

function sortedKeySet(keys: readonly Uint8Array[]): Uint8Array[] {
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > SAFETY_NUMBER_MAX_KEYS) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `identityKeys must hold 1..${SAFETY_NUMBER_MAX_KEYS} keys`,
    );
  }
  const sorted = keys
    .map((k, i) => assertSigningPublicKey(k, `identityKeys[${i}]`))
    .slice()
    .sort(compareBytes);
  return sorted.filter((k, i) => i === 0 || compareBytes(k, sorted[i - 1] as Uint8Array) !== 0);
}

/**
 * The 30-digit half of one party (steps 1–4 of the encoding).
 *
 * @example
 * ```ts
 * const half = safetyNumberHalf({ address, identityKeys: [phoneKey, laptopKey] });
 * ```
 */
export function safetyNumberHalf(party: SafetyNumberParty): string {
  const input = encodeCanonical([
    SAFETY_NUMBER_LABEL,
    SAFETY_NUMBER_VERSION,
    formatAddress(party.address),
    sortedKeySet(party.identityKeys),
  ]);
  let digest = sha256(input);
  for (let i = 2; i <= SAFETY_NUMBER_ITERATIONS; i++) digest = sha256(concatBytes(digest, input));
  let digits = '';
  for (let c = 0; c < CHUNKS_PER_HALF; c++) {
    let value = 0;
    // 40-bit values stay exact in a double (< 2^53).
    for (let b = 0; b < CHUNK_BYTES; b++) value = value * 256 + (digest[c * CHUNK_BYTES + b] ?? 0);
    digits += String(value % 10 ** DIGITS_PER_CHUNK).padStart(DIGITS_PER_CHUNK, '0');
  }
  return digits;
}

/**
 * Computes the safety number of two parties; symmetric in its arguments.
 *
 * @example
 * ```ts
 * const sn = safetyNumber(
 *   { address: parseAddress('alice@example.com'), identityKeys: aliceKeys },
 *   { address: parseAddress('bob@example.org'), identityKeys: bobKeys },
 * );
 * formatSafetyNumber(sn); // '12345 67890 …' (12 groups)
 * ```
 */
export function safetyNumber(a: SafetyNumberParty, b: SafetyNumberParty): SafetyNumber {
  const halfA = safetyNumberHalf(a);
  const halfB = safetyNumberHalf(b);
  const order = compareBytes(utf8(formatAddress(a.address)), utf8(formatAddress(b.address)));
  const aFirst = order < 0 || (order === 0 && halfA <= halfB);
  const digits = aFirst ? halfA + halfB : halfB + halfA;
  const groups = digits.match(/\d{5}/g) ?? [];
  return { version: SAFETY_NUMBER_VERSION, digits, groups };
}

/**
 * The display form: 12 groups of 5 digits separated by spaces.
 *
 * @example
 * ```ts
 * formatSafetyNumber(safetyNumber(me, them));
 * ```
 */
export function formatSafetyNumber(sn: SafetyNumber): string {
  return sn.groups.join(' ');
}

/**
 * Compares a safety number with one a person typed or scanned; whitespace is ignored.
 *
 * @example
 * ```ts
 * if (!matchesSafetyNumber(sn, userInput)) showMismatchWarning();
 * ```
 */
export function matchesSafetyNumber(sn: SafetyNumber, entered: string): boolean {
  return entered.replace(/\s+/g, '') === sn.digits;
}
