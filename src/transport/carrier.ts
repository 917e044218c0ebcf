/**
 * A carrier moves encoded frames over one secured channel: a TLS socket (length-prefixed frames
 * on a byte stream) or a WebSocket (one frame per binary message). The {@link Connection}
 * above it is the same for both.
 *
 * Internal to src/transport.
 */
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { ImppError } from '../errors.js';
import { type EncodedFrame, type Frame, FrameDecoder } from './frame-codec.js';

/** What a carrier reports upwards. */
export interface CarrierHandlers {
  /** One decoded inbound frame. */
  frame(frame: Frame): void;
  /** Inbound bytes could not be framed or decoded: the stream is unusable. */
  protocolError(error: ImppError): void;
  /** The outbound queue has drained below the socket's high-water mark. */
  drain(): void;
  /** The channel is gone (after an orderly end or a failure). Called once. */
  closed(error: Error | undefined): void;
}

/** A secured channel carrying frames. */
export interface Carrier {
  readonly kind: 'tls' | 'websocket';
  readonly socket: TLSSocket;
  /** Sets the inbound payload limit (bytes). */
  setMaxInboundFrameBytes(bytes: number): void;
  /** Starts delivering to `handlers`. */
  start(handlers: CarrierHandlers): void;
  /** Queues an encoded frame. */
  write(frame: EncodedFrame): void;
  /** Outbound bytes queued in this process (not yet handed to the kernel). */
  queuedBytes(): number;
  /** Stops or restarts delivering inbound frames (flow control towards the peer). */
  pause(): void;
  resume(): void;
  /** Orderly close after queued data is flushed; `code` is a hint for WebSocket close codes. */
  end(code: string | undefined): void;
  /** Immediate teardown. */
  destroy(): void;
}

/** ALPN protocol id of impp frames over TLS (RFC 7301). */
export const IMPP_ALPN = 'impp/1';

/** RFC 9266 §2: the tls-exporter channel binding is 32 bytes with this label, empty context. */
export const TLS_EXPORTER_LABEL = 'EXPORTER-Channel-Binding';
export const TLS_EXPORTER_LENGTH = 32;

/**
 * The tls-exporter channel binding of a TLS 1.3 socket (RFC 9266 §2). The context is empty: for
 * TLS 1.3 an absent context and an empty one give the same value (RFC 8446 §7.5), and we pass
 * the empty buffer explicitly.
 *
 * @example
 * ```ts
 * const cbind = tlsExporter(socket); // 32 bytes for SCRAM-SHA-256-PLUS (RFC 9266)
 * ```
 */
export function tlsExporter(socket: TLSSocket): Uint8Array {
  if (socket.getProtocol() !== 'TLSv1.3') {
    throw new ImppError('ERR_PROTOCOL', 'tls-exporter channel binding requires TLS 1.3');
  }
  return new Uint8Array(
    socket.exportKeyingMaterial(TLS_EXPORTER_LENGTH, TLS_EXPORTER_LABEL, Buffer.alloc(0)),
  );
}

/**
 * The peer's certificate, if it sent one.
 *
 * @example
 * ```ts
 * const cert = peerCertificate(socket); // node:crypto X509Certificate | undefined
 * ```
 */
export function peerCertificate(socket: TLSSocket): X509Certificate | undefined {
  return socket.getPeerX509Certificate();
}

/**
 * The 'error' listener that only keeps an emitter from crashing the process (its failure shows
 * up as 'close'): one function for every socket rather than a fresh closure each.
 */
export function ignoreError(): void {
  // Nothing: see above.
}

/** Carrier for length-prefixed frames on a TLS socket. */
export class TlsSocketCarrier implements Carrier {
  readonly kind = 'tls' as const;
  readonly socket: TLSSocket;
  readonly #decoder: FrameDecoder;
  #handlers: CarrierHandlers | null = null;
  #paused = false;
  #dead = false;
  #corked = false;

  constructor(socket: TLSSocket, maxInboundFrameBytes: number) {
    this.socket = socket;
    this.#decoder = new FrameDecoder({ maxFrameBytes: maxInboundFrameBytes });
    // Errors (resets, garbage) end up in 'close'; an 'error' without a listener would crash.
    socket.on('error', ignoreError);
    // We batch writes per tick ourselves (cork/uncork); Nagle would only add delay on top.
    socket.setNoDelay(true);
  }

  setMaxInboundFrameBytes(bytes: number): void {
    this.#decoder.maxFrameBytes = bytes;
  }

  start(handlers: CarrierHandlers): void {
    this.#handlers = handlers;
    const socket = this.socket;
    let lastError: Error | undefined;
    socket.on('error', (error: Error) => {
      lastError = error;
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.#dead) return;
      try {
        this.#decoder.push(chunk);
      } catch (error) {
        this.#protocolError(error);
        return;
      }
      this.#pump();
    });
    socket.on('drain', () => {
      if (!this.#dead) handlers.drain();
    });
    socket.on('close', () => {
      this.#dead = true;
      handlers.closed(lastError);
    });
    if (socket.destroyed) {
      this.#dead = true;
      queueMicrotask(() => {
        handlers.closed(new Error('socket closed before start'));
      });
    }
  }

  #pump(): void {
    const handlers = this.#handlers;
    if (handlers === null) return;
    while (!this.#paused && !this.#dead) {
      let frame: Frame | undefined;
      try {
        frame = this.#decoder.next();
      } catch (error) {
        this.#protocolError(error);
        return;
      }
      if (frame === undefined) return;
      handlers.frame(frame);
    }
  }

  #protocolError(error: unknown): void {
    this.#dead = true;
    this.#handlers?.protocolError(
      error instanceof ImppError
        ? error
        : new ImppError('ERR_FRAME_MALFORMED', 'inbound bytes could not be framed', {
            cause: error,
          }),
    );
  }

  write(frame: EncodedFrame): void {
    // Cork for the rest of this tick: many small frames leave as one TLS record and one syscall.
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(frame.bytes);
  }

  queuedBytes(): number {
    return this.socket.writableLength;
  }

  pause(): void {
    this.#paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#pump();
    // #pump may have delivered frames whose handlers paused or closed us again.
    if (this.#active()) this.socket.resume();
  }

  #active(): boolean {
    return !this.#paused && !this.#dead;
  }

  end(): void {
    this.#dead = true;
    this.socket.end();
  }

  destroy(): void {
    this.#dead = true;
    this.socket.destroy();
  }
}
