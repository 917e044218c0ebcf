/**
 * Routing across domains (issue 7, item 4; docs/protocol.md, "Server-to-server protocol", §5):
 * what crosses a link, what each side checks, and how a failure reaches the sender.
 *
 * The router is the federation's side of the seam the service declares in
 * src/service/remote.ts. Outbound it is the server's {@link RemoteRouter}: sealed messages,
 * presence, subscription requests and decisions go into the peer's durable outbound queue
 * ({@link FederationOutbound}), and the server answers its client once they are durable;
 * look-ups (devices, bundles) are asked over the open link and answered on it, since a client
 * waits for them. Inbound, {@link FederationRouter.deliver} is the endpoint's `deliver`
 * callback: it checks what each object claims against the authenticated peer and our own
 * domain, then hands it to the service through {@link FederationInbound}, stamped with the peer.
 * Bounces from the outbound driver become delivery-failure notices for the sender's device.
 *
 * The server sees only envelope headers (src/seal/header.ts): a message header names the
 * recipient device and a message id, never the sender, so nothing about the sender crosses the
 * link beyond the origin domain. The recipient's client compares the sealed sender's domain with
 * the stamp (`arrivedFrom`); this is how a peer is kept from speaking for a third domain's users.
 * Presence, subscriptions and look-ups name users in the clear; for those the router itself
 * checks that every user the peer speaks for is of the peer's domain (T45).
 *
 * src/service must not import this module (test/architecture.test.ts): the server is given the
 * router through the interfaces it declares itself, wired where both are built (node.ts).
 */
import { blake2b, concatBytes, randomBytes, toHex, utf8 } from '../crypto/index.js';
import { IMPP_ERROR_CODES, type ImppErrorCode, ImppError, isImppError } from '../errors.js';
import {
  DELIVERY_NOTICE_VERSION,
  type DeliveryNotice,
  encodeDeliveryNotice,
} from '../protocol/notice.js';
import { type EnvelopeHeader, readEnvelopeHeader } from '../seal/header.js';
import type {
  BundleAnswer,
  DevicesAnswer,
  FederationInbound,
  LogAnswer,
  LogRequest,
  PresentityAction,
  RemoteRouter,
  WatcherAction,
} from '../service/remote.js';
import { MAX_FEDERATION_BODY_BYTES } from '../service/store/types.js';
import type { AuditRepository } from '../service/store/types.js';
import { normalizeDomain, parseDeviceAddress } from '../trust/address.js';
import { type DomainTrustConfig, peerTrustFor } from '../trust/config.js';
import type { CborValue } from '../transport/cbor-strict.js';
import { Emitter } from '../transport/emitter.js';
import {
  type LookupOp,
  type LookupRequest,
  MAX_PRESENCE_WATCHERS,
  answerError,
  decodeBundlesAnswer,
  decodeDevicesAnswer,
  decodeLogAnswer,
  decodeLookupAnswerHead,
  decodeLookupRequest,
  decodePresenceBody,
  decodeSubscriptionBody,
  domainOf,
  encodeLookupAnswer,
  encodeLookupRequest,
  encodePresenceBody,
  encodeSubscriptionBody,
  isCanonicalAddress,
  ownerOf,
  presenceBodySize,
  textLength,
} from './bodies.js';
import { type AuditLimit, FederationAuditTrail } from './audit-trail.js';
import type { InboundObject, Link, OutboundObject } from './link.js';
import { positiveInteger } from './options.js';
import type { FederationOutbound, OutboundBounce, OutboundConnector } from './outbound.js';
import {
  DEFAULT_PEER_DATA_LIMIT,
  DEFAULT_PEER_LOOKUP_LIMIT,
  PeerRateLimiter,
  type RateLimit,
} from './peer-limits.js';

/**
 * DATA `kind` values of link version 1 (docs/protocol.md, Server-to-server §5.1). Kinds 4 and 5
 * are not stored and bypass the durable duplicate filter (wire.ts, `DEFAULT_VOLATILE_KINDS`).
 */
export const FederationKind = Object.freeze({
  /** A session-sealed object (message or key distribution) for one device of the receiver. */
  sealed: 1,
  /** A presence object and the receiver's watchers to fan it out to. */
  presence: 2,
  /** A watcher's subscription request, or a presentity's decision. */
  subscription: 3,
  /** A look-up (devices or prekey bundles of a user of the receiver). */
  lookup: 4,
  /** The answer to a look-up. */
  lookupResult: 5,
} as const);

/** What a local device's SEND gave the router. */
export interface RouteRequest {
  /** The sealed object exactly as the client sent it. */
  readonly object: Uint8Array;
  /** Its header, as the session read it (readEnvelopeHeader / readServiceHeader). */
  readonly header: EnvelopeHeader;
  /** The sending device, `user@domain/deviceId` of our domain: where a bounce goes. */
  readonly fromDevice: string;
}

/** Refusals of a misbehaving peer, for the audit log (T45). Never holds payload bytes. */
export interface RouterAuditEvent {
  readonly type:
    | 'federation.sender-refused'
    | 'federation.misrouted'
    | 'federation.object-refused'
    | 'federation.peer-refused'
    | 'federation.rate-limited';
  /** The authenticated peer domain. */
  readonly peer: string;
  /** For `sender-refused`: the domain the object claimed to be from. */
  readonly claimedDomain?: string;
  readonly reason: string;
}

/** Events of the router. */
export interface FederationRouterEvents {
  [event: string]: (...args: never[]) => void;
  audit: (event: RouterAuditEvent) => void;
  /** An object from `peer` was stored for a local device (not for a duplicate). */
  delivered: (peer: string, device: string) => void;
  /** A notice could not be stored for `device` (gone, or its queue full): it is dropped. */
  noticeDropped: (device: string, code: ImppErrorCode) => void;
}

/** Options of {@link FederationRouter}. */
export interface FederationRouterOptions {
  /** Our domain (normalized). */
  readonly domain: string;
  /** The trust configuration; a function to follow a reloaded one. */
  readonly trust: DomainTrustConfig | (() => DomainTrustConfig);
  /** The outbound driver of this domain. */
  readonly outbound: Pick<FederationOutbound, 'enqueue'>;
  /**
   * The service's side of the seam. A function is called at each use, so the router can be
   * built (and handed to the server) before the server exists.
   */
  readonly local: FederationInbound | (() => FederationInbound);
  /**
   * The open links, for look-ups and their answers (usually the {@link FederationEndpoint}:
   * `connect` reuses the open link). Without it, look-ups fail with `ERR_CONNECTION_CLOSED`.
   */
  readonly links?: OutboundConnector | (() => OutboundConnector);
  /** How long a look-up waits for the peer's answer, ms. Default 10 s. */
  readonly lookupTimeoutMs?: number;
  /** Look-ups waiting for one peer's answers, at most (`ERR_RATE_LIMITED` beyond). Default 256. */
  readonly maxLookupsPerPeer?: number;
  /**
   * DATA frames a peer may send us (any kind). Default 5,000 a second, burst 10,000: a flood
   * guard (peer-limits.ts says why it must stay above an honest peer's drain rate).
   */
  readonly peerRate?: RateLimit;
  /**
   * Prekey-bundle look-ups a peer may ask us (kind 4, op `bundles`: each hands out one-time
   * prekeys). Default 20 a second, burst 100. Device look-ups are cheap reads: only `peerRate`.
   */
  readonly lookupRate?: RateLimit;
  /** If given, refusals of a misbehaving peer are also appended here (kind = event type). */
  readonly auditLog?: Pick<AuditRepository, 'append'>;
  /**
   * Records written to `auditLog` per peer and window, at most (default 60 a minute): a peer
   * cannot flood the audit trail. Refusals beyond it are counted, and the count is written with
   * the peer's next record (`suppressed`). Events are emitted regardless.
   */
  readonly auditLimit?: AuditLimit;
  /**
   * A trail shared with the links' audit (FederationNode), used instead of `auditLog` and
   * `auditLimit`, so that one budget per peer covers both.
   */
  readonly auditTrail?: FederationAuditTrail;
  /** Milliseconds since the epoch (audit records, rate limits); injectable for tests. */
  readonly clock?: () => number;
}

/** Default time a look-up waits for its answer. */
export const DEFAULT_LOOKUP_TIMEOUT_MS = 10_000;
/** Default bound of look-ups waiting per peer. */
export const DEFAULT_MAX_LOOKUPS_PER_PEER = 256;

/** The one answer for every recipient that cannot take an object (T13: same words as SEND). */
const NOT_REGISTERED = 'recipient device is not registered';

/** Domain separation of derived ids. */
const OBJECT_ID_LABEL = utf8('impp-s2s/1 object id');
const NOTICE_ID_LABEL = utf8('impp-s2s/1 notice id');
const PRESENCE_ID_LABEL = utf8('impp-s2s/1 presence id');
const ZERO = new Uint8Array(1);

/**
 * The link object id of a sealed object: 16 bytes of BLAKE2b over the recipient device and the
 * message id. A client's retry of the same SEND maps to the same id (idempotent in the outbound
 * queue, and dropped by the receiver's duplicate filter); the sender is not an input, so the id
 * tells the receiving server nothing it could not see in the header already.
 */
export function federationObjectId(recipientDevice: string, messageId: Uint8Array): Uint8Array {
  return blake2b(concatBytes(OBJECT_ID_LABEL, ZERO, utf8(recipientDevice), ZERO, messageId), 16);
}

/**
 * The link object id of one presence body: BLAKE2b-128 over the presentity, the presence
 * version (8 bytes, big-endian), the peer domain and the part number (4 bytes, big-endian) of a
 * watcher list split over several bodies. The same publish queued again maps to the same ids.
 */
export function federationPresenceId(
  presentity: string,
  presenceVersion: number,
  peer: string,
  part: number,
): Uint8Array {
  const numbers = new Uint8Array(12);
  const view = new DataView(numbers.buffer);
  view.setBigUint64(0, BigInt(presenceVersion));
  view.setUint32(8, part);
  return blake2b(
    concatBytes(
      PRESENCE_ID_LABEL,
      ZERO,
      utf8(presentity),
      ZERO,
      numbers.subarray(0, 8),
      ZERO,
      utf8(peer),
      ZERO,
      numbers.subarray(8),
    ),
    16,
  );
}

function noticeId(objectId: Uint8Array): Uint8Array {
  return blake2b(concatBytes(NOTICE_ID_LABEL, ZERO, objectId), 16);
}

function invalidArgument(message: string): ImppError {
  return new ImppError('ERR_INVALID_ARGUMENT', message);
}

/** What a look-up resolves to. */
type LookupResult = DevicesAnswer | readonly BundleAnswer[] | LogAnswer;

/** A look-up waiting for its answer. */
interface PendingLookup {
  readonly peer: string;
  readonly op: LookupOp;
  /**
   * The user asked about: every bundle of the answer must be one of its devices. For a key-log
   * look-up, the peer domain.
   */
  readonly address: string;
  /** For a key-log look-up: whether an entry was asked (the answer has one exactly then). */
  readonly withEntry: boolean;
  link: Link | null;
  readonly settle: (error: ImppError | null, answer?: LookupResult) => void;
}

// ── The router ──────────────────────────────────────────────────────────────────────────────

/**
 * Routes between this domain's users and devices and other domains.
 *
 * @example
 * ```ts
 * const router = new FederationRouter({ domain, trust, outbound, local, links: endpoint });
 * const endpoint = new FederationEndpoint({ local: me, trust, dedup, deliver: router.deliver });
 * const outbound = new FederationOutbound({ endpoint, queue, bounce: router.bounce });
 * await router.route({ object, header, fromDevice }); // durable: answer the client now
 * ```
 */
export class FederationRouter extends Emitter<FederationRouterEvents> implements RemoteRouter {
  readonly #domain: string;
  readonly #trust: () => DomainTrustConfig;
  readonly #outbound: Pick<FederationOutbound, 'enqueue'>;
  readonly #local: () => FederationInbound;
  readonly #links: (() => OutboundConnector) | null;
  readonly #lookupTimeoutMs: number;
  readonly #maxLookups: number;
  readonly #dataLimit: PeerRateLimiter;
  readonly #lookupLimit: PeerRateLimiter;
  /** Budgeted per peer (only authenticated peers get here: bounded by the federation). */
  readonly #auditTrail: FederationAuditTrail | undefined;
  readonly #clock: () => number;
  /** Look-ups waiting for an answer, by `peer rid-hex`. */
  readonly #pending = new Map<string, PendingLookup>();
  readonly #pendingPerPeer = new Map<string, number>();
  /** Links whose close fails the look-ups sent on them. */
  readonly #watched = new WeakSet<Link>();

  constructor(options: FederationRouterOptions) {
    super();
    this.#domain = normalizeDomain(options.domain);
    const trust = options.trust;
    this.#trust = typeof trust === 'function' ? trust : () => trust;
    this.#outbound = options.outbound;
    const local = options.local;
    this.#local = typeof local === 'function' ? local : () => local;
    const links = options.links;
    this.#links = links === undefined ? null : typeof links === 'function' ? links : () => links;
    this.#lookupTimeoutMs = positiveInteger(
      'lookupTimeoutMs',
      options.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS,
    );
    this.#maxLookups = positiveInteger(
      'maxLookupsPerPeer',
      options.maxLookupsPerPeer ?? DEFAULT_MAX_LOOKUPS_PER_PEER,
    );
    this.#clock = options.clock ?? Date.now;
    const clock = this.#clock;
    this.#dataLimit = new PeerRateLimiter(
      options.peerRate ?? DEFAULT_PEER_DATA_LIMIT,
      { quiet: true },
      clock,
    );
    this.#lookupLimit = new PeerRateLimiter(
      options.lookupRate ?? DEFAULT_PEER_LOOKUP_LIMIT,
      {},
      clock,
    );
    this.#auditTrail =
      options.auditTrail ??
      (options.auditLog === undefined
        ? undefined
        : new FederationAuditTrail(options.auditLog, options.auditLimit, clock));
  }

  /** Our domain. */
  get domain(): string {
    return this.#domain;
  }

  /** True when `device` (a device address) belongs to another domain: route it here. */
  isRemote(device: string): boolean {
    return parseDeviceAddress(device).address.domain !== this.#domain;
  }

  /** Look-ups waiting for an answer (all peers). */
  get pendingLookups(): number {
    return this.#pending.size;
  }

  // -- outbound: durable ------------------------------------------------------------------

  /**
   * Queues a sealed object for the recipient's domain; resolves once durable (answer the client
   * then). `duplicate` when the same object (recipient device and message id) is still queued.
   * @throws `ERR_DOMAIN_NOT_SERVED` when the trust configuration does not federate with the
   *   recipient's domain, `ERR_QUOTA_EXCEEDED` when that peer's queue is full,
   *   `ERR_INVALID_ARGUMENT` for a presence object, a local recipient or a foreign sender.
   */
  async route(request: RouteRequest): Promise<{ duplicate: boolean }> {
    const { header, object, fromDevice } = request;
    if (header.kind === 'presence') {
      throw invalidArgument('presence is not routed as a message');
    }
    if (parseDeviceAddress(fromDevice).address.domain !== this.#domain) {
      throw invalidArgument('the sender must be a device of this domain');
    }
    const peer = parseDeviceAddress(header.recipientDevice).address.domain;
    if (peer === this.#domain) {
      throw invalidArgument('a local recipient is not routed to a peer');
    }
    this.#federated(peer);
    const outcome = await this.#outbound.enqueue({
      peer,
      sender: fromDevice,
      id: federationObjectId(header.recipientDevice, header.messageId),
      kind: FederationKind.sealed,
      body: object,
    });
    return { duplicate: outcome.status === 'duplicate' };
  }

  /**
   * Queues a local presentity's presence object for its approved watchers in one other domain:
   * one body for the domain (split only if the watcher list would not fit one frame), the same
   * sealed bytes for every watcher. Resolves once durable.
   * @throws `ERR_INVALID_ARGUMENT` for an object that is not this presentity's presence, a
   *   presentity of another domain, or watchers that are not all of one other domain;
   *   `ERR_DOMAIN_NOT_SERVED`, `ERR_QUOTA_EXCEEDED` as {@link route}; `ERR_FRAME_TOO_LARGE` for
   *   an object too large to cross with even one watcher.
   */
  async presence(request: {
    readonly object: Uint8Array;
    readonly presentity: string;
    readonly watchers: readonly string[];
  }): Promise<void> {
    const { object, presentity } = request;
    const header = this.#presenceHeader(object);
    if (header === null || header.presentity !== presentity) {
      throw invalidArgument("the object must be the presentity's presence");
    }
    this.#ownUser(presentity, 'presentity');
    const watchers = [...new Set(request.watchers)];
    if (watchers.length === 0) return;
    const peer = this.#remoteUsers(watchers, 'watchers');
    this.#federated(peer);
    const parts = splitWatchers(object.length, watchers);
    for (const [part, list] of parts.entries()) {
      await this.#outbound.enqueue({
        peer,
        sender: presentity,
        id: federationPresenceId(presentity, header.presenceVersion, peer, part),
        kind: FederationKind.presence,
        body: encodePresenceBody({ object, watchers: list }),
      });
    }
  }

  /**
   * Forwards a local watcher's SUBSCRIBE / UNSUBSCRIBE to the presentity's home domain, durably
   * and in order with everything else queued for that domain.
   * @throws `ERR_INVALID_ARGUMENT` for a watcher of another domain or a local presentity;
   *   `ERR_DOMAIN_NOT_SERVED`, `ERR_QUOTA_EXCEEDED` as {@link route}.
   */
  async subscription(request: {
    readonly presentity: string;
    readonly watcher: string;
    readonly action: WatcherAction;
  }): Promise<void> {
    const { presentity, watcher, action } = request;
    this.#ownUser(watcher, 'watcher');
    const peer = this.#remoteUsers([presentity], 'presentity');
    this.#federated(peer);
    await this.#outbound.enqueue({
      peer,
      sender: watcher,
      // Each request is an event of its own (a request after a cancel is not a repeat).
      id: randomBytes(16),
      kind: FederationKind.subscription,
      body: encodeSubscriptionBody({ type: 'subscription', presentity, watcher, action }),
    });
  }

  /**
   * Forwards a local presentity's DECIDE about a watcher of another domain, durably and in
   * order. `presence` (only with `approve`) rides along when it fits one frame; when it does not,
   * the watcher gets the presentity's next publish instead.
   * @throws `ERR_INVALID_ARGUMENT` for a presentity of another domain, a local watcher, or a
   *   `presence` that is not this presentity's presence; `ERR_DOMAIN_NOT_SERVED`,
   *   `ERR_QUOTA_EXCEEDED` as {@link route}.
   */
  async decision(request: {
    readonly presentity: string;
    readonly watcher: string;
    readonly action: PresentityAction;
    readonly presence?: Uint8Array;
  }): Promise<void> {
    const { presentity, watcher, action } = request;
    this.#ownUser(presentity, 'presentity');
    const peer = this.#remoteUsers([watcher], 'watcher');
    this.#federated(peer);
    const presence = request.presence;
    if (presence !== undefined) {
      if (action !== 'approve') throw invalidArgument('only an approval carries presence');
      if (this.#presenceHeader(presence)?.presentity !== presentity) {
        throw invalidArgument("presence must be the presentity's presence object");
      }
    }
    let body = encodeSubscriptionBody({
      type: 'decision',
      presentity,
      watcher,
      action,
      ...(presence === undefined ? {} : { presence }),
    });
    if (body.length > MAX_FEDERATION_BODY_BYTES) {
      body = encodeSubscriptionBody({ type: 'decision', presentity, watcher, action });
    }
    await this.#outbound.enqueue({
      peer,
      sender: presentity,
      id: randomBytes(16),
      kind: FederationKind.subscription,
      body,
    });
  }

  // -- outbound: look-ups -----------------------------------------------------------------

  /**
   * GET_DEVICES of a user of another domain, asked over the open link to that domain.
   * @throws `ERR_TIMEOUT` (no answer in time), `ERR_CONNECTION_CLOSED` (unreachable, or the link
   *   closed first), `ERR_RATE_LIMITED` (too many look-ups waiting for that domain, or the peer
   *   refused for its own limit), `ERR_DOMAIN_NOT_SERVED`, `ERR_PAYLOAD_INVALID` (a malformed
   *   answer), or the code the peer answered with.
   */
  async devices(address: string, asker: string): Promise<DevicesAnswer> {
    return (await this.#lookup('devices', address, asker)) as DevicesAnswer;
  }

  /**
   * GET_BUNDLES of a user of another domain (each bundle consumes a one-time prekey there).
   * Every bundle of the answer is a device of `address`, else `ERR_PAYLOAD_INVALID`. Same errors
   * as {@link devices}.
   */
  async bundles(address: string, asker: string): Promise<readonly BundleAnswer[]> {
    return (await this.#lookup('bundles', address, asker)) as readonly BundleAnswer[];
  }

  /**
   * GET_LOG of another domain's key log (client protocol §5.6 with `domain`): a signed head,
   * a consistency proof from `since` and, with `index`, that entry and its inclusion proof, as
   * the peer's own clients would get them. The answer is checked for shape and size only (and
   * that it holds an entry exactly when one was asked): the head's signature and the proofs are
   * the client's to check under that domain's pinned key. Same errors as {@link devices}.
   */
  async log(domain: string, request: LogRequest): Promise<LogAnswer> {
    const peer = normalizeDomain(domain);
    if (peer === this.#domain) throw invalidArgument('the key log asked must be of another domain');
    for (const [what, v] of [
      ['since', request.since],
      ['index', request.index ?? 0],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0 || v > 0xffff_ffff) {
        throw invalidArgument(`${what} must be an unsigned 32-bit integer`);
      }
    }
    this.#federated(peer);
    const rid = randomBytes(16);
    const body = encodeLookupRequest({ rid, op: 'log', ...request });
    return (await this.#ask(
      peer,
      'log',
      peer,
      request.index !== undefined,
      rid,
      body,
    )) as LogAnswer;
  }

  #lookup(op: 'devices' | 'bundles', address: string, asker: string): Promise<LookupResult> {
    this.#ownUser(asker, 'asker');
    const peer = this.#remoteUsers([address], 'address');
    this.#federated(peer);
    const rid = randomBytes(16);
    const body = encodeLookupRequest({ rid, op, address, asker });
    return this.#ask(peer, op, address, false, rid, body);
  }

  /** Sends the kind-4 `request` (with `rid` inside) to `peer` and waits for the kind-5 answer. */
  #ask(
    peer: string,
    op: LookupOp,
    address: string,
    withEntry: boolean,
    rid: Uint8Array,
    request: Uint8Array,
  ): Promise<LookupResult> {
    const links = this.#links?.();
    if (links === undefined) {
      return Promise.reject(new ImppError('ERR_CONNECTION_CLOSED', 'no links for look-ups'));
    }
    const waiting = this.#pendingPerPeer.get(peer) ?? 0;
    if (waiting >= this.#maxLookups) {
      return Promise.reject(
        new ImppError('ERR_RATE_LIMITED', `too many look-ups waiting for ${peer}`),
      );
    }
    const key = `${peer} ${toHex(rid)}`;
    const deadline = Date.now() + this.#lookupTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        entry.settle(new ImppError('ERR_TIMEOUT', `${peer} did not answer the look-up in time`));
      }, this.#lookupTimeoutMs);
      // A look-up alone does not keep a closing process alive.
      timer.unref();
      const entry: PendingLookup = {
        peer,
        op,
        address,
        withEntry,
        link: null,
        settle: (error, answer) => {
          if (this.#pending.get(key) !== entry) return;
          clearTimeout(timer);
          this.#pending.delete(key);
          const left = (this.#pendingPerPeer.get(peer) ?? 1) - 1;
          if (left === 0) this.#pendingPerPeer.delete(peer);
          else this.#pendingPerPeer.set(peer, left);
          if (error === null) resolve(answer as LookupResult);
          else reject(error);
        },
      };
      this.#pending.set(key, entry);
      this.#pendingPerPeer.set(peer, waiting + 1);
      this.#sendOnLink(
        links,
        peer,
        { id: randomBytes(16), kind: FederationKind.lookup, body: request },
        deadline,
        (link) => {
          entry.link = link;
          this.#watch(link);
        },
      ).catch((error: unknown) => {
        entry.settle(lookupFailure(error));
      });
    });
  }

  /** Fails the look-ups sent on `link` when it closes: their answers cannot come on it. */
  #watch(link: Link): void {
    if (this.#watched.has(link)) return;
    this.#watched.add(link);
    link.on('closed', () => {
      for (const entry of [...this.#pending.values()]) {
        if (entry.link === link) {
          entry.settle(new ImppError('ERR_CONNECTION_CLOSED', 'the link closed before the answer'));
        }
      }
    });
  }

  /**
   * Sends one object on the open link to `peer`, waiting for room in its window (shared with
   * the outbound driver) until `deadline`. Resolves on the peer's ACK; rejects with its REJECT.
   */
  async #sendOnLink(
    links: OutboundConnector,
    peer: string,
    object: OutboundObject,
    deadline: number,
    opened?: (link: Link) => void,
  ): Promise<void> {
    const link = await links.connect(peer);
    opened?.(link);
    while (link.isOpen && !link.writable) {
      const left = deadline - Date.now();
      if (left <= 0) throw new ImppError('ERR_TIMEOUT', `no room on the link to ${peer}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          link.off('drain', done);
          link.off('closed', done);
          resolve();
        };
        const timer = setTimeout(done, left);
        link.on('drain', done);
        link.on('closed', done);
      });
    }
    await link.send(object);
  }

  // -- checks of the local side's calls ---------------------------------------------------

  #federated(peer: string): void {
    if (!peerTrustFor(this.#trust(), peer).federated) {
      throw new ImppError('ERR_DOMAIN_NOT_SERVED', `this domain does not federate with ${peer}`);
    }
  }

  #ownUser(address: string, what: string): void {
    if (!isCanonicalAddress(address) || domainOf(address) !== this.#domain) {
      throw invalidArgument(`the ${what} must be a canonical user of this domain`);
    }
  }

  /** The one other domain all of `addresses` belong to. */
  #remoteUsers(addresses: readonly string[], what: string): string {
    let peer: string | null = null;
    for (const a of addresses) {
      if (!isCanonicalAddress(a))
        throw invalidArgument(`the ${what} must be canonical user@domain`);
      const d = domainOf(a);
      if (d === this.#domain || (peer !== null && d !== peer)) {
        throw invalidArgument(`the ${what} must all be of one other domain`);
      }
      peer = d;
    }
    if (peer === null) throw invalidArgument(`no ${what}`);
    return peer;
  }

  #presenceHeader(object: Uint8Array): Extract<EnvelopeHeader, { kind: 'presence' }> | null {
    try {
      const header = readEnvelopeHeader(object);
      return header.kind === 'presence' ? header : null;
    } catch {
      return null;
    }
  }

  // -- inbound ----------------------------------------------------------------------------

  /**
   * The endpoint's `deliver` callback. Resolves once the object is handled (the link ACKs);
   * rejects with the REJECT code otherwise. The link has already checked that the DATA origin is
   * the authenticated peer and dropped ids it delivered before (kinds 1–3). It awaits a device
   * look-up before its write, so use it with the link's default `deliverPipeline` of 1 (order
   * per sender).
   */
  readonly deliver = async (inbound: InboundObject): Promise<void> => {
    const peer = inbound.arrivedFrom;
    if (!peerTrustFor(this.#trust(), peer).federated) {
      // The link was opened under an older configuration that allowed this peer.
      await this.#refuse(
        { type: 'federation.peer-refused', peer, reason: 'peer no longer federated' },
        'ERR_NOT_AUTHORIZED',
      );
    }
    await this.#limit(this.#dataLimit, peer, 'DATA');
    switch (inbound.kind) {
      case FederationKind.sealed:
        return this.#deliverSealed(peer, inbound.body);
      case FederationKind.presence:
        return this.#deliverPresence(peer, inbound.body);
      case FederationKind.subscription:
        return this.#deliverSubscription(peer, inbound.body);
      case FederationKind.lookup:
        return this.#answerLookup(peer, inbound.body);
      case FederationKind.lookupResult:
        return this.#takeAnswer(peer, inbound.body);
      default:
        await this.#refuse(
          { type: 'federation.object-refused', peer, reason: `kind ${inbound.kind} not supported` },
          'ERR_PAYLOAD_INVALID',
        );
    }
  };

  /** Spends a token of `peer`; a refusal is audited once per episode, not once per frame. */
  async #limit(limiter: PeerRateLimiter, peer: string, what: string): Promise<void> {
    const verdict = limiter.take(peer);
    if (verdict === 'ok') return;
    const reason = `${what} rate limit of the peer exceeded`;
    if (verdict === 'tripped') {
      await this.#refuse({ type: 'federation.rate-limited', peer, reason }, 'ERR_RATE_LIMITED');
    }
    throw new ImppError('ERR_RATE_LIMITED', reason);
  }

  async #deliverSealed(peer: string, body: CborValue): Promise<void> {
    const header = await this.#header(peer, body);
    if (header.kind === 'presence') {
      return this.#refuse(
        { type: 'federation.object-refused', peer, reason: 'presence sent as a sealed object' },
        'ERR_PAYLOAD_INVALID',
      );
    }
    const recipient = parseDeviceAddress(header.recipientDevice);
    if (recipient.address.domain !== this.#domain) {
      return this.#misrouted(peer, `recipient domain ${recipient.address.domain}`);
    }
    const device = header.recipientDevice;
    const local = this.#local();
    // Unknown user, unknown device, revoked device: one answer, no audit (T13). The peer (and
    // through a bounce the sender) learns what a local SEND would have told it, nothing more.
    if (!(await local.deviceActive(device))) {
      throw new ImppError('ERR_NOT_FOUND', NOT_REGISTERED);
    }
    let outcome: 'stored' | 'duplicate';
    try {
      outcome = await local.enqueue({
        kind: header.kind,
        recipientDevice: device,
        id: header.messageId,
        object: body as Uint8Array,
        arrivedFrom: peer,
      });
    } catch (error) {
      if (isImppError(error, 'ERR_NOT_FOUND')) throw new ImppError('ERR_NOT_FOUND', NOT_REGISTERED);
      throw error;
    }
    if (outcome === 'stored') {
      local.notify(device);
      this.emit('delivered', peer, device);
    }
  }

  /**
   * Kind 2: a presence object of one of the peer's users for watchers of ours. The service
   * hands it only to watchers whose own copy of the subscription is approved: the peer cannot
   * add watchers, only name them.
   */
  async #deliverPresence(peer: string, body: CborValue): Promise<void> {
    const presence = await this.#decode(peer, () => decodePresenceBody(body));
    const header = await this.#header(peer, presence.object);
    if (header.kind !== 'presence') {
      return this.#refuse(
        { type: 'federation.object-refused', peer, reason: 'a sealed message sent as presence' },
        'ERR_PAYLOAD_INVALID',
      );
    }
    await this.#speaksFor(peer, header.presentity, 'presence of a presentity');
    for (const watcher of presence.watchers) {
      const domain = domainOf(watcher);
      if (domain !== this.#domain) return this.#misrouted(peer, `watcher domain ${domain}`);
    }
    await this.#local().presence({
      object: presence.object,
      presentity: header.presentity,
      watchers: presence.watchers,
    });
  }

  /** Kind 3: a watcher's request (the peer speaks for the watcher) or a presentity's decision. */
  async #deliverSubscription(peer: string, body: CborValue): Promise<void> {
    const event = await this.#decode(peer, () => decodeSubscriptionBody(body));
    const [theirs, ours] =
      event.type === 'subscription'
        ? [event.watcher, event.presentity]
        : [event.presentity, event.watcher];
    await this.#speaksFor(peer, theirs, `${event.type} of a user`);
    if (domainOf(ours) !== this.#domain) {
      return this.#misrouted(peer, `${event.type} for a user of ${domainOf(ours)}`);
    }
    const local = this.#local();
    if (event.type === 'subscription') {
      const { presentity, watcher, action } = event;
      return local.subscription({ presentity, watcher, action });
    }
    const { presentity, watcher, action, presence } = event;
    if (presence !== undefined) {
      const header = await this.#header(peer, presence);
      if (header.kind !== 'presence' || header.presentity !== presentity) {
        return this.#refuse(
          {
            type: 'federation.object-refused',
            peer,
            reason: "a decision's presence is not the presentity's presence",
          },
          'ERR_PAYLOAD_INVALID',
        );
      }
      return local.decision({ presentity, watcher, action, presence });
    }
    return local.decision({ presentity, watcher, action });
  }

  /**
   * Kind 4: a look-up by one of the peer's users of one of ours. Answered with kind 5 on the
   * link, after this DATA is ACKed: waiting here for the answer's own ACK could deadlock two
   * domains looking each other up (each link delivers one object at a time).
   */
  async #answerLookup(peer: string, body: CborValue): Promise<void> {
    const request = await this.#decode(peer, () => decodeLookupRequest(body));
    if (request.op !== 'log') {
      await this.#speaksFor(peer, request.asker, 'look-up by a user');
      const domain = domainOf(request.address);
      if (domain !== this.#domain) return this.#misrouted(peer, `look-up of a user of ${domain}`);
    }
    // Both are costly here: a bundle consumes a one-time prekey, a key-log answer signs a head.
    if (request.op === 'bundles') await this.#limit(this.#lookupLimit, peer, 'bundle look-up');
    if (request.op === 'log') await this.#limit(this.#lookupLimit, peer, 'key-log look-up');
    const links = this.#links?.();
    if (links === undefined) {
      throw new ImppError('ERR_CONNECTION_CLOSED', 'look-ups are not answered here');
    }
    const local = this.#local();
    let answer: Uint8Array;
    try {
      answer = await this.#answerFor(local, request);
      if (answer.length > MAX_FEDERATION_BODY_BYTES) {
        throw new ImppError('ERR_FRAME_TOO_LARGE', 'the answer does not fit a frame');
      }
    } catch (error) {
      const code: ImppErrorCode = isImppError(error) ? error.code : 'ERR_STORAGE';
      answer = encodeLookupAnswer({ rid: request.rid, error: code });
    }
    const object = { id: randomBytes(16), kind: FederationKind.lookupResult, body: answer };
    this.#sendOnLink(links, peer, object, Date.now() + this.#lookupTimeoutMs).catch(() => {
      // The asker times out; nothing to keep (a look-up is asked again, not retried here).
    });
  }

  async #answerFor(local: FederationInbound, request: LookupRequest): Promise<Uint8Array> {
    const rid = request.rid;
    if (request.op === 'log') {
      if (local.log === undefined) throw new ImppError('ERR_NOT_FOUND', 'no key log here');
      const asked =
        request.index === undefined
          ? { since: request.since }
          : { since: request.since, index: request.index };
      return encodeLookupAnswer({ rid, op: 'log', ok: await local.log(asked) });
    }
    return request.op === 'devices'
      ? encodeLookupAnswer({
          rid,
          op: 'devices',
          ok: await local.devices(request.address, request.asker),
        })
      : encodeLookupAnswer({
          rid,
          op: 'bundles',
          ok: await local.bundles(request.address, request.asker),
        });
  }

  /** Kind 5: the answer to one of our look-ups. An answer nobody waits for is ACKed and dropped. */
  async #takeAnswer(peer: string, body: CborValue): Promise<void> {
    const { rid, map } = await this.#decode(peer, () => decodeLookupAnswerHead(body));
    const entry = this.#pending.get(`${peer} ${toHex(rid)}`);
    // Timed out, or never asked (a peer cannot guess a rid of another peer's look-up).
    if (entry === undefined) return;
    let answer: LookupResult;
    try {
      const code = answerError(map);
      if (code !== null) {
        const known = (IMPP_ERROR_CODES as readonly string[]).includes(code);
        entry.settle(
          new ImppError(
            known ? (code as ImppErrorCode) : 'ERR_PAYLOAD_INVALID',
            `${peer} could not answer the look-up`,
          ),
        );
        return;
      }
      answer =
        entry.op === 'devices'
          ? decodeDevicesAnswer(map.ok)
          : entry.op === 'bundles'
            ? decodeBundlesAnswer(map.ok)
            : decodeLogAnswer(map.ok);
      if (entry.op === 'log' && ((answer as LogAnswer).entry !== undefined) !== entry.withEntry) {
        throw new ImppError(
          'ERR_PAYLOAD_INVALID',
          entry.withEntry ? 'a key-log answer without the entry asked' : 'an entry not asked for',
        );
      }
    } catch (error) {
      entry.settle(new ImppError('ERR_PAYLOAD_INVALID', `${peer} answered a malformed look-up`));
      return this.#refuse(
        {
          type: 'federation.object-refused',
          peer,
          reason: isImppError(error) ? error.message : 'malformed look-up answer',
        },
        'ERR_PAYLOAD_INVALID',
      );
    }
    if (entry.op === 'bundles') {
      for (const bundle of answer as readonly BundleAnswer[]) {
        const owner = ownerOf(bundle.device);
        if (owner === entry.address) continue;
        entry.settle(
          new ImppError('ERR_PAYLOAD_INVALID', `${peer} answered with another user's bundle`),
        );
        const claimed = domainOf(owner);
        return this.#refuse(
          claimed === peer
            ? {
                type: 'federation.object-refused',
                peer,
                reason: 'a bundle of another user than the one asked',
              }
            : {
                type: 'federation.sender-refused',
                peer,
                claimedDomain: claimed,
                reason: 'a bundle of a device outside the peer domain',
              },
          'ERR_PAYLOAD_INVALID',
        );
      }
    }
    entry.settle(null, answer);
  }

  /** Runs a body decoder; a malformed body is a refusal (an honest peer sends none). */
  async #decode<T>(peer: string, decode: () => T): Promise<T> {
    try {
      return decode();
    } catch (error) {
      const reason = isImppError(error) ? error.message : 'malformed body';
      return this.#refuse(
        { type: 'federation.object-refused', peer, reason },
        'ERR_PAYLOAD_INVALID',
      );
    }
  }

  /** The peer may speak only for users of its own domain (T45). */
  async #speaksFor(peer: string, user: string, what: string): Promise<void> {
    const claimed = domainOf(user);
    if (claimed === peer) return;
    await this.#refuse(
      {
        type: 'federation.sender-refused',
        peer,
        claimedDomain: claimed,
        reason: `${what} outside the peer domain`,
      },
      'ERR_NOT_AUTHORIZED',
    );
  }

  #misrouted(peer: string, what: string): Promise<never> {
    return this.#refuse(
      { type: 'federation.misrouted', peer, reason: `${what} is not served here` },
      'ERR_DOMAIN_NOT_SERVED',
    );
  }

  /** The envelope header of a sealed object, or a refusal (an honest peer sends only envelopes). */
  async #header(peer: string, body: CborValue): Promise<EnvelopeHeader> {
    let reason = 'body is not a byte string';
    if (body instanceof Uint8Array) {
      try {
        return readEnvelopeHeader(body);
      } catch (error) {
        reason = `not a sealed object (${isImppError(error) ? error.code : 'ERR_SEAL_MALFORMED'})`;
      }
    }
    return this.#refuse({ type: 'federation.object-refused', peer, reason }, 'ERR_PAYLOAD_INVALID');
  }

  /** Audits a peer's misbehaviour, then throws the REJECT code. */
  async #refuse(event: RouterAuditEvent, code: ImppErrorCode): Promise<never> {
    this.emit('audit', event);
    if (this.#auditTrail !== undefined) await this.#record(this.#auditTrail, event);
    throw new ImppError(code, event.reason);
  }

  async #record(trail: FederationAuditTrail, event: RouterAuditEvent): Promise<void> {
    await trail.record({
      kind: event.type,
      budgetKey: event.peer,
      source: event.peer,
      outcome: 'refused',
      details: {
        peer: event.peer,
        reason: event.reason,
        ...(event.claimedDomain === undefined ? {} : { claimedDomain: event.claimedDomain }),
      },
    });
  }

  // -- bounces ----------------------------------------------------------------------------

  /**
   * The outbound driver's `bounce` callback: a delivery-failure notice to each sender device of
   * a sealed object. Presence, subscriptions and decisions that could not be delivered are
   * dropped without a notice (there is no message a client could match it to; a presentity's
   * next publish, or the user's next request, is the retry). Rejects only when the store failed
   * (the driver offers the bounces again later); a sender device that is gone or whose queue is
   * full loses its notice (`noticeDropped`).
   */
  readonly bounce = async (bounces: readonly OutboundBounce[]): Promise<void> => {
    for (const b of bounces) {
      const notice = this.#noticeFor(b);
      if (notice === null) continue;
      const device = b.sender;
      if (!this.#ownDevice(device)) {
        // Queued by something other than route(): there is no device to tell.
        this.emit('noticeDropped', device, 'ERR_ADDRESS_INVALID');
        continue;
      }
      const local = this.#local();
      try {
        const outcome = await local.enqueue({
          kind: 'notice',
          recipientDevice: device,
          id: noticeId(b.id),
          object: encodeDeliveryNotice(notice),
          arrivedFrom: null,
        });
        if (outcome === 'stored') local.notify(device);
      } catch (error) {
        if (isImppError(error, 'ERR_NOT_FOUND') || isImppError(error, 'ERR_QUOTA_EXCEEDED')) {
          this.emit('noticeDropped', device, error.code);
          continue;
        }
        throw error;
      }
    }
  };

  #ownDevice(device: string): boolean {
    try {
      return parseDeviceAddress(device).address.domain === this.#domain;
    } catch {
      return false;
    }
  }

  #noticeFor(b: OutboundBounce): DeliveryNotice | null {
    if (b.kind !== FederationKind.sealed) return null;
    let header: EnvelopeHeader;
    try {
      header = readEnvelopeHeader(b.body);
    } catch {
      return null;
    }
    if (header.kind === 'presence') return null;
    return {
      v: DELIVERY_NOTICE_VERSION,
      type: 'delivery-failure',
      messageId: header.messageId,
      recipient: header.recipientDevice,
      domain: b.peer,
      reason: b.reason,
      code: b.code,
      queuedAt: b.enqueuedAt,
      at: this.#clock(),
    };
  }
}

/**
 * Splits a watcher list so that each presence body fits the queue's body bound and the
 * receiver's list bound.
 */
function splitWatchers(objectBytes: number, watchers: readonly string[]): string[][] {
  const parts: string[][] = [];
  let current: string[] = [];
  let size = presenceBodySize(objectBytes, []);
  for (const w of watchers) {
    const extra = textLength(w);
    // Generous by a few bytes for the array head growing with the count.
    if (
      current.length > 0 &&
      (size + extra + 4 > MAX_FEDERATION_BODY_BYTES || current.length >= MAX_PRESENCE_WATCHERS)
    ) {
      parts.push(current);
      current = [];
      size = presenceBodySize(objectBytes, []);
    }
    if (size + extra + 4 > MAX_FEDERATION_BODY_BYTES) {
      throw new ImppError(
        'ERR_FRAME_TOO_LARGE',
        'this presence object is too large to cross a link with its watchers',
      );
    }
    current.push(w);
    size += extra;
  }
  if (current.length > 0) parts.push(current);
  return parts;
}

/** The code a look-up fails with when its request could not be sent or was refused. */
function lookupFailure(error: unknown): ImppError {
  if (!isImppError(error)) {
    return new ImppError('ERR_CONNECTION_CLOSED', 'the peer could not be reached');
  }
  switch (error.code) {
    case 'ERR_TIMEOUT':
    case 'ERR_RATE_LIMITED':
    case 'ERR_DOMAIN_NOT_SERVED':
    case 'ERR_PAYLOAD_INVALID':
    case 'ERR_FRAME_TOO_LARGE':
      return new ImppError(error.code, error.message);
    case 'ERR_NOT_AUTHORIZED':
      // From connect (not federated under the links' configuration) or the peer's REJECT.
      return new ImppError('ERR_DOMAIN_NOT_SERVED', error.message);
    default:
      return new ImppError('ERR_CONNECTION_CLOSED', error.message);
  }
}
