/**
 * FederationNode: the composed federation of one domain (endpoint, durable outbound driver,
 * store-backed duplicate filter, router) over real links on loopback, each domain with its own
 * SQLite store in a temp dir.
 *
 * `RecordingInbound` stands in for the service's side of the seam where a test looks only at
 * the federation (it records what a peer delivered, over the real device queue); the end-to-end
 * case between two real servers and the client SDK is in the last describe block.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair, randomBytes, toHex } from '../../src/crypto/index.js';
import { ImppError, isImppError } from '../../src/errors.js';
import {
  FederationNode,
  type FederationNodeOptions,
  type Link,
  type OutboundBounce,
} from '../../src/federation/index.js';
import { decodeDeliveryNotice } from '../../src/protocol/notice.js';
import type {
  BundleAnswer,
  DevicesAnswer,
  FederationInbound,
  InboundItem,
} from '../../src/service/remote.js';
import { type SqliteServiceStore, openSqliteServiceStore } from '../../src/service/store/index.js';
import type { ReceivedMessage } from '../../src/client/client.js';
import { next } from '../service/harness.js';
import { readEnvelopeHeader } from '../../src/seal/header.js';
import { sealedMessage } from '../service/store/envelopes.js';
import { startFullDomain } from './full-domain.js';
import { type TestDomain, makeDomain, trustFor, until } from './helpers.js';

let a: TestDomain;
let b: TestDomain;
beforeAll(async () => {
  [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
});

/** Stand-in for `ImppServer.federationInbound` (see the file comment). */
class RecordingInbound implements FederationInbound {
  readonly items: InboundItem[] = [];
  readonly active = new Set<string>();
  async deviceActive(device: string): Promise<boolean> {
    await Promise.resolve();
    return this.active.has(device);
  }
  async enqueue(item: InboundItem): Promise<'stored' | 'duplicate'> {
    await Promise.resolve();
    if (!this.active.has(item.recipientDevice)) {
      throw new ImppError('ERR_NOT_FOUND', 'recipient device is not registered');
    }
    this.items.push(item);
    return 'stored';
  }
  notify(): void {}
  devices(): Promise<DevicesAnswer> {
    return Promise.resolve({ deviceList: null, devices: [] });
  }
  bundles(): Promise<readonly BundleAnswer[]> {
    return Promise.resolve([]);
  }
  subscription(): Promise<void> {
    return Promise.resolve();
  }
  decision(): Promise<void> {
    return Promise.resolve();
  }
  presence(): Promise<number> {
    return Promise.resolve(0);
  }
}

interface Running {
  readonly node: FederationNode;
  readonly store: SqliteServiceStore;
  readonly inbound: RecordingInbound;
  readonly routes: Map<string, { host: string; port: number }[]>;
  port: number;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function build(
  d: TestDomain,
  peer: TestDomain,
  extra: Partial<FederationNodeOptions> = {},
): Running {
  const dir = mkdtempSync(join(tmpdir(), 'impp-node-'));
  const store = openSqliteServiceStore({ path: join(dir, 'store.db') });
  const routes = new Map<string, { host: string; port: number }[]>();
  const node = new FederationNode({
    domain: d.domain,
    trust: trustFor(d.domain, [
      { domain: peer.domain, proof: 'key', publicKey: peer.key.publicKey },
    ]),
    store,
    tls: { certPem: d.cert.certPem, keyPem: d.cert.keyPem },
    domainKey: d.key,
    resolve: { overrides: routes },
    retry: { baseMs: 20, maxMs: 100 },
    ...extra,
  });
  const inbound = new RecordingInbound();
  cleanups.push(async () => {
    await node.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { node, store, inbound, routes, port: 0 };
}

async function start(r: Running): Promise<void> {
  r.node.attach(r.inbound);
  r.port = await r.node.listen({ port: 0, host: '127.0.0.1' });
}

function routeTo(from: Running, to: Running, domain: string): void {
  from.routes.set(domain, [{ host: '127.0.0.1', port: to.port }]);
}

function message(recipientDevice: string): { object: Uint8Array; id: Uint8Array } {
  const id = randomBytes(16);
  return { object: sealedMessage(recipientDevice, id), id };
}

describe('FederationNode', () => {
  it('routes a sealed object to the peer domain, stamped with its origin, exactly once', async () => {
    const na = build(a, b);
    const nb = build(b, a);
    await start(na);
    await start(nb);
    routeTo(na, nb, b.domain);
    nb.inbound.active.add('bob@b.example/phone');
    const links: string[] = [];
    na.node.on('link', (l: Link) => links.push(l.peer ?? '?'));
    const m = message('bob@b.example/phone');
    const header = readEnvelopeHeader(m.object);
    const outcome = await na.node.router.route({
      object: m.object,
      header,
      fromDevice: 'alice@a.example/laptop',
    });
    expect(outcome.duplicate).toBe(false);
    await until(() => nb.inbound.items.length === 1);
    const item = nb.inbound.items[0];
    expect(item?.kind).toBe('message');
    expect(item?.arrivedFrom).toBe('a.example');
    expect(toHex(item?.object ?? new Uint8Array())).toBe(toHex(m.object));
    expect(links).toEqual(['b.example']);
    await until(async () => (await na.store.federationQueue.peers()).length === 0);
    // The link is used in both directions: b's reply needs no second connection.
    na.inbound.active.add('alice@a.example/laptop');
    const r = message('alice@a.example/laptop');
    await nb.node.router.route({
      object: r.object,
      header: readEnvelopeHeader(r.object),
      fromDevice: 'bob@b.example/phone',
    });
    await until(() => na.inbound.items.length === 1);
    expect(na.inbound.items[0]?.arrivedFrom).toBe('b.example');
    expect(na.node.endpoint.links).toHaveLength(1);
    expect(nb.node.endpoint.links).toHaveLength(1);
  });

  it('keeps what it accepted while the peer is down and sends it when the peer listens', async () => {
    const na = build(a, b);
    await start(na);
    const retries: string[] = [];
    na.node.on('retry', (peer) => retries.push(peer));
    // Nobody listens there yet: a free port, closed again.
    const nb = build(b, a);
    const m = message('bob@b.example/phone');
    na.routes.set(b.domain, [{ host: '127.0.0.1', port: 1 }]);
    await na.node.router.route({
      object: m.object,
      header: readEnvelopeHeader(m.object),
      fromDevice: 'alice@a.example/laptop',
    });
    await until(() => retries.length > 0);
    expect(await na.store.federationQueue.peers()).toEqual(['b.example']);
    nb.inbound.active.add('bob@b.example/phone');
    await start(nb);
    routeTo(na, nb, b.domain);
    await until(() => nb.inbound.items.length === 1, 5000);
    expect(toHex(nb.inbound.items[0]?.id ?? new Uint8Array())).toBe(toHex(m.id));
  });

  it('bounces an object the peer refuses for good to the sender as a delivery notice', async () => {
    const na = build(a, b);
    const nb = build(b, a);
    await start(na);
    await start(nb);
    routeTo(na, nb, b.domain);
    na.inbound.active.add('alice@a.example/laptop');
    const bounced: OutboundBounce[] = [];
    na.node.on('bounce', (list) => bounced.push(...list));
    const m = message('nobody@b.example/phone');
    await na.node.router.route({
      object: m.object,
      header: readEnvelopeHeader(m.object),
      fromDevice: 'alice@a.example/laptop',
    });
    await until(() => na.inbound.items.length === 1);
    const item = na.inbound.items[0];
    expect(item?.kind).toBe('notice');
    const notice = decodeDeliveryNotice(item?.object ?? new Uint8Array());
    expect(notice).toMatchObject({
      reason: 'refused',
      code: 'ERR_NOT_FOUND',
      domain: 'b.example',
      recipient: 'nobody@b.example/phone',
    });
    await until(() => bounced.length === 1);
  });

  it('re-emits link audit events: a peer proving the wrong key is refused and audited', async () => {
    const na = build(a, b);
    // b's node proves itself with a key a did not pin.
    const nb = build(b, a, { domainKey: generateSigningKeyPair() });
    await start(na);
    await start(nb);
    routeTo(nb, na, a.domain);
    const audits: string[] = [];
    na.node.on('audit', (e) => audits.push(e.type));
    await expect(nb.node.endpoint.connect(a.domain)).rejects.toSatisfy((e: unknown) =>
      isImppError(e),
    );
    await until(() => audits.includes('federation.proof-failed'));
    expect(na.node.endpoint.links).toHaveLength(0);
  });

  it('insists on an attached service before listening, once', async () => {
    const na = build(a, b);
    await expect(na.node.listen({ port: 0, host: '127.0.0.1' })).rejects.toSatisfy((e: unknown) =>
      isImppError(e, 'ERR_INVALID_ARGUMENT'),
    );
    na.node.attach(na.inbound);
    expect(() => {
      na.node.attach(na.inbound);
    }).toThrow(/already attached/);
    await na.node.listen({ port: 0, host: '127.0.0.1' });
    await na.node.close();
    await na.node.close();
  });
});

// ── Two real servers and the client SDK ──────────────────────────────────────────────────────

describe('FederationNode between two real servers', () => {
  it('alice@a.example and bob@b.example talk through the client SDK', async () => {
    const aRoutes = new Map<string, { host: string; port: number }[]>();
    const bRoutes = new Map<string, { host: string; port: number }[]>();
    const da = await startFullDomain(
      a,
      { domain: b.domain, proof: 'x509', caPem: b.ca.certPem },
      aRoutes,
      cleanups,
    );
    const db = await startFullDomain(
      b,
      { domain: a.domain, proof: 'x509', caPem: a.ca.certPem },
      bRoutes,
      cleanups,
    );
    aRoutes.set(b.domain, [{ host: '127.0.0.1', port: db.fedPort }]);
    bRoutes.set(a.domain, [{ host: '127.0.0.1', port: da.fedPort }]);
    const alice = da.client('alice', 'laptop');
    const bob = db.client('bob', 'phone');
    await alice.connect();
    await bob.connect();
    const bobGot = next<ReceivedMessage>(bob, 'message', 10_000);
    await alice.sendMessage('bob@b.example', 'hello across the border');
    const m = await bobGot;
    expect(m.text).toBe('hello across the border');
    expect(m.from).toBe('alice@a.example');
    const aliceGot = next<ReceivedMessage>(alice, 'message', 10_000);
    await bob.sendMessage('alice@a.example', 'hello back');
    expect((await aliceGot).from).toBe('bob@b.example');
    // Presence across the domains: bob asks, alice's home decides, her update reaches him.
    const asked = next<{ watcher: string }>(alice, 'subscription', 10_000);
    expect(await bob.subscribe('alice@a.example')).toBe('pending');
    expect((await asked).watcher).toBe('bob@b.example');
    const approved = next<{ state: string }>(bob, 'subscription', 10_000);
    expect(await alice.approve('bob@b.example')).toBe('approved');
    expect((await approved).state).toBe('approved');
    const seen = next<{ presentity: string; note?: string }>(bob, 'presence', 10_000);
    await alice.publishPresence('open', 'across the border');
    expect(await seen).toMatchObject({
      presentity: 'alice@a.example',
      note: 'across the border',
    });
    // One link, used both ways.
    expect(da.node.endpoint.links.map((l) => l.peer)).toEqual(['b.example']);
  }, 20_000);
});
