/**
 * The client protocol's numbers and signature inputs that both ends must agree on
 * (docs/protocol.md, "Client protocol"): one table, imported by the service and by the client
 * SDK, so the two cannot drift apart.
 */
import { signingInput } from '../trust/canonical.js';

/**
 * Application frame types (≥ 16). Requests carry a client-chosen `id`; answers echo it.
 *
 * @example
 * ```ts
 * conn.send(ClientFrame.RESULT, { id, duplicate: false });
 * ```
 */
export const ClientFrame = {
  /** s→c, unsolicited, first application frame: `{ mechanisms: text[] }`. */
  AUTH_OFFER: 16,
  /** c→s `{ mechanism: text, initial: bytes | null }`. */
  AUTH_START: 17,
  /** c→s `{ data: bytes }`. */
  AUTH_RESPONSE: 18,
  /** s→c `{ data: bytes }`. */
  AUTH_CHALLENGE: 19,
  /** s→c `{ additionalData: bytes | null, address: text, nonce: bytes(32) }`. */
  AUTH_SUCCESS: 20,
  /** s→c `{ failure: text }`, then CLOSE `ERR_AUTH_FAILED`. */
  AUTH_FAILURE: 21,
  /** c→s `{ deviceId: text, identityKey: bytes(32), signature: bytes(64) }`. */
  BIND: 22,
  /** s→c `{ address: text, deviceId: text, registered: bool }`. */
  BOUND: 23,

  /** c→s requests (each body has `id: uint`). */
  REGISTER: 32,
  PUT_DEVICE_LIST: 33,
  GET_DEVICES: 34,
  GET_BUNDLES: 35,
  ADD_PREKEYS: 36,
  SEND: 37,
  ACK: 38,
  SUBSCRIBE: 39,
  UNSUBSCRIBE: 40,
  DECIDE: 41,
  LIST_WATCHERS: 42,
  PUBLISH: 43,
  FETCH: 44,
  GET_LOG: 45,

  /** s→c answers. */
  RESULT: 48,
  ERROR: 49,

  /**
   * s→c pushes. DELIVER: `{ seq, object, from? }` (`from`: the domain a sealed object arrived
   * from, when not the server's own) or `{ seq, id, notice }` (a delivery-failure notice,
   * ./notice.ts); FETCH answers with the same items.
   */
  DELIVER: 64,
  PRESENCE: 65,
  SUBSCRIPTION: 66,
} as const;

/** Label of the device-binding signature (docs/protocol.md, "Device binding"). */
export const DEVICE_BINDING_LABEL = 'impp/v1/device-binding';

/** What the device signs. Any change here must change {@link DEVICE_BINDING_LABEL}. */
export interface BindingFields {
  /** The 32-byte tls-exporter value of this connection (RFC 9266). */
  readonly exporter: Uint8Array;
  /** The 32-byte nonce from AUTH_SUCCESS. */
  readonly nonce: Uint8Array;
  /** The authenticated `user@domain`. */
  readonly address: string;
  readonly deviceId: string;
  readonly identityKey: Uint8Array;
}

/**
 * The signature input of device binding: canonical CBOR of
 * `[label, exporter, nonce, address, deviceId, identityKey]`.
 *
 * @example
 * ```ts
 * const input = bindingTranscript({ exporter, nonce, address, deviceId, identityKey });
 * ```
 */
export function bindingTranscript(f: BindingFields): Uint8Array {
  return signingInput(DEVICE_BINDING_LABEL, [
    f.exporter,
    f.nonce,
    f.address,
    f.deviceId,
    f.identityKey,
  ]);
}
