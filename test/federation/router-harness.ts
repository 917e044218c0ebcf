/**
 * Two (or more) domains for the router tests: each with its own SQLite store in a temp dir, its
 * endpoint on loopback, its durable outbound queue, its store-backed duplicate filter and its
 * router, wired as src/federation/node.ts wires them; plus a hand-driven peer for what an honest
 * router never sends.
 *
 * The service side is {@link RecordingInbound}, a test double of `FederationInbound` (the real
 * one is src/service/federation-inbound.ts, tested end to end elsewhere): sealed objects and
 * notices go to the real SQLite device queue with their stamp; look-ups are answered from the
 * real store as GET_DEVICES / GET_BUNDLES are; presence, subscriptions and decisions are only
 * recorded, since what the service does with them is not the router's business.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { randomBytes, toHex } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import {
  type DeliveryNotice,
  type FederationAuditEvent,
  FederationEndpoint,
  FederationOutbound,
  type FederationOutboundOptions,
  FederationRouter,
  type FederationRouterOptions,
  LinkFrameType,
  type OutboundBounce,
  type RouterAuditEvent,
  StoreDedup,
  decodeDeliveryNotice,
  signDomainProof,
} from '../../src/federation/index.js';
import { readEnvelopeHeader } from '../../src/seal/header.js';
import type {
  BundleAnswer,
  DevicesAnswer,
  FederationInbound,
  InboundItem,
  PresentityAction,
  WatcherAction,
} from '../../src/service/remote.js';
import {
  type SqliteServiceStore,
  type StoreQuotas,
  openSqliteServiceStore,
} from '../../src/service/store/index.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import { parseDeviceAddress } from '../../src/trust/address.js';
import type { DomainTrustConfig } from '../../src/trust/config.js';
import { sealedMessage } from '../service/store/envelopes.js';
import { type PeerRule, RawPeer, type TestDomain, newId, trustFor } from './helpers.js';

export const ALICE = 'alice@a.example/laptop';
export const BOB = 'bob@b.example/phone';

/** A look-up the double answered. */
export interface RecordedLookup {
  readonly op: 'devices' | 'bundles';
  readonly address: string;
  readonly asker: string;
}

/** Test double of the service's `FederationInbound` (see the file comment). */
export class RecordingInbound implements FederationInbound {
  readonly stamps = new Map<string, string>();
  readonly notices = new Map<string, Map<string, Uint8Array>>();
  readonly notified: string[] = [];
  readonly presences: { object: Uint8Array; presentity: string; watchers: readonly string[] }[] =
    [];
  readonly subscriptions: { presentity: string; watcher: string; action: WatcherAction }[] = [];
  readonly decisions: {
    presentity: string;
    watcher: string;
    action: PresentityAction;
    presence?: Uint8Array;
  }[] = [];
  readonly lookups: RecordedLookup[] = [];
  /** When set, look-ups wait for it before answering (a slow store). */
  stall: Promise<void> | null = null;
  /** When set, the answer to every devices look-up (a lying peer's service). */
  devicesOverride: DevicesAnswer | null = null;
  /** When set, the answer to every bundles look-up. */
  bundlesOverride: readonly BundleAnswer[] | null = null;

  constructor(private readonly store: SqliteServiceStore) {}

  async deviceActive(device: string): Promise<boolean> {
    const { address, deviceId } = parseDeviceAddress(device);
    const d = await this.store.devices.get(`${address.user}@${address.domain}`, deviceId);
    return d !== undefined && !d.revoked;
  }

  async enqueue(item: InboundItem): Promise<'stored' | 'duplicate'> {
    const outcome = await this.store.queue.enqueue({
      id: item.id,
      recipientDevice: item.recipientDevice,
      kind: item.kind,
      bytes: item.object,
      receivedAt: Date.now(),
      arrivedFrom: item.arrivedFrom,
    });
    if (outcome.status === 'stored') {
      if (item.kind === 'notice') {
        const box = this.notices.get(item.recipientDevice) ?? new Map<string, Uint8Array>();
        this.notices.set(item.recipientDevice, box);
        box.set(toHex(item.id), item.object);
      } else {
        this.stamps.set(`${item.recipientDevice} ${toHex(item.id)}`, item.arrivedFrom);
      }
    }
    return outcome.status;
  }

  notify(device: string): void {
    this.notified.push(device);
  }

  async devices(address: string, asker: string): Promise<DevicesAnswer> {
    this.lookups.push({ op: 'devices', address, asker });
    if (this.stall !== null) await this.stall;
    if (this.devicesOverride !== null) return this.devicesOverride;
    const listed = await this.store.deviceLists.latest(address);
    const devices = await this.store.devices.list(address);
    return {
      deviceList: listed?.bytes ?? null,
      devices: devices.map((d) => ({
        deviceId: d.deviceId,
        identityKey: d.identityKey,
        enrolment: d.enrolment,
      })),
    };
  }

  async bundles(address: string, asker: string): Promise<readonly BundleAnswer[]> {
    this.lookups.push({ op: 'bundles', address, asker });
    if (this.stall !== null) await this.stall;
    if (this.bundlesOverride !== null) return this.bundlesOverride;
    const out: BundleAnswer[] = [];
    for (const d of await this.store.devices.list(address)) {
      const device = `${address}/${d.deviceId}`;
      const spk = await this.store.prekeys.signedPrekey(device);
      if (spk === undefined) continue;
      const otk = await this.store.prekeys.takeOneTimePrekey(device);
      out.push({
        device,
        identityKey: d.identityKey,
        signedPrekey: { id: spk.keyId, publicKey: spk.publicKey, signature: spk.signature },
        ...(otk === undefined
          ? {}
          : { oneTimePrekey: { id: otk.keyId, publicKey: otk.publicKey } }),
      });
    }
    return out;
  }

  async subscription(request: {
    readonly presentity: string;
    readonly watcher: string;
    readonly action: WatcherAction;
  }): Promise<void> {
    await Promise.resolve();
    this.subscriptions.push({ ...request });
  }

  async decision(request: {
    readonly presentity: string;
    readonly watcher: string;
    readonly action: PresentityAction;
    readonly presence?: Uint8Array;
  }): Promise<void> {
    await Promise.resolve();
    this.decisions.push({ ...request });
  }

  async presence(request: {
    readonly object: Uint8Array;
    readonly presentity: string;
    readonly watchers: readonly string[];
  }): Promise<number> {
    await Promise.resolve();
    this.presences.push({ ...request });
    return 0;
  }

  noticesOf(device: string): DeliveryNotice[] {
    return [...(this.notices.get(device)?.values() ?? [])].map(decodeDeliveryNotice);
  }
}

export interface Dom {
  readonly d: TestDomain;
  readonly store: SqliteServiceStore;
  readonly endpoint: FederationEndpoint;
  readonly outbound: FederationOutbound;
  readonly router: FederationRouter;
  readonly local: RecordingInbound;
  readonly port: number;
  readonly routes: Map<string, { host: string; port: number }[]>;
  readonly audit: RouterAuditEvent[];
  readonly linkAudit: FederationAuditEvent[];
  readonly bounces: OutboundBounce[];
  /** When `trust` is set, the router follows it instead of the endpoint's configuration. */
  readonly reloaded: { trust?: DomainTrustConfig };
}

/** Options of {@link Harness.start}. */
export interface StartOptions {
  outbound?: Partial<FederationOutboundOptions>;
  quotas?: Partial<StoreQuotas>;
  router?: Partial<
    Pick<
      FederationRouterOptions,
      'auditLimit' | 'lookupTimeoutMs' | 'maxLookupsPerPeer' | 'peerRate' | 'lookupRate' | 'clock'
    >
  >;
}

/**
 * Domains started by one test file, closed after each test. `peersOf` says whom each domain
 * federates with.
 */
export class Harness {
  readonly #doms: Dom[] = [];
  readonly #raws: RawPeer[] = [];
  readonly #dirs: string[] = [];

  constructor(private readonly peersOf: (d: TestDomain) => PeerRule[]) {}

  async start(d: TestDomain, options: StartOptions = {}): Promise<Dom> {
    const { outbound: outboundOptions = {}, quotas = {}, router: routerOptions = {} } = options;
    const dir = mkdtempSync(join(tmpdir(), 'impp-fedroute-'));
    this.#dirs.push(dir);
    const store = openSqliteServiceStore({ path: join(dir, 'store.db'), quotas });
    const trust = trustFor(d.domain, this.peersOf(d));
    const routes = new Map<string, { host: string; port: number }[]>();
    const local = new RecordingInbound(store);
    const audit: RouterAuditEvent[] = [];
    const linkAudit: FederationAuditEvent[] = [];
    const bounces: OutboundBounce[] = [];
    // The endpoint, the driver and the router refer to each other: built in this order.
    const late: { router?: FederationRouter } = {};
    const endpoint = new FederationEndpoint({
      local: {
        domain: d.domain,
        tls: { certPem: d.cert.certPem, keyPem: d.cert.keyPem },
        domainKey: d.key.secretKey,
      },
      trust,
      deliver: (o) => (late.router as FederationRouter).deliver(o),
      dedup: new StoreDedup(store.federationSeen),
      limits: { preAuthTimeoutMs: 3000 },
      resolve: { overrides: routes },
    });
    endpoint.on('audit', (e) => linkAudit.push(e));
    const outbound = new FederationOutbound({
      endpoint,
      queue: store.federationQueue,
      bounce: async (list) => {
        bounces.push(...list);
        await (late.router as FederationRouter).bounce(list);
      },
      retry: { baseMs: 20, maxMs: 100 },
      ...outboundOptions,
    });
    const reloaded: { trust?: DomainTrustConfig } = {};
    const router = new FederationRouter({
      domain: d.domain,
      trust: () => reloaded.trust ?? trust,
      outbound,
      // Late-bound, as the node binds the server's inbound.
      local: () => local,
      links: endpoint,
      auditLog: store.audit,
      ...routerOptions,
    });
    router.on('audit', (e) => audit.push(e));
    late.router = router;
    const port = await endpoint.listen({ port: 0, host: '127.0.0.1' });
    await outbound.start();
    const dom: Dom = {
      d,
      store,
      endpoint,
      outbound,
      router,
      local,
      port,
      routes,
      audit,
      linkAudit,
      bounces,
      reloaded,
    };
    this.#doms.push(dom);
    return dom;
  }

  /** A hand-driven `from` domain, authenticated to `to` with `from`'s real domain key. */
  async raw(from: TestDomain, to: Dom): Promise<RawPeer> {
    const raw = await RawPeer.connect(to.port, to.d.domain, undefined);
    this.#raws.push(raw);
    raw.send(LinkFrameType.OPEN, {
      versions: [1],
      from: from.domain,
      to: to.d.domain,
      want: 'certificate',
      window: 64,
      maxFrameBytes: 1024 * 1024,
    });
    expect((await raw.next())?.type).toBe(LinkFrameType.ACCEPT);
    raw.send(LinkFrameType.PROOF, {
      proof: signDomainProof(from.key.secretKey, 'initiator', {
        initiator: from.domain,
        responder: to.d.domain,
        exporter: raw.exporter(),
      }),
    });
    expect((await raw.next())?.type).toBe(LinkFrameType.READY);
    return raw;
  }

  async close(): Promise<void> {
    for (const r of this.#raws.splice(0)) r.destroy();
    for (const dom of this.#doms.splice(0)) {
      await dom.outbound.close();
      await dom.endpoint.close();
      await dom.store.close();
    }
    for (const d of this.#dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

/** Tells `from` where `to` listens. */
export function link(from: Dom, to: Dom): void {
  from.routes.set(to.d.domain, [{ host: '127.0.0.1', port: to.port }]);
}

export async function addDevice(store: SqliteServiceStore, device: string): Promise<void> {
  const { address, deviceId } = parseDeviceAddress(device);
  await store.devices.register({
    address: `${address.user}@${address.domain}`,
    deviceId,
    identityKey: randomBytes(32),
    enrolment: randomBytes(64),
    createdAt: Date.now(),
  });
}

/** A SEND from `from` of a sealed object for `to`, as the session would hand it over. */
export async function send(
  dom: Dom,
  to: string,
  from = ALICE,
  id = newId(),
): Promise<{ object: Uint8Array; id: Uint8Array; duplicate: boolean }> {
  const object = sealedMessage(to, id);
  const { duplicate } = await dom.router.route({
    object,
    header: readEnvelopeHeader(object),
    fromDevice: from,
  });
  return { object, id, duplicate };
}

/** The device's queue, as hex (the store hands out Buffers). */
export async function pendingOf(dom: Dom, device: string): Promise<string[]> {
  return (await dom.store.queue.pending(device, { limit: 1000 })).map((p) => toHex(p.bytes));
}

/** The next answer (ACK or REJECT) or DATA on a raw link, skipping PINGs. */
export async function nextFrame(
  raw: RawPeer,
): Promise<{ type: number; body: Record<string, unknown> }> {
  for (;;) {
    const f = await raw.next();
    if (f === null) throw new Error('link closed');
    if (f.type === LinkFrameType.PING) continue;
    return { type: f.type, body: f.body as Record<string, unknown> };
  }
}

/** Waits until the (async) check holds, or fails after `ms`. */
export async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The error code `p` rejects with (or what it resolved to, to fail the comparison). */
export async function codeOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => ({ resolved: v }),
    (e: unknown) => (isImppError(e) ? e.code : e),
  );
}

export async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  expect(await codeOf(p)).toBe(code);
}

/** A DATA frame a raw peer received. */
export interface RawData {
  readonly seq: number;
  readonly id: Uint8Array;
  readonly origin: string;
  readonly kind: number;
  readonly body: unknown;
}

/**
 * DATA over a raw link, numbered: {@link data} sends one object and returns its ACK or REJECT;
 * DATA the other side sends meanwhile (look-up answers) is ACKed and kept for {@link nextData}.
 */
export class RawLink {
  #seq = 0;
  readonly #received: RawData[] = [];
  readonly #answers = new Map<number, { type: number; code: string | null }>();

  constructor(
    readonly raw: RawPeer,
    readonly origin: string,
  ) {}

  /** Sends one DATA; resolves with its answer: 'ACK' or the REJECT code. */
  async data(kind: number, body: CborValue, id = newId()): Promise<string> {
    this.#seq += 1;
    const seq = this.#seq;
    this.raw.send(LinkFrameType.DATA, { seq, id, origin: this.origin, kind, body });
    for (;;) {
      const got = this.#answers.get(seq);
      if (got !== undefined) {
        this.#answers.delete(seq);
        return got.type === LinkFrameType.ACK ? 'ACK' : (got.code ?? 'REJECT');
      }
      await this.#read();
    }
  }

  /** Sends DATA without waiting for the answer (to fill a window); returns its seq. */
  sendData(kind: number, body: CborValue, id = newId()): number {
    this.#seq += 1;
    this.raw.send(LinkFrameType.DATA, { seq: this.#seq, id, origin: this.origin, kind, body });
    return this.#seq;
  }

  /** The answer to `seq` sent with {@link sendData}. */
  async answerTo(seq: number): Promise<string> {
    for (;;) {
      const got = this.#answers.get(seq);
      if (got !== undefined) {
        this.#answers.delete(seq);
        return got.type === LinkFrameType.ACK ? 'ACK' : (got.code ?? 'REJECT');
      }
      await this.#read();
    }
  }

  /** The next DATA the other side sent (already ACKed). */
  async nextData(): Promise<RawData> {
    for (;;) {
      const d = this.#received.shift();
      if (d !== undefined) return d;
      await this.#read();
    }
  }

  /** DATA received so far and not yet taken. */
  get received(): readonly RawData[] {
    return this.#received;
  }

  async #read(): Promise<void> {
    const f = await this.raw.next();
    if (f === null) throw new Error('link closed');
    const body = f.body as Record<string, unknown>;
    if (f.type === LinkFrameType.DATA) {
      const d = body as unknown as RawData;
      this.#received.push(d);
      this.raw.send(LinkFrameType.ACK, { seq: d.seq });
    } else if (f.type === LinkFrameType.ACK || f.type === LinkFrameType.REJECT) {
      this.#answers.set(body.seq as number, {
        type: f.type,
        code: typeof body.code === 'string' ? body.code : null,
      });
    } else if (f.type === LinkFrameType.PING) {
      this.raw.send(LinkFrameType.PONG, {});
    } else if (f.type === LinkFrameType.CLOSE) {
      throw new Error(`link closed: ${String(body.code)}`);
    }
  }
}
