/**
 * Device identities: each device of a principal holds one Ed25519 identity key (RFC 8032) for its
 * whole life. Everything that binds an address to keys (device lists, safety numbers, enrolment
 * statements, the key log) is built from the public {@link DeviceIdentity} record defined here.
 *
 * Encoding of a public record (deterministic CBOR, see canonical.ts):
 * `[version = 1, "user@domain/deviceId", identityKey (32 bytes), created (ms since epoch)]`.
 *
 * Key fingerprint: `SHA-256(canonical ["impp/key-fingerprint/v1", 1, "ed25519", identityKey])`,
 * shown as 16 groups of 4 lower-case hex digits. The version and the algorithm name are hashed
 * in so a future key type or fingerprint scheme can never produce a colliding display string.
 */
import {
  ED25519_PUBLIC_KEY_BYTES,
  assertSigningPublicKey,
  generateSigningKeyPair,
  sha256,
  toHex,
  type SigningKeyPair,
} from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import { formatDeviceAddress, parseDeviceAddress, type DeviceAddress } from './address.js';
import { FieldReader, decodeCanonical, encodeCanonical } from './canonical.js';

/** Format version of an encoded {@link DeviceIdentity}. */
export const DEVICE_IDENTITY_VERSION = 1;
/** Domain-separation label hashed into every key fingerprint. */
export const KEY_FINGERPRINT_LABEL = 'impp/key-fingerprint/v1';
/** Byte length of a key fingerprint (SHA-256). */
export const KEY_FINGERPRINT_BYTES = 32;

/** The public record of one device: who it belongs to, its identity key, when it was made. */
export interface DeviceIdentity {
  readonly device: DeviceAddress;
  /** Ed25519 public key, 32 bytes. */
  readonly identityKey: Uint8Array;
  /** Creation time, milliseconds since the Unix epoch. */
  readonly created: number;
}

/** A freshly generated device: its public record and the key pair (secret half redacted). */
export interface GeneratedDeviceIdentity {
  readonly identity: DeviceIdentity;
  readonly keyPair: SigningKeyPair;
}

/** Checks a millisecond timestamp: a non-negative safe integer. */
export function assertTimestamp(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${field} must be milliseconds since the epoch`);
  }
  return value;
}

/**
 * Generates a device identity key and its public record.
 *
 * @example
 * ```ts
 * const { identity, keyPair } = generateDeviceIdentity(parseDeviceAddress('alice@example.com/phone'));
 * ```
 */
export function generateDeviceIdentity(
  device: DeviceAddress,
  options: { now?: number; seed?: Uint8Array } = {},
): GeneratedDeviceIdentity {
  const created = assertTimestamp(options.now ?? Date.now(), 'now');
  const keyPair = generateSigningKeyPair(options.seed);
  // Round-trip the address so a malformed one is refused here, not when someone parses it later.
  const canonicalDevice = parseDeviceAddress(formatDeviceAddress(device));
  return {
    identity: { device: canonicalDevice, identityKey: keyPair.publicKey, created },
    keyPair,
  };
}

/**
 * Encodes a public device record (deterministic CBOR, version first).
 *
 * @example
 * ```ts
 * const bytes = encodeDeviceIdentity(identity);
 * const again = decodeDeviceIdentity(bytes);
 * ```
 */
export function encodeDeviceIdentity(identity: DeviceIdentity): Uint8Array {
  return encodeCanonical([
    DEVICE_IDENTITY_VERSION,
    formatDeviceAddress(identity.device),
    assertSigningPublicKey(identity.identityKey, 'identityKey'),
    assertTimestamp(identity.created, 'created'),
  ]);
}

/**
 * Decodes a public device record, refusing unknown versions and malformed fields with
 * `ERR_INVALID_ARGUMENT`.
 *
 * @example
 * ```ts
 * const identity = decodeDeviceIdentity(bytesFromDirectory);
 * ```
 */
export function decodeDeviceIdentity(bytes: Uint8Array): DeviceIdentity {
  const what = 'device identity';
  const r = FieldReader.of(
    decodeCanonical(bytes, 'ERR_INVALID_ARGUMENT', what),
    4,
    'ERR_INVALID_ARGUMENT',
    what,
  );
  const version = r.uint('version');
  if (version !== DEVICE_IDENTITY_VERSION) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${what}: unsupported version ${version}`);
  }
  const deviceText = r.text('device');
  const identityKey = r.bytes('identityKey', ED25519_PUBLIC_KEY_BYTES);
  const created = r.uint('created');
  // Refuse exactly what encodeDeviceIdentity refuses, with this function's one error code, and
  // only the canonical spelling of the device: one record, one encoding.
  let device: DeviceAddress;
  try {
    device = parseDeviceAddress(deviceText);
    assertSigningPublicKey(identityKey, 'identityKey');
  } catch (cause) {
    if (!isImppError(cause)) throw cause;
    throw new ImppError('ERR_INVALID_ARGUMENT', `${what}: device or identity key is malformed`, {
      cause,
    });
  }
  if (formatDeviceAddress(device) !== deviceText) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${what}: device address is not canonical`);
  }
  return { device, identityKey, created };
}

/**
 * The fingerprint of an Ed25519 identity key: SHA-256 over its versioned, labelled encoding.
 *
 * @example
 * ```ts
 * formatFingerprint(keyFingerprint(identity.identityKey)); // '3f0a 91c2 …'
 * ```
 */
export function keyFingerprint(identityKey: Uint8Array): Uint8Array {
  const key = assertSigningPublicKey(identityKey, 'identityKey');
  return sha256(encodeCanonical([KEY_FINGERPRINT_LABEL, 1, 'ed25519', key]));
}

/**
 * Shows a fingerprint as groups of four lower-case hex digits separated by spaces.
 *
 * @example
 * ```ts
 * formatFingerprint(keyFingerprint(key)); // 16 groups: 'a1b2 c3d4 … 9f00'
 * ```
 */
export function formatFingerprint(fingerprint: Uint8Array): string {
  if (!(fingerprint instanceof Uint8Array) || fingerprint.length === 0) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'fingerprint must be non-empty bytes');
  }
  return (toHex(fingerprint).match(/.{1,4}/g) ?? []).join(' ');
}

/**
 * `true` when two identity keys are byte-for-byte the same (public values: a plain compare).
 *
 * @example
 * ```ts
 * if (!sameKey(seen.identityKey, offered.identityKey)) warnKeyChanged();
 * ```
 */
export function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Byte-wise lexicographic order of two byte strings (shorter first on a common prefix); the
 * order used wherever a set of keys is hashed or signed.
 *
 * @example
 * ```ts
 * keys.sort(compareBytes);
 * ```
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
