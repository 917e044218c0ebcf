/**
 * impp federation: the server-to-server link between independent domains (docs/protocol.md,
 * "Server-to-server protocol"; issue 7). This first part provides the authenticated link, its
 * framing with hop-by-hop acknowledgements and duplicate suppression, RFC 3861 resolution, and
 * durability: the per-peer outbound queue driver (outbound.ts) and the store-backed duplicate
 * filter (dedup-store.ts); and routing (router.ts): sealed messages, presence, subscriptions
 * and look-ups across domains, the checks each side makes, per-peer rate limits, and
 * delivery-failure notices.
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
export type { StoreDedupOptions } from './dedup-store.js';
export { DEFAULT_DEDUP_MAX_AGE_MS, StoreDedup } from './dedup-store.js';
export type {
  FederationOutboundEvents,
  FederationOutboundOptions,
  OutboundBounce,
  OutboundConnector,
  OutboundRequest,
  RetryPolicy,
} from './outbound.js';
export {
  DEFAULT_EXPIRE_AFTER_MS,
  DEFAULT_RETRY_POLICY,
  FederationOutbound,
  backoffDelay,
  secureRandom,
} from './outbound.js';
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
export type {
  FederationRouterEvents,
  FederationRouterOptions,
  RouteRequest,
  RouterAuditEvent,
} from './router.js';
export {
  DEFAULT_LOOKUP_TIMEOUT_MS,
  DEFAULT_MAX_LOOKUPS_PER_PEER,
  FederationKind,
  FederationRouter,
  federationObjectId,
  federationPresenceId,
} from './router.js';
/** The notice codec lives in src/protocol (shared with the client); re-exported here. */
export type { DeliveryNotice } from '../protocol/notice.js';
export {
  DELIVERY_NOTICE_VERSION,
  decodeDeliveryNotice,
  encodeDeliveryNotice,
} from '../protocol/notice.js';
export type {
  LookupAnswer,
  LookupOp,
  LookupRequest,
  PresenceBody,
  SubscriptionBody,
} from './bodies.js';
export {
  MAX_LOG_HEAD_BYTES,
  MAX_LOG_PROOF_HASHES,
  MAX_LOOKUP_DEVICES,
  MAX_PRESENCE_WATCHERS,
  decodeLogAnswer,
  decodeLookupRequest,
  decodePresenceBody,
  decodeSubscriptionBody,
  encodeLookupAnswer,
  encodeLookupRequest,
  encodePresenceBody,
  encodeSubscriptionBody,
} from './bodies.js';
export type { RateLimit, TakeResult } from './peer-limits.js';
export {
  DEFAULT_PEER_DATA_LIMIT,
  DEFAULT_PEER_LOOKUP_LIMIT,
  PeerRateLimiter,
} from './peer-limits.js';
export type { FederationNodeEvents, FederationNodeOptions } from './node.js';
export { FederationNode } from './node.js';
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
export {
  DEFAULT_VOLATILE_KINDS,
  FEDERATION_ALPN,
  LINK_VERSIONS,
  LinkFrameType,
  OBJECT_ID_BYTES,
} from './wire.js';
