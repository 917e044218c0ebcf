/**
 * The access threats (T11, T12, T13, T21, T42, T43, T54) against a real target: MITIGATED with
 * every defence on, all of them in a row on one server (so each also shows it leaves the accounts
 * usable for the next). With exactly one server defence off they report VULNERABLE:
 * access-defences.test.ts (issue 6 item 5).
 */
import { describe, expect, it } from 'vitest';
import { accessThreats } from '../../src/threats/catalogue/access.js';
import type { Threat } from '../../src/threats/types.js';
import { pick, runOne, sharedTarget } from './target.js';

const threat = (id: string): Threat => pick(accessThreats, id);

describe('with every defence on', () => {
  const target = sharedTarget();

  it.each(['T11', 'T12', 'T13', 'T21', 'T42', 'T43', 'T54', 'T13'])(
    '%s is MITIGATED',
    async (id) => {
      const r = await runOne(threat(id), target());
      expect({ id, verdict: r.verdict, summary: r.summary, evidence: r.evidence }).toMatchObject({
        verdict: 'MITIGATED',
      });
    },
  );

  it('T21 and T42 say NOT-TESTED for device revocation once no account is fresh', async () => {
    // Every account has a list by now, signed by devices of earlier runs.
    const r = await runOne(threat('T42'), target());
    expect(r.verdict).toBe('NOT-TESTED');
    const r21 = await runOne(threat('T21'), target());
    expect(r21.verdict).toBe('MITIGATED'); // the password and disable parts still run
    expect(r21.evidence.join('\n')).toMatch(/NOT-TESTED: device revocation/);
  });

  it('T21 without storage tests only what the protocol allows', async () => {
    const r = await runOne(threat('T21'), target(), { storage: undefined as never });
    expect(r.evidence.join('\n')).toMatch(/password change and disable: needs storage/);
  });
});
