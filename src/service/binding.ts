/**
 * Device binding (docs/protocol.md, "Device binding"): after SASL, the device proves it holds its
 * Ed25519 identity key by signing a server nonce bound to this TLS connection's tls-exporter value
 * (RFC 9266), so a signature cannot be replayed on another connection or for another account.
 */
import { verify } from '../crypto/index.js';
import { signingInput } from '../trust/canonical.js';
import { DEVICE_BINDING_LABEL } from './protocol.js';

/** What the device signs. Any change here must change {@link DEVICE_BINDING_LABEL}. */
export interface BindingFields {
  /** The 32-byte tls-exporter value of this connection. */
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
