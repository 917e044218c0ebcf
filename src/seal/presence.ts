/**
 * Sealed presence with cryptographic access control.
 *
 * A presentity holds a presence key (32 bytes, with an epoch). An update is the PIDF document
 * encrypted once under that key (XChaCha20-Poly1305, random 24-byte nonce, AD = label ‖ header)
 * and signed by the publishing device over label ‖ header ‖ ciphertext, so the same bytes go to
 * every watcher: sealing costs one AEAD and one signature whatever the number of watchers.
 *
 * The key reaches each authorized watcher device as a key-distribution object (its own kind and
 * label) inside the pairwise session. Revoking a watcher rotates the key (next epoch) and sends it
 * to the remaining watchers only; the revoked one cannot open any later update. Watchers refuse
 * updates signed by a device outside the presentity's verified device set, and versions not
 * greater than the last accepted one (`ERR_SEAL_ROLLBACK`, reported only after authentication).
 *
 * All devices of one user share the presence key, its epoch and the set of authorized watcher
 * devices: a device that changes them seals the new state for its own other listed devices
 * (content type presence-sync, same kind), which merge it ({@link PresencePublisher.merge}). A
 * watcher therefore needs one key per epoch whichever device published. Versions stay monotonic
 * across devices without coordination: a publisher never goes below the caller's clock
 * (milliseconds), nor below any version a sibling reported.
 */
import { inspect } from 'node:util';
import {
  constantTimeEqual,
  SecretBytes,
  sign,
  verify,
  xchachaOpen,
  xchachaSeal,
} from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import { formatAddress, parseAddress, type Address, type DeviceAddress } from '../trust/address.js';
import {
  bytesField,
  decodeCborStrict,
  encodeCbor,
  expectMap,
  textField,
  transcript,
  uintField,
  type CborMap,
  type CborValue,
} from './cbor.js';
import {
  CONTENT_TYPE_PRESENCE_KEY,
  CONTENT_TYPE_PRESENCE_SYNC,
  KIND_LABELS,
  LABEL_SUFFIX,
  MAX_PAYLOAD_BYTES,
  MAX_TEXT_BYTES,
  PRESENCE_EPOCHS_KEPT,
  SealKind,
  SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
} from './constants.js';
import { sealCheckOn, type WeakenSealOption } from './defences.js';
import { parseEnvelope, presenceHeaderMap, type PresenceEnvelope } from './header.js';
import {
  openSessionObject,
  sealSessionObject,
  type OpenOptions,
  type SealedObject,
  type SealTarget,
} from './message.js';
import { canonicalDevice, STATE, type SealDevice } from './session.js';

/** A presence key and its epoch. */
export interface PresenceKey {
  readonly epoch: number;
  readonly key: SecretBytes;
}

const PRESENCE_UPDATE_LABEL = `${KIND_LABELS[SealKind.presence]}/${LABEL_SUFFIX.update}`;
const PRESENCE_SIGNATURE_LABEL = `${KIND_LABELS[SealKind.presence]}/${LABEL_SUFFIX.signature}`;
const MAX_EPOCH = 0xffff_ffff;
/** Version of the persisted watcher and publisher formats. */
const PRESENCE_STATE_VERSION = 1;

function tuples(v: CborValue | undefined): CborMap[] {
  if (!Array.isArray(v)) throw new ImppError('ERR_SEAL_MALFORMED', 'expected a list');
  return (v as readonly CborValue[]).map((t) => {
    if (!Array.isArray(t)) throw new ImppError('ERR_SEAL_MALFORMED', 'expected a tuple');
    return new Map<number, CborValue>((t as CborValue[]).map((x, i) => [i, x]));
  });
}

function openFailed(): ImppError {
  return new ImppError('ERR_SEAL_OPEN_FAILED', 'sealed object could not be opened');
}

/** The presentity (`user@domain`) a device belongs to. */
function presentityOf(device: SealDevice): string {
  const slash = device.device.lastIndexOf('/');
  return device.device.slice(0, slash);
}

/**
 * A fresh presence key for `epoch` (1 for the first), drawn from the device's random source.
 *
 * @example
 * ```ts
 * let key = newPresenceKey(phone, 1);
 * ```
 */
export function newPresenceKey(device: SealDevice, epoch: number): PresenceKey {
  if (!Number.isInteger(epoch) || epoch < 1 || epoch > MAX_EPOCH) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'presence key epoch must be 1..2^32-1');
  }
  return { epoch, key: new SecretBytes(device[STATE].rng(32)) };
}

/**
 * Seals one presence update (a PIDF document) under `presenceKey`, signed by `device`.
 *
 * @example
 * ```ts
 * const update = sealPresence(phone, key, 42, pidfBytes);
 * server.publish(update); // fanned out unchanged to every watcher
 * ```
 */
export function sealPresence(
  device: SealDevice,
  presenceKey: PresenceKey,
  version: number,
  pidf: Uint8Array,
): Uint8Array {
  const s = device[STATE];
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'presence version must be a positive integer');
  }
  if (!(pidf instanceof Uint8Array) || pidf.length > MAX_PAYLOAD_BYTES) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `pidf must be at most ${MAX_PAYLOAD_BYTES} bytes`);
  }
  const nonce = s.rng(24);
  const header = presenceHeaderMap({
    suite: SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
    presentity: presentityOf(device),
    epoch: presenceKey.epoch,
    presenceVersion: version,
    timestamp: Math.trunc(s.clock()),
    deviceId: device.device.slice(device.device.lastIndexOf('/') + 1),
    nonce,
  });
  const headerBytes = encodeCbor(header);
  const ciphertext = xchachaSeal(
    presenceKey.key,
    nonce,
    pidf,
    transcript(PRESENCE_UPDATE_LABEL, headerBytes),
  );
  const signature = sign(
    s.identity.secretKey,
    transcript(PRESENCE_SIGNATURE_LABEL, headerBytes, ciphertext),
  );
  header.set(9, ciphertext);
  header.set(10, signature);
  return encodeCbor(header);
}

/** An opened presence update. */
export interface OpenedPresence {
  readonly presentity: string;
  readonly deviceId: string;
  readonly epoch: number;
  readonly version: number;
  readonly timestamp: number;
  readonly pidf: Uint8Array;
}

/** A presence key as received by a watcher. */
export interface ReceivedPresenceKey {
  readonly presentity: string;
  readonly epoch: number;
  readonly key: SecretBytes;
  readonly senderDevice: string;
  readonly senderIdentityKey: Uint8Array;
}

/**
 * What a watcher knows about one presentity: its verified devices (from the trust layer's
 * signed device list), the presence keys received, and the last version accepted.
 *
 * @example
 * ```ts
 * const watch = new PresenceWatch('alice@example.org', new Map([['phone', alicePhoneKey]]));
 * watch.installKey(openPresenceKey(bob, keyObject));
 * const p = watch.open(updateBytes);
 * ```
 */
export class PresenceWatch {
  readonly presentity: string;
  #devices: Map<string, Uint8Array>;
  readonly #keys = new Map<number, SecretBytes>();
  #lastVersion = 0;

  constructor(presentity: string | Address, devices: ReadonlyMap<string, Uint8Array>) {
    this.presentity = formatAddress(
      typeof presentity === 'string' ? parseAddress(presentity) : presentity,
    );
    this.#devices = new Map(devices);
  }

  /** Replaces the verified device set (device id → Ed25519 identity key). */
  setDevices(devices: ReadonlyMap<string, Uint8Array>): void {
    this.#devices = new Map(devices);
  }

  /** Whether `deviceId` is in the verified device set. */
  hasDevice(deviceId: string): boolean {
    return this.#devices.has(deviceId);
  }

  /** Highest version accepted so far (0 before the first). */
  get lastVersion(): number {
    return this.#lastVersion;
  }

  /** Epochs whose keys are held, ascending. */
  get epochs(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  /**
   * Installs a presence key received through {@link openPresenceKey}. The sender must be a
   * verified device of this presentity (else `ERR_SEAL_OPEN_FAILED`); an epoch older than every
   * key held is `ERR_SEAL_ROLLBACK`. Only the newest epochs are kept.
   */
  installKey(received: ReceivedPresenceKey): void {
    const slash = received.senderDevice.lastIndexOf('/');
    const senderPresentity = received.senderDevice.slice(0, slash);
    const known = this.#devices.get(received.senderDevice.slice(slash + 1));
    if (
      received.presentity !== this.presentity ||
      senderPresentity !== this.presentity ||
      known === undefined ||
      !constantTimeEqual(known, received.senderIdentityKey)
    ) {
      throw openFailed();
    }
    if (this.#keys.has(received.epoch)) return; // the same epoch again: nothing to do
    const newest = Math.max(0, ...this.#keys.keys());
    if (received.epoch <= newest - PRESENCE_EPOCHS_KEPT) {
      throw new ImppError('ERR_SEAL_ROLLBACK', 'presence key epoch is older than the keys held');
    }
    this.#keys.set(received.epoch, new SecretBytes(Uint8Array.from(received.key.expose())));
    for (const e of this.epochs.slice(0, Math.max(0, this.#keys.size - PRESENCE_EPOCHS_KEPT))) {
      this.#keys.get(e)?.wipe();
      this.#keys.delete(e);
    }
  }

  /**
   * Opens an update of this presentity. `ERR_SEAL_OPEN_FAILED` for any failure (wrong
   * presentity, unknown device, bad signature, no key for the epoch, bad tag),
   * `ERR_SEAL_UNSUPPORTED` for an unknown version/suite/kind, `ERR_SEAL_ROLLBACK` for an
   * authentic update whose version is not greater than the last accepted.
   */
  open(bytes: Uint8Array, options?: WeakenSealOption): OpenedPresence {
    let env: PresenceEnvelope;
    try {
      const parsed = parseEnvelope(bytes);
      if (parsed.kind !== SealKind.presence) throw openFailed();
      env = parsed;
    } catch (e) {
      if (isImppError(e, 'ERR_SEAL_UNSUPPORTED')) throw e;
      throw openFailed();
    }
    const deviceKey = this.#devices.get(env.deviceId);
    const key = this.#keys.get(env.epoch);
    if (env.presentity !== this.presentity || deviceKey === undefined || key === undefined) {
      throw openFailed();
    }
    if (
      !verify(
        deviceKey,
        transcript(PRESENCE_SIGNATURE_LABEL, env.headerBytes, env.ciphertext),
        env.signature,
      )
    ) {
      throw openFailed();
    }
    let pidf: Uint8Array;
    try {
      pidf = xchachaOpen(
        key,
        env.nonce,
        env.ciphertext,
        transcript(PRESENCE_UPDATE_LABEL, env.headerBytes),
      );
    } catch {
      throw openFailed();
    }
    if (sealCheckOn(options, 'presenceRollbackCheck') && env.presenceVersion <= this.#lastVersion) {
      pidf.fill(0);
      throw new ImppError('ERR_SEAL_ROLLBACK', 'presence version is not newer than the last');
    }
    this.#lastVersion = env.presenceVersion;
    return {
      presentity: env.presentity,
      deviceId: env.deviceId,
      epoch: env.epoch,
      version: env.presenceVersion,
      timestamp: env.timestamp,
      pidf,
    };
  }

  /**
   * The watcher state as versioned deterministic CBOR (keys included: store it encrypted at
   * rest). Persisting `lastVersion` is what keeps rollback protection across restarts.
   */
  serialise(): Uint8Array {
    return encodeCbor(
      new Map<number, CborValue>([
        [0, PRESENCE_STATE_VERSION],
        [1, this.presentity],
        [2, [...this.#devices].map(([id, key]) => [id, key])],
        [3, this.epochs.map((e) => [e, (this.#keys.get(e) as SecretBytes).expose()])],
        [4, this.#lastVersion],
      ]),
    );
  }

  /** Restores {@link PresenceWatch.serialise} output; `ERR_SEAL_SESSION_STATE` if invalid. */
  static restore(bytes: Uint8Array): PresenceWatch {
    try {
      const m = expectMap(decodeCborStrict(bytes, 1 << 20), [0, 1, 2, 3, 4]);
      if (uintField(m, 0) !== PRESENCE_STATE_VERSION) {
        throw new ImppError('ERR_SEAL_UNSUPPORTED', 'unsupported presence state version');
      }
      const devices = new Map<string, Uint8Array>();
      for (const t of tuples(m.get(2))) devices.set(textField(t, 0, 64), bytesField(t, 1, 32));
      const w = new PresenceWatch(textField(m, 1, MAX_TEXT_BYTES), devices);
      for (const t of tuples(m.get(3))) {
        w.#keys.set(uintField(t, 0, MAX_EPOCH), new SecretBytes(bytesField(t, 1, 32)));
      }
      w.#lastVersion = uintField(m, 4);
      return w;
    } catch (e) {
      if (isImppError(e, 'ERR_SEAL_UNSUPPORTED')) throw e;
      throw new ImppError('ERR_SEAL_SESSION_STATE', 'persisted presence state is invalid');
    }
  }

  toJSON(): { presentity: string; lastVersion: number; epochs: number[] } {
    return { presentity: this.presentity, lastVersion: this.#lastVersion, epochs: this.epochs };
  }

  [inspect.custom](): string {
    return `PresenceWatch(${this.presentity}, v${this.#lastVersion}, [redacted])`;
  }
}

function keyPayload(presentity: string, key: PresenceKey): Uint8Array {
  return encodeCbor(
    new Map<number, CborValue>([
      [0, presentity],
      [1, key.epoch],
      [2, key.key.expose()],
    ]),
  );
}

/**
 * Seals a presence key for one watcher device (kind key-distribution) inside the pairwise
 * session; it can never be opened as a chat message, nor a message as a key.
 *
 * @example
 * ```ts
 * const obj = sealPresenceKey(phone, { to: 'bob@example.org/laptop', bundle }, key);
 * ```
 */
export function sealPresenceKey(
  device: SealDevice,
  target: SealTarget,
  presenceKey: PresenceKey,
): SealedObject {
  const payload = keyPayload(presentityOf(device), presenceKey);
  try {
    return sealSessionObject(
      device,
      SealKind.keyDistribution,
      target,
      CONTENT_TYPE_PRESENCE_KEY,
      payload,
    );
  } finally {
    payload.fill(0);
  }
}

/** A presence state received from another device of the same user. */
export interface ReceivedPresenceSync {
  readonly presentity: string;
  readonly epoch: number;
  readonly key: SecretBytes;
  /** The highest version the sender published or heard of. */
  readonly version: number;
  /** The watcher devices the sender holds as authorized (canonical addresses). */
  readonly watchers: readonly string[];
  readonly senderDevice: string;
  readonly senderIdentityKey: Uint8Array;
  /** The sender's record of users this user denied or approved again (empty from format 0). */
  readonly denials: readonly DenialRecord[];
}

/**
 * One user's latest denial decision, as this user's devices share it (format 1 of the presence
 * state): carried, not interpreted, by the seal layer; the client merges the records (the later
 * `stamp` wins, a tie keeps the denial).
 */
export interface DenialRecord {
  /** `user@domain`, canonical. */
  readonly user: string;
  /** `true`: denied; `false`: approved again after a denial (kept so the approval travels). */
  readonly denied: boolean;
  /** Orders decisions on one user across devices: milliseconds, kept monotonic by the client. */
  readonly stamp: number;
}

/** Either payload a key-distribution object can carry. */
export type ReceivedKeyDistribution =
  | ({ readonly type: 'key' } & ReceivedPresenceKey)
  | ({ readonly type: 'sync' } & ReceivedPresenceSync);

/**
 * Most watcher devices a presence state carries; the payload limit (192 KiB) binds first for
 * longer addresses, some 5,000 devices of 40-byte addresses.
 */
const MAX_SYNC_WATCHERS = 16_384;
/** Most denial records a presence state carries (the payload limit binds first here too). */
export const MAX_SYNC_DENIALS = 16_384;
/**
 * Presence state formats: 0 (key, epoch, version, watchers) and 1 (also the denial records, key
 * 6). Written: 1. Format 0 is still read: it carries no denial record, and a missing record
 * lifts no denial (the client's merge only takes records), so reading it loses no protection.
 */
const SYNC_FORMAT = 1;

/**
 * Opens a key-distribution object, a presence key for a watcher or a presence state from a
 * sibling device; the session object can be opened only once, so the type is told afterwards.
 * The result is still unverified against the device lists: {@link PresenceWatch.installKey} and
 * {@link PresencePublisher.merge} check the sender.
 *
 * @example
 * ```ts
 * const r = openKeyDistribution(bob, bytes);
 * if (r.type === 'key') watch.installKey(r);
 * ```
 */
export function openKeyDistribution(
  device: SealDevice,
  bytes: Uint8Array,
  options: OpenOptions = {},
): ReceivedKeyDistribution {
  const opened = openSessionObject(device, bytes, SealKind.keyDistribution, options);
  try {
    const sender = {
      senderDevice: opened.senderDevice,
      senderIdentityKey: opened.senderIdentityKey,
    };
    if (opened.contentType === CONTENT_TYPE_PRESENCE_KEY) {
      const m = expectMap(decodeCborStrict(opened.payload, 1024), [0, 1, 2]);
      return {
        type: 'key',
        presentity: textField(m, 0, MAX_TEXT_BYTES),
        epoch: uintField(m, 1, MAX_EPOCH),
        key: new SecretBytes(bytesField(m, 2, 32)),
        ...sender,
      };
    }
    if (opened.contentType === CONTENT_TYPE_PRESENCE_SYNC) {
      // Formats 0 and 1 are understood; anything else is refused like a bad object.
      const decoded = decodeCborStrict(opened.payload, MAX_PAYLOAD_BYTES);
      const format = uintField(expectMap(decoded, [0], [1, 2, 3, 4, 5, 6]), 0);
      if (format > SYNC_FORMAT) throw openFailed();
      const m = expectMap(decoded, format === 0 ? [0, 1, 2, 3, 4, 5] : [0, 1, 2, 3, 4, 5, 6]);
      const epoch = uintField(m, 2, MAX_EPOCH);
      if (epoch < 1) throw openFailed();
      const list = m.get(5);
      if (!Array.isArray(list) || list.length > MAX_SYNC_WATCHERS) throw openFailed();
      const watchers = (list as readonly CborValue[]).map((w) => {
        if (typeof w !== 'string') throw openFailed();
        return canonicalDevice(w);
      });
      return {
        type: 'sync',
        presentity: textField(m, 1, MAX_TEXT_BYTES),
        epoch,
        key: new SecretBytes(bytesField(m, 3, 32)),
        version: uintField(m, 4),
        watchers,
        denials: format === 0 ? [] : readDenials(m.get(6)),
        ...sender,
      };
    }
    throw openFailed();
  } catch {
    throw openFailed();
  } finally {
    opened.payload.fill(0);
  }
}

/** Key 6 of a format 1 presence state: `[user, stamp, 1 | 0]` tuples, one per user. */
function readDenials(v: CborValue | undefined): DenialRecord[] {
  if (!Array.isArray(v) || v.length > MAX_SYNC_DENIALS) throw openFailed();
  const seen = new Set<string>();
  return (v as readonly CborValue[]).map((t) => {
    if (!Array.isArray(t) || t.length !== 3) throw openFailed();
    const [user, stamp, flag] = t as readonly CborValue[];
    if (
      typeof user !== 'string' ||
      typeof stamp !== 'number' ||
      !Number.isSafeInteger(stamp) ||
      stamp < 0 ||
      (flag !== 0 && flag !== 1)
    ) {
      throw openFailed();
    }
    const canonical = formatAddress(parseAddress(user));
    if (canonical !== user || seen.has(user)) throw openFailed();
    seen.add(user);
    return { user, denied: flag === 1, stamp };
  });
}

/**
 * Opens a key-distribution object that must carry a presence key (a presence state is refused
 * as `ERR_SEAL_OPEN_FAILED`). The result still has to be accepted by the watcher's
 * {@link PresenceWatch.installKey}, which checks the sender against the verified device set.
 *
 * @example
 * ```ts
 * watch.installKey(openPresenceKey(bob, bytes));
 * ```
 */
export function openPresenceKey(
  device: SealDevice,
  bytes: Uint8Array,
  options: OpenOptions = {},
): ReceivedPresenceKey {
  const r = openKeyDistribution(device, bytes, options);
  if (r.type !== 'key') {
    r.key.wipe();
    throw openFailed();
  }
  return r;
}

/** What merging a sibling's presence state asks of the caller. */
export type PresenceMerge =
  /** Nothing to send: the state was taken or already known. */
  | 'done'
  /** The sender is behind (or won a tie it must learn of): send it this device's state. */
  | 'reply'
  /** Two keys for one epoch and this device's lost: rotate, then distribute and share. */
  | 'rotate';

/** A sibling's state is taken only from another device on the user's verified device list. */
function checkSibling(
  device: SealDevice,
  received: ReceivedPresenceSync,
  siblings: ReadonlyMap<string, Uint8Array>,
): void {
  const presentity = presentityOf(device);
  const known = siblings.get(received.senderDevice);
  if (
    received.presentity !== presentity ||
    received.senderDevice === canonicalDevice(device.device) ||
    !received.senderDevice.startsWith(`${presentity}/`) ||
    known === undefined ||
    !constantTimeEqual(known, received.senderIdentityKey)
  ) {
    throw openFailed();
  }
}

/**
 * The presentity side: current key, version counter and the watcher devices authorized.
 *
 * @example
 * ```ts
 * const pub = new PresencePublisher(phone);
 * send(pub.authorize({ to: 'bob@example.org/laptop', bundle }));
 * fanOut(pub.publish(pidf));
 * send(pub.revoke('bob@example.org/laptop')); // new key to the others only
 * ```
 */
export class PresencePublisher {
  readonly #device: SealDevice;
  #key: PresenceKey;
  #version: number;
  readonly #watchers = new Map<string, SealTarget>();

  constructor(device: SealDevice, key?: PresenceKey, lastVersion = 0) {
    this.#device = device;
    this.#key = key ?? newPresenceKey(device, 1);
    this.#version = lastVersion;
  }

  /** Epoch of the current key. */
  get epoch(): number {
    return this.#key.epoch;
  }

  /** Last version published. */
  get version(): number {
    return this.#version;
  }

  /** Authorized watcher devices. */
  get watchers(): string[] {
    return [...this.#watchers.keys()];
  }

  /** Authorizes a watcher device and seals the current key for it. */
  authorize(target: SealTarget): SealedObject {
    const sealed = sealPresenceKey(this.#device, target, this.#key);
    this.#watchers.set(sealed.to, { to: sealed.to });
    return sealed;
  }

  /**
   * Seals the next update once, for every watcher: version `max(last + 1, notBelow)`. A caller
   * with sibling devices passes its clock in milliseconds, so that devices which have not heard
   * of each other's last version still publish above it (the server and watchers refuse any
   * version not above the stored one); a clock running ahead only makes versions larger.
   */
  publish(pidf: Uint8Array, notBelow = 0): Uint8Array {
    const version = Math.max(this.#version + 1, Math.trunc(notBelow));
    const bytes = sealPresence(this.#device, this.#key, version, pidf);
    this.#version = version;
    return bytes;
  }

  /**
   * Revokes watcher devices: rotates to a new key (next epoch) and seals it for the remaining
   * watchers only. Returns the key-distribution objects to send. Addresses are canonicalised
   * first (watchers are stored canonical), so any spelling of a device revokes it.
   */
  revoke(...devices: (string | DeviceAddress)[]): SealedObject[] {
    this.drop(...devices);
    return this.rotate();
  }

  /** Removes watcher devices without rotating (the caller rotates: {@link rotate}). */
  drop(...devices: (string | DeviceAddress)[]): void {
    for (const d of devices) this.#watchers.delete(canonicalDevice(d));
  }

  /**
   * Rotates the key and distributes it to every remaining watcher. `targets` supplies bundles for
   * watcher devices this device has no session with yet (authorized by a sibling); a watcher
   * device that can be sealed for neither way is skipped (it stays authorized, without the key).
   */
  rotate(targets: Iterable<SealTarget> = []): SealedObject[] {
    const given = new Map<string, SealTarget>();
    for (const t of targets) given.set(canonicalDevice(t.to), t);
    const next = newPresenceKey(this.#device, this.#key.epoch + 1);
    this.#key.key.wipe();
    this.#key = next;
    const sealed: SealedObject[] = [];
    for (const [to, stored] of this.#watchers) {
      try {
        sealed.push(sealPresenceKey(this.#device, given.get(to) ?? stored, next));
        this.#watchers.set(to, { to });
      } catch (e) {
        if (!isImppError(e)) throw e;
      }
    }
    return sealed;
  }

  /**
   * Seals this device's presence state (key, epoch, version, watcher devices) for another device
   * of the same user, content type presence-sync, format 1: with the user's `denials` (carried,
   * not kept, by the publisher). At most {@link MAX_SYNC_DENIALS}; each user once, canonical.
   */
  shareWith(target: SealTarget, denials: readonly DenialRecord[] = []): SealedObject {
    if (denials.length > MAX_SYNC_DENIALS) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'too many denial records');
    }
    const payload = encodeCbor(
      new Map<number, CborValue>([
        [0, SYNC_FORMAT],
        [1, presentityOf(this.#device)],
        [2, this.#key.epoch],
        [3, this.#key.key.expose()],
        [4, this.#version],
        [5, this.watchers],
        [6, denials.map((d) => [d.user, d.stamp, d.denied ? 1 : 0])],
      ]),
    );
    try {
      return sealSessionObject(
        this.#device,
        SealKind.keyDistribution,
        target,
        CONTENT_TYPE_PRESENCE_SYNC,
        payload,
      );
    } finally {
      payload.fill(0);
    }
  }

  /**
   * Merges a sibling's presence state. `siblings` is this user's verified device list (device
   * address → identity key); a sender outside it, or this device itself, is
   * `ERR_SEAL_OPEN_FAILED`, so a server cannot add a watcher or keep a revoked one.
   *
   * - A newer epoch is taken whole, watchers included: a revocation always rotates, so the newer
   *   set is authoritative (a revoked device never comes back through an older set).
   * - The same epoch and key: the watcher sets are united (approvals on either device).
   * - The same epoch, another key: two devices rotated concurrently. At epoch 1 (no revocation
   *   has happened yet) the sets are united, later intersected (each rotation may have been a
   *   revocation: dropping a concurrent approval is the safe failure). The device whose key is
   *   smaller then rotates ('rotate'); the other tells it ('reply').
   * - An older epoch: 'reply', so the sender catches up.
   */
  merge(received: ReceivedPresenceSync, siblings: ReadonlyMap<string, Uint8Array>): PresenceMerge {
    checkSibling(this.#device, received, siblings);
    this.#version = Math.max(this.#version, received.version);
    const mine = this.#key;
    if (received.epoch < mine.epoch) return 'reply';
    if (received.epoch > mine.epoch) {
      mine.key.wipe();
      this.#key = {
        epoch: received.epoch,
        key: new SecretBytes(Uint8Array.from(received.key.expose())),
      };
      this.#watchers.clear();
      for (const w of received.watchers) this.#watchers.set(w, { to: w });
      return 'done';
    }
    const theirs = received.key.expose();
    const sameKey = constantTimeEqual(mine.key.expose(), theirs);
    if (sameKey || mine.epoch === 1) {
      for (const w of received.watchers)
        if (!this.#watchers.has(w)) this.#watchers.set(w, { to: w });
    } else {
      const keep = new Set(received.watchers);
      for (const w of [...this.#watchers.keys()]) if (!keep.has(w)) this.#watchers.delete(w);
    }
    if (sameKey) return 'done';
    return Buffer.compare(mine.key.expose(), theirs) < 0 ? 'rotate' : 'reply';
  }

  /**
   * Takes note of an update this user's other device published (the server forwards it), so the
   * next version is above it even within one clock tick. Only an update signed by a device of
   * `siblings` (verified device list) counts: a server cannot push the version up. Returns
   * whether it counted; the content is not opened.
   */
  observe(bytes: Uint8Array, siblings: ReadonlyMap<string, Uint8Array>): boolean {
    let env: PresenceEnvelope;
    try {
      const parsed = parseEnvelope(bytes);
      if (parsed.kind !== SealKind.presence) return false;
      env = parsed;
    } catch {
      return false;
    }
    const presentity = presentityOf(this.#device);
    const key = siblings.get(`${presentity}/${env.deviceId}`);
    if (
      env.presentity !== presentity ||
      key === undefined ||
      !verify(
        key,
        transcript(PRESENCE_SIGNATURE_LABEL, env.headerBytes, env.ciphertext),
        env.signature,
      )
    ) {
      return false;
    }
    this.#version = Math.max(this.#version, env.presenceVersion);
    return true;
  }

  /** A publisher for `device` that starts from a sibling's state (checked as in {@link merge}). */
  static fromSibling(
    device: SealDevice,
    received: ReceivedPresenceSync,
    siblings: ReadonlyMap<string, Uint8Array>,
  ): PresencePublisher {
    checkSibling(device, received, siblings);
    const p = new PresencePublisher(
      device,
      { epoch: received.epoch, key: new SecretBytes(Uint8Array.from(received.key.expose())) },
      received.version,
    );
    for (const w of received.watchers) p.#watchers.set(w, { to: w });
    return p;
  }

  /** The publisher state as versioned CBOR (the key included: store it encrypted at rest). */
  serialise(): Uint8Array {
    return encodeCbor(
      new Map<number, CborValue>([
        [0, PRESENCE_STATE_VERSION],
        [1, this.#key.epoch],
        [2, this.#key.key.expose()],
        [3, this.#version],
        [4, this.watchers],
      ]),
    );
  }

  /** Restores {@link PresencePublisher.serialise} output for `device`. */
  static restore(device: SealDevice, bytes: Uint8Array): PresencePublisher {
    try {
      const m = expectMap(decodeCborStrict(bytes, 1 << 24), [0, 1, 2, 3, 4]);
      if (uintField(m, 0) !== PRESENCE_STATE_VERSION) {
        throw new ImppError('ERR_SEAL_UNSUPPORTED', 'unsupported presence state version');
      }
      const key = {
        epoch: uintField(m, 1, MAX_EPOCH),
        key: new SecretBytes(bytesField(m, 2, 32)),
      };
      const p = new PresencePublisher(device, key, uintField(m, 3));
      const watchers = m.get(4);
      if (!Array.isArray(watchers)) throw new ImppError('ERR_SEAL_MALFORMED', 'watchers');
      for (const w of watchers as readonly CborValue[]) {
        if (typeof w !== 'string') throw new ImppError('ERR_SEAL_MALFORMED', 'watcher');
        p.#watchers.set(w, { to: w });
      }
      return p;
    } catch (e) {
      if (isImppError(e, 'ERR_SEAL_UNSUPPORTED')) throw e;
      throw new ImppError('ERR_SEAL_SESSION_STATE', 'persisted presence state is invalid');
    }
  }

  toJSON(): { epoch: number; version: number; watchers: number } {
    return { epoch: this.epoch, version: this.#version, watchers: this.#watchers.size };
  }

  [inspect.custom](): string {
    return `PresencePublisher(epoch ${this.epoch}, v${this.#version}, [redacted])`;
  }
}
