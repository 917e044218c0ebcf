/**
 * Connection: one negotiated, secured frame channel, the same over TLS and WebSocket.
 *
 * It runs the transport part of the protocol (docs/protocol.md, "Transport"): HELLO/WELCOME
 * version negotiation, PING/PONG keep-alive with an idle time-out, LIMITS after
 * authentication, CLOSE with a typed reason, the inbound frame-rate limit and the bounded
 * outbound queue. The layer above sees only application frames (type 16 and up), marks the
 * connection authenticated, and reads the TLS exporter for channel binding.
 */
import type { X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ImppError } from '../errors.js';
import type { AdmissionTicket } from './admission.js';
import { type Carrier, peerCertificate, tlsExporter } from './carrier.js';
import type { CborValue } from './cbor-strict.js';
import {
  FIRST_APPLICATION_FRAME_TYPE,
  FrameType,
  MAX_CLOSE_MESSAGE,
  negotiateVersion,
  parseClose,
  parseHello,
  parseLimits,
  parseWelcome,
  type WelcomeBody,
} from './control.js';
import { Emitter } from './emitter.js';
import {
  type EncodedFrame,
  FRAME_HEADER_BYTES,
  type Frame,
  MAX_FRAME_TYPE,
  encodeFrame,
} from './frame-codec.js';
import type { TransportLimits } from './limits.js';
import { TokenBucket } from './rate-limit.js';

/** Lifecycle of a connection. */
export type ConnectionState = 'negotiating' | 'open' | 'closing' | 'closed';

/** How a connection ended. */
export interface ConnectionCloseInfo {
  /** The reason; `undefined` for an ordinary close without error. */
  readonly error: ImppError | undefined;
  /** Which side decided to close (`remote` also covers a lost connection). */
  readonly initiator: 'local' | 'remote';
}

/** Counters of one connection. */
export interface ConnectionStats {
  readonly framesIn: number;
  readonly framesOut: number;
  readonly bytesOut: number;
  /** Outbound bytes queued in this process right now. */
  readonly queuedBytes: number;
  /** Highest value `queuedBytes` has reached. */
  readonly peakQueuedBytes: number;
}

/** Events of a {@link Connection}. */
export interface ConnectionEvents {
  /** An application frame (type ≥ 16) arrived. */
  frame: (frame: Frame) => void;
  /** The outbound queue drained after `send` returned `false`. */
  drain: () => void;
  /** The connection is closed. Emitted once. */
  close: (info: ConnectionCloseInfo) => void;
  [event: string]: (...args: never[]) => void;
}

/** Inbound application frames buffered before the carrier is paused. */
const INBOX_HIGH_WATER = 256;
const INBOX_LOW_WATER = 64;

/** @internal Settings shared by both roles. */
export interface ConnectionInit {
  readonly role: 'server' | 'client';
  readonly carrier: Carrier;
  readonly outboundHighWaterBytes: number;
  readonly maxOutboundBytes: number;
  readonly closeGraceMs: number;
  /** Server role: limits, versions and the admission ticket. */
  readonly server?: {
    readonly limits: TransportLimits;
    readonly versions: readonly number[];
    readonly minVersion: number;
    readonly ticket: AdmissionTicket;
  };
  /** Client role: versions offered and the largest frame accepted. */
  readonly client?: {
    readonly versions: readonly number[];
    readonly maxFrameBytes: number;
  };
  /** Called once when negotiation succeeds. */
  readonly onReady: (connection: Connection) => void;
  /** Called once when the connection closes before negotiation succeeded. */
  readonly onFailed: (error: ImppError) => void;
}

let nextId = 0;

/**
 * A negotiated frame connection. Obtained from a server's `connection` event or from
 * `connectTls` / `connectWebSocket`; never constructed by applications.
 *
 * @example
 * ```ts
 * server.on('connection', (conn) => {
 *   conn.on('frame', (frame) => {
 *     if (!conn.send(frame.type, frame.body)) pauseProducer(); // back-pressure
 *   });
 *   conn.on('close', ({ error }) => log(error?.code));
 * });
 * ```
 */
export class Connection extends Emitter<ConnectionEvents> {
  /** Process-unique id for logs. */
  readonly id: string;
  readonly role: 'server' | 'client';
  /** `tls` (length-prefixed frames) or `websocket`. */
  readonly transport: 'tls' | 'websocket';
  /** The peer's address as seen by the socket. */
  readonly remoteAddress: string | undefined;
  /** Resolves once, when the connection is closed. */
  readonly closed: Promise<ConnectionCloseInfo>;

  readonly #init: ConnectionInit;
  readonly #carrier: Carrier;
  #state: ConnectionState = 'negotiating';
  /** Whether negotiation succeeded (onReady was called). */
  #ready = false;
  #version = 0;
  #authenticated = false;
  /** Largest payload the peer accepts from us. */
  #sendMax: number;
  #welcome: WelcomeBody | undefined;
  #bucket: TokenBucket | undefined;
  #pingIntervalMs = 0;
  #idleTimeoutMs = 0;
  #lastRx = performance.now();
  #pingSent = false;
  #pingToken = 0;
  #timer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #closeInfo: ConnectionCloseInfo | undefined;
  #resolveClosed!: (info: ConnectionCloseInfo) => void;
  #inbox: Frame[] = [];
  #inboxPaused = false;
  #iterating = false;
  #wakeIterator: (() => void) | undefined;
  #framesIn = 0;
  #framesOut = 0;
  #bytesOut = 0;
  #peakQueued = 0;

  /** @internal */
  constructor(init: ConnectionInit) {
    super();
    this.id = `c${(nextId++).toString(36)}`;
    this.#init = init;
    this.#carrier = init.carrier;
    this.role = init.role;
    this.transport = init.carrier.kind;
    this.remoteAddress = init.carrier.socket.remoteAddress;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    if (init.server !== undefined) {
      const { limits, ticket } = init.server;
      this.#sendMax = limits.preAuthMaxFrameBytes; // until the client's HELLO says more
      this.#bucket = new TokenBucket(limits.frameRate, limits.frameBurst);
      this.#pingIntervalMs = limits.pingIntervalMs;
      this.#idleTimeoutMs = limits.idleTimeoutMs;
      ticket.onDeadline(() => {
        this.close(
          new ImppError(
            'ERR_TIMEOUT',
            `not authenticated within ${limits.preAuthTimeoutMs} ms of connecting`,
          ),
        );
      });
    } else {
      this.#sendMax = 1024; // until WELCOME: only HELLO is sent, which is small
    }
  }

  /** @internal Starts the carrier and, on the client, sends HELLO. */
  start(): void {
    this.#carrier.start({
      frame: (frame) => {
        this.#onFrame(frame);
      },
      protocolError: (error) => {
        this.close(error);
      },
      drain: () => {
        if (this.#state === 'open') this.emit('drain');
      },
      closed: (error) => {
        this.#onCarrierClosed(error);
      },
    });
    if (this.#init.server !== undefined) {
      this.#scheduleTimer();
    } else if (this.#init.client !== undefined) {
      const { versions, maxFrameBytes } = this.#init.client;
      this.#writeControl(FrameType.HELLO, { versions: [...versions], maxFrameBytes });
    }
  }

  /** Current lifecycle state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Negotiated protocol version (0 while negotiating). */
  get version(): number {
    return this.#version;
  }

  /** Whether {@link markAuthenticated} has been called (server) or LIMITS received (client). */
  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** Largest application payload the peer accepts from us now (bytes, CBOR included). */
  get maxSendFrameBytes(): number {
    return this.#sendMax;
  }

  /** Client role: the server's WELCOME (limits it announced). */
  get welcome(): WelcomeBody | undefined {
    return this.#welcome;
  }

  /** Counters for monitoring and tests. */
  get stats(): ConnectionStats {
    return {
      framesIn: this.#framesIn,
      framesOut: this.#framesOut,
      bytesOut: this.#bytesOut,
      queuedBytes: this.#carrier.queuedBytes(),
      peakQueuedBytes: this.#peakQueued,
    };
  }

  /**
   * The tls-exporter channel binding (RFC 9266): 32 bytes, equal on both ends of this TLS
   * connection and different on any other. Feed it to SCRAM-…-PLUS.
   */
  channelBinding(): Uint8Array {
    return tlsExporter(this.#carrier.socket);
  }

  /** The peer's TLS certificate, if it presented one (servers always do; clients for EXTERNAL). */
  peerCertificate(): X509Certificate | undefined {
    return peerCertificate(this.#carrier.socket);
  }

  /** Whether TLS resumed an earlier session (fewer round trips, no certificate exchange). */
  get sessionReused(): boolean {
    return this.#carrier.socket.isSessionReused();
  }

  /** Whether the peer's certificate chain verified against the configured CAs. */
  get peerCertificateAuthorized(): boolean {
    return this.#carrier.socket.authorized;
  }

  /**
   * Server role: the layer above has authenticated the peer. Lifts the pre-authentication frame
   * limit and deadline, frees the per-address slot and tells the client (LIMITS frame). Call it
   * before sending the frame that announces success, so the client never sends a large frame the
   * server would still refuse.
   */
  markAuthenticated(): void {
    const server = this.#init.server;
    if (server === undefined) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'only the server side marks authentication');
    }
    if (this.#authenticated || this.#state !== 'open') return;
    this.#authenticated = true;
    server.ticket.markAuthenticated();
    this.#carrier.setMaxInboundFrameBytes(server.limits.maxFrameBytes);
    this.#writeControl(FrameType.LIMITS, { maxFrameBytes: server.limits.maxFrameBytes });
  }

  /**
   * Sends an application frame. Returns `false` when the outbound queue is above its high-water
   * mark: wait for `drain` (or {@link drained}) before sending more.
   *
   * Throws `ERR_INVALID_ARGUMENT` (type outside 16..65535), `ERR_FRAME_TOO_LARGE` (above
   * {@link maxSendFrameBytes}), `ERR_CONNECTION_CLOSED` (not open), or `ERR_SLOW_CONSUMER` when
   * this frame would push the queue past its bound: the connection is then closed with that
   * reason, because a peer that does not read must not make us buffer without bound.
   */
  send(type: number, body: CborValue): boolean {
    if (!Number.isInteger(type) || type < FIRST_APPLICATION_FRAME_TYPE || type > MAX_FRAME_TYPE) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        `application frame type must be an integer in ${FIRST_APPLICATION_FRAME_TYPE}..${MAX_FRAME_TYPE}`,
      );
    }
    if (this.#state !== 'open') {
      throw new ImppError('ERR_CONNECTION_CLOSED', `connection is ${this.#state}`);
    }
    return this.#write(encodeFrame({ type, body }, this.#sendMax));
  }

  /** Resolves when the outbound queue is below its high-water mark (or the connection closed). */
  drained(): Promise<void> {
    if (this.#carrier.queuedBytes() < this.#init.outboundHighWaterBytes || this.#state !== 'open') {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        this.off('drain', done);
        this.off('close', done);
        resolve();
      };
      this.on('drain', done);
      this.on('close', done);
    });
  }

  /**
   * Closes the connection: sends CLOSE with the reason (code and message go on the wire, so
   * they must not contain secrets), flushes, then ends the channel. Idempotent.
   */
  close(reason?: ImppError): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#closeInfo = { error: reason, initiator: 'local' };
    this.#beginClosing();
    if (reason?.code === 'ERR_SLOW_CONSUMER') {
      this.#carrier.destroy(); // nothing more can be flushed to a peer that does not read
      return;
    }
    try {
      const body =
        reason === undefined
          ? { message: 'goodbye' }
          : { code: reason.code, message: reason.message.slice(0, MAX_CLOSE_MESSAGE) };
      this.#carrier.write(encodeFrame({ type: FrameType.CLOSE, body }));
    } catch {
      // The channel may already be gone; ending it below is all that is left to do.
    }
    this.#carrier.end(reason?.code);
  }

  /**
   * Application frames as an async iterable. Iteration ends when the connection closes. While
   * the consumer lags, inbound reading pauses (TCP flow control pushes back on the peer).
   * Only one iterator per connection.
   */
  async *frames(): AsyncGenerator<Frame, void, undefined> {
    if (this.#iterating) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'a connection has only one frame iterator');
    }
    this.#iterating = true;
    try {
      for (;;) {
        const frame = this.#inbox.shift();
        if (frame !== undefined) {
          this.#maybeResumeInbox();
          yield frame;
          continue;
        }
        if (this.#state === 'closed') return;
        await new Promise<void>((resolve) => {
          this.#wakeIterator = resolve;
        });
        this.#wakeIterator = undefined;
      }
    } finally {
      this.#iterating = false;
    }
  }

  override on<K extends keyof ConnectionEvents>(event: K, listener: ConnectionEvents[K]): this {
    super.on(event, listener);
    if (event === 'frame' && this.#inbox.length > 0) {
      queueMicrotask(() => {
        this.#flushInbox();
      });
    }
    return this;
  }

  // --- internals -------------------------------------------------------------------------

  #beginClosing(): void {
    this.#state = 'closing';
    this.#clearTimer();
    this.#graceTimer = setTimeout(() => {
      this.#carrier.destroy();
    }, this.#init.closeGraceMs);
    this.#graceTimer.unref();
  }

  #write(frame: EncodedFrame): boolean {
    const queued = this.#carrier.queuedBytes();
    if (queued + frame.bytes.length > this.#init.maxOutboundBytes) {
      const error = new ImppError(
        'ERR_SLOW_CONSUMER',
        `peer is not reading: outbound queue would exceed ${this.#init.maxOutboundBytes} bytes`,
      );
      this.close(error);
      throw error;
    }
    this.#carrier.write(frame);
    this.#framesOut += 1;
    this.#bytesOut += frame.bytes.length;
    const now = this.#carrier.queuedBytes();
    if (now > this.#peakQueued) this.#peakQueued = now;
    return now < this.#init.outboundHighWaterBytes;
  }

  #writeControl(type: number, body: CborValue): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    try {
      this.#write(encodeFrame({ type, body }));
    } catch {
      // #write already closed the connection (slow consumer); nothing else to do.
    }
  }

  #onFrame(frame: Frame): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#framesIn += 1;
    this.#lastRx = performance.now();
    this.#pingSent = false;
    if (this.#bucket !== undefined && !this.#bucket.take()) {
      this.close(new ImppError('ERR_RATE_LIMITED', 'inbound frame rate limit exceeded'));
      return;
    }
    try {
      this.#dispatch(frame);
    } catch (error) {
      this.close(
        error instanceof ImppError
          ? error
          : new ImppError('ERR_PROTOCOL', 'frame handling failed', { cause: error }),
      );
    }
  }

  #dispatch(frame: Frame): void {
    const { type, body } = frame;
    if (type >= FIRST_APPLICATION_FRAME_TYPE) {
      if (this.#state !== 'open') {
        throw new ImppError('ERR_PROTOCOL', 'application frame before the hello exchange');
      }
      this.#deliver(frame);
      return;
    }
    switch (type) {
      case FrameType.HELLO:
        this.#onHello(body);
        return;
      case FrameType.WELCOME:
        this.#onWelcome(body);
        return;
      case FrameType.PING:
        this.#requireOpen('PING');
        if (typeof body !== 'number' || !Number.isSafeInteger(body) || body < 0) {
          throw new ImppError('ERR_PROTOCOL', 'PING body must be an unsigned integer');
        }
        this.#writeControl(FrameType.PONG, body);
        return;
      case FrameType.PONG:
        this.#requireOpen('PONG');
        return;
      case FrameType.LIMITS: {
        this.#requireOpen('LIMITS');
        if (this.role !== 'client') throw new ImppError('ERR_PROTOCOL', 'LIMITS from a client');
        this.#sendMax = this.#clampSend(parseLimits(body).maxFrameBytes);
        this.#authenticated = true;
        return;
      }
      case FrameType.CLOSE: {
        const { code, message } = parseClose(body);
        this.#closeInfo = {
          error: code === null ? undefined : new ImppError(code, `peer closed: ${message}`),
          initiator: 'remote',
        };
        this.#beginClosing();
        this.#carrier.end(undefined);
        return;
      }
      default:
        throw new ImppError('ERR_PROTOCOL', `unknown transport frame type ${type}`);
    }
  }

  /** A frame must also fit our own outbound queue, or sending it would trip ERR_SLOW_CONSUMER. */
  #clampSend(peerLimit: number): number {
    return Math.min(peerLimit, this.#init.maxOutboundBytes - FRAME_HEADER_BYTES);
  }

  #isOpen(): boolean {
    return this.#state === 'open';
  }

  #requireOpen(what: string): void {
    if (this.#state !== 'open') {
      throw new ImppError('ERR_PROTOCOL', `${what} before the hello exchange`);
    }
  }

  #onHello(body: CborValue): void {
    const server = this.#init.server;
    if (server === undefined || this.#state !== 'negotiating') {
      throw new ImppError('ERR_PROTOCOL', 'unexpected HELLO');
    }
    const hello = parseHello(body);
    this.#version = negotiateVersion(hello.versions, server.versions, server.minVersion);
    // Never send frames larger than we would accept ourselves, whatever the client offers.
    this.#sendMax = Math.min(hello.maxFrameBytes, server.limits.maxFrameBytes);
    const { limits } = server;
    this.#state = 'open';
    this.#writeControl(FrameType.WELCOME, {
      version: this.#version,
      maxFrameBytes: limits.preAuthMaxFrameBytes,
      authMaxFrameBytes: limits.maxFrameBytes,
      preAuthTimeoutMs: limits.preAuthTimeoutMs,
      pingIntervalMs: limits.pingIntervalMs,
      idleTimeoutMs: limits.idleTimeoutMs,
      frameRate: limits.frameRate,
      frameBurst: limits.frameBurst,
    });
    // Sending WELCOME can fail (and close) if the peer is already gone.
    if (this.#isOpen()) {
      this.#ready = true;
      this.#init.onReady(this);
    }
  }

  #onWelcome(body: CborValue): void {
    const client = this.#init.client;
    if (client === undefined || this.#state !== 'negotiating') {
      throw new ImppError('ERR_PROTOCOL', 'unexpected WELCOME');
    }
    const welcome = parseWelcome(body);
    if (!client.versions.includes(welcome.version)) {
      throw new ImppError(
        'ERR_VERSION_UNSUPPORTED',
        `server chose protocol version ${welcome.version}, which was not offered`,
      );
    }
    this.#welcome = welcome;
    this.#version = welcome.version;
    this.#sendMax = this.#clampSend(welcome.maxFrameBytes);
    this.#pingIntervalMs = welcome.pingIntervalMs;
    this.#idleTimeoutMs = welcome.idleTimeoutMs;
    this.#state = 'open';
    this.#lastRx = performance.now();
    this.#scheduleTimer();
    this.#ready = true;
    this.#init.onReady(this);
  }

  #deliver(frame: Frame): void {
    if (this.#inbox.length === 0 && this.listenerCount('frame') > 0) {
      this.emit('frame', frame);
      return;
    }
    this.#inbox.push(frame);
    if (this.#inbox.length >= INBOX_HIGH_WATER && !this.#inboxPaused) {
      this.#inboxPaused = true;
      this.#carrier.pause();
    }
    this.#wakeIterator?.();
  }

  #flushInbox(): void {
    while (this.#inbox.length > 0 && this.listenerCount('frame') > 0 && this.#state === 'open') {
      const frame = this.#inbox.shift();
      if (frame === undefined) break;
      try {
        this.emit('frame', frame);
      } catch (error) {
        this.close(new ImppError('ERR_PROTOCOL', 'frame handling failed', { cause: error }));
      }
    }
    this.#maybeResumeInbox();
  }

  #maybeResumeInbox(): void {
    if (this.#inboxPaused && this.#inbox.length <= INBOX_LOW_WATER) {
      this.#inboxPaused = false;
      this.#carrier.resume();
    }
  }

  /** One timer per connection: idle time-out and keep-alive (PING after pingIntervalMs). */
  #scheduleTimer(): void {
    this.#clearTimer();
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const silent = performance.now() - this.#lastRx;
    if (silent >= this.#idleTimeoutMs) {
      this.close(
        new ImppError('ERR_TIMEOUT', `nothing received for ${this.#idleTimeoutMs} ms (idle)`),
      );
      return;
    }
    if (silent >= this.#pingIntervalMs && !this.#pingSent && this.#state === 'open') {
      this.#pingSent = true;
      this.#pingToken = (this.#pingToken + 1) % 0x1_0000_0000;
      this.#writeControl(FrameType.PING, this.#pingToken);
    }
    const next = this.#pingSent
      ? this.#idleTimeoutMs - silent
      : Math.min(this.#pingIntervalMs, this.#idleTimeoutMs) - silent;
    this.#timer = setTimeout(Connection.#tick, Math.max(1, Math.ceil(next)), this);
    this.#timer.unref();
  }

  /** The timer callback, one function for every connection (no closure per connection). */
  static #tick(connection: Connection): void {
    connection.#scheduleTimer();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onCarrierClosed(error: Error | undefined): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearTimer();
    if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
    this.#init.server?.ticket.release();
    const info: ConnectionCloseInfo = this.#closeInfo ?? {
      error: new ImppError('ERR_CONNECTION_CLOSED', 'connection lost', { cause: error }),
      initiator: 'remote',
    };
    this.#closeInfo = info;
    if (!this.#ready) {
      this.#init.onFailed(
        info.error ?? new ImppError('ERR_CONNECTION_CLOSED', 'closed during negotiation'),
      );
    }
    this.#resolveClosed(info);
    this.#wakeIterator?.();
    this.emit('close', info);
  }
}
