/**
 * The signed device list of a principal: which devices (device id + Ed25519 identity key) speak
 * for an address. Contacts seal to every device on the list, so a device the server slips in
 * would read everything; this module makes every change to the list signed by a device the
 * contact already trusts, and makes every addition visible.
 *
 * Rules (checked by {@link verifyDeviceList}):
 * - the first list (genesis) holds exactly one device and is signed by it;
 * - every later list carries a strictly larger `counter` and is signed by a device that was on
 *   the *previous accepted* list, with the key that list gave it (so a list cannot vouch for
 *   itself); an older or equal counter is a rollback and refused, unless the bytes are identical
 *   to the list already held (a harmless re-delivery);
 * - device ids are unique and in ascending order, keys are distinct, 1..64 devices.
 *
 * Wire form (deterministic CBOR): `[1, "user@domain", counter, issued, [[deviceId, key], …],
 * signerDeviceId, signature]`. The signature covers
 * `["impp/device-list/v1", 1, "user@domain", counter, issued, [[deviceId, key], …], signerDeviceId]`.
 */
import {
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SIGNATURE_BYTES,
  assertSigningPublicKey,
  sign,
  verify,
  type SecretBytes,
} from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import {
  formatAddress,
  parseAddress,
  parseDeviceAddress,
  sameAddress,
  type Address,
} from './address.js';
import {
  FieldReader,
  decodeCanonical,
  encodeCanonical,
  signingInput,
  type CanonicalValue,
} from './canonical.js';
import { assertTimestamp, compareBytes, sameKey } from './identity.js';

/** Format version of a device list. */
export const DEVICE_LIST_VERSION = 1;
/** Domain-separation label of device-list signatures. */
export const DEVICE_LIST_LABEL = 'impp/device-list/v1';
/** Largest number of devices on one list. */
export const DEVICE_LIST_MAX_DEVICES = 64;

/** One device on a list. */
export interface DeviceEntry {
  readonly deviceId: string;
  /** Ed25519 identity public key, 32 bytes. */
  readonly identityKey: Uint8Array;
}

/** A parsed, signed device list. */
export interface DeviceList {
  readonly address: Address;
  /** Strictly increasing from one accepted list to the next (starts at 1 or higher). */
  readonly counter: number;
  /** When the list was signed, ms since the epoch (informational; `counter` orders lists). */
  readonly issued: number;
  /** Devices in ascending order of `deviceId`. */
  readonly devices: readonly DeviceEntry[];
  /** Device id of the device that signed this list. */
  readonly signer: string;
  readonly signature: Uint8Array;
  /** The exact bytes this list was decoded from or encoded to. */
  readonly bytes: Uint8Array;
}

/** What changed between the previous accepted list and a newly accepted one. */
export interface DeviceListUpdate {
  readonly list: DeviceList;
  /** Devices whose id was not on the previous list: surface these to the user. */
  readonly added: readonly DeviceEntry[];
  /** Devices no longer on the list. */
  readonly removed: readonly DeviceEntry[];
  /** Device ids that stayed but now carry a different key (treat as removal plus addition). */
  readonly replaced: readonly DeviceEntry[];
  /** `true` when the list is byte-for-byte the one already held. */
  readonly unchanged: boolean;
}

const what = 'device list';

function invalid(message: string): never {
  throw new ImppError('ERR_DEVICE_LIST_INVALID', `${what}: ${message}`);
}

function checkDeviceId(address: Address, deviceId: string): void {
  // Only the address module decides what a device id may be: parse the device address and
  // insist that it gives back exactly the id we were handed.
  let parsed: string;
  try {
    parsed = parseDeviceAddress(`${formatAddress(address)}/${deviceId}`).deviceId;
  } catch (cause) {
    if (isImppError(cause)) invalid('a device id is malformed');
    throw cause;
  }
  if (parsed !== deviceId) invalid('a device id is malformed');
}

function checkDevices(address: Address, devices: readonly DeviceEntry[]): void {
  if (devices.length === 0 || devices.length > DEVICE_LIST_MAX_DEVICES) {
    invalid(`must hold 1..${DEVICE_LIST_MAX_DEVICES} devices`);
  }
  for (let i = 0; i < devices.length; i++) {
    const d = devices[i] as DeviceEntry;
    checkDeviceId(address, d.deviceId);
    if (
      !(d.identityKey instanceof Uint8Array) ||
      d.identityKey.length !== ED25519_PUBLIC_KEY_BYTES
    ) {
      invalid('every identity key must be 32 bytes');
    }
    const prev = devices[i - 1];
    if (prev !== undefined && !(prev.deviceId < d.deviceId)) {
      invalid('device ids must be unique and in ascending order');
    }
  }
  const keys = devices.map((d) => d.identityKey).sort(compareBytes);
  for (let i = 1; i < keys.length; i++) {
    if (compareBytes(keys[i - 1] as Uint8Array, keys[i] as Uint8Array) === 0) {
      invalid('two devices share an identity key');
    }
  }
}

function tbsFields(
  address: Address,
  counter: number,
  issued: number,
  devices: readonly DeviceEntry[],
  signer: string,
): CanonicalValue[] {
  return [
    DEVICE_LIST_VERSION,
    formatAddress(address),
    counter,
    issued,
    devices.map((d) => [d.deviceId, d.identityKey]),
    signer,
  ];
}

/** Parameters of {@link createDeviceList}. */
export interface CreateDeviceListOptions {
  readonly address: Address;
  readonly counter: number;
  readonly devices: readonly DeviceEntry[];
  /** The signing device: on genesis the only device; later a device of the previous list. */
  readonly signer: { readonly deviceId: string; readonly secretKey: SecretBytes };
  readonly issued?: number;
}

/**
 * Builds and signs a device list. Devices are sorted by id here; checks match verification.
 *
 * @example
 * ```ts
 * const genesis = createDeviceList({
 *   address, counter: 1,
 *   devices: [{ deviceId: 'phone', identityKey: phone.publicKey }],
 *   signer: { deviceId: 'phone', secretKey: phone.secretKey },
 * });
 * ```
 */
export function createDeviceList(options: CreateDeviceListOptions): DeviceList {
  const address = parseAddress(formatAddress(options.address));
  const counter = options.counter;
  if (!Number.isSafeInteger(counter) || counter < 1) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'counter must be a positive integer');
  }
  const issued = assertTimestamp(options.issued ?? Date.now(), 'issued');
  const devices = options.devices
    .map((d) => ({
      deviceId: d.deviceId,
      identityKey: assertSigningPublicKey(d.identityKey, 'identityKey'),
    }))
    .sort((x, y) => (x.deviceId < y.deviceId ? -1 : x.deviceId > y.deviceId ? 1 : 0));
  checkDevices(address, devices);
  const signer = options.signer.deviceId;
  checkDeviceId(address, signer);
  const fields = tbsFields(address, counter, issued, devices, signer);
  const signature = sign(options.signer.secretKey, signingInput(DEVICE_LIST_LABEL, fields));
  const bytes = encodeCanonical([...fields, signature]);
  return { address, counter, issued, devices, signer, signature, bytes };
}

/**
 * Parses a device list without checking its signature or its relation to earlier lists. Only
 * {@link verifyDeviceList} decides whether a list is acceptable.
 *
 * @example
 * ```ts
 * const unverified = decodeDeviceList(bytes); // e.g. to show who claims to have signed it
 * ```
 */
export function decodeDeviceList(bytes: Uint8Array): DeviceList {
  const code = 'ERR_DEVICE_LIST_INVALID';
  const r = FieldReader.of(decodeCanonical(bytes, code, what), 7, code, what);
  const version = r.uint('version');
  if (version !== DEVICE_LIST_VERSION) invalid(`unsupported version ${version}`);
  let address: Address;
  const addressText = r.text('address');
  try {
    address = parseAddress(addressText);
  } catch (cause) {
    if (isImppError(cause)) invalid('address is malformed');
    throw cause;
  }
  if (formatAddress(address) !== addressText) invalid('address is not in canonical form');
  const counter = r.uint('counter');
  if (counter < 1) invalid('counter must be at least 1');
  const issued = r.uint('issued');
  const devices = r.array('devices', DEVICE_LIST_MAX_DEVICES).map((item, i) => {
    const d = FieldReader.of(item, 2, code, `${what} device ${i}`);
    return {
      deviceId: d.text('deviceId', 64),
      identityKey: d.bytes('identityKey', ED25519_PUBLIC_KEY_BYTES),
    };
  });
  checkDevices(address, devices);
  const signer = r.text('signer', 64);
  checkDeviceId(address, signer);
  const signature = r.bytes('signature', ED25519_SIGNATURE_BYTES);
  return { address, counter, issued, devices, signer, signature, bytes: Uint8Array.from(bytes) };
}

/** Options of {@link verifyDeviceList}. */
export interface VerifyDeviceListOptions {
  /** The address whose list this must be; a list for anyone else is refused. */
  readonly address: Address;
  /** The last list this client accepted for `address`; absent for the first one. */
  readonly previous?: DeviceList;
  /**
   * Without `previous`, `'genesis'` (default) accepts only a first list (one device, signed by
   * itself). `'self-signed'` accepts any list signed by one of its own devices: trust on first
   * use for a contact met after its genesis, weaker, to be confirmed by safety numbers or the
   * key log.
   */
  readonly firstSight?: 'genesis' | 'self-signed';
}

/**
 * Verifies a device list against the previous accepted one and reports what changed.
 * Throws `ERR_DEVICE_LIST_INVALID` for anything unacceptable: bad signature, unknown version,
 * wrong address, rollback, a signer not on the previous list, malformed content.
 *
 * @example
 * ```ts
 * const update = verifyDeviceList(bytes, { address: bob, previous: stored });
 * for (const d of update.added) notify(`Bob added device ${d.deviceId}`);
 * store(update.list);
 * ```
 */
export function verifyDeviceList(
  bytes: Uint8Array,
  options: VerifyDeviceListOptions,
): DeviceListUpdate {
  const list = decodeDeviceList(bytes);
  if (!sameAddress(list.address, options.address)) invalid('list is for another address');
  const previous = options.previous;
  let signerKey: Uint8Array | undefined;
  if (previous === undefined) {
    if ((options.firstSight ?? 'genesis') === 'genesis') {
      const only = list.devices[0];
      if (list.devices.length !== 1 || only?.deviceId !== list.signer) {
        invalid('a first list must hold one device and be signed by it');
      }
      signerKey = only.identityKey;
    } else {
      signerKey = list.devices.find((d) => d.deviceId === list.signer)?.identityKey;
      if (signerKey === undefined) invalid('signer is not on the list');
    }
  } else {
    if (!sameAddress(previous.address, options.address)) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'previous list is for another address');
    }
    if (list.counter <= previous.counter) {
      if (list.counter === previous.counter && sameKey(list.bytes, previous.bytes)) {
        return { list: previous, added: [], removed: [], replaced: [], unchanged: true };
      }
      invalid('counter did not increase (rollback or equivocation)');
    }
    signerKey = previous.devices.find((d) => d.deviceId === list.signer)?.identityKey;
    if (signerKey === undefined) invalid('signer was not on the previous list');
  }
  const tbs = signingInput(
    DEVICE_LIST_LABEL,
    tbsFields(list.address, list.counter, list.issued, list.devices, list.signer),
  );
  if (!verify(signerKey, tbs, list.signature)) invalid('signature does not verify');

  const before = new Map((previous?.devices ?? []).map((d) => [d.deviceId, d]));
  const after = new Map(list.devices.map((d) => [d.deviceId, d]));
  const added = list.devices.filter((d) => !before.has(d.deviceId));
  const removed = (previous?.devices ?? []).filter((d) => !after.has(d.deviceId));
  const replaced = list.devices.filter((d) => {
    const old = before.get(d.deviceId);
    return old !== undefined && !sameKey(old.identityKey, d.identityKey);
  });
  return { list, added, removed, replaced, unchanged: false };
}
