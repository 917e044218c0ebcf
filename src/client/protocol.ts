/**
 * The client protocol's numbers as the SDK names them; the one table lives in
 * src/protocol/frames.ts, shared with the service.
 */
import { DEVICE_BINDING_LABEL, bindingTranscript } from '../protocol/frames.js';

/**
 * Application frame types (docs/protocol.md, "Client protocol" §2).
 *
 * @example
 * ```ts
 * conn.send(Frames.SEND, { id: 7, object: sealed.bytes });
 * ```
 */
export { ClientFrame as Frames } from '../protocol/frames.js';

/** Label of the device-binding signature. */
export const BINDING_LABEL = DEVICE_BINDING_LABEL;

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
  return bindingTranscript({ exporter, nonce, address, deviceId, identityKey });
}
