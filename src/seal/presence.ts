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
  KIND_LABELS,
  LABEL_SUFFIX,
  MAX_PAYLOAD_BYTES,
  MAX_TEXT_BYTES,
  PRESENCE_EPOCHS_KEPT,
  SealKind,
  SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
} from './constants.js';
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
  open(bytes: Uint8Array): OpenedPresence {
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
    if (env.presenceVersion <= this.#lastVersion) {
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

/**
 * Opens a key-distribution object. The result still has to be accepted by the watcher's
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
  const opened = openSessionObject(device, bytes, SealKind.keyDistribution, options);
  try {
    if (opened.contentType !== CONTENT_TYPE_PRESENCE_KEY) throw openFailed();
    const m = expectMap(decodeCborStrict(opened.payload, 1024), [0, 1, 2]);
    return {
      presentity: textField(m, 0, MAX_TEXT_BYTES),
      epoch: uintField(m, 1, MAX_EPOCH),
      key: new SecretBytes(bytesField(m, 2, 32)),
      senderDevice: opened.senderDevice,
      senderIdentityKey: opened.senderIdentityKey,
    };
  } catch {
    throw openFailed();
  } finally {
    opened.payload.fill(0);
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

  /** Seals the next update (version + 1) once, for every watcher. */
  publish(pidf: Uint8Array): Uint8Array {
    const bytes = sealPresence(this.#device, this.#key, this.#version + 1, pidf);
    this.#version += 1;
    return bytes;
  }

  /**
   * Revokes watcher devices: rotates to a new key (next epoch) and seals it for the remaining
   * watchers only. Returns the key-distribution objects to send. Addresses are canonicalised
   * first (watchers are stored canonical), so any spelling of a device revokes it.
   */
  revoke(...devices: (string | DeviceAddress)[]): SealedObject[] {
    const canonical = devices.map((d) => canonicalDevice(d));
    for (const d of canonical) this.#watchers.delete(d);
    return this.rotate();
  }

  /** Rotates the key and distributes it to every remaining watcher. */
  rotate(): SealedObject[] {
    const next = newPresenceKey(this.#device, this.#key.epoch + 1);
    this.#key.key.wipe();
    this.#key = next;
    return [...this.#watchers.values()].map((t) => sealPresenceKey(this.#device, t, next));
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
