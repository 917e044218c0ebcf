/**
 * impp/seal: the client side of sealing. Devices, pairwise sessions (X3DH + Double Ratchet),
 * sealed-sender messages, sealed presence with key distribution.
 *
 * Servers import `impp/seal/header` only (src/seal/header.ts): it parses envelopes and can open
 * nothing. This module is for clients.
 */
export {
  ENVELOPE_VERSION,
  SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
  SealKind,
  MAX_SEALED_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_SKIP,
  MAX_SKIPPED_KEYS,
  REPLAY_CACHE_SIZE,
  type SealKindName,
  type SealKindValue,
} from './constants.js';
export {
  readEnvelopeHeader,
  parseEnvelope,
  type EnvelopeHeader,
  type ParsedEnvelope,
} from './header.js';
export { SealDevice, type CreateDeviceOptions } from './session.js';
export {
  sealMessage,
  sealForDevices,
  openMessage,
  type SealTarget,
  type SealedObject,
  type OpenedObject,
  type OpenOptions,
} from './message.js';
export {
  PresencePublisher,
  PresenceWatch,
  newPresenceKey,
  sealPresence,
  sealPresenceKey,
  openPresenceKey,
  openKeyDistribution,
  type PresenceKey,
  type PresenceMerge,
  type OpenedPresence,
  type ReceivedKeyDistribution,
  type ReceivedPresenceKey,
  type ReceivedPresenceSync,
  type DenialRecord,
} from './presence.js';
export { encodePrekeyBundle, decodePrekeyBundle, type PrekeyBundle } from './x3dh.js';
