/**
 * A domain's federation endpoint: the listener on the server-to-server port and the outgoing
 * connections, keeping at most one open link per peer domain, used in both directions.
 *
 * When both domains call each other at the same moment, two links open. Both ends keep the same
 * one: the link initiated by the domain whose name sorts first; the other is closed with
 * `ERR_CONFLICT`. A new link initiated by the same side as the current one replaces it (the peer
 * restarted and the old connection is dead but not yet noticed).
 */
import type { Server as NetServer } from 'node:net';
import { type TLSSocket, connect, createServer } from 'node:tls';
import { ImppError, isImppError } from '../errors.js';
import { normalizeDomain } from '../trust/address.js';
import type { DomainTrustConfig } from '../trust/config.js';
import { peerTrustFor } from '../trust/config.js';
import { Emitter } from '../transport/emitter.js';
import { type InboundDedup, MemoryDedup } from './dedup.js';
import { type FederationDefences, WEAKEN_FEDERATION, federationDefences } from './defences.js';
import {
  DEFAULT_LINK_LIMITS,
  type FederationAuditEvent,
  type InboundObject,
  Link,
  type LinkLimits,
  type LocalDomain,
} from './link.js';
import { initiatorTlsOptions, responderTlsOptions } from './peer-tls.js';
import {
  DEFAULT_FEDERATION_PORT,
  type LinkTarget,
  type ResolveOptions,
  resolveDomain,
} from './resolve.js';
import { DEFAULT_VOLATILE_KINDS, FEDERATION_ALPN } from './wire.js';

/** Options of {@link FederationEndpoint}. */
export interface FederationEndpointOptions {
  readonly local: LocalDomain;
  /** Decides, per peer, whether it is federated and how it must prove itself. */
  readonly trust: DomainTrustConfig;
  /** Receives every object a peer sends (stamped with the peer it arrived from). */
  readonly deliver: (object: InboundObject) => Promise<void> | void;
  readonly limits?: Partial<LinkLimits>;
  /** Default: an in-memory {@link MemoryDedup} (development only: a restart forgets). */
  readonly dedup?: InboundDedup;
  /**
   * DATA kinds delivered without `dedup` (answered, not stored). Default
   * {@link DEFAULT_VOLATILE_KINDS}: the router's look-ups and their answers.
   */
  readonly volatileKinds?: readonly number[];
  /** SRV resolver and static overrides (RFC 3861 resolution). */
  readonly resolve?: ResolveOptions;
  /** TLS handshake time-out for accepted connections. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
  /** Connections not yet authenticated, at most. Default 256. */
  readonly maxPendingLinks?: number;
  /** Test-only: defences to switch off (./defences.ts). */
  readonly [WEAKEN_FEDERATION]?: Partial<FederationDefences>;
}

/** Events of an endpoint. */
export interface FederationEndpointEvents {
  [event: string]: (...args: never[]) => void;
  /** A link is open and registered as the link to `link.peer`. */
  link: (link: Link) => void;
  audit: (event: FederationAuditEvent) => void;
}

/**
 * The federation side of one domain's server.
 *
 * @example
 * ```ts
 * const fed = new FederationEndpoint({ local, trust, deliver: (o) => store.accept(o) });
 * await fed.listen({ port: 5332 });
 * const link = await fed.connect('partner.example');
 * await link.send({ id, kind: 1, body: sealed });
 * ```
 */
export class FederationEndpoint extends Emitter<FederationEndpointEvents> {
  readonly #options: FederationEndpointOptions;
  readonly #limits: LinkLimits;
  readonly #dedup: InboundDedup;
  readonly #defences: FederationDefences;
  readonly #volatileKinds: ReadonlySet<number>;
  readonly #links = new Map<string, Link>();
  readonly #pending = new Set<Link>();
  readonly #connecting = new Map<string, Promise<Link>>();
  readonly #server: NetServer;
  readonly #sockets = new Set<TLSSocket>();
  #closed = false;

  constructor(options: FederationEndpointOptions) {
    super();
    this.#options = options;
    this.#limits = Object.freeze({ ...DEFAULT_LINK_LIMITS, ...options.limits });
    this.#dedup = options.dedup ?? new MemoryDedup();
    this.#defences = federationDefences(options[WEAKEN_FEDERATION]);
    this.#volatileKinds = new Set(options.volatileKinds ?? DEFAULT_VOLATILE_KINDS);
    const server = createServer(
      responderTlsOptions(
        options.local.tls,
        options.trust,
        options.handshakeTimeoutMs ?? 10_000,
        this.#defences.tls13Only,
      ),
    );
    server.on('secureConnection', (socket: TLSSocket) => {
      this.#accept(socket);
    });
    server.on('tlsClientError', (_error: Error, socket: TLSSocket) => {
      // TLS 1.2 and below, no common ALPN, garbage: this socket only.
      socket.destroy();
    });
    server.on('error', () => undefined);
    this.#server = server;
  }

  /** Our domain. */
  get domain(): string {
    return this.#options.local.domain;
  }

  /** Starts listening; resolves with the port. Default port {@link DEFAULT_FEDERATION_PORT}. */
  listen(options: { readonly port?: number; readonly host?: string } = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(options.port ?? DEFAULT_FEDERATION_PORT, options.host ?? '::', () => {
        this.#server.off('error', reject);
        const address = this.#server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
  }

  /** The open link to `domain`, if any. */
  linkTo(domain: string): Link | undefined {
    const link = this.#links.get(normalizeDomain(domain));
    return link?.isOpen === true ? link : undefined;
  }

  /** Open links, one per peer domain. */
  get links(): readonly Link[] {
    return [...this.#links.values()].filter((l) => l.isOpen);
  }

  /**
   * The open link to `domain`: the existing one, or a new one to the targets that resolution
   * (overrides, then SRV `_im._tcp`) gives, tried in order. The host reached must prove `domain`
   * itself. Rejects with `ERR_NOT_AUTHORIZED` for a domain we do not federate with, or the last
   * target's failure.
   */
  connect(domain: string): Promise<Link> {
    const name = normalizeDomain(domain);
    const open = this.linkTo(name);
    if (open !== undefined) return Promise.resolve(open);
    const running = this.#connecting.get(name);
    if (running !== undefined) return running;
    const attempt = this.#connectNew(name).finally(() => {
      this.#connecting.delete(name);
    });
    this.#connecting.set(name, attempt);
    return attempt;
  }

  async #connectNew(domain: string): Promise<Link> {
    if (this.#closed) throw new ImppError('ERR_CONNECTION_CLOSED', 'endpoint is closed');
    const trust = peerTrustFor(this.#options.trust, domain);
    if (!trust.federated) {
      throw new ImppError('ERR_NOT_AUTHORIZED', `not federated with ${domain} (${trust.reason})`);
    }
    const targets = await resolveDomain(domain, 'im', this.#options.resolve);
    let last: unknown = new ImppError('ERR_NOT_FOUND', `no target for ${domain}`);
    for (const target of targets) {
      try {
        return await this.#dial(domain, target);
      } catch (error) {
        last = error;
        // A peer that answered and refused us will not change its mind on another target.
        if (isImppError(error) && error.code !== 'ERR_CONNECTION_CLOSED') throw error;
      }
    }
    throw last;
  }

  #dial(domain: string, target: LinkTarget): Promise<Link> {
    const trust = peerTrustFor(this.#options.trust, domain);
    if (!trust.federated) {
      return Promise.reject(new ImppError('ERR_NOT_AUTHORIZED', `not federated with ${domain}`));
    }
    return new Promise<Link>((resolve, reject) => {
      const socket = connect({
        ...initiatorTlsOptions(
          this.#options.local.tls,
          domain,
          trust.proof,
          this.#defences.nameCheck,
        ),
        host: target.host,
        port: target.port,
      });
      this.#track(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ImppError('ERR_TIMEOUT', `link to ${domain} not open in time`));
      }, this.#limits.preAuthTimeoutMs);
      let reached = false;
      socket.once('connect', () => {
        reached = true;
      });
      const early = (error?: Error): void => {
        clearTimeout(timer);
        if (reached && error !== undefined) {
          // Something answered at the target but did not prove the domain (or speak TLS 1.3 and
          // our ALPN): worth an audit line, unlike a refused or unreachable port.
          this.emit('audit', {
            type: 'federation.proof-failed',
            peer: domain,
            claimed: true,
            reason: `TLS handshake failed (${(error as { code?: string }).code ?? 'no code'})`,
            remoteAddress: target.host,
          });
        }
        reject(
          new ImppError('ERR_CONNECTION_CLOSED', `TLS connection to ${domain} failed`, {
            cause: error,
          }),
        );
      };
      const onClose = (): void => {
        early();
      };
      socket.once('error', early);
      socket.once('close', onClose);
      socket.once('secureConnect', () => {
        socket.off('error', early);
        socket.off('close', onClose);
        if (socket.getProtocol() !== 'TLSv1.3' || socket.alpnProtocol !== FEDERATION_ALPN) {
          socket.destroy();
          clearTimeout(timer);
          reject(
            new ImppError(
              'ERR_PROTOCOL',
              `peer did not agree to TLS 1.3 with ALPN ${FEDERATION_ALPN}`,
            ),
          );
          return;
        }
        const link = this.#newLink(socket, 'initiator', domain);
        const settle = (): void => {
          clearTimeout(timer);
          // Our link may have lost to one the peer opened at the same moment: either will do.
          const winner = this.linkTo(domain);
          if (winner !== undefined) {
            resolve(winner);
            return;
          }
          const info = link.closeInfo;
          if (info === null) {
            resolve(link);
            return;
          }
          reject(
            new ImppError(
              info.code ?? 'ERR_CONNECTION_CLOSED',
              `link to ${domain} closed while opening: ${info.message}`,
            ),
          );
        };
        if (link.closeInfo !== null) settle();
        link.on('open', settle);
        link.on('closed', () => {
          if (!link.isOpen) settle();
        });
      });
    });
  }

  #track(socket: TLSSocket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
  }

  #accept(socket: TLSSocket): void {
    this.#track(socket);
    // Without ALPN the handshake succeeds (a mismatching offer does not): refused here (T26).
    const tlsRefused =
      this.#defences.tls13Only &&
      (socket.getProtocol() !== 'TLSv1.3' || socket.alpnProtocol !== FEDERATION_ALPN);
    if (
      this.#closed ||
      tlsRefused ||
      this.#pending.size >= (this.#options.maxPendingLinks ?? 256)
    ) {
      socket.destroy();
      return;
    }
    this.#newLink(socket, 'responder', undefined);
  }

  #newLink(socket: TLSSocket, role: 'initiator' | 'responder', peer: string | undefined): Link {
    const link = new Link({
      socket,
      role,
      ...(peer === undefined ? {} : { peerDomain: peer }),
      local: this.#options.local,
      trust: this.#options.trust,
      limits: this.#limits,
      dedup: this.#dedup,
      volatileKinds: this.#volatileKinds,
      defences: this.#defences,
      deliver: this.#options.deliver,
    });
    link.on('audit', (event) => {
      this.emit('audit', event);
    });
    if (link.closeInfo !== null) return link;
    this.#pending.add(link);
    link.on('open', () => {
      this.#pending.delete(link);
      this.#register(link);
    });
    link.on('closed', () => {
      this.#pending.delete(link);
      const peerName = link.peer;
      if (peerName !== null && this.#links.get(peerName) === link) this.#links.delete(peerName);
    });
    return link;
  }

  /** Keeps one link per peer (see the module comment for the rule both ends apply). */
  #register(link: Link): void {
    const peer = link.peer;
    if (peer === null) return;
    const current = this.#links.get(peer);
    if (current !== undefined && current !== link && current.isOpen) {
      const initiatorOf = (l: Link): string => (l.role === 'initiator' ? this.domain : peer);
      const keepNew =
        initiatorOf(current) === initiatorOf(link) || initiatorOf(link) < initiatorOf(current);
      const loser = keepNew ? current : link;
      if (keepNew) this.#links.set(peer, link);
      loser.close('ERR_CONFLICT', 'another link to this domain is in use');
      if (!keepNew) return;
    } else {
      this.#links.set(peer, link);
    }
    this.emit('link', link);
  }

  /** Closes every link and stops listening. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const link of [...this.#links.values(), ...this.#pending])
      link.close(null, 'shutting down');
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
      if (!this.#server.listening) resolve();
    });
  }
}
