/** Device identities, fingerprints and the deterministic CBOR they are built on. */
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseDeviceAddress } from '../../src/trust/address.js';
import {
  FieldReader,
  decodeCanonical,
  encodeCanonical,
  signingInput,
  type CanonicalValue,
} from '../../src/trust/canonical.js';
import {
  compareBytes,
  decodeDeviceIdentity,
  encodeDeviceIdentity,
  formatFingerprint,
  generateDeviceIdentity,
  keyFingerprint,
} from '../../src/trust/identity.js';

const device = parseDeviceAddress('alice@example.com/phone');
const seed = new Uint8Array(32).fill(1);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isImppError(e) ? e.code : 'not-impp';
  }
  return undefined;
}

describe('canonical CBOR', () => {
  it('encodes the RFC 8949 §4.2.1 shortest forms', () => {
    expect(toHex(encodeCanonical([0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32]))).toBe(
      '89' +
        '00' +
        '17' +
        '1818' +
        '18ff' +
        '190100' +
        '19ffff' +
        '1a00010000' +
        '1affffffff' +
        '1b0000000100000000',
    );
    expect(toHex(encodeCanonical(['a', Uint8Array.of(1, 2), true, false, null, []]))).toBe(
      '86' + '6161' + '420102' + 'f5' + 'f4' + 'f6' + '80',
    );
    expect(toHex(encodeCanonical(Number.MAX_SAFE_INTEGER))).toBe('1b001fffffffffffff');
  });

  it('refuses values outside the subset when encoding', () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, { a: 1 }, undefined, 1n]) {
      expect(code(() => encodeCanonical(bad as unknown as CanonicalValue))).toBe(
        'ERR_INVALID_ARGUMENT',
      );
    }
    let deep: CanonicalValue = [];
    for (let i = 0; i < 20; i++) deep = [deep];
    expect(code(() => encodeCanonical(deep))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('refuses non-canonical, non-subset or trailing input when decoding', () => {
    const bad = [
      '1801', // 1 with a one-byte argument
      '190001', // 1 with a two-byte argument
      '1b0000000000000001', // 1 as uint64
      '9f0102ff', // indefinite array
      '5f4101ff', // indefinite byte string
      'a10102', // map
      'f93c00', // half float 1.0
      'fb3ff0000000000000', // float64 1.0
      '20', // -1
      'c24101', // tag 2
      '0102', // trailing byte
      '62c328', // invalid UTF-8
      '1b0020000000000000', // 2^53, unsafe
      '', // empty
      '98', // truncated
      '9a7fffffff', // array claiming 2^31 items
      '9b00000000ffffffff', // array with a 64-bit length
      '5a7fffffff00', // byte string longer than the input
      'd9d9f700', // self-described CBOR tag around 0
      'c11a00000001', // epoch-time tag
      'd840420102', // typed-array tag 64
      'd9dfff8100', // cbor-x record extension
    ];
    for (const hex of bad) {
      expect(
        code(() => decodeCanonical(fromHex(hex), 'ERR_ENROLMENT_INVALID', 'x')),
        hex,
      ).toBe('ERR_ENROLMENT_INVALID');
    }
    expect(code(() => decodeCanonical(new Uint8Array(70_000), 'ERR_ENROLMENT_INVALID', 'x'))).toBe(
      'ERR_ENROLMENT_INVALID',
    );
    // Deep nesting beyond the limit, and nesting that would exhaust a naive recursive parser.
    expect(
      code(() => decodeCanonical(fromHex('81'.repeat(20) + '00'), 'ERR_ENROLMENT_INVALID', 'x')),
    ).toBe('ERR_ENROLMENT_INVALID');
    expect(
      code(() =>
        decodeCanonical(fromHex('81'.repeat(60_000) + '00'), 'ERR_ENROLMENT_INVALID', 'x'),
      ),
    ).toBe('ERR_ENROLMENT_INVALID');
  });

  it('property: decode(encode(v)) = v for random values of the subset', () => {
    const value = fc.letrec<{ v: CanonicalValue }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small', maxDepth: 4 },
        fc.nat(),
        fc.maxSafeNat(),
        fc.string(),
        fc.uint8Array({ maxLength: 40 }),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('v'), { maxLength: 4 }),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encodeCanonical(v);
        expect(decodeCanonical(bytes, 'ERR_INVALID_ARGUMENT', 'v')).toEqual(v);
      }),
      { numRuns: 300 },
    );
  });

  it('property: random bytes either decode to a value that re-encodes identically, or throw a typed error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        let value: CanonicalValue;
        try {
          value = decodeCanonical(bytes, 'ERR_INVALID_ARGUMENT', 'v');
        } catch (e) {
          expect(isImppError(e, 'ERR_INVALID_ARGUMENT')).toBe(true);
          return;
        }
        expect(toHex(encodeCanonical(value))).toBe(toHex(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it('puts the label first in signing inputs', () => {
    expect(signingInput('impp/x/v1', [1])).toEqual(encodeCanonical(['impp/x/v1', 1]));
  });

  it('FieldReader names the field that is wrong', () => {
    const r = FieldReader.of([1, 'x'], 2, 'ERR_INVALID_ARGUMENT', 'thing');
    expect(() => r.bytes('key')).toThrow(/thing: key must be a byte string/);
    expect(code(() => FieldReader.of([1], 2, 'ERR_INVALID_ARGUMENT', 'thing'))).toBe(
      'ERR_INVALID_ARGUMENT',
    );
    expect(code(() => FieldReader.of('x', 1, 'ERR_INVALID_ARGUMENT', 'thing'))).toBe(
      'ERR_INVALID_ARGUMENT',
    );
  });
});

describe('device identity', () => {
  it('generates a record whose secret half never leaks through logging', () => {
    const { identity, keyPair } = generateDeviceIdentity(device, { now: 1_700_000_000_000, seed });
    expect(identity.identityKey).toEqual(keyPair.publicKey);
    expect(identity.created).toBe(1_700_000_000_000);
    expect(JSON.stringify(keyPair)).not.toContain(toHex(keyPair.secretKey.expose()));
    expect(inspect(keyPair)).toContain('redacted');
  });

  it('round-trips the public record with version first', () => {
    const { identity } = generateDeviceIdentity(device, { now: 42, seed });
    const bytes = encodeDeviceIdentity(identity);
    expect(bytes[1]).toBe(1); // array(4), then version 1
    const back = decodeDeviceIdentity(bytes);
    expect(back.identityKey).toEqual(identity.identityKey);
    expect(back.created).toBe(42);
    expect(back.device.deviceId).toBe('phone');
    expect(back.device.address.domain).toBe('example.com');
  });

  it('refuses unknown versions and malformed records', () => {
    const { identity } = generateDeviceIdentity(device, { now: 42, seed });
    const key = identity.identityKey;
    const bad = [
      encodeCanonical([2, 'alice@example.com/phone', key, 42]),
      encodeCanonical([0, 'alice@example.com/phone', key, 42]),
      encodeCanonical([1, 'alice@example.com/phone', key.subarray(1), 42]),
      encodeCanonical([1, 'alice@example.com/phone', key]),
      encodeCanonical([1, 'not-an-address', key, 42]),
      encodeCanonical([1, 'alice@example.com/phone', 'key', 42]),
    ];
    for (const b of bad) {
      expect(code(() => decodeDeviceIdentity(b))).toMatch(
        /^ERR_(INVALID_ARGUMENT|ADDRESS_INVALID)$/,
      );
    }
    expect(code(() => encodeDeviceIdentity({ ...identity, created: -1 }))).toBe(
      'ERR_INVALID_ARGUMENT',
    );
    expect(code(() => encodeDeviceIdentity({ ...identity, identityKey: new Uint8Array(31) }))).toBe(
      'ERR_INVALID_ARGUMENT',
    );
  });
});

describe('key fingerprints', () => {
  const { identity } = generateDeviceIdentity(device, { now: 1, seed });

  it('are a stable labelled hash, shown as 16 groups of 4 hex digits', () => {
    const fp = keyFingerprint(identity.identityKey);
    expect(fp).toHaveLength(32);
    const shown = formatFingerprint(fp);
    expect(shown).toMatch(/^([0-9a-f]{4} ){15}[0-9a-f]{4}$/);
    // Pinned: the Ed25519 key from seed 0x01…01 (test/vectors/safety-number.json uses the same key).
    expect(toHex(identity.identityKey)).toBe(
      '8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c',
    );
    expect(toHex(fp)).toBe(toHex(keyFingerprint(fromHex(toHex(identity.identityKey)))));
  });

  it('differ for different keys and are not the plain SHA-256 of the key', () => {
    const other = generateDeviceIdentity(device, { seed: new Uint8Array(32).fill(2) }).identity;
    expect(keyFingerprint(identity.identityKey)).not.toEqual(keyFingerprint(other.identityKey));
  });

  it('refuse malformed keys', () => {
    expect(code(() => keyFingerprint(new Uint8Array(33)))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => formatFingerprint(new Uint8Array(0)))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('compareBytes is a total lexicographic order', () => {
    expect(compareBytes(Uint8Array.of(1), Uint8Array.of(1, 0))).toBeLessThan(0);
    expect(compareBytes(Uint8Array.of(2), Uint8Array.of(1, 9))).toBeGreaterThan(0);
    expect(compareBytes(Uint8Array.of(), Uint8Array.of())).toBe(0);
  });
});
