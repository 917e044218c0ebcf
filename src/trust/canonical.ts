/**
 * Deterministic CBOR for everything the trust layer signs or hashes.
 *
 * A signature is only as unambiguous as the bytes it covers, so every signed or hashed structure
 * in `src/trust` is a CBOR *array with a fixed field order* (never a map), holding only
 * non-negative integers, text strings, byte strings, booleans, null and nested arrays. For that
 * subset cbor-x, configured as below, produces the RFC 8949 §4.2.1 core deterministic encoding:
 * definite lengths and the shortest argument for every integer and length. One wrinkle: cbor-x
 * writes numbers ≥ 2³² as float64, so we hand it a `bigint` there, which it writes as a uint64
 * (the shortest form for that range).
 *
 * Decoding is strict: a linear pre-scan ({@link scanCborSubset}) refuses tags and impossible
 * lengths before cbor-x runs (decode-time tag handling is a denial of service); after cbor-x has
 * parsed the input, the value is re-encoded and must give
 * back exactly the input bytes. That one check refuses non-shortest integers, indefinite lengths,
 * maps, floats, tags, trailing bytes and invalid UTF-8 without a hand-written parser.
 *
 * Signing inputs are built with {@link signingInput}: the array `[label, ...fields]`, where the
 * label (e.g. `"impp/device-list/v1"`) never travels on the wire but is supplied by the verifier,
 * so a signature made for one kind of object can never verify as another (domain separation).
 */
import { Encoder } from 'cbor-x';
import { ImppError, type ImppErrorCode } from '../errors.js';
import { constantTimeEqual } from '../crypto/index.js';
import { scanCborSubset, type CborSubset } from './cbor-scan.js';

/** A value of the deterministic CBOR subset used for signed structures. */
export type CanonicalValue =
  number | string | Uint8Array | boolean | null | readonly CanonicalValue[];

/** Upper bound on any encoded trust object; larger inputs are refused before parsing. */
export const MAX_CANONICAL_BYTES = 64 * 1024;

const MAX_DEPTH = 8;
const UINT32_LIMIT = 2 ** 32;

/** Arrays, unsigned integers, byte and text strings, false/true/null; no maps. */
const CANONICAL_SUBSET: CborSubset = {
  arrays: true,
  maps: false,
  simpleValues: [20, 21, 22],
  maxDepth: MAX_DEPTH,
};

const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  variableMapSize: true,
  tagUint8Array: false,
  pack: false,
  structuredClone: false,
});

type Wire = number | bigint | string | Uint8Array | boolean | null | Wire[];

function toWire(value: CanonicalValue, depth: number): Wire {
  if (depth > MAX_DEPTH) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'canonical value is nested too deeply');
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        'canonical integers must be non-negative safe integers',
      );
    }
    return value >= UINT32_LIMIT ? BigInt(value) : value;
  }
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return value;
  if (value instanceof Uint8Array) {
    // A Buffer would also encode as a byte string, but normalise so subclasses cannot matter.
    return value.constructor === Uint8Array ? value : Uint8Array.from(value);
  }
  if (Array.isArray(value)) {
    return (value as readonly CanonicalValue[]).map((v) => toWire(v, depth + 1));
  }
  throw new ImppError('ERR_INVALID_ARGUMENT', 'value is not in the canonical CBOR subset');
}

/**
 * Encodes a value of the canonical subset (RFC 8949 §4.2.1 deterministic encoding).
 *
 * @example
 * ```ts
 * const bytes = encodeCanonical([1, 'alice@example.com', publicKey]);
 * ```
 */
export function encodeCanonical(value: CanonicalValue): Uint8Array {
  const out = encoder.encode(toWire(value, 0));
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function fromWire(value: unknown, depth: number): CanonicalValue | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  // cbor-x yields a bigint for every 8-byte unsigned integer.
  if (typeof value === 'bigint') {
    return value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
  }
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return value;
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  if (Array.isArray(value)) {
    const out: CanonicalValue[] = [];
    for (const item of value) {
      const v = fromWire(item, depth + 1);
      if (v === undefined) return undefined;
      out.push(v);
    }
    return out;
  }
  return undefined;
}

/**
 * Decodes bytes that must be the canonical encoding of a value of the subset. Anything else
 * (non-shortest forms, maps, floats, tags, trailing bytes, oversize input) throws `code`.
 *
 * @example
 * ```ts
 * const value = decodeCanonical(bytes, 'ERR_DEVICE_LIST_INVALID', 'device list');
 * ```
 */
export function decodeCanonical(
  bytes: Uint8Array,
  code: ImppErrorCode,
  what: string,
  maxBytes = MAX_CANONICAL_BYTES,
): CanonicalValue {
  if (!(bytes instanceof Uint8Array)) throw new ImppError(code, `${what} must be bytes`);
  if (bytes.length === 0 || bytes.length > maxBytes) {
    throw new ImppError(code, `${what} must be 1..${maxBytes} bytes`);
  }
  // Refuse tags (value-sharing bombs, bignums) and impossible lengths before cbor-x runs.
  const reason = scanCborSubset(bytes, CANONICAL_SUBSET);
  if (reason !== undefined) {
    throw new ImppError(code, `${what} uses CBOR outside the allowed subset (${reason})`);
  }
  let raw: unknown;
  try {
    raw = encoder.decode(bytes);
  } catch (cause) {
    throw new ImppError(code, `${what} is not well-formed CBOR`, { cause });
  }
  const value = fromWire(raw, 0);
  if (value === undefined)
    throw new ImppError(code, `${what} uses CBOR outside the allowed subset`);
  let again: Uint8Array;
  try {
    again = encodeCanonical(value);
  } catch (cause) {
    throw new ImppError(code, `${what} uses CBOR outside the allowed subset`, { cause });
  }
  if (!constantTimeEqual(again, bytes)) {
    throw new ImppError(code, `${what} is not in deterministic CBOR encoding`);
  }
  return value;
}

/**
 * The bytes a signature covers: the canonical array `[label, ...fields]`. The label names the
 * kind of object and its version (`"impp/device-list/v1"`); it is supplied by whoever verifies,
 * never read from the wire.
 *
 * @example
 * ```ts
 * const tbs = signingInput('impp/device-list/v1', [1, 'alice@example.com', 7]);
 * ```
 */
export function signingInput(label: string, fields: readonly CanonicalValue[]): Uint8Array {
  return encodeCanonical([label, ...fields]);
}

/** Reader over a decoded canonical array that throws `code` naming the field on any mismatch. */
export class FieldReader {
  readonly #items: readonly CanonicalValue[];
  readonly #code: ImppErrorCode;
  readonly #what: string;
  #next = 0;

  /**
   * @example
   * ```ts
   * const r = FieldReader.of(decodeCanonical(bytes, code, 'x'), 4, code, 'x');
   * const version = r.uint('version');
   * ```
   */
  static of(value: CanonicalValue, length: number, code: ImppErrorCode, what: string): FieldReader {
    if (!Array.isArray(value)) throw new ImppError(code, `${what} must be a CBOR array`);
    const items = value as readonly CanonicalValue[];
    if (items.length !== length) {
      throw new ImppError(code, `${what} must have ${length} fields, got ${items.length}`);
    }
    return new FieldReader(items, code, what);
  }

  private constructor(items: readonly CanonicalValue[], code: ImppErrorCode, what: string) {
    this.#items = items;
    this.#code = code;
    this.#what = what;
  }

  #take(field: string): CanonicalValue {
    if (this.#next >= this.#items.length) {
      throw new ImppError(this.#code, `${this.#what}: missing ${field}`);
    }
    return this.#items[this.#next++] as CanonicalValue;
  }

  #fail(field: string, expected: string): never {
    throw new ImppError(this.#code, `${this.#what}: ${field} must be ${expected}`);
  }

  /** A non-negative safe integer. */
  uint(field: string): number {
    const v = this.#take(field);
    return typeof v === 'number' ? v : this.#fail(field, 'an unsigned integer');
  }

  /** A text string of 1..maxLength UTF-16 code units. */
  text(field: string, maxLength = 1024): string {
    const v = this.#take(field);
    if (typeof v !== 'string' || v.length === 0 || v.length > maxLength) {
      return this.#fail(field, `a text string of 1..${maxLength} characters`);
    }
    return v;
  }

  /** A byte string, of exactly `length` bytes when given. */
  bytes(field: string, length?: number): Uint8Array {
    const v = this.#take(field);
    if (!(v instanceof Uint8Array)) return this.#fail(field, 'a byte string');
    if (length !== undefined && v.length !== length) return this.#fail(field, `${length} bytes`);
    return v;
  }

  /** A boolean. */
  bool(field: string): boolean {
    const v = this.#take(field);
    return typeof v === 'boolean' ? v : this.#fail(field, 'a boolean');
  }

  /** A byte string or null. */
  optionalBytes(field: string): Uint8Array | null {
    const v = this.#take(field);
    if (v === null) return null;
    return v instanceof Uint8Array ? v : this.#fail(field, 'a byte string or null');
  }

  /** An array (items are checked by the caller). */
  array(field: string, maxLength: number): readonly CanonicalValue[] {
    const v = this.#take(field);
    if (!Array.isArray(v)) return this.#fail(field, 'an array');
    const items = v as readonly CanonicalValue[];
    if (items.length > maxLength)
      return this.#fail(field, `an array of at most ${maxLength} items`);
    return items;
  }
}
