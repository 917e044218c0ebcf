/**
 * A device's sealing state: its identity key, prekeys, one pairwise session per remote device
 * (X3DH, then Double Ratchet) and its replay cache, serialisable to versioned CBOR so a client
 * can persist it.
 *
 * The secrets live behind a module-private symbol: `JSON.stringify` and `util.inspect` of a
 * {@link SealDevice} print a redacted summary, never key bytes.
 */
import { inspect } from 'node:util';
import { generateSigningKeyPair, SecretBytes, wipe, type SigningKeyPair } from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import { formatDeviceAddress, parseDeviceAddress, type DeviceAddress } from '../trust/address.js';
import {
  bytesField,
  decodeCborStrict,
  encodeCbor,
  expectMap,
  textField,
  uintField,
  type CborMap,
  type CborValue,
} from './cbor.js';
import { MAX_TEXT_BYTES, REPLAY_CACHE_SIZE } from './constants.js';
import {
  cloneRatchetState,
  ratchetStateFromCbor,
  ratchetStateToCbor,
  wipeRatchetState,
  type RatchetState,
} from './ratchet.js';
import { ReplayCache } from './replay.js';
import { systemClock, systemRandom, type Clock, type RandomSource } from './rng.js';
import {
  generateOneTimePrekeys,
  generateSignedPrekey,
  MAX_PREKEY_ID,
  type OneTimePrekey,
  type PrekeyBundle,
  type SignedPrekey,
} from './x3dh.js';

/** Version of the persisted device-state format. */
export const DEVICE_STATE_VERSION = 1;
/** Signed prekeys kept after rotation, so prekey messages in flight still open. */
const SIGNED_PREKEYS_KEPT = 2;
/** Bound on a persisted state. */
const MAX_STATE_BYTES = 64 * 1024 * 1024;

/** X3DH data an initiator repeats in every message until the first reply (X3DH §3.3). */
export interface PendingPrekey {
  readonly baseKey: Uint8Array;
  readonly signedPrekeyId: number;
  readonly oneTimePrekeyId?: number;
}

/** One pairwise session with a remote device. */
export interface SessionState {
  readonly remoteDevice: string;
  /** The remote device's Ed25519 identity key, fixed for the life of the session. */
  readonly remoteIdentityKey: Uint8Array;
  /** X3DH AD = IK_initiator ‖ IK_responder. */
  readonly associatedData: Uint8Array;
  ratchet: RatchetState;
  pendingPrekey: PendingPrekey | null;
  /** Responder: the base key of the prekey message that created this session. */
  initiatorBaseKey: Uint8Array | null;
  /** Last sequence number sent in this session (the first message carries 1). */
  sendSequence: number;
  /** Highest sequence number received in this session. */
  recvSequence: number;
}

/** @internal Everything secret about a device. Reached only through {@link STATE}. */
export interface DeviceState {
  readonly device: string;
  readonly identity: SigningKeyPair;
  readonly signedPrekeys: Map<number, SignedPrekey>;
  readonly oneTimePrekeys: Map<number, OneTimePrekey>;
  nextOneTimePrekeyId: number;
  readonly sessions: Map<string, SessionState>;
  /** The session a new one replaced, per remote device (tried when the current one fails). */
  readonly archivedSessions: Map<string, SessionState>;
  replay: ReplayCache;
  readonly rng: RandomSource;
  readonly clock: Clock;
}

/** @internal Key of the secret state on a {@link SealDevice}; not exported by the package. */
export const STATE: unique symbol = Symbol('impp.seal.deviceState');

/** Options of {@link SealDevice.create}. */
export interface CreateDeviceOptions {
  /** An existing identity key pair; a new one is generated when absent. */
  readonly identity?: SigningKeyPair;
  /** One-time prekeys to generate now (default 100). */
  readonly oneTimePrekeys?: number;
}

/**
 * A device that seals and opens objects. One per local device; persist it with
 * {@link SealDevice.serialise} after every change and restore it with {@link SealDevice.restore}.
 *
 * @example
 * ```ts
 * const alice = SealDevice.create('alice@example.org/phone');
 * const bytes = alice.serialise(); // store encrypted at rest
 * const again = SealDevice.restore(bytes);
 * ```
 */
export class SealDevice {
  /** @internal */
  readonly [STATE]: DeviceState;

  /** @internal Use {@link SealDevice.create} or {@link SealDevice.restore}. */
  constructor(state: DeviceState) {
    this[STATE] = state;
  }

  /** Creates a device with a fresh identity (unless given), one signed prekey and one-time prekeys. */
  static create(device: string | DeviceAddress, options: CreateDeviceOptions = {}): SealDevice {
    return createDeviceWith(device, options, systemRandom, systemClock);
  }

  /** Restores a device from {@link SealDevice.serialise} output. */
  static restore(bytes: Uint8Array): SealDevice {
    return new SealDevice(restoreState(bytes, systemRandom, systemClock));
  }

  /** `user@domain/deviceId` of this device. */
  get device(): string {
    return this[STATE].device;
  }

  /** This device's Ed25519 identity public key (a copy: the state's own array stays private). */
  get identityKey(): Uint8Array {
    return Uint8Array.from(this[STATE].identity.publicKey);
  }

  /** The current signed prekey id and the one-time prekeys still unused, for upload. */
  publicPrekeys(): {
    identityKey: Uint8Array;
    signedPrekey: { id: number; publicKey: Uint8Array; signature: Uint8Array };
    oneTimePrekeys: { id: number; publicKey: Uint8Array }[];
  } {
    const spk = currentSignedPrekey(this[STATE]);
    // Copies: the caller (or whoever it hands a bundle to) must not reach the state's arrays.
    return {
      identityKey: this.identityKey,
      signedPrekey: {
        id: spk.id,
        publicKey: Uint8Array.from(spk.keyPair.publicKey),
        signature: Uint8Array.from(spk.signature),
      },
      oneTimePrekeys: [...this[STATE].oneTimePrekeys.values()].map((k) => ({
        id: k.id,
        publicKey: Uint8Array.from(k.keyPair.publicKey),
      })),
    };
  }

  /**
   * A prekey bundle as a server would hand it out: the current signed prekey and, when given
   * or available, one one-time prekey (the first unused one by default).
   */
  bundle(oneTimePrekeyId?: number | null): PrekeyBundle {
    const pub = this.publicPrekeys();
    const opk =
      oneTimePrekeyId === null
        ? undefined
        : oneTimePrekeyId === undefined
          ? pub.oneTimePrekeys[0]
          : pub.oneTimePrekeys.find((k) => k.id === oneTimePrekeyId);
    return {
      device: this.device,
      identityKey: pub.identityKey,
      signedPrekey: pub.signedPrekey,
      ...(opk !== undefined ? { oneTimePrekey: opk } : {}),
    };
  }

  /** Generates `count` more one-time prekeys. */
  addOneTimePrekeys(count: number): void {
    const s = this[STATE];
    for (const k of generateOneTimePrekeys(s.nextOneTimePrekeyId, count, s.rng)) {
      s.oneTimePrekeys.set(k.id, k);
    }
    s.nextOneTimePrekeyId += count;
  }

  /** Replaces the signed prekey (X3DH §3.2: periodically); the previous one is kept a while. */
  rotateSignedPrekey(): void {
    const s = this[STATE];
    const next = currentSignedPrekey(s).id + 1;
    if (next > MAX_PREKEY_ID) throw new ImppError('ERR_SEAL_SESSION_STATE', 'prekey ids exhausted');
    s.signedPrekeys.set(next, generateSignedPrekey(s.identity, next, s.rng));
    while (s.signedPrekeys.size > SIGNED_PREKEYS_KEPT) {
      const oldest = Math.min(...s.signedPrekeys.keys());
      s.signedPrekeys.get(oldest)?.keyPair.secretKey.wipe();
      s.signedPrekeys.delete(oldest);
    }
  }

  /** `true` when a session with `remoteDevice` exists. */
  hasSession(remoteDevice: string): boolean {
    return this[STATE].sessions.has(remoteDevice);
  }

  /** The identity key a session is bound to, if any (a copy). */
  sessionIdentityKey(remoteDevice: string): Uint8Array | undefined {
    const key = this[STATE].sessions.get(remoteDevice)?.remoteIdentityKey;
    return key === undefined ? undefined : Uint8Array.from(key);
  }

  /**
   * Forgets every session with `remoteDevice` (the current one and the one kept after a
   * replacement), wiping their keys: for an accepted identity change, after which nothing must be
   * sealed to, or opened from, the replaced key. `true` when there was something to drop.
   */
  dropSession(remoteDevice: string): boolean {
    const s = this[STATE];
    const device = canonicalDevice(remoteDevice);
    let dropped = false;
    for (const map of [s.sessions, s.archivedSessions]) {
      const session = map.get(device);
      if (session === undefined) continue;
      wipeSession(session);
      map.delete(device);
      dropped = true;
    }
    return dropped;
  }

  /** Remote devices with a session. */
  sessionDevices(): string[] {
    return [...this[STATE].sessions.keys()];
  }

  /**
   * The whole state as versioned deterministic CBOR, secrets included: store it encrypted at
   * rest. The format is in docs/formats.md, "Device state".
   */
  serialise(): Uint8Array {
    return encodeCbor(stateToCbor(this[STATE]));
  }

  toString(): string {
    return `SealDevice(${this.device}, [redacted])`;
  }

  toJSON(): { device: string; sessions: number } {
    return { device: this.device, sessions: this[STATE].sessions.size };
  }

  [inspect.custom](): string {
    return `SealDevice(${this.device}, ${this[STATE].sessions.size} sessions, [redacted])`;
  }
}

/** @internal Creates a device with an injected random source and clock (see hazmat.ts). */
export function createDeviceWith(
  device: string | DeviceAddress,
  options: CreateDeviceOptions,
  rng: RandomSource,
  clock: Clock,
): SealDevice {
  const address = canonicalDevice(device);
  const identity =
    options.identity ??
    (() => {
      const seed = rng(32);
      const kp = generateSigningKeyPair(seed);
      wipe(seed);
      return kp;
    })();
  const state: DeviceState = {
    device: address,
    identity,
    signedPrekeys: new Map([[1, generateSignedPrekey(identity, 1, rng)]]),
    oneTimePrekeys: new Map(),
    nextOneTimePrekeyId: 1,
    sessions: new Map(),
    archivedSessions: new Map(),
    replay: new ReplayCache(REPLAY_CACHE_SIZE),
    rng,
    clock,
  };
  const d = new SealDevice(state);
  d.addOneTimePrekeys(options.oneTimePrekeys ?? 100);
  return d;
}

/** Canonical `user@domain/deviceId` string of a device. */
export function canonicalDevice(device: string | DeviceAddress): string {
  const parsed = typeof device === 'string' ? parseDeviceAddress(device) : device;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(parsed.deviceId)) {
    throw new ImppError('ERR_ADDRESS_INVALID', 'device id must be 1..64 of [A-Za-z0-9_-]');
  }
  return formatDeviceAddress(parsed);
}

/** @internal The newest signed prekey. */
export function currentSignedPrekey(state: DeviceState): SignedPrekey {
  const id = Math.max(...state.signedPrekeys.keys());
  const spk = state.signedPrekeys.get(id);
  if (spk === undefined) throw new ImppError('ERR_SEAL_SESSION_STATE', 'no signed prekey');
  return spk;
}

/** @internal A deep copy of a session, to work on during an open. */
export function cloneSession(s: SessionState): SessionState {
  return { ...s, ratchet: cloneRatchetState(s.ratchet) };
}

/** @internal Wipes a discarded session. */
export function wipeSession(s: SessionState): void {
  wipeRatchetState(s.ratchet);
}

function sessionToCbor(s: SessionState): CborMap {
  const m = new Map<number, CborValue>([
    [0, s.remoteDevice],
    [1, s.remoteIdentityKey],
    [2, s.associatedData],
    [3, ratchetStateToCbor(s.ratchet)],
  ]);
  if (s.pendingPrekey !== null) {
    const p = new Map<number, CborValue>([
      [0, s.pendingPrekey.baseKey],
      [1, s.pendingPrekey.signedPrekeyId],
    ]);
    if (s.pendingPrekey.oneTimePrekeyId !== undefined) p.set(2, s.pendingPrekey.oneTimePrekeyId);
    m.set(4, p);
  }
  if (s.initiatorBaseKey !== null) m.set(5, s.initiatorBaseKey);
  m.set(6, s.sendSequence);
  m.set(7, s.recvSequence);
  return m;
}

function sessionFromCbor(v: CborValue | undefined): SessionState {
  const m = expectMap(v, [0, 1, 2, 3, 6, 7], [4, 5]);
  let pending: PendingPrekey | null = null;
  if (m.has(4)) {
    const p = expectMap(m.get(4), [0, 1], [2]);
    pending = {
      baseKey: bytesField(p, 0, 32),
      signedPrekeyId: uintField(p, 1, MAX_PREKEY_ID),
      ...(p.has(2) ? { oneTimePrekeyId: uintField(p, 2, MAX_PREKEY_ID) } : {}),
    };
  }
  return {
    remoteDevice: textField(m, 0, MAX_TEXT_BYTES),
    remoteIdentityKey: bytesField(m, 1, 32),
    associatedData: bytesField(m, 2, 64),
    ratchet: ratchetStateFromCbor(m.get(3)),
    pendingPrekey: pending,
    initiatorBaseKey: m.has(5) ? bytesField(m, 5, 32) : null,
    sendSequence: uintField(m, 6),
    recvSequence: uintField(m, 7),
  };
}

function stateToCbor(s: DeviceState): CborMap {
  return new Map<number, CborValue>([
    [0, DEVICE_STATE_VERSION],
    [1, s.device],
    [2, s.identity.secretKey.expose()],
    [
      3,
      [...s.signedPrekeys.values()].map((k) => [
        k.id,
        k.keyPair.secretKey.expose(),
        k.keyPair.publicKey,
        k.signature,
      ]),
    ],
    [
      4,
      [...s.oneTimePrekeys.values()].map((k) => [
        k.id,
        k.keyPair.secretKey.expose(),
        k.keyPair.publicKey,
      ]),
    ],
    [5, s.nextOneTimePrekeyId],
    [6, [...s.sessions.values()].map(sessionToCbor)],
    [7, s.replay.entries()],
    [8, [...s.archivedSessions.values()].map(sessionToCbor)],
  ]);
}

function tuple(v: CborValue, length: number): CborMap {
  if (!Array.isArray(v) || v.length !== length) {
    throw new ImppError('ERR_SEAL_MALFORMED', 'sealed object is malformed: state entry');
  }
  return new Map<number, CborValue>((v as CborValue[]).map((x, i) => [i, x]));
}

function list(m: CborMap, key: number): readonly CborValue[] {
  const v = m.get(key);
  if (!Array.isArray(v)) throw new ImppError('ERR_SEAL_MALFORMED', 'sealed object is malformed');
  return v as readonly CborValue[];
}

/** @internal Parses a persisted state (strict CBOR, exact keys, version 1 only). */
export function restoreState(bytes: Uint8Array, rng: RandomSource, clock: Clock): DeviceState {
  try {
    const m = expectMap(decodeCborStrict(bytes, MAX_STATE_BYTES), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    if (uintField(m, 0) !== DEVICE_STATE_VERSION) {
      throw new ImppError('ERR_SEAL_UNSUPPORTED', 'unsupported device state version');
    }
    const sk = bytesField(m, 2, 64);
    const identity: SigningKeyPair = {
      secretKey: new SecretBytes(sk),
      publicKey: sk.slice(32),
    };
    const signedPrekeys = new Map<number, SignedPrekey>();
    for (const e of list(m, 3)) {
      const t = tuple(e, 4);
      const id = uintField(t, 0, MAX_PREKEY_ID);
      signedPrekeys.set(id, {
        id,
        keyPair: {
          secretKey: new SecretBytes(bytesField(t, 1, 32)),
          publicKey: bytesField(t, 2, 32),
        },
        signature: bytesField(t, 3, 64),
      });
    }
    if (signedPrekeys.size === 0) throw new ImppError('ERR_SEAL_MALFORMED', 'no signed prekey');
    const oneTimePrekeys = new Map<number, OneTimePrekey>();
    for (const e of list(m, 4)) {
      const t = tuple(e, 3);
      const id = uintField(t, 0, MAX_PREKEY_ID);
      oneTimePrekeys.set(id, {
        id,
        keyPair: {
          secretKey: new SecretBytes(bytesField(t, 1, 32)),
          publicKey: bytesField(t, 2, 32),
        },
      });
    }
    const sessions = new Map<string, SessionState>();
    for (const e of list(m, 6)) {
      const s = sessionFromCbor(e);
      sessions.set(s.remoteDevice, s);
    }
    const archivedSessions = new Map<string, SessionState>();
    for (const e of list(m, 8)) {
      const s = sessionFromCbor(e);
      archivedSessions.set(s.remoteDevice, s);
    }
    const replay = new ReplayCache(REPLAY_CACHE_SIZE);
    for (const e of list(m, 7)) {
      const t = tuple(e, 2);
      replay.add(bytesField(t, 0, 16), bytesField(t, 1, 32));
    }
    return {
      device: canonicalDevice(textField(m, 1, MAX_TEXT_BYTES)),
      identity,
      signedPrekeys,
      oneTimePrekeys,
      nextOneTimePrekeyId: uintField(m, 5, MAX_PREKEY_ID + 1),
      sessions,
      archivedSessions,
      replay,
      rng,
      clock,
    };
  } catch (e) {
    if (isImppError(e, 'ERR_SEAL_UNSUPPORTED')) throw e;
    throw new ImppError('ERR_SEAL_SESSION_STATE', 'persisted device state is invalid', {
      cause: e,
    });
  }
}
