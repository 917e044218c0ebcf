/**
 * Carrier for impp frames over WebSocket (RFC 6455): one frame per binary message, the same
 * CBOR payload as on TLS without the length prefix (the WebSocket framing carries the length).
 * Text messages are refused. Internal to src/transport.
 */
import type { TLSSocket } from 'node:tls';
import type { RawData, WebSocket } from 'ws';
import { ImppError } from '../errors.js';
import type { Carrier, CarrierHandlers } from './carrier.js';
import { type EncodedFrame, type Frame, decodeFramePayload } from './frame-codec.js';

/** WebSocket subprotocol (Sec-WebSocket-Protocol) of impp version-1 framing. */
export const IMPP_WS_SUBPROTOCOL = 'impp.v1';

/** RFC 6455 §7.4.1 close codes used for transport errors. */
function wsCloseCode(code: string | undefined): number {
  switch (code) {
    case undefined:
      return 1000;
    case 'ERR_FRAME_TOO_LARGE':
      return 1009;
    case 'ERR_FRAME_MALFORMED':
      return 1003;
    case 'ERR_CONNECTION_CLOSED':
      return 1001;
    default:
      return 1008;
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Carrier over a `ws` WebSocket whose underlying socket is `socket` (TLS). */
export class WebSocketCarrier implements Carrier {
  readonly kind = 'websocket' as const;
  readonly socket: TLSSocket;
  readonly #ws: WebSocket;
  #maxInbound: number;
  #handlers: CarrierHandlers | null = null;
  #paused = false;
  #dead = false;
  /** Messages that arrived after pause() (ws may still emit a few). */
  #held: Buffer[] = [];

  constructor(ws: WebSocket, socket: TLSSocket, maxInboundFrameBytes: number) {
    this.#ws = ws;
    this.socket = socket;
    this.#maxInbound = maxInboundFrameBytes;
    ws.on('error', () => undefined);
  }

  setMaxInboundFrameBytes(bytes: number): void {
    this.#maxInbound = bytes;
  }

  start(handlers: CarrierHandlers): void {
    this.#handlers = handlers;
    const ws = this.#ws;
    let lastError: Error | undefined;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (this.#dead) return;
      if (!isBinary) {
        this.#protocolError(
          new ImppError('ERR_FRAME_MALFORMED', 'text messages are not allowed: send binary frames'),
        );
        return;
      }
      const payload = toBuffer(data);
      if (this.#paused) this.#held.push(payload);
      else this.#deliver(payload);
    });
    ws.on('error', (error: Error & { code?: string }) => {
      lastError = error;
      if (this.#dead) return;
      // ws checks maxPayload from the frame header, before buffering the body.
      this.#protocolError(
        error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? new ImppError('ERR_FRAME_TOO_LARGE', 'WebSocket message exceeds the frame limit')
          : new ImppError('ERR_FRAME_MALFORMED', 'invalid WebSocket framing', { cause: error }),
      );
    });
    this.socket.on('drain', () => {
      if (!this.#dead) handlers.drain();
    });
    ws.on('close', () => {
      this.#dead = true;
      handlers.closed(lastError);
    });
  }

  #deliver(payload: Buffer): void {
    let frame: Frame;
    try {
      frame = decodeFramePayload(payload, this.#maxInbound);
    } catch (error) {
      this.#protocolError(error);
      return;
    }
    this.#handlers?.frame(frame);
  }

  #protocolError(error: unknown): void {
    this.#dead = true;
    this.#handlers?.protocolError(
      error instanceof ImppError
        ? error
        : new ImppError('ERR_FRAME_MALFORMED', 'frame could not be decoded', { cause: error }),
    );
  }

  write(frame: EncodedFrame): void {
    this.#ws.send(frame.payload, { binary: true, compress: false });
  }

  queuedBytes(): number {
    return this.#ws.bufferedAmount;
  }

  pause(): void {
    this.#paused = true;
    this.#ws.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // Delivering may pause or close us again (handlers run synchronously).
    while (this.#held.length > 0 && this.#active()) {
      const payload = this.#held.shift();
      if (payload !== undefined) this.#deliver(payload);
    }
    if (this.#active()) this.#ws.resume();
  }

  #active(): boolean {
    return !this.#paused && !this.#dead;
  }

  end(code: string | undefined): void {
    this.#dead = true;
    // The close reason carries the impp error code (ASCII, well under the 123-byte limit).
    this.#ws.close(wsCloseCode(code), code ?? '');
  }

  destroy(): void {
    this.#dead = true;
    this.#ws.terminate();
  }
}
