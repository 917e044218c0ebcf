/**
 * Well-formed sealed-object envelopes with random ciphertext, for the store tests, the crash
 * child and the store benchmark. Free of vitest so child processes can import it.
 */
import { randomBytes } from '../../../src/crypto/index.js';
import { encodeCbor } from '../../../src/seal/cbor.js';
import { SealKind } from '../../../src/seal/constants.js';
import { presenceHeaderMap, sessionHeaderMap } from '../../../src/seal/header.js';

/** Random bytes: what a store must refuse where a sealed object belongs. */
export function sealed(size = 200): Uint8Array {
  return randomBytes(size);
}

/** Builds with a ciphertext length chosen so the whole object is `size` bytes (or the minimum). */
function fit(build: (ciphertextLength: number) => Uint8Array, size: number): Uint8Array {
  let length = Math.max(1, size - (build(1).length - 1));
  let bytes = build(length);
  for (let i = 0; i < 4 && bytes.length !== size && length > 1; i++) {
    length = Math.max(1, length + size - bytes.length);
    bytes = build(length);
  }
  return bytes;
}

/**
 * A well-formed session-sealed envelope (docs/formats.md §4.1) for `recipientDevice` with
 * message id `id`, random ciphertext, `size` bytes in total. The store reads only its header.
 */
export function sealedMessage(
  recipientDevice: string,
  id: Uint8Array,
  size = 200,
  kind: 'message' | 'keyDistribution' = 'message',
): Uint8Array {
  const code = kind === 'message' ? SealKind.message : SealKind.keyDistribution;
  return fit((n) => {
    const map = sessionHeaderMap(code, 1, recipientDevice, id, randomBytes(32));
    map.set(6, randomBytes(n));
    return encodeCbor(map);
  }, size);
}

/** A well-formed presence update envelope (docs/formats.md §5) of `size` bytes. */
export function sealedPresence(presentity: string, version: number, size = 300): Uint8Array {
  return fit((n) => {
    const map = presenceHeaderMap({
      suite: 1,
      presentity,
      epoch: 1,
      presenceVersion: version,
      timestamp: 1_700_000_000_000,
      deviceId: 'phone',
      nonce: randomBytes(24),
    });
    map.set(9, randomBytes(n));
    map.set(10, randomBytes(64));
    return encodeCbor(map);
  }, size);
}

/** A 16-byte message id. */
export function messageId(): Uint8Array {
  return randomBytes(16);
}
