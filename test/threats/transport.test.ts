/**
 * The transport threats against a real server: MITIGATED with the shipped defaults, and
 * VULNERABLE with exactly one defence (a limit, a quota, TLS 1.3 only) weakened.
 */
import { describe, expect, it } from 'vitest';
import { transportThreats } from '../../src/threats/catalogue/transport.js';
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

const threat = (id: string): Threat => pick(transportThreats, id);

const resultWith = (id: string, options: ThreatTargetOptions) => runAgainst(threat(id), options);

describe('transport threats, shipped defaults', () => {
  // Shipped limits, except a short pre-auth deadline so that T24 can watch it strike.
  const target = sharedTarget({ limits: { preAuthTimeoutMs: 1_500 } });

  for (const id of ['T22', 'T23', 'T24', 'T25', 'T26', 'T29', 'T56']) {
    it(`${id} is MITIGATED`, async () => {
      const r = await runOne(threat(id), target());
      expect(r.verdict, explain(r)).toBe('MITIGATED');
    });
  }

  it('T24 and T25 need the dos capability', async () => {
    for (const id of ['T24', 'T25']) {
      const r = await runOne(threat(id), target(), { dos: { enabled: false, maxRate: 20 } });
      expect(r.verdict).toBe('NOT-TESTED');
    }
  });
});

describe('transport threats, one defence weakened: the suite reports VULNERABLE', () => {
  it('T23 with a 16 MiB frame limit before authentication', async () => {
    const r = await resultWith('T23', {
      limits: {
        preAuthMaxFrameBytes: 16 * 1024 * 1024,
        maxFrameBytes: 16 * 1024 * 1024,
        maxOutboundBytes: 17 * 1024 * 1024,
      },
    });
    expect(r.verdict, explain(r)).toBe('VULNERABLE');
    expect(r.summary).toMatch(/unauthenticated peers may send/);
  });

  it('T24 with a ten-minute pre-authentication deadline', async () => {
    const r = await resultWith('T24', { limits: { preAuthTimeoutMs: 600_000 } });
    expect(r.verdict, explain(r)).toBe('VULNERABLE');
  });

  it('T26 with TLS 1.2 allowed on the client and WebSocket ports', async () => {
    for (const tls13Only of [true, false]) {
      const t = await startThreatTarget({ server: { tls13Only } });
      try {
        const ws = await t.env.server.listenWebSocket({ host: '127.0.0.1', port: 0 });
        const r = await runOne(threat('T26'), {
          ...t,
          target: { ...t.target, websocketPort: ws.port },
        });
        const seen = r.evidence.join('\n');
        expect(seen).toMatch(tls13Only ? /client port.*refused/ : /client port.*TLSv1\.2/);
        expect(seen).toMatch(tls13Only ? /websocket port.*refused/ : /websocket port.*TLSv1\.2/);
        expect(r.verdict, explain(r)).toBe(tls13Only ? 'MITIGATED' : 'VULNERABLE');
      } finally {
        await t.close();
      }
    }
  });

  it('T25 without a one-time prekey quota', async () => {
    const r = await resultWith('T25', { quotas: { oneTimePrekeysMax: 1_000_000 } });
    expect(r.verdict, explain(r)).toBe('VULNERABLE');
  });
});
