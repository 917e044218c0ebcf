/**
 * The federation threats (T27, T28, T45, T46, T47, T29's link half and T26's federation-port
 * half) against a federated target (./federated-target.ts): each MITIGATED with every defence on,
 * and NOT-TESTED, saying how to enable them, against a target without a federation endpoint. The
 * defences switched off are ./federation-defences.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runThreatsCommand } from '../../src/cli/threats.js';
import { federationThreats } from '../../src/threats/catalogue/federation.js';
import { transportThreats } from '../../src/threats/catalogue/transport.js';
import {
  FEDERATION_THREATS as threats,
  type FederatedTarget,
  startFederatedTarget,
} from './federated-target.js';
import { explain, pick, runOne, startThreatTarget } from './target.js';

describe('federation threats against a federated target', () => {
  let target: FederatedTarget | undefined;
  beforeAll(async () => {
    target = await startFederatedTarget();
  });
  afterAll(async () => {
    await target?.close();
  });

  it.each(threats.map((x) => [x.id, x] as const))('%s is MITIGATED', async (id, threat) => {
    const f = target as FederatedTarget;
    const r = await runOne(threat, f.t, { federation: f.federation });
    expect(r.verdict, explain(r)).toBe('MITIGATED');
    expect(r.notes[0], explain(r)).toMatch(/^control ok/);
    // T29 plays its link half here (the client half is test/threats/transport.test.ts's).
    if (id === 'T29') {
      expect(r.evidence.filter((e) => e.startsWith('link certificate'))).toHaveLength(5);
    }
    // T26 probes the federation port as well as the client port.
    if (id === 'T26') {
      const seen = r.evidence.join('\n');
      expect(seen).toMatch(/federation port, TLS 1\.3 client with impp-s2s\/1: TLSv1\.3 with TLS_/);
      expect(seen).toMatch(/federation port, client capped at TLS 1\.2.*: refused/);
      expect(seen).toMatch(/federation port, TLS 1\.3 with no ALPN: closed after the handshake/);
      expect(seen).toMatch(/federation port, TLS 1\.3 with ALPN impp\/1 only: refused at the/);
    }
  });
});

describe('impp threats --target with --federation', () => {
  it("plays the operator's peers against the federation port", async () => {
    const f = await startFederatedTarget();
    const work = mkdtempSync(join(tmpdir(), 'impp-threat-fed-cli-'));
    try {
      const file = (name: string, text: string): string => {
        const path = join(work, name);
        writeFileSync(path, text, { mode: 0o600 });
        return path;
      };
      const x = f.federation.x509Peer;
      if (x === undefined) throw new Error('no X.509 peer');
      const accounts = file(
        'accounts.yaml',
        `accounts:\n${f.t.accounts.map((a) => `  - { address: ${a.address}, password: "${a.password}" }`).join('\n')}\n`,
      );
      let stdout = '';
      let stderr = '';
      const io = {
        stdout: { write: (s: string) => (stdout += s) },
        stderr: { write: (s: string) => (stderr += s) },
        env: {},
      };
      const code = await runThreatsCommand(
        {
          target: `127.0.0.1:${f.t.target.port}`,
          accounts,
          ca: file('ca.pem', f.t.env.ca),
          servername: 'localhost',
          stateDir: join(work, 'stewards'),
          federation: `${f.federation.host}:${f.federation.port}`,
          peerDomain: x.domain,
          peerCert: file('peer.pem', x.cert.certPem),
          peerKey: file('peer.key', x.cert.keyPem),
          keyPeerDomain: f.federation.keyPeer?.domain ?? '',
          keyPeerSeed: file('key-peer.seed', Buffer.from(f.keySeed).toString('hex')),
          json: join(work, 'report.json'),
        },
        io,
        () => Promise.resolve([...federationThreats, pick(transportThreats, 'T26')]),
      );
      expect(code, stderr).toBe(0);
      for (const id of ['T27', 'T28', 'T45', 'T46']) {
        expect(stderr, stderr).toMatch(new RegExp(`^${id} [a-z-]+ \\.+ MITIGATED`, 'm'));
      }
      // T26 probes the federation port given with --federation, not only the client port.
      expect(stderr).toMatch(/^T26 weak-tls \.+ MITIGATED/m);
      const report = readFileSync(join(work, 'report.json'), 'utf8');
      expect(report).toContain(
        'federation port, client capped at TLS 1.2 (old suites allowed): refused',
      );
      // Resolution belongs to the deployment: T47 says how to test it.
      expect(stderr).toMatch(/^T47 srv-redirection \.+ NOT-TESTED .*resolution of a peer domain/m);
      expect(stdout).toContain('federation 4/5 mitigated, 1 not tested');
    } finally {
      await f.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('without a federation endpoint', () => {
  it('every federation threat is NOT-TESTED with how to enable it', async () => {
    const t = await startThreatTarget();
    try {
      for (const threat of federationThreats) {
        const r = await runOne(threat, t);
        expect(r.verdict).toBe('NOT-TESTED');
        expect(r.summary).toMatch(/--federation HOST:PORT/);
      }
    } finally {
      await t.close();
    }
  });
});
