/**
 * One client connection on the server: SASL in frames, device binding, then requests
 * (docs/protocol.md, "Client protocol"). Requests of one connection are handled one at a time,
 * in order; a request's failure is answered with ERROR and the session carries on, while a
 * protocol violation before authentication closes the connection.
 */
import type { AuthSession, SessionOutcome } from '../auth/server.js';
import { WEAKEN_AUTH } from '../auth/checks.js';
import type { AuthResult, ChannelInfo } from '../auth/types.js';
import { randomBytes } from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import type { CborValue } from '../transport/cbor-strict.js';
import type { Connection } from '../transport/connection.js';
import type { Frame } from '../transport/frame-codec.js';
import { TokenBucket } from '../transport/rate-limit.js';
import {
  formatAddress,
  isValidDeviceId,
  normalizeDomain,
  parseAddress,
  parseDeviceAddress,
} from '../trust/address.js';
import { decodeDeviceList, verifyDeviceList } from '../trust/device-list.js';
import { enrolmentLogEntry, issueEnrolmentStatement } from '../trust/enrolment.js';
import { sameKey } from '../trust/identity.js';
import { verifyBinding } from './binding.js';
import {
  type Body,
  ClientFrame,
  PROTOCOL_LIMITS,
  WIRE_ERROR_CODES,
  asBody,
  bad,
  bytes,
  list,
  text,
  uint,
} from './protocol.js';
import {
  NO_DEVICES,
  bundlesBody,
  deniedBy,
  devicesBody,
  localBundles,
  localDevices,
  localLog,
  logBody,
} from './answers.js';
import type { RoutablePeer, SessionHost } from './host.js';
import type { RemoteRouter } from './remote.js';
import type { OneTimePrekey, PendingObject, SubscriptionAction } from './store/types.js';
import { readServiceHeader } from './store/validate.js';

type Phase = 'auth' | 'bind' | 'ready' | 'closed';

const MAX_ADDRESS = 512;

/** Requests that cost the server (or another user's prekey stock) more than a lookup. */
/** Requests answered out of turn so their durable commits can share a transaction. */
const PIPELINED_REQUESTS: ReadonlySet<number> = new Set([ClientFrame.SEND, ClientFrame.ACK]);
/** Most pipelined requests in flight per session. */
const PIPELINE_DEPTH = 32;

const COSTLY_REQUESTS: ReadonlySet<number> = new Set([
  ClientFrame.GET_BUNDLES,
  ClientFrame.GET_LOG,
]);

function notAuthorized(message: string): ImppError {
  return new ImppError('ERR_NOT_AUTHORIZED', message);
}

/** @internal A device's connection, from TLS to close. */
export class DeviceSession implements RoutablePeer {
  #phase: Phase = 'auth';
  #auth: AuthSession | undefined;
  #result: AuthResult | undefined;
  #address: string | undefined;
  #deviceId: string | undefined;
  #nonce: Uint8Array | undefined;
  #registered = false;
  #flushing = false;
  #flushAgain = false;
  /** Seq of the last object pushed in this session (DELIVER), 0 before the first. */
  #lastSeq = 0;
  /**
   * Caught up: a store read found nothing committed after #lastSeq, no read runs, and the
   * outbound queue is below its high-water mark. Then each object the store reports stored
   * (in queue order, see MessageQueueRepository.watch) is the next one, and goes out from memory.
   */
  #live = false;
  /** When this connection began authenticating: account changes from then on end it (T21). */
  #authStartedAt: number | undefined;
  /** SENDs queue here so a lookup before the enqueue keeps their order (see #sendObject). */
  #sendOrder: Promise<unknown> = Promise.resolve();
  /** What the TLS channel tells authentication and binding; dropped once bound. */
  #channel: ChannelInfo | undefined;
  readonly #costly: TokenBucket;
  /** Pipelined SEND/ACK requests not answered yet. */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly server: SessionHost,
    readonly connection: Connection,
  ) {
    // A client certificate (asked for only when EXTERNAL is configured) reaches the
    // mechanisms with Node's verdict on its chain; EXTERNAL refuses one that did not verify.
    const peer = connection.peerCertificate();
    this.#channel = {
      secure: true,
      tlsVersion: 'TLSv1.3',
      tlsExporter: connection.channelBinding(),
      ...(connection.remoteAddress === undefined
        ? {}
        : { remoteAddress: connection.remoteAddress }),
      ...(peer === undefined
        ? {}
        : {
            peerCertificate: new Uint8Array(peer.raw),
            peerCertificateChain: [],
            peerCertificateVerified: connection.peerCertificateAuthorized,
          }),
    };
    this.#costly = new TokenBucket(server.costlyRequests.rate, server.costlyRequests.burst);
  }

  /** `user@domain/deviceId` once bound. */
  get device(): string | undefined {
    return this.#address === undefined || this.#deviceId === undefined
      ? undefined
      : `${this.#address}/${this.#deviceId}`;
  }

  get address(): string | undefined {
    return this.#address;
  }

  /** When authentication began (server clock), if it has. */
  get authStartedAt(): number | undefined {
    return this.#authStartedAt;
  }

  start(): void {
    this.#send(ClientFrame.AUTH_OFFER, {
      mechanisms: this.server.authenticator.offer(this.#channel as ChannelInfo),
    });
    void this.#run();
  }

  /** Another connection bound the same device: this one gives way. */
  replaced(): void {
    this.connection.close(new ImppError('ERR_CONFLICT', 'the device connected again elsewhere'));
  }

  /** The account's credential changed or the device was revoked: the session ends (T21). */
  revoked(reason: string): void {
    this.#phase = 'closed';
    this.connection.close(new ImppError('ERR_NOT_AUTHORIZED', reason));
  }

  async #run(): Promise<void> {
    try {
      for await (const frame of this.connection.frames()) {
        if (this.#phase === 'ready' && PIPELINED_REQUESTS.has(frame.type)) {
          await this.#pipeline(frame);
          continue;
        }
        await this.#drain();
        await this.#handle(frame);
        if (this.#phase === 'closed') break;
      }
      await this.#drain();
    } catch (e) {
      this.connection.close(
        isImppError(e) ? e : new ImppError('ERR_PROTOCOL', 'internal error in this session'),
      );
    } finally {
      this.#phase = 'closed';
      if (this.#auth !== undefined && this.#result === undefined) void this.#auth.abort();
    }
  }

  /**
   * SEND and ACK do not wait for the previous one's durable commit: the store's group commit
   * then takes many of them in one transaction, instead of one per round trip. Order is kept
   * because each request reaches the store synchronously, in frame order, before its first
   * await. At most PIPELINE_DEPTH are in flight per session (back-pressure on the reader); any
   * other request first waits for all of them, so it observes their effects.
   */
  async #pipeline(frame: Frame): Promise<void> {
    if (this.#inFlight.size >= PIPELINE_DEPTH) await Promise.race(this.#inFlight);
    // Past the server-wide bound, wait here: this session reads no further frames meanwhile.
    const admission = this.server.admission;
    const wait = admission.acquire();
    if (wait !== undefined) await wait;
    const done: Promise<void> = this.#request(frame).then(
      () => {
        admission.release();
        this.#inFlight.delete(done);
      },
      (e: unknown) => {
        admission.release();
        this.#inFlight.delete(done);
        this.connection.close(
          isImppError(e) ? e : new ImppError('ERR_PROTOCOL', 'internal error in this session'),
        );
      },
    );
    this.#inFlight.add(done);
  }

  async #drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  async #handle(frame: Frame): Promise<void> {
    switch (this.#phase) {
      case 'auth':
        await this.#authFrame(frame);
        return;
      case 'bind':
        await this.#bindFrame(frame);
        return;
      case 'ready':
        await this.#request(frame);
        return;
      case 'closed':
        return;
    }
  }

  // ── SASL (RFC 4422) carried in frames ──────────────────────────────────────────────────────

  async #authFrame(frame: Frame): Promise<void> {
    let outcome: SessionOutcome;
    if (frame.type === ClientFrame.AUTH_START) {
      if (this.#auth !== undefined) throw new ImppError('ERR_PROTOCOL', 'AUTH_START sent twice');
      const body = asBody(frame.body);
      const mechanism = text(body, 'mechanism', 20);
      const initial = body.initial;
      if (initial !== null && !(initial instanceof Uint8Array)) bad('initial', 'bytes or null');
      // Taken before the provider is asked for the credential, so a change racing the exchange
      // counts as newer than this session (docs/protocol.md, "Ending sessions").
      this.#authStartedAt = this.server.now();
      const { defences } = this.server;
      this.#auth = this.server.authenticator.begin(this.#channel as ChannelInfo, {
        [WEAKEN_AUTH]: {
          scramChannelBinding: defences.scramChannelBindingCheck,
          rateLimit: defences.authRateLimit,
          uniformUnknownUser: defences.uniformUnknownUser,
          certificateChainVerified: defences.clientCertificateChainCheck,
          certificateSingleIdentity: defences.certificateSingleIdentity,
        },
      });
      outcome = await this.#auth.start(mechanism, initial ?? null);
    } else if (frame.type === ClientFrame.AUTH_RESPONSE) {
      if (this.#auth === undefined)
        throw new ImppError('ERR_PROTOCOL', 'AUTH_RESPONSE before AUTH_START');
      outcome = await this.#auth.respond(bytes(asBody(frame.body), 'data', 0, 64 * 1024));
    } else {
      // Any request before authentication: refused, and the connection closes.
      throw notAuthorized('authenticate first');
    }
    if (outcome.type === 'challenge') {
      this.#send(ClientFrame.AUTH_CHALLENGE, { data: outcome.challenge });
      return;
    }
    if (outcome.type === 'failure') {
      this.#send(ClientFrame.AUTH_FAILURE, { failure: outcome.failure });
      this.#phase = 'closed';
      this.connection.close(new ImppError('ERR_AUTH_FAILED', 'authentication failed'));
      return;
    }
    this.#result = outcome.result;
    // The finished exchange (mechanism state, binding) is not needed again: an idle session
    // should hold only what it routes by.
    this.#auth = undefined;
    this.#address = formatAddress(outcome.result.principal);
    this.#nonce = randomBytes(32);
    this.#phase = 'bind';
    // LIMITS before the success frame (docs/protocol.md, Transport §4).
    this.connection.markAuthenticated();
    this.#send(ClientFrame.AUTH_SUCCESS, {
      additionalData: outcome.additionalData,
      address: this.#address,
      nonce: this.#nonce,
    });
  }

  // ── Device binding ─────────────────────────────────────────────────────────────────────────

  async #bindFrame(frame: Frame): Promise<void> {
    if (frame.type !== ClientFrame.BIND) throw notAuthorized('bind a device first');
    const body = asBody(frame.body);
    const deviceId = text(body, 'deviceId', 64);
    if (!isValidDeviceId(deviceId)) bad('deviceId', 'a device id');
    const identityKey = bytes(body, 'identityKey', 32, 32);
    const signature = bytes(body, 'signature', 64, 64);
    const address = this.#address as string;
    const ok = verifyBinding(
      {
        exporter: (this.#channel as ChannelInfo).tlsExporter as Uint8Array,
        nonce: this.#nonce as Uint8Array,
        address,
        deviceId,
        identityKey,
      },
      signature,
    );
    if (!ok && this.server.defences.deviceBindingCheck) {
      throw notAuthorized('device binding signature does not verify');
    }
    const existing = await this.server.store.devices.get(address, deviceId);
    if (existing !== undefined) {
      if (existing.revoked) throw notAuthorized('this device was revoked');
      if (!sameKey(existing.identityKey, identityKey)) {
        throw notAuthorized('this device id is registered with another identity key');
      }
    }
    this.#deviceId = deviceId;
    // Its own 32 bytes: the decoded field is a view that would pin the whole received chunk.
    this.#identityKey = Uint8Array.from(identityKey);
    this.#nonce = undefined;
    // Not needed once bound: an idle session holds only what it routes by.
    this.#channel = undefined;
    this.#registered = existing !== undefined;
    this.#phase = 'ready';
    this.server.bound(`${address}/${deviceId}`, this);
    this.#send(ClientFrame.BOUND, { address, deviceId, registered: this.#registered });
    if (this.#registered) await this.#online();
  }

  #identityKey: Uint8Array | undefined;

  /** Just bound (or registered): pending messages, then the latest presence of each contact. */
  async #online(): Promise<void> {
    await this.flush();
    const me = this.#address as string;
    for (const sub of await this.server.store.subscriptions.listForWatcher(me)) {
      if (sub.state !== 'approved') continue;
      const latest = await this.server.store.presence.latest(sub.presentity);
      if (latest !== undefined) this.#push(ClientFrame.PRESENCE, { object: latest.bytes });
    }
    const own = await this.server.store.presence.latest(me);
    if (own !== undefined) this.#push(ClientFrame.PRESENCE, { object: own.bytes });
  }

  /**
   * @internal Pushes every pending object after the last one pushed, in queue order, read from
   * the store. A push that arrives during a flush only asks the flush to look again, so order
   * is kept.
   */
  async flush(): Promise<void> {
    if (this.device === undefined || !this.#registered || this.#phase !== 'ready') return;
    this.#live = false;
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    await this.#readQueue();
  }

  /**
   * @internal An object for this device is stored, durably. Every object stored before it
   * either was in a store read of this session (seq ≤ #lastSeq) or was reported here earlier,
   * so when the session is live it is exactly the next one in queue order.
   */
  pushStored(object: PendingObject): void {
    if (object.seq <= this.#lastSeq) return; // a store read already pushed it
    if (!this.#live) {
      this.flush().catch(() => undefined);
      return;
    }
    if (this.connection.state !== 'open') return;
    this.#lastSeq = object.seq;
    let below: boolean;
    try {
      below = this.connection.send(ClientFrame.DELIVER, deliverItem(object));
    } catch {
      // Closed by the transport (a slow consumer): the object stays queued for the next login.
      this.#live = false;
      return;
    }
    if (below) return;
    // A slow reader: back to the store, from where this push left off, once the queue drained.
    this.#live = false;
    this.#flushing = true;
    this.#readQueue(this.connection.drained()).catch(() => undefined);
  }

  /**
   * The store read of {@link flush}, after `first` if given; the caller set #flushing, this
   * clears it. Ends live when it found everything committed.
   */
  async #readQueue(first?: Promise<void>): Promise<void> {
    const device = this.device as string;
    try {
      if (first !== undefined) await first;
      for (let rounds = 0; rounds < 10_000; rounds++) {
        if (!this.#open()) return;
        const batch = await this.server.store.queue.pending(device, {
          after: this.#lastSeq,
          limit: PROTOCOL_LIMITS.deliverBatch,
        });
        for (const p of batch) {
          if (!this.#open()) return;
          this.#lastSeq = p.seq;
          if (!this.connection.send(ClientFrame.DELIVER, deliverItem(p))) {
            await this.connection.drained();
          }
        }
        // A short page was everything committed when it was read; whatever commits later is
        // reported to pushStored (which sets #flushAgain while this runs), so no second, empty
        // read. From this check on the session is live, in the same turn as #flushing clears.
        if (batch.length < PROTOCOL_LIMITS.deliverBatch && !this.#takeFlushAgain()) {
          this.#live = this.#open() && this.#phase === 'ready';
          return;
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** A method, not a property read: the state changes across the awaits above. */
  #open(): boolean {
    return this.connection.state === 'open';
  }

  /** Whether a push asked the running flush to look again (and clears the request). */
  #takeFlushAgain(): boolean {
    const again = this.#flushAgain;
    this.#flushAgain = false;
    return again;
  }

  /** @internal Sends a push if the connection is open (presence, subscription events). */
  pushPresence(object: Uint8Array): void {
    if (this.#registered) this.#push(ClientFrame.PRESENCE, { object });
  }

  /** @internal */
  pushSubscription(presentity: string, watcher: string, state: string): void {
    if (this.#registered) this.#push(ClientFrame.SUBSCRIPTION, { presentity, watcher, state });
  }

  // ── Requests ───────────────────────────────────────────────────────────────────────────────

  async #request(frame: Frame): Promise<void> {
    const body = asBody(frame.body);
    const id = uint(body, 'id', PROTOCOL_LIMITS.maxRequestId);
    try {
      if (!this.#registered && frame.type !== ClientFrame.REGISTER) {
        throw notAuthorized('register this device first');
      }
      if (COSTLY_REQUESTS.has(frame.type) && !this.#costly.take()) {
        // Answered, not closed: the session stays usable once the client slows down.
        throw new ImppError('ERR_RATE_LIMITED', 'too many bundle or log requests; slow down');
      }
      const result = await this.#dispatch(frame.type, body);
      this.#send(ClientFrame.RESULT, { id, ...result });
      // Objects may be queued for a device from its registration's commit on: push them, and
      // follow the queue from then on (after the RESULT, which the client awaits first).
      if (frame.type === ClientFrame.REGISTER) this.flush().catch(() => undefined);
    } catch (e) {
      if (!isImppError(e)) throw e;
      const code = WIRE_ERROR_CODES.includes(e.code) ? e.code : 'ERR_PROTOCOL';
      this.#send(ClientFrame.ERROR, { id, code, message: e.message.slice(0, 200) });
    }
  }

  async #dispatch(type: number, body: Body): Promise<Body> {
    switch (type) {
      case ClientFrame.REGISTER:
        return this.#register(body);
      case ClientFrame.PUT_DEVICE_LIST:
        return this.#putDeviceList(body);
      case ClientFrame.GET_DEVICES:
        return this.#getDevices(body);
      case ClientFrame.GET_BUNDLES:
        return this.#getBundles(body);
      case ClientFrame.ADD_PREKEYS:
        return this.#addPrekeys(body);
      case ClientFrame.SEND:
        return this.#sendObject(body);
      case ClientFrame.ACK:
        return this.#ack(body);
      case ClientFrame.FETCH:
        return this.#fetch(body);
      case ClientFrame.SUBSCRIBE:
        return this.#subscription(body, 'request');
      case ClientFrame.UNSUBSCRIBE:
        return this.#subscription(body, 'cancel');
      case ClientFrame.DECIDE:
        return this.#decide(body);
      case ClientFrame.LIST_WATCHERS:
        return this.#listWatchers();
      case ClientFrame.PUBLISH:
        return this.#publish(body);
      case ClientFrame.GET_LOG:
        return this.#getLog(body);
      default:
        throw new ImppError('ERR_PROTOCOL', `unknown request type ${type}`);
    }
  }

  /**
   * An address from a request, with the federation to ask when it is of another domain
   * (`remote`, docs/protocol.md Server-to-server §5.5). Without federation another domain is
   * refused clearly.
   */
  #addressIn(body: Body, field: string): { address: string; remote: RemoteRouter | undefined } {
    const address = formatAddress(parseAddress(text(body, field, MAX_ADDRESS)));
    if (parseAddress(address).domain === this.server.domain) return { address, remote: undefined };
    const remote = this.server.remote;
    if (remote === undefined) {
      throw new ImppError(
        'ERR_DOMAIN_NOT_SERVED',
        `${field}: this server serves only ${this.server.domain}; federation is not available`,
      );
    }
    return { address, remote };
  }

  async #register(body: Body): Promise<Body> {
    if (this.#registered) throw new ImppError('ERR_CONFLICT', 'this device is already registered');
    const store = this.server.store;
    const address = this.#address as string;
    const deviceId = this.#deviceId as string;
    const identityKey = this.#identityKey as Uint8Array;
    const spk = readSignedPrekey(body);
    const otks = readPrekeys(body);
    if ((await store.devices.list(address)).length >= PROTOCOL_LIMITS.maxDevicesPerAccount) {
      throw new ImppError('ERR_QUOTA_EXCEEDED', 'this account has the most devices allowed');
    }
    const previous = await store.deviceLists.latest(address);
    const listBytes =
      body.deviceList === undefined || body.deviceList === null
        ? undefined
        : bytes(body, 'deviceList', 1, PROTOCOL_LIMITS.maxTrustObjectBytes);
    let accepted: { counter: number; bytes: Uint8Array } | undefined;
    if (listBytes !== undefined) {
      const update = verifyDeviceList(listBytes, {
        address: parseAddress(address),
        ...(previous === undefined ? {} : { previous: decodeDeviceList(previous.bytes) }),
      });
      const entry = update.list.devices.find((d) => d.deviceId === deviceId);
      if (entry === undefined || !sameKey(entry.identityKey, identityKey)) {
        throw new ImppError(
          'ERR_DEVICE_LIST_INVALID',
          'device list does not name this device and key',
        );
      }
      accepted = { counter: update.list.counter, bytes: listBytes };
    } else if (previous === undefined) {
      throw new ImppError(
        'ERR_DEVICE_LIST_INVALID',
        'the first device must publish a genesis device list',
      );
    }
    const result = this.#result as AuthResult;
    const now = this.server.now();
    const statement = issueEnrolmentStatement(
      {
        address: parseAddress(address),
        deviceId,
        identityKey,
        mechanism: result.mechanism,
        provider: result.provider,
        channelBound: result.channelBound,
        authenticatedAt: result.authenticatedAt,
        issuedAt: now,
        certificate: null,
      },
      this.server.domainKey.secretKey,
    );
    await store.devices.register({
      address,
      deviceId,
      identityKey,
      enrolment: statement.bytes,
      createdAt: now,
    });
    const { index } = this.server.keyLog.append(enrolmentLogEntry(statement));
    const device = `${address}/${deviceId}`;
    await store.prekeys.putSignedPrekey(device, { ...spk, uploadedAt: now });
    if (otks.length > 0) await store.prekeys.addOneTimePrekeys(device, otks);
    if (accepted !== undefined) {
      await store.deviceLists.put({
        address,
        counter: accepted.counter,
        bytes: accepted.bytes,
        storedAt: now,
      });
    }
    this.#registered = true;
    return { enrolment: statement.bytes, logIndex: index };
  }

  async #putDeviceList(body: Body): Promise<Body> {
    const address = this.#address as string;
    const store = this.server.store;
    const listBytes = bytes(body, 'deviceList', 1, PROTOCOL_LIMITS.maxTrustObjectBytes);
    const previous = await store.deviceLists.latest(address);
    const update = verifyDeviceList(listBytes, {
      address: parseAddress(address),
      ...(previous === undefined ? {} : { previous: decodeDeviceList(previous.bytes) }),
    });
    if (update.list.signer !== this.#deviceId) {
      throw notAuthorized('a device publishes only lists it signed itself');
    }
    const stored = await store.deviceLists.put({
      address,
      counter: update.list.counter,
      bytes: listBytes,
      storedAt: this.server.now(),
    });
    if (!stored) throw new ImppError('ERR_CONFLICT', 'a newer device list is already stored');
    // A device on the previous list and not on this one was removed by its owner: revoked, its
    // queue and prekeys deleted, its live session ended (security model §6.3, T21, T42).
    const kept = new Set(update.list.devices.map((d) => d.deviceId));
    const removed =
      previous === undefined
        ? []
        : decodeDeviceList(previous.bytes).devices.filter((d) => !kept.has(d.deviceId));
    for (const { deviceId } of removed) {
      if (this.server.defences.revokedDeviceRouting) {
        await store.devices.revoke(address, deviceId, this.server.now());
      }
      if (this.server.defences.endSessionsOnRevocation) {
        this.server.online(`${address}/${deviceId}`)?.revoked('this device was revoked');
      }
    }
    return { counter: update.list.counter };
  }

  /**
   * Whether `address` denied this session's user. Such a user gets the answers of a user who
   * does not exist: no devices, no bundles, no delivery, an undecided subscription (T13).
   */
  #deniedBy(address: string): Promise<boolean> {
    return deniedBy(this.server, address, this.#address as string);
  }

  /** A user of another domain is answered by its home domain, in the same shape (§5.5). */
  async #getDevices(body: Body): Promise<Body> {
    const { address, remote } = this.#addressIn(body, 'address');
    if (remote !== undefined) {
      return devicesBody(await remote.devices(address, this.#address as string));
    }
    if (await this.#deniedBy(address)) return devicesBody(NO_DEVICES);
    return devicesBody(await localDevices(this.server.store, address));
  }

  /** Each bundle consumes a one-time prekey at the user's home domain, remote or not. */
  async #getBundles(body: Body): Promise<Body> {
    const { address, remote } = this.#addressIn(body, 'address');
    if (remote !== undefined) {
      return { bundles: bundlesBody(await remote.bundles(address, this.#address as string)) };
    }
    if (await this.#deniedBy(address)) return { bundles: [] };
    return { bundles: bundlesBody(await localBundles(this.server.store, address, this.device)) };
  }

  async #addPrekeys(body: Body): Promise<Body> {
    const device = this.device as string;
    const keys = readPrekeys(body);
    if (keys.length > 0) await this.server.store.prekeys.addOneTimePrekeys(device, keys);
    if (body.signedPrekey !== undefined) {
      await this.server.store.prekeys.putSignedPrekey(device, {
        ...readSignedPrekey(body),
        uploadedAt: this.server.now(),
      });
    }
    return { count: await this.server.store.prekeys.countOneTimePrekeys(device) };
  }

  async #sendObject(body: Body): Promise<Body> {
    const object = bytes(body, 'object', 1, PROTOCOL_LIMITS.maxObjectBytes);
    const header = readServiceHeader(object);
    if (header.kind === 'presence')
      bad('object', 'a message or key-distribution object (use PUBLISH)');
    const to = parseDeviceAddress(header.recipientDevice);
    if (to.address.domain !== this.server.domain) {
      const remote = this.server.remote;
      if (remote === undefined) {
        throw new ImppError(
          'ERR_DOMAIN_NOT_SERVED',
          `recipient domain is not served here (${this.server.domain}); federation is not available`,
        );
      }
      // Through the same #sendOrder turns as local sends, so this session's SENDs reach the
      // store or the peer's outbound queue in frame order. No denial lookup here: that decision
      // is the recipient's, at its own domain, which cannot see the sealed sender either; the
      // recipient's client is where a denied sender is dropped (Server-to-server §5.1).
      const fromDevice = this.device as string;
      const routed = this.#sendOrder.then(() => ({
        outcome: remote.route({ object, header, fromDevice }),
      }));
      this.#sendOrder = routed.catch(() => undefined);
      // Durable in the peer's outbound queue before the sender hears "ok" (§5.5).
      const { duplicate } = await (await routed).outcome;
      return { duplicate };
    }
    const recipient = `${formatAddress(to.address)}/${to.deviceId}`;
    // The denial lookup comes before the enqueue, so SENDs of this session take turns through
    // #sendOrder: each reaches the store in frame order, as pipelining needs (#pipeline). The
    // enqueue's promise is wrapped so the next SEND does not wait for this one's commit.
    const turn = this.#sendOrder
      .then(() => this.#deniedBy(formatAddress(to.address)))
      .then((denied) => {
        // The store's own answer for a device that is not registered, word for word.
        if (denied) throw new ImppError('ERR_NOT_FOUND', 'recipient device is not registered');
        return {
          enqueued: this.server.store.queue.enqueue({
            id: header.messageId,
            recipientDevice: recipient,
            kind: header.kind,
            bytes: object,
            receivedAt: this.server.now(),
          }),
        };
      });
    this.#sendOrder = turn.catch(() => undefined);
    // Stored (durably, per the store's commit) before the sender hears "ok". The store reports
    // the stored object to the server, which pushes it to the recipient's session if online
    // (pushStored), before this resolves.
    const outcome = await (await turn).enqueued;
    return { duplicate: outcome.status === 'duplicate' };
  }

  #ownQueue(body: Body): string {
    const device = this.device as string;
    const asked = body.device === undefined ? device : text(body, 'device', MAX_ADDRESS);
    if (asked !== device && this.server.defences.ownershipChecks) {
      throw notAuthorized('a device reads and acknowledges only its own queue');
    }
    return asked;
  }

  async #ack(body: Body): Promise<Body> {
    const device = this.#ownQueue(body);
    const ids = list(body, 'ids', PROTOCOL_LIMITS.maxAckIds).map((v, i) => {
      if (!(v instanceof Uint8Array) || v.length !== 16) bad(`ids[${i}]`, '16 bytes');
      return v;
    });
    return { removed: await this.server.store.queue.acknowledge(device, ids) };
  }

  async #fetch(body: Body): Promise<Body> {
    const device = this.#ownQueue(body);
    const after = body.after === undefined ? 0 : uint(body, 'after', Number.MAX_SAFE_INTEGER);
    const pending = await this.server.store.queue.pending(device, {
      after,
      limit: PROTOCOL_LIMITS.deliverBatch,
    });
    return { objects: pending.map(deliverItem) };
  }

  /**
   * SUBSCRIBE / UNSUBSCRIBE. For a presentity of another domain the local copy of the record
   * takes the same transition, then the presentity's home domain (the authority) is told,
   * durably and in order (§5.5); its decisions come back through the federation.
   */
  async #subscription(body: Body, action: SubscriptionAction): Promise<Body> {
    const { address: presentity, remote } = this.#addressIn(body, 'presentity');
    const watcher = this.#address as string;
    const record = await this.server.store.subscriptions.transition({
      presentity,
      watcher,
      actor: watcher,
      action,
      at: this.server.now(),
    });
    const state = record?.state ?? 'none';
    if (remote !== undefined) {
      // A failure here (that domain is not federated with, its queue is full) leaves the local
      // copy changed and answers the error: the watcher sees its request as pending, which is
      // what an undecided request looks like anyway, and may cancel it (a cancel of a record
      // the other domain never saw is no error there).
      await remote.subscription({
        presentity,
        watcher,
        action: action === 'cancel' ? 'cancel' : 'request',
      });
    } else {
      for (const s of this.server.onlineOf(presentity))
        s.pushSubscription(presentity, watcher, state);
    }
    return { state: this.#asWatcherSees(state, action) };
  }

  /**
   * A denial is never shown to the watcher (T13): its request stays `pending`, as one to a user
   * who does not exist does, and withdrawing it gives `none`.
   */
  #asWatcherSees(state: string, action?: SubscriptionAction): string {
    if (state !== 'denied' || !this.server.defences.uniformBlockedAnswers) return state;
    return action === 'cancel' ? 'none' : 'pending';
  }

  /**
   * DECIDE. About a watcher of another domain: the same transition here (this domain is the
   * authority), then the watcher's domain is told, with the latest presence on approval.
   */
  async #decide(body: Body): Promise<Body> {
    const { address: watcher, remote } = this.#addressIn(body, 'watcher');
    const action = text(body, 'action', 10);
    if (action !== 'approve' && action !== 'deny' && action !== 'revoke') {
      bad('action', '"approve", "deny" or "revoke"');
    }
    const presentity = this.#address as string;
    const record = await this.server.store.subscriptions.transition({
      presentity,
      watcher,
      actor: presentity,
      action,
      at: this.server.now(),
    });
    const state = record?.state ?? 'none';
    const latest =
      state === 'approved' ? await this.server.store.presence.latest(presentity) : undefined;
    if (remote !== undefined) {
      // The watcher's domain applies the T13 rule for its own user (a denial looks pending).
      await remote.decision({
        presentity,
        watcher,
        action,
        ...(action === 'approve' && latest !== undefined ? { presence: latest.bytes } : {}),
      });
      return { state };
    }
    // A denied watcher hears nothing (T13): its request looks undecided, as to a missing user.
    const tell = this.#asWatcherSees(state) === state;
    for (const s of this.server.onlineOf(watcher)) {
      if (tell) s.pushSubscription(presentity, watcher, state);
      if (latest !== undefined) s.pushPresence(latest.bytes);
    }
    return { state };
  }

  async #listWatchers(): Promise<Body> {
    const me = this.#address as string;
    const store = this.server.store;
    const watchers = await store.subscriptions.listForPresentity(me);
    const subscriptions = await store.subscriptions.listForWatcher(me);
    return {
      watchers: watchers.map((w) => ({ watcher: w.watcher, state: w.state })),
      subscriptions: subscriptions.map((s) => ({
        presentity: s.presentity,
        state: this.#asWatcherSees(s.state),
      })),
    };
  }

  async #publish(body: Body): Promise<Body> {
    const object = bytes(body, 'object', 1, PROTOCOL_LIMITS.maxObjectBytes);
    const header = readServiceHeader(object);
    if (header.kind !== 'presence') bad('object', 'a presence object');
    const me = this.#address as string;
    if (header.presentity !== me || header.deviceId !== this.#deviceId) {
      throw notAuthorized('a device publishes only its own presence');
    }
    const stored = await this.server.store.presence.put({
      presentity: me,
      version: header.presenceVersion,
      bytes: object,
      receivedAt: this.server.now(),
    });
    // The same update again (a re-send after a lost answer): stored already, fanned out already.
    if (!stored) return { delivered: 0, duplicate: true };
    // Checked at each publish: a watcher revoked a moment ago gets nothing from here on.
    const watchers = await this.#fanOutSet(me);
    let delivered = 0;
    /** Approved watchers of other domains, by domain: the object crosses once per domain. */
    const remoteWatchers = new Map<string, string[]>();
    for (const w of [...watchers, me]) {
      const domain = parseAddress(w).domain;
      if (domain !== this.server.domain) {
        const list = remoteWatchers.get(domain);
        if (list === undefined) remoteWatchers.set(domain, [w]);
        else list.push(w);
        continue;
      }
      for (const s of this.server.onlineOf(w)) {
        if (s === this) continue;
        s.pushPresence(object);
        delivered++;
      }
    }
    const remote = this.server.remote;
    if (remote !== undefined && remoteWatchers.size > 0) {
      await Promise.all(
        [...remoteWatchers].map(([domain, list]) =>
          remote.presence({ object, presentity: me, watchers: list }).catch((e: unknown) => {
            // The update is stored and reached the local watchers; failing the PUBLISH now
            // would only make the client re-send it, which the store takes as a duplicate (no
            // second fan-out), so one unreachable or unfederated domain would cost every other
            // watcher nothing and gain its own nothing. Presence is latest-wins: that domain's
            // watchers get the next update. Logged for operators (a code, no content).
            this.server.log?.warn(
              { domain, code: isImppError(e) ? e.code : 'ERR_STORAGE' },
              'presence.remote.failed',
            );
          }),
        ),
      );
    }
    return { delivered, duplicate: false };
  }

  /** Approved watchers of `me`: the only ones a presence update goes to (T11, T12). */
  async #fanOutSet(me: string): Promise<string[]> {
    const subscriptions = this.server.store.subscriptions;
    const { presenceApprovalCheck, revocationStopsFanout } = this.server.defences;
    if (presenceApprovalCheck && revocationStopsFanout) return subscriptions.approvedWatchers(me);
    // Only the threat suite's own tests get here (src/service/defences.ts).
    return (await subscriptions.listForPresentity(me))
      .filter(
        (w) =>
          w.state === 'approved' ||
          (w.state === 'revoked' ? !revocationStopsFanout : !presenceApprovalCheck),
      )
      .map((w) => w.watcher);
  }

  /**
   * A signed tree head of a domain's key log, a consistency proof from the client's last trusted
   * size (RFC 9162 §2.1.4) and, when asked, one entry with its inclusion proof (§2.1.3). With
   * `domain` naming another domain, that domain answers over the federation (client protocol
   * §5.6); the client checks it under that domain's pinned key, so nothing here needs trusting.
   */
  async #getLog(body: Body): Promise<Body> {
    const since = body.since === undefined ? 0 : uint(body, 'since', 2 ** 32 - 1);
    const index = body.index === undefined ? undefined : uint(body, 'index', 2 ** 32 - 1);
    const request = index === undefined ? { since } : { since, index };
    const domain =
      body.domain === undefined
        ? this.server.domain
        : normalizeDomain(text(body, 'domain', MAX_ADDRESS));
    if (domain === this.server.domain) return logBody(localLog(this.server, request));
    const remote = this.server.remote;
    if (remote?.log === undefined) {
      throw new ImppError(
        'ERR_DOMAIN_NOT_SERVED',
        `domain: this server serves only ${this.server.domain}; federation is not available`,
      );
    }
    return logBody(await remote.log(domain, request));
  }

  // ── Output ─────────────────────────────────────────────────────────────────────────────────

  #send(type: number, body: CborValue): void {
    if (this.connection.state === 'open') this.connection.send(type, body);
  }

  #push(type: number, body: CborValue): void {
    if (this.connection.state !== 'open') return;
    try {
      this.connection.send(type, body);
    } catch {
      // A slow consumer is closed by the transport; the object stays queued or is re-sent later.
    }
  }
}

function readSignedPrekey(body: Body): {
  keyId: number;
  publicKey: Uint8Array;
  signature: Uint8Array;
} {
  const v = body.signedPrekey;
  if (v === undefined) bad('signedPrekey', 'a map');
  const m = asBody(v);
  return {
    keyId: uint(m, 'id', 2 ** 32 - 1),
    publicKey: bytes(m, 'publicKey', 32, 32),
    signature: bytes(m, 'signature', 64, 64),
  };
}

function readPrekeys(body: Body): OneTimePrekey[] {
  if (body.oneTimePrekeys === undefined) return [];
  return list(body, 'oneTimePrekeys', PROTOCOL_LIMITS.maxPrekeysPerUpload).map((v) => {
    const m = asBody(v);
    return { keyId: uint(m, 'id', 2 ** 32 - 1), publicKey: bytes(m, 'publicKey', 32, 32) };
  });
}

/**
 * A DELIVER / FETCH item (client protocol §6.2, §6.4): a sealed object with `from`, the domain it
 * arrived from when that is not this one (the client checks the sealed sender against it, T45),
 * or a delivery-failure notice as `notice` with the `id` to acknowledge it by (a notice has no
 * envelope to read an id from).
 */
function deliverItem(p: PendingObject): Body {
  if (p.kind === 'notice') return { seq: p.seq, id: p.id, notice: p.bytes };
  return p.arrivedFrom === null
    ? { seq: p.seq, object: p.bytes }
    : { seq: p.seq, object: p.bytes, from: p.arrivedFrom };
}
