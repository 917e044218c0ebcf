/**
 * Device binding (docs/protocol.md, "Device binding"): after SASL, the device proves it holds its
 * Ed25519 identity key by signing a server nonce bound to this TLS connection's tls-exporter value
 * (RFC 9266), so a signature cannot be replayed on another connection or for another account.
 */
import { verify } from '../crypto/index.js';
import { bindingTranscript, type BindingFields } from '../protocol/frames.js';

export { bindingTranscript, type BindingFields };

/**
 * Checks a device-binding signature.
 *
 * @example
 * ```ts
 * if (!verifyBinding(fields, signature)) refuse();
 * ```
 */
export function verifyBinding(f: BindingFields, signature: Uint8Array): boolean {
  return verify(f.identityKey, bindingTranscript(f), signature);
}
