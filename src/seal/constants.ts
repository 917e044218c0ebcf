/**
 * Wire constants of sealed objects: versions, the cipher suite, kinds, domain-separation labels,
 * KDF info strings and size limits. docs/formats.md ("Envelope and sealed objects") is the
 * normative description; the values here must match it byte for byte.
 */

/** The only envelope version this code writes or reads. Anything else is refused. */
export const ENVELOPE_VERSION = 1;

/**
 * Cipher suite 1: X25519 (RFC 7748), Ed25519 (RFC 8032), XChaCha20-Poly1305
 * (draft-irtf-cfrg-xchacha-03), HKDF-SHA-256 (RFC 5869), HMAC-SHA-256 (RFC 2104).
 */
export const SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256 = 1;

/** Suites this build accepts. Allowed suites come from this table, never from the wire. */
export const SUPPORTED_SUITES: readonly number[] = [SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256];

/** The kinds of sealed object. Each has its own label, so one cannot be passed off as another. */
export const SealKind = {
  message: 1,
  presence: 2,
  keyDistribution: 3,
} as const;

/** One of the {@link SealKind} values. */
export type SealKindValue = (typeof SealKind)[keyof typeof SealKind];

/** Human-readable kind names, as exposed by the header side. */
export type SealKindName = keyof typeof SealKind;

/** Domain-separation label of each kind: first element of every AEAD AD and signature input. */
export const KIND_LABELS: Readonly<Record<SealKindValue, string>> = {
  1: 'impp/v1/message',
  2: 'impp/v1/presence',
  3: 'impp/v1/key-distribution',
};

/** Label suffixes: `<kind label>/<suffix>`. */
export const LABEL_SUFFIX = {
  /** AD of the sealed-sender layer (kinds 1 and 3). */
  sealedSender: 'sealed-sender',
  /** AD of the Double Ratchet layer (kinds 1 and 3). */
  content: 'content',
  /** Sender signature input (kinds 1 and 3). */
  signature: 'signature',
  /** AD of the presence update (kind 2). */
  update: 'update',
} as const;

/** Signature label over a signed prekey (X3DH §3.2: Sig(IK, Encode(SPK))). */
export const LABEL_SIGNED_PREKEY = 'impp/v1/signed-prekey';

/** HKDF info of the X3DH KDF (X3DH §2.1 "info", §2.2 KDF). */
export const INFO_X3DH = 'impp/v1/x3dh';
/** HKDF info of KDF_RK (Double Ratchet §5.2). */
export const INFO_RATCHET_ROOT = 'impp/v1/ratchet/root';
/** HKDF info expanding a message key into an AEAD key and nonce (Double Ratchet §5.2 ENCRYPT). */
export const INFO_RATCHET_MESSAGE = 'impp/v1/ratchet/message-key';
/** HKDF info of the sealed-sender layer key. */
export const INFO_SEALED_SENDER = 'impp/v1/sealed-sender';

/** Content type of a key-distribution payload (kind 3). */
export const CONTENT_TYPE_PRESENCE_KEY = 'application/vnd.impp.presence-key+cbor';
/** Content type of the presence state a device shares with its own other devices (kind 3). */
export const CONTENT_TYPE_PRESENCE_SYNC = 'application/vnd.impp.presence-sync+cbor';

/** Upper bound of any sealed object on the wire, checked before decoding. */
export const MAX_SEALED_BYTES = 256 * 1024;
/** Upper bound of a payload (CPIM, PIDF, key) inside a sealed object. */
export const MAX_PAYLOAD_BYTES = 192 * 1024;
/** Upper bound of address and content-type strings, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 512;
/** Opaque message id length. */
export const MESSAGE_ID_BYTES = 16;

/** Double Ratchet §3.2 MAX_SKIP: the most message keys skipped in one chain. */
export const MAX_SKIP = 1000;
/** Global cap of stored skipped message keys per session; the oldest are evicted first. */
export const MAX_SKIPPED_KEYS = 2000;
/** Message ids remembered per receiving device for replay detection. */
export const REPLAY_CACHE_SIZE = 10_000;
/** Presence key epochs a watcher keeps (the newest ones). */
export const PRESENCE_EPOCHS_KEPT = 2;
