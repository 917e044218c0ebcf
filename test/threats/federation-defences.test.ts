/**
 * Each federation defence switched off (test-only, src/federation/defences.ts), and the SDK's
 * sender-domain check, turn the verdict of the threat it stands for VULNERABLE, for the reason
 * it stands for: the federation threats can fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FederationDefences } from '../../src/federation/defences.js';
import { federationThreats } from '../../src/threats/catalogue/federation.js';
import {
  FEDERATION_THREATS as threats,
  type FederatedTarget,
  startFederatedTarget,
} from './federated-target.js';
import { explain, pick, runOne } from './target.js';

describe('each federation defence switched off is caught', () => {
  // Each row: the threat, the switch, and what the summary must blame.
  const cases: readonly (readonly [string, keyof FederationDefences, RegExp])[] = [
    ['T27', 'proofCheck', /wrong pinned key: the link opened/],
    ['T28', 'proofCheck', /another connection: the link opened/],
    ['T27', 'nameCheck', /another name: the link opened/],
    ['T29', 'nameCheck', /wildcard: the link opened/],
    ['T47', 'nameCheck', /SRV target name: the (rogue was sent|target opened)/],
    ['T45', 'originCheck', /third domain as origin: ACK/],
    ['T46', 'duplicateFilter', /received the object a second time/],
    ['T26', 'tls13Only', /federation port completed a TLSv1\.2.*no ALPN \(OPEN answered\)/],
  ];
  const flags = ['proofCheck', 'nameCheck', 'originCheck', 'duplicateFilter', 'tls13Only'] as const;
  for (const flag of flags) {
    describe(flag, () => {
      let target: FederatedTarget | undefined;
      beforeAll(async () => {
        target = await startFederatedTarget({ [flag]: false });
      });
      afterAll(async () => {
        await target?.close();
      });
      const rows = cases.filter(([, f]) => f === flag).map(([id, , blame]) => [id, blame] as const);
      it.each(rows)('%s is VULNERABLE', async (id, blame) => {
        const f = target as FederatedTarget;
        const threat = threats.find((x) => x.id === id);
        if (threat === undefined) throw new Error(id);
        const r = await runOne(threat, f.t, { federation: f.federation });
        expect(r.verdict, explain(r)).toBe('VULNERABLE');
        expect(r.summary).toMatch(blame);
      });
    });
  }
});

describe("the SDK's sender-domain check switched off is caught", () => {
  it("['T45', 'senderDomainCheck']: VULNERABLE", async () => {
    const f = await startFederatedTarget(undefined, { senderDomainCheck: false });
    try {
      const r = await runOne(pick(federationThreats, 'T45'), f.t, { federation: f.federation });
      expect(r.verdict, explain(r)).toBe('VULNERABLE');
      expect(r.summary).toMatch(/SDK showed a sealed sender of another domain/);
    } finally {
      await f.close();
    }
  });
});
