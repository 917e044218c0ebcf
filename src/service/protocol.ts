/**
 * The client protocol's frame types, limits and body readers (docs/protocol.md, "Client
 * protocol"). The frame numbers live in src/protocol/frames.ts, shared with the client SDK.
 */
import { ImppError, type ImppErrorCode } from '../errors.js';
import type { CborValue } from '../transport/cbor-strict.js';

export { ClientFrame } from '../protocol/frames.js';

/**
 * Limits of the client protocol (besides the transport's).
 *
 * @example
 * ```ts
 * bytes(body, 'object', 1, PROTOCOL_LIMITS.maxObjectBytes);
 * ```
 */
export const PROTOCOL_LIMITS = {
  /** Largest sealed object accepted in SEND or PUBLISH (bytes; the seal layer's MAX_SEALED_BYTES). */
  maxObjectBytes: 256 * 1024,
  /** One-time prekeys per ADD_PREKEYS / REGISTER. */
  maxPrekeysPerUpload: 100,
  /** Message ids per ACK. */
  maxAckIds: 256,
  /** Objects pushed per DELIVER batch at login (then more after ACKs). */
  deliverBatch: 64,
  /** Largest signed device list or enrolment statement accepted (bytes). */
  maxTrustObjectBytes: 64 * 1024,
  /** Largest request id. */
  maxRequestId: 2 ** 32 - 1,
  /**
   * Per-session token bucket for the costly requests (GET_BUNDLES hands out one-time prekeys,
   * GET_LOG signs a tree head and builds proofs), below the transport's frame rate so a flood
   * is answered with `ERR_RATE_LIMITED` errors while the connection stays open (T25).
   */
  costlyRequestRate: 50,
  /** Burst of that bucket (costly requests accepted back to back). */
  costlyRequestBurst: 200,
  /** Active (unrevoked) devices per account; a device list holds at most 64 anyway. */
  maxDevicesPerAccount: 64,
} as const;

export { DEVICE_BINDING_LABEL } from '../protocol/frames.js';

/** A request body after the shape check: a map with an `id`. */
export type Body = { readonly [key: string]: CborValue };

/** Throws ERR_PROTOCOL naming the field. */
export function bad(field: string, expected: string): never {
  throw new ImppError('ERR_PROTOCOL', `${field}: expected ${expected}`);
}

/**
 * Reads a frame body as a map.
 *
 * @example
 * ```ts
 * const b = asBody(frame.body);
 * ```
 */
export function asBody(value: CborValue): Body {
  if (
    value === null ||
    typeof value !== 'object' ||
    Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    bad('body', 'a map');
  }
  return value as Body;
}

/**
 * A text field of at most `max` characters.
 *
 * @example
 * ```ts
 * const who = text(body, 'address', 512);
 * ```
 */
export function text(body: Body, field: string, max: number): string {
  const v = body[field];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) bad(field, `text of 1..${max}`);
  return v;
}

/**
 * A byte-string field of `min`..`max` bytes.
 *
 * @example
 * ```ts
 * const key = bytes(body, 'identityKey', 32, 32);
 * ```
 */
export function bytes(body: Body, field: string, min: number, max: number): Uint8Array {
  const v = body[field];
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) {
    bad(field, `bytes of ${min}..${max}`);
  }
  return v;
}

/**
 * An unsigned integer field up to `max`.
 *
 * @example
 * ```ts
 * const id = uint(body, 'id', 2 ** 32 - 1);
 * ```
 */
export function uint(body: Body, field: string, max: number): number {
  const v = body[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) {
    bad(field, `an integer 0..${max}`);
  }
  return v;
}

/**
 * An array field of at most `max` items.
 *
 * @example
 * ```ts
 * const ids = list(body, 'ids', 256);
 * ```
 */
export function list(body: Body, field: string, max: number): readonly CborValue[] {
  const v = body[field];
  if (!Array.isArray(v) || v.length > max) bad(field, `an array of at most ${max}`);
  return v as readonly CborValue[];
}

/** Error codes that may appear in an ERROR frame (others are reported as ERR_PROTOCOL). */
export const WIRE_ERROR_CODES: readonly ImppErrorCode[] = [
  'ERR_PROTOCOL',
  'ERR_NOT_AUTHORIZED',
  'ERR_NOT_FOUND',
  'ERR_CONFLICT',
  'ERR_QUOTA_EXCEEDED',
  'ERR_RATE_LIMITED',
  'ERR_DEVICE_LIST_INVALID',
  'ERR_SEAL_MALFORMED',
  'ERR_SEAL_UNSUPPORTED',
  'ERR_SEAL_TOO_LARGE',
  'ERR_SEAL_ROLLBACK',
  'ERR_INVALID_ARGUMENT',
  'ERR_ADDRESS_INVALID',
  'ERR_DOMAIN_NOT_SERVED',
  'ERR_STORAGE',
  // A look-up of another domain that did not answer in time or could not be reached
  // (RemoteRouter.devices / bundles): the session itself stays open.
  'ERR_TIMEOUT',
  'ERR_CONNECTION_CLOSED',
];
