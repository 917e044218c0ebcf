/**
 * Prekey bundles and the X3DH key agreement ("The X3DH Key Agreement Protocol", Marlinspike &
 * Perrin, revision 1, 2016-11-04), with curve X25519, hash SHA-256 and our own info string.
 *
 * Deviation, on purpose: identity keys are Ed25519 (they also sign device lists and messages)
 * and are converted to X25519 for the DH steps, instead of XEdDSA (X3DH §2.4 allows either
 * arrangement as long as one key serves both roles safely; libsodium's birational map is the
 * standard conversion). The associated data AD = IK_A ‖ IK_B uses the Ed25519 encodings.
 */
import {
  concatBytes,
  ed25519PublicKeyToX25519,
  ed25519SecretKeyToX25519,
  generateDhKeyPair,
  hkdfSha256,
  sign,
  utf8,
  verify,
  wipe,
  x25519,
  SecretBytes,
  type DhKeyPair,
  type SigningKeyPair,
} from '../crypto/index.js';
import { ImppError } from '../errors.js';
import {
  bytesField,
  decodeCborStrict,
  encodeCbor,
  expectMap,
  textField,
  transcript,
  uintField,
  type CborValue,
} from './cbor.js';
import {
  ENVELOPE_VERSION,
  INFO_X3DH,
  LABEL_SIGNED_PREKEY,
  MAX_TEXT_BYTES,
  SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
} from './constants.js';
import type { RandomSource } from './rng.js';

/** Largest prekey id (ids are unsigned 32-bit). */
export const MAX_PREKEY_ID = 0xffff_ffff;

/** A signed prekey with its private half (X3DH §2.4 SPK). */
export interface SignedPrekey {
  readonly id: number;
  readonly keyPair: DhKeyPair;
  /** Ed25519 signature by the identity key over `[LABEL_SIGNED_PREKEY, id, publicKey]`. */
  readonly signature: Uint8Array;
}

/** A one-time prekey with its private half (X3DH §2.4 OPK). */
export interface OneTimePrekey {
  readonly id: number;
  readonly keyPair: DhKeyPair;
}

/** The public bundle a server hands to an initiator (X3DH §3.2). */
export interface PrekeyBundle {
  /** `user@domain/deviceId` of the device the bundle belongs to. */
  readonly device: string;
  /** The device's Ed25519 identity key. */
  readonly identityKey: Uint8Array;
  readonly signedPrekey: {
    readonly id: number;
    readonly publicKey: Uint8Array;
    readonly signature: Uint8Array;
  };
  readonly oneTimePrekey?: { readonly id: number; readonly publicKey: Uint8Array };
}

/** X3DH §2.2: F is 32 0xFF bytes for X25519, prepended to the key material for domain separation. */
const F = new Uint8Array(32).fill(0xff);
const ZERO_SALT = new Uint8Array(32);

function checkId(id: number, field: string): void {
  if (!Number.isInteger(id) || id < 0 || id > MAX_PREKEY_ID) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${field} must be an integer 0..2^32-1`);
  }
}

function dhKeyPairFrom(rng: RandomSource): DhKeyPair {
  const secret = rng(32);
  const kp = generateDhKeyPair(secret);
  wipe(secret);
  return kp;
}

/** Signature input of a signed prekey. */
export function signedPrekeyTranscript(id: number, publicKey: Uint8Array): Uint8Array {
  return transcript(LABEL_SIGNED_PREKEY, id, publicKey);
}

/**
 * Generates a signed prekey (X3DH §3.2, "Sig(IKB, Encode(SPKB))", here with a label and the id).
 *
 * @example
 * ```ts
 * const spk = generateSignedPrekey(identity, 1, systemRandom);
 * ```
 */
export function generateSignedPrekey(
  identity: SigningKeyPair,
  id: number,
  rng: RandomSource,
): SignedPrekey {
  checkId(id, 'signed prekey id');
  const keyPair = dhKeyPairFrom(rng);
  return {
    id,
    keyPair,
    signature: sign(identity.secretKey, signedPrekeyTranscript(id, keyPair.publicKey)),
  };
}

/**
 * Generates `count` one-time prekeys with ids `firstId`, `firstId + 1`, ….
 *
 * @example
 * ```ts
 * const opks = generateOneTimePrekeys(1, 100, systemRandom);
 * ```
 */
export function generateOneTimePrekeys(
  firstId: number,
  count: number,
  rng: RandomSource,
): OneTimePrekey[] {
  checkId(firstId, 'first one-time prekey id');
  if (!Number.isInteger(count) || count < 0 || firstId + count - 1 > MAX_PREKEY_ID) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'one-time prekey count out of range');
  }
  const out: OneTimePrekey[] = [];
  for (let i = 0; i < count; i++) out.push({ id: firstId + i, keyPair: dhKeyPairFrom(rng) });
  return out;
}

/**
 * Checks the signed prekey signature of a bundle (X3DH §3.3: "Alice verifies the prekey
 * signature and aborts the protocol if verification fails").
 */
export function verifyBundle(bundle: PrekeyBundle): void {
  const spk = bundle.signedPrekey;
  if (!verify(bundle.identityKey, signedPrekeyTranscript(spk.id, spk.publicKey), spk.signature)) {
    throw new ImppError('ERR_CRYPTO_VERIFY_FAILED', 'prekey bundle: signature does not verify');
  }
}

/** X3DH §2.2 KDF(KM): HKDF-SHA-256 over F ‖ KM, zero salt, our info string, 32 bytes. */
function x3dhKdf(parts: SecretBytes[]): SecretBytes {
  const km = concatBytes(F, ...parts.map((p) => p.expose()));
  const sk = hkdfSha256(km, ZERO_SALT, utf8(INFO_X3DH), 32);
  wipe(km);
  for (const p of parts) p.wipe();
  return new SecretBytes(sk);
}

/** What the initiator learns from X3DH. */
export interface X3dhInitiation {
  readonly sharedKey: SecretBytes;
  /** AD = Encode(IK_A) ‖ Encode(IK_B) (X3DH §3.3). */
  readonly associatedData: Uint8Array;
  /** EK_A, the ephemeral ("base") public key sent in the prekey message. */
  readonly baseKey: Uint8Array;
  readonly signedPrekeyId: number;
  readonly signedPrekeyPublic: Uint8Array;
  readonly oneTimePrekeyId?: number;
}

/**
 * Initiator side (X3DH §3.3): DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
 * DH4 = DH(EK_A, OPK_B) when a one-time prekey was provided; SK = KDF(DH1 ‖ DH2 ‖ DH3 [‖ DH4]).
 * EK_A's private key is wiped before returning (§3.3 "Alice deletes her ephemeral private key").
 *
 * @example
 * ```ts
 * const init = x3dhInitiate(myIdentity, bundle, systemRandom);
 * ```
 */
export function x3dhInitiate(
  identity: SigningKeyPair,
  bundle: PrekeyBundle,
  rng: RandomSource,
): X3dhInitiation {
  verifyBundle(bundle);
  const ikA = ed25519SecretKeyToX25519(identity.secretKey);
  const ikB = ed25519PublicKeyToX25519(bundle.identityKey);
  const spkB = bundle.signedPrekey.publicKey;
  const ek = dhKeyPairFrom(rng);
  try {
    const parts = [x25519(ikA, spkB), x25519(ek.secretKey, ikB), x25519(ek.secretKey, spkB)];
    if (bundle.oneTimePrekey !== undefined) {
      parts.push(x25519(ek.secretKey, bundle.oneTimePrekey.publicKey));
    }
    const result: X3dhInitiation = {
      sharedKey: x3dhKdf(parts),
      associatedData: concatBytes(identity.publicKey, bundle.identityKey),
      baseKey: ek.publicKey,
      signedPrekeyId: bundle.signedPrekey.id,
      signedPrekeyPublic: spkB,
      ...(bundle.oneTimePrekey !== undefined ? { oneTimePrekeyId: bundle.oneTimePrekey.id } : {}),
    };
    return result;
  } finally {
    ikA.wipe();
    ek.secretKey.wipe();
  }
}

/**
 * Responder side (X3DH §3.4): the same four DH values from the other end. The caller deletes
 * the one-time prekey only once the first message has opened (X3DH §3.4, and our rule that a
 * failed open changes nothing).
 *
 * @example
 * ```ts
 * const { sharedKey, associatedData } = x3dhRespond(myIdentity, spk, opk, aliceIk, baseKey);
 * ```
 */
export function x3dhRespond(
  identity: SigningKeyPair,
  signedPrekey: SignedPrekey,
  oneTimePrekey: OneTimePrekey | undefined,
  remoteIdentityKey: Uint8Array,
  baseKey: Uint8Array,
): { sharedKey: SecretBytes; associatedData: Uint8Array } {
  const ikB = ed25519SecretKeyToX25519(identity.secretKey);
  try {
    const ikA = ed25519PublicKeyToX25519(remoteIdentityKey);
    const parts = [
      x25519(signedPrekey.keyPair.secretKey, ikA),
      x25519(ikB, baseKey),
      x25519(signedPrekey.keyPair.secretKey, baseKey),
    ];
    if (oneTimePrekey !== undefined) parts.push(x25519(oneTimePrekey.keyPair.secretKey, baseKey));
    return {
      sharedKey: x3dhKdf(parts),
      associatedData: concatBytes(remoteIdentityKey, identity.publicKey),
    };
  } finally {
    ikB.wipe();
  }
}

/**
 * Encodes a bundle as deterministic CBOR (docs/formats.md, "Prekey bundle").
 *
 * @example
 * ```ts
 * const bytes = encodePrekeyBundle(device.bundle());
 * ```
 */
export function encodePrekeyBundle(bundle: PrekeyBundle): Uint8Array {
  const m = new Map<number, CborValue>([
    [0, ENVELOPE_VERSION],
    [1, SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256],
    [2, bundle.device],
    [3, bundle.identityKey],
    [4, bundle.signedPrekey.id],
    [5, bundle.signedPrekey.publicKey],
    [6, bundle.signedPrekey.signature],
  ]);
  if (bundle.oneTimePrekey !== undefined) {
    m.set(7, bundle.oneTimePrekey.id);
    m.set(8, bundle.oneTimePrekey.publicKey);
  }
  return encodeCbor(m);
}

/**
 * Decodes and verifies a bundle: strict CBOR, exact keys, and the signed prekey signature.
 * Throws `ERR_SEAL_MALFORMED`, `ERR_SEAL_UNSUPPORTED` or `ERR_CRYPTO_VERIFY_FAILED`.
 *
 * @example
 * ```ts
 * const bundle = decodePrekeyBundle(bytesFromServer);
 * ```
 */
export function decodePrekeyBundle(bytes: Uint8Array): PrekeyBundle {
  const v = decodeCborStrict(bytes, 4096);
  const m = expectMap(v, [0, 1, 2, 3, 4, 5, 6], [7, 8]);
  if (
    uintField(m, 0) !== ENVELOPE_VERSION ||
    uintField(m, 1) !== SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256
  ) {
    throw new ImppError('ERR_SEAL_UNSUPPORTED', 'unsupported prekey bundle version or suite');
  }
  if (m.has(7) !== m.has(8)) {
    throw new ImppError('ERR_SEAL_MALFORMED', 'sealed object is malformed: one-time prekey');
  }
  const bundle: PrekeyBundle = {
    device: textField(m, 2, MAX_TEXT_BYTES),
    identityKey: bytesField(m, 3, 32),
    signedPrekey: {
      id: uintField(m, 4, MAX_PREKEY_ID),
      publicKey: bytesField(m, 5, 32),
      signature: bytesField(m, 6, 64),
    },
    ...(m.has(7)
      ? { oneTimePrekey: { id: uintField(m, 7, MAX_PREKEY_ID), publicKey: bytesField(m, 8, 32) } }
      : {}),
  };
  verifyBundle(bundle);
  return bundle;
}
