/**
 * A linear, allocation-free pre-scan of untrusted CBOR (RFC 8949 §3) before any decoder sees it.
 *
 * cbor-x acts on tags while it decodes (value sharing, tags 28/29, can make a few hundred bytes
 * expand into gigabytes; bignums, tag 2, cost quadratic time), so a decode-then-check design is
 * a denial-of-service: the check comes too late. This scan walks the item structure once, with
 * no recursion, and refuses everything outside the caller's subset, every length the remaining
 * bytes cannot hold, nesting past a depth, and trailing bytes. Only input that passes reaches
 * the decoder, and the callers still re-encode and compare to enforce the deterministic form.
 */

/** What a caller's CBOR subset admits beyond unsigned integers, byte strings and text strings. */
export interface CborSubset {
  /** Arrays (major type 4). */
  readonly arrays: boolean;
  /** Maps (major type 5). */
  readonly maps: boolean;
  /** Simple values of major type 7 that are allowed (20 false, 21 true, 22 null). */
  readonly simpleValues: readonly number[];
  /** Deepest nesting of arrays and maps. */
  readonly maxDepth: number;
}

/**
 * Returns `undefined` when `bytes` is exactly one well-formed item of the subset, otherwise a
 * short reason (for the caller's typed error). Never throws and never allocates per item.
 *
 * @example
 * ```ts
 * const reason = scanCborSubset(bytes, { arrays: true, maps: false, simpleValues: [], maxDepth: 8 });
 * if (reason !== undefined) throw new ImppError('ERR_SEAL_MALFORMED', reason);
 * ```
 */
export function scanCborSubset(bytes: Uint8Array, subset: CborSubset): string | undefined {
  const open: number[] = []; // items still expected in each open array or map
  let pos = 0;
  for (;;) {
    if (open.length > subset.maxDepth) return 'nesting too deep';
    const initial = bytes[pos];
    if (initial === undefined) return 'truncated';
    pos += 1;
    const major = initial >> 5;
    const info = initial & 0x1f;
    let arg = info;
    if (info >= 24) {
      if (info > 27) return 'indefinite length or reserved value';
      const n = 1 << (info - 24);
      if (pos + n > bytes.length) return 'truncated';
      arg = 0;
      for (let i = 0; i < n; i++) arg = arg * 256 + (bytes[pos + i] ?? 0);
      pos += n;
    }
    const left = bytes.length - pos;
    if (major === 2 || major === 3) {
      if (arg > left) return 'truncated';
      pos += arg;
    } else if ((major === 4 && subset.arrays) || (major === 5 && subset.maps)) {
      const count = major === 5 ? arg * 2 : arg;
      if (count > left) return 'truncated'; // every item takes at least one byte
      if (count > 0) {
        open.push(count);
        continue;
      }
    } else if (major === 7) {
      if (info >= 24 || !subset.simpleValues.includes(info)) return 'CBOR type outside the subset';
    } else if (major !== 0) {
      return 'CBOR type outside the subset';
    }
    // One item is complete: close every container it completes.
    for (;;) {
      const top = open.length - 1;
      if (top < 0) return pos === bytes.length ? undefined : 'trailing bytes';
      const rest = (open[top] ?? 1) - 1;
      if (rest > 0) {
        open[top] = rest;
        break;
      }
      open.pop();
    }
  }
}
