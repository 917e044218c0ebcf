/**
 * Local persistence of a client device: identity seed, seal state (sessions, prekeys), the
 * identity keys seen for each contact device, the last verified device list of each contact and
 * the presence watch state (rollback protection survives a restart), the presence publisher, and
 * the users this account denied (src/client/denials.ts). Versioned JSON with
 * base64url byte fields, written atomically (temporary file + rename) with mode 0600.
 *
 * Not yet: encryption at rest. The file holds secret keys; protect it with the OS (file mode,
 * disk encryption) until a passphrase- or keychain-based wrapper exists.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { ImppError } from '../errors.js';
import { fromBase64Url, toBase64Url } from '../crypto/index.js';

/** Where a client keeps its state. */
export interface ClientStateStore {
  /** The last saved bytes, or `undefined` on first use. */
  load(): Promise<Uint8Array | undefined>;
  /** Replaces the saved bytes atomically. */
  save(bytes: Uint8Array): Promise<void>;
}

/**
 * A state file on disk.
 *
 * @example
 * ```ts
 * const store = new FileStateStore('/home/alice/.impp/phone.state');
 * ```
 */
export class FileStateStore implements ClientStateStore {
  constructor(readonly path: string) {}

  async load(): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new ImppError('ERR_STORAGE', 'cannot read the client state file', { cause: e });
    }
  }

  /**
   * Saves one at a time, in call order: two overlapping saves would share the temporary file,
   * and the later state must be the one that stays.
   */
  save(bytes: Uint8Array): Promise<void> {
    const run = this.#saving.then(() => this.#write(Uint8Array.from(bytes)));
    this.#saving = run.catch(() => undefined);
    return run;
  }

  #saving: Promise<void> = Promise.resolve();

  async #write(bytes: Uint8Array): Promise<void> {
    const tmp = `${this.path}.tmp`;
    try {
      await writeFile(tmp, bytes, { mode: 0o600 });
      await rename(tmp, this.path);
    } catch (e) {
      throw new ImppError('ERR_STORAGE', 'cannot write the client state file', { cause: e });
    }
  }
}

/**
 * Version of the persisted state written now. Version 2 added the verified device lists and the
 * presence watch state; version 3 the denial records; version 4 the trusted key-log heads of
 * other domains. An older file is read (what it lacks starts empty: no denial or other domain's
 * head had been recorded by the client then) and rewritten as version 4.
 */
export const CLIENT_STATE_VERSION = 4;
/** Versions {@link decodeState} reads. */
const READABLE_VERSIONS: readonly unknown[] = [1, 2, 3, 4];

/** The persisted state, decoded. */
export interface PersistedState {
  readonly address: string;
  readonly deviceId: string;
  readonly seed: Uint8Array;
  readonly device: Uint8Array;
  readonly registered: boolean;
  /** `user@domain/deviceId` → identity key first seen for it. */
  readonly known: ReadonlyMap<string, Uint8Array>;
  readonly publisher: Uint8Array | null;
  /** This device's enrolment statement and its key-log index, once registered. */
  readonly enrolment: { readonly index: number; readonly statement: Uint8Array } | null;
  /** Highest one-time prekey id uploaded to the server (0 before registration). */
  readonly uploadedPrekeyId: number;
  /** The last key-log tree head this client verified (encoded), if any. */
  readonly trustedHead: Uint8Array | null;
  /**
   * Other domain → the last head of its key log this client verified (encoded). What that
   * domain's next head must extend: losing it would forget a fork seen before a restart.
   */
  readonly domainHeads: ReadonlyMap<string, Uint8Array>;
  /** Presence keys received from contacts (the newest few per presentity). */
  readonly presenceKeys: readonly StoredPresenceKey[];
  /**
   * `user@domain` → the last device list this client verified for it (its signed bytes). What
   * the next list must extend: keeping it across restarts is what keeps rollback protection.
   */
  readonly lists: ReadonlyMap<string, Uint8Array>;
  /**
   * `user@domain` → the presence watch state (`PresenceWatch.serialise()`: keys, epochs and the
   * last accepted version), so an older update is refused after a restart too.
   */
  readonly watches: ReadonlyMap<string, Uint8Array>;
  /**
   * Users this account denied, or approved again after a denial, with the stamps that order the
   * decisions among its devices (src/client/denials.ts). Losing them would let a denied sender
   * of another domain through, so from version 3 on they must be there.
   */
  readonly denials: readonly StoredDenial[];
}

/** One denial decision, as {@link PersistedState.denials} keeps it. */
export interface StoredDenial {
  readonly user: string;
  readonly denied: boolean;
  readonly stamp: number;
}

/** A contact's presence key as received, kept so a restarted client can open updates. */
export interface StoredPresenceKey {
  readonly presentity: string;
  readonly epoch: number;
  readonly key: Uint8Array;
  readonly senderDevice: string;
  readonly senderIdentityKey: Uint8Array;
}

/**
 * Encodes the state.
 *
 * @example
 * ```ts
 * await store.save(encodeState(state));
 * ```
 */
export function encodeState(s: PersistedState): Uint8Array {
  const json = {
    v: CLIENT_STATE_VERSION,
    address: s.address,
    deviceId: s.deviceId,
    seed: toBase64Url(s.seed),
    device: toBase64Url(s.device),
    registered: s.registered,
    known: Object.fromEntries([...s.known].map(([k, v]) => [k, toBase64Url(v)])),
    publisher: s.publisher === null ? null : toBase64Url(s.publisher),
    enrolment:
      s.enrolment === null
        ? null
        : { index: s.enrolment.index, statement: toBase64Url(s.enrolment.statement) },
    trustedHead: s.trustedHead === null ? null : toBase64Url(s.trustedHead),
    domainHeads: Object.fromEntries([...s.domainHeads].map(([d, h]) => [d, toBase64Url(h)])),
    uploadedPrekeyId: s.uploadedPrekeyId,
    presenceKeys: s.presenceKeys.map((k) => ({
      presentity: k.presentity,
      epoch: k.epoch,
      key: toBase64Url(k.key),
      senderDevice: k.senderDevice,
      senderIdentityKey: toBase64Url(k.senderIdentityKey),
    })),
    lists: Object.fromEntries([...s.lists].map(([a, b]) => [a, toBase64Url(b)])),
    watches: Object.fromEntries([...s.watches].map(([a, b]) => [a, toBase64Url(b)])),
    denials: s.denials.map((d) => ({ user: d.user, denied: d.denied, stamp: d.stamp })),
  };
  return new TextEncoder().encode(JSON.stringify(json));
}

/**
 * Decodes the state; refuses unknown versions.
 *
 * @example
 * ```ts
 * const state = decodeState(await store.load());
 * ```
 */
export function decodeState(bytes: Uint8Array): PersistedState {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<
      string,
      unknown
    >;
  } catch (cause) {
    throw new ImppError('ERR_STORAGE', 'client state file is not valid', { cause });
  }
  if (!READABLE_VERSIONS.includes(v.v)) {
    throw new ImppError('ERR_STORAGE', 'client state file has an unsupported version');
  }
  const str = (k: string): string => {
    const x = v[k];
    if (typeof x !== 'string') throw new ImppError('ERR_STORAGE', `client state: ${k} missing`);
    return x;
  };
  const known = bytesMap(v.known, 'known', false);
  // Version 1 had no lists or watches; from version 2 on they must be there.
  const lists = bytesMap(v.lists, 'lists', v.v !== 1);
  const watches = bytesMap(v.watches, 'watches', v.v !== 1);
  const denials = readDenials(v.denials, v.v === 3 || v.v === 4);
  // Before version 4 no other domain's head was kept: whatever is there is not ours.
  const domainHeads =
    v.v === 4 ? bytesMap(v.domainHeads, 'domainHeads', true) : new Map<string, Uint8Array>();
  const presenceKeys: StoredPresenceKey[] = [];
  if (Array.isArray(v.presenceKeys)) {
    for (const raw of v.presenceKeys as Record<string, unknown>[]) {
      if (
        typeof raw.presentity !== 'string' ||
        typeof raw.epoch !== 'number' ||
        typeof raw.key !== 'string' ||
        typeof raw.senderDevice !== 'string' ||
        typeof raw.senderIdentityKey !== 'string'
      ) {
        throw new ImppError('ERR_STORAGE', 'client state: a presence key is malformed');
      }
      presenceKeys.push({
        presentity: raw.presentity,
        epoch: raw.epoch,
        key: fromBase64Url(raw.key, 'key'),
        senderDevice: raw.senderDevice,
        senderIdentityKey: fromBase64Url(raw.senderIdentityKey, 'senderIdentityKey'),
      });
    }
  }
  const e = v.enrolment as { index?: unknown; statement?: unknown } | null | undefined;
  const enrolment =
    e !== null && e !== undefined && typeof e.index === 'number' && typeof e.statement === 'string'
      ? { index: e.index, statement: fromBase64Url(e.statement, 'enrolment') }
      : null;
  const uploaded = v.uploadedPrekeyId;
  return {
    enrolment,
    uploadedPrekeyId:
      typeof uploaded === 'number' && Number.isSafeInteger(uploaded) && uploaded >= 0
        ? uploaded
        : 0,
    trustedHead:
      typeof v.trustedHead === 'string' ? fromBase64Url(v.trustedHead, 'trustedHead') : null,
    domainHeads,
    presenceKeys,
    address: str('address'),
    deviceId: str('deviceId'),
    seed: fromBase64Url(str('seed'), 'seed'),
    device: fromBase64Url(str('device'), 'device'),
    registered: v.registered === true,
    known,
    lists,
    watches,
    denials,
    publisher: typeof v.publisher === 'string' ? fromBase64Url(v.publisher, 'publisher') : null,
  };
}

/** The denial records; `ERR_STORAGE` when `required` and not there, or malformed. */
function readDenials(raw: unknown, required: boolean): StoredDenial[] {
  // Versions 1 and 2 had no denials: whatever such a file holds under that name is not ours.
  if (!required) return [];
  if (!Array.isArray(raw)) throw new ImppError('ERR_STORAGE', 'client state: denials missing');
  return (raw as unknown[]).map((d) => {
    const r = d as Record<string, unknown> | null;
    if (
      r === null ||
      typeof r !== 'object' ||
      typeof r.user !== 'string' ||
      typeof r.denied !== 'boolean' ||
      typeof r.stamp !== 'number' ||
      !Number.isSafeInteger(r.stamp) ||
      r.stamp < 0
    ) {
      throw new ImppError('ERR_STORAGE', 'client state: a denial is malformed');
    }
    return { user: r.user, denied: r.denied, stamp: r.stamp };
  });
}

/** A JSON object of base64url strings as a map; `ERR_STORAGE` when `required` and not there. */
function bytesMap(raw: unknown, field: string, required: boolean): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    if (required) throw new ImppError('ERR_STORAGE', `client state: ${field} missing`);
    return out;
  }
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'string') {
      throw new ImppError('ERR_STORAGE', `client state: ${field} is malformed`);
    }
    out.set(name, fromBase64Url(value, field));
  }
  return out;
}
