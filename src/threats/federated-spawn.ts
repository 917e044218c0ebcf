/**
 * The federation side of `impp threats --spawn`: the peer domains the spawned server federates
 * with, whose credentials the suite holds (T27, T28, T29's link half, T45–T47).
 *
 * - `peer.threats.example` proves itself by X.509 under a CA the suite made (the server's anchors
 *   for that peer);
 * - `keyed.threats.example` by a pinned Ed25519 domain key the suite generated;
 * - `moved.threats.example` (X.509, same CA) is reached through a static route to an address the
 *   suite forwards at will: the honest peer, then rogue hosts (T47).
 * The spawned server presents a link certificate of the same CA for its own domain.
 *
 * The server is configured through its ordinary configuration file (`federation` and
 * `trust.federation`, docs/operations.md, "Federation"), so the spawn runs exactly what
 * `impp serve` runs. The audit events the suite checks are read back from the server's log.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKeyPair, randomBytes, toBase64Url } from '../crypto/index.js';
import { createSuiteCa, issueServerCert } from './attackers/certs.js';
import { SwitchableRoute } from './attackers/rogue-domain.js';
import type {
  FederationAccess,
  FederationAuditRecord,
  LinkCertRequest,
  PemCredentials,
} from './types.js';

/** The peer accepted by X.509. */
export const X509_PEER = 'peer.threats.example';
/** The peer accepted by a pinned key. */
export const KEY_PEER = 'keyed.threats.example';
/** The peer whose route the suite redirects (T47). */
export const MOVED_PEER = 'moved.threats.example';

/** What the spawned server's configuration gets, and what the suite keeps. */
export interface FederatedSpawn {
  /** Lines of the `federation:` section of the configuration file (top level). */
  readonly federationYaml: readonly string[];
  /** Lines of the `trust.federation:` section (indented under `trust:`). */
  readonly trustYaml: readonly string[];
  /** The same `trust.federation` section as data (for a server composed in-process). */
  readonly trustFederation: {
    readonly unlisted: 'deny';
    readonly peers: readonly Record<string, unknown>[];
  };
  /** The server's link certificate (its domain, both usages, under the suite's CA). */
  readonly link: PemCredentials;
  /**
   * The pinned-key peer's Ed25519 seed (against a deployment, the file `--key-peer-seed` names
   * holds it in hex).
   */
  readonly keySeed: Uint8Array;
  /** Its static routes (the T47 peer's, to the suite's switchable address). */
  readonly routes: ReadonlyMap<string, readonly { host: string; port: number }[]>;
  /**
   * The access the threats get, once the server listens for federation on `port`; `audit` reads
   * the server's federation audit events.
   */
  access(
    host: string,
    port: number,
    domain: string,
    audit: () => readonly FederationAuditRecord[],
  ): FederationAccess;
  close(): Promise<void>;
}

/**
 * The audit events in a pino log file: the lines `impp serve` writes for refused peers
 * (`federation.peer_refused`, src/cli/serve-federation.ts). A line that does not parse is skipped.
 */
export function auditFromLog(logFile: string): FederationAuditRecord[] {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  const out: FederationAuditRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('federation.peer_refused')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.msg !== 'federation.peer_refused') continue;
      out.push({
        type: typeof o.event === 'string' ? o.event : 'unknown',
        peer: typeof o.peer === 'string' ? o.peer : null,
        reason: typeof o.reason === 'string' ? o.reason : '',
      });
    } catch {
      // Not JSON: not an audit line.
    }
  }
  return out;
}

/**
 * Makes the peers' credentials and the files the configuration names, in `work`, for a server
 * of `domain`.
 *
 * @example
 * ```ts
 * const fed = await prepareFederatedSpawn(work, 'target.threats.example');
 * writeFileSync(configPath, [...base, ...fed.federationYaml, 'trust:', ...fed.trustYaml].join('\n'));
 * const access = fed.access(host, port, domain, () => auditFromLog(logFile));
 * ```
 */
export async function prepareFederatedSpawn(work: string, domain: string): Promise<FederatedSpawn> {
  const ca = await createSuiteCa('impp threat suite federation CA');
  const own = await issueServerCert(ca, { names: [domain], usage: 'both' });
  const x509Cert = await issueServerCert(ca, { names: [X509_PEER], usage: 'both' });
  const movedCert = await issueServerCert(ca, { names: [MOVED_PEER], usage: 'both' });
  const keySeed = randomBytes(32);
  const key = generateSigningKeyPair(keySeed);
  const caPath = join(work, 'federation-ca.pem');
  const certPath = join(work, 'federation-link.pem');
  const keyPath = join(work, 'federation-link.key');
  writeFileSync(caPath, ca.certPem);
  writeFileSync(certPath, own.certPem);
  writeFileSync(keyPath, own.keyPem, { mode: 0o600 });
  const route = await SwitchableRoute.start();
  const anchors = { type: 'x509', trustAnchors: { path: caPath } };
  const trustFederation = {
    unlisted: 'deny' as const,
    peers: [
      { domain: X509_PEER, mode: 'allow', proof: anchors },
      {
        domain: KEY_PEER,
        mode: 'allow',
        proof: { type: 'pinned-key', publicKey: toBase64Url(key.publicKey) },
      },
      { domain: MOVED_PEER, mode: 'allow', proof: anchors },
    ],
  };
  const issue = async (request: LinkCertRequest): Promise<PemCredentials> => {
    const c = await issueServerCert(ca, { ...request, usage: request.usage ?? 'both' });
    return { certPem: c.certPem, keyPem: c.keyPem };
  };
  return {
    trustFederation,
    link: { certPem: own.certPem, keyPem: own.keyPem },
    keySeed,
    routes: new Map([[MOVED_PEER, [{ host: '127.0.0.1', port: route.port }]]]),
    federationYaml: [
      'federation:',
      '  enabled: true',
      '  listen: { host: 127.0.0.1, port: 0 }',
      `  cert: ${JSON.stringify(certPath)}`,
      `  key: ${JSON.stringify(keyPath)}`,
      `  routes: { ${MOVED_PEER}: "127.0.0.1:${route.port}" }`,
      // Retries within a second: T47 re-points the route and waits for the next attempt.
      '  retry: { baseMs: 100, maxMs: 1000 }',
    ],
    // JSON is YAML: the same data as trustFederation.
    trustYaml: [`  federation: ${JSON.stringify(trustFederation)}`],
    access(host, port, target, audit) {
      return {
        host,
        port,
        domain: target,
        x509Peer: {
          domain: X509_PEER,
          cert: { certPem: x509Cert.certPem, keyPem: x509Cert.keyPem },
          issue,
        },
        keyPeer: { domain: KEY_PEER, key },
        audit,
        resolution: {
          domain: MOVED_PEER,
          cert: { certPem: movedCert.certPem, keyPem: movedCert.keyPem },
          targetCa: ca.certPem,
          issue,
          point: (to) => {
            route.point(to);
          },
        },
      };
    },
    close: () => route.close(),
  };
}
