/**
 * impp service (public entry point `impp/service`): the server for one domain.
 *
 * @example
 * ```ts
 * import { ImppServer } from 'impp/service';
 * ```
 */
export { ImppServer, type ImppServerOptions } from './server.js';
export { ClientFrame, PROTOCOL_LIMITS, DEVICE_BINDING_LABEL } from './protocol.js';
export { bindingTranscript, verifyBinding, type BindingFields } from './binding.js';
