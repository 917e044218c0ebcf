/**
 * One domain's federation, composed (docs/protocol.md, "Server-to-server protocol", §5.5): the
 * endpoint (links), the durable outbound driver (per-peer queues), the store-backed duplicate
 * filter and the router, wired to each other and to one store.
 *
 * The server and the federation need each other: sessions ask the router about other domains
 * (`ImppServerOptions.remote`), and the router hands what peers send to the service
 * (`ImppServer.federationInbound`). The node is therefore built first, the server second with
 * `remote: node.router`, and the server's inbound is attached afterwards. Until it is attached,
 * the router answers peers with a transient refusal (they retry), which is why {@link
 * FederationNode.listen} insists on it.
 *
 * Order of shutdown: the outbound driver first (nothing new is sent; what is in flight stays
 * queued and is resent after a restart), then the endpoint (links and listener). The caller
 * closes the server and the store afterwards, because the router may still be writing to them
 * until the links are gone.
 */
import type { SigningKeyPair } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import type { FederationInbound } from '../service/remote.js';
import type { SqliteServiceStore } from '../service/store/sqlite/store.js';
import { normalizeDomain } from '../trust/address.js';
import type { DomainTrustConfig } from '../trust/config.js';
import { Emitter } from '../transport/emitter.js';
import { type AuditLimit, FederationAuditTrail, UNAUTHENTICATED } from './audit-trail.js';
import { StoreDedup } from './dedup-store.js';
import { type FederationDefences, WEAKEN_FEDERATION } from './defences.js';
import { FederationEndpoint } from './endpoint.js';
import type { FederationAuditEvent, Link, LinkCloseInfo, LinkLimits } from './link.js';
import { FederationOutbound, type OutboundBounce, type RetryPolicy } from './outbound.js';
import type { LinkTlsCredentials } from './peer-tls.js';
import type { ResolveOptions } from './resolve.js';
import { FederationRouter, type RouterAuditEvent } from './router.js';
import type { RateLimit } from './peer-limits.js';

/**
 * A link event in the store's audit trail (the router records its own refusals). Opened links
 * are recorded as successes, the rest as refusals; events before a peer proved anything share
 * one budget, whatever domain they claim.
 */
function recordLinkEvent(trail: FederationAuditTrail, event: FederationAuditEvent): Promise<void> {
  const authenticated = event.peer !== null && !event.claimed;
  return trail.record({
    kind: event.type,
    budgetKey: authenticated ? event.peer : UNAUTHENTICATED,
    source: event.remoteAddress,
    outcome: event.type === 'federation.link-open' ? 'success' : 'refused',
    details: {
      peer: event.peer,
      claimed: event.claimed,
      reason: event.reason,
      ...(event.claimedOrigin === undefined ? {} : { claimedOrigin: event.claimedOrigin }),
    },
  });
}

/** Options of {@link FederationNode}. */
export interface FederationNodeOptions {
  /** Our domain. */
  readonly domain: string;
  /**
   * Who we federate with and how each peer proves itself. The router follows a function on every
   * call; links are set up under the configuration read when the node was built.
   */
  readonly trust: DomainTrustConfig | (() => DomainTrustConfig);
  /** The service's store: its federation queue, its seen-ids table and its audit log. */
  readonly store: Pick<SqliteServiceStore, 'federationQueue' | 'federationSeen' | 'audit'>;
  /** The domain certificate and key for links (dNSName SAN, serverAuth and clientAuth). */
  readonly tls: LinkTlsCredentials;
  /** The domain key (Ed25519), for peers that pinned its public half. */
  readonly domainKey?: SigningKeyPair;
  /** SRV resolver and static routes (private deployments and tests). */
  readonly resolve?: ResolveOptions;
  readonly retry?: Partial<RetryPolicy>;
  /** Objects queued for an unreachable peer longer than this are bounced, ms. Default 2 days. */
  readonly expireAfterMs?: number;
  readonly linkLimits?: Partial<LinkLimits>;
  /** How long a look-up (devices, bundles) waits for the peer's answer, ms. */
  readonly lookupTimeoutMs?: number;
  /** Inbound DATA per peer (router option `peerRate`). */
  readonly peerRate?: RateLimit;
  /** Inbound prekey-bundle look-ups per peer (router option `lookupRate`). */
  readonly lookupRate?: RateLimit;
  /** Audit records per peer (and for all unauthenticated callers together) and window. */
  readonly auditLimit?: AuditLimit;
  /** Test-only: defences to switch off (./defences.ts), passed to the endpoint. */
  readonly [WEAKEN_FEDERATION]?: Partial<FederationDefences>;
}

/** Events of a node: those of its parts that a server operator logs. */
export interface FederationNodeEvents {
  [event: string]: (...args: never[]) => void;
  /** A peer misbehaved or was refused (link or routing level). Never holds payload or keys. */
  audit: (event: FederationAuditEvent | RouterAuditEvent) => void;
  /** A link to `link.peer` is open. */
  link: (link: Link) => void;
  /** The link to `peer` closed. */
  linkClosed: (peer: string, info: LinkCloseInfo) => void;
  /** Objects given up on; their senders got delivery-failure notices. */
  bounce: (bounces: readonly OutboundBounce[]) => void;
  /** A delivery round to `peer` failed; the next is in `delayMs`. */
  retry: (peer: string, info: { attempts: number; delayMs: number; code: string }) => void;
}

/**
 * The federation of one domain, ready to be given to its server.
 *
 * @example
 * ```ts
 * const node = new FederationNode({ domain, trust, store, tls: { certPem, keyPem } });
 * const server = new ImppServer({ ...serverOptions, store, remote: node.router });
 * node.attach(server.federationInbound);
 * await server.listen({ port: 5331 });
 * await node.listen({ port: 5332 });
 * // shutdown: await node.close(); await server.close(); await store.close();
 * ```
 */
export class FederationNode extends Emitter<FederationNodeEvents> {
  /** Routes for sessions: pass as `ImppServerOptions.remote`. */
  readonly router: FederationRouter;
  /** Links (listener and outgoing connections). */
  readonly endpoint: FederationEndpoint;
  /** The per-peer durable queues' driver. */
  readonly outbound: FederationOutbound;
  readonly #domain: string;
  #inbound: FederationInbound | null = null;
  #state: 'new' | 'listening' | 'closed' = 'new';

  constructor(options: FederationNodeOptions) {
    super();
    this.#domain = normalizeDomain(options.domain);
    const trust = options.trust;
    const linkTrust = typeof trust === 'function' ? trust() : trust;
    // The router is built last but the endpoint's and driver's callbacks need it: they are
    // only called once the node listens, by when it exists.
    const deliverLater = (...args: Parameters<FederationRouter['deliver']>): Promise<void> =>
      this.router.deliver(...args);
    const bounceLater = (bounces: readonly OutboundBounce[]): Promise<void> =>
      this.router.bounce(bounces);
    // One budget per peer for link and routing events alike (./audit-trail.ts).
    const trail = new FederationAuditTrail(options.store.audit, options.auditLimit);
    this.endpoint = new FederationEndpoint({
      local: {
        domain: this.#domain,
        tls: options.tls,
        ...(options.domainKey === undefined ? {} : { domainKey: options.domainKey.secretKey }),
      },
      trust: linkTrust,
      dedup: new StoreDedup(options.store.federationSeen),
      deliver: deliverLater,
      ...(options.resolve === undefined ? {} : { resolve: options.resolve }),
      ...(options.linkLimits === undefined ? {} : { limits: options.linkLimits }),
      ...(options[WEAKEN_FEDERATION] === undefined
        ? {}
        : { [WEAKEN_FEDERATION]: options[WEAKEN_FEDERATION] }),
    });
    this.outbound = new FederationOutbound({
      endpoint: this.endpoint,
      queue: options.store.federationQueue,
      bounce: bounceLater,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      ...(options.expireAfterMs === undefined ? {} : { expireAfterMs: options.expireAfterMs }),
    });
    this.router = new FederationRouter({
      domain: this.#domain,
      trust,
      outbound: this.outbound,
      // Called at each use: whatever service is attached by then (see attach()).
      local: () => this.#service(),
      links: this.endpoint,
      ...(options.lookupTimeoutMs === undefined
        ? {}
        : { lookupTimeoutMs: options.lookupTimeoutMs }),
      ...(options.peerRate === undefined ? {} : { peerRate: options.peerRate }),
      ...(options.lookupRate === undefined ? {} : { lookupRate: options.lookupRate }),
      auditTrail: trail,
    });

    this.endpoint.on('audit', (event) => {
      this.emit('audit', event);
      void recordLinkEvent(trail, event);
    });
    this.router.on('audit', (event) => {
      this.emit('audit', event);
    });
    this.endpoint.on('link', (link) => {
      const peer = link.peer;
      if (peer === null) return;
      link.on('closed', (info) => {
        this.emit('linkClosed', peer, info);
      });
      // The peer is reachable now: whatever waits for it goes out without its back-off.
      this.outbound.peerUp(peer).catch(() => {
        // The store failed to reset the back-off: the worker retries on its own schedule.
      });
      this.emit('link', link);
    });
    this.outbound.on('bounced', (bounces) => {
      this.emit('bounce', bounces);
    });
    this.outbound.on('retry', (peer, info) => {
      this.emit('retry', peer, info);
    });
  }

  /** Our domain. */
  get domain(): string {
    return this.#domain;
  }

  /**
   * The service side, for what peers send: `server.federationInbound`. Once, before
   * {@link listen}.
   */
  attach(inbound: FederationInbound): void {
    if (this.#inbound !== null) {
      throw new ImppError('ERR_CONFLICT', 'a service is already attached to this federation node');
    }
    this.#inbound = inbound;
  }

  /**
   * Starts the outbound driver (it resumes every peer with queued objects) and listens for
   * peers; resolves with the federation port. Default port 5332 on all interfaces.
   * @throws `ERR_INVALID_ARGUMENT` when no service is attached yet, or the node is closed.
   */
  async listen(options: { readonly port?: number; readonly host?: string } = {}): Promise<number> {
    if (this.#inbound === null) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'attach the server before listening');
    }
    if (this.#state !== 'new') {
      throw new ImppError('ERR_INVALID_ARGUMENT', `federation node is ${this.#state}`);
    }
    this.#state = 'listening';
    const port = await this.endpoint.listen(options);
    await this.outbound.start();
    return port;
  }

  /** Stops sending, then closes every link and the listener. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    await this.outbound.close();
    await this.endpoint.close();
  }

  /** The attached service, or a transient refusal (the peer retries) when there is none. */
  #service(): FederationInbound {
    if (this.#inbound === null) {
      throw new ImppError('ERR_CONNECTION_CLOSED', 'the local service is not attached yet');
    }
    return this.#inbound;
  }
}
