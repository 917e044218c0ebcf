/**
 * Transport limits and their defaults. Every limit exists so that a slow or hostile peer costs
 * the server little: bounded memory per connection, bounded time before authentication, a
 * bounded frame rate, bounded numbers of connections.
 */
import { ImppError } from '../errors.js';
import { HARD_MAX_FRAME_BYTES } from './frame-codec.js';

/** Default port for clients over TLS with length-prefixed frames (docs/protocol.md, "Ports"). */
export const DEFAULT_CLIENT_PORT = 5330;
/** Default port for clients over WebSocket on TLS (browsers). */
export const DEFAULT_WEBSOCKET_PORT = 5331;
/** Port reserved for server-to-server (federation); not served by this module yet. */
export const DEFAULT_SERVER_PORT = 5332;

/** Smallest frame limit any side may advertise: room for the hello exchange and errors. */
export const MIN_FRAME_BYTES = 1024;

/** Server-side transport limits. All sizes in bytes, all durations in milliseconds. */
export interface TransportLimits {
  /** Largest inbound frame payload once the connection is authenticated. */
  readonly maxFrameBytes: number;
  /** Largest inbound frame payload before authentication (smaller: strangers get less). */
  readonly preAuthMaxFrameBytes: number;
  /** Time for the TLS handshake to complete. */
  readonly handshakeTimeoutMs: number;
  /** Time from TCP accept until the layer above marks the connection authenticated. */
  readonly preAuthTimeoutMs: number;
  /** Silence (nothing received) after which a PING is sent. Must be below idleTimeoutMs. */
  readonly pingIntervalMs: number;
  /** Silence after which the connection is closed with ERR_TIMEOUT. */
  readonly idleTimeoutMs: number;
  /** Sustained inbound frames per second per connection (token bucket rate). */
  readonly frameRate: number;
  /** Inbound frames a connection may send in a burst (token bucket size). */
  readonly frameBurst: number;
  /** Outbound bytes queued for one peer above which `send` reports back-pressure. */
  readonly outboundHighWaterBytes: number;
  /** Outbound bytes queued for one peer above which it is closed as a slow consumer. */
  readonly maxOutboundBytes: number;
  /** Concurrent connections on one listener, authenticated or not. */
  readonly maxConnections: number;
  /** Concurrent unauthenticated connections from one IPv4 address or IPv6 /64. */
  readonly maxPreAuthPerIp: number;
  /** Time given to a closing connection to flush its CLOSE frame before it is destroyed. */
  readonly closeGraceMs: number;
}

/**
 * The defaults. Sizes: a 64 KiB pre-auth frame fits a Kerberos ticket with a large PAC; 256 KiB
 * fits any sealed message or presence document the service accepts.
 */
export const DEFAULT_LIMITS: TransportLimits = Object.freeze({
  maxFrameBytes: 256 * 1024,
  preAuthMaxFrameBytes: 64 * 1024,
  handshakeTimeoutMs: 10_000,
  preAuthTimeoutMs: 30_000,
  pingIntervalMs: 45_000,
  idleTimeoutMs: 120_000,
  frameRate: 200,
  frameBurst: 400,
  outboundHighWaterBytes: 64 * 1024,
  maxOutboundBytes: 1024 * 1024,
  maxConnections: 20_000,
  maxPreAuthPerIp: 32,
  closeGraceMs: 2_000,
});

function positiveInt(limits: TransportLimits, field: keyof TransportLimits): void {
  const value = limits[field];
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ImppError('ERR_CONFIG_INVALID', `limits.${field} must be a positive integer`);
  }
}

/**
 * Fills in defaults and checks consistency. Throws `ERR_CONFIG_INVALID` naming the field.
 *
 * @example
 * ```ts
 * const limits = resolveLimits({ preAuthTimeoutMs: 10_000 });
 * ```
 */
export function resolveLimits(overrides: Partial<TransportLimits> = {}): TransportLimits {
  const limits: TransportLimits = { ...DEFAULT_LIMITS, ...overrides };
  for (const field of Object.keys(DEFAULT_LIMITS) as (keyof TransportLimits)[]) {
    positiveInt(limits, field);
  }
  const rule = (ok: boolean, message: string): void => {
    if (!ok) throw new ImppError('ERR_CONFIG_INVALID', message);
  };
  rule(
    limits.maxFrameBytes <= HARD_MAX_FRAME_BYTES,
    `limits.maxFrameBytes must be at most ${HARD_MAX_FRAME_BYTES}`,
  );
  rule(
    limits.preAuthMaxFrameBytes >= MIN_FRAME_BYTES &&
      limits.preAuthMaxFrameBytes <= limits.maxFrameBytes,
    `limits.preAuthMaxFrameBytes must be between ${MIN_FRAME_BYTES} and limits.maxFrameBytes`,
  );
  rule(
    limits.pingIntervalMs < limits.idleTimeoutMs,
    'limits.pingIntervalMs must be below limits.idleTimeoutMs',
  );
  rule(
    limits.frameBurst >= limits.frameRate / 10 && limits.frameBurst >= 4,
    'limits.frameBurst must be at least 4 and a tenth of limits.frameRate',
  );
  rule(
    limits.maxOutboundBytes >= limits.maxFrameBytes + 4,
    'limits.maxOutboundBytes must hold at least one frame of limits.maxFrameBytes',
  );
  rule(
    // Node sockets signal 'drain' only after a write crossed their own 16 KiB mark.
    limits.outboundHighWaterBytes >= 16 * 1024,
    'limits.outboundHighWaterBytes must be at least 16384',
  );
  rule(
    limits.outboundHighWaterBytes <= limits.maxOutboundBytes,
    'limits.outboundHighWaterBytes must not exceed limits.maxOutboundBytes',
  );
  return Object.freeze(limits);
}
