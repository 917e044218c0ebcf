/**
 * Repository interfaces of the service's storage (issue 5, "Storage"; architecture brief §6).
 *
 * The service depends on these interfaces only. The embedded default is SQLite
 * (`./sqlite/store.ts`); a cluster of nodes for one domain can later share a PostgreSQL
 * implementation of the same interfaces (docs/storage.md says how).
 *
 * Rules every implementation keeps:
 * - **No plaintext.** Message, presence and device-list objects are stored as the opaque sealed
 *   bytes the service received, plus the few header fields the service routes by (recipient
 *   device, id, kind, presence version). The SQLite store parses each message and presence
 *   envelope's header (src/seal/header.ts, nothing else of src/seal) and refuses bytes that are
 *   not a sealed object or that disagree with those fields. Nothing here can open a payload.
 * - **A write promise resolves only after its transaction is durable** (committed, synced per
 *   the backend's durability setting). The service acknowledges a message to its sender only
 *   after `enqueue` resolved: that is the durable acknowledgement point. Reads see committed
 *   writes only, so await a write before reading what it wrote.
 * - **Invariants are the store's job**, not only the caller's: monotonic device-list counters and
 *   presence versions, one-time prekeys handed out at most once, the subscription state machine,
 *   quotas. A buggy or compromised caller cannot make the store roll state back.
 * - Addresses are canonical strings (`user@domain`, `user@domain/deviceId`, see
 *   `src/trust/address.ts`); times are milliseconds since the epoch.
 *
 * Errors are `ImppError`s (src/errors.ts): `ERR_INVALID_ARGUMENT` (malformed input), `ERR_NOT_FOUND`,
 * `ERR_CONFLICT` (duplicate or out-of-order state), `ERR_NOT_AUTHORIZED` (wrong actor),
 * `ERR_QUOTA_EXCEEDED`, `ERR_SEAL_ROLLBACK` (older presence), `ERR_STORAGE` (the backend failed).
 */
import type { KeyLogStorage } from '../../trust/keylog/storage.js';
import type { SubscriptionAction, SubscriptionState } from './subscription-state.js';

export type { KeyLogStorage } from '../../trust/keylog/storage.js';
export type { SubscriptionAction, SubscriptionState } from './subscription-state.js';

// ────────────────────────────────────────────────────────────────────────────────────────────
// Devices
// ────────────────────────────────────────────────────────────────────────────────────────────

/** A device registered for an address. */
export interface DeviceRecord {
  /** `user@domain` of the owner. */
  readonly address: string;
  /** `[A-Za-z0-9_-]{1,64}`, unique per address. */
  readonly deviceId: string;
  /** Ed25519 identity public key, 32 bytes. */
  readonly identityKey: Uint8Array;
  /** The enrolment statement the domain issued for this device (opaque signed bytes). */
  readonly enrolment: Uint8Array;
  readonly createdAt: number;
  readonly revoked: boolean;
  /** When the device was revoked; `null` while active. */
  readonly revokedAt: number | null;
}

/** What {@link DeviceRepository.register} takes. */
export type NewDevice = Omit<DeviceRecord, 'revoked' | 'revokedAt'>;

/** Devices of each address. A device id is never reused for an address, even after revocation. */
export interface DeviceRepository {
  /** @throws `ERR_CONFLICT` when the address already has (or had) this device id. */
  register(device: NewDevice): Promise<void>;
  get(address: string, deviceId: string): Promise<DeviceRecord | undefined>;
  /** Devices of `address` ordered by device id; revoked ones only when asked. */
  list(address: string, options?: { includeRevoked?: boolean }): Promise<DeviceRecord[]>;
  /**
   * Marks the device revoked and, in the same transaction, deletes its prekeys and its pending
   * messages (nothing is delivered to a revoked device).
   * @returns `false` when the device does not exist or was already revoked.
   */
  revoke(address: string, deviceId: string, at: number): Promise<boolean>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Signed device lists
// ────────────────────────────────────────────────────────────────────────────────────────────

/** The latest signed device list of an address, kept as the exact bytes the owner signed. */
export interface StoredDeviceList {
  readonly address: string;
  readonly counter: number;
  readonly bytes: Uint8Array;
  readonly storedAt: number;
}

/**
 * Latest signed device list per address. The caller verifies the list (src/trust/device-list.ts)
 * before storing it; the store keeps counters monotonic whatever the caller does.
 */
export interface DeviceListRepository {
  latest(address: string): Promise<StoredDeviceList | undefined>;
  /**
   * Stores `list` if its counter is larger than the stored one. The same counter with identical
   * bytes is a harmless re-delivery and resolves `false`.
   * @returns `true` when stored.
   * @throws `ERR_CONFLICT` for a smaller counter, or the same counter with other bytes.
   */
  put(list: StoredDeviceList): Promise<boolean>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Prekeys
// ────────────────────────────────────────────────────────────────────────────────────────────

/** A device's current signed prekey (X3DH §3.2): replaced by each upload. */
export interface SignedPrekeyRecord {
  readonly keyId: number;
  /** X25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature by the device identity key, 64 bytes (checked by initiators). */
  readonly signature: Uint8Array;
  readonly uploadedAt: number;
}

/** A one-time prekey (X3DH §3.2). */
export interface OneTimePrekey {
  /** 0 .. 2^32 − 1, unique per device. */
  readonly keyId: number;
  /** X25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
}

/** Prekeys of registered, unrevoked devices (`device` is `user@domain/deviceId`). */
export interface PrekeyRepository {
  /** Replaces the device's signed prekey. @throws `ERR_NOT_FOUND` for an unknown or revoked device. */
  putSignedPrekey(device: string, prekey: SignedPrekeyRecord): Promise<void>;
  signedPrekey(device: string): Promise<SignedPrekeyRecord | undefined>;
  /**
   * Adds a batch of one-time prekeys, all or nothing.
   * @throws `ERR_CONFLICT` when a key id is already stored (or repeated in the batch),
   *   `ERR_QUOTA_EXCEEDED` when the device would hold more than the quota.
   */
  addOneTimePrekeys(device: string, keys: readonly OneTimePrekey[]): Promise<void>;
  /**
   * Removes and returns one one-time prekey (the oldest upload first). Atomic and durable before
   * it resolves: a key is handed out at most once, even to concurrent takers and across a crash.
   * `undefined` when none is left (X3DH then runs without one).
   */
  takeOneTimePrekey(device: string): Promise<OneTimePrekey | undefined>;
  countOneTimePrekeys(device: string): Promise<number>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Message queue
// ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Kinds of objects a device queue holds: sealed objects (names as in `EnvelopeHeader.kind`), and
 * `notice`, a delivery-failure notice from this server (src/protocol/notice.ts): not an envelope,
 * at most `MAX_NOTICE_BYTES`, and it must decode as a notice.
 */
export type QueuedKind = 'message' | 'keyDistribution' | 'presence' | 'notice';

/** A sealed object (or a notice) waiting for one recipient device. */
export interface QueuedObject {
  /** Sender-chosen id (the envelope's message id), 1..64 bytes; unique per recipient device. */
  readonly id: Uint8Array;
  /** `user@domain/deviceId`. */
  readonly recipientDevice: string;
  readonly kind: QueuedKind;
  /** The sealed object exactly as received. */
  readonly bytes: Uint8Array;
  readonly receivedAt: number;
  /**
   * The authenticated peer domain a sealed object arrived from (federation); `null` or absent
   * for one sent in this domain, and always for a notice. The recipient's client refuses a sealed
   * sender of another domain than this stamp (T45).
   */
  readonly arrivedFrom?: string | null;
}

/** A queued object with its position: `seq` grows with every enqueue and is never reused. */
export interface PendingObject extends QueuedObject {
  readonly seq: number;
  readonly arrivedFrom: string | null;
}

/** What an enqueue did. */
export type EnqueueOutcome =
  | { readonly status: 'stored'; readonly seq: number }
  /** The device already has a pending object with this id: nothing stored (idempotent retry). */
  | { readonly status: 'duplicate'; readonly seq: number };

/** Count and bytes a device's queue uses. */
export interface QueueUsage {
  readonly count: number;
  readonly bytes: number;
}

/**
 * Store-and-forward queue per recipient device. Objects stay until the device acknowledges them.
 *
 * Idempotency covers *pending* objects: an id the device already acknowledged can be stored
 * again if a sender retransmits it later; the recipient's replay cache (docs/formats.md §4.5)
 * makes delivery to the application exactly once by id.
 */
export interface MessageQueueRepository {
  /**
   * Stores one object for its recipient device; resolves after the commit is durable (the point
   * at which the service may acknowledge receipt).
   * @throws `ERR_NOT_FOUND` (unknown or revoked device), `ERR_QUOTA_EXCEEDED` (count or bytes),
   *   `ERR_INVALID_ARGUMENT`; when envelopes are verified (the SQLite default), `ERR_SEAL_*` for
   *   bytes that are not a sealed object and `ERR_INVALID_ARGUMENT` when the envelope's
   *   recipient, id or kind differ from the fields given. A `notice` is not an envelope: it must
   *   decode as a delivery-failure notice of at most `MAX_NOTICE_BYTES`, without `arrivedFrom`
   *   (`ERR_INVALID_ARGUMENT` otherwise).
   */
  enqueue(object: QueuedObject): Promise<EnqueueOutcome>;
  /** Pending objects of `device` in enqueue order, those with `seq > after` (default 0). */
  pending(device: string, options?: { after?: number; limit?: number }): Promise<PendingObject[]>;
  /** Deletes the device's objects with these ids. @returns how many were deleted. */
  acknowledge(device: string, ids: readonly Uint8Array[]): Promise<number>;
  usage(device: string): Promise<QueueUsage>;
  /**
   * Tells `watcher` of every object stored from now on, once its commit is durable, just before
   * its `enqueue` resolves. For one device the calls come in queue order (ascending `seq`), so a
   * reader that has seen everything up to some point can follow the queue from memory.
   * @returns a function that stops the calls.
   */
  watch(watcher: QueueWatcher): () => void;
}

/** Follows a {@link MessageQueueRepository} (its `watch`). Must not throw. */
export interface QueueWatcher {
  /** `object` is stored, durably; it stays pending until acknowledged. */
  stored(object: PendingObject): void;
  /**
   * A write for `device` failed in the store itself, perhaps after its commit: what the queue
   * holds is known again only by reading it.
   */
  unsure(device: string): void;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Subscriptions
// ────────────────────────────────────────────────────────────────────────────────────────────

/** A watcher's subscription to a presentity's presence. */
export interface SubscriptionRecord {
  readonly presentity: string;
  readonly watcher: string;
  readonly state: SubscriptionState;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/**
 * Subscriptions and their state machine (`./subscription-state.ts`): the watcher requests (and
 * may cancel), only the presentity approves, denies or revokes.
 */
export interface SubscriptionRepository {
  get(presentity: string, watcher: string): Promise<SubscriptionRecord | undefined>;
  /**
   * Applies `action` by `actor` and returns the resulting record (`undefined` when a cancel
   * removed it).
   * @throws `ERR_NOT_AUTHORIZED` (actor may not take this action), `ERR_CONFLICT` (not allowed
   *   from the current state), `ERR_NOT_FOUND` (no subscription to decide),
   *   `ERR_QUOTA_EXCEEDED` (the watcher has too many active subscriptions).
   */
  transition(input: {
    presentity: string;
    watcher: string;
    actor: string;
    action: SubscriptionAction;
    at: number;
  }): Promise<SubscriptionRecord | undefined>;
  /** Approved watchers of `presentity`, ordered by address: the presence fan-out set. */
  approvedWatchers(presentity: string): Promise<string[]>;
  /** Subscriptions to `presentity` in one state (e.g. pending requests to show the user). */
  listForPresentity(presentity: string, state?: SubscriptionState): Promise<SubscriptionRecord[]>;
  listForWatcher(watcher: string): Promise<SubscriptionRecord[]>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Presence
// ────────────────────────────────────────────────────────────────────────────────────────────

/** The latest sealed presence update of a presentity. */
export interface StoredPresence {
  readonly presentity: string;
  /** Presence version from the envelope header (docs/formats.md §5 key 5). */
  readonly version: number;
  readonly bytes: Uint8Array;
  readonly receivedAt: number;
}

/** Latest presence per presentity; versions only go up. */
export interface PresenceRepository {
  latest(presentity: string): Promise<StoredPresence | undefined>;
  /**
   * Replaces the stored update if `update.version` is higher. The same version with identical
   * bytes resolves `false` (re-delivery).
   * @throws `ERR_SEAL_ROLLBACK` for a lower version, or the same version with other bytes;
   *   `ERR_SEAL_*` / `ERR_INVALID_ARGUMENT` when the bytes are not a presence update of this
   *   presentity and version (envelope verification, the SQLite default).
   */
  put(update: StoredPresence): Promise<boolean>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Audit trail
// ────────────────────────────────────────────────────────────────────────────────────────────

/** Outcome of an audited operation. */
export type AuditOutcome = 'success' | 'failure' | 'refused';

/** Detail values: short scalars only, so nothing large (a payload, a key) fits by accident. */
export type AuditDetailValue = string | number | boolean | null;

/** One audit event. It never holds secrets: detail keys naming secrets are refused. */
export interface AuditEventRecord {
  readonly at: number;
  /** Dotted event kind, e.g. `device.register`, `subscription.approve`. */
  readonly kind: string;
  /** `user@domain` or device address the event is about; `null` before authentication. */
  readonly principal: string | null;
  /** Where it came from (remote IP, `cli`, `system`); `null` when unknown. */
  readonly source: string | null;
  readonly outcome: AuditOutcome;
  readonly details: Readonly<Record<string, AuditDetailValue>>;
}

/** A stored audit event with its sequence number. */
export interface StoredAuditEvent extends AuditEventRecord {
  readonly seq: number;
}

/** Append-only audit trail. */
export interface AuditRepository {
  /** @throws `ERR_INVALID_ARGUMENT` for a detail key that names a secret or an oversized value. */
  append(event: AuditEventRecord): Promise<void>;
  /** Events in order, optionally from `after` (a seq), of one kind or principal. */
  list(options?: {
    after?: number;
    limit?: number;
    kind?: string;
    principal?: string;
  }): Promise<StoredAuditEvent[]>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// The whole store
// ────────────────────────────────────────────────────────────────────────────────────────────

/** Per-device and per-watcher limits the store enforces. */
export interface StoreQuotas {
  /** Pending objects per device queue. */
  readonly queueMaxCount: number;
  /** Pending bytes per device queue. */
  readonly queueMaxBytes: number;
  /** Unused one-time prekeys per device. */
  readonly oneTimePrekeysMax: number;
  /** Active (pending or approved) subscriptions per watcher. */
  readonly subscriptionsPerWatcher: number;
}

/**
 * Defaults: generous for people, tight enough that one device cannot fill the disk.
 *
 * @example
 * ```ts
 * openSqliteServiceStore({ path, quotas: { ...DEFAULT_STORE_QUOTAS, queueMaxCount: 50_000 } });
 * ```
 */
export const DEFAULT_STORE_QUOTAS: StoreQuotas = {
  queueMaxCount: 10_000,
  queueMaxBytes: 64 * 1024 * 1024,
  oneTimePrekeysMax: 500,
  subscriptionsPerWatcher: 1_000,
};

/**
 * Every repository the service needs, over one backend.
 *
 * @example
 * ```ts
 * const store: ServiceStore = openSqliteServiceStore({ path: '/var/lib/impp/store.db' });
 * await store.queue.enqueue({ id, recipientDevice, kind: 'message', bytes, receivedAt: Date.now() });
 * await store.close();
 * ```
 */
export interface ServiceStore {
  readonly devices: DeviceRepository;
  readonly deviceLists: DeviceListRepository;
  readonly prekeys: PrekeyRepository;
  readonly queue: MessageQueueRepository;
  readonly subscriptions: SubscriptionRepository;
  readonly presence: PresenceRepository;
  readonly audit: AuditRepository;
  /** The domain key log's storage (synchronous by its own contract). */
  readonly keyLog: KeyLogStorage;
  readonly quotas: StoreQuotas;
  /** Waits for pending writes, then closes. Further calls fail with `ERR_STORAGE`. */
  close(): Promise<void>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Federation (issue 7, item 5: durability between domains)
// ────────────────────────────────────────────────────────────────────────────────────────────

/** An object waiting in the outbound queue of one peer domain. */
export interface FederationQueueEntry {
  /** Enqueue order across all peers; never reused. */
  readonly seq: number;
  /** The peer domain the object goes to (normalized). */
  readonly peer: string;
  /**
   * Who the object is from, as the router names it (e.g. the sender's device address): order is
   * kept per sender, and a bounce goes back to this sender.
   */
  readonly sender: string;
  /** 16 bytes, the link object id (unique among the objects this domain sends). */
  readonly id: Uint8Array;
  /** The link object kind, 0..65535. */
  readonly kind: number;
  /** Opaque bytes (a sealed object, or the router's CBOR): sent as the DATA body. */
  readonly body: Uint8Array;
  readonly enqueuedAt: number;
  /** Times the peer answered this object with a REJECT that was worth retrying. */
  readonly attempts: number;
}

/** What {@link FederationQueueRepository.enqueue} takes. */
export type NewFederationQueueEntry = Omit<FederationQueueEntry, 'seq' | 'attempts'>;

/** Retry state of one peer, kept across restarts. */
export interface FederationPeerState {
  /** Failed delivery rounds in a row (0 after a round that got through). */
  readonly attempts: number;
  /** No attempt before this time (ms since the epoch); 0: at once. */
  readonly nextAttemptAt: number;
  /** The last failure's error code, for operators; never peer-controlled text. */
  readonly lastError: string | null;
}

/** Bounds of each peer's outbound queue. */
export interface FederationQueueQuotas {
  /** Pending objects per peer. */
  readonly maxCount: number;
  /** Pending bytes (bodies) per peer. */
  readonly maxBytes: number;
}

/** Defaults: a peer may be down for a day of busy traffic without refusing senders. */
export const DEFAULT_FEDERATION_QUEUE_QUOTAS: FederationQueueQuotas = {
  maxCount: 1_000_000,
  maxBytes: 1024 * 1024 * 1024,
};

/** Largest body of a queued federation object (the link's default frame bound). */
export const MAX_FEDERATION_BODY_BYTES = 256 * 1024;

/**
 * The outbound queue of each peer domain. Entries are kept until the peer's hop ACK (then
 * {@link remove}d) or until they expire (then bounced to their sender and removed).
 */
export interface FederationQueueRepository {
  /**
   * Stores an object for `entry.peer`; resolves once durable (the point at which the router may
   * acknowledge it to the sender). An entry with an id already queued for that peer is a
   * `duplicate` (idempotent retry).
   * @throws `ERR_QUOTA_EXCEEDED` when the peer's queue is at its count or byte bound.
   */
  enqueue(entry: NewFederationQueueEntry): Promise<EnqueueOutcome>;
  /** Up to `limit` (default 256, at most 4096) entries of `peer` with `seq > after`, in order. */
  peek(
    peer: string,
    options?: { readonly after?: number; readonly limit?: number },
  ): Promise<FederationQueueEntry[]>;
  /** Deletes `peer`'s entries with these ids (at most 4096). @returns how many were deleted. */
  remove(peer: string, ids: readonly Uint8Array[]): Promise<number>;
  /** Adds one to the attempts of these entries of `peer`. */
  noteAttempt(peer: string, ids: readonly Uint8Array[]): Promise<void>;
  /**
   * Entries enqueued before `before` (ms), oldest first: the ones to bounce. Not removed here,
   * so that a crash between the bounce and the removal repeats the bounce rather than losing it.
   */
  expired(
    before: number,
    options?: { readonly peer?: string; readonly limit?: number },
  ): Promise<FederationQueueEntry[]>;
  /** Peers with at least one queued entry. */
  peers(): Promise<string[]>;
  usage(peer: string): Promise<QueueUsage>;
  peerState(peer: string): Promise<FederationPeerState>;
  setPeerState(peer: string, state: FederationPeerState): Promise<void>;
}

/**
 * Object ids received from each origin domain (duplicate suppression at the receiving domain),
 * kept for a bounded time.
 */
export interface FederationSeenRepository {
  /** True if `(origin, id)` is recorded. */
  has(origin: string, id: Uint8Array): Promise<boolean>;
  /**
   * Records `(origin, id)` at time `at`; resolves once durable. Recording twice is harmless.
   * `within`, if given, runs in the same transaction (synchronous writes of a backend that
   * supports it, e.g. the delivery itself on the same SQLite database): both commit or neither.
   */
  record(origin: string, id: Uint8Array, at: number, within?: () => void): Promise<void>;
  /** Forgets `(origin, id)`. */
  forget(origin: string, id: Uint8Array): Promise<void>;
  /** Forgets ids recorded before `before` (at most `limit`, default 10 000). @returns how many. */
  prune(before: number, limit?: number): Promise<number>;
  /** Ids recorded. */
  count(): Promise<number>;
}
