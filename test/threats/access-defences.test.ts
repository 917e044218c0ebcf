/**
 * Issue 6 item 5 for the access threats: with exactly one server defence switched off (test-only,
 * src/service/defences.ts), the suite reports VULNERABLE for exactly that threat. The same threats
 * report MITIGATED with every defence on in access.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { ServerDefences } from '../../src/service/defences.js';
import { accessThreats } from '../../src/threats/catalogue/access.js';
import type { Threat } from '../../src/threats/types.js';
import { pick, runAgainst } from './target.js';

const threat = (id: string): Threat => pick(accessThreats, id);

describe('each defence off, one at a time: the suite reports VULNERABLE', () => {
  const cases: [string, keyof ServerDefences][] = [
    ['T11', 'presenceApprovalCheck'],
    ['T12', 'revocationStopsFanout'],
    ['T13', 'uniformBlockedAnswers'],
    ['T21', 'endSessionsOnRevocation'],
    ['T42', 'revokedDeviceRouting'],
    ['T43', 'ownershipChecks'],
  ];
  it.each(cases)('%s with %s off', async (id, flag) => {
    const r = await runAgainst(threat(id), { server: { [flag]: false }, accountRecheckMs: 200 });
    expect({ id, verdict: r.verdict, summary: r.summary }).toMatchObject({
      verdict: 'VULNERABLE',
    });
  });
});
