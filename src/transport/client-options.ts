/**
 * Options shared by the TLS and WebSocket clients. Internal to src/transport.
 */
import type { SecureContextOptions } from 'node:tls';
import { ImppError } from '../errors.js';
import type { Carrier } from './carrier.js';
import { Connection } from './connection.js';
import { SUPPORTED_VERSIONS } from './control.js';
import { HARD_MAX_FRAME_BYTES } from './frame-codec.js';
import { DEFAULT_LIMITS, MIN_FRAME_BYTES } from './limits.js';

/** Client options common to both transports. */
export interface ClientOptions {
  /** CA certificates that anchor the server's chain (PEM). Default: the system store. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Client certificate and key, for SASL EXTERNAL (PEM). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Name checked against the server certificate; defaults to the host. */
  readonly servername?: string;
  /** Versions to offer. Default: all this implementation supports. */
  readonly versions?: readonly number[];
  /** Largest frame payload accepted from the server. Default 1 MiB. */
  readonly maxFrameBytes?: number;
  /** Time for TCP, TLS and the hello exchange together. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Outbound queue bounds (see TransportLimits). */
  readonly outboundHighWaterBytes?: number;
  readonly maxOutboundBytes?: number;
  /** A TLS session from a previous connection's `session` event, for resumption. */
  readonly session?: Buffer;
}

/** @internal */
export interface ResolvedClientOptions {
  readonly versions: readonly number[];
  readonly maxFrameBytes: number;
  readonly connectTimeoutMs: number;
  readonly outboundHighWaterBytes: number;
  readonly maxOutboundBytes: number;
}

/** @internal */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  const versions = [...(options.versions ?? SUPPORTED_VERSIONS)];
  if (versions.length === 0 || versions.some((v) => !SUPPORTED_VERSIONS.includes(v))) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `versions must be a non-empty subset of ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const maxFrameBytes = options.maxFrameBytes ?? 1024 * 1024;
  if (
    !Number.isInteger(maxFrameBytes) ||
    maxFrameBytes < MIN_FRAME_BYTES ||
    maxFrameBytes > HARD_MAX_FRAME_BYTES
  ) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `maxFrameBytes must be in ${MIN_FRAME_BYTES}..${HARD_MAX_FRAME_BYTES}`,
    );
  }
  const outboundHighWaterBytes =
    options.outboundHighWaterBytes ?? DEFAULT_LIMITS.outboundHighWaterBytes;
  const maxOutboundBytes = options.maxOutboundBytes ?? DEFAULT_LIMITS.maxOutboundBytes;
  if (outboundHighWaterBytes < 16 * 1024 || outboundHighWaterBytes > maxOutboundBytes) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      'outboundHighWaterBytes must be at least 16384 and at most maxOutboundBytes',
    );
  }
  return {
    versions,
    maxFrameBytes,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    outboundHighWaterBytes,
    maxOutboundBytes,
  };
}

/** @internal TLS options every client enforces: TLS 1.3, certificate verification always on. */
export function clientTlsOptions(
  options: ClientOptions,
): SecureContextOptions & { minVersion: 'TLSv1.3'; rejectUnauthorized: true; session?: Buffer } {
  return {
    ...(options.ca === undefined
      ? {}
      : { ca: options.ca as string | Buffer | (string | Buffer)[] }),
    ...(options.cert === undefined ? {} : { cert: options.cert }),
    ...(options.key === undefined ? {} : { key: options.key }),
    ...(options.session === undefined ? {} : { session: options.session }),
    minVersion: 'TLSv1.3',
    rejectUnauthorized: true,
  };
}

/**
 * @internal Runs the client side of the hello exchange on a secured carrier; resolves with the
 * open connection or rejects with the typed reason (e.g. ERR_VERSION_UNSUPPORTED).
 */
export function negotiateClient(
  carrier: Carrier,
  resolved: ResolvedClientOptions,
): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const connection = new Connection({
      role: 'client',
      carrier,
      outboundHighWaterBytes: resolved.outboundHighWaterBytes,
      maxOutboundBytes: resolved.maxOutboundBytes,
      closeGraceMs: DEFAULT_LIMITS.closeGraceMs,
      client: { versions: resolved.versions, maxFrameBytes: resolved.maxFrameBytes },
      onReady: resolve,
      onFailed: reject,
    });
    connection.start();
  });
}

/**
 * @internal Wraps a connect attempt with a deadline; `abort` tears the attempt down.
 */
export function withDeadline<T>(
  attempt: Promise<T>,
  timeoutMs: number,
  abort: () => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      abort();
      reject(new ImppError('ERR_TIMEOUT', `connection not established within ${timeoutMs} ms`));
    }, timeoutMs);
    attempt.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
