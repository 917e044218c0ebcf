/**
 * The keys-and-trust threats (src/threats/catalogue/keys.ts) through the real runner: each is
 * MITIGATED by this build, and each one behind a switchable SDK defence turns VULNERABLE with
 * exactly that defence off (issue 6 item 5). T32 runs against the target below; the others
 * start their own malicious server (`local-server`) or check the build (T31).
 */
import { describe, expect, it } from 'vitest';
import { WEAKEN_CLIENT, type ClientDefences } from '../../src/client/defences.js';
import { keysThreats } from '../../src/threats/catalogue/keys.js';
import type { Threat } from '../../src/threats/types.js';
import { explain, pick, runOne, sharedTarget } from './target.js';

const target = sharedTarget();

const threat = (id: string): Threat => pick(keysThreats, id);

describe('keys-and-trust threats against this build', () => {
  for (const id of ['T07', 'T08', 'T31', 'T32', 'T33', 'T34', 'T41']) {
    it(`${id} is MITIGATED`, async () => {
      const r = await runOne(threat(id), target());
      expect(r.verdict, explain(r)).toBe('MITIGATED');
    });
  }
});

describe('each switchable SDK defence off: the suite reports VULNERABLE for that threat', () => {
  const cases: [string, keyof ClientDefences][] = [
    ['T07', 'bundleKeyCheck'],
    ['T08', 'listedDevicesOnly'],
    ['T33', 'treeHeadCheck'],
    ['T34', 'enrolmentCheck'],
  ];
  for (const [id, flag] of cases) {
    it(`${id} with ${flag} off`, async () => {
      const r = await runOne(threat(id), target(), {
        clientDefaults: { [WEAKEN_CLIENT]: { [flag]: false } },
      });
      expect(r.verdict, `${r.summary}\n${r.evidence.join('\n')}`).toBe('VULNERABLE');
    });
  }

  it('a defence switched off for one threat leaves the others MITIGATED', async () => {
    const r = await runOne(threat('T07'), target(), {
      clientDefaults: { [WEAKEN_CLIENT]: { listedDevicesOnly: false } },
    });
    expect(r.verdict, r.summary).toBe('MITIGATED');
  });
});
