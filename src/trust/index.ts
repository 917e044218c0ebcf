/**
 * `impp/trust`: the trust-domain model as code, with no dependency on the other layers (only on
 * src/crypto and src/errors).
 *
 * - addresses and principals: `user@domain`, `im:` / `pres:` URIs (RFC 3859, 3860, 3861), device
 *   addresses, principal kinds (people, services, device-like entities);
 * - identities and keys: device identity keys, key fingerprints, safety numbers, the signed device
 *   list, device certificates from an enterprise CA;
 * - the key log (RFC 9162-style Merkle log) and device enrolment statements;
 * - the domain trust configuration (mechanisms, providers, policy, federation);
 * - the `TrustStore` seam where a client decides whether an identity is trusted.
 *
 * @example
 * ```ts
 * import { parseAddress, MemoryTrustStore, parseDomainTrustConfig } from 'impp/trust';
 * ```
 */
export * from './address.js';
export * from './principal.js';
export * from './config.js';
export * from './trust-store.js';
export * from './identity.js';
export * from './safety-number.js';
export * from './device-list.js';
export * from './device-certificate.js';
export * from './enrolment.js';
export * from './keylog/index.js';
