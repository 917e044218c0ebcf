/**
 * What the TLS and WebSocket listeners share: options, admission control at accept, turning a
 * secured socket into a negotiated {@link Connection}, tracking, and shutdown.
 *
 * Internal to src/transport.
 */
import { type AddressInfo, type Server as NetServer, Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import { ImppError } from '../errors.js';
import { Admission, type AdmissionStats, type AdmissionTicket } from './admission.js';
import { type Carrier, ignoreError } from './carrier.js';
import { Connection } from './connection.js';
import { SUPPORTED_VERSIONS } from './control.js';
import { Emitter } from './emitter.js';
import { type TransportLimits, resolveLimits } from './limits.js';

/**
 * @internal Test-only: the key under which the service passes {@link TransportWeakening} when a
 * threat-suite test switches a transport defence off (src/service/defences.ts). Not exported by
 * src/transport/index.ts.
 */
export const WEAKEN_TRANSPORT: unique symbol = Symbol('impp.test-only.weaken-transport');

/** @internal Transport defences a test may switch off; `true` or absent means on. */
export interface TransportWeakening {
  /** T26: only TLS 1.3 is negotiated and served. */
  readonly tls13Only?: boolean;
}

/** Options common to both listeners. */
export interface TransportServerOptions {
  /** Server private key (PEM). */
  readonly key: string | Buffer;
  /** Server certificate chain (PEM). */
  readonly cert: string | Buffer;
  /** CA certificates for verifying client certificates (PEM). */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** CRLs (PEM) checked by the TLS layer when it verifies client certificates against `ca`. */
  readonly crl?: string | Buffer | readonly (string | Buffer)[];
  /**
   * Ask clients for a certificate (for SASL EXTERNAL). Chains are verified against `ca`, but a
   * missing or unverified certificate does not fail the handshake: the layer above decides,
   * from {@link Connection.peerCertificateAuthorized}.
   */
  readonly requestClientCert?: boolean;
  /** Limits; unspecified fields take {@link DEFAULT_LIMITS}. */
  readonly limits?: Partial<TransportLimits>;
  /** Protocol versions to accept. Default: all this implementation supports. */
  readonly versions?: readonly number[];
  /** Lowest version ever accepted (no downgrade below it). Default 1. */
  readonly minVersion?: number;
  /** @internal Test-only (see {@link WEAKEN_TRANSPORT}). */
  readonly [WEAKEN_TRANSPORT]?: TransportWeakening;
}

/** Where a listener listens. Binds 127.0.0.1 unless told otherwise. */
export interface ListenOptions {
  readonly host?: string;
  /** Port; 0 picks a free one. Defaults to the listener's default port. */
  readonly port?: number;
}

/** A refused or failed connection attempt, for logs and metrics. */
export interface ConnectionAttemptInfo {
  readonly remoteAddress: string | undefined;
  readonly error: ImppError;
}

/** Events of a transport listener. */
export interface TransportServerEvents {
  /** A connection finished the hello exchange. Attach frame handlers synchronously. */
  connection: (connection: Connection) => void;
  /** A connection was refused at accept (caps). */
  refused: (info: ConnectionAttemptInfo) => void;
  /** A connection failed before it was handed out (TLS, upgrade, hello). */
  failed: (info: ConnectionAttemptInfo) => void;
  [event: string]: (...args: never[]) => void;
}

/** Counters of a listener. */
export interface TransportServerStats extends AdmissionStats {
  /** Negotiated connections currently open. */
  readonly open: number;
}

/** @internal Base of {@link TlsTransportServer} and {@link WebSocketTransportServer}. */
export abstract class TransportServerBase extends Emitter<TransportServerEvents> {
  readonly limits: TransportLimits;
  protected readonly admission: Admission;
  protected readonly versions: readonly number[];
  protected readonly minVersion: number;
  /** TLS 1.3 only (always, except in the threat suite's T26 defence-off test). */
  protected readonly tls13Only: boolean;
  readonly #open = new Set<Connection>();
  readonly #pending = new Set<Connection>();
  readonly #tickets = new WeakMap<Socket, AdmissionTicket>();
  /** Accepted TCP sockets still open (whether or not they became connections). */
  readonly #sockets = new Set<Socket>();
  #closing = false;

  protected constructor(options: TransportServerOptions) {
    super();
    this.limits = resolveLimits(options.limits);
    this.versions = [...(options.versions ?? SUPPORTED_VERSIONS)];
    this.minVersion = options.minVersion ?? 1;
    this.tls13Only = options[WEAKEN_TRANSPORT]?.tls13Only !== false;
    if (this.versions.length === 0 || this.versions.some((v) => !SUPPORTED_VERSIONS.includes(v))) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `versions must be a non-empty subset of ${SUPPORTED_VERSIONS.join(', ')}`,
      );
    }
    if (!this.versions.some((v) => v >= this.minVersion)) {
      throw new ImppError('ERR_CONFIG_INVALID', 'minVersion excludes every configured version');
    }
    this.admission = new Admission(this.limits);
  }

  /** The underlying node server. */
  protected abstract get netServer(): NetServer;
  /** Port used when {@link listen} is given none. */
  protected abstract get defaultPort(): number;

  /** Counters: connections, unauthenticated, sources, open. */
  get stats(): TransportServerStats {
    return { ...this.admission.stats, open: this.#open.size };
  }

  /** Open, negotiated connections. */
  get connections(): ReadonlySet<Connection> {
    return this.#open;
  }

  /**
   * Starts listening; resolves with the bound address.
   *
   * @example
   * ```ts
   * const { port } = await server.listen({ port: 0 });
   * ```
   */
  listen(options: ListenOptions = {}): Promise<AddressInfo> {
    const server = this.netServer;
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(new ImppError('ERR_CONFIG_INVALID', 'cannot listen', { cause: error }));
      };
      server.once('error', onError);
      server.listen(options.port ?? this.defaultPort, options.host ?? '127.0.0.1', () => {
        server.off('error', onError);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops accepting, closes every connection with `ERR_CONNECTION_CLOSED` ("server shutting
   * down"), and resolves when the listener is closed.
   */
  async close(): Promise<void> {
    this.#closing = true;
    const closing = new Promise<void>((resolve) => {
      this.netServer.close(() => {
        resolve();
      });
    });
    const reason = new ImppError('ERR_CONNECTION_CLOSED', 'server shutting down');
    const all = [...this.#open, ...this.#pending];
    for (const connection of all) connection.close(reason);
    await Promise.all(all.map((c) => c.closed));
    // Sockets still in the TLS handshake or the WebSocket upgrade have no connection to close.
    for (const socket of this.#sockets) socket.destroy();
    this.closeIdleSockets();
    await closing;
  }

  /** Hook for subclasses to drop sockets that never became connections. */
  protected closeIdleSockets(): void {
    // Nothing by default.
  }

  /** Admission at accept. Returns the ticket, or undefined after destroying the socket. */
  protected admitSocket(socket: Socket): AdmissionTicket | undefined {
    if (this.#closing) {
      socket.destroy();
      return undefined;
    }
    socket.on('error', ignoreError);
    const ticket = this.admission.admit(socket.remoteAddress, () => socket.destroy());
    if (ticket instanceof ImppError) {
      // Refused before any TLS work: the cheapest answer is a closed socket.
      socket.destroy();
      this.emit('refused', { remoteAddress: socket.remoteAddress, error: ticket });
      return undefined;
    }
    this.#sockets.add(socket);
    socket.once('close', () => {
      ticket.release();
      this.#sockets.delete(socket);
    });
    this.#tickets.set(socket, ticket);
    return ticket;
  }

  /**
   * The admission ticket of a secured socket. Node's TLS server wraps each accepted socket in a
   * TLSSocket and keeps the accepted one as `_parent` (not in the typings, stable since Node 0.x).
   */
  protected ticketFor(socket: Socket): AdmissionTicket | undefined {
    const parent = (socket as Socket & { _parent?: unknown })._parent;
    return this.#tickets.get(parent instanceof Socket ? parent : socket);
  }

  /** Wraps a secured carrier in a server-role connection and runs the hello exchange. */
  protected attach(carrier: Carrier, ticket: AdmissionTicket): void {
    const limits = this.limits;
    const connection = new Connection({
      role: 'server',
      carrier,
      outboundHighWaterBytes: limits.outboundHighWaterBytes,
      maxOutboundBytes: limits.maxOutboundBytes,
      closeGraceMs: limits.closeGraceMs,
      server: { limits, versions: this.versions, minVersion: this.minVersion, ticket },
      onReady: (c) => {
        this.#pending.delete(c);
        this.#open.add(c);
        this.emit('connection', c);
      },
      onFailed: (error) => {
        this.#pending.delete(connection);
        this.emit('failed', { remoteAddress: connection.remoteAddress, error });
      },
    });
    this.#pending.add(connection);
    connection.on('close', () => {
      this.#open.delete(connection);
      this.#pending.delete(connection);
    });
    connection.start();
  }

  /**
   * Tears down a TLS socket and the accepted TCP socket under it. After some handshake errors
   * destroying the TLSSocket alone leaves the TCP connection open.
   */
  protected destroyAccepted(socket: Socket): void {
    const parent = (socket as Socket & { _parent?: unknown })._parent;
    socket.destroy();
    if (parent instanceof Socket) parent.destroy();
  }

  /** Reports a connection that failed before a Connection existed (TLS, upgrade). */
  protected failed(remoteAddress: string | undefined, error: ImppError): void {
    this.emit('failed', { remoteAddress, error });
  }
}

/**
 * @internal TLS settings every listener enforces: TLS 1.3 only; client certificates requested
 * only on demand and judged by the layer above.
 */
export function serverTlsOptions(
  options: TransportServerOptions,
  limits: TransportLimits,
  alpn: readonly string[],
): SecureContextOptions & {
  minVersion: 'TLSv1.3' | 'TLSv1.2';
  requestCert: boolean;
  rejectUnauthorized: boolean;
  handshakeTimeout: number;
  ALPNProtocols: string[];
} {
  return {
    key: options.key,
    cert: options.cert,
    ...(options.ca === undefined
      ? {}
      : { ca: options.ca as string | Buffer | (string | Buffer)[] }),
    ...(options.crl === undefined
      ? {}
      : { crl: options.crl as string | Buffer | (string | Buffer)[] }),
    minVersion: options[WEAKEN_TRANSPORT]?.tls13Only === false ? 'TLSv1.2' : 'TLSv1.3',
    requestCert: options.requestClientCert === true,
    rejectUnauthorized: false,
    handshakeTimeout: limits.handshakeTimeoutMs,
    ALPNProtocols: [...alpn],
  };
}
