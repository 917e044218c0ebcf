/**
 * Our libsodium wrappers against the Wycheproof vectors in test/vectors/wycheproof/.
 * Every "valid" case must be accepted with the exact expected output, every "invalid" case
 * refused, and every "acceptable" case handled the way src/crypto documents.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  SecretBytes,
  chachaIetfOpen,
  chachaIetfSeal,
  constantTimeEqual,
  fromHex,
  hkdfSha256,
  hmacSha256,
  isAllZero,
  pbkdf2HmacSha256,
  toHex,
  verify,
  x25519,
  xchachaOpen,
  xchachaSeal,
} from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';

interface WycheproofCase {
  tcId: number;
  comment: string;
  flags: string[];
  result: 'valid' | 'invalid' | 'acceptable';
  [field: string]: unknown;
}
interface WycheproofFile {
  testGroups: { tests: WycheproofCase[]; [field: string]: unknown }[];
}

function load(name: string): WycheproofFile {
  const url = new URL(`../vectors/wycheproof/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as WycheproofFile;
}

function str(c: WycheproofCase | Record<string, unknown>, field: string): string {
  const v = c[field];
  if (typeof v !== 'string') throw new Error(`vector field ${field} missing`);
  return v;
}

function cases(file: WycheproofFile) {
  return file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
}

describe('Wycheproof x25519', () => {
  const all = cases(load('x25519_test.json'));
  it('has the expected number of cases', () => {
    expect(all.length).toBe(518);
  });
  it.each(all.map(({ test }) => [test.tcId, test.result, test.comment, test] as const))(
    'tc %i (%s) %s',
    (_id, result, _comment, test) => {
      const shared = fromHex(str(test, 'shared'));
      const run = () =>
        x25519(new SecretBytes(fromHex(str(test, 'private'))), fromHex(str(test, 'public')));
      if (isAllZero(shared)) {
        // Documented: all-zero output (low-order public key) is always refused.
        expect(result).not.toBe('valid');
        expect(run).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_WEAK_KEY' }));
        return;
      }
      // valid and every other acceptable case: RFC 7748 result exactly.
      expect(toHex(run().expose())).toBe(toHex(shared));
    },
  );
});

describe('Wycheproof ed25519', () => {
  const all = cases(load('ed25519_test.json'));
  it.each(
    all.map(({ group, test }) => [test.tcId, test.result, test.comment, group, test] as const),
  )('tc %i (%s) %s', (_id, result, _comment, group, test) => {
    const pk = fromHex(str(group.publicKey as Record<string, unknown>, 'pk'));
    let sig: Uint8Array;
    try {
      sig = fromHex(str(test, 'sig'));
    } catch {
      expect(result).toBe('invalid'); // odd-length hex in a few invalid cases
      return;
    }
    const ok = verify(pk, fromHex(str(test, 'msg')), sig);
    expect(ok).toBe(result === 'valid');
  });
});

function aeadSuite(name: string, file: string, seal: typeof xchachaSeal, open: typeof xchachaOpen) {
  describe(name, () => {
    const all = cases(load(file));
    it.each(all.map(({ test }) => [test.tcId, test.result, test.comment, test] as const))(
      'tc %i (%s) %s',
      (_id, result, _comment, test) => {
        const key = new SecretBytes(fromHex(str(test, 'key')));
        const iv = fromHex(str(test, 'iv'));
        const aad = fromHex(str(test, 'aad'));
        const msg = fromHex(str(test, 'msg'));
        const sealed = fromHex(str(test, 'ct') + str(test, 'tag'));
        if (result === 'valid') {
          expect(toHex(seal(key, iv, msg, aad))).toBe(toHex(sealed));
          expect(toHex(open(key, iv, sealed, aad))).toBe(toHex(msg));
        } else {
          expect(result).toBe('invalid');
          let threw: unknown;
          try {
            open(key, iv, sealed, aad);
          } catch (e) {
            threw = e;
          }
          expect(isImppError(threw, 'ERR_CRYPTO_VERIFY_FAILED')).toBe(true);
          expect((threw as Error).message).toBe('decryption failed');
        }
      },
    );
  });
}
aeadSuite(
  'Wycheproof XChaCha20-Poly1305',
  'xchacha20_poly1305_test.json',
  xchachaSeal,
  xchachaOpen,
);
aeadSuite(
  'Wycheproof ChaCha20-Poly1305 (RFC 8439)',
  'chacha20_poly1305_test.json',
  chachaIetfSeal,
  chachaIetfOpen,
);

describe('Wycheproof HKDF-SHA-256', () => {
  const all = cases(load('hkdf_sha256_test.json'));
  it.each(all.map(({ test }) => [test.tcId, test.result, test] as const))(
    'tc %i (%s)',
    (_id, result, test) => {
      const run = () =>
        hkdfSha256(
          fromHex(str(test, 'ikm')),
          fromHex(str(test, 'salt')),
          fromHex(str(test, 'info')),
          test.size as number,
        );
      if (result === 'valid') expect(toHex(run())).toBe(str(test, 'okm'));
      else expect(run).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    },
  );
});

describe('Wycheproof HMAC-SHA-256', () => {
  const all = cases(load('hmac_sha256_test.json'));
  it.each(all.map(({ group, test }) => [test.tcId, test.result, group, test] as const))(
    'tc %i (%s)',
    (_id, result, group, test) => {
      const tagBytes = (group.tagSize as number) / 8;
      const mac = hmacSha256(fromHex(str(test, 'key')), fromHex(str(test, 'msg'))).subarray(
        0,
        tagBytes,
      );
      const expected = fromHex(str(test, 'tag'));
      expect(constantTimeEqual(mac, expected)).toBe(result === 'valid');
    },
  );
});

describe('Wycheproof PBKDF2-HMAC-SHA-256', () => {
  const all = cases(load('pbkdf2_hmacsha256_test.json'));
  it.each(all.map(({ test }) => [test.tcId, test] as const))('tc %i', (_id, test) => {
    const dk = pbkdf2HmacSha256(
      fromHex(str(test, 'password')),
      fromHex(str(test, 'salt')),
      test.iterationCount as number,
      test.dkLen as number,
    );
    expect(toHex(dk)).toBe(str(test, 'dk'));
  });
});
