/**
 * The key log: RFC 6962 / RFC 9162 §2.1 published vectors, exhaustive structure tests for every
 * tree size up to 40 (every inclusion proof, every consistency proof), fast-check properties on
 * larger random sizes, and adversarial cases (forged proofs, forks, rollbacks, wrong keys).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, generateSigningKeyPair, toHex, utf8 } from '../../src/crypto/index.js';
import { isImppError, type ImppErrorCode } from '../../src/errors.js';
import { encodeCanonical } from '../../src/trust/canonical.js';
import {
  KeyLog,
  KeyLogVerifier,
  MemoryKeyLogStorage,
  consistencyPath,
  emptyRoot,
  inclusionPath,
  leafHash,
  merkleTreeHash,
  nodeHash,
  rootFromInclusionProof,
  signTreeHead,
  verifyConsistency,
  verifyInclusion,
  verifyTreeHead,
} from '../../src/trust/keylog/index.js';
import { keyLogStorageContract } from './keylog-storage.contract.js';

interface Vectors {
  hasher: {
    label: string;
    kind: string;
    input?: string;
    left?: string;
    right?: string;
    expected: string;
  }[];
  leaves: string[];
  roots: string[];
  inclusion: { label: string; leafIndex: number; treeSize: number; proof: string[] }[];
  consistency: { label: string; size1: number; size2: number; proof: string[] }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../vectors/rfc6962-merkle.json', import.meta.url), 'utf8'),
) as Vectors;

function expectCode(fn: () => unknown, code: ImppErrorCode): void {
  try {
    fn();
  } catch (e) {
    if (isImppError(e, code)) return;
    throw new Error(`expected ${code}, got ${String(e)}`, { cause: e });
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}

function entries(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => utf8(`entry-${i}`));
}

function buildLog(n: number, domain = 'example.com'): KeyLog {
  const log = new KeyLog({ domain, storage: new MemoryKeyLogStorage() });
  for (const e of entries(n)) log.append(e);
  return log;
}

function flip(hash: Uint8Array, byte = 0, bit = 0): Uint8Array {
  const copy = Uint8Array.from(hash);
  copy[byte] = (copy[byte] ?? 0) ^ (1 << bit);
  return copy;
}

describe('RFC 6962 / RFC 9162 §2.1 published vectors (transparency-dev/merkle)', () => {
  for (const v of vectors.hasher) {
    it(`hasher: ${v.label}`, () => {
      let got: Uint8Array;
      if (v.kind === 'empty') got = emptyRoot();
      else if (v.kind === 'leaf') got = leafHash(fromHex(v.input ?? ''));
      else got = nodeHash(fromHex(v.left ?? ''), fromHex(v.right ?? ''));
      expect(toHex(got)).toBe(v.expected);
    });
  }

  const leaves = vectors.leaves.map((h) => fromHex(h));

  it('roots of the trees of 1..8 leaves (reference MTH and inclusion-proof roots)', () => {
    for (let n = 1; n <= leaves.length; n++) {
      expect(toHex(merkleTreeHash(leaves.slice(0, n)))).toBe(vectors.roots[n - 1]);
      // The leaf at n-1 leads to the same root through its generated proof.
      const proof = inclusionPath(n - 1, n, (a, b) => merkleTreeHash(leaves.slice(a, b)));
      const root = rootFromInclusionProof(leafHash(leaves[n - 1]!), n - 1, n, proof);
      expect(toHex(root!)).toBe(vectors.roots[n - 1]);
    }
  });

  for (const v of vectors.inclusion) {
    it(`inclusion proof: ${v.label}`, () => {
      const proof = v.proof.map((h) => fromHex(h));
      const root = fromHex(vectors.roots[v.treeSize - 1]!);
      const leaf = leafHash(leaves[v.leafIndex]!);
      expect(verifyInclusion(leaf, v.leafIndex, v.treeSize, proof, root)).toBe(true);
      const generated = inclusionPath(v.leafIndex, v.treeSize, (a, b) =>
        merkleTreeHash(leaves.slice(a, b)),
      );
      expect(generated.map(toHex)).toEqual(v.proof);
      // Upstream's corruptions: each must fail.
      const bad: [number, number, Uint8Array[], Uint8Array][] = [
        [v.leafIndex - 1, v.treeSize, proof, root],
        [v.leafIndex + 1, v.treeSize, proof, root],
        [v.leafIndex ^ 2, v.treeSize, proof, root],
        [v.leafIndex, v.treeSize * 2, proof, root],
        [v.leafIndex, Math.floor(v.treeSize / 2), proof, root],
        [v.leafIndex, v.treeSize, proof, emptyRoot()],
        [v.leafIndex, v.treeSize, [...proof, root], root],
        [v.leafIndex, v.treeSize, [root, ...proof], root],
        ...proof.map((_, i): [number, number, Uint8Array[], Uint8Array] => [
          v.leafIndex,
          v.treeSize,
          proof.map((p, j) => (i === j ? flip(p, 0, 3) : p)),
          root,
        ]),
      ];
      if (proof.length > 0) bad.push([v.leafIndex, v.treeSize, proof.slice(0, -1), root]);
      for (const [index, size, p, r] of bad) {
        expect(verifyInclusion(leaf, index, size, p, r)).toBe(false);
      }
      expect(
        verifyInclusion(leafHash(utf8('WrongLeaf')), v.leafIndex, v.treeSize, proof, root),
      ).toBe(false);
    });
  }

  for (const v of vectors.consistency) {
    it(`consistency proof: ${v.label}`, () => {
      const proof = v.proof.map((h) => fromHex(h));
      const root1 = fromHex(vectors.roots[v.size1 - 1]!);
      const root2 = fromHex(vectors.roots[v.size2 - 1]!);
      expect(verifyConsistency(v.size1, v.size2, proof, root1, root2)).toBe(true);
      const generated = consistencyPath(v.size1, v.size2, (a, b) =>
        merkleTreeHash(leaves.slice(a, b)),
      );
      expect(generated.map(toHex)).toEqual(v.proof);
      if (proof.length === 0) return;
      const bad: [number, number, Uint8Array[], Uint8Array, Uint8Array][] = [
        [v.size1 - 1, v.size2, proof, root1, root2],
        [v.size1 + 1, v.size2, proof, root1, root2],
        [v.size1 ^ 2, v.size2, proof, root1, root2],
        [v.size1, v.size2 * 2, proof, root1, root2],
        [v.size1, Math.floor(v.size2 / 2), proof, root1, root2],
        [v.size1, v.size2, proof, root2, root1],
        [v.size1, v.size2, [], root1, root2],
        [v.size1, v.size2, [...proof, root1], root1, root2],
        [v.size1, v.size2, [...proof, root2], root1, root2],
        [v.size1, v.size2, [root1, ...proof], root1, root2],
        [v.size1, v.size2, [root2, ...proof], root1, root2],
        [v.size1, v.size2, [proof[0]!, ...proof], root1, root2],
        [v.size1, v.size2, proof.slice(0, -1), root1, root2],
        ...proof.map((_, i): [number, number, Uint8Array[], Uint8Array, Uint8Array] => [
          v.size1,
          v.size2,
          proof.map((p, j) => (i === j ? flip(p, 0, 4) : p)),
          root1,
          root2,
        ]),
      ];
      for (const [s1, s2, p, r1, r2] of bad) {
        expect(verifyConsistency(s1, s2, p, r1, r2)).toBe(false);
      }
    });
  }

  it('edge cases of consistency verification (upstream TestVerifyConsistency)', () => {
    const r1 = emptyRoot();
    const r2 = leafHash(utf8('x'));
    expect(verifyConsistency(0, 0, [], r1, r1)).toBe(true);
    expect(verifyConsistency(0, 1, [], r1, r2)).toBe(true);
    expect(verifyConsistency(1, 1, [], r2, r2)).toBe(true);
    expect(verifyConsistency(1, 1, [], r1, r2)).toBe(false);
    expect(verifyConsistency(1, 0, [], r1, r2)).toBe(false);
    expect(verifyConsistency(2, 1, [], r1, r2)).toBe(false);
    expect(verifyConsistency(1, 2, [], r1, r2)).toBe(false);
    expect(verifyConsistency(0, 0, [r1], r1, r1)).toBe(false);
    expect(verifyConsistency(0, 1, [r1], r1, r1)).toBe(false);
    expect(verifyConsistency(1, 1, [r1], r1, r1)).toBe(false);
  });

  it('edge cases of inclusion verification (single entry, empty and out-of-range)', () => {
    const h = leafHash(utf8('data'));
    expect(verifyInclusion(h, 0, 1, [], h)).toBe(true);
    expect(verifyInclusion(h, 0, 1, [], new Uint8Array(0))).toBe(false);
    expect(verifyInclusion(new Uint8Array(0), 0, 1, [], h)).toBe(false);
    for (const [index, size] of [
      [0, 0],
      [1, 0],
      [2, 1],
      [1, 1],
    ] as const) {
      expect(verifyInclusion(h, index, size, [], h)).toBe(false);
      expect(verifyInclusion(h, index, size, [], emptyRoot())).toBe(false);
    }
    expect(verifyInclusion(h, -1, 1, [], h)).toBe(false);
    expect(verifyInclusion(h, 0.5, 1, [], h)).toBe(false);
  });
});

describe('structure tests: every tree of 1..40 entries', () => {
  const N = 40;
  const all = entries(N);
  const log = buildLog(N);
  const roots = [
    emptyRoot(),
    ...Array.from({ length: N }, (_, i) => merkleTreeHash(all.slice(0, i + 1))),
  ];

  it('the log computes the reference root for every historical size', () => {
    for (let n = 0; n <= N; n++) expect(toHex(log.root(n))).toBe(toHex(roots[n]!));
  });

  it('every inclusion proof of every leaf verifies, and fails for the neighbouring leaf', () => {
    let checked = 0;
    for (let n = 1; n <= N; n++) {
      for (let m = 0; m < n; m++) {
        const proof = log.inclusionProof(m, n);
        expect(verifyInclusion(leafHash(all[m]!), m, n, proof, roots[n]!)).toBe(true);
        expect(rootFromInclusionProof(leafHash(all[m]!), m, n, proof)).toEqual(roots[n]);
        if (n > 1) {
          const other = (m + 1) % n;
          expect(verifyInclusion(leafHash(all[other]!), m, n, proof, roots[n]!)).toBe(false);
          expect(verifyInclusion(leafHash(all[m]!), other, n, proof, roots[n]!)).toBe(false);
        }
        checked++;
      }
    }
    expect(checked).toBe((N * (N + 1)) / 2);
  });

  it('every consistency proof between all pairs m < n verifies, and fails against another root', () => {
    let checked = 0;
    for (let n = 1; n <= N; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = log.consistencyProof(m, n);
        expect(verifyConsistency(m, n, proof, roots[m]!, roots[n]!)).toBe(true);
        if (m < n) {
          expect(verifyConsistency(m, n, proof, roots[m - 1]!, roots[n]!)).toBe(false);
          expect(verifyConsistency(m, n, proof, roots[m]!, roots[n - 1]!)).toBe(false);
        }
        checked++;
      }
    }
    expect(checked).toBe((N * (N + 1)) / 2);
  });

  it('proof lengths stay logarithmic', () => {
    for (let n = 1; n <= N; n++) {
      const bound = Math.ceil(Math.log2(n)) + 1;
      for (let m = 0; m < n; m++)
        expect(log.inclusionProof(m, n).length).toBeLessThanOrEqual(bound);
      for (let m = 1; m <= n; m++)
        expect(log.consistencyProof(m, n).length).toBeLessThanOrEqual(bound + 1);
    }
  });
});

describe('property tests on larger logs', () => {
  const big = buildLog(1500);
  const bigRoots = new Map<number, Uint8Array>();
  const rootOf = (n: number): Uint8Array => {
    let r = bigRoots.get(n);
    if (r === undefined) {
      r = big.root(n);
      bigRoots.set(n, r);
    }
    return r;
  };

  it('random inclusion proofs verify; a flipped bit anywhere in the proof breaks them', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 1500 })
          .chain((n) => fc.tuple(fc.constant(n), fc.nat({ max: n - 1 }))),
        fc.nat(),
        ([n, m], pick) => {
          const proof = big.inclusionProof(m, n);
          const leaf = leafHash(big.entry(m));
          expect(verifyInclusion(leaf, m, n, proof, rootOf(n))).toBe(true);
          if (proof.length > 0) {
            const i = pick % proof.length;
            const tampered = proof.map((p, j) => (j === i ? flip(p, pick % 32, pick % 8) : p));
            expect(verifyInclusion(leaf, m, n, tampered, rootOf(n))).toBe(false);
            expect(verifyInclusion(leaf, m, n, proof.slice(0, -1), rootOf(n))).toBe(false);
          }
          expect(verifyInclusion(leaf, m, n, [...proof, leaf], rootOf(n))).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random consistency proofs verify; truncation, extension and tampering break them', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 1500 })
          .chain((n) => fc.tuple(fc.integer({ min: 1, max: n - 1 }), fc.constant(n))),
        fc.nat(),
        ([m, n], pick) => {
          const proof = big.consistencyProof(m, n);
          expect(verifyConsistency(m, n, proof, rootOf(m), rootOf(n))).toBe(true);
          const i = pick % proof.length;
          const tampered = proof.map((p, j) => (j === i ? flip(p, pick % 32, pick % 8) : p));
          expect(verifyConsistency(m, n, tampered, rootOf(m), rootOf(n))).toBe(false);
          expect(verifyConsistency(m, n, proof.slice(0, -1), rootOf(m), rootOf(n))).toBe(false);
          expect(verifyConsistency(m, n, [...proof, rootOf(n)], rootOf(m), rootOf(n))).toBe(false);
          // (n + 1 can share the proof shape of n; a doubled size never does.)
          expect(verifyConsistency(m, n * 2, proof, rootOf(m), rootOf(n))).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the incremental log agrees with the reference MTH at random sizes', () => {
    const all = entries(1500);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), (n) => {
        expect(toHex(big.root(n))).toBe(toHex(merkleTreeHash(all.slice(0, n))));
      }),
      { numRuns: 40 },
    );
  });
});

describe('KeyLog', () => {
  it('refuses empty and oversized entries and out-of-range queries', () => {
    const log = buildLog(3);
    expectCode(() => log.append(new Uint8Array(0)), 'ERR_INVALID_ARGUMENT');
    expectCode(() => log.append(new Uint8Array(64 * 1024 + 1)), 'ERR_INVALID_ARGUMENT');
    expectCode(() => log.inclusionProof(3, 3), 'ERR_INVALID_ARGUMENT');
    expectCode(() => log.inclusionProof(0, 4), 'ERR_INVALID_ARGUMENT');
    expectCode(() => log.consistencyProof(4, 3), 'ERR_INVALID_ARGUMENT');
    expectCode(() => log.root(4), 'ERR_INVALID_ARGUMENT');
    expectCode(() => log.entry(3), 'ERR_NOT_FOUND');
    expect(log.consistencyProof(0, 3)).toEqual([]);
    expect(log.root(0)).toEqual(emptyRoot());
  });

  it('returns copies of entries, so callers cannot rewrite history', () => {
    const log = buildLog(5);
    const e = log.entry(2);
    e[0] = 0;
    expect(log.entry(2)).toEqual(utf8('entry-2'));
  });
});

describe('signed tree heads', () => {
  const logKey = generateSigningKeyPair();
  const otherKey = generateSigningKeyPair();

  it('round-trips and verifies under the domain log key only', () => {
    const log = buildLog(7);
    const sth = log.signHead(logKey.secretKey, 1_700_000_000_000);
    const parsed = verifyTreeHead(sth.bytes, { domain: 'example.com', logKey: logKey.publicKey });
    expect(parsed.treeSize).toBe(7);
    expect(parsed.rootHash).toEqual(log.root());
    expect(parsed.timestamp).toBe(1_700_000_000_000);
    expectCode(
      () => verifyTreeHead(sth.bytes, { domain: 'example.com', logKey: otherKey.publicKey }),
      'ERR_KEYLOG_PROOF_INVALID',
    );
    expectCode(
      () => verifyTreeHead(sth.bytes, { domain: 'example.org', logKey: logKey.publicKey }),
      'ERR_KEYLOG_PROOF_INVALID',
    );
  });

  it('refuses every single-bit change of the encoding', () => {
    const sth = buildLog(3).signHead(logKey.secretKey, 1);
    for (let i = 0; i < sth.bytes.length; i++) {
      for (const bit of [0, 7]) {
        expect(() =>
          verifyTreeHead(flip(sth.bytes, i, bit), {
            domain: 'example.com',
            logKey: logKey.publicKey,
          }),
        ).toThrow();
      }
    }
  });

  it('refuses to sign malformed heads', () => {
    const root = buildLog(1).root();
    const head = { domain: 'example.com', treeSize: 1, rootHash: root, timestamp: 1 };
    for (const bad of [
      { ...head, domain: '' },
      { ...head, treeSize: -1 },
      { ...head, rootHash: root.subarray(1) },
      { ...head, timestamp: 1.5 },
    ]) {
      expectCode(() => signTreeHead(bad, logKey.secretKey), 'ERR_INVALID_ARGUMENT');
    }
  });

  it('refuses unknown versions, and signatures made for another label', () => {
    const log = buildLog(2);
    const root = log.root();
    const sth = signTreeHead(
      { domain: 'example.com', treeSize: 2, rootHash: root, timestamp: 5 },
      logKey.secretKey,
    );
    const v2 = encodeCanonical([2, 'example.com', 2, root, 5, sth.signature]);
    expectCode(
      () => verifyTreeHead(v2, { domain: 'example.com', logKey: logKey.publicKey }),
      'ERR_KEYLOG_PROOF_INVALID',
    );
    // Non-canonical (float-encoded) size is refused even with a valid signature.
    const hex = toHex(sth.bytes).replace(
      '6b6578616d706c652e636f6d02',
      '6b6578616d706c652e636f6d1802',
    );
    expectCode(
      () => verifyTreeHead(fromHex(hex), { domain: 'example.com', logKey: logKey.publicKey }),
      'ERR_KEYLOG_PROOF_INVALID',
    );
  });
});

describe('KeyLogVerifier (client)', () => {
  const logKey = generateSigningKeyPair();
  const domain = 'example.com';

  function setup(): { log: KeyLog; verifier: KeyLogVerifier } {
    const log = buildLog(10, domain);
    const verifier = new KeyLogVerifier({ domain, logKey: logKey.publicKey });
    verifier.update(log.signHead(logKey.secretKey, 1000).bytes, []);
    return { log, verifier };
  }

  it('follows an honest log forward and checks entries against the trusted head', () => {
    const { log, verifier } = setup();
    for (let step = 0; step < 5; step++) {
      const before = verifier.trusted!.treeSize;
      for (let i = 0; i < 3 + step; i++) log.append(utf8(`more-${step}-${i}`));
      const head = log.signHead(logKey.secretKey, 2000 + step);
      verifier.update(head.bytes, log.consistencyProof(before, head.treeSize));
      expect(verifier.trusted!.treeSize).toBe(log.size);
    }
    const size = verifier.trusted!.treeSize;
    verifier.verifyEntry(log.entry(4), 4, log.inclusionProof(4, size));
    // Persist and restore.
    const restored = new KeyLogVerifier({
      domain,
      logKey: logKey.publicKey,
      trusted: verifier.trusted!.bytes,
    });
    restored.verifyEntry(log.entry(size - 1), size - 1, log.inclusionProof(size - 1, size));
  });

  it('accepts a re-signed head of the same tree', () => {
    const { log, verifier } = setup();
    verifier.update(log.signHead(logKey.secretKey, 1500).bytes, []);
    expect(verifier.trusted!.timestamp).toBe(1500);
  });

  it('catches a fork: same size, different root', () => {
    const { verifier } = setup();
    const forked = buildLog(9, domain);
    forked.append(utf8('ghost device for alice'));
    expectCode(
      () => verifier.update(forked.signHead(logKey.secretKey, 3000).bytes, []),
      'ERR_KEYLOG_INCONSISTENT',
    );
  });

  it('catches a rewritten history: larger tree whose prefix differs', () => {
    const { log, verifier } = setup();
    const rewritten = buildLog(9, domain);
    rewritten.append(utf8('swapped key'));
    for (let i = 0; i < 5; i++) rewritten.append(utf8(`later-${i}`));
    const head = rewritten.signHead(logKey.secretKey, 3000);
    // The server can only offer proofs from its own (rewritten) tree, or the honest one.
    expectCode(
      () => verifier.update(head.bytes, rewritten.consistencyProof(10, 15)),
      'ERR_KEYLOG_INCONSISTENT',
    );
    for (let i = 0; i < 5; i++) log.append(utf8(`later-${i}`));
    expectCode(
      () => verifier.update(head.bytes, log.consistencyProof(10, 15)),
      'ERR_KEYLOG_INCONSISTENT',
    );
    expect(verifier.trusted!.treeSize).toBe(10);
  });

  it('refuses rollback to a smaller tree even with a valid signature', () => {
    const { log, verifier } = setup();
    const older = signTreeHead(
      { domain, treeSize: 6, rootHash: log.root(6), timestamp: 5000 },
      logKey.secretKey,
    );
    expectCode(
      () => verifier.update(older.bytes, log.consistencyProof(6, 10)),
      'ERR_KEYLOG_INCONSISTENT',
    );
  });

  it('refuses a head older than the trusted one', () => {
    const { log, verifier } = setup();
    log.append(utf8('x'));
    const head = log.signHead(logKey.secretKey, 999);
    expectCode(
      () => verifier.update(head.bytes, log.consistencyProof(10, 11)),
      'ERR_KEYLOG_INCONSISTENT',
    );
  });

  it('refuses a head signed with the wrong log key, or for another domain', () => {
    const { log, verifier } = setup();
    log.append(utf8('x'));
    const wrongKey = generateSigningKeyPair();
    expectCode(
      () =>
        verifier.update(log.signHead(wrongKey.secretKey, 2000).bytes, log.consistencyProof(10, 11)),
      'ERR_KEYLOG_PROOF_INVALID',
    );
    const other = new KeyLog({ domain: 'example.org', storage: new MemoryKeyLogStorage() });
    for (const e of entries(11)) other.append(e);
    expectCode(
      () => verifier.update(other.signHead(logKey.secretKey, 2000).bytes, []),
      'ERR_KEYLOG_PROOF_INVALID',
    );
    expect(verifier.trusted!.treeSize).toBe(10);
  });

  it('refuses forged inclusion proofs: flipped byte, wrong index, wrong size, truncated, extended, wrong leaf', () => {
    const { log, verifier } = setup();
    const proof = log.inclusionProof(3, 10);
    verifier.verifyEntry(log.entry(3), 3, proof);
    expectCode(() => {
      verifier.verifyEntry(log.entry(3), 3, [flip(proof[0]!, 31, 7), ...proof.slice(1)]);
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(log.entry(3), 2, proof);
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(log.entry(3), 3, log.inclusionProof(3, 9));
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(log.entry(3), 3, proof.slice(0, -1));
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(log.entry(3), 3, [...proof, proof[0]!]);
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(log.entry(4), 3, proof);
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(utf8('not in the log'), 3, proof);
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(log.entry(3), 3, [new Uint8Array(31), ...proof.slice(1)]);
    }, 'ERR_KEYLOG_PROOF_INVALID');
    expectCode(() => {
      verifier.verifyEntry(log.entry(3), 10, proof);
    }, 'ERR_KEYLOG_PROOF_INVALID');
    // An interior node can never pass as a leaf (0x00 / 0x01 prefixes).
    const interior = log.rangeHash(0, 2);
    expect(verifyInclusion(interior, 0, 10, log.inclusionProof(0, 10).slice(1), log.root(10))).toBe(
      false,
    );
  });

  it('refuses entry checks before any head is trusted', () => {
    const verifier = new KeyLogVerifier({ domain, logKey: logKey.publicKey });
    expectCode(() => {
      verifier.verifyEntry(utf8('x'), 0, []);
    }, 'ERR_KEYLOG_PROOF_INVALID');
  });
});

keyLogStorageContract('MemoryKeyLogStorage', () => new MemoryKeyLogStorage());
