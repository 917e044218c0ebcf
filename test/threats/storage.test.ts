/**
 * The operator threats (T01, T38, T39, T40) and the configuration check (T55) against a real
 * target with its data folder and JSON log; the operator's grep itself, on files written here,
 * so that a finding is shown to be found in every encoding it claims.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodingsOf, operatorGrep } from '../../src/threats/attackers/operator.js';
import { storageThreats } from '../../src/threats/catalogue/storage.js';
import type { Threat } from '../../src/threats/types.js';
import { pick, runOne, sharedTarget } from './target.js';

const threat = (id: string): Threat => pick(storageThreats, id);

describe('the operator grep', () => {
  const dir = mkdtempSync(join(tmpdir(), 'impp-operator-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds a canary written raw, as UTF-16LE, hex and base64 at any alignment, in nested files', () => {
    const canary = 'canaryq7w8e9r0t1y2u3i4o5';
    const encodings = encodingsOf(canary);
    mkdirSync(join(dir, 'nested'), { recursive: true });
    for (const [name, bytes] of encodings) {
      for (const pad of [0, 1, 2]) {
        writeFileSync(
          join(dir, 'nested', `${name}-${pad}.bin`),
          Buffer.concat([Buffer.alloc(pad, 7), bytes]),
        );
      }
    }
    // A canary buried in a longer base64 blob, at each byte offset.
    for (const pad of [0, 1, 2]) {
      const blob = Buffer.concat([
        Buffer.alloc(pad + 5, 1),
        Buffer.from(canary),
        Buffer.alloc(4, 2),
      ]);
      writeFileSync(join(dir, `blob-${pad}.txt`), blob.toString('base64'));
    }
    const { findings } = operatorGrep({ dataDir: dir, logFiles: [] }, [
      { label: 'c', value: canary },
    ]);
    for (const pad of [0, 1, 2]) {
      expect(findings.some((f) => f.file === `blob-${pad}.txt`)).toBe(true);
    }
    for (const [name] of encodings) {
      expect(
        findings.some((f) => f.file.startsWith(join('nested', `${name}-`)) && f.encoding === name),
      ).toBe(true);
    }
    const clean = operatorGrep({ dataDir: dir, logFiles: [] }, [
      { label: 'other', value: 'canaryzzzzzzzzzzzzzzzzzzzz' },
    ]);
    expect(clean.findings).toEqual([]);
  });
});

describe('operator threats against a real target', () => {
  const target = sharedTarget();

  it.each(['T01', 'T38', 'T39', 'T40', 'T55'])(
    '%s is MITIGATED with every defence on',
    async (id) => {
      const r = await runOne(threat(id), target());
      expect({ id, verdict: r.verdict, summary: r.summary }).toMatchObject({
        verdict: 'MITIGATED',
      });
    },
  );

  it('T01 and T40 report VULNERABLE when the canary is in a log (the grep can fail)', async () => {
    // A log file that holds what a careless server would write: each threat's canaries are
    // fresh, so plant them through a wrapper that copies every canary the threat makes.
    const planted = join(target().storage.dataDir, 'careless.log');
    const leaky: Threat = {
      ...threat('T01'),
      run: (ctx) =>
        threat('T01').run({
          ...ctx,
          canary: () => {
            const c = ctx.canary();
            writeFileSync(planted, Buffer.from(`{"body":"${c}"}\n`).toString('base64'), {
              flag: 'a',
            });
            return c;
          },
        }),
    };
    const r = await runOne(leaky, target());
    expect({ v: r.verdict, s: r.summary }).toMatchObject({ v: 'VULNERABLE' });
    rmSync(planted);
  });

  it('T38 reports VULNERABLE for a world-readable database (the mode check can fail)', async () => {
    const db = join(target().storage.dataDir, 'service.db');
    chmodSync(db, 0o644);
    try {
      const r = await runOne(threat('T38'), target());
      expect(r.verdict).toBe('VULNERABLE');
    } finally {
      chmodSync(db, 0o600);
    }
  });

  it('without storage access they are NOT-TESTED, T55 still runs', async () => {
    for (const id of ['T01', 'T38', 'T39', 'T40']) {
      expect((await runOne(threat(id), target(), { storage: undefined as never })).verdict).toBe(
        'NOT-TESTED',
      );
    }
  });
});
