/**
 * impp transport: TLS 1.3 and WebSocket-over-TLS carrying length-prefixed CBOR frames, with
 * version negotiation, limits, keep-alive and back-pressure (docs/protocol.md, "Transport").
 *
 * Stands alone: imports nothing from trust, seal, auth or service.
 *
 * @example
 * ```ts
 * import { TlsTransportServer, connectTls } from 'impp/transport';
 * const server = new TlsTransportServer({ key, cert });
 * server.on('connection', (conn) => conn.on('frame', (f) => conn.send(f.type, f.body)));
 * await server.listen({ port: 0 });
 * ```
 */
export type { CborValue } from './cbor-strict.js';
export { decodeStrictCbor, encodeStrictCbor, scanStrictCbor } from './cbor-strict.js';
export type { EncodedFrame, Frame, FrameDecoderOptions } from './frame-codec.js';
export {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  HARD_MAX_FRAME_BYTES,
  MAX_FRAME_TYPE,
  decodeFramePayload,
  encodeFrame,
} from './frame-codec.js';
export type { CloseBody, HelloBody, WelcomeBody } from './control.js';
export {
  FIRST_APPLICATION_FRAME_TYPE,
  FrameType,
  SUPPORTED_VERSIONS,
  negotiateVersion,
} from './control.js';
export type { TransportLimits } from './limits.js';
export {
  DEFAULT_CLIENT_PORT,
  DEFAULT_LIMITS,
  DEFAULT_SERVER_PORT,
  DEFAULT_WEBSOCKET_PORT,
  MIN_FRAME_BYTES,
  resolveLimits,
} from './limits.js';
export { IMPP_ALPN, TLS_EXPORTER_LABEL, TLS_EXPORTER_LENGTH } from './carrier.js';
export type {
  ConnectionCloseInfo,
  ConnectionEvents,
  ConnectionState,
  ConnectionStats,
} from './connection.js';
export { Connection } from './connection.js';
export type {
  ConnectionAttemptInfo,
  ListenOptions,
  TransportServerEvents,
  TransportServerOptions,
  TransportServerStats,
} from './server-core.js';
export { TlsTransportServer } from './tls-server.js';
export type { TlsConnectOptions } from './tls-client.js';
export { connectTls } from './tls-client.js';
export type { OriginCheck, WebSocketServerOptions } from './ws-server.js';
export { WebSocketTransportServer } from './ws-server.js';
export { IMPP_WS_SUBPROTOCOL } from './ws-carrier.js';
export type { WebSocketConnectOptions } from './ws-client.js';
export { connectWebSocket } from './ws-client.js';
export type { ClientOptions } from './client-options.js';
export { sourceKey } from './admission.js';
