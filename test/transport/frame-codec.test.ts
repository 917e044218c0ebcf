/**
 * Framing and strict CBOR: unit cases for every refusal rule and fast-check properties for the
 * incremental decoder (any split decodes the same, random bytes never crash, bounded buffer).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isImppError } from '../../src/errors.js';
import {
  type CborValue,
  decodeStrictCbor,
  encodeStrictCbor,
  scanStrictCbor,
} from '../../src/transport/cbor-strict.js';
import {
  type Frame,
  FrameDecoder,
  decodeFramePayload,
  encodeFrame,
} from '../../src/transport/frame-codec.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

/** Arbitrary values of the frame data model. */
const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ value: CborValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.double({ noNaN: true }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc
      .dictionary(
        fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
        tie('value'),
        { maxKeys: 5 },
      )
      .map((d) => ({ ...d })),
  ),
})).value;

const frameArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.integer({ min: 0, max: 0xffff }),
  body: cborValue,
});

/** Normalises decoded values for comparison (Buffer → Uint8Array, -0 → 0). */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(norm);
  if (typeof v === 'number' && Object.is(v, -0)) return 0;
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  }
  return v;
}

function expectCode(fn: () => unknown, code: 'ERR_FRAME_MALFORMED' | 'ERR_FRAME_TOO_LARGE'): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(isImppError(error, code), String(error)).toBe(true);
}

describe('strict CBOR', () => {
  test('accepts the data model', () => {
    for (const value of [
      null,
      true,
      0,
      -1,
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      1.5,
      'é',
      new Uint8Array([1]),
      [],
      {},
      { a: [1, { b: null }] },
    ]) {
      expect(norm(decodeStrictCbor(encodeStrictCbor(value as CborValue)))).toEqual(norm(value));
    }
  });

  test.each([
    ['a tag (epoch date)', 'c1 00'],
    ['a typed-array tag', 'd8 40 41 00'],
    ['undefined', 'f7'],
    ['a simple value', 'f0'],
    ['a simple value (1-byte)', 'f8 20'],
    ['a lone break', 'ff'],
    ['an indefinite array', '9f 01 ff'],
    ['an indefinite text string', '7f 61 61 ff'],
    ['reserved additional info', '1c'],
    ['an integer above 2^53 - 1', '1b 0020000000000000'],
    ['a negative integer below -(2^53 - 1)', '3b 001fffffffffffff'],
    ['invalid UTF-8', '62 c3 28'],
    ['a non-text map key', 'a1 01 02'],
    ['a duplicate map key', 'a2 61 61 01 61 61 02'],
    ['a __proto__ key', 'a1 69 5f5f70726f746f5f5f 01'],
    ['trailing bytes', '01 02'],
    ['a truncated string', '65 6869'],
    ['a truncated argument', '19 01'],
    ['an impossible array length', '9a ffffffff 00'],
    ['empty input', ''],
  ])('refuses %s', (_what, bytes) => {
    expectCode(() => decodeStrictCbor(hex(bytes)), 'ERR_FRAME_MALFORMED');
  });

  test('duplicate keys are found in large maps too', () => {
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const encodeMap = (names: string[]): Uint8Array =>
      Buffer.concat([
        Buffer.from([0xb8, names.length]),
        ...names.map((k) =>
          Buffer.concat([Buffer.from([0x60 + k.length]), Buffer.from(k), Buffer.from([0x01])]),
        ),
      ]);
    expect(() => {
      scanStrictCbor(encodeMap(keys));
    }).not.toThrow();
    expectCode(() => {
      scanStrictCbor(encodeMap([...keys.slice(0, 39), 'k3']));
    }, 'ERR_FRAME_MALFORMED');
    expectCode(() => {
      scanStrictCbor(encodeMap(['a', 'b', 'a']));
    }, 'ERR_FRAME_MALFORMED');
    expect(() => {
      scanStrictCbor(encodeMap(['ab', 'ba', 'a', 'b']));
    }).not.toThrow();
  });

  test('refuses deep nesting without exhausting the stack', () => {
    const deep = new Uint8Array(200_000).fill(0x81);
    deep[deep.length - 1] = 0x00;
    expectCode(() => {
      scanStrictCbor(deep);
    }, 'ERR_FRAME_MALFORMED');
    const ok = new Uint8Array(33).fill(0x81);
    ok[32] = 0x00; // 32 levels: the default maximum
    expect(() => {
      scanStrictCbor(ok);
    }).not.toThrow();
  });

  test('decoded byte strings are copies, not views of the input', () => {
    const bytes = encodeStrictCbor(new Uint8Array([1, 2, 3]));
    const out = decodeStrictCbor(bytes) as Uint8Array;
    bytes.fill(0);
    expect(Array.from(out)).toEqual([1, 2, 3]);
  });

  test('the encoder refuses values outside the model', () => {
    const bads: unknown[] = [
      undefined,
      new Date(0),
      new Map([[1, 2]]),
      2n ** 64n,
      { x: undefined },
    ];
    for (const [i, bad] of bads.entries()) {
      let error: unknown;
      try {
        encodeStrictCbor(bad as CborValue);
      } catch (e) {
        error = e;
      }
      expect(isImppError(error, 'ERR_INVALID_ARGUMENT'), `case ${i}`).toBe(true);
    }
  });

  test('property: encode then decode is the identity on the data model', () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        expect(norm(decodeStrictCbor(encodeStrictCbor(value)))).toEqual(norm(value));
      }),
      { numRuns: 300 },
    );
  });
});

describe('frame payloads', () => {
  test('shape: [type, body] with type in 0..65535', () => {
    expect(decodeFramePayload(encodeStrictCbor([16, 'x']), 100)).toEqual({ type: 16, body: 'x' });
    for (const bad of [
      { t: 1 },
      [16],
      [16, 1, 2],
      [-1, null],
      [65536, null],
      ['16', null],
      [1.5, null],
    ]) {
      expectCode(() => decodeFramePayload(encodeStrictCbor(bad), 100), 'ERR_FRAME_MALFORMED');
    }
  });

  test('size is checked before decoding', () => {
    expectCode(() => decodeFramePayload(new Uint8Array(101), 100), 'ERR_FRAME_TOO_LARGE');
    expectCode(() => decodeFramePayload(new Uint8Array(0), 100), 'ERR_FRAME_MALFORMED');
  });

  test('encodeFrame refuses frames above the limit and bad types', () => {
    expect(() => encodeFrame({ type: 16, body: new Uint8Array(200) }, 100)).toThrow(/exceeds/);
    expect(() => encodeFrame({ type: 70_000, body: null })).toThrow(/frame.type/);
  });
});

describe('FrameDecoder', () => {
  test('refuses an oversized length as soon as the prefix is complete', () => {
    const d = new FrameDecoder({ maxFrameBytes: 1000 });
    d.push(Uint8Array.of(0, 0, 0x03));
    expect(d.next()).toBeUndefined();
    d.push(Uint8Array.of(0xe9)); // 1001
    expectCode(() => d.next(), 'ERR_FRAME_TOO_LARGE');
    expect(d.bufferedBytes).toBe(0);
    // Poisoned: the stream has lost sync.
    expectCode(() => d.next(), 'ERR_FRAME_TOO_LARGE');
    expect(() => {
      d.push(Uint8Array.of(0));
    }).toThrow();
  });

  test('a slow body is gathered in one exact buffer; leftovers do not pin big chunks', () => {
    const d = new FrameDecoder({ maxFrameBytes: 1 << 20 });
    const frame = encodeFrame({ type: 16, body: new Uint8Array(50_000) }).bytes;
    // First piece arrives inside a large buffer (like a 64 KiB socket read).
    const big = Buffer.alloc(65_536);
    frame.copy(big, 0, 0, 10);
    d.push(big.subarray(0, 10));
    expect(d.next()).toBeUndefined();
    expect(d.retainedBytes).toBeLessThan(frame.length); // the 64 KiB buffer is not kept
    for (let i = 10; i < frame.length; i += 1000) {
      d.push(frame.subarray(i, Math.min(frame.length, i + 1000)));
      if (i + 1000 < frame.length) expect(d.next()).toBeUndefined();
    }
    expect(d.next()?.type).toBe(16);
    expect(d.retainedBytes).toBe(0);
    // Three bytes of a prefix left in a big read are copied out.
    const tail = Buffer.alloc(65_536);
    d.push(tail.subarray(0, 3));
    expect(d.next()).toBeUndefined();
    expect(d.retainedBytes).toBeLessThanOrEqual(64);
  });

  test('a raised limit applies to the next prefix', () => {
    const d = new FrameDecoder({ maxFrameBytes: 1024 });
    const big = encodeFrame({ type: 16, body: new Uint8Array(2000) }).bytes;
    d.maxFrameBytes = 4096;
    d.push(big);
    expect(d.next()?.type).toBe(16);
  });

  test('property: any frames split at any boundaries decode to the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 20 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((f) => encodeFrame(f).bytes));
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort(
            (a, b) => a - b,
          );
          const d = new FrameDecoder({ maxFrameBytes: 1 << 20 });
          const out: Frame[] = [];
          let prev = 0;
          for (const p of [...points, stream.length]) {
            d.push(stream.subarray(prev, p));
            prev = p;
            for (let f = d.next(); f !== undefined; f = d.next()) out.push(f);
          }
          expect(norm(out)).toEqual(norm(frames));
          expect(d.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('property: one byte at a time decodes the same frames', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 4 }), (frames) => {
        const stream = Buffer.concat(frames.map((f) => encodeFrame(f).bytes));
        const d = new FrameDecoder({ maxFrameBytes: 1 << 20 });
        const out: Frame[] = [];
        for (const byte of stream) {
          d.push(Uint8Array.of(byte));
          for (let f = d.next(); f !== undefined; f = d.next()) out.push(f);
        }
        expect(norm(out)).toEqual(norm(frames));
      }),
      { numRuns: 100 },
    );
  });

  test('property: random bytes never crash, yield only typed errors, and stay bounded', () => {
    const max = 64;
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 20 }),
        fc.boolean(),
        (chunks, smallLengths) => {
          const d = new FrameDecoder({ maxFrameBytes: max });
          for (const c of chunks) {
            // Optionally force plausible (small) lengths so bodies reach the CBOR decoder.
            const chunk =
              smallLengths && c.length >= 4
                ? Uint8Array.from([0, 0, 0, c[3]! % 70, ...c.subarray(4)])
                : c;
            try {
              d.push(chunk);
              while (d.next() !== undefined) {
                /* drain */
              }
            } catch (e) {
              expect(
                isImppError(e, 'ERR_FRAME_MALFORMED') || isImppError(e, 'ERR_FRAME_TOO_LARGE'),
              ).toBe(true);
              return;
            }
            expect(d.bufferedBytes).toBeLessThanOrEqual(4 + max - 1);
            expect(d.retainedBytes).toBeLessThanOrEqual(4 + max);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('property: corrupting one byte of valid frames yields frames or a typed error', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (frames, at, xor) => {
          const stream = Buffer.concat(frames.map((f) => encodeFrame(f).bytes));
          const i = at % stream.length;
          stream[i] = stream[i]! ^ xor;
          const d = new FrameDecoder({ maxFrameBytes: 1 << 16 });
          try {
            d.push(stream);
            while (d.next() !== undefined) {
              /* drain */
            }
          } catch (e) {
            expect(
              isImppError(e, 'ERR_FRAME_MALFORMED') || isImppError(e, 'ERR_FRAME_TOO_LARGE'),
            ).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('docs/protocol.md example', () => {
  test('the HELLO example encodes byte for byte', () => {
    const { bytes } = encodeFrame({ type: 0, body: { versions: [1], maxFrameBytes: 1_048_576 } });
    expect(bytes.toString('hex')).toBe(
      '00000021' +
        '82' +
        '00' +
        'a2' +
        '6876657273696f6e73' +
        '8101' +
        '6d6d61784672616d654279746573' +
        '1a00100000',
    );
  });
});
