/**
 * Principals: who an address belongs to.
 *
 * People, services (bots, gateways, notification senders) and device-like entities (a printer, a
 * door sensor, a build machine) are all first-class principals of the IMPP model (RFC 2778 §2:
 * presentities and inbox owners are not required to be human). They share one address syntax,
 * `user@domain`, one key model (devices with identity keys, a signed device list) and one
 * authentication path. What differs is *policy*, so the kind is a separate attribute rather than a
 * different address syntax:
 *
 * - the kind is asserted by the principal's home domain (its directory or provisioning), never
 *   inferred from the name — `printer@example.com` is not a device entity because of its name,
 *   and a person cannot become a "service" by picking a name;
 * - clients can show it (a "bot" badge) and apply policy on it (a service has no human to compare
 *   safety numbers with, so a client may require its keys to be enrolled by PKI instead).
 *
 * `device-entity` is deliberately not called `device`: a *device* in impp is one of a principal's
 * end points holding keys ({@link DeviceAddress}); a device-entity is a principal in its own right.
 */
import { ImppError } from '../errors.js';
import { normalizeAddress, parseAddress, type Address } from './address.js';

/** The closed set of principal kinds. */
export const PRINCIPAL_KINDS = ['person', 'service', 'device-entity'] as const;

/** What kind of entity owns an address: a person, a service (bot), or a device-like entity. */
export type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];

/** A principal: a canonical address and the kind its home domain asserts for it. */
export interface Principal {
  readonly address: Address;
  readonly kind: PrincipalKind;
}

/**
 * Type guard for {@link PrincipalKind}.
 *
 * @example
 * ```ts
 * isPrincipalKind('service'); // true
 * isPrincipalKind('robot');   // false
 * ```
 */
export function isPrincipalKind(value: unknown): value is PrincipalKind {
  return typeof value === 'string' && (PRINCIPAL_KINDS as readonly string[]).includes(value);
}

/**
 * Builds a {@link Principal}, normalizing the address (a string is parsed like
 * {@link parseAddress}) and checking the kind.
 *
 * @throws ImppError `ERR_ADDRESS_INVALID` for a bad address, `ERR_INVALID_ARGUMENT` for a bad kind.
 * @example
 * ```ts
 * makePrincipal('im:Printer-3@example.com', 'device-entity');
 * // { address: { user: 'printer-3', domain: 'example.com' }, kind: 'device-entity' }
 * ```
 */
export function makePrincipal(address: Address | string, kind: PrincipalKind): Principal {
  if (!isPrincipalKind(kind)) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `principal kind must be one of ${PRINCIPAL_KINDS.join(', ')}`,
    );
  }
  const canonical = typeof address === 'string' ? parseAddress(address) : normalizeAddress(address);
  return { address: canonical, kind };
}
