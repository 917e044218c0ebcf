/**
 * Regenerates test/vectors/seal-kat.json: `npx tsx scripts/gen-seal-kat.ts`.
 * Run it only when the wire format changes on purpose, and say so in the commit.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSealKat } from '../test/seal/kat-vectors.js';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors', 'seal-kat.json');
writeFileSync(out, `${JSON.stringify(generateSealKat(), null, 2)}\n`);
process.stdout.write(`wrote ${out}\n`);
