/**
 * TEST DOUBLE of the federation link, for the service and client tests of the seam in
 * src/service/remote.ts: a {@link RemoteRouter} per domain that hands every request straight to
 * the other domain's REAL server (its `federationInbound`, real store, real sessions), in the same
 * process, stamping the origin domain as the real receiving router does. It stands in only for the
 * link (TLS between domains, proofs, durable outbound queues, retries): those are tested with real
 * links by test/federation/*. What this double cannot show (durability across a peer restart,
 * ordering under loss) is not claimed by the tests that use it.
 *
 * Unlike the real router, it delivers at once: an object the other domain refuses becomes a
 * delivery-failure notice for the sending device right away (the real router bounces it later).
 */
import { randomBytes } from '../../src/crypto/index.js';
import { ImppError, type ImppErrorCode, isImppError } from '../../src/errors.js';
import { DELIVERY_NOTICE_VERSION, encodeDeliveryNotice } from '../../src/protocol/notice.js';
import type { FederationInbound, RemoteRouter } from '../../src/service/remote.js';
import { parseAddress, parseDeviceAddress } from '../../src/trust/address.js';

/** Every call that crossed the double, for assertions. */
export interface Crossing {
  readonly from: string;
  readonly to: string;
  readonly what: 'route' | 'devices' | 'bundles' | 'log' | 'subscription' | 'decision' | 'presence';
}

export class LinkDouble {
  readonly #domains = new Map<string, () => FederationInbound>();
  readonly crossings: Crossing[] = [];
  /**
   * Forgery switch: the stamp the receiving side records instead of the true origin, as a
   * misbehaving receiving server or peer would cause.
   */
  forgeStamp: string | undefined;
  /**
   * When set, a routed object goes here instead of to the other domain (a test writes it where
   * and how it likes, e.g. with no stamp at all).
   */
  divert:
    ((object: Uint8Array, recipientDevice: string, id: Uint8Array) => Promise<void>) | undefined;

  /** When set, look-ups (devices, bundles) fail with this code, as a slow or cut link does. */
  lookupFailure: ImppErrorCode | undefined;

  /** Makes `domain` reachable; `inbound` is read at each call (the server exists later). */
  add(domain: string, inbound: () => FederationInbound): void {
    this.#domains.set(domain, inbound);
  }

  #peer(origin: string, domain: string, what: Crossing['what']): FederationInbound {
    const inbound = this.#domains.get(domain);
    if (inbound === undefined || domain === origin) {
      throw new ImppError('ERR_DOMAIN_NOT_SERVED', `${domain} is not federated with`);
    }
    this.crossings.push({ from: origin, to: domain, what });
    return inbound();
  }

  /** The {@link RemoteRouter} of the server of `origin`. */
  routerFor(origin: string): RemoteRouter {
    const domainOf = (address: string): string => parseAddress(address).domain;
    return {
      route: async ({ object, header, fromDevice }) => {
        if (header.kind === 'presence') throw new ImppError('ERR_PROTOCOL', 'not routable');
        const to = parseDeviceAddress(header.recipientDevice).address.domain;
        const peer = this.#peer(origin, to, 'route');
        if (this.divert !== undefined) {
          await this.divert(object, header.recipientDevice, header.messageId);
          return { duplicate: false };
        }
        try {
          const outcome = await peer.enqueue({
            kind: header.kind,
            recipientDevice: header.recipientDevice,
            id: header.messageId,
            object,
            arrivedFrom: this.forgeStamp ?? origin,
          });
          return { duplicate: outcome === 'duplicate' };
        } catch (e) {
          if (!isImppError(e, 'ERR_NOT_FOUND')) throw e;
          await this.#bounce(origin, fromDevice, header.recipientDevice, header.messageId, to);
          return { duplicate: false };
        }
      },
      devices: async (address, asker) => {
        const peer = this.#peer(origin, domainOf(address), 'devices');
        if (this.lookupFailure !== undefined) throw new ImppError(this.lookupFailure, 'link');
        return peer.devices(address, asker);
      },
      bundles: async (address, asker) => {
        const peer = this.#peer(origin, domainOf(address), 'bundles');
        if (this.lookupFailure !== undefined) throw new ImppError(this.lookupFailure, 'link');
        return peer.bundles(address, asker);
      },
      log: async (domain, request) => {
        const peer = this.#peer(origin, domain, 'log');
        if (this.lookupFailure !== undefined) throw new ImppError(this.lookupFailure, 'link');
        if (peer.log === undefined) throw new ImppError('ERR_NOT_FOUND', 'no key log');
        return peer.log(request);
      },
      subscription: (request) =>
        this.#peer(origin, domainOf(request.presentity), 'subscription').subscription(request),
      decision: (request) =>
        this.#peer(origin, domainOf(request.watcher), 'decision').decision(request),
      presence: async (request) => {
        const domain = domainOf(request.watchers[0] ?? '');
        await this.#peer(origin, domain, 'presence').presence(request);
      },
    };
  }

  /** The refused object's notice, into the sending device's queue at its own domain. */
  async #bounce(
    origin: string,
    fromDevice: string,
    recipient: string,
    messageId: Uint8Array,
    domain: string,
  ): Promise<void> {
    const home = this.#domains.get(origin);
    if (home === undefined) return;
    const now = Date.now();
    await home().enqueue({
      kind: 'notice',
      recipientDevice: fromDevice,
      id: randomBytes(16),
      object: encodeDeliveryNotice({
        v: DELIVERY_NOTICE_VERSION,
        type: 'delivery-failure',
        messageId,
        recipient,
        domain,
        reason: 'refused',
        code: 'ERR_NOT_FOUND',
        queuedAt: now,
        at: now,
      }),
      arrivedFrom: null,
    });
  }
}
