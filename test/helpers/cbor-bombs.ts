/** Hostile CBOR inputs shared by the decoder tests of every layer. */

/** A CBOR head (RFC 8949 §3) with a 0..65535 argument. */
export function head(major: number, n: number): number[] {
  if (n < 24) return [(major << 5) | n];
  if (n < 256) return [(major << 5) | 24, n];
  return [(major << 5) | 25, n >> 8, n & 255];
}

/**
 * cbor-x value sharing (tags 28/29): level l is an array of `width` references to level l - 1.
 * A few hundred bytes stand for width^levels values once expanded.
 */
export function sharingBomb(width: number, levels: number): Uint8Array {
  const out: number[] = [...head(4, levels), 0xd8, 0x1c, ...head(4, width)];
  for (let i = 0; i < width; i++) out.push(0);
  for (let l = 1; l < levels; l++) {
    out.push(0xd8, 0x1c, ...head(4, width));
    for (let i = 0; i < width; i++) out.push(0xd8, 0x1d, ...head(0, l - 1));
  }
  return Uint8Array.from(out);
}

/** A tag-2 bignum over `length` bytes: cbor-x builds it in time quadratic in the length. */
export function bignum(length: number): Uint8Array {
  const out = new Uint8Array(6 + length).fill(0xff);
  out.set([0xc2, 0x5a, length >>> 24, (length >>> 16) & 255, (length >>> 8) & 255, length & 255]);
  return out;
}
