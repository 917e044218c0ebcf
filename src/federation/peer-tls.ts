/**
 * TLS for the link: the options each side uses, and the certificate check for a peer that proves
 * its domain with X.509 (security model T27, T29).
 *
 * Chains are validated by Node's TLS stack (OpenSSL), never by an X.509 library's chain builder:
 * - The initiator knows which domain it calls, so its handshake trusts exactly the anchors
 *   configured for that peer (or the system roots for `webpki`) and fails on anything else.
 * - The responder learns who is calling only after the handshake (the OPEN frame), so its
 *   handshake trusts the union of every configured anchor and records the verdict
 *   (`socket.authorized`) instead of aborting. When OPEN names the peer, the verdict must be
 *   positive AND the presented chain must reach one of *that peer's* anchors along links whose
 *   signatures node:crypto checks; otherwise a CA configured for one peer could vouch for another.
 *   This second step only narrows what OpenSSL already accepted (expiry, signatures, usage).
 * In both directions the certificate must carry the domain as a subjectAltName dNSName: no
 * wildcard, no fallback to the subject's common name.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  type ConnectionOptions,
  type PeerCertificate,
  type TLSSocket,
  type TlsOptions,
  rootCertificates,
} from 'node:tls';
import { ImppError } from '../errors.js';
import type { DomainTrustConfig, PeerProof, TrustAnchorsConfig } from '../trust/config.js';
import { FEDERATION_ALPN } from './wire.js';

/** The TLS credentials a domain presents on every link, as server and as client. */
export interface LinkTlsCredentials {
  /** Certificate chain (leaf first), PEM. Must have a dNSName SAN for the domain to be usable
   * by peers that require a certificate, and both serverAuth and clientAuth usages. */
  readonly certPem: string;
  readonly keyPem: string;
}

/** A PEM bundle, split into certificates. */
function splitPem(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** The PEM text of configured anchors (inline, or read from the file the configuration names). */
export function anchorsPem(anchors: TrustAnchorsConfig): string {
  if (anchors.pem !== undefined) return anchors.pem;
  if (anchors.path === undefined) {
    throw new ImppError('ERR_CONFIG_INVALID', 'trust anchors have neither "pem" nor "path"');
  }
  try {
    return readFileSync(anchors.path, 'utf8');
  } catch (error) {
    throw new ImppError('ERR_CONFIG_INVALID', 'trust anchors file cannot be read', {
      cause: error,
    });
  }
}

let systemRoots: X509Certificate[] | undefined;

/** The anchors a certificate-proving peer must chain to: configured, or the system roots. */
export function anchorsFor(proof: PeerProof): X509Certificate[] {
  if (proof.type === 'webpki') {
    systemRoots ??= rootCertificates.map((pem) => new X509Certificate(pem));
    return systemRoots;
  }
  if (proof.type === 'x509') return splitPem(anchorsPem(proof.trustAnchors));
  return [];
}

/** The CA set for the responder's handshake: every configured anchor, plus system roots if the
 * configuration accepts unlisted domains by Web PKI. */
export function responderCaBundle(config: DomainTrustConfig): string[] {
  const pems: string[] = [];
  for (const peer of config.federation.peers) {
    if (peer.mode === 'allow' && peer.proof.type === 'x509') {
      pems.push(anchorsPem(peer.proof.trustAnchors));
    }
  }
  if (config.federation.unlisted === 'webpki') pems.push(...rootCertificates);
  return pems;
}

/** Does `cert` name exactly `domain` in a dNSName subjectAltName? */
export function certificateNamesDomain(cert: X509Certificate, domain: string): boolean {
  return cert.checkHost(domain, { subject: 'never', wildcards: false }) !== undefined;
}

/**
 * The chain as Node linked it after verification (leaf first). Uses `getPeerCertificate(true)`
 * only: on Node 20.20, once `getPeerX509Certificate()` has been called on a client socket, both
 * accessors return nothing, while `getPeerCertificate(true)` can be called again and again.
 */
function presentedChain(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: PeerCertificate | undefined = socket.getPeerCertificate(true);
  // An empty object stands for "no certificate".
  while (c?.raw instanceof Buffer && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
    c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/** True if the chain reaches one of `anchors`, every link's signature checked. */
function reachesAnchor(chain: readonly X509Certificate[], anchors: readonly X509Certificate[]) {
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i];
    if (cert === undefined) return false;
    if (anchors.some((a) => a.raw.equals(cert.raw) || signedBy(cert, a))) return true;
    const next = chain[i + 1];
    if (next === undefined || !signedBy(cert, next)) return false;
  }
  return false;
}

/** Why a certificate was not accepted, for logs and audit (never key material). */
export type CertificateVerdict =
  { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Checks, after the handshake, that the peer's certificate proves `domain` under `proof`
 * (`x509` or `webpki`): Node's TLS verdict, the dNSName, and the chain reaching this peer's
 * anchors. `nameCheck` is false only under the test-only switch of ./defences.ts.
 *
 * @example
 * ```ts
 * const v = checkPeerCertificate(socket, 'partner.example', trust.proof);
 * if (!v.ok) refuse(v.reason);
 * ```
 */
export function checkPeerCertificate(
  socket: TLSSocket,
  domain: string,
  proof: PeerProof,
  nameCheck = true,
): CertificateVerdict {
  if (proof.type === 'pinned-key') return { ok: false, reason: 'peer proves with a pinned key' };
  const chain = presentedChain(socket);
  const leaf = chain[0];
  if (leaf === undefined) return { ok: false, reason: 'no certificate presented' };
  if (!socket.authorized) {
    const why = socket.authorizationError as Error | string | null | undefined;
    const code = typeof why === 'string' ? why : (why?.message ?? 'unknown');
    return { ok: false, reason: `certificate chain not accepted by TLS (${code})` };
  }
  if (nameCheck && !certificateNamesDomain(leaf, domain)) {
    return { ok: false, reason: 'certificate does not name the domain' };
  }
  if (!reachesAnchor(chain, anchorsFor(proof))) {
    return {
      ok: false,
      reason: 'certificate does not chain to the anchors configured for the peer',
    };
  }
  return { ok: true };
}

/**
 * TLS options of the initiator towards `domain`: TLS 1.3 only, our ALPN, our certificate as
 * client certificate, and, when the peer proves with a certificate, verification against its
 * anchors with the domain as the name. A pinned-key peer's certificate is not checked here: its
 * signature over this connection's exporter is (proof.ts).
 */
export function initiatorTlsOptions(
  credentials: LinkTlsCredentials,
  domain: string,
  proof: PeerProof,
  nameCheck = true,
): ConnectionOptions {
  const base: ConnectionOptions = {
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ALPNProtocols: [FEDERATION_ALPN],
    cert: credentials.certPem,
    key: credentials.keyPem,
    servername: domain,
    // No `session`: the initiator never resumes, so every link has a full handshake, a fresh
    // exporter and a certificate the responder has just verified.
  };
  if (proof.type === 'pinned-key') return { ...base, rejectUnauthorized: false };
  return {
    ...base,
    ca: proof.type === 'webpki' ? [...rootCertificates] : anchorsPem(proof.trustAnchors),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      const x = new X509Certificate(cert.raw);
      // Test-only weakening (./defences.ts) skips the name; the chain is still OpenSSL's.
      return !nameCheck || certificateNamesDomain(x, domain)
        ? undefined
        : new Error('certificate does not name the domain');
    },
  };
}

/**
 * TLS options of the responder: TLS 1.3 only, our ALPN, a client certificate requested but not
 * required at the handshake (pinned-key peers may have none), checked against every configured
 * anchor; the per-peer decision is {@link checkPeerCertificate}, once OPEN names the peer.
 */
export function responderTlsOptions(
  credentials: LinkTlsCredentials,
  config: DomainTrustConfig,
  handshakeTimeoutMs: number,
  tls13Only = true,
): TlsOptions {
  const ca = responderCaBundle(config);
  return {
    // Test-only weakening (./defences.ts) lets TLS 1.2 through, for T26 to catch.
    minVersion: tls13Only ? 'TLSv1.3' : 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ALPNProtocols: [FEDERATION_ALPN],
    cert: credentials.certPem,
    key: credentials.keyPem,
    requestCert: true,
    rejectUnauthorized: false,
    // Always an explicit list: Node loads its default roots only when `ca` is absent, so an empty
    // list means "no CA" (no certificate-proving peer configured), not "the public roots".
    ca,
    handshakeTimeout: handshakeTimeoutMs,
  };
}
