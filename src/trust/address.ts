/**
 * Addresses of principals and devices. PROVISIONAL: a helper is hardening this module (IDNA,
 * im:/pres: URIs per RFC 3859/3860/3861, property tests). The exported names and shapes below are
 * the contract other modules rely on.
 */
import { ImppError } from '../errors.js';

/** A principal's address `user@domain` in canonical form (domain lower-case A-labels). */
export interface Address {
  readonly user: string;
  readonly domain: string;
}

/** One device of a principal: the address plus a device id (1..64 chars of [A-Za-z0-9_-]). */
export interface DeviceAddress {
  readonly address: Address;
  readonly deviceId: string;
}

/** Parses `user@domain`, `im:user@domain` or `pres:user@domain` into a canonical {@link Address}. */
export function parseAddress(input: string): Address {
  const bare = input.replace(/^(im|pres):/i, '');
  const at = bare.lastIndexOf('@');
  if (at <= 0 || at === bare.length - 1) {
    throw new ImppError('ERR_ADDRESS_INVALID', 'address must have the form user@domain');
  }
  return { user: bare.slice(0, at), domain: bare.slice(at + 1).toLowerCase() };
}

/** Canonical string form `user@domain`. */
export function formatAddress(address: Address): string {
  return `${address.user}@${address.domain}`;
}

/** Canonical string form of a device: `user@domain/deviceId`. */
export function formatDeviceAddress(device: DeviceAddress): string {
  return `${formatAddress(device.address)}/${device.deviceId}`;
}

/** Parses `user@domain/deviceId`. */
export function parseDeviceAddress(input: string): DeviceAddress {
  const slash = input.lastIndexOf('/');
  if (slash <= 0)
    throw new ImppError('ERR_ADDRESS_INVALID', 'device address must be user@domain/deviceId');
  return { address: parseAddress(input.slice(0, slash)), deviceId: input.slice(slash + 1) };
}

/** `true` when both addresses are the same principal. */
export function sameAddress(a: Address, b: Address): boolean {
  return a.user === b.user && a.domain === b.domain;
}
