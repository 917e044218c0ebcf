/**
 * Strict, deterministic CBOR (RFC 8949) for sealed objects, on top of cbor-x.
 *
 * Encoding follows the core deterministic rules of RFC 8949 §4.2.1 for the subset we use:
 * unsigned integers, byte strings, text strings, arrays and maps with small unsigned integer keys
 * written in ascending order, all with definite, shortest-form lengths.
 *
 * Decoding is strict by construction: the input size is bounded before anything is parsed, a
 * linear pre-scan refuses every major type and length form outside the subset before cbor-x
 * runs (so none of cbor-x's tag extensions is ever reached), cbor-x refuses trailing bytes, and the decoded value is re-encoded and compared with the input,
 * so indefinite lengths, non-shortest integers, duplicate or unordered map keys, tags, floats and
 * simple values are all refused (they do not survive the round trip). Only then is the snapshot
 * checked against a schema (RFC 8949 §5.3, "validity"), and only the snapshot is used.
 */
import { Decoder, Encoder } from 'cbor-x';
import { ImppError } from '../errors.js';
import { scanCborSubset, type CborSubset } from '../trust/cbor-scan.js';

/** The CBOR values sealed objects use. */
export type CborValue = number | string | Uint8Array | readonly CborValue[] | CborMap;
/** A CBOR map with unsigned integer keys. */
export type CborMap = ReadonlyMap<number, CborValue>;

const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  variableMapSize: true,
});
const decoder = new Decoder({ useRecords: false, mapsAsObjects: false });

const UINT32_MAX = 0xffff_ffff;
/** Deepest nesting {@link normalise} accepts; the pre-scan refuses deeper input first. */
const MAX_DEPTH = 8;

/** Unsigned integers, byte and text strings, arrays and maps, no simple values. */
const SEAL_SUBSET: CborSubset = { arrays: true, maps: true, simpleValues: [], maxDepth: MAX_DEPTH };

function malformed(what: string): ImppError {
  return new ImppError('ERR_SEAL_MALFORMED', `sealed object is malformed: ${what}`);
}

/** Prepares a value for cbor-x: integers above 2^32-1 go as bigint (cbor-x would write a float). */
function prepare(value: CborValue): unknown {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'CBOR integers must be unsigned safe integers');
    }
    return value > UINT32_MAX ? BigInt(value) : value;
  }
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  if (value instanceof Map) {
    const map = value as CborMap;
    const keys = [...map.keys()].sort((a, b) => a - b);
    const out = new Map<number, unknown>();
    for (const k of keys) {
      if (!Number.isInteger(k) || k < 0 || k > 23) {
        throw new ImppError('ERR_INVALID_ARGUMENT', 'CBOR map keys must be 0..23');
      }
      out.set(k, prepare(map.get(k) as CborValue));
    }
    return out;
  }
  return (value as readonly CborValue[]).map(prepare);
}

/**
 * Deterministic CBOR encoding of `value` (maps written with ascending keys).
 *
 * @example
 * ```ts
 * const bytes = encodeCbor(new Map([[0, 1], [1, new Uint8Array(16)]]));
 * ```
 */
export function encodeCbor(value: CborValue): Uint8Array {
  // Copy out of cbor-x's reusable buffer so callers own the bytes, then zero what we wrote there:
  // that buffer is module-level in cbor-x, shared by every Encoder in the process, and would
  // otherwise keep serialised state, keys and plaintext reachable after the caller wipes its copy.
  const written = encoder.encode(prepare(value));
  const out = Uint8Array.from(written);
  written.fill(0);
  return out;
}

/** Converts cbor-x output into {@link CborValue}s; anything else is malformed. */
function normalise(value: unknown, depth: number): CborValue {
  if (depth > MAX_DEPTH) throw malformed('nesting too deep');
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw malformed('not an unsigned integer');
    return value;
  }
  if (typeof value === 'bigint') {
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('integer range');
    return Number(value);
  }
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return new Uint8Array(value); // own copy, plain Uint8Array
  if (Array.isArray(value)) return value.map((v) => normalise(v, depth + 1));
  if (value instanceof Map) {
    const out = new Map<number, CborValue>();
    for (const [k, v] of value) {
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 23) {
        throw malformed('unexpected map key');
      }
      out.set(k, normalise(v, depth + 1));
    }
    return out;
  }
  throw malformed('unexpected CBOR type');
}

/**
 * Whether the deterministic encoding of `value` is exactly `bytes`. Compares in cbor-x's buffer
 * and wipes it (as {@link encodeCbor} does), without the copy a caller-owned result would need.
 */
function encodesTo(value: CborValue, bytes: Uint8Array): boolean {
  const written = encoder.encode(prepare(value));
  let same = written.length === bytes.length;
  for (let i = 0; same && i < bytes.length; i++) same = written[i] === bytes[i];
  written.fill(0);
  return same;
}

/**
 * Strict decoding: bounds the size first, refuses trailing bytes and any encoding that is not
 * the deterministic one. Throws `ERR_SEAL_TOO_LARGE` or `ERR_SEAL_MALFORMED`.
 *
 * @example
 * ```ts
 * const value = decodeCborStrict(bytes, MAX_SEALED_BYTES);
 * ```
 */
export function decodeCborStrict(bytes: Uint8Array, maxBytes: number): CborValue {
  if (!(bytes instanceof Uint8Array)) throw malformed('not a byte string');
  if (bytes.length > maxBytes) {
    throw new ImppError('ERR_SEAL_TOO_LARGE', `sealed object exceeds ${maxBytes} bytes`);
  }
  if (bytes.length === 0) throw malformed('empty input');
  const reason = scanCborSubset(bytes, SEAL_SUBSET);
  if (reason !== undefined) throw malformed(reason);
  let decoded: unknown;
  try {
    decoded = decoder.decode(bytes);
  } catch {
    throw malformed('not CBOR');
  }
  const value = normalise(decoded, 0);
  if (!encodesTo(value, bytes)) throw malformed('not deterministic CBOR');
  return value;
}

/**
 * Reads `value` as a map whose keys are exactly `required` plus any of `optional`.
 *
 * @example
 * ```ts
 * const m = expectMap(value, [0, 1, 2]);
 * ```
 */
export function expectMap(
  value: CborValue | undefined,
  required: readonly number[],
  optional: readonly number[] = [],
): CborMap {
  if (!(value instanceof Map)) throw malformed('expected a map');
  const map = value as CborMap;
  for (const k of map.keys()) {
    if (!required.includes(k) && !optional.includes(k)) throw malformed('unexpected map key');
  }
  for (const k of required) if (!map.has(k)) throw malformed('missing map key');
  return map;
}

/** An unsigned integer field no greater than `max`. */
export function uintField(map: CborMap, key: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = map.get(key);
  if (typeof v !== 'number' || v > max) throw malformed('expected an unsigned integer');
  return v;
}

/** A byte string field of exactly `length` bytes, or at most `maxLength` when `length` is undefined. */
export function bytesField(
  map: CborMap,
  key: number,
  length: number | undefined,
  maxLength = Number.MAX_SAFE_INTEGER,
): Uint8Array {
  const v = map.get(key);
  if (!(v instanceof Uint8Array)) throw malformed('expected a byte string');
  if (length !== undefined ? v.length !== length : v.length > maxLength) {
    throw malformed('byte string length');
  }
  return v;
}

/** A non-empty text field of at most `maxBytes` UTF-8 bytes. */
export function textField(map: CborMap, key: number, maxBytes: number): string {
  const v = map.get(key);
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v, 'utf8') > maxBytes) {
    throw malformed('expected a text string');
  }
  return v;
}

/**
 * An unambiguous transcript for AEAD associated data and signature inputs: the deterministic
 * CBOR encoding of the array `[label, ...items]`. Lengths are explicit, so no two distinct
 * transcripts share an encoding.
 *
 * @example
 * ```ts
 * const ad = transcript('impp/v1/presence/update', headerBytes);
 * ```
 */
export function transcript(label: string, ...items: CborValue[]): Uint8Array {
  return encodeCbor([label, ...items]);
}
