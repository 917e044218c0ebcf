/**
 * The client-side trust decision: is this identity key the one we should accept for this device?
 *
 * This is the plug-in seam that libsignal calls `isTrustedIdentity`. Servers route sealed objects;
 * clients decide trust, and they decide it here. The rules every implementation follows (they live
 * in {@link decideTrust}, so a persistent store cannot get them wrong):
 *
 * - first sight of a device: under the `tofu` policy the key is recorded and the decision is
 *   `new` (usable; the application may tell the user a device was added); under
 *   `require-verified` it is recorded and the decision is `unverified` (not usable until the user
 *   verifies it out of band, e.g. by comparing safety numbers);
 * - the same key again: `verified` if the user verified it, otherwise `trusted` (`tofu`) or
 *   `unverified` (`require-verified`);
 * - a different key: `changed`, carrying the previous key and fingerprint. The stored key is NOT
 *   replaced: every later check keeps answering `changed` until the user explicitly calls
 *   {@link TrustStore.acceptChange} (or verifies the new key after accepting). A key change is
 *   never silently accepted, whatever the policy, and verification is lost when a key changes.
 *
 * What the store does *not* check (the caller must, before asking): that the key really is the
 * device's key as its owner published it — the signature on the user's device list, inclusion in
 * the domain's key log, and any enrolment-statement policy. The store judges continuity and user
 * verification only.
 */
import { assertSigningPublicKey, constantTimeEqual } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import { formatDeviceAddress, parseDeviceAddress, type DeviceAddress } from './address.js';
import { formatFingerprint, keyFingerprint } from './identity.js';

/**
 * `tofu`: trust on first use, then insist on the same key. `require-verified`: a key is usable only
 * once the user has verified it out of band.
 */
export type TrustPolicy = 'tofu' | 'require-verified';

/**
 * Type guard for {@link TrustPolicy} (for values read from configuration).
 *
 * @example
 * ```ts
 * isTrustPolicy('tofu'); // true
 * ```
 */
export function isTrustPolicy(value: unknown): value is TrustPolicy {
  return value === 'tofu' || value === 'require-verified';
}

/** What a store remembers about one device. Persisted formats carry {@link TRUST_RECORD_VERSION}. */
export interface TrustRecord {
  /** Format version of the record. */
  readonly version: typeof TRUST_RECORD_VERSION;
  /** The accepted Ed25519 identity key (32 bytes). */
  readonly identityKey: Uint8Array;
  /** `trusted`: accepted on first use or by an explicit change; `verified`: checked out of band; `unverified`: seen under `require-verified`, not yet checked. */
  readonly state: 'trusted' | 'verified' | 'unverified';
  /** When the key was first recorded (ms since the Unix epoch). */
  readonly firstSeen: number;
  /** When the user verified the key (ms since the Unix epoch), if they did. */
  readonly verifiedAt?: number;
}

/** Current version of {@link TrustRecord}. */
export const TRUST_RECORD_VERSION = 1;

interface DecisionBase {
  readonly device: DeviceAddress;
  /** Fingerprint of the key that was checked, as shown to users (groups of 4 hex digits). */
  readonly fingerprint: string;
}

/**
 * The answer of {@link TrustStore.checkIdentity}. Only `new`, `trusted` and `verified` allow the key
 * to be used (see {@link isUsableDecision}).
 */
export type TrustDecision =
  | (DecisionBase & { readonly status: 'new' })
  | (DecisionBase & { readonly status: 'trusted' })
  | (DecisionBase & { readonly status: 'verified' })
  | (DecisionBase & { readonly status: 'unverified' })
  | (DecisionBase & {
      readonly status: 'changed';
      /** The key the store still holds, which the offered key would replace. */
      readonly previousIdentityKey: Uint8Array;
      readonly previousFingerprint: string;
      /** The user had verified the previous key: show the stronger warning. */
      readonly previouslyVerified: boolean;
    });

/**
 * The trust seam. Implementations persist {@link TrustRecord}s; the decision logic is
 * {@link decideTrust}. All methods validate their arguments (`ERR_ADDRESS_INVALID`,
 * `ERR_INVALID_ARGUMENT`).
 *
 * Not yet verified when called: whether `identityKey` is really the key the device's owner
 * published (device-list signature, key-log inclusion, enrolment); the caller checks those first.
 */
export interface TrustStore {
  /**
   * Decides whether `identityKey` is trusted for `device`, recording it on first sight.
   *
   * @example
   * ```ts
   * const d = await store.checkIdentity(device, key);
   * if (d.status === 'changed') await askUser(d.previousFingerprint, d.fingerprint);
   * assertUsable(d);
   * ```
   */
  checkIdentity(device: DeviceAddress, identityKey: Uint8Array): Promise<TrustDecision>;
  /**
   * Records that the user verified `identityKey` out of band. Throws `ERR_IDENTITY_CHANGED` if the
   * store holds a different key: accept the change first, then verify.
   *
   * @example
   * ```ts
   * if (matchesSafetyNumber(sn, typed)) await store.markVerified(device, key);
   * ```
   */
  markVerified(device: DeviceAddress, identityKey: Uint8Array): Promise<void>;
  /**
   * Explicit user action: replace the stored key with `identityKey` (state `trusted`; any earlier
   * verification is dropped). Call only after showing the user the `changed` decision.
   *
   * @example
   * ```ts
   * if (await userAccepts(decision)) await store.acceptChange(device, key);
   * ```
   */
  acceptChange(device: DeviceAddress, identityKey: Uint8Array): Promise<void>;
  /**
   * The stored record, if any (for display: "verified on …").
   *
   * @example
   * ```ts
   * const rec = await store.getIdentity(device);
   * ```
   */
  getIdentity(device: DeviceAddress): Promise<TrustRecord | undefined>;
}

/**
 * `true` when the decision allows using the key (`new`, `trusted`, `verified`).
 *
 * @example
 * ```ts
 * if (!isUsableDecision(decision)) return showWarning(decision);
 * ```
 */
export function isUsableDecision(decision: TrustDecision): boolean {
  return (
    decision.status === 'new' || decision.status === 'trusted' || decision.status === 'verified'
  );
}

/**
 * Throws unless the decision allows using the key: `ERR_IDENTITY_CHANGED` for a changed key,
 * `ERR_IDENTITY_UNTRUSTED` for an unverified one under `require-verified`.
 *
 * @example
 * ```ts
 * assertUsable(await store.checkIdentity(device, key));
 * ```
 */
export function assertUsable(decision: TrustDecision): void {
  if (decision.status === 'changed') {
    throw new ImppError(
      'ERR_IDENTITY_CHANGED',
      'the identity key of this device changed: the user must review and accept the change',
    );
  }
  if (decision.status === 'unverified') {
    throw new ImppError(
      'ERR_IDENTITY_UNTRUSTED',
      'the identity key of this device is not verified, and the policy requires verification',
    );
  }
}

/** Displayed fingerprint of an identity key. */
function fingerprintOf(identityKey: Uint8Array): string {
  return formatFingerprint(keyFingerprint(identityKey));
}

/**
 * The decision rules shared by every {@link TrustStore}: given what is stored (if anything), the
 * offered key, the policy and the time, returns the decision and the record to store (`undefined`
 * when nothing changes). Pure: persistent stores call it inside their own transaction.
 *
 * @example
 * ```ts
 * const { decision, record } = decideTrust(await db.get(k), key, 'tofu', Date.now(), device);
 * if (record) await db.put(k, record);
 * ```
 */
export function decideTrust(
  stored: TrustRecord | undefined,
  identityKey: Uint8Array,
  policy: TrustPolicy,
  now: number,
  device: DeviceAddress,
): { decision: TrustDecision; record: TrustRecord | undefined } {
  const key = assertSigningPublicKey(identityKey, 'identityKey');
  const fingerprint = fingerprintOf(key);
  if (stored === undefined) {
    const state = policy === 'tofu' ? 'trusted' : 'unverified';
    return {
      decision: { status: policy === 'tofu' ? 'new' : 'unverified', device, fingerprint },
      record: { version: TRUST_RECORD_VERSION, identityKey: key.slice(), state, firstSeen: now },
    };
  }
  if (!constantTimeEqual(stored.identityKey, key)) {
    return {
      decision: {
        status: 'changed',
        device,
        fingerprint,
        previousIdentityKey: stored.identityKey.slice(),
        previousFingerprint: fingerprintOf(stored.identityKey),
        previouslyVerified: stored.state === 'verified',
      },
      record: undefined,
    };
  }
  if (stored.state === 'verified') {
    return { decision: { status: 'verified', device, fingerprint }, record: undefined };
  }
  const status = policy === 'tofu' ? 'trusted' : 'unverified';
  return { decision: { status, device, fingerprint }, record: undefined };
}

/**
 * Where a {@link RecordTrustStore} keeps its records, keyed by the canonical device address
 * string. `get` must return `undefined` for unknown keys and should refuse records whose
 * `version` it does not know.
 */
export interface TrustRecordStorage {
  get(deviceKey: string): Promise<TrustRecord | undefined>;
  set(deviceKey: string, record: TrustRecord): Promise<void>;
}

/** Options of a {@link RecordTrustStore}. */
export interface TrustStoreOptions {
  /** The policy, or a function choosing it per device (e.g. `require-verified` for one domain). */
  readonly policy: TrustPolicy | ((device: DeviceAddress) => TrustPolicy);
  /** Clock, in ms since the Unix epoch (for tests). */
  readonly now?: () => number;
}

/**
 * A {@link TrustStore} over any {@link TrustRecordStorage}. Operations on the same device are
 * serialized inside this object, so two concurrent first checks with different keys give one
 * `new` and one `changed`, never two `new`s. Storage shared between processes must add its own
 * transaction around `get`/`set`.
 *
 * @example
 * ```ts
 * const store = new RecordTrustStore(sqliteRecords, { policy: 'tofu' });
 * ```
 */
export class RecordTrustStore implements TrustStore {
  readonly #storage: TrustRecordStorage;
  readonly #policy: (device: DeviceAddress) => TrustPolicy;
  readonly #now: () => number;
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(storage: TrustRecordStorage, options: TrustStoreOptions) {
    const { policy } = options;
    if (typeof policy === 'function') this.#policy = policy;
    else if (isTrustPolicy(policy)) this.#policy = () => policy;
    else throw new ImppError('ERR_INVALID_ARGUMENT', 'policy must be "tofu" or "require-verified"');
    this.#storage = storage;
    this.#now = options.now ?? Date.now;
  }

  /** Runs `task` after every earlier task for the same device has settled. */
  async #serialized<T>(deviceKey: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(deviceKey) ?? Promise.resolve();
    const run = previous.then(task, task);
    const tail = run.catch(() => undefined);
    this.#queues.set(deviceKey, tail);
    try {
      return await run;
    } finally {
      if (this.#queues.get(deviceKey) === tail) this.#queues.delete(deviceKey);
    }
  }

  async checkIdentity(device: DeviceAddress, identityKey: Uint8Array): Promise<TrustDecision> {
    const deviceKey = formatDeviceAddress(device);
    // Decisions carry the canonical device address, whatever spelling the caller used.
    const canonical = parseDeviceAddress(deviceKey);
    const key = assertSigningPublicKey(identityKey, 'identityKey').slice();
    return this.#serialized(deviceKey, async () => {
      const policy = this.#policy(canonical);
      const { decision, record } = decideTrust(
        await this.#storage.get(deviceKey),
        key,
        policy,
        this.#now(),
        canonical,
      );
      if (record !== undefined) await this.#storage.set(deviceKey, record);
      return decision;
    });
  }

  async markVerified(device: DeviceAddress, identityKey: Uint8Array): Promise<void> {
    const deviceKey = formatDeviceAddress(device);
    const key = assertSigningPublicKey(identityKey, 'identityKey').slice();
    await this.#serialized(deviceKey, async () => {
      const stored = await this.#storage.get(deviceKey);
      if (stored !== undefined && !constantTimeEqual(stored.identityKey, key)) {
        throw new ImppError(
          'ERR_IDENTITY_CHANGED',
          'the key being verified is not the stored key of this device: accept the change first',
        );
      }
      const now = this.#now();
      await this.#storage.set(deviceKey, {
        version: TRUST_RECORD_VERSION,
        identityKey: key,
        state: 'verified',
        firstSeen: stored?.firstSeen ?? now,
        verifiedAt: now,
      });
    });
  }

  async acceptChange(device: DeviceAddress, identityKey: Uint8Array): Promise<void> {
    const deviceKey = formatDeviceAddress(device);
    const key = assertSigningPublicKey(identityKey, 'identityKey').slice();
    await this.#serialized(deviceKey, async () => {
      const stored = await this.#storage.get(deviceKey);
      // Accepting the key already held changes nothing (and must not drop a verification).
      if (stored !== undefined && constantTimeEqual(stored.identityKey, key)) return;
      await this.#storage.set(deviceKey, {
        version: TRUST_RECORD_VERSION,
        identityKey: key,
        state: 'trusted',
        firstSeen: this.#now(),
      });
    });
  }

  async getIdentity(device: DeviceAddress): Promise<TrustRecord | undefined> {
    const deviceKey = formatDeviceAddress(device);
    const stored = await this.#serialized(deviceKey, () => this.#storage.get(deviceKey));
    return stored === undefined
      ? undefined
      : { ...stored, identityKey: stored.identityKey.slice() };
  }
}

/** Map-backed storage that copies keys in and out, so callers cannot mutate stored records. */
class MapTrustRecordStorage implements TrustRecordStorage {
  readonly #records = new Map<string, TrustRecord>();

  get(deviceKey: string): Promise<TrustRecord | undefined> {
    const r = this.#records.get(deviceKey);
    return Promise.resolve(
      r === undefined ? undefined : { ...r, identityKey: r.identityKey.slice() },
    );
  }

  set(deviceKey: string, record: TrustRecord): Promise<void> {
    this.#records.set(deviceKey, { ...record, identityKey: record.identityKey.slice() });
    return Promise.resolve();
  }
}

/**
 * **DEVELOPMENT AND TESTS ONLY — DOES NOT PERSIST.** An in-memory {@link TrustStore}: everything it
 * knows is lost when the process exits, after which every device is "first seen" again and trust on
 * first use silently re-trusts whatever key is offered — exactly the key substitution the store
 * exists to catch. A real client must use a {@link RecordTrustStore} over durable storage.
 *
 * @example
 * ```ts
 * const store = new MemoryTrustStore({ policy: 'tofu' }); // tests only
 * (await store.checkIdentity(bobPhone, bobKey)).status; // 'new'
 * ```
 */
export class MemoryTrustStore extends RecordTrustStore {
  constructor(options: TrustStoreOptions) {
    super(new MapTrustRecordStorage(), options);
  }
}
