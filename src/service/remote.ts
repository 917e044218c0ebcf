/**
 * The seam between the service and federation (docs/protocol.md, Server-to-server §5.5).
 *
 * src/service may not import src/federation (the federation imports the service's store types;
 * test/architecture.test.ts forbids the cycle). The service therefore declares here, as
 * interfaces, both directions of what crosses a domain boundary:
 *
 * - {@link RemoteRouter}: what a session asks of the federation for an address of another domain
 *   (implemented by `FederationRouter`, given to the server as `ImppServerOptions.remote`);
 * - {@link FederationInbound}: what the federation asks of this service when a peer domain sends
 *   something (implemented over the store by `./federation-inbound.ts`).
 *
 * Everything that crosses is either sealed bytes exactly as a client produced them, or
 * addresses and subscription states: the server never holds anything it could open.
 */
import type { EnvelopeHeader } from '../seal/header.js';

/** The answer to GET_DEVICES (client protocol §5.3), for a local or a remote user. */
export interface DevicesAnswer {
  /** The signed device list, as its owner's device uploaded it; null when there is none. */
  readonly deviceList: Uint8Array | null;
  readonly devices: readonly {
    readonly deviceId: string;
    readonly identityKey: Uint8Array;
    /** The enrolment statement signed by the user's home domain (null for none). */
    readonly enrolment: Uint8Array | null;
  }[];
}

/** One prekey bundle of GET_BUNDLES (client protocol §5.4). */
export interface BundleAnswer {
  /** `user@domain/deviceId`. */
  readonly device: string;
  readonly identityKey: Uint8Array;
  readonly signedPrekey: {
    readonly id: number;
    readonly publicKey: Uint8Array;
    readonly signature: Uint8Array;
  };
  readonly oneTimePrekey?: { readonly id: number; readonly publicKey: Uint8Array };
}

/**
 * The answer to GET_LOG (client protocol §5.6), for this domain's key log or, through the
 * federation, another domain's: a signed tree head, a consistency proof from `since` (RFC 9162
 * §2.1.4) and, when an index was asked, that entry with its inclusion proof (§2.1.3). Nothing in
 * it needs trusting the server that relays it: the client checks the head under the log's
 * pinned key and the proofs against the head.
 */
export interface LogAnswer {
  /** The encoded signed tree head (src/trust/keylog/tree-head.ts). */
  readonly head: Uint8Array;
  readonly consistency: readonly Uint8Array[];
  readonly entry?: Uint8Array;
  readonly inclusion?: readonly Uint8Array[];
}

/** What a GET_LOG asks: the size the client trusts, and optionally one entry. */
export interface LogRequest {
  readonly since: number;
  readonly index?: number;
}

/** A subscription action of a watcher (SUBSCRIBE / UNSUBSCRIBE). */
export type WatcherAction = 'request' | 'cancel';
/** A decision of a presentity (DECIDE). */
export type PresentityAction = 'approve' | 'deny' | 'revoke';

/** A watcher's SUBSCRIBE / UNSUBSCRIBE, as it crosses between the two domains. */
export interface SubscriptionRequest {
  readonly presentity: string;
  readonly watcher: string;
  readonly action: WatcherAction;
}

/** A presentity's DECIDE, with its latest presence object on approval. */
export interface DecisionRequest {
  readonly presentity: string;
  readonly watcher: string;
  readonly action: PresentityAction;
  readonly presence?: Uint8Array;
}

/** One presence object for the approved watchers of one other domain. */
export interface PresenceFanOut {
  readonly object: Uint8Array;
  readonly presentity: string;
  /** Approved watchers (`user@domain`), all of the receiving domain. */
  readonly watchers: readonly string[];
}

/**
 * What the server asks of the federation for addresses in other domains. Every method is called
 * only for an address whose domain is not the server's own; each may throw
 * `ERR_DOMAIN_NOT_SERVED` when the trust configuration does not federate with that domain.
 */
export interface RemoteRouter {
  /**
   * SEND of a sealed message or key distribution to a device of another domain: stored in the
   * peer's durable outbound queue; resolves once durable (the server answers the client then).
   */
  route(request: {
    readonly object: Uint8Array;
    readonly header: EnvelopeHeader;
    readonly fromDevice: string;
  }): Promise<{ duplicate: boolean }>;

  /**
   * GET_DEVICES for a user of another domain, asked by `asker` (a local user): answered by the
   * user's home domain over the link. `ERR_TIMEOUT` when it does not answer in time,
   * `ERR_CONNECTION_CLOSED` when it cannot be reached.
   */
  devices(address: string, asker: string): Promise<DevicesAnswer>;

  /**
   * GET_BUNDLES for a user of another domain (each bundle consumes one of the device's one-time
   * prekeys at its home domain). Same errors as {@link devices}.
   */
  bundles(address: string, asker: string): Promise<readonly BundleAnswer[]>;

  /**
   * A local watcher's SUBSCRIBE / UNSUBSCRIBE to a presentity of another domain, already applied
   * to the local store's copy of the subscription: forwarded durably, in order, to the
   * presentity's home domain, which is the authority.
   */
  subscription(request: SubscriptionRequest): Promise<void>;

  /**
   * A local presentity's DECIDE about a watcher of another domain, already applied locally:
   * forwarded durably, in order, to the watcher's domain. With `presence` (the presentity's
   * latest presence object, on approve) the watcher's domain hands it to the watcher at once.
   */
  decision(request: DecisionRequest): Promise<void>;

  /**
   * A PUBLISH by a local presentity with approved watchers in another domain: the same sealed
   * bytes cross the link once per domain with the list of that domain's approved watchers, and
   * that domain fans it out. Durable once resolved.
   */
  presence(request: PresenceFanOut): Promise<void>;

  /**
   * GET_LOG of another domain's key log (client protocol §5.6 with `domain`), answered by that
   * domain over the link. Optional so that routers written before it still fit: without it a
   * session refuses such a GET_LOG with `ERR_DOMAIN_NOT_SERVED`. Same errors as {@link devices}.
   */
  log?(domain: string, request: LogRequest): Promise<LogAnswer>;
}

/** An item a peer domain delivers into a local device's queue. */
export type InboundItem =
  | {
      /** A sealed object that arrived from another domain. */
      readonly kind: 'message' | 'keyDistribution';
      readonly recipientDevice: string;
      /** The envelope's message id (the queue's id for the device). */
      readonly id: Uint8Array;
      /** The sealed bytes as received. */
      readonly object: Uint8Array;
      /** The authenticated peer domain it arrived from: the stamp the client checks (T45). */
      readonly arrivedFrom: string;
    }
  | {
      /**
       * A delivery-failure notice (src/protocol/notice.ts): metadata from this server, not
       * sealed, not an envelope.
       */
      readonly kind: 'notice';
      readonly recipientDevice: string;
      /** 16 bytes, the same for a repeated bounce of the same object. */
      readonly id: Uint8Array;
      readonly object: Uint8Array;
      readonly arrivedFrom: null;
    };

/**
 * What the federation asks of this service when an authenticated peer domain sends something.
 * The federation has already checked that every address the peer speaks for is in the peer's
 * domain (`peer`), and every address it asks about is in ours; these methods apply our own
 * users' decisions (T11–T13) and never trust the peer for them.
 */
export interface FederationInbound {
  /** True when `device` (`user@domain/deviceId` of our domain) is registered and not revoked. */
  deviceActive(device: string): Promise<boolean>;
  /**
   * Stores `item` in its device's queue; resolves once durable. An item whose id is already
   * pending for the device is a `duplicate` (nothing stored). An online session is told by the
   * queue itself.
   * @throws `ERR_NOT_FOUND` for an unknown or revoked device, `ERR_QUOTA_EXCEEDED`, `ERR_STORAGE`.
   */
  enqueue(item: InboundItem): Promise<'stored' | 'duplicate'>;
  /** Kept for callers that notify explicitly; a no-op here (the queue's watch pushes). */
  notify(device: string): void;

  /** GET_DEVICES of local user `address` asked by remote user `asker` (a denied asker: none). */
  devices(address: string, asker: string): Promise<DevicesAnswer>;
  /** GET_BUNDLES of local user `address` for remote user `asker` (a denied asker: none). */
  bundles(address: string, asker: string): Promise<readonly BundleAnswer[]>;
  /** A remote watcher subscribes to / unsubscribes from a local presentity. */
  subscription(request: SubscriptionRequest): Promise<void>;
  /** A remote presentity decided about a local watcher (the mirror of its home's record). */
  decision(request: DecisionRequest): Promise<void>;
  /**
   * A presence object of a remote presentity for the listed local watchers: each gets it only
   * if our own copy of its subscription is approved (the peer cannot add watchers). Resolves to
   * the number of sessions it was pushed to.
   */
  presence(request: PresenceFanOut): Promise<number>;
  /**
   * A peer's look-up of this domain's key log: answered exactly as a local GET_LOG. Optional for
   * the same reason as {@link RemoteRouter.log}; without it the look-up fails `ERR_NOT_FOUND`.
   * @throws `ERR_PROTOCOL` for a `since` or `index` outside the log.
   */
  log?(request: LogRequest): Promise<LogAnswer>;
}
