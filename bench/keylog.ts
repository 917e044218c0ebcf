/**
 * Key-log throughput on a 100 000-entry in-memory log: appends per second, proof generation and
 * proof verification per second (inclusion and consistency). Run: `npx tsx bench/keylog.ts`.
 */
import { performance } from 'node:perf_hooks';
import { utf8 } from '../src/crypto/index.js';
import {
  KeyLog,
  MemoryKeyLogStorage,
  leafHash,
  verifyConsistency,
  verifyInclusion,
} from '../src/trust/keylog/index.js';

const N = 100_000;
const PROOFS = 20_000;

function rate(count: number, ms: number): string {
  return `${Math.round((count / ms) * 1000).toLocaleString('en-US')}/s`;
}

// Entries about the size of an enrolment statement without certificate (~230 bytes).
const entries = Array.from({ length: N }, (_, i) => utf8(`entry ${i} `.padEnd(230, 'x')));
const log = new KeyLog({ domain: 'example.com', storage: new MemoryKeyLogStorage() });

let t = performance.now();
for (const e of entries) log.append(e);
const appendMs = performance.now() - t;

t = performance.now();
const root = log.root();
const rootMs = performance.now() - t;

// Deterministic pseudo-random indices (no Math.random: reproducible runs).
let seed = 12345;
const next = (bound: number): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % bound;
};

const inclusion: { index: number; leaf: Uint8Array; proof: Uint8Array[] }[] = [];
t = performance.now();
for (let i = 0; i < PROOFS; i++) {
  const index = next(N);
  inclusion.push({ index, leaf: leafHash(log.entry(index)), proof: log.inclusionProof(index) });
}
const inclusionGenMs = performance.now() - t;

t = performance.now();
let ok = 0;
for (const p of inclusion) if (verifyInclusion(p.leaf, p.index, N, p.proof, root)) ok++;
const inclusionVerifyMs = performance.now() - t;
if (ok !== PROOFS) throw new Error('an inclusion proof failed');

const consistency: { first: number; firstRoot: Uint8Array; proof: Uint8Array[] }[] = [];
t = performance.now();
for (let i = 0; i < PROOFS / 10; i++) {
  const first = 1 + next(N - 1);
  consistency.push({ first, firstRoot: log.root(first), proof: log.consistencyProof(first) });
}
const consistencyGenMs = performance.now() - t;

t = performance.now();
ok = 0;
for (const c of consistency) if (verifyConsistency(c.first, N, c.proof, c.firstRoot, root)) ok++;
const consistencyVerifyMs = performance.now() - t;
if (ok !== consistency.length) throw new Error('a consistency proof failed');

console.log(`key log, ${N.toLocaleString('en-US')} entries of 230 bytes, Node ${process.version}`);
console.log(`  append                  ${rate(N, appendMs)} (${appendMs.toFixed(0)} ms total)`);
console.log(`  root of the full tree   ${rootMs.toFixed(2)} ms`);
console.log(
  `  inclusion proof: build  ${rate(PROOFS, inclusionGenMs)}, verify ${rate(PROOFS, inclusionVerifyMs)}`,
);
console.log(
  `  consistency proof: build ${rate(consistency.length, consistencyGenMs)} (incl. old root), verify ${rate(consistency.length, consistencyVerifyMs)}`,
);
