/** The house-style guarantees of src/crypto beyond the Wycheproof vectors. */
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  SecretBytes,
  constantTimeEqual,
  fromBase64Url,
  fromHex,
  fromUtf8,
  generateDhKeyPair,
  generateSigningKeyPair,
  randomBytes,
  sign,
  toBase64Url,
  toHex,
  verify,
  wipe,
  x25519,
  xchachaOpen,
  xchachaSeal,
} from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';

describe('SecretBytes redaction', () => {
  const secret = new SecretBytes(fromHex('00112233445566778899aabbccddeeff'));

  it('never prints its bytes through JSON, inspect, String or template strings', () => {
    const outputs = [
      JSON.stringify({ secret }),
      inspect(secret),
      inspect({ nested: { secret } }, { depth: 10 }),
      String(secret),
      secret.toString(),
    ];
    for (const out of outputs) {
      expect(out).toContain('redacted');
      expect(out).not.toMatch(/00112233|0, 17, 34|aabbcc/i);
    }
  });

  it('redacts the secret half of generated key pairs', () => {
    const signing = generateSigningKeyPair();
    const dh = generateDhKeyPair();
    const dumped = JSON.stringify({ signing, dh }) + inspect({ signing, dh }, { depth: 10 });
    expect(dumped).not.toContain(toHex(signing.secretKey.expose().subarray(0, 8)));
    expect(dumped).not.toContain(toHex(dh.secretKey.expose().subarray(0, 8)));
    expect(dumped).toContain('redacted');
  });

  it('refuses to expose a wiped secret and zeroes the buffer', () => {
    const raw = randomBytes(32);
    const s = new SecretBytes(raw);
    s.wipe();
    expect(raw.every((b) => b === 0)).toBe(true);
    expect(() => s.expose()).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_INVALID_KEY' }));
  });
});

describe('X25519 weak-key defence', () => {
  it('refuses every low-order public key (all-zero shared secret)', () => {
    // The curve's small-order points (RFC 7748 §6.1 discussion; Bernstein's list): 0, 1,
    // the two order-8 points, p-1, p, p+1 encoded little-endian.
    const lowOrder = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ];
    const mine = generateDhKeyPair();
    for (const hex of lowOrder) {
      let error: unknown;
      try {
        x25519(mine.secretKey, fromHex(hex));
      } catch (e) {
        error = e;
      }
      expect(isImppError(error, 'ERR_CRYPTO_WEAK_KEY'), hex).toBe(true);
    }
  });

  it('agrees on the same secret from both sides', () => {
    const a = generateDhKeyPair();
    const b = generateDhKeyPair();
    expect(toHex(x25519(a.secretKey, b.publicKey).expose())).toBe(
      toHex(x25519(b.secretKey, a.publicKey).expose()),
    );
  });

  it('refuses wrong key lengths with a typed error', () => {
    const a = generateDhKeyPair();
    expect(() => x25519(a.secretKey, new Uint8Array(31))).toThrow(
      expect.objectContaining({ code: 'ERR_CRYPTO_INVALID_KEY' }),
    );
  });
});

describe('constantTimeEqual', () => {
  it('matches ordinary equality on arbitrary inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (a, b) => {
        const expected = a.length === b.length && a.every((x, i) => x === b[i]);
        expect(constantTimeEqual(a, b)).toBe(expected);
        expect(constantTimeEqual(a, Uint8Array.from(a))).toBe(true);
      }),
    );
  });
});

describe('Ed25519', () => {
  it('verifies its own signatures and refuses another key, message or flipped bit', () => {
    const alice = generateSigningKeyPair();
    const mallory = generateSigningKeyPair();
    const msg = randomBytes(100);
    const sig = sign(alice.secretKey, msg);
    expect(verify(alice.publicKey, msg, sig)).toBe(true);
    expect(verify(mallory.publicKey, msg, sig)).toBe(false);
    fc.assert(
      fc.property(fc.nat({ max: sig.length * 8 - 1 }), (bit) => {
        const flipped = Uint8Array.from(sig);
        flipped[bit >> 3] = (flipped[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        expect(verify(alice.publicKey, msg, flipped)).toBe(false);
      }),
    );
    expect(verify(alice.publicKey, msg, sig.subarray(0, 63))).toBe(false);
  });
});

describe('XChaCha20-Poly1305', () => {
  it('opens only with the same key, nonce and associated data, with one error message', () => {
    const key = new SecretBytes(randomBytes(32));
    const other = new SecretBytes(randomBytes(32));
    const nonce = randomBytes(24);
    const ad = randomBytes(10);
    const pt = randomBytes(50);
    const ct = xchachaSeal(key, nonce, pt, ad);
    expect(toHex(xchachaOpen(key, nonce, ct, ad))).toBe(toHex(pt));
    const attempts = [
      () => xchachaOpen(other, nonce, ct, ad),
      () => xchachaOpen(key, randomBytes(24), ct, ad),
      () => xchachaOpen(key, nonce, ct, randomBytes(10)),
      () => xchachaOpen(key, nonce, ct.subarray(1), ad),
      () => xchachaOpen(key, nonce, ct.subarray(0, 10), ad),
      () => xchachaOpen(key, nonce.subarray(1), ct, ad),
    ];
    for (const attempt of attempts) {
      expect(attempt).toThrow(
        expect.objectContaining({ code: 'ERR_CRYPTO_VERIFY_FAILED', message: 'decryption failed' }),
      );
    }
  });
});

describe('encodings', () => {
  it('round-trip hex and base64url and refuse foreign alphabets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(fromHex(toHex(bytes))).toEqual(bytes);
        expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
      }),
    );
    expect(() => fromHex('abc')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => fromHex('zz')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => fromBase64Url('ab+/')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });

  it('decodes UTF-8 strictly', () => {
    expect(() => fromUtf8(Uint8Array.of(0xc3, 0x28), 'note')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: 'note is not valid UTF-8' }),
    );
  });

  it('wipe zeroes every buffer it is given', () => {
    const a = randomBytes(16);
    const b = randomBytes(16);
    wipe(a, undefined, b);
    expect([...a, ...b].every((x) => x === 0)).toBe(true);
  });
});
