/**
 * The federation part of `impp serve`: the link certificate check, the {@link FederationNode}
 * built from the configuration, and its log lines. Loaded only when federation is enabled.
 *
 * Who may link with this domain, and how each peer proves itself, is the trust section's
 * `federation` (peers allowed or denied, X.509 anchors or a pinned domain key, unlisted
 * domains); the server file's own `federation` section says where to listen, which certificate
 * to present, static routes, retry and expiry (docs/operations.md, "Federation").
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SigningKeyPair } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import {
  type FederationAuditEvent,
  FederationNode,
  type LinkTlsCredentials,
  type RouterAuditEvent,
  certificateNamesDomain,
} from '../federation/index.js';
import type { ServerConfig } from '../service/config/index.js';
import type { ServiceLog } from '../service/logging.js';
import type { SqliteServiceStore } from '../service/store/index.js';
import type { DomainTrustConfig } from '../trust/config.js';

/** ExtendedKeyUsage ids (RFC 5280 §4.2.1.12). */
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * Checks that `tls` can serve as `domain`'s link certificate: it names the domain as a dNSName
 * (what a peer that checks certificates requires), allows both ends of TLS (a link is opened by
 * either side), and matches its key.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` saying which of these fails and what to do.
 * @example
 * ```ts
 * checkLinkCertificate({ certPem, keyPem }, 'a.example', 'tls.cert');
 * ```
 */
export function checkLinkCertificate(tls: LinkTlsCredentials, domain: string, where: string): void {
  const fix =
    'give federation.cert and federation.key a certificate for the domain with both usages ' +
    'and its key (see docs/operations.md, "Federation")';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(tls.certPem);
  } catch (cause) {
    throw new ImppError('ERR_CONFIG_INVALID', `${where} is not a PEM certificate; ${fix}`, {
      cause,
    });
  }
  if (!certificateNamesDomain(cert, domain)) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `${where} does not name ${domain} as a DNS subjectAltName, which peers require; ${fix}`,
    );
  }
  // Typed as always present, but undefined at run time for a certificate without the extension.
  const usages = cert.keyUsage as readonly string[] | undefined;
  // No extendedKeyUsage extension at all means any usage (RFC 5280 §4.2.1.12).
  if (usages !== undefined && !(usages.includes(SERVER_AUTH) && usages.includes(CLIENT_AUTH))) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `${where} must allow both serverAuth and clientAuth (a link is opened by either side); ${fix}`,
    );
  }
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(tls.keyPem));
  } catch {
    matches = false;
  }
  if (!matches) {
    throw new ImppError('ERR_CONFIG_INVALID', `the key of ${where} does not match it; ${fix}`);
  }
}

/**
 * The trust section with each peer's `trustAnchors.path` made absolute: relative paths in a
 * configuration file mean "next to that file", as everywhere else in it.
 */
function withAbsoluteAnchors(config: ServerConfig): DomainTrustConfig {
  if (config.source === undefined) return config.trust;
  const base = dirname(resolve(config.source));
  return {
    ...config.trust,
    federation: {
      ...config.trust.federation,
      peers: config.trust.federation.peers.map((p) =>
        p.mode === 'allow' && p.proof.type === 'x509' && p.proof.trustAnchors.path !== undefined
          ? {
              ...p,
              proof: {
                ...p.proof,
                trustAnchors: {
                  ...p.proof.trustAnchors,
                  path: resolve(base, p.proof.trustAnchors.path),
                },
              },
            }
          : p,
      ),
    },
  };
}

/** The link certificate: the federation section's files, or the server's own certificate. */
export function linkCredentials(
  config: ServerConfig,
  serverTls: LinkTlsCredentials,
): { readonly tls: LinkTlsCredentials; readonly where: string } {
  const files = config.federation.tls;
  if (files === undefined) return { tls: serverTls, where: 'the server certificate' };
  return {
    tls: {
      certPem: readPem(files.certPath, 'federation.cert'),
      keyPem: readPem(files.keyPath, 'federation.key'),
    },
    where: `federation.cert ${files.certPath}`,
  };
}

/** One file of the link certificate; the error names the setting and the file, never contents. */
function readPem(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `cannot read ${setting} ${path} (${code}); check the path (relative paths are next to ` +
        'the configuration file) and that the server may read it, or leave federation.cert and ' +
        'federation.key out to use the server certificate',
      { cause },
    );
  }
}

/**
 * Builds the domain's federation node from the configuration and wires its events to `log`:
 * link open and close, refused peers (audit events: domains, reasons and codes, never keys or
 * payloads), bounces and retries.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` for an unusable link certificate.
 * @example
 * ```ts
 * const node = buildFederationNode({ config, store, serverTls, domainKey, log });
 * const server = new ImppServer({ ...options, remote: node.router });
 * node.attach(server.federationInbound);
 * ```
 */
export function buildFederationNode(options: {
  readonly config: ServerConfig;
  readonly store: SqliteServiceStore;
  readonly serverTls: LinkTlsCredentials;
  readonly domainKey: SigningKeyPair;
  readonly log: ServiceLog;
}): FederationNode {
  const { config, log } = options;
  const { tls, where } = linkCredentials(config, options.serverTls);
  checkLinkCertificate(tls, config.domain, where);
  const node = new FederationNode({
    domain: config.domain,
    trust: withAbsoluteAnchors(config),
    store: options.store,
    tls,
    domainKey: options.domainKey,
    resolve: { overrides: config.federation.routes },
    retry: config.federation.retry,
    expireAfterMs: config.federation.expireAfterMs,
  });
  node.on('link', (link) => {
    log.info({ peer: link.peer, role: link.role }, 'federation.link_open');
  });
  node.on('linkClosed', (peer, info) => {
    log.info({ peer, code: info.code, by: info.by }, 'federation.link_closed');
  });
  node.on('audit', (event: FederationAuditEvent | RouterAuditEvent) => {
    const remote = 'remoteAddress' in event ? event.remoteAddress : null;
    const fields = {
      event: event.type,
      peer: event.peer,
      ...('claimed' in event ? { claimed: event.claimed } : {}),
      ...('claimedDomain' in event ? { claimedDomain: event.claimedDomain } : {}),
      reason: event.reason,
      ...(remote === null ? {} : { remote }),
    };
    // The one audit event that is not a refusal: a peer proved its domain (and how).
    if (event.type === 'federation.link-open') log.info(fields, 'federation.peer_authenticated');
    else log.warn(fields, 'federation.peer_refused');
  });
  node.on('bounce', (bounces) => {
    for (const b of bounces) {
      log.warn({ peer: b.peer, reason: b.reason, code: b.code }, 'federation.bounced');
    }
  });
  node.on('retry', (peer, info) => {
    log.info(
      { peer, attempts: info.attempts, delayMs: info.delayMs, code: info.code },
      'federation.retry',
    );
  });
  return node;
}
