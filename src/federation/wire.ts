/**
 * The server-to-server link protocol on the wire (docs/protocol.md, "Server-to-server protocol"):
 * its ALPN id, version, frame types, and a strict parser per frame body.
 *
 * Unlike the client protocol, every body is checked strictly: an unknown key, a missing key or a
 * value of the wrong kind is a protocol error. New fields come with a new link version, which
 * both sides must agree on in OPEN/ACCEPT; nothing a side does not understand is accepted.
 */
import { IMPP_ERROR_CODES, type ImppErrorCode, ImppError } from '../errors.js';
import { normalizeDomain } from '../trust/address.js';
import type { CborValue } from '../transport/cbor-strict.js';

/** ALPN protocol id of the link (RFC 7301); a connection that did not agree on it is closed. */
export const FEDERATION_ALPN = 'impp-s2s/1';

/** Link protocol versions this implementation speaks. */
export const LINK_VERSIONS: readonly number[] = Object.freeze([1]);

/** Most versions an OPEN may list. */
export const MAX_OFFERED_LINK_VERSIONS = 16;

/** Link frame types. 0–15 open, prove and close the link; 16 and up carry traffic. */
export const LinkFrameType = Object.freeze({
  OPEN: 0,
  ACCEPT: 1,
  PROOF: 2,
  READY: 3,
  CLOSE: 4,
  PING: 5,
  PONG: 6,
  DATA: 16,
  ACK: 17,
  REJECT: 18,
} as const);

/** Bytes of an object id on the link. */
export const OBJECT_ID_BYTES = 16;
/** Largest `kind` of a DATA frame (what the object is; meanings are defined by routing). */
export const MAX_OBJECT_KIND = 0xffff;
/**
 * DATA kinds that bypass the durable duplicate filter by default: look-ups and their answers
 * (router.ts, kinds 4 and 5). They are answered, not stored, so a repeat costs one more read and
 * nothing else, while recording their random ids would fill the filter for nothing. Replay on a
 * link is stopped by sequence numbers either way.
 */
export const DEFAULT_VOLATILE_KINDS: readonly number[] = Object.freeze([4, 5]);
/** Longest CLOSE or REJECT message kept (characters). */
export const MAX_LINK_MESSAGE = 200;

/** How a side wants the other to prove its domain: the TLS certificate, or the pinned key. */
export type ProofMethod = 'certificate' | 'key';

/** OPEN (initiator → responder). */
export interface OpenBody {
  readonly versions: readonly number[];
  /** The initiator's domain: the one it claims and must prove. */
  readonly from: string;
  /** The domain the initiator wants to reach (the responder must prove exactly this one). */
  readonly to: string;
  /** How the initiator wants the responder to prove `to`. */
  readonly want: ProofMethod;
  /** Unacknowledged DATA frames the initiator accepts from the responder. */
  readonly window: number;
  /** Largest frame payload the initiator accepts once the link is open. */
  readonly maxFrameBytes: number;
}

/** ACCEPT (responder → initiator). */
export interface AcceptBody {
  readonly version: number;
  /** How the responder wants the initiator to prove `from`. */
  readonly want: ProofMethod;
  readonly window: number;
  readonly maxFrameBytes: number;
  /** The responder's domain-key proof, present exactly when the initiator wanted `key`. */
  readonly proof: Uint8Array | null;
}

/** PROOF (initiator → responder), only when the responder wanted `key`. */
export interface ProofBody {
  readonly proof: Uint8Array;
}

/** DATA: one object crossing the link. */
export interface DataBody {
  /** Per link and direction, starting at 1, each frame exactly one more than the last. */
  readonly seq: number;
  /** The object's id, unique per origin domain; duplicates are dropped by the receiver. */
  readonly id: Uint8Array;
  /** The domain the object comes from. Must be the authenticated peer. */
  readonly origin: string;
  readonly kind: number;
  readonly body: CborValue;
}

/** ACK / REJECT: the receiver's answer to one DATA frame. */
export interface AckBody {
  readonly seq: number;
}
export interface RejectBody {
  readonly seq: number;
  readonly code: ImppErrorCode;
  readonly message: string;
}

/** CLOSE: why the sender closes; `code` is null for an ordinary goodbye. */
export interface LinkCloseBody {
  readonly code: ImppErrorCode | null;
  readonly message: string;
}

type CborMap = Readonly<Record<string, CborValue>>;

function bad(message: string): ImppError {
  return new ImppError('ERR_PROTOCOL', message);
}

function mapOf(body: CborValue, what: string, keys: readonly string[]): CborMap {
  if (
    body === null ||
    typeof body !== 'object' ||
    Array.isArray(body) ||
    body instanceof Uint8Array
  ) {
    throw bad(`${what} body must be a map`);
  }
  const map = body as CborMap;
  for (const key of Object.keys(map)) {
    if (!keys.includes(key)) throw bad(`${what} has an unknown field`);
  }
  return map;
}

function uint(map: CborMap, key: string, what: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  const v = map[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw bad(`${what}.${key} must be an integer in ${min}..${max}`);
  }
  return v;
}

function domain(map: CborMap, key: string, what: string): string {
  const v = map[key];
  if (typeof v !== 'string') throw bad(`${what}.${key} must be a domain name`);
  let name: string;
  try {
    name = normalizeDomain(v);
  } catch {
    throw bad(`${what}.${key} must be a domain name`);
  }
  // Only the canonical spelling: two spellings of one domain would be two identities in logs.
  if (name !== v) throw bad(`${what}.${key} must be a normalized domain name`);
  return name;
}

function method(map: CborMap, key: string, what: string): ProofMethod {
  const v = map[key];
  if (v !== 'certificate' && v !== 'key')
    throw bad(`${what}.${key} must be "certificate" or "key"`);
  return v;
}

function bytes(map: CborMap, key: string, what: string, length?: number): Uint8Array {
  const v = map[key];
  if (!(v instanceof Uint8Array) || (length !== undefined && v.length !== length)) {
    throw bad(`${what}.${key} must be ${length === undefined ? '' : `${length} `}bytes`);
  }
  return v;
}

function code(map: CborMap, key: string, what: string): ImppErrorCode {
  const v = map[key];
  if (typeof v !== 'string' || !(IMPP_ERROR_CODES as readonly string[]).includes(v)) {
    throw bad(`${what}.${key} must be a known error code`);
  }
  return v as ImppErrorCode;
}

function message(map: CborMap, key: string): string {
  const v = map[key];
  return typeof v === 'string' ? v.slice(0, MAX_LINK_MESSAGE) : '';
}

/** Frame limits a side may announce (bytes): the pre-auth floor up to 16 MiB. */
const FRAME_BYTES_MIN = 4096;
const FRAME_BYTES_MAX = 16 * 1024 * 1024;
const WINDOW_MAX = 65_536;

/**
 * Parses OPEN. Throws `ERR_PROTOCOL`.
 *
 * @example
 * ```ts
 * const open = parseOpen(frame.body); // open.from is the domain to authenticate
 * ```
 */
export function parseOpen(body: CborValue): OpenBody {
  const what = 'OPEN';
  const map = mapOf(body, what, ['versions', 'from', 'to', 'want', 'window', 'maxFrameBytes']);
  const versions = map.versions;
  if (
    !Array.isArray(versions) ||
    versions.length === 0 ||
    versions.length > MAX_OFFERED_LINK_VERSIONS ||
    !(versions as readonly CborValue[]).every(
      (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffff,
    )
  ) {
    throw bad(`OPEN.versions must list 1 to ${MAX_OFFERED_LINK_VERSIONS} versions in 1..65535`);
  }
  return {
    versions: versions as readonly number[],
    from: domain(map, 'from', what),
    to: domain(map, 'to', what),
    want: method(map, 'want', what),
    window: uint(map, 'window', what, 1, WINDOW_MAX),
    maxFrameBytes: uint(map, 'maxFrameBytes', what, FRAME_BYTES_MIN, FRAME_BYTES_MAX),
  };
}

/** Parses ACCEPT. Throws `ERR_PROTOCOL`. */
export function parseAccept(body: CborValue): AcceptBody {
  const what = 'ACCEPT';
  const map = mapOf(body, what, ['version', 'want', 'window', 'maxFrameBytes', 'proof']);
  return {
    version: uint(map, 'version', what, 1, 0xffff),
    want: method(map, 'want', what),
    window: uint(map, 'window', what, 1, WINDOW_MAX),
    maxFrameBytes: uint(map, 'maxFrameBytes', what, FRAME_BYTES_MIN, FRAME_BYTES_MAX),
    proof: map.proof === undefined ? null : bytes(map, 'proof', what),
  };
}

/** Parses PROOF. Throws `ERR_PROTOCOL`. */
export function parseProof(body: CborValue): ProofBody {
  return { proof: bytes(mapOf(body, 'PROOF', ['proof']), 'proof', 'PROOF') };
}

/** Parses READY, PING and PONG (empty maps). Throws `ERR_PROTOCOL`. */
export function parseEmpty(body: CborValue, what: string): void {
  mapOf(body, what, []);
}

/** Parses DATA. Throws `ERR_PROTOCOL`. */
export function parseData(body: CborValue): DataBody {
  const what = 'DATA';
  const map = mapOf(body, what, ['seq', 'id', 'origin', 'kind', 'body']);
  if (!('body' in map)) throw bad('DATA.body is missing');
  return {
    seq: uint(map, 'seq', what, 1),
    id: bytes(map, 'id', what, OBJECT_ID_BYTES),
    origin: domain(map, 'origin', what),
    kind: uint(map, 'kind', what, 0, MAX_OBJECT_KIND),
    body: map.body ?? null,
  };
}

/** Parses ACK. Throws `ERR_PROTOCOL`. */
export function parseAck(body: CborValue): AckBody {
  return { seq: uint(mapOf(body, 'ACK', ['seq']), 'seq', 'ACK', 1) };
}

/** Parses REJECT. Throws `ERR_PROTOCOL`. */
export function parseReject(body: CborValue): RejectBody {
  const map = mapOf(body, 'REJECT', ['seq', 'code', 'message']);
  return {
    seq: uint(map, 'seq', 'REJECT', 1),
    code: code(map, 'code', 'REJECT'),
    message: message(map, 'message'),
  };
}

/**
 * Parses CLOSE leniently: it is the last word of a peer that is going away, so a malformed one
 * still closes, as a protocol error.
 */
export function parseLinkClose(body: CborValue): LinkCloseBody {
  try {
    const map = mapOf(body, 'CLOSE', ['code', 'message']);
    return {
      code: map.code === null ? null : code(map, 'code', 'CLOSE'),
      message: message(map, 'message'),
    };
  } catch {
    return { code: 'ERR_PROTOCOL', message: 'peer closed with a malformed CLOSE frame' };
  }
}
