/**
 * The client side of impp frames over TLS 1.3. Certificate verification cannot be turned off,
 * and there is no plaintext mode.
 */
import { isIP } from 'node:net';
import { type TLSSocket, connect } from 'node:tls';
import { ImppError } from '../errors.js';
import { IMPP_ALPN, TlsSocketCarrier } from './carrier.js';
import {
  type ClientOptions,
  clientTlsOptions,
  negotiateClient,
  resolveClientOptions,
  withDeadline,
} from './client-options.js';
import type { Connection } from './connection.js';
import { DEFAULT_CLIENT_PORT } from './limits.js';

/** Where and how to connect over TLS. */
export interface TlsConnectOptions extends ClientOptions {
  readonly host: string;
  /** Default {@link DEFAULT_CLIENT_PORT}. */
  readonly port?: number;
  /** Receives the TLS session (for resumption on the next connect). */
  readonly onSession?: (session: Buffer) => void;
}

/** The SNI option for a connection: host names only, never an IP literal. */
function sniFor(options: TlsConnectOptions): { servername?: string } {
  const name = options.servername ?? options.host;
  return isIP(name) === 0 ? { servername: name } : {};
}

/**
 * Connects, verifies the server certificate, runs the hello exchange, and resolves with an open
 * {@link Connection}. Rejects with a typed error: `ERR_TIMEOUT`, `ERR_VERSION_UNSUPPORTED`,
 * `ERR_CONNECTION_LIMIT` (if the server said so), `ERR_CONNECTION_CLOSED` (TLS failure,
 * refused, reset), …
 *
 * @example
 * ```ts
 * const conn = await connectTls({ host: 'im.example.com', ca: companyCaPem });
 * const binding = conn.channelBinding(); // for SCRAM-SHA-256-PLUS
 * ```
 */
export function connectTls(options: TlsConnectOptions): Promise<Connection> {
  const resolved = resolveClientOptions(options);
  let socket: TLSSocket | undefined;
  const attempt = new Promise<Connection>((resolve, reject) => {
    const s = connect({
      ...clientTlsOptions(options),
      host: options.host,
      port: options.port ?? DEFAULT_CLIENT_PORT,
      // SNI carries host names only (RFC 6066 §3); for an IP literal Node checks the certificate's
      // IP SAN without it, and warns (DEP0123) when one is set.
      ...sniFor(options),
      ALPNProtocols: [IMPP_ALPN],
    });
    socket = s;
    if (options.onSession !== undefined) s.on('session', options.onSession);
    const onEarlyError = (error: Error): void => {
      reject(new ImppError('ERR_CONNECTION_CLOSED', 'TLS connection failed', { cause: error }));
    };
    s.once('error', onEarlyError);
    const onEarlyClose = (): void => {
      reject(new ImppError('ERR_CONNECTION_CLOSED', 'connection closed before TLS completed'));
    };
    s.once('close', onEarlyClose);
    s.once('secureConnect', () => {
      // From here on the connection reports its own failures (with the typed reason).
      s.off('error', onEarlyError);
      s.off('close', onEarlyClose);
      if (s.getProtocol() !== 'TLSv1.3' || s.alpnProtocol !== IMPP_ALPN) {
        s.destroy();
        reject(
          new ImppError('ERR_PROTOCOL', `server did not agree to TLS 1.3 with ALPN "${IMPP_ALPN}"`),
        );
        return;
      }
      negotiateClient(new TlsSocketCarrier(s, resolved.maxFrameBytes), resolved).then(
        resolve,
        reject,
      );
    });
  });
  return withDeadline(attempt, resolved.connectTimeoutMs, () => socket?.destroy());
}
