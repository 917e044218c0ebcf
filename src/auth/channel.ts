/**
 * Builds {@link ChannelInfo} from an established Node TLS socket.
 *
 * The tls-exporter value follows RFC 9266 §2: `exportKeyingMaterial(32, "EXPORTER-Channel-Binding")`
 * with an empty context (in TLS 1.3 "no context" and an empty one are the same, RFC 8446 §7.5). It is only
 * taken for TLS 1.3: RFC 9266 §3 forbids tls-exporter on TLS 1.2 without extended master secret,
 * and impp speaks TLS 1.3 only anyway.
 */
import type { TLSSocket } from 'node:tls';
import type { ChannelInfo } from './types.js';

/** RFC 9266 §2 exporter label and length. */
export const TLS_EXPORTER_LABEL = 'EXPORTER-Channel-Binding';
export const TLS_EXPORTER_BYTES = 32;

/**
 * Channel facts of a connected TLS socket (client or server side). Call it after the handshake
 * (`secureConnect` / `secureConnection`). `peerCertificate: false` skips reading the peer's chain.
 *
 * @example
 * ```ts
 * server.on('secureConnection', (socket) => {
 *   const session = authenticator.begin(channelInfoFromTlsSocket(socket));
 * });
 * ```
 */
export function channelInfoFromTlsSocket(
  socket: TLSSocket,
  options: { readonly peerCertificate?: boolean } = {},
): ChannelInfo {
  const version = socket.getProtocol();
  const secure = version !== null;
  const exporter =
    secure && version === 'TLSv1.3'
      ? new Uint8Array(
          socket.exportKeyingMaterial(TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL, Buffer.alloc(0)),
        )
      : undefined;
  // Reading the peer chain costs a parse per connection; a client that does not need the
  // server's certificate as a ChannelInfo fact (Node already verified it) can skip it.
  const peer = options.peerCertificate === false ? null : socket.getPeerCertificate(true);
  const hasPeer = peer !== null && 'raw' in peer && (peer.raw as unknown) instanceof Buffer;
  const chain: Uint8Array[] = [];
  if (hasPeer) {
    // Walk issuers; a self-signed root points at itself, so stop at repetition or a bound.
    // Node's types say `issuerCertificate` is always set; at run time it can be missing.
    let current = peer.issuerCertificate as typeof peer | undefined;
    const seen = new Set<string>([peer.fingerprint256]);
    for (let i = 0; i < 10 && current !== undefined; i++) {
      const raw: unknown = current.raw;
      if (!(raw instanceof Buffer) || seen.has(current.fingerprint256)) break;
      seen.add(current.fingerprint256);
      chain.push(new Uint8Array(raw));
      current = current.issuerCertificate;
    }
  }
  return {
    secure,
    ...(version !== null ? { tlsVersion: version } : {}),
    ...(exporter !== undefined ? { tlsExporter: exporter } : {}),
    ...(hasPeer
      ? {
          peerCertificate: new Uint8Array(peer.raw),
          peerCertificateChain: chain,
          peerCertificateVerified: socket.authorized,
        }
      : {}),
    ...(socket.remoteAddress !== undefined ? { remoteAddress: socket.remoteAddress } : {}),
  };
}
