/**
 * The client's copy of the client protocol's numbers (docs/protocol.md, "Client protocol"). The
 * client may not import src/service (architecture rule), so the table lives here too; a test
 * checks that both copies agree.
 */
import { signingInput } from '../trust/canonical.js';

/**
 * Application frame types (docs/protocol.md, "Client protocol" §2).
 *
 * @example
 * ```ts
 * conn.send(Frames.SEND, { id: 7, object: sealed.bytes });
 * ```
 */
export const Frames = {
  AUTH_OFFER: 16,
  AUTH_START: 17,
  AUTH_RESPONSE: 18,
  AUTH_CHALLENGE: 19,
  AUTH_SUCCESS: 20,
  AUTH_FAILURE: 21,
  BIND: 22,
  BOUND: 23,
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
  RESULT: 48,
  ERROR: 49,
  DELIVER: 64,
  PRESENCE: 65,
  SUBSCRIPTION: 66,
} as const;

/** Label of the device-binding signature. */
export const BINDING_LABEL = 'impp/v1/device-binding';

/**
 * What a device signs to bind itself to an authenticated connection: canonical CBOR of
 * `[label, exporter, nonce, address, deviceId, identityKey]`.
 *
 * @example
 * ```ts
 * const sig = sign(identity.secretKey, bindingInput(exporter, nonce, address, deviceId, key));
 * ```
 */
export function bindingInput(
  exporter: Uint8Array,
  nonce: Uint8Array,
  address: string,
  deviceId: string,
  identityKey: Uint8Array,
): Uint8Array {
  return signingInput(BINDING_LABEL, [exporter, nonce, address, deviceId, identityKey]);
}
