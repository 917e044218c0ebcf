/**
 * Safety numbers: known-answer vectors, symmetry, order-independence, sensitivity to every key,
 * and an independent re-derivation of the documented encoding with node:crypto.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseAddress } from '../../src/trust/address.js';
import { encodeCanonical } from '../../src/trust/canonical.js';
import {
  SAFETY_NUMBER_ITERATIONS,
  formatSafetyNumber,
  matchesSafetyNumber,
  safetyNumber,
  safetyNumberHalf,
  type SafetyNumberParty,
} from '../../src/trust/safety-number.js';

interface VectorParty {
  address: string;
  identityKeys: string[];
}
interface Vectors {
  version: number;
  iterations: number;
  cases: { label: string; a: VectorParty; b: VectorParty; expected: string }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../vectors/safety-number.json', import.meta.url), 'utf8'),
) as Vectors;

const party = (p: VectorParty): SafetyNumberParty => ({
  address: parseAddress(p.address),
  identityKeys: p.identityKeys.map((k) => fromHex(k)),
});

const key = (n: number): Uint8Array => generateSigningKeyPair(new Uint8Array(32).fill(n)).publicKey;
const alice: SafetyNumberParty = {
  address: parseAddress('alice@example.com'),
  identityKeys: [key(1), key(3)],
};
const bob: SafetyNumberParty = { address: parseAddress('bob@example.org'), identityKeys: [key(2)] };

describe('safety numbers', () => {
  it('uses the documented parameters', () => {
    expect(vectors.version).toBe(1);
    expect(vectors.iterations).toBe(SAFETY_NUMBER_ITERATIONS);
  });

  for (const v of vectors.cases) {
    it(`known answer: ${v.label}`, () => {
      expect(formatSafetyNumber(safetyNumber(party(v.a), party(v.b)))).toBe(v.expected);
      expect(formatSafetyNumber(safetyNumber(party(v.b), party(v.a)))).toBe(v.expected);
    });
  }

  it('matches an independent derivation of the documented encoding (node:crypto SHA-256)', () => {
    const p = party(vectors.cases[1]!.a);
    const sorted = [...p.identityKeys].sort((x, y) =>
      Buffer.compare(Buffer.from(x), Buffer.from(y)),
    );
    const input = encodeCanonical(['impp/safety-number/v1', 1, 'alice@example.com', sorted]);
    let digest = createHash('sha256').update(input).digest();
    for (let i = 2; i <= 4096; i++)
      digest = createHash('sha256').update(digest).update(input).digest();
    let digits = '';
    for (let c = 0; c < 6; c++) {
      const chunk = digest.readUIntBE(c * 5, 5);
      digits += String(chunk % 100000).padStart(5, '0');
    }
    expect(safetyNumberHalf(p)).toBe(digits);
  });

  it('is 60 digits in 12 groups of 5 and symmetric', () => {
    const ab = safetyNumber(alice, bob);
    expect(ab.digits).toMatch(/^\d{60}$/);
    expect(ab.groups).toHaveLength(12);
    expect(ab.groups.every((g) => /^\d{5}$/.test(g))).toBe(true);
    expect(safetyNumber(bob, alice)).toEqual(ab);
    expect(matchesSafetyNumber(ab, formatSafetyNumber(ab))).toBe(true);
    const lastDigit = Number(ab.digits.slice(-1));
    const wrong = ab.digits.slice(0, -1) + String((lastDigit + 1) % 10);
    expect(matchesSafetyNumber(ab, wrong)).toBe(false);
  });

  it('ignores the order of devices and duplicates', () => {
    const reordered = { ...alice, identityKeys: [key(3), key(1), key(3)] };
    expect(safetyNumber(reordered, bob)).toEqual(safetyNumber(alice, bob));
  });

  it('changes when any key is added, removed or replaced, or the address changes', () => {
    const base = safetyNumber(alice, bob).digits;
    const variants: [SafetyNumberParty, SafetyNumberParty][] = [
      [{ ...alice, identityKeys: [key(1)] }, bob],
      [{ ...alice, identityKeys: [key(1), key(3), key(4)] }, bob],
      [{ ...alice, identityKeys: [key(1), key(5)] }, bob],
      [alice, { ...bob, identityKeys: [key(6)] }],
      [alice, { ...bob, address: parseAddress('bob@example.net') }],
      [{ ...alice, address: parseAddress('alicia@example.com') }, bob],
    ];
    const seen = new Set([base]);
    for (const [a, b] of variants) {
      const d = safetyNumber(a, b).digits;
      expect(seen.has(d)).toBe(false);
      seen.add(d);
    }
  });

  it('changes in the right half only: each party contributes its own 30 digits', () => {
    const before = safetyNumber(alice, bob).digits;
    const after = safetyNumber(alice, { ...bob, identityKeys: [key(9)] }).digits;
    // alice@example.com sorts before bob@example.org, so Alice's half comes first.
    expect(after.slice(0, 30)).toBe(before.slice(0, 30));
    expect(after.slice(30)).not.toBe(before.slice(30));
  });

  it('property: symmetric for random keys and addresses', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.constantFrom('a@x.example', 'b@x.example', 'zed@y.example'),
        fc.constantFrom('a@x.example', 'c@z.example'),
        (k1, k2, addrA, addrB) => {
          const a = { address: parseAddress(addrA), identityKeys: [k1] };
          const b = { address: parseAddress(addrB), identityKeys: [k2] };
          expect(safetyNumber(a, b).digits).toBe(safetyNumber(b, a).digits);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('refuses empty, oversized or malformed key sets', () => {
    const bad: SafetyNumberParty[] = [
      { ...alice, identityKeys: [] },
      { ...alice, identityKeys: [new Uint8Array(31)] },
      { ...alice, identityKeys: Array.from({ length: 257 }, () => key(1)) },
    ];
    for (const p of bad) {
      expect(() => safetyNumber(p, bob)).toThrow();
      try {
        safetyNumber(p, bob);
      } catch (e) {
        expect(isImppError(e, 'ERR_INVALID_ARGUMENT')).toBe(true);
      }
    }
  });
});
