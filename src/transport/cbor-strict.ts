/**
 * Strict CBOR (RFC 8949) for transport frames: a small, closed data model, checked by a
 * well-formedness scanner BEFORE the bytes reach the general-purpose decoder (cbor-x).
 *
 * Why a scanner first: cbor-x is fast and lenient. It accepts tags (dates, typed arrays, record
 * extensions), duplicate map keys (last wins: a parser differential), integers JavaScript cannot
 * hold exactly, invalid UTF-8 and trailing data in some modes. The scanner refuses all of these
 * in one linear, non-recursive pass (so deep nesting cannot exhaust the stack), and only then
 * is the item handed to cbor-x with record and structure extensions off.
 *
 * The data model ({@link CborValue}): null, booleans, safe integers, floats, text strings
 * (valid UTF-8), byte strings, arrays and maps with text-string keys (no duplicates, never
 * `__proto__`). Indefinite lengths (RFC 8949 §3.2), tags (§3.4), `undefined` and other simple
 * values (§3.3) are refused.
 */
import { isUtf8 } from 'node:buffer';
import { Decoder, Encoder } from 'cbor-x';
import { ImppError } from '../errors.js';

/** A value of the transport data model. Decoded frames contain only these. */
export type CborValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly CborValue[]
  | { readonly [key: string]: CborValue };

/** Default maximum nesting of arrays and maps in one frame. */
export const DEFAULT_MAX_CBOR_DEPTH = 32;

// Byte strings come out as views of the buffer decoded; decodeStrictCbor hands it a private copy.
const decoder = new Decoder({ mapsAsObjects: true, useRecords: false });
const encoder = new Encoder({
  mapsAsObjects: true,
  useRecords: false,
  tagUint8Array: false,
  variableMapSize: true,
});

function malformed(why: string): ImppError {
  return new ImppError('ERR_FRAME_MALFORMED', `malformed CBOR: ${why}`);
}

interface Level {
  /** Items still expected at this level (a map of n pairs expects 2n items). */
  left: number;
  /** True for maps. */
  map: boolean;
  /**
   * Keys seen so far in this map: for small maps, [start, end] offsets into the input (compared
   * byte by byte, no strings made); for large ones, a Set of their latin1 views (1:1 with bytes).
   */
  keys: number[] | Set<string> | null;
}

/** Maps with more pairs than this track keys in a Set instead of an offset list. */
const SMALL_MAP = 16;

const PROTO = Buffer.from('__proto__', 'latin1');

/** ASCII fast path before the native UTF-8 check (map keys and most texts are ASCII). */
function isValidUtf8(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if ((buf[i] ?? 0) >= 0x80) return isUtf8(buf.subarray(start, end));
  }
  return true;
}

function sameBytes(buf: Buffer, a: number, b: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

function isProto(buf: Buffer, start: number, end: number): boolean {
  if (end - start !== PROTO.length) return false;
  for (let i = 0; i < PROTO.length; i++) if (buf[start + i] !== PROTO[i]) return false;
  return true;
}

/** Records the map key at buf[start, end); false if the map already had it. */
function addKey(level: Level, buf: Buffer, start: number, end: number): boolean {
  const keys = level.keys;
  if (keys === null) {
    // `left` counts this key and its value: 2 means this is the map's last pair, so nothing
    // can collide with it later and no bookkeeping is needed.
    if (level.left > 2) level.keys = [start, end];
    return true;
  }
  if (Array.isArray(keys)) {
    const length = end - start;
    for (let k = 0; k < keys.length; k += 2) {
      const s = keys[k] ?? 0;
      if ((keys[k + 1] ?? 0) - s === length && sameBytes(buf, s, start, length)) return false;
    }
    if (keys.length < 2 * SMALL_MAP) {
      keys.push(start, end);
    } else {
      const set = new Set<string>();
      for (let k = 0; k < keys.length; k += 2) {
        set.add(buf.toString('latin1', keys[k], keys[k + 1]));
      }
      set.add(buf.toString('latin1', start, end));
      level.keys = set;
    }
    return true;
  }
  const key = buf.toString('latin1', start, end);
  if (keys.has(key)) return false;
  keys.add(key);
  return true;
}

/**
 * Checks that `bytes` hold exactly one well-formed CBOR item of the transport data model.
 * Throws `ERR_FRAME_MALFORMED` naming the first rule broken. Linear time, constant stack.
 *
 * @example
 * ```ts
 * scanStrictCbor(Uint8Array.of(0x82, 0x10, 0xf6)); // [16, null]: fine
 * scanStrictCbor(Uint8Array.of(0xc1, 0x00));       // throws: tags are not allowed
 * ```
 */
export function scanStrictCbor(bytes: Uint8Array, maxDepth = DEFAULT_MAX_CBOR_DEPTH): void {
  const buf = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = buf.length;
  const stack: Level[] = [];
  let pos = 0;
  for (;;) {
    const top = stack[stack.length - 1];
    // In a map, an even count of remaining items means the next item is a key.
    const isKey = top !== undefined && top.map && top.left % 2 === 0;
    if (pos >= end) throw malformed('truncated item');
    const initial = buf[pos++] ?? 0;
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (isKey && major !== 3) throw malformed('map keys must be text strings');

    if (major === 7) {
      // RFC 8949 §3.3: 20 false, 21 true, 22 null, 25/26/27 half/single/double floats.
      if (info === 25 || info === 26 || info === 27) {
        const size = info === 25 ? 2 : info === 26 ? 4 : 8;
        if (end - pos < size) throw malformed('truncated float');
        pos += size;
      } else if (info === 31) {
        throw malformed('unexpected break');
      } else if (info < 20 || info > 22) {
        throw malformed('simple value outside null/true/false');
      }
    } else {
      // RFC 8949 §3: the argument follows in 0, 1, 2, 4 or 8 bytes.
      let arg: number;
      if (info < 24) {
        arg = info;
      } else if (info === 24) {
        if (end - pos < 1) throw malformed('truncated argument');
        arg = buf.readUInt8(pos);
        pos += 1;
      } else if (info === 25) {
        if (end - pos < 2) throw malformed('truncated argument');
        arg = buf.readUInt16BE(pos);
        pos += 2;
      } else if (info === 26) {
        if (end - pos < 4) throw malformed('truncated argument');
        arg = buf.readUInt32BE(pos);
        pos += 4;
      } else if (info === 27) {
        if (end - pos < 8) throw malformed('truncated argument');
        const hi = buf.readUInt32BE(pos);
        const lo = buf.readUInt32BE(pos + 4);
        pos += 8;
        // Above 2^53 - 1 JavaScript numbers lose precision: refuse instead of rounding.
        if (hi > 0x1fffff) throw malformed('integer or length beyond 2^53 - 1');
        arg = hi * 0x1_0000_0000 + lo;
      } else if (info === 31) {
        throw malformed('indefinite lengths are not allowed');
      } else {
        throw malformed('reserved additional information');
      }

      switch (major) {
        case 0:
          break;
        case 1:
          // -1 - arg must stay a safe integer.
          if (arg >= Number.MAX_SAFE_INTEGER) throw malformed('integer beyond -(2^53 - 1)');
          break;
        case 2:
        case 3: {
          if (arg > end - pos) throw malformed('truncated string');
          if (major === 3) {
            if (!isValidUtf8(buf, pos, pos + arg)) {
              throw malformed('text string is not valid UTF-8');
            }
            if (isKey) {
              if (isProto(buf, pos, pos + arg)) {
                throw malformed('map key "__proto__" is not allowed');
              }
              if (!addKey(top, buf, pos, pos + arg)) throw malformed('duplicate map key');
            }
          }
          pos += arg;
          break;
        }
        case 4:
        case 5: {
          const items = major === 5 ? arg * 2 : arg;
          // Every item takes at least one byte: refuse impossible counts before looping.
          if (items > end - pos) throw malformed('container longer than the input');
          if (items > 0) {
            if (stack.length >= maxDepth) throw malformed(`nesting deeper than ${maxDepth}`);
            stack.push({ left: items, map: major === 5, keys: null });
            continue;
          }
          break;
        }
        default:
          throw malformed('tags are not allowed');
      }
    }

    // One item is complete: close every container it completes.
    for (;;) {
      const level = stack[stack.length - 1];
      if (level === undefined) {
        if (pos !== end) throw malformed('trailing bytes after the item');
        return;
      }
      level.left -= 1;
      if (level.left > 0) break;
      stack.pop();
    }
  }
}

/**
 * Decodes exactly one strict CBOR item (see {@link scanStrictCbor}). Byte strings in the result
 * never share memory with `bytes` (so they cannot pin a larger socket buffer, nor change if the
 * caller reuses it): the item is copied once and byte strings are views of that private copy.
 *
 * @example
 * ```ts
 * const value = decodeStrictCbor(bytes); // CborValue, or throws ERR_FRAME_MALFORMED
 * ```
 */
export function decodeStrictCbor(bytes: Uint8Array, maxDepth = DEFAULT_MAX_CBOR_DEPTH): CborValue {
  scanStrictCbor(bytes, maxDepth);
  const own = Buffer.allocUnsafe(bytes.length);
  own.set(bytes);
  try {
    return decoder.decode(own) as CborValue;
  } catch (cause) {
    // Unreachable if the scanner is right; kept so a decoder surprise is still a typed error.
    throw new ImppError('ERR_FRAME_MALFORMED', 'malformed CBOR: decoder refused the item', {
      cause,
    });
  }
}

/**
 * Encodes a value of the data model. The output is checked with the same scanner the receiver
 * uses, so we never send what a conforming peer must refuse (`undefined`, Dates, Maps, …).
 *
 * @example
 * ```ts
 * const bytes = encodeStrictCbor([16, { text: 'hi' }]);
 * ```
 */
export function encodeStrictCbor(value: CborValue, maxDepth = DEFAULT_MAX_CBOR_DEPTH): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = encoder.encode(value);
  } catch (cause) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'value cannot be encoded as CBOR', { cause });
  }
  try {
    scanStrictCbor(bytes, maxDepth);
  } catch (cause) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'value is outside the frame data model', {
      cause,
    });
  }
  return bytes;
}
