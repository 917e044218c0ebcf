/**
 * The authentication threats against a real server: MITIGATED with every defence on, and
 * VULNERABLE with exactly one defence switched off (issue 6 item 5: the suite must be able to fail).
 */
import { describe, expect, it } from 'vitest';
import { authenticationThreats } from '../../src/threats/catalogue/authentication.js';
import { mannWhitney } from '../../src/threats/catalogue/stats.js';
import type { Threat } from '../../src/threats/types.js';
import {
  explain,
  pick,
  runAgainst,
  runOne,
  sharedTarget,
  startThreatTarget,
  type ThreatTargetOptions,
} from './target.js';

const threat = (id: string): Threat => pick(authenticationThreats, id);

async function verdictWith(id: string, options: ThreatTargetOptions): Promise<string> {
  const r = await runAgainst(threat(id), options);
  return `${r.verdict}: ${r.summary}`;
}

describe('authentication threats, every defence on', () => {
  const target = sharedTarget();

  for (const id of ['T14', 'T15', 'T16', 'T17', 'T18', 'T19', 'T44', 'T57']) {
    it(`${id} is MITIGATED`, async () => {
      const r = await runOne(threat(id), target());
      expect(r.verdict, explain(r)).toBe('MITIGATED');
    });
  }

  it('T20, T51, T52, T53 say why they are NOT-TESTED', async () => {
    for (const id of ['T20', 'T51', 'T52', 'T53']) {
      const r = await runOne(threat(id), target());
      expect(r.verdict).toBe('NOT-TESTED');
      expect(r.summary.length).toBeGreaterThan(20);
    }
  });

  it('T18 needs the dos capability', async () => {
    const r = await runOne(threat('T18'), target(), { dos: { enabled: false, maxRate: 20 } });
    expect(r.verdict).toBe('NOT-TESTED');
  });
});

describe('authentication threats, one defence off: the suite reports VULNERABLE', () => {
  it('T15 with the SDK not requiring channel binding (channelBinding: never)', async () => {
    const t = await startThreatTarget();
    try {
      const r = await runOne(threat('T15'), {
        ...t,
        clientDefaults: { ...t.clientDefaults, channelBinding: 'never' },
      });
      expect(r.verdict, r.summary).toBe('VULNERABLE');
    } finally {
      await t.close();
    }
  });

  it('T57 with the SDK using unbound SCRAM (channelBinding: never)', async () => {
    const t = await startThreatTarget();
    try {
      const r = await runOne(threat('T57'), {
        ...t,
        clientDefaults: { ...t.clientDefaults, channelBinding: 'never' },
      });
      expect(r.verdict, r.summary).toBe('VULNERABLE');
    } finally {
      await t.close();
    }
  });

  it('T16 with the server not checking the channel binding', async () => {
    expect(await verdictWith('T16', { server: { scramChannelBindingCheck: false } })).toMatch(
      /^VULNERABLE/,
    );
  });

  it('T17 with the SDK not checking the server nonce', async () => {
    expect(await verdictWith('T17', { client: { scramNonceCheck: false } })).toMatch(
      /^VULNERABLE: the SDK answered a server nonce/,
    );
  });

  it('T18 with the authentication rate limiter off', async () => {
    expect(await verdictWith('T18', { server: { authRateLimit: false } })).toMatch(/^VULNERABLE/);
  });

  it('T19 with unknown users answered at once (no fake salt)', async () => {
    expect(await verdictWith('T19', { server: { uniformUnknownUser: false } })).toMatch(
      /^VULNERABLE: the first SCRAM answer differs/,
    );
  });

  it('T44 with the device-binding signature not checked', async () => {
    expect(await verdictWith('T44', { server: { deviceBindingCheck: false } })).toMatch(
      /^VULNERABLE/,
    );
  });
});

describe('the Mann-Whitney U test of T19', () => {
  it('finds a shift and keeps quiet on one distribution', () => {
    const a = Array.from({ length: 40 }, (_, i) => 10 + (i % 7) * 0.1);
    const b = a.map((x) => x + 2);
    expect(mannWhitney(a, b).p).toBeLessThan(1e-6);
    const c = Array.from({ length: 40 }, (_, i) => 10 + ((i * 3) % 7) * 0.1);
    expect(mannWhitney(a, c).p).toBeGreaterThan(0.5);
  });

  it('has a false-positive rate near α on identical distributions (seeded)', () => {
    let seed = 42;
    const rand = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    // Long-tailed noise like a busy machine: exponential.
    const sample = (): number[] => Array.from({ length: 40 }, () => -Math.log(1 - rand()));
    let alarms = 0;
    const runs = 2000;
    for (let i = 0; i < runs; i++) if (mannWhitney(sample(), sample()).p < 0.01) alarms++;
    expect(alarms / runs).toBeLessThan(0.02);
  });
});
