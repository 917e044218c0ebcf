/**
 * The header side of sealed objects: what a server may read.
 *
 * This module parses the outer envelope of every sealed object (version, suite, kind, routing
 * fields, sizes) and writes it. It needs no secret key and can open nothing: the service layer
 * imports only this module from src/seal (architecture brief §7), and a test checks that rule by
 * its imports. The wire format is in docs/formats.md, "Envelope and sealed objects".
 */
import { ImppError, isImppError } from '../errors.js';
import {
  formatAddress,
  formatDeviceAddress,
  parseAddress,
  parseDeviceAddress,
} from '../trust/address.js';
import {
  bytesField,
  decodeCborStrict,
  encodeCbor,
  expectMap,
  textField,
  uintField,
  type CborMap,
  type CborValue,
} from './cbor.js';
import {
  ENVELOPE_VERSION,
  MAX_SEALED_BYTES,
  MAX_TEXT_BYTES,
  MESSAGE_ID_BYTES,
  SealKind,
  SUPPORTED_SUITES,
  type SealKindName,
  type SealKindValue,
} from './constants.js';

/** Envelope map keys common to every kind. */
const K_VERSION = 0;
const K_SUITE = 1;
const K_KIND = 2;

/** Outer fields of a session-sealed object (kinds message and key-distribution). */
export interface SessionEnvelope {
  readonly kind: typeof SealKind.message | typeof SealKind.keyDistribution;
  readonly version: number;
  readonly suite: number;
  /** `user@domain/deviceId` of the one device that can open it. */
  readonly recipientDevice: string;
  /** 16 random bytes chosen by the sender. */
  readonly messageId: Uint8Array;
  /** The sender's one-time X25519 key of the sealed-sender layer. */
  readonly ephemeralKey: Uint8Array;
  readonly ciphertext: Uint8Array;
  /** Deterministic CBOR of the header fields (everything but the ciphertext): bound as AD. */
  readonly headerBytes: Uint8Array;
  /** Size of the whole object in bytes. */
  readonly size: number;
}

/** Outer fields of a presence update (kind presence). */
export interface PresenceEnvelope {
  readonly kind: typeof SealKind.presence;
  readonly version: number;
  readonly suite: number;
  /** `user@domain` of the presentity. */
  readonly presentity: string;
  /** Epoch of the presence key that encrypts it. */
  readonly epoch: number;
  /** Monotonically increasing version of the presentity's presence. */
  readonly presenceVersion: number;
  /** Milliseconds since the epoch, set by the publisher. */
  readonly timestamp: number;
  /** Device id (of the presentity) that signed the update. */
  readonly deviceId: string;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly signature: Uint8Array;
  /** Deterministic CBOR of keys 0..8 (everything but ciphertext and signature). */
  readonly headerBytes: Uint8Array;
  readonly size: number;
}

/** Any parsed sealed object. */
export type ParsedEnvelope = SessionEnvelope | PresenceEnvelope;

/**
 * What a server sees of a sealed object: routing fields only. Message objects show no sender;
 * presence objects show the presentity (which the server routes by anyway).
 */
export type EnvelopeHeader =
  | {
      readonly kind: 'message' | 'keyDistribution';
      readonly version: number;
      readonly suite: number;
      readonly recipientDevice: string;
      readonly messageId: Uint8Array;
      readonly size: number;
    }
  | {
      readonly kind: 'presence';
      readonly version: number;
      readonly suite: number;
      readonly presentity: string;
      readonly epoch: number;
      readonly presenceVersion: number;
      readonly timestamp: number;
      readonly deviceId: string;
      readonly size: number;
    };

const KIND_NAMES: Readonly<Record<SealKindValue, SealKindName>> = {
  1: 'message',
  2: 'presence',
  3: 'keyDistribution',
};

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

function malformed(what: string): ImppError {
  return new ImppError('ERR_SEAL_MALFORMED', `sealed object is malformed: ${what}`);
}

/** Canonical `user@domain/deviceId`, or malformed. */
function deviceField(map: CborMap, key: number): string {
  const text = textField(map, key, MAX_TEXT_BYTES);
  try {
    const parsed = parseDeviceAddress(text);
    if (!DEVICE_ID.test(parsed.deviceId) || formatDeviceAddress(parsed) !== text) {
      throw malformed('device address not canonical');
    }
  } catch (e) {
    if (isImppError(e, 'ERR_SEAL_MALFORMED')) throw e;
    throw malformed('device address');
  }
  return text;
}

function addressField(map: CborMap, key: number): string {
  const text = textField(map, key, MAX_TEXT_BYTES);
  try {
    if (formatAddress(parseAddress(text)) !== text || text.includes('/')) {
      throw malformed('address not canonical');
    }
  } catch (e) {
    if (isImppError(e, 'ERR_SEAL_MALFORMED')) throw e;
    throw malformed('address');
  }
  return text;
}

/**
 * Checks version, suite and kind, in that order, before anything else is interpreted: an
 * unknown value is `ERR_SEAL_UNSUPPORTED`, never a fallback to something we know.
 */
function checkVersionSuiteKind(map: CborMap): SealKindValue {
  const version = map.get(K_VERSION);
  if (typeof version !== 'number') throw malformed('version');
  if (version !== ENVELOPE_VERSION) {
    throw new ImppError('ERR_SEAL_UNSUPPORTED', 'unsupported sealed object version');
  }
  const suite = map.get(K_SUITE);
  if (typeof suite !== 'number') throw malformed('suite');
  if (!SUPPORTED_SUITES.includes(suite)) {
    throw new ImppError('ERR_SEAL_UNSUPPORTED', 'unsupported cipher suite');
  }
  const kind = map.get(K_KIND);
  if (
    kind !== SealKind.message &&
    kind !== SealKind.presence &&
    kind !== SealKind.keyDistribution
  ) {
    throw new ImppError('ERR_SEAL_UNSUPPORTED', 'unsupported sealed object kind');
  }
  return kind;
}

/**
 * Parses a sealed object's envelope strictly (size bounded before decoding, deterministic CBOR,
 * exact key sets, typed fields). Throws `ERR_SEAL_TOO_LARGE`, `ERR_SEAL_MALFORMED` or
 * `ERR_SEAL_UNSUPPORTED`. Nothing here is authenticated yet: opening is what authenticates.
 *
 * @example
 * ```ts
 * const env = parseEnvelope(bytes);
 * if (env.kind === SealKind.presence) fanOut(env.presentity, bytes);
 * ```
 */
export function parseEnvelope(bytes: Uint8Array): ParsedEnvelope {
  return parseChecked(bytes, true);
}

const NO_HEADER_BYTES = new Uint8Array(0);

/**
 * {@link parseEnvelope} with every check; `withHeaderBytes` false skips only re-encoding the
 * authenticated header, which nothing that merely routes the object needs.
 */
function parseChecked(bytes: Uint8Array, withHeaderBytes: boolean): ParsedEnvelope {
  const value = decodeCborStrict(bytes, MAX_SEALED_BYTES);
  if (!(value instanceof Map)) throw malformed('expected a map');
  const kind = checkVersionSuiteKind(value);
  const version = ENVELOPE_VERSION;
  const suite = value.get(K_SUITE) as number;
  if (kind === SealKind.presence) {
    const m = expectMap(value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const deviceId = textField(m, 7, 64);
    if (!DEVICE_ID.test(deviceId)) throw malformed('device id');
    return {
      kind,
      version,
      suite,
      presentity: addressField(m, 3),
      epoch: uintField(m, 4),
      presenceVersion: uintField(m, 5),
      timestamp: uintField(m, 6),
      deviceId,
      nonce: bytesField(m, 8, 24),
      ciphertext: bytesField(m, 9, undefined, MAX_SEALED_BYTES),
      signature: bytesField(m, 10, 64),
      headerBytes: withHeaderBytes ? encodeCbor(withoutKeys(m, [9, 10])) : NO_HEADER_BYTES,
      size: bytes.length,
    };
  }
  const m = expectMap(value, [0, 1, 2, 3, 4, 5, 6]);
  return {
    kind,
    version,
    suite,
    recipientDevice: deviceField(m, 3),
    messageId: bytesField(m, 4, MESSAGE_ID_BYTES),
    ephemeralKey: bytesField(m, 5, 32),
    ciphertext: bytesField(m, 6, undefined, MAX_SEALED_BYTES),
    headerBytes: withHeaderBytes ? encodeCbor(withoutKeys(m, [6])) : NO_HEADER_BYTES,
    size: bytes.length,
  };
}

function withoutKeys(map: CborMap, drop: readonly number[]): CborMap {
  return new Map([...map].filter(([k]) => !drop.includes(k)));
}

/**
 * The server's view of a sealed object: kind, routing fields and size, never a payload byte.
 *
 * @example
 * ```ts
 * const h = readEnvelopeHeader(frame);
 * if (h.kind !== 'presence') route(h.recipientDevice, h.messageId, frame);
 * ```
 */
export function readEnvelopeHeader(bytes: Uint8Array): EnvelopeHeader {
  const env = parseChecked(bytes, false);
  if (env.kind === SealKind.presence) {
    return {
      kind: 'presence',
      version: env.version,
      suite: env.suite,
      presentity: env.presentity,
      epoch: env.epoch,
      presenceVersion: env.presenceVersion,
      timestamp: env.timestamp,
      deviceId: env.deviceId,
      size: env.size,
    };
  }
  return {
    kind: KIND_NAMES[env.kind] as 'message' | 'keyDistribution',
    version: env.version,
    suite: env.suite,
    recipientDevice: env.recipientDevice,
    messageId: env.messageId,
    size: env.size,
  };
}

/** Header map (keys 0..5) of a session-sealed object, as bound into its AEAD AD. */
export function sessionHeaderMap(
  kind: typeof SealKind.message | typeof SealKind.keyDistribution,
  suite: number,
  recipientDevice: string,
  messageId: Uint8Array,
  ephemeralKey: Uint8Array,
): Map<number, CborValue> {
  return new Map<number, CborValue>([
    [0, ENVELOPE_VERSION],
    [1, suite],
    [2, kind],
    [3, recipientDevice],
    [4, messageId],
    [5, ephemeralKey],
  ]);
}

/** Header map (keys 0..8) of a presence update, as bound into its AD and signature. */
export function presenceHeaderMap(fields: {
  suite: number;
  presentity: string;
  epoch: number;
  presenceVersion: number;
  timestamp: number;
  deviceId: string;
  nonce: Uint8Array;
}): Map<number, CborValue> {
  return new Map<number, CborValue>([
    [0, ENVELOPE_VERSION],
    [1, fields.suite],
    [2, SealKind.presence],
    [3, fields.presentity],
    [4, fields.epoch],
    [5, fields.presenceVersion],
    [6, fields.timestamp],
    [7, fields.deviceId],
    [8, fields.nonce],
  ]);
}
