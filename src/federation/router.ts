/**
 * Routing across domains (issue 7, item 4; docs/protocol.md, "Server-to-server protocol", §5):
 * what crosses a link, what each side checks, and how a failure reaches the sender.
 *
 * Outbound, {@link FederationRouter.route} takes a sealed object a local device sent to a device
 * of another domain, checks the trust configuration federates with that domain, and stores it in
 * the peer's durable outbound queue ({@link FederationOutbound}); the caller answers the client
 * after that. Inbound, {@link FederationRouter.deliver} is the endpoint's `deliver` callback: it
 * checks what the object claims against the authenticated peer and our own domain, then hands it
 * to the local store through the narrow {@link LocalDelivery} seam, stamped with the peer domain.
 * Bounces from the outbound driver become delivery-failure notices for the sender's device,
 * through the same seam.
 *
 * The server sees only envelope headers (src/seal/header.ts): a message header names the
 * recipient device and a message id, never the sender, so nothing about the sender crosses the
 * link beyond the origin domain. The recipient's client compares the sealed sender's domain with
 * the stamp (`arrivedFrom`); this is how a peer is kept from speaking for a third domain's users.
 *
 * This module does not import src/service at run time (types only) and src/service must not
 * import it (test/architecture.test.ts): the server is given the router through interfaces it
 * declares itself, wired where both are built (the CLI).
 */
import { blake2b, concatBytes, utf8 } from '../crypto/index.js';
import { type ImppErrorCode, ImppError, isImppError } from '../errors.js';
import { type EnvelopeHeader, readEnvelopeHeader } from '../seal/header.js';
import type { AuditRepository } from '../service/store/types.js';
import { normalizeDomain, parseAddress, parseDeviceAddress } from '../trust/address.js';
import { type DomainTrustConfig, peerTrustFor } from '../trust/config.js';
import { type CborValue, decodeStrictCbor, encodeStrictCbor } from '../transport/cbor-strict.js';
import { Emitter } from '../transport/emitter.js';
import type { InboundObject } from './link.js';
import type { FederationOutbound, OutboundBounce } from './outbound.js';

/**
 * DATA `kind` values of link version 1 (docs/protocol.md, Server-to-server §5.1). Only `sealed`
 * is routed today; the others are reserved with their meaning and refused when received.
 */
export const FederationKind = Object.freeze({
  /** A session-sealed object (message or key distribution) for one device of the receiver. */
  sealed: 1,
  /** A presence update and the receiver's approved watchers to fan it out to. Reserved. */
  presence: 2,
  /** A subscription request or decision between a watcher and a presentity. Reserved. */
  subscription: 3,
  /** A look-up (prekey bundles, device list, key-log head or proof) and its answer. Reserved. */
  lookup: 4,
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

/** One item for a local device's queue. */
export type LocalItem =
  | {
      /** A sealed object that arrived from another domain. */
      readonly kind: 'message' | 'keyDistribution';
      readonly recipientDevice: string;
      /** The envelope's message id (the queue's id for the device). */
      readonly id: Uint8Array;
      /** The sealed bytes as received. */
      readonly object: Uint8Array;
      /** The authenticated peer domain it arrived from: the stamp the client checks. */
      readonly arrivedFrom: string;
    }
  | {
      /**
       * A delivery-failure notice ({@link encodeDeliveryNotice}): server metadata, not sealed,
       * and not an envelope (a store that checks envelopes must take it as its own kind).
       */
      readonly kind: 'notice';
      readonly recipientDevice: string;
      /** 16 bytes, the same for a repeated bounce of the same object. */
      readonly id: Uint8Array;
      readonly object: Uint8Array;
      readonly arrivedFrom: null;
    };

/**
 * What the router needs from the local service: the narrow seam the server implements over its
 * store (docs/protocol.md, Server-to-server §5.4).
 */
export interface LocalDelivery {
  /** True when `device` (`user@domain/deviceId` of our domain) is registered and not revoked. */
  deviceActive(device: string): Promise<boolean>;
  /**
   * Stores `item` in its device's queue; resolves once durable. An item whose id is already
   * pending for the device is a `duplicate` (nothing stored).
   * @throws `ERR_NOT_FOUND` for an unknown or revoked device, `ERR_QUOTA_EXCEEDED`, `ERR_STORAGE`.
   */
  enqueue(item: LocalItem): Promise<'stored' | 'duplicate'>;
  /** `device` has something new (no-op where the store's own watch pushes it). */
  notify(device: string): void;
}

/** Refusals of a misbehaving peer, for the audit log (T45). Never holds payload bytes. */
export interface RouterAuditEvent {
  readonly type:
    | 'federation.sender-refused'
    | 'federation.misrouted'
    | 'federation.object-refused'
    | 'federation.peer-refused';
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
  readonly local: LocalDelivery;
  /** If given, refusals of a misbehaving peer are also appended here (kind = event type). */
  readonly auditLog?: Pick<AuditRepository, 'append'>;
  /**
   * Records written to `auditLog` per peer and window, at most (default 60 a minute): a peer
   * cannot flood the audit trail. Refusals beyond it are counted, and the count is written with
   * the peer's next record (`suppressed`). Events are emitted regardless.
   */
  readonly auditLimit?: { readonly perPeer: number; readonly windowMs: number };
  /** Milliseconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
}

/** The one answer for every recipient that cannot take an object (T13: same words as SEND). */
const NOT_REGISTERED = 'recipient device is not registered';

/** Domain separation of derived ids. */
const OBJECT_ID_LABEL = utf8('impp-s2s/1 object id');
const NOTICE_ID_LABEL = utf8('impp-s2s/1 notice id');
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

function noticeId(objectId: Uint8Array): Uint8Array {
  return blake2b(concatBytes(NOTICE_ID_LABEL, ZERO, objectId), 16);
}

// ── Delivery-failure notice (format version 1) ──────────────────────────────────────────────

/** Version of the delivery-failure notice format. */
export const DELIVERY_NOTICE_VERSION = 1;

/**
 * A delivery-failure notice: the sender's server telling the sender's device that an object it
 * accepted could not be delivered to another domain. Metadata from the server, not sealed:
 * nothing in it is authenticated by the peer or the recipient (docs/protocol.md, §5.3).
 */
export interface DeliveryNotice {
  readonly v: typeof DELIVERY_NOTICE_VERSION;
  readonly type: 'delivery-failure';
  /** The message id of the object that failed (from its envelope). */
  readonly messageId: Uint8Array;
  /** The recipient device it was sealed for. */
  readonly recipient: string;
  /** The peer domain it was queued for. */
  readonly domain: string;
  /** `expired`: the domain stayed unreachable; `refused`: the domain would not take it. */
  readonly reason: 'expired' | 'refused';
  /** `ERR_TIMEOUT` for `expired`; the peer's REJECT code for `refused`. */
  readonly code: ImppErrorCode;
  /** When the sender's server accepted the object, ms since the epoch. */
  readonly queuedAt: number;
  /** When it gave up, ms since the epoch. */
  readonly at: number;
}

const NOTICE_KEYS = [
  'v',
  'type',
  'messageId',
  'recipient',
  'domain',
  'reason',
  'code',
  'queuedAt',
  'at',
] as const;

/** Encodes a notice as strict CBOR (a map with text keys, in the order of the format). */
export function encodeDeliveryNotice(notice: DeliveryNotice): Uint8Array {
  const map: Record<string, CborValue> = {};
  for (const key of NOTICE_KEYS) map[key] = notice[key];
  return encodeStrictCbor(map);
}

/**
 * Decodes a notice strictly (exact keys, typed values). Throws `ERR_PAYLOAD_INVALID`, or
 * `ERR_VERSION_UNSUPPORTED` for a version other than 1 (a client ignores what it cannot read).
 */
export function decodeDeliveryNotice(bytes: Uint8Array): DeliveryNotice {
  const bad = (what: string): ImppError =>
    new ImppError('ERR_PAYLOAD_INVALID', `delivery notice is malformed: ${what}`);
  let value: CborValue;
  try {
    value = decodeStrictCbor(bytes, 4);
  } catch {
    throw bad('not CBOR');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || isBytes(value)) {
    throw bad('expected a map');
  }
  const map = value as Readonly<Record<string, CborValue>>;
  if (map.v !== DELIVERY_NOTICE_VERSION) {
    if (typeof map.v === 'number') {
      throw new ImppError('ERR_VERSION_UNSUPPORTED', 'delivery notice version not supported');
    }
    throw bad('v');
  }
  const keys = Object.keys(map);
  if (keys.length !== NOTICE_KEYS.length || !NOTICE_KEYS.every((k) => keys.includes(k))) {
    throw bad('keys');
  }
  const { type, messageId, recipient, domain, reason, code, queuedAt, at } = map;
  if (type !== 'delivery-failure') throw bad('type');
  if (!isBytes(messageId) || messageId.length !== 16) throw bad('messageId');
  if (typeof recipient !== 'string' || recipient.length > 1024) throw bad('recipient');
  if (typeof domain !== 'string' || domain.length > 253) throw bad('domain');
  if (reason !== 'expired' && reason !== 'refused') throw bad('reason');
  if (typeof code !== 'string' || !/^ERR_[A-Z_]{1,48}$/.test(code)) throw bad('code');
  for (const [name, t] of [
    ['queuedAt', queuedAt],
    ['at', at],
  ] as const) {
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw bad(name);
  }
  return {
    v: DELIVERY_NOTICE_VERSION,
    type,
    messageId: Uint8Array.from(messageId),
    recipient,
    domain,
    reason,
    code: code as ImppErrorCode,
    queuedAt: queuedAt as number,
    at: at as number,
  };
}

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

// ── The router ──────────────────────────────────────────────────────────────────────────────

/**
 * Routes sealed objects between this domain's devices and other domains.
 *
 * @example
 * ```ts
 * const router = new FederationRouter({ domain, trust, outbound, local });
 * const endpoint = new FederationEndpoint({ local: me, trust, dedup, deliver: router.deliver });
 * const outbound = new FederationOutbound({ endpoint, queue, bounce: router.bounce });
 * await router.route({ object, header, fromDevice }); // durable: answer the client now
 * ```
 */
export class FederationRouter extends Emitter<FederationRouterEvents> {
  readonly #domain: string;
  readonly #trust: () => DomainTrustConfig;
  readonly #outbound: Pick<FederationOutbound, 'enqueue'>;
  readonly #local: LocalDelivery;
  readonly #auditLog: Pick<AuditRepository, 'append'> | undefined;
  readonly #auditLimit: { readonly perPeer: number; readonly windowMs: number };
  /** Per peer (only authenticated peers get here, so the map is bounded by the federation). */
  readonly #auditBudget = new Map<string, { start: number; used: number; suppressed: number }>();
  readonly #clock: () => number;

  constructor(options: FederationRouterOptions) {
    super();
    this.#domain = normalizeDomain(options.domain);
    const trust = options.trust;
    this.#trust = typeof trust === 'function' ? trust : () => trust;
    this.#outbound = options.outbound;
    this.#local = options.local;
    this.#auditLog = options.auditLog;
    const limit = options.auditLimit ?? { perPeer: 60, windowMs: 60_000 };
    if (
      !Number.isSafeInteger(limit.perPeer) ||
      limit.perPeer < 1 ||
      !Number.isSafeInteger(limit.windowMs) ||
      limit.windowMs < 1
    ) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'auditLimit needs positive integers');
    }
    this.#auditLimit = limit;
    this.#clock = options.clock ?? Date.now;
  }

  /** Our domain. */
  get domain(): string {
    return this.#domain;
  }

  /** True when `device` (a device address) belongs to another domain: route it here. */
  isRemote(device: string): boolean {
    return parseDeviceAddress(device).address.domain !== this.#domain;
  }

  // -- outbound ---------------------------------------------------------------------------

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
      throw new ImppError('ERR_INVALID_ARGUMENT', 'presence is not routed as a message');
    }
    if (parseDeviceAddress(fromDevice).address.domain !== this.#domain) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'the sender must be a device of this domain');
    }
    const peer = parseDeviceAddress(header.recipientDevice).address.domain;
    if (peer === this.#domain) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'a local recipient is not routed to a peer');
    }
    const trust = peerTrustFor(this.#trust(), peer);
    if (!trust.federated) {
      throw new ImppError('ERR_DOMAIN_NOT_SERVED', `this domain does not federate with ${peer}`);
    }
    const outcome = await this.#outbound.enqueue({
      peer,
      sender: fromDevice,
      id: federationObjectId(header.recipientDevice, header.messageId),
      kind: FederationKind.sealed,
      body: object,
    });
    return { duplicate: outcome.status === 'duplicate' };
  }

  // -- inbound ----------------------------------------------------------------------------

  /**
   * The endpoint's `deliver` callback. Resolves once the object is stored (the link ACKs);
   * rejects with the REJECT code otherwise. The link has already checked that the DATA origin is
   * the authenticated peer and dropped ids it delivered before. It awaits a device look-up before
   * its write, so use it with the link's default `deliverPipeline` of 1 (order per sender).
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
    switch (inbound.kind) {
      case FederationKind.sealed:
        return this.#deliverSealed(peer, inbound.body);
      case FederationKind.presence:
        return this.#refusePresence(peer, inbound.body);
      default:
        await this.#refuse(
          { type: 'federation.object-refused', peer, reason: `kind ${inbound.kind} not supported` },
          'ERR_PAYLOAD_INVALID',
        );
    }
  };

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
      return this.#refuse(
        {
          type: 'federation.misrouted',
          peer,
          reason: `recipient domain ${recipient.address.domain} is not served here`,
        },
        'ERR_DOMAIN_NOT_SERVED',
      );
    }
    const device = header.recipientDevice;
    // Unknown user, unknown device, revoked device: one answer, no audit (T13). The peer (and
    // through a bounce the sender) learns what a local SEND would have told it, nothing more.
    if (!(await this.#local.deviceActive(device))) {
      throw new ImppError('ERR_NOT_FOUND', NOT_REGISTERED);
    }
    let outcome: 'stored' | 'duplicate';
    try {
      outcome = await this.#local.enqueue({
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
      this.#local.notify(device);
      this.emit('delivered', peer, device);
    }
  }

  /**
   * Presence is not routed yet, but what a presence object claims is checked already: its
   * presentity must belong to the peer that sent it (a server speaks only for its own users).
   */
  async #refusePresence(peer: string, body: CborValue): Promise<void> {
    const header = await this.#header(peer, body);
    if (header.kind !== 'presence') {
      return this.#refuse(
        { type: 'federation.object-refused', peer, reason: 'a sealed message sent as presence' },
        'ERR_PAYLOAD_INVALID',
      );
    }
    const claimed = parseAddress(header.presentity).domain;
    if (claimed !== peer) {
      return this.#refuse(
        {
          type: 'federation.sender-refused',
          peer,
          claimedDomain: claimed,
          reason: 'presence of a presentity outside the peer domain',
        },
        'ERR_NOT_AUTHORIZED',
      );
    }
    throw new ImppError('ERR_PAYLOAD_INVALID', 'presence over federation is not supported yet');
  }

  /** The envelope header of a DATA body, or a refusal (an honest peer sends only envelopes). */
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
    if (this.#auditLog !== undefined) await this.#record(this.#auditLog, event);
    throw new ImppError(code, event.reason);
  }

  async #record(log: Pick<AuditRepository, 'append'>, event: RouterAuditEvent): Promise<void> {
    const now = this.#clock();
    let budget = this.#auditBudget.get(event.peer);
    if (budget === undefined || now - budget.start >= this.#auditLimit.windowMs) {
      budget = { start: now, used: 0, suppressed: budget?.suppressed ?? 0 };
      this.#auditBudget.set(event.peer, budget);
    }
    if (budget.used >= this.#auditLimit.perPeer) {
      budget.suppressed += 1;
      return;
    }
    budget.used += 1;
    const suppressed = budget.suppressed;
    budget.suppressed = 0;
    try {
      await log.append({
        at: now,
        kind: event.type,
        principal: null,
        source: event.peer,
        outcome: 'refused',
        details: {
          peer: event.peer,
          reason: event.reason,
          ...(event.claimedDomain === undefined ? {} : { claimedDomain: event.claimedDomain }),
          ...(suppressed === 0 ? {} : { suppressed }),
        },
      });
    } catch {
      // The refusal stands whether or not its audit line could be written.
    }
  }

  // -- bounces ----------------------------------------------------------------------------

  /**
   * The outbound driver's `bounce` callback: a delivery-failure notice to each sender device.
   * Rejects only when the store failed (the driver offers the bounces again later); a sender
   * device that is gone or whose queue is full loses its notice (`noticeDropped`).
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
      try {
        const outcome = await this.#local.enqueue({
          kind: 'notice',
          recipientDevice: device,
          id: noticeId(b.id),
          object: encodeDeliveryNotice(notice),
          arrivedFrom: null,
        });
        if (outcome === 'stored') this.#local.notify(device);
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
