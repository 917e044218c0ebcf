/**
 * Transport control frames (types 0–15) and protocol version negotiation
 * (docs/protocol.md, "Opening and version negotiation").
 *
 * The client speaks first with HELLO (the versions it supports, highest first or in any order,
 * and the largest frame it accepts); the server answers WELCOME (the version it picked and its
 * limits) or CLOSE with ERR_VERSION_UNSUPPORTED. The server picks the highest version both
 * support and never one below its configured minimum; the client refuses a WELCOME naming a
 * version it did not offer. TLS protects the exchange, so nobody in between can strip versions.
 * Receivers ignore map keys they do not know, so later versions can add fields.
 */
import { type ImppErrorCode, IMPP_ERROR_CODES, ImppError } from '../errors.js';
import type { CborValue } from './cbor-strict.js';
import { HARD_MAX_FRAME_BYTES } from './frame-codec.js';
import { MIN_FRAME_BYTES } from './limits.js';

/** Frame types reserved by the transport. Types 6–15 are reserved; 16 and up are application. */
export const FrameType = Object.freeze({
  HELLO: 0,
  WELCOME: 1,
  PING: 2,
  PONG: 3,
  LIMITS: 4,
  CLOSE: 5,
} as const);

/** Lowest frame type the layer above may use. */
export const FIRST_APPLICATION_FRAME_TYPE = 16;

/** Protocol versions this implementation speaks. */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([1]);

/** Most versions a HELLO may list. */
export const MAX_OFFERED_VERSIONS = 16;

/** Longest CLOSE message sent or kept (characters). */
export const MAX_CLOSE_MESSAGE = 200;

/** HELLO body (client → server). */
export interface HelloBody {
  readonly versions: readonly number[];
  /** Largest frame payload the client accepts from the server. */
  readonly maxFrameBytes: number;
}

/** WELCOME body (server → client). */
export interface WelcomeBody {
  readonly version: number;
  /** Largest frame payload the server accepts now (before authentication). */
  readonly maxFrameBytes: number;
  /** Largest frame payload the server will accept after authentication. */
  readonly authMaxFrameBytes: number;
  readonly preAuthTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly idleTimeoutMs: number;
  readonly frameRate: number;
  readonly frameBurst: number;
}

/** CLOSE body: why the sender is closing; `code` is null for an ordinary goodbye. */
export interface CloseBody {
  readonly code: ImppErrorCode | null;
  readonly message: string;
}

function protocolError(message: string): ImppError {
  return new ImppError('ERR_PROTOCOL', message);
}

function asMap(body: CborValue, what: string): Readonly<Record<string, CborValue>> {
  if (
    body === null ||
    typeof body !== 'object' ||
    Array.isArray(body) ||
    body instanceof Uint8Array
  ) {
    throw protocolError(`${what} body must be a map`);
  }
  return body as Readonly<Record<string, CborValue>>;
}

function uint(map: Readonly<Record<string, CborValue>>, key: string, what: string): number {
  const value = map[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw protocolError(`${what}.${key} must be an unsigned integer`);
  }
  return value;
}

function frameLimit(map: Readonly<Record<string, CborValue>>, key: string, what: string): number {
  const value = uint(map, key, what);
  if (value < MIN_FRAME_BYTES || value > HARD_MAX_FRAME_BYTES) {
    throw protocolError(
      `${what}.${key} must be between ${MIN_FRAME_BYTES} and ${HARD_MAX_FRAME_BYTES}`,
    );
  }
  return value;
}

/**
 * Parses a HELLO body. Throws `ERR_PROTOCOL`.
 *
 * @example
 * ```ts
 * const hello = parseHello({ versions: [1], maxFrameBytes: 1_048_576 });
 * ```
 */
export function parseHello(body: CborValue): HelloBody {
  const map = asMap(body, 'HELLO');
  const versions = map.versions;
  if (!Array.isArray(versions) || versions.length === 0 || versions.length > MAX_OFFERED_VERSIONS) {
    throw protocolError(`HELLO.versions must list 1 to ${MAX_OFFERED_VERSIONS} versions`);
  }
  for (const v of versions as readonly CborValue[]) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0xffff) {
      throw protocolError('HELLO.versions must hold integers in 1..65535');
    }
  }
  return {
    versions: versions as number[],
    maxFrameBytes: frameLimit(map, 'maxFrameBytes', 'HELLO'),
  };
}

/**
 * Parses a WELCOME body. Throws `ERR_PROTOCOL`.
 *
 * @example
 * ```ts
 * const welcome = parseWelcome(frame.body);
 * ```
 */
export function parseWelcome(body: CborValue): WelcomeBody {
  const map = asMap(body, 'WELCOME');
  const welcome: WelcomeBody = {
    version: uint(map, 'version', 'WELCOME'),
    maxFrameBytes: frameLimit(map, 'maxFrameBytes', 'WELCOME'),
    authMaxFrameBytes: frameLimit(map, 'authMaxFrameBytes', 'WELCOME'),
    preAuthTimeoutMs: uint(map, 'preAuthTimeoutMs', 'WELCOME'),
    pingIntervalMs: uint(map, 'pingIntervalMs', 'WELCOME'),
    idleTimeoutMs: uint(map, 'idleTimeoutMs', 'WELCOME'),
    frameRate: uint(map, 'frameRate', 'WELCOME'),
    frameBurst: uint(map, 'frameBurst', 'WELCOME'),
  };
  if (welcome.pingIntervalMs < 1 || welcome.pingIntervalMs >= welcome.idleTimeoutMs) {
    throw protocolError('WELCOME.pingIntervalMs must be positive and below idleTimeoutMs');
  }
  return welcome;
}

/**
 * Parses a LIMITS body (the server's new inbound frame limit). Throws `ERR_PROTOCOL`.
 *
 * @example
 * ```ts
 * const { maxFrameBytes } = parseLimits(frame.body);
 * ```
 */
export function parseLimits(body: CborValue): { readonly maxFrameBytes: number } {
  return { maxFrameBytes: frameLimit(asMap(body, 'LIMITS'), 'maxFrameBytes', 'LIMITS') };
}

/**
 * Parses a CLOSE body leniently (it is the last word of a peer that is going away): no code
 * means an ordinary goodbye, an unknown code becomes `ERR_PROTOCOL`, and the message is cut to {@link MAX_CLOSE_MESSAGE} characters.
 *
 * @example
 * ```ts
 * const { code, message } = parseClose(frame.body);
 * ```
 */
export function parseClose(body: CborValue): CloseBody {
  let map: Readonly<Record<string, CborValue>>;
  try {
    map = asMap(body, 'CLOSE');
  } catch {
    return { code: 'ERR_PROTOCOL', message: 'peer closed with a malformed CLOSE frame' };
  }
  const code = map.code;
  const message = typeof map.message === 'string' ? map.message.slice(0, MAX_CLOSE_MESSAGE) : '';
  if (code === undefined || code === null) return { code: null, message };
  if (typeof code === 'string' && (IMPP_ERROR_CODES as readonly string[]).includes(code)) {
    return { code: code as ImppErrorCode, message };
  }
  return { code: 'ERR_PROTOCOL', message: `peer closed with an unknown code; ${message}` };
}

/**
 * Picks the version to speak: the highest one offered that we support and that is at least
 * `minimum`. Throws `ERR_VERSION_UNSUPPORTED` when there is none: never a downgrade.
 *
 * @example
 * ```ts
 * negotiateVersion([1, 2], [1], 1); // 1
 * negotiateVersion([0], [1], 1);    // throws ERR_VERSION_UNSUPPORTED
 * ```
 */
export function negotiateVersion(
  offered: readonly number[],
  supported: readonly number[],
  minimum: number,
): number {
  let best = -1;
  for (const v of offered) {
    if (v >= minimum && supported.includes(v) && v > best) best = v;
  }
  if (best < 0) {
    throw new ImppError(
      'ERR_VERSION_UNSUPPORTED',
      `no common protocol version: this side supports ${supported.filter((v) => v >= minimum).join(', ')}`,
    );
  }
  return best;
}
