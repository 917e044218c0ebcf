/**
 * The client listener for browsers: WebSocket over TLS 1.3 carrying impp frames (one frame per
 * binary message). Compression (permessage-deflate) is off on purpose: compressing secrets
 * together with attacker-influenced data leaks them through the compressed length
 * (CRIME/BREACH), and even sealed payloads sit next to plaintext headers and SASL exchanges.
 */
import type { IncomingMessage } from 'node:http';
import { type Server as HttpsServer, createServer } from 'node:https';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { ImppError } from '../errors.js';
import { DEFAULT_WEBSOCKET_PORT } from './limits.js';
import {
  TransportServerBase,
  type TransportServerOptions,
  serverTlsOptions,
} from './server-core.js';
import { IMPP_WS_SUBPROTOCOL, WebSocketCarrier } from './ws-carrier.js';

/**
 * Decides whether a browser origin may connect. `origin` is the `Origin` header (undefined for
 * non-browser clients). Authentication happens in-band after the upgrade (no cookies), so
 * cross-site WebSocket hijacking gains an attacker nothing; the hook lets a deployment restrict
 * which web applications may embed its service anyway.
 */
export type OriginCheck = (origin: string | undefined, request: IncomingMessage) => boolean;

/** Options of {@link WebSocketTransportServer}. */
export interface WebSocketServerOptions extends TransportServerOptions {
  /** URL path of the endpoint. Default `/impp`. */
  readonly path?: string;
  /** Origin policy. Default: any origin. */
  readonly checkOrigin?: OriginCheck;
}

function reject(socket: Duplex, status: number, reason: string, extra = ''): void {
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n${extra}\r\n`,
  );
}

/**
 * WebSocket-over-TLS listener for impp clients (browsers). Same {@link Connection}s, limits and
 * events as {@link TlsTransportServer}.
 *
 * @example
 * ```ts
 * const server = new WebSocketTransportServer({ key, cert, checkOrigin: (o) => o === 'https://chat.example.com' });
 * server.on('connection', (conn) => serve(conn));
 * await server.listen({ port: 5331 });
 * ```
 */
export class WebSocketTransportServer extends TransportServerBase {
  readonly #https: HttpsServer;
  readonly #wss: WebSocketServer;
  readonly #path: string;
  readonly #checkOrigin: OriginCheck;

  constructor(options: WebSocketServerOptions) {
    super(options);
    this.#path = options.path ?? '/impp';
    this.#checkOrigin = options.checkOrigin ?? (() => true);
    this.#https = createServer(serverTlsOptions(options, this.limits, ['http/1.1']));
    // ws enforces maxPayload from each frame header, before buffering. It cannot change per
    // connection, so it is the authenticated limit; the smaller pre-auth limit is checked on
    // each complete message (bounded by this cap and the per-address connection cap).
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.limits.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) =>
        protocols.has(IMPP_WS_SUBPROTOCOL) ? IMPP_WS_SUBPROTOCOL : false,
    });
    this.#https.headersTimeout = Math.min(this.limits.preAuthTimeoutMs, 30_000);
    this.#https.requestTimeout = Math.min(this.limits.preAuthTimeoutMs, 30_000);
    this.#https.on('connection', (socket: Socket) => {
      this.admitSocket(socket);
    });
    this.#https.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      this.failed(
        socket.remoteAddress,
        new ImppError('ERR_PROTOCOL', 'TLS handshake failed', { cause: error }),
      );
      this.destroyAccepted(socket);
    });
    this.#https.on('clientError', (_error: Error, socket: Duplex) => {
      socket.destroy();
    });
    this.#https.on('request', (_request, response) => {
      // Plain HTTPS requests get nothing but the hint to upgrade.
      response.writeHead(426, { Connection: 'close', Upgrade: 'websocket' }).end();
    });
    this.#https.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (socket instanceof TLSSocket) this.#upgrade(request, socket, head);
      else socket.destroy();
    });
    this.#https.on('error', () => undefined);
  }

  #upgrade(request: IncomingMessage, socket: TLSSocket, head: Buffer): void {
    socket.on('error', () => undefined);
    const ticket = this.ticketFor(socket);
    if (ticket === undefined) {
      socket.destroy();
      return;
    }
    const url = request.url ?? '';
    const path = url.split('?')[0];
    if (path !== this.#path) {
      reject(socket, 404, 'Not Found');
      return;
    }
    const origin = request.headers.origin;
    let allowed = false;
    try {
      allowed = this.#checkOrigin(origin, request);
    } catch {
      allowed = false;
    }
    if (!allowed) {
      reject(socket, 403, 'Forbidden');
      this.failed(socket.remoteAddress, new ImppError('ERR_NOT_AUTHORIZED', 'origin not allowed'));
      return;
    }
    const offered = (request.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p: string) => p.trim());
    if (!offered.includes(IMPP_WS_SUBPROTOCOL)) {
      reject(socket, 400, 'Bad Request');
      this.failed(
        socket.remoteAddress,
        new ImppError('ERR_PROTOCOL', `WebSocket subprotocol "${IMPP_WS_SUBPROTOCOL}" is required`),
      );
      return;
    }
    if (this.tls13Only && socket.getProtocol() !== 'TLSv1.3') {
      socket.destroy();
      return;
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      this.attach(new WebSocketCarrier(ws, socket, this.limits.preAuthMaxFrameBytes), ticket);
    });
  }

  protected get netServer(): NetServer {
    return this.#https;
  }

  protected get defaultPort(): number {
    return DEFAULT_WEBSOCKET_PORT;
  }

  protected override closeIdleSockets(): void {
    this.#https.closeAllConnections();
  }
}
