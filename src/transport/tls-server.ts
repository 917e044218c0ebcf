/**
 * The client listener over TLS 1.3 with length-prefixed frames (docs/protocol.md, "Transport").
 * There is no plaintext mode: the listener is a TLS server or nothing.
 */
import type { Server as NetServer, Socket } from 'node:net';
import { type TLSSocket, type Server as TlsServer, createServer } from 'node:tls';
import { ImppError } from '../errors.js';
import { IMPP_ALPN, TlsSocketCarrier } from './carrier.js';
import { DEFAULT_CLIENT_PORT } from './limits.js';
import {
  TransportServerBase,
  type TransportServerOptions,
  serverTlsOptions,
} from './server-core.js';

/**
 * TLS listener for impp clients. Emits `connection` with a negotiated {@link Connection}.
 *
 * @example
 * ```ts
 * const server = new TlsTransportServer({ key, cert });
 * server.on('connection', (conn) => conn.on('frame', (f) => route(conn, f)));
 * await server.listen({ port: 5330 });
 * ```
 */
export class TlsTransportServer extends TransportServerBase {
  readonly #server: TlsServer;

  constructor(options: TransportServerOptions) {
    super(options);
    this.#server = createServer(serverTlsOptions(options, this.limits, [IMPP_ALPN]));
    this.#server.on('connection', (socket: Socket) => {
      this.admitSocket(socket);
    });
    this.#server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      // Garbage before TLS, wrong versions, handshake time-outs: this socket only.
      this.failed(
        socket.remoteAddress,
        new ImppError('ERR_PROTOCOL', 'TLS handshake failed', { cause: error }),
      );
      this.destroyAccepted(socket);
    });
    this.#server.on('secureConnection', (socket: TLSSocket) => {
      const ticket = this.ticketFor(socket);
      if (ticket === undefined) {
        socket.destroy();
        return;
      }
      if (
        (this.tls13Only && socket.getProtocol() !== 'TLSv1.3') ||
        socket.alpnProtocol !== IMPP_ALPN
      ) {
        socket.on('error', () => undefined);
        socket.destroy();
        this.failed(
          socket.remoteAddress,
          new ImppError('ERR_PROTOCOL', `TLS 1.3 with ALPN "${IMPP_ALPN}" is required`),
        );
        return;
      }
      this.attach(new TlsSocketCarrier(socket, this.limits.preAuthMaxFrameBytes), ticket);
    });
    this.#server.on('error', () => undefined);
  }

  protected get netServer(): NetServer {
    return this.#server;
  }

  protected get defaultPort(): number {
    return DEFAULT_CLIENT_PORT;
  }
}
