/**
 * The client side of impp frames over WebSocket on TLS 1.3 (Node; browsers use their own
 * WebSocket with the same subprotocol and binary messages). Only `wss:` URLs: no plaintext.
 */
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { WebSocket } from 'ws';
import { ImppError } from '../errors.js';
import {
  type ClientOptions,
  clientTlsOptions,
  negotiateClient,
  resolveClientOptions,
  withDeadline,
} from './client-options.js';
import type { Connection } from './connection.js';
import { IMPP_WS_SUBPROTOCOL, WebSocketCarrier } from './ws-carrier.js';

/** Where and how to connect over WebSocket. */
export interface WebSocketConnectOptions extends ClientOptions {
  /** `wss://host:port/impp`. */
  readonly url: string;
  /** `Origin` header to send (browsers set it themselves). */
  readonly origin?: string;
}

/**
 * Connects over `wss:`, runs the hello exchange, resolves with an open {@link Connection}.
 *
 * @example
 * ```ts
 * const conn = await connectWebSocket({ url: 'wss://im.example.com:5331/impp', ca });
 * ```
 */
export function connectWebSocket(options: WebSocketConnectOptions): Promise<Connection> {
  const resolved = resolveClientOptions(options);
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return Promise.reject(new ImppError('ERR_INVALID_ARGUMENT', 'url is not a valid URL'));
  }
  if (url.protocol !== 'wss:') {
    return Promise.reject(
      new ImppError('ERR_INVALID_ARGUMENT', 'url must use wss: (there is no plaintext mode)'),
    );
  }
  let ws: WebSocket | undefined;
  const attempt = new Promise<Connection>((resolve, reject) => {
    const socketRef: { tls?: TLSSocket } = {};
    const w = new WebSocket(url, [IMPP_WS_SUBPROTOCOL], {
      ...clientTlsOptions(options),
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ...(options.origin === undefined ? {} : { origin: options.origin }),
      perMessageDeflate: false,
      maxPayload: resolved.maxFrameBytes,
      handshakeTimeout: resolved.connectTimeoutMs,
    });
    ws = w;
    w.on('upgrade', (response: IncomingMessage) => {
      if (response.socket instanceof TLSSocket) socketRef.tls = response.socket;
    });
    const onEarlyError = (error: Error): void => {
      reject(
        new ImppError('ERR_CONNECTION_CLOSED', 'WebSocket connection failed', { cause: error }),
      );
    };
    w.once('error', onEarlyError);
    const onEarlyClose = (): void => {
      reject(new ImppError('ERR_CONNECTION_CLOSED', 'WebSocket closed before it opened'));
    };
    w.once('close', onEarlyClose);
    w.once('open', () => {
      // From here on the connection reports its own failures (with the typed reason).
      w.off('error', onEarlyError);
      w.off('close', onEarlyClose);
      const socket = socketRef.tls;
      if (socket?.getProtocol() !== 'TLSv1.3' || w.protocol !== IMPP_WS_SUBPROTOCOL) {
        w.terminate();
        reject(
          new ImppError('ERR_PROTOCOL', 'server did not agree to TLS 1.3 and the impp subprotocol'),
        );
        return;
      }
      negotiateClient(new WebSocketCarrier(w, socket, resolved.maxFrameBytes), resolved).then(
        resolve,
        reject,
      );
    });
  });
  return withDeadline(attempt, resolved.connectTimeoutMs, () => ws?.terminate());
}
