/**
 * Sealed sender: messages (and key-distribution objects) sealed for one recipient device.
 *
 * Layers, outside in (docs/formats.md, "Session-sealed objects"):
 * 1. Envelope, read by servers: version, suite, kind, recipient device, message id, a one-time
 *    X25519 key E, and a ciphertext.
 * 2. Sealed-sender layer: XChaCha20-Poly1305 under HKDF(X25519(E, IK_recipient)), AD = label ‖
 *    envelope header. Inside: sender device, sender identity key, X3DH data (prekey messages)
 *    and a Double Ratchet message.
 * 3. Double Ratchet layer (AD binds the X3DH AD, the envelope header, the sender device and the
 *    ratchet header). Inside: timestamp, per-session sequence number, content type, payload and
 *    the sender device's Ed25519 signature over all of it and the envelope header.
 *
 * Every failure to open is `ERR_SEAL_OPEN_FAILED` with one message, except an unknown version,
 * suite or kind (`ERR_SEAL_UNSUPPORTED`, public anyway) and a replay (`ERR_SEAL_REPLAY`), which is
 * only reported for bytes this device already authenticated, or after a successful open, so it
 * is no oracle. A failed open changes nothing: work happens on copies, committed on success.
 */
import {
  constantTimeEqual,
  concatBytes,
  ed25519PublicKeyToX25519,
  ed25519SecretKeyToX25519,
  generateDhKeyPair,
  hkdfSha256,
  SecretBytes,
  sha256,
  sign,
  utf8,
  verify,
  wipe,
  x25519,
  xchachaOpen,
  xchachaSeal,
} from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import { parseDeviceAddress, type DeviceAddress } from '../trust/address.js';
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
  INFO_SEALED_SENDER,
  KIND_LABELS,
  LABEL_SUFFIX,
  MAX_PAYLOAD_BYTES,
  MAX_SEALED_BYTES,
  MAX_TEXT_BYTES,
  MESSAGE_ID_BYTES,
  SealKind,
  SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
} from './constants.js';
import { parseEnvelope, sessionHeaderMap, type SessionEnvelope } from './header.js';
import {
  initRatchetInitiator,
  initRatchetResponder,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetHeaderMap,
  readRatchetHeader,
  encodeRatchetHeader,
} from './ratchet.js';
import {
  canonicalDevice,
  cloneSession,
  STATE,
  wipeSession,
  type DeviceState,
  type PendingPrekey,
  type SealDevice,
  type SessionState,
} from './session.js';
import { MAX_PREKEY_ID, x3dhInitiate, x3dhRespond, type PrekeyBundle } from './x3dh.js';

/** Kinds sealed through a pairwise session. */
export type SessionKind = typeof SealKind.message | typeof SealKind.keyDistribution;

/** The one message of every failed open. */
const OPEN_FAILED_MESSAGE = 'sealed object could not be opened';

function openFailed(): ImppError {
  return new ImppError('ERR_SEAL_OPEN_FAILED', OPEN_FAILED_MESSAGE);
}

/** What to seal for one recipient device. */
export interface SealTarget {
  /** The recipient device. */
  readonly to: string | DeviceAddress;
  /** Needed only when no session with `to` exists yet, or when `identityKey` replaces it. */
  readonly bundle?: PrekeyBundle;
  /**
   * The identity key `to` must have (from a verified device list). A session bound to another key
   * is never used: it was made with a replaced key, and sealing over it would let the holder of
   * that key read on. The caller has accepted the change, so a new session is started from
   * `bundle`, whose identity key must be this one (`ERR_IDENTITY_CHANGED` otherwise), and on
   * success the old session is dropped. Without a bundle that is `ERR_SEAL_SESSION_STATE`.
   */
  readonly identityKey?: Uint8Array;
}

/** A sealed object ready to hand to the server. */
export interface SealedObject {
  /** `user@domain/deviceId` of the recipient device. */
  readonly to: string;
  readonly messageId: Uint8Array;
  readonly bytes: Uint8Array;
}

/** What a successful open yields. */
export interface OpenedObject {
  readonly kind: 'message' | 'keyDistribution';
  readonly messageId: Uint8Array;
  /** The sender device, authenticated by its identity key. */
  readonly sender: DeviceAddress;
  readonly senderDevice: string;
  /** The sender device's identity key: check it against the key log / safety number. */
  readonly senderIdentityKey: Uint8Array;
  /** The sender's clock, milliseconds since the epoch (not trusted for ordering). */
  readonly timestamp: number;
  readonly contentType: string;
  readonly payload: Uint8Array;
  /** The sender's per-session sequence number (1 for the first message of a session). */
  readonly sequence: number;
  /** Messages of this session skipped between the highest sequence seen before and this one. */
  readonly gap: number;
  /** `true` when this message is older than one already opened (it arrived out of order). */
  readonly late: boolean;
  /** `true` when this message created a new session (X3DH prekey message). */
  readonly newSession: boolean;
}

/** Options of an open. */
export interface OpenOptions {
  /**
   * Called, after authentication, when a prekey message starts a new session: return `false`
   * to refuse (`ERR_IDENTITY_UNTRUSTED`). When a session with that device exists under another
   * identity key, the change is refused (`ERR_IDENTITY_CHANGED`) unless this returns `true`.
   * Not yet verified when called: that this identity key belongs to that address (key log,
   * device list, safety number) — that is what the callback decides.
   */
  readonly trustNewIdentity?: (senderDevice: string, identityKey: Uint8Array) => boolean;
}

/**
 * X25519 forms of remote identity keys, keyed by the session's (immutable) key array: the
 * Ed25519 → X25519 map costs a field inversion per seal otherwise. Public data only.
 */
const x25519IdentityCache = new WeakMap<Uint8Array, Uint8Array>();

function remoteX25519(identityKey: Uint8Array): Uint8Array {
  let x = x25519IdentityCache.get(identityKey);
  if (x === undefined) {
    x = ed25519PublicKeyToX25519(identityKey);
    x25519IdentityCache.set(identityKey, x);
  }
  return x;
}

function label(kind: SessionKind, suffix: string): string {
  return `${KIND_LABELS[kind]}/${suffix}`;
}

/** Sealed-sender layer key and nonce: HKDF(X25519 output, E ‖ IK_recipient, info, 56). */
function sealedSenderKey(
  shared: SecretBytes,
  ephemeralKey: Uint8Array,
  recipientIdentityKey: Uint8Array,
): { key: SecretBytes; nonce: Uint8Array } {
  const okm = hkdfSha256(
    shared.expose(),
    concatBytes(ephemeralKey, recipientIdentityKey),
    utf8(INFO_SEALED_SENDER),
    56,
  );
  shared.wipe();
  const out = { key: new SecretBytes(okm.slice(0, 32)), nonce: okm.slice(32) };
  wipe(okm);
  return out;
}

function signatureInput(
  kind: SessionKind,
  headerBytes: Uint8Array,
  senderDevice: string,
  timestamp: number,
  sequence: number,
  contentType: string,
  payload: Uint8Array,
): Uint8Array {
  return transcript(
    label(kind, LABEL_SUFFIX.signature),
    headerBytes,
    senderDevice,
    timestamp,
    sequence,
    contentType,
    sha256(payload),
  );
}

function contentAd(
  kind: SessionKind,
  x3dhAd: Uint8Array,
  headerBytes: Uint8Array,
  senderDevice: string,
  ratchetHeaderBytes: Uint8Array,
): Uint8Array {
  return transcript(
    label(kind, LABEL_SUFFIX.content),
    x3dhAd,
    headerBytes,
    senderDevice,
    ratchetHeaderBytes,
  );
}

function checkContentType(contentType: string): void {
  if (
    typeof contentType !== 'string' ||
    contentType.length === 0 ||
    Buffer.byteLength(contentType, 'utf8') > MAX_TEXT_BYTES
  ) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'contentType must be 1..512 bytes of text');
  }
}

/**
 * @internal Seals one object of `kind` for one device. Sessions are created from `bundle` when
 * none exists. The device state changes only when sealing succeeds.
 */
export function sealSessionObject(
  device: SealDevice,
  kind: SessionKind,
  target: SealTarget,
  contentType: string,
  payload: Uint8Array,
): SealedObject {
  const s = device[STATE];
  const to = canonicalDevice(target.to);
  checkContentType(contentType);
  if (!(payload instanceof Uint8Array) || payload.length > MAX_PAYLOAD_BYTES) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `payload must be at most ${MAX_PAYLOAD_BYTES} bytes`,
    );
  }
  if (to === s.device) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'a device does not seal for itself');
  }
  const existing = s.sessions.get(to);
  const expected = target.identityKey;
  const replaced =
    existing !== undefined &&
    expected !== undefined &&
    !constantTimeEqual(existing.remoteIdentityKey, expected);
  if (
    expected !== undefined &&
    (existing === undefined || replaced) &&
    target.bundle !== undefined &&
    !constantTimeEqual(target.bundle.identityKey, expected)
  ) {
    throw new ImppError(
      'ERR_IDENTITY_CHANGED',
      'prekey bundle is not for the expected identity key',
    );
  }
  const session =
    existing !== undefined && !replaced
      ? cloneSession(existing)
      : newInitiatorSession(s, to, target);
  try {
    const messageId = s.rng(MESSAGE_ID_BYTES);
    const eSecret = s.rng(32);
    const ephemeral = generateDhKeyPair(eSecret);
    wipe(eSecret);
    const headerMap = sessionHeaderMap(
      kind,
      SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
      to,
      messageId,
      ephemeral.publicKey,
    );
    const headerBytes = encodeCbor(headerMap);
    const sequence = session.sendSequence + 1;
    const timestamp = Math.trunc(s.clock());
    const signature = sign(
      s.identity.secretKey,
      signatureInput(kind, headerBytes, s.device, timestamp, sequence, contentType, payload),
    );
    const content = encodeCbor(
      new Map<number, CborValue>([
        [0, timestamp],
        [1, sequence],
        [2, contentType],
        [3, payload],
        [4, signature],
      ]),
    );
    const { header, ciphertext } = ratchetEncrypt(session.ratchet, content, (hb) =>
      contentAd(kind, session.associatedData, headerBytes, s.device, hb),
    );
    wipe(content);
    const inner = new Map<number, CborValue>([
      [0, s.device],
      [1, s.identity.publicKey],
    ]);
    if (session.pendingPrekey !== null) inner.set(2, pendingToCbor(session.pendingPrekey));
    inner.set(3, ratchetHeaderMap(header));
    inner.set(4, ciphertext);
    const innerBytes = encodeCbor(inner);
    const { key, nonce } = sealedSenderKey(
      x25519(ephemeral.secretKey, remoteX25519(session.remoteIdentityKey)),
      ephemeral.publicKey,
      session.remoteIdentityKey,
    );
    ephemeral.secretKey.wipe();
    const sealed = xchachaSeal(
      key,
      nonce,
      innerBytes,
      transcript(label(kind, LABEL_SUFFIX.sealedSender), headerBytes),
    );
    key.wipe();
    headerMap.set(6, sealed);
    const bytes = encodeCbor(headerMap);
    if (bytes.length > MAX_SEALED_BYTES) {
      throw new ImppError('ERR_SEAL_TOO_LARGE', 'sealed object exceeds the size limit');
    }
    session.sendSequence = sequence;
    // Commit.
    if (existing !== undefined) wipeSession(existing);
    if (replaced) {
      // Kept for simultaneous initiation under one key only: the replaced key opens nothing.
      const archived = s.archivedSessions.get(to);
      if (archived !== undefined && !constantTimeEqual(archived.remoteIdentityKey, expected)) {
        wipeSession(archived);
        s.archivedSessions.delete(to);
      }
    }
    s.sessions.set(to, session);
    return { to, messageId, bytes };
  } catch (e) {
    wipeSession(session);
    throw e;
  }
}

function pendingToCbor(p: PendingPrekey): Map<number, CborValue> {
  const m = new Map<number, CborValue>([
    [0, p.baseKey],
    [1, p.signedPrekeyId],
  ]);
  if (p.oneTimePrekeyId !== undefined) m.set(2, p.oneTimePrekeyId);
  return m;
}

function newInitiatorSession(s: DeviceState, to: string, target: SealTarget): SessionState {
  const bundle = target.bundle;
  if (bundle === undefined) {
    throw new ImppError(
      'ERR_SEAL_SESSION_STATE',
      'no session with this device: a prekey bundle is needed',
    );
  }
  if (canonicalDevice(bundle.device) !== to) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'prekey bundle is for another device');
  }
  const init = x3dhInitiate(s.identity, bundle, s.rng);
  const ratchet = initRatchetInitiator(init.sharedKey, init.signedPrekeyPublic, s.rng);
  init.sharedKey.wipe();
  return {
    remoteDevice: to,
    remoteIdentityKey: Uint8Array.from(bundle.identityKey),
    associatedData: init.associatedData,
    ratchet,
    pendingPrekey: {
      baseKey: init.baseKey,
      signedPrekeyId: init.signedPrekeyId,
      ...(init.oneTimePrekeyId !== undefined ? { oneTimePrekeyId: init.oneTimePrekeyId } : {}),
    },
    initiatorBaseKey: null,
    sendSequence: 0,
    recvSequence: 0,
  };
}

/**
 * Seals a message payload (e.g. a Message/CPIM document) for one device.
 *
 * @example
 * ```ts
 * const { bytes } = sealMessage(alice, { to: 'bob@example.org/laptop', bundle }, 'message/cpim', cpim);
 * ```
 */
export function sealMessage(
  device: SealDevice,
  target: SealTarget,
  contentType: string,
  payload: Uint8Array,
): SealedObject {
  return sealSessionObject(device, SealKind.message, target, contentType, payload);
}

/**
 * Seals the same payload once per device: every device of the recipient user and the sender's
 * own other devices (the sending device itself is skipped). Targets without a session need a
 * bundle.
 *
 * @example
 * ```ts
 * const out = sealForDevices(alice, [...bobDevices, ...aliceOtherDevices], 'message/cpim', cpim);
 * for (const o of out) send(o.to, o.bytes);
 * ```
 */
export function sealForDevices(
  device: SealDevice,
  targets: readonly SealTarget[],
  contentType: string,
  payload: Uint8Array,
): SealedObject[] {
  const out: SealedObject[] = [];
  const seen = new Set<string>();
  for (const t of targets) {
    const to = canonicalDevice(t.to);
    if (to === device.device || seen.has(to)) continue;
    seen.add(to);
    out.push(sealSessionObject(device, SealKind.message, t, contentType, payload));
  }
  return out;
}

/** Parsed sealed-sender layer. */
interface Inner {
  readonly senderDevice: string;
  readonly senderIdentityKey: Uint8Array;
  readonly prekey: PendingPrekey | null;
  readonly ratchetHeader: ReturnType<typeof readRatchetHeader>;
  readonly ratchetHeaderBytes: Uint8Array;
  readonly ciphertext: Uint8Array;
}

function parseInner(bytes: Uint8Array): Inner {
  const m = expectMap(decodeCborStrict(bytes, MAX_SEALED_BYTES), [0, 1, 3, 4], [2]);
  let prekey: PendingPrekey | null = null;
  if (m.has(2)) {
    const p = expectMap(m.get(2), [0, 1], [2]);
    prekey = {
      baseKey: bytesField(p, 0, 32),
      signedPrekeyId: uintField(p, 1, MAX_PREKEY_ID),
      ...(p.has(2) ? { oneTimePrekeyId: uintField(p, 2, MAX_PREKEY_ID) } : {}),
    };
  }
  const ratchetHeader = readRatchetHeader(m.get(3));
  const senderDevice = textField(m, 0, MAX_TEXT_BYTES);
  if (canonicalDevice(senderDevice) !== senderDevice) throw openFailed();
  return {
    senderDevice,
    senderIdentityKey: bytesField(m, 1, 32),
    prekey,
    ratchetHeader,
    ratchetHeaderBytes: encodeRatchetHeader(ratchetHeader),
    ciphertext: bytesField(m, 4, undefined, MAX_SEALED_BYTES),
  };
}

/** Where a candidate session for an open comes from. */
type Origin = 'current' | 'archived' | 'new';

/** A session to try: always a copy (or a new session), never live state. */
interface Candidate {
  readonly origin: Origin;
  readonly session: SessionState;
  readonly consumedOneTimePrekey?: number;
}

function matchesBaseKey(session: SessionState | undefined, baseKey: Uint8Array): boolean {
  return (
    session !== undefined &&
    session.initiatorBaseKey !== null &&
    constantTimeEqual(session.initiatorBaseKey, baseKey)
  );
}

/**
 * The sessions to try, in order. A message without X3DH data (or with the X3DH data that
 * created a session we hold) opens with that session: the current one, then the archived one
 * kept after a replacement, so that two devices starting a session with each other at once
 * (each then holding the other's) still converge. Otherwise X3DH as responder gives a new one.
 */
function candidatesForOpen(s: DeviceState, inner: Inner): Candidate[] {
  const current = s.sessions.get(inner.senderDevice);
  const archived = s.archivedSessions.get(inner.senderDevice);
  const p = inner.prekey;
  const out: Candidate[] = [];
  const consider = (origin: Origin, session: SessionState | undefined): void => {
    if (session === undefined) return;
    // Sender impersonation: the identity key in the sealed part must be the session's.
    if (!constantTimeEqual(session.remoteIdentityKey, inner.senderIdentityKey)) return;
    out.push({ origin, session: cloneSession(session) });
  };
  if (p === null) {
    consider('current', current);
    consider('archived', archived);
    return out;
  }
  if (matchesBaseKey(current, p.baseKey)) {
    consider('current', current);
    return out;
  }
  if (matchesBaseKey(archived, p.baseKey)) {
    consider('archived', archived);
    return out;
  }
  const spk = s.signedPrekeys.get(p.signedPrekeyId);
  if (spk === undefined) return out;
  let opk;
  if (p.oneTimePrekeyId !== undefined) {
    opk = s.oneTimePrekeys.get(p.oneTimePrekeyId);
    if (opk === undefined) return out;
  }
  const { sharedKey, associatedData } = x3dhRespond(
    s.identity,
    spk,
    opk,
    inner.senderIdentityKey,
    p.baseKey,
  );
  const ratchet = initRatchetResponder(sharedKey, spk.keyPair);
  sharedKey.wipe();
  out.push({
    origin: 'new',
    session: {
      remoteDevice: inner.senderDevice,
      remoteIdentityKey: inner.senderIdentityKey,
      associatedData,
      ratchet,
      pendingPrekey: null,
      initiatorBaseKey: p.baseKey,
      sendSequence: 0,
      recvSequence: 0,
    },
    ...(p.oneTimePrekeyId !== undefined ? { consumedOneTimePrekey: p.oneTimePrekeyId } : {}),
  });
  return out;
}

/** The authenticated content of a session-sealed object. */
interface Content {
  readonly timestamp: number;
  readonly sequence: number;
  readonly contentType: string;
  readonly payload: Uint8Array;
}

/** Ratchet-decrypts with one candidate (mutating its copy), parses and verifies the content. */
function openWith(
  candidate: Candidate,
  env: SessionEnvelope,
  inner: Inner,
  kind: SessionKind,
  rng: DeviceState['rng'],
): Content {
  const draft = candidate.session;
  const contentBytes = ratchetDecrypt(
    draft.ratchet,
    inner.ratchetHeader,
    inner.ciphertext,
    contentAd(
      kind,
      draft.associatedData,
      env.headerBytes,
      inner.senderDevice,
      inner.ratchetHeaderBytes,
    ),
    rng,
  );
  try {
    const c = expectMap(decodeCborStrict(contentBytes, MAX_SEALED_BYTES), [0, 1, 2, 3, 4]);
    const content: Content = {
      timestamp: uintField(c, 0),
      sequence: uintField(c, 1),
      contentType: textField(c, 2, MAX_TEXT_BYTES),
      payload: bytesField(c, 3, undefined, MAX_PAYLOAD_BYTES),
    };
    const signed = signatureInput(
      kind,
      env.headerBytes,
      inner.senderDevice,
      content.timestamp,
      content.sequence,
      content.contentType,
      content.payload,
    );
    if (!verify(inner.senderIdentityKey, signed, bytesField(c, 4, 64))) throw openFailed();
    return content;
  } finally {
    wipe(contentBytes);
  }
}

/** Commits an opened candidate: the only place an open changes the device's sessions. */
function commit(s: DeviceState, candidate: Candidate, device: string): void {
  const current = s.sessions.get(device);
  const archived = s.archivedSessions.get(device);
  if (candidate.consumedOneTimePrekey !== undefined) {
    s.oneTimePrekeys.get(candidate.consumedOneTimePrekey)?.keyPair.secretKey.wipe();
    s.oneTimePrekeys.delete(candidate.consumedOneTimePrekey);
  }
  if (candidate.origin === 'current') {
    if (current !== undefined) wipeSession(current);
  } else {
    // The session that opened becomes current; the one it displaces is kept as archived, but
    // only under the same identity key: archiving exists for simultaneous initiation, and after
    // an accepted identity change the replaced key must not open anything or become current
    // again without the caller's consent.
    if (archived !== undefined) wipeSession(archived);
    if (
      current !== undefined &&
      constantTimeEqual(current.remoteIdentityKey, candidate.session.remoteIdentityKey)
    ) {
      s.archivedSessions.set(device, current);
    } else {
      if (current !== undefined) wipeSession(current);
      s.archivedSessions.delete(device);
    }
  }
  s.sessions.set(device, candidate.session);
}

/**
 * Opens a session-sealed object of the expected kind. See the module comment for the errors.
 *
 * @internal Callers use {@link openMessage} or the presence key-distribution functions.
 */
export function openSessionObject(
  device: SealDevice,
  bytes: Uint8Array,
  expectedKind: SessionKind,
  options: OpenOptions = {},
): OpenedObject {
  const s = device[STATE];
  let env: SessionEnvelope;
  try {
    const parsed = parseEnvelope(bytes);
    if (parsed.kind !== expectedKind) throw openFailed(); // context confusion
    env = parsed;
  } catch (e) {
    if (isImppError(e, 'ERR_SEAL_UNSUPPORTED')) throw e;
    throw openFailed();
  }
  if (env.recipientDevice !== s.device) throw openFailed();
  const digest = sha256(bytes);
  // These exact bytes were authenticated before: a replay. Public knowledge, so no oracle.
  if (s.replay.isExactReplay(env.messageId, digest)) {
    throw new ImppError('ERR_SEAL_REPLAY', 'sealed object was already opened');
  }
  const candidates: Candidate[] = [];
  try {
    const { key, nonce } = sealedSenderKey(
      x25519Identity(s, env.ephemeralKey),
      env.ephemeralKey,
      s.identity.publicKey,
    );
    let innerBytes: Uint8Array;
    try {
      innerBytes = xchachaOpen(
        key,
        nonce,
        env.ciphertext,
        transcript(label(expectedKind, LABEL_SUFFIX.sealedSender), env.headerBytes),
      );
    } finally {
      key.wipe();
    }
    const inner = parseInner(innerBytes);
    candidates.push(...candidatesForOpen(s, inner));
    let chosen: Candidate | undefined;
    let content: Content | undefined;
    for (const candidate of candidates) {
      try {
        content = openWith(candidate, env, inner, expectedKind, s.rng);
        chosen = candidate;
        break;
      } catch {
        // Try the next candidate; every failure ends as the one ERR_SEAL_OPEN_FAILED below.
      }
    }
    if (chosen === undefined || content === undefined) throw openFailed();
    // Authenticated from here on: the errors below are not oracles.
    if (s.replay.has(env.messageId)) {
      throw new ImppError('ERR_SEAL_REPLAY', 'message id was already used');
    }
    const draft = chosen.session;
    const newSession = chosen.origin === 'new';
    if (newSession) checkNewIdentity(s.sessions.get(inner.senderDevice), inner, options);
    const previousHighest = draft.recvSequence;
    const sequence = content.sequence;
    const gap = sequence > previousHighest + 1 ? sequence - previousHighest - 1 : 0;
    const late = sequence <= previousHighest;
    if (sequence > previousHighest) draft.recvSequence = sequence;
    // A reply proves the peer has the session: stop sending X3DH data (X3DH §3.3).
    if (inner.prekey === null) draft.pendingPrekey = null;
    commit(s, chosen, inner.senderDevice);
    for (const c of candidates) if (c !== chosen) wipeSession(c.session);
    candidates.length = 0;
    s.replay.add(env.messageId, digest);
    return {
      kind: expectedKind === SealKind.message ? 'message' : 'keyDistribution',
      messageId: env.messageId,
      sender: parseDeviceAddress(inner.senderDevice),
      senderDevice: inner.senderDevice,
      // A copy: the session keeps inner.senderIdentityKey, which the caller must not reach.
      senderIdentityKey: Uint8Array.from(inner.senderIdentityKey),
      timestamp: content.timestamp,
      contentType: content.contentType,
      payload: content.payload,
      sequence,
      gap,
      late,
      newSession,
    };
  } catch (e) {
    for (const c of candidates) wipeSession(c.session);
    if (
      isImppError(e, 'ERR_SEAL_REPLAY') ||
      isImppError(e, 'ERR_IDENTITY_UNTRUSTED') ||
      isImppError(e, 'ERR_IDENTITY_CHANGED')
    ) {
      throw e;
    }
    throw openFailed();
  }
}

/**
 * A new session (authenticated prekey message). When a session with that device already exists
 * under another identity key, the key changed: refused (`ERR_IDENTITY_CHANGED`) unless the caller
 * accepts it, as a safety-number change must be (X3DH §4.1). A brand-new sender is refused only
 * when the caller's check says so (`ERR_IDENTITY_UNTRUSTED`).
 */
function checkNewIdentity(
  existing: SessionState | undefined,
  inner: Inner,
  options: OpenOptions,
): void {
  const trust = options.trustNewIdentity;
  if (
    existing !== undefined &&
    !constantTimeEqual(existing.remoteIdentityKey, inner.senderIdentityKey)
  ) {
    if (trust?.(inner.senderDevice, inner.senderIdentityKey) !== true) {
      throw new ImppError('ERR_IDENTITY_CHANGED', 'sender identity key changed for this device');
    }
    return;
  }
  if (trust !== undefined && !trust(inner.senderDevice, inner.senderIdentityKey)) {
    throw new ImppError('ERR_IDENTITY_UNTRUSTED', 'sender identity key is not trusted');
  }
}

function x25519Identity(s: DeviceState, ephemeralKey: Uint8Array): SecretBytes {
  const ik = ed25519SecretKeyToX25519(s.identity.secretKey);
  try {
    return x25519(ik, ephemeralKey);
  } finally {
    ik.wipe();
  }
}

/**
 * Opens a sealed message addressed to this device: authenticates the sender, checks replay,
 * returns the payload. Throws `ERR_SEAL_OPEN_FAILED` (any failure), `ERR_SEAL_UNSUPPORTED`
 * (unknown version/suite/kind), `ERR_SEAL_REPLAY` (already opened).
 *
 * @example
 * ```ts
 * const m = openMessage(bob, bytes);
 * if (m.gap > 0) warnMissing(m.senderDevice, m.gap);
 * ```
 */
export function openMessage(
  device: SealDevice,
  bytes: Uint8Array,
  options: OpenOptions = {},
): OpenedObject {
  return openSessionObject(device, bytes, SealKind.message, options);
}
