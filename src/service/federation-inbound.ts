/**
 * What this service does when an authenticated peer domain sends something (docs/protocol.md,
 * Server-to-server §5.5): the {@link FederationInbound} half of the seam in ./remote.ts, over the
 * store and the online sessions of one server.
 *
 * The federation has already checked that every address a peer speaks for is in the peer's
 * domain and every address it asks about is in ours. What is checked here is what only this
 * domain knows: its users' decisions (T11–T13). A peer can neither see past a denial (a denied
 * asker gets the answers of a user who does not exist) nor add a watcher (a presence object
 * reaches only watchers whose own copy of the subscription is approved here).
 */
import { ImppError, isImppError } from '../errors.js';
import { readEnvelopeHeader } from '../seal/header.js';
import { formatAddress, parseAddress, parseDeviceAddress } from '../trust/address.js';
import { NO_DEVICES, deniedBy, localBundles, localDevices, localLog } from './answers.js';
import type { SessionHost } from './host.js';
import type {
  BundleAnswer,
  DevicesAnswer,
  FederationInbound,
  InboundItem,
  LogAnswer,
  LogRequest,
  PresentityAction,
  WatcherAction,
} from './remote.js';

/** What the inbound side needs of its server. */
export type InboundHost = Pick<
  SessionHost,
  'domain' | 'store' | 'defences' | 'now' | 'onlineOf' | 'keyLog' | 'logKey'
>;

/**
 * {@link FederationInbound} over one server's store and sessions; the server exposes one as
 * `ImppServer.federationInbound`.
 *
 * @example
 * ```ts
 * const node = new FederationNode({ ... });
 * const server = new ImppServer({ ..., remote: node.router });
 * node.attach(server.federationInbound);
 * ```
 */
export class ServiceFederationInbound implements FederationInbound {
  readonly #host: InboundHost;

  constructor(host: InboundHost) {
    this.#host = host;
  }

  async deviceActive(device: string): Promise<boolean> {
    const parsed = this.#ours(device);
    if (parsed === undefined) return false;
    const record = await this.#host.store.devices.get(parsed.address, parsed.deviceId);
    return record !== undefined && !record.revoked;
  }

  async enqueue(item: InboundItem): Promise<'stored' | 'duplicate'> {
    // The store's own words for a device that cannot take objects (T13: the same for all).
    if (this.#ours(item.recipientDevice) === undefined) {
      throw new ImppError('ERR_NOT_FOUND', 'recipient device is not registered');
    }
    // The queue's watch pushes the stored item to the device's session if it is online.
    const outcome = await this.#host.store.queue.enqueue({
      id: item.id,
      recipientDevice: item.recipientDevice,
      kind: item.kind,
      bytes: item.object,
      receivedAt: this.#host.now(),
      arrivedFrom: item.arrivedFrom,
    });
    return outcome.status;
  }

  /** Nothing to do: the queue's watch already told the session (see ImppServer's constructor). */
  notify(): void {}

  async devices(address: string, asker: string): Promise<DevicesAnswer> {
    const owner = this.#local(address);
    if (await deniedBy(this.#host, owner, asker)) return NO_DEVICES;
    return localDevices(this.#host.store, owner);
  }

  async bundles(address: string, asker: string): Promise<readonly BundleAnswer[]> {
    const owner = this.#local(address);
    if (await deniedBy(this.#host, owner, asker)) return [];
    return localBundles(this.#host.store, owner);
  }

  /**
   * A peer's look-up of this domain's key log, for one of its users: the same answer as a local
   * GET_LOG. The log is public to whoever can check it; the peer's rate limit bounds the signing.
   */
  log(request: LogRequest): Promise<LogAnswer> {
    // Deferred, so that a refused `since` or `index` rejects rather than throws.
    return Promise.resolve().then(() => localLog(this.#host, request));
  }

  /**
   * A remote watcher's request or cancel, applied to this domain's record (the authority) as a
   * local SUBSCRIBE would be, and shown to the presentity's online devices. A cancel of a record
   * that is already gone is no error: both copies agree it is gone.
   */
  async subscription(request: {
    readonly presentity: string;
    readonly watcher: string;
    readonly action: WatcherAction;
  }): Promise<void> {
    const presentity = this.#local(request.presentity);
    const watcher = this.#foreign(request.watcher);
    let state: string;
    try {
      const record = await this.#host.store.subscriptions.transition({
        presentity,
        watcher,
        actor: watcher,
        action: request.action,
        at: this.#host.now(),
      });
      state = record?.state ?? 'none';
    } catch (e) {
      if (request.action === 'cancel' && isImppError(e, 'ERR_NOT_FOUND')) return;
      throw e;
    }
    for (const s of this.#host.onlineOf(presentity)) s.pushSubscription(presentity, watcher, state);
  }

  /**
   * A remote presentity's decision about a local watcher, applied to this domain's copy. A
   * decision that no longer fits the copy (the watcher cancelled while it was on its way) is
   * dropped: the presentity's home receives that cancel next, and both copies end without the
   * record. The watcher is told as after a local DECIDE: a denial looks like a request still
   * pending (T13), so nothing is pushed for it.
   */
  async decision(request: {
    readonly presentity: string;
    readonly watcher: string;
    readonly action: PresentityAction;
    readonly presence?: Uint8Array;
  }): Promise<void> {
    const watcher = this.#local(request.watcher);
    const presentity = this.#foreign(request.presentity);
    let state: string;
    try {
      const record = await this.#host.store.subscriptions.transition({
        presentity,
        watcher,
        actor: presentity,
        action: request.action,
        at: this.#host.now(),
      });
      state = record?.state ?? 'none';
    } catch (e) {
      if (isImppError(e, 'ERR_NOT_FOUND') || isImppError(e, 'ERR_CONFLICT')) return;
      throw e;
    }
    const hidden = state === 'denied' && this.#host.defences.uniformBlockedAnswers;
    const presence =
      state === 'approved' && request.presence !== undefined
        ? await this.#storePresence(presentity, request.presence)
        : undefined;
    for (const s of this.#host.onlineOf(watcher)) {
      if (!hidden) s.pushSubscription(presentity, watcher, state);
      if (presence !== undefined) s.pushPresence(presence);
    }
  }

  /**
   * A remote presentity's presence for the listed local watchers: kept as its latest presence
   * (an offline watcher gets it at login) and pushed to those whose own copy of the subscription
   * is approved here. A version older than the one kept is dropped without error.
   */
  async presence(request: {
    readonly object: Uint8Array;
    readonly presentity: string;
    readonly watchers: readonly string[];
  }): Promise<number> {
    const presentity = this.#foreign(request.presentity);
    // One read of this domain's approved copies, whatever the length of the peer's list.
    const approvedHere = new Set(await this.#host.store.subscriptions.approvedWatchers(presentity));
    const approved = [...new Set(request.watchers)].filter(
      (w) => approvedHere.has(w) && this.#isLocal(w),
    );
    if (approved.length === 0) return 0;
    const stored = await this.#storePresence(presentity, request.object, true);
    if (stored === undefined) return 0;
    let pushed = 0;
    for (const w of approved) {
      for (const s of this.#host.onlineOf(w)) {
        s.pushPresence(stored);
        pushed++;
      }
    }
    return pushed;
  }

  /**
   * Keeps `object` as `presentity`'s latest presence. Returns the bytes to push, or `undefined`
   * for an update that is not newer than the one kept (a stale or, with `freshOnly`, a repeated
   * one: nothing to push; a repeat was pushed when it first came).
   */
  async #storePresence(
    presentity: string,
    object: Uint8Array,
    freshOnly = false,
  ): Promise<Uint8Array | undefined> {
    const header = readEnvelopeHeader(object);
    if (header.kind !== 'presence' || header.presentity !== presentity) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'presence: not a presence object of presentity');
    }
    try {
      const stored = await this.#host.store.presence.put({
        presentity,
        version: header.presenceVersion,
        bytes: object,
        receivedAt: this.#host.now(),
      });
      return stored || !freshOnly ? object : undefined;
    } catch (e) {
      if (isImppError(e, 'ERR_SEAL_ROLLBACK')) return undefined;
      throw e;
    }
  }

  /**
   * An address a peer speaks for: never one of this domain, so a peer cannot act as a local user
   * (request, decide or publish in its name) even if the federation's own check were missing.
   */
  #foreign(address: string): string {
    if (parseAddress(address).domain === this.#host.domain) {
      throw new ImppError('ERR_NOT_AUTHORIZED', 'a peer does not speak for this domain');
    }
    return address;
  }

  #isLocal(address: string): boolean {
    try {
      return parseAddress(address).domain === this.#host.domain;
    } catch {
      return false;
    }
  }

  /** A canonical address of this domain, or `ERR_NOT_FOUND` (the federation checked already). */
  #local(address: string): string {
    const parsed = parseAddress(address);
    if (parsed.domain !== this.#host.domain) {
      throw new ImppError('ERR_NOT_FOUND', 'no such user in this domain');
    }
    return formatAddress(parsed);
  }

  #ours(device: string): { address: string; deviceId: string } | undefined {
    try {
      const parsed = parseDeviceAddress(device);
      if (parsed.address.domain !== this.#host.domain) return undefined;
      return { address: formatAddress(parsed.address), deviceId: parsed.deviceId };
    } catch {
      return undefined;
    }
  }
}
