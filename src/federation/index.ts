/**
 * impp federation: the server-to-server link between independent domains (docs/protocol.md,
 * "Server-to-server protocol"; issue 7). This first part provides the authenticated link, its
 * framing with hop-by-hop acknowledgements and duplicate suppression, and RFC 3861 resolution.
 * Routing of messages and presence over links comes next.
 *
 * Never imports what opens sealed payloads (test/architecture.test.ts).
 *
 * @example
 * ```ts
 * import { FederationEndpoint } from 'impp/federation';
 * const fed = new FederationEndpoint({ local, trust, deliver });
 * await fed.listen({ port: 5332 });
 * ```
 */
export type { InboundDedup } from './dedup.js';
export { MemoryDedup } from './dedup.js';
export type { FederationEndpointEvents, FederationEndpointOptions } from './endpoint.js';
export { FederationEndpoint } from './endpoint.js';
export type {
  FederationAuditEvent,
  InboundObject,
  LinkCloseInfo,
  LinkEvents,
  LinkLimits,
  LocalDomain,
  OutboundObject,
} from './link.js';
export { DEFAULT_LINK_LIMITS, Link } from './link.js';
export type { LinkTlsCredentials } from './peer-tls.js';
export { certificateNamesDomain } from './peer-tls.js';
export type { ProofContext, ProofRole } from './proof.js';
export {
  DOMAIN_PROOF_LABEL,
  domainProofMessage,
  signDomainProof,
  verifyDomainProof,
} from './proof.js';
export type { FederationService, LinkTarget, ResolveOptions, SrvResolver } from './resolve.js';
export { DEFAULT_FEDERATION_PORT, resolveDomain } from './resolve.js';
export { FEDERATION_ALPN, LINK_VERSIONS, LinkFrameType, OBJECT_ID_BYTES } from './wire.js';
