/**
 * Issue 6: "for every defence that can be switched off, a test shows the suite catching it". A new
 * switch without such a test fails here, so the list cannot silently grow past the proofs.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_CLIENT_DEFENCES } from '../../src/client/defences.js';
import { ALL_FEDERATION_DEFENCES } from '../../src/federation/defences.js';
import { ALL_SERVER_DEFENCES } from '../../src/service/defences.js';

const dir = new URL('./', import.meta.url);
const tests = readdirSync(dir)
  .filter((name) => name.endsWith('.test.ts') && name !== 'defences-coverage.test.ts')
  .map((name) => ({ name, text: readFileSync(new URL(name, dir), 'utf8') }));

/**
 * Test files that switch `flag` off: `flag: false`, a loop over both values of it, or a table row
 * naming it (`['T11', 'presenceApprovalCheck']`, or with more columns after it).
 */
function provingFiles(flag: string): string[] {
  const off = new RegExp(
    `\\b${flag}: false\\b|for \\(const ${flag} of \\[true, false\\]\\)|\\['T\\d\\d', '${flag}'[\\],]`,
  );
  return tests.filter((t) => off.test(t.text)).map((t) => t.name);
}

describe('every switchable defence has a test that switches it off', () => {
  const flags = [
    ...Object.keys(ALL_SERVER_DEFENCES).map((f) => ['server', f] as const),
    ...Object.keys(ALL_CLIENT_DEFENCES).map((f) => ['client', f] as const),
    ...Object.keys(ALL_FEDERATION_DEFENCES).map((f) => ['federation', f] as const),
  ];

  it('finds the switches', () => {
    expect(flags.length).toBeGreaterThanOrEqual(20);
  });

  it.each(flags)('%s defence %s', (_side, flag) => {
    expect(provingFiles(flag), `no test in test/threats switches ${flag} off`).not.toEqual([]);
  });
});
