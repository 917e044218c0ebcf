/**
 * `--target` hygiene: a run leaves the test accounts with the devices it found. Each account's
 * steward (src/threats/steward.ts) revokes every device the run registered, so two runs in a row
 * against one server end with the same device count as before (not +20 per run, which would hit
 * the 64-devices-per-account limit after three runs).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOGUE } from '../../src/threats/catalogue.js';
import { runThreats } from '../../src/threats/runner.js';
import { Stewards } from '../../src/threats/steward.js';
import { startThreatTarget, type ThreatTarget } from './target.js';

/** Threats that register devices of every kind: SDK clients, raw devices, a listed victim. */
const SUBSET = ['T01', 'T11', 'T21', 'T42'];

let t: ThreatTarget;
let stateDir: string;

beforeAll(async () => {
  t = await startThreatTarget();
  stateDir = mkdtempSync(join(tmpdir(), 'impp-stewards-'));
});

afterAll(async () => {
  await t.close();
  rmSync(stateDir, { recursive: true, force: true });
});

async function deviceCounts(): Promise<number[]> {
  return Promise.all(
    t.accounts.map(async (a) => (await t.env.store.devices.list(a.address)).length),
  );
}

/** One `--target`-style run: stewards, the threats, the sweep. */
async function run(): Promise<{ verdicts: string[]; sweep: string[] }> {
  const stewards = await Stewards.prepare(t.target, t.accounts, stateDir);
  const report = await runThreats(
    CATALOGUE.filter((x) => SUBSET.includes(x.id)),
    {
      target: t.target,
      accounts: t.accounts,
      storage: t.storage,
      listSigner: stewards.signer,
    },
  );
  return {
    verdicts: report.results.map((r) => `${r.id} ${r.verdict}`),
    sweep: await stewards.sweep(),
  };
}

describe('the stewards', () => {
  it('two runs in a row leave each account with its steward only', async () => {
    const first = await run();
    expect(first.verdicts).toEqual(SUBSET.map((id) => `${id} MITIGATED`));
    expect(first.sweep.join('\n')).toMatch(
      /alice@example\.org: [1-9]\d* device\(s\) of this run revoked/,
    );
    const afterFirst = await deviceCounts();
    expect(afterFirst).toEqual([1, 1, 1, 1]);

    const second = await run();
    expect(second.verdicts).toEqual(SUBSET.map((id) => `${id} MITIGATED`));
    expect(await deviceCounts()).toEqual(afterFirst);
    // The seeds are the operator's to keep private.
    expect(statSync(join(stateDir, 'alice@example.org.json')).mode & 0o077).toBe(0);
  }, 60_000);

  it('with the state folder lost, says so and leaves the devices alone', async () => {
    // A fresh folder: a new steward key for the same steward id, which the server refuses.
    const other = mkdtempSync(join(tmpdir(), 'impp-stewards-'));
    try {
      const before = await deviceCounts();
      const stewards = await Stewards.prepare(t.target, t.accounts.slice(0, 1), other);
      expect(stewards.signer(t.accounts[0]?.address ?? '')).toBeUndefined();
      const lines = await stewards.sweep();
      expect(lines[0]).toMatch(
        /not cleaned up \(the steward device could not log in: .*another identity key/,
      );
      expect(await deviceCounts()).toEqual(before);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
