/**
 * impp service (public entry point `impp/service`): the server for one domain.
 *
 * @example
 * ```ts
 * import { ImppServer } from 'impp/service';
 * ```
 */
export { ImppServer, type ImppListenOptions, type ImppServerOptions } from './server.js';
export {
  REDACTED_FIELDS,
  SILENT_LOG,
  createServiceLogger,
  type ServiceLog,
  type ServiceLoggerOptions,
} from './logging.js';
export { authenticatorFromConfig, type ConfiguredAuthenticator } from './authenticator.js';
export { ClientFrame, PROTOCOL_LIMITS, DEVICE_BINDING_LABEL } from './protocol.js';
export { bindingTranscript, verifyBinding, type BindingFields } from './binding.js';
export type {
  BundleAnswer,
  DevicesAnswer,
  FederationInbound,
  InboundItem,
  PresentityAction,
  RemoteRouter,
  WatcherAction,
} from './remote.js';
