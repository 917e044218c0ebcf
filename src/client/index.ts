/**
 * impp client SDK (public entry point `impp/client`).
 *
 * @example
 * ```ts
 * import { ImppClient, FileStateStore } from 'impp/client';
 * ```
 */
export {
  ImppClient,
  type DeviceListEvent,
  type ImppClientEvents,
  type ImppClientOptions,
  type KeyChangeEvent,
  type MissingMessagesEvent,
  type ReceivedMessage,
  type ReceivedPresence,
  type SubscriptionEvent,
  type TrustWarningEvent,
} from './client.js';
export { FileStateStore, type ClientStateStore } from './state.js';
export type { DeliveryNotice } from '../protocol/notice.js';
export { Frames, BINDING_LABEL, bindingInput } from './protocol.js';
