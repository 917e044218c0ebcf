/** The CBOR pre-scan that keeps cbor-x's decode-time tag handling away from untrusted bytes. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isImppError } from '../../src/errors.js';
import { decodeCanonical, encodeCanonical } from '../../src/trust/canonical.js';
import { scanCborSubset, type CborSubset } from '../../src/trust/cbor-scan.js';
import { bignum, sharingBomb } from '../helpers/cbor-bombs.js';

const TRUST: CborSubset = { arrays: true, maps: false, simpleValues: [20, 21, 22], maxDepth: 8 };

function refusedQuickly(bytes: Uint8Array): { ms: number; code: string } {
  const start = performance.now();
  try {
    decodeCanonical(bytes, 'ERR_DEVICE_LIST_INVALID', 'device list', 1 << 20);
  } catch (e) {
    return { ms: performance.now() - start, code: isImppError(e) ? e.code : String(e) };
  }
  return { ms: performance.now() - start, code: 'accepted' };
}

describe('scanCborSubset', () => {
  it('accepts every canonical encoding of the trust subset', () => {
    const leaf = fc.oneof(
      fc.nat(),
      fc.string(),
      fc.uint8Array({ maxLength: 40 }),
      fc.boolean(),
      fc.constant(null),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 4 })),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        expect(scanCborSubset(encodeCanonical(v as never), TRUST)).toBeUndefined();
      }),
    );
  });

  it('refuses tags, maps, floats, indefinite lengths, impossible lengths and trailing bytes', () => {
    const cases: [string, number[]][] = [
      ['tag', [0xc2, 0x41, 0x01]],
      ['map', [0xa1, 0x00, 0x00]],
      ['float', [0xfb, 0, 0, 0, 0, 0, 0, 0, 0]],
      ['undefined', [0xf7]],
      ['negative integer', [0x20]],
      ['indefinite array', [0x9f, 0x00, 0xff]],
      ['length beyond input', [0x5a, 0xff, 0xff, 0xff, 0xff, 0x00]],
      ['array count beyond input', [0x9a, 0x00, 0x10, 0x00, 0x00, 0x00]],
      ['trailing bytes', [0x00, 0x00]],
      ['truncated', [0x82, 0x00]],
      ['too deep', Array<number>(12).fill(0x81).concat([0x00])],
    ];
    for (const [name, bytes] of cases) {
      expect(scanCborSubset(Uint8Array.from(bytes), TRUST), name).toBeTypeOf('string');
    }
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = scanCborSubset(bytes, TRUST);
        expect(r === undefined || typeof r === 'string').toBe(true);
      }),
    );
  });
});

describe('decodeCanonical against decode-time bombs', () => {
  it('refuses a value-sharing bomb (tags 28/29) at once with the caller code', () => {
    const r = refusedQuickly(sharingBomb(16, 6));
    expect(r.code).toBe('ERR_DEVICE_LIST_INVALID');
    expect(r.ms).toBeLessThan(50);
  });

  it('refuses a large bignum (tag 2) at once with the caller code', () => {
    const r = refusedQuickly(bignum(200_000));
    expect(r.code).toBe('ERR_DEVICE_LIST_INVALID');
    expect(r.ms).toBeLessThan(50);
  });
});
