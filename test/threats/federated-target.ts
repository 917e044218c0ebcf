/**
 * A federated target for the federation threat tests: the service harness's real server with a
 * real FederationNode (its own store, links on loopback), federating with the suite's peer
 * domains exactly as `impp threats --spawn` sets them up (src/threats/federated-spawn.ts), with
 * test-only federation and client defences switched off on request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientDefences } from '../../src/client/defences.js';
import { type FederationDefences, WEAKEN_FEDERATION } from '../../src/federation/defences.js';
import { FederationNode } from '../../src/federation/node.js';
import type { RemoteRouter } from '../../src/service/remote.js';
import { federationThreats } from '../../src/threats/catalogue/federation.js';
import { transportThreats } from '../../src/threats/catalogue/transport.js';
import { prepareFederatedSpawn } from '../../src/threats/federated-spawn.js';
import type { FederationAccess, FederationAuditRecord } from '../../src/threats/types.js';
import { parseDomainTrustConfig } from '../../src/trust/config.js';
import { pick, startThreatTarget, type ThreatTarget } from './target.js';

/** The target's domain, as with --spawn. */
export const DOMAIN = 'target.threats.example';

/**
 * The threats that use the federation access: T27, T28, T45–T47, T29 (its link half) and T26 (its
 * federation-port half).
 */
export const FEDERATION_THREATS = [
  ...federationThreats,
  pick(transportThreats, 'T29'),
  pick(transportThreats, 'T26'),
];

/** A running federated target. */
export interface FederatedTarget {
  readonly t: ThreatTarget;
  readonly federation: FederationAccess;
  /** The pinned-key peer's seed (for `--key-peer-seed`). */
  readonly keySeed: Uint8Array;
  close(): Promise<void>;
}

/** The harness's server with a FederationNode, weakened as asked. */
export async function startFederatedTarget(
  weaken?: Partial<FederationDefences>,
  client?: Partial<ClientDefences>,
): Promise<FederatedTarget> {
  const work = mkdtempSync(join(tmpdir(), 'impp-threat-fed-'));
  const fed = await prepareFederatedSpawn(work, DOMAIN);
  const late: { node?: FederationNode } = {};
  // The server needs its router before the node (which needs the server's store) exists.
  const router = (): FederationNode['router'] => {
    if (late.node === undefined) throw new Error('the node starts with the server');
    return late.node.router;
  };
  const remote: RemoteRouter = {
    route: (r) => router().route(r),
    devices: (a, b) => router().devices(a, b),
    bundles: (a, b) => router().bundles(a, b),
    subscription: (r) => router().subscription(r),
    decision: (r) => router().decision(r),
    presence: (r) => router().presence(r),
  };
  const t = await startThreatTarget({
    domain: DOMAIN,
    remote,
    ...(client === undefined ? {} : { client }),
  });
  const trust = parseDomainTrustConfig({
    version: 1,
    domain: DOMAIN,
    authentication: {
      mechanisms: ['SCRAM-SHA-256-PLUS'],
      providers: [{ type: 'local', id: 'local' }],
    },
    federation: fed.trustFederation,
  });
  const node = new FederationNode({
    domain: DOMAIN,
    trust,
    store: t.env.store,
    tls: fed.link,
    resolve: { overrides: fed.routes },
    retry: { baseMs: 100, maxMs: 1000 },
    ...(weaken === undefined ? {} : { [WEAKEN_FEDERATION]: weaken }),
  });
  late.node = node;
  const audit: FederationAuditRecord[] = [];
  node.on('audit', (e) => {
    const origin = (e as { claimedOrigin?: string }).claimedOrigin;
    audit.push({
      type: e.type,
      peer: e.peer,
      reason: e.reason,
      ...(origin === undefined ? {} : { claimedOrigin: origin }),
    });
  });
  node.attach(t.env.server.federationInbound);
  const port = await node.listen({ port: 0, host: '127.0.0.1' });
  return {
    t,
    federation: fed.access('127.0.0.1', port, DOMAIN, () => audit),
    keySeed: fed.keySeed,
    async close() {
      await node.close();
      await t.close();
      await fed.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
