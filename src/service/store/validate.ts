/**
 * Boundary checks shared by every store implementation: tiny asserts that name the field. The
 * service validates first; these keep a buggy caller from writing malformed rows.
 */
import { ImppError } from '../../errors.js';
import { MAX_SEALED_BYTES } from '../../seal/constants.js';
import { readEnvelopeHeader, type EnvelopeHeader } from '../../seal/header.js';
import { MAX_NOTICE_BYTES, decodeDeliveryNotice } from '../../protocol/notice.js';
import {
  formatAddress,
  formatDeviceAddress,
  isValidDeviceId,
  normalizeDomain,
  parseAddress,
  parseDeviceAddress,
} from '../../trust/address.js';
import type { AuditEventRecord, QueuedKind } from './types.js';

function invalid(field: string, rule: string): ImppError {
  return new ImppError('ERR_INVALID_ARGUMENT', `${field}: ${rule}`);
}

/** A canonical `user@domain` string. */
export function assertAddress(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.includes('/'))
    throw invalid(field, 'expected user@domain');
  let canonical: string;
  try {
    canonical = formatAddress(parseAddress(value));
  } catch {
    throw invalid(field, 'expected user@domain');
  }
  if (canonical !== value) throw invalid(field, 'address is not canonical');
  return value;
}

/** A canonical `user@domain/deviceId` string. */
export function assertDeviceAddress(field: string, value: unknown): string {
  if (typeof value !== 'string') throw invalid(field, 'expected user@domain/deviceId');
  let canonical: string;
  try {
    canonical = formatDeviceAddress(parseDeviceAddress(value));
  } catch {
    throw invalid(field, 'expected user@domain/deviceId');
  }
  if (canonical !== value) throw invalid(field, 'device address is not canonical');
  return value;
}

/** A device id (`[A-Za-z0-9_-]{1,64}`). */
export function assertDeviceIdField(field: string, value: unknown): string {
  if (!isValidDeviceId(value)) throw invalid(field, 'expected a device id [A-Za-z0-9_-]{1,64}');
  return value;
}

/** Bytes of an exact length, or within `[min, max]`. */
export function assertBytes(field: string, value: unknown, min: number, max = min): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(field, 'expected bytes');
  if (value.length < min || value.length > max) {
    throw invalid(field, min === max ? `expected ${min} bytes` : `expected ${min}..${max} bytes`);
  }
  return value;
}

/** A sealed object: 1..MAX_SEALED_BYTES bytes. */
export function assertSealed(field: string, value: unknown): Uint8Array {
  return assertBytes(field, value, 1, MAX_SEALED_BYTES);
}

/** A non-negative safe integer no larger than `max`. */
export function assertUint(field: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw invalid(field, `expected an integer 0..${max}`);
  }
  return value;
}

/** A timestamp in milliseconds. */
export function assertTime(field: string, value: unknown): number {
  return assertUint(field, value);
}

/** Largest message id the queue accepts (envelopes use 16 bytes). */
export const MAX_QUEUE_ID_BYTES = 64;

const KINDS: readonly QueuedKind[] = ['message', 'keyDistribution', 'presence', 'notice'];

/** A queue kind. */
export function assertQueuedKind(value: unknown): QueuedKind {
  if (!KINDS.includes(value as QueuedKind)) throw invalid('kind', 'unknown kind');
  return value as QueuedKind;
}

/** An `arrivedFrom` stamp: `null`, or a domain in canonical form. */
export function assertArrivedFrom(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  let canonical: string;
  try {
    canonical = normalizeDomain(value as string);
  } catch {
    throw invalid('arrivedFrom', 'expected a domain');
  }
  if (canonical !== value) throw invalid('arrivedFrom', 'domain is not canonical');
  return canonical;
}

/**
 * A delivery-failure notice for a queue: bounded, and it must decode as a notice of a version
 * this code reads (src/protocol/notice.ts), so the queue cannot be used to carry anything else.
 */
export function assertNotice(value: unknown): Uint8Array {
  const bytes = assertBytes('bytes', value, 1, MAX_NOTICE_BYTES);
  try {
    decodeDeliveryNotice(bytes);
  } catch {
    throw invalid('bytes', 'expected a delivery-failure notice');
  }
  return bytes;
}

/** Detail keys that could only name secrets: refused so a careless caller cannot log one. */
const SECRET_KEY =
  /pass(word|phrase)?|secret|token|private|credential|proof|nonce|salt|ticket|cookie|session.?key|plaintext|payload|body|content/i;

/** Limits of an audit event. */
export const AUDIT_LIMITS = {
  kindBytes: 64,
  textBytes: 512,
  detailKeys: 32,
  detailValueBytes: 512,
} as const;

function shortText(field: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > max) {
    throw invalid(field, `expected text of 1..${max} bytes`);
  }
  return value;
}

/**
 * Checks an audit event: bounded scalar details, and no detail key that names a secret (a key
 * such as `password`, `token`, `nonce` or `payload` is refused outright).
 */
export function assertAuditEvent(event: AuditEventRecord): AuditEventRecord {
  assertTime('at', event.at);
  if (!/^[a-z][a-z0-9_.-]*$/.test(shortText('kind', event.kind, AUDIT_LIMITS.kindBytes))) {
    throw invalid('kind', 'expected a dotted lower-case name');
  }
  if (event.principal !== null) shortText('principal', event.principal, AUDIT_LIMITS.textBytes);
  if (event.source !== null) shortText('source', event.source, AUDIT_LIMITS.textBytes);
  if (!['success', 'failure', 'refused'].includes(event.outcome)) {
    throw invalid('outcome', 'expected success, failure or refused');
  }
  if (typeof event.details !== 'object' || Array.isArray(event.details)) {
    throw invalid('details', 'expected an object');
  }
  const entries = Object.entries(event.details);
  if (entries.length > AUDIT_LIMITS.detailKeys) throw invalid('details', 'too many keys');
  for (const [key, v] of entries) {
    const value: unknown = v;
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(key)) throw invalid('details', 'bad key');
    if (SECRET_KEY.test(key)) throw invalid('details', 'a key names a secret; leave it out');
    if (typeof value === 'string') {
      if (Buffer.byteLength(value) > AUDIT_LIMITS.detailValueBytes) {
        throw invalid('details', 'value too long');
      }
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw invalid('details', 'number not finite');
    } else if (typeof value !== 'boolean' && value !== null) {
      throw invalid('details', 'values must be string, number, boolean or null');
    }
  }
  return event;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Headers parsed by {@link readServiceHeader}, keyed by the very bytes object they were read
 * from. Each is used at most once, by the next {@link assertEnvelope} of the same object.
 */
const serviceHeaders = new WeakMap<Uint8Array, EnvelopeHeader>();

/**
 * Reads a sealed object's header for the service and lets the store's {@link assertEnvelope}
 * of the same bytes object reuse it instead of parsing the envelope a second time (the strict
 * parse is the larger part of a SEND's CPU). The store still checks every indexed field against
 * the header; what it skips is only the repeated decoding of bytes nobody has touched since.
 * Callers must not modify `bytes` between this call and the store write (the session hands the
 * frame's own bytes, which nothing modifies, to the store). A remembered header is used once.
 *
 * @example
 * ```ts
 * const header = readServiceHeader(object); // then store.queue.enqueue({ bytes: object, ... })
 * ```
 */
export function readServiceHeader(bytes: Uint8Array): EnvelopeHeader {
  const header = readEnvelopeHeader(bytes);
  serviceHeaders.set(bytes, header);
  return header;
}

/**
 * Checks that `bytes` is a sealed object (its envelope parses: docs/formats.md §1, §4.1, §5)
 * and that the fields the store indexes it by are the envelope's own, so neither plaintext nor
 * an object filed under the wrong device, id or version can be written. Only the header is read
 * (src/seal/header.ts); nothing is opened. Throws the envelope's `ERR_SEAL_*` error, or
 * `ERR_INVALID_ARGUMENT` when a field disagrees. `original` is the caller's object when `bytes`
 * is a view of it: the one {@link readServiceHeader} may have parsed already (parsing goes to
 * `bytes`, since the CBOR decoder caches a DataView on the object it reads).
 */
export function assertEnvelope(
  bytes: Uint8Array,
  expected:
    | {
        readonly kind: 'message' | 'keyDistribution';
        readonly recipientDevice: string;
        readonly id: Uint8Array;
      }
    | { readonly kind: 'presence'; readonly presentity?: string; readonly version?: number },
  original: Uint8Array = bytes,
): void {
  const header = serviceHeaders.get(original) ?? readEnvelopeHeader(bytes);
  serviceHeaders.delete(original);
  if (header.kind !== expected.kind) throw invalid('bytes', 'envelope kind differs');
  if (header.kind === 'presence') {
    if (expected.kind !== 'presence') return;
    if (expected.presentity !== undefined && header.presentity !== expected.presentity) {
      throw invalid('bytes', 'envelope presentity differs');
    }
    if (expected.version !== undefined && header.presenceVersion !== expected.version) {
      throw invalid('bytes', 'envelope presence version differs');
    }
    return;
  }
  if (expected.kind === 'presence') return;
  if (header.recipientDevice !== expected.recipientDevice) {
    throw invalid('bytes', 'envelope recipient differs');
  }
  if (!sameBytes(header.messageId, expected.id)) throw invalid('bytes', 'envelope id differs');
}
