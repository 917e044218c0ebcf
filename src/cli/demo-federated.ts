/**
 * The scenario behind `impp demo --federated`: two independent domains in one process, each a
 * real {@link ImppServer} with its own local CA, domain key, SQLite store and
 * {@link FederationNode} on 127.0.0.1, and two real clients: alice@a.example on a.example's
 * server, bob@b.example on b.example's.
 *
 * The domains prove themselves to each other in the two ways the trust configuration offers:
 * a.example accepts b.example by b.example's pinned domain key, b.example accepts a.example by a
 * certificate from a.example's CA. Alice and Bob subscribe to each other's presence across the
 * domains (each presentity's home domain decides), publish, and exchange messages both ways over
 * the one link between the domains. Then both stores and their database files are searched for
 * every text, as in the one-domain demo. Nothing here writes to a stream: demo.ts renders it.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  AuthRegistry,
  Authenticator,
  DEFAULT_EXCHANGE_LIMITS,
  LocalAccounts,
  MemoryAuditSink,
  SqliteLocalAccountRepository,
  localProvider,
  makeAuthPolicy,
  scramServer,
} from '../auth/index.js';
import { ImppClient } from '../client/client.js';
import {
  SecretBytes,
  type SigningKeyPair,
  generateSigningKeyPair,
  randomBytes,
  toBase64Url,
} from '../crypto/index.js';
import { FederationNode } from '../federation/node.js';
import { ensureLocalTls, type LocalTls } from '../service/config/local-ca.js';
import { ImppServer } from '../service/server.js';
import { openSqliteServiceStore, type SqliteServiceStore } from '../service/store/index.js';
import { type DomainTrustConfig, parseDomainTrustConfig } from '../trust/config.js';
import { SerialStateFile } from './chat/state-file.js';
import { type DemoCheck, type DemoStep, Inbox, type Leak, findLeaks } from './demo-scenario.js';

/** The two demo domains (reserved for documentation, RFC 2606 §3). */
export const FEDERATED_DOMAINS = ['a.example', 'b.example'] as const;

/** The fixed texts: what neither server's files may contain. */
export const FEDERATED_TEXT = {
  message: 'Hi Bob, greetings from a.example! Call at three?',
  reply: 'Three works. Regards from b.example.',
  note: 'At the a.example office today',
  bobNote: 'Travelling, reachable by message',
} as const;

const DEMO_PASSWORD = 'federated demo password, not a secret';

/** One domain as the demo reports it. */
export interface FederatedDomainInfo {
  readonly domain: string;
  /** Where clients connect (TLS). */
  readonly listen: string;
  /** Where peer domains connect (server-to-server). */
  readonly federation: string;
  /** How this domain accepts the other one, in words. */
  readonly accepts: string;
}

/** Everything the federated demo did, saw, and found. */
export interface FederatedDemoResult {
  readonly domains: readonly FederatedDomainInfo[];
  readonly steps: readonly DemoStep[];
  readonly checks: readonly DemoCheck[];
  /** Database files of both domains searched for the texts. */
  readonly files: readonly { readonly name: string; readonly size: number }[];
  readonly leaks: readonly Leak[];
  /** Links that opened, as `a.example → b.example` (the initiator first). */
  readonly links: readonly string[];
  /** The texts the recipients read, as they read them. */
  readonly plaintext: { readonly message: string; readonly reply: string };
}

interface Domain {
  readonly domain: string;
  readonly dir: string;
  readonly tls: LocalTls;
  readonly key: SigningKeyPair;
  readonly routes: Map<string, { host: string; port: number }[]>;
  store?: SqliteServiceStore;
  registry?: AuthRegistry;
  server?: ImppServer;
  node?: FederationNode;
  port: number;
  fedPort: number;
}

interface User {
  readonly address: string;
  readonly client: ImppClient;
  readonly messages: Inbox<{ from: string; text: string }>;
  readonly presence: Inbox<{ presentity: string; basic: string | undefined; note: string }>;
  readonly requests: Inbox<{ watcher: string; presentity: string; state: string }>;
}

function trustFor(self: Domain, peer: DomainTrustConfig['federation']['peers'][number]) {
  return parseDomainTrustConfig({
    version: 1,
    domain: self.domain,
    authentication: {
      mechanisms: ['SCRAM-SHA-256-PLUS'],
      providers: [{ type: 'local', id: 'local' }],
    },
    federation: { unlisted: 'deny', peers: [peer] },
  });
}

async function prepare(root: string, domain: string): Promise<Domain> {
  const dir = join(root, domain);
  mkdirSync(dir, { mode: 0o700 });
  // The local CA's certificate names the domain and allows both usages: it serves the clients
  // and is the domain's link certificate.
  const tls = await ensureLocalTls({ dataDir: dir, domain });
  return {
    domain,
    dir,
    tls,
    key: generateSigningKeyPair(),
    routes: new Map(),
    port: 0,
    fedPort: 0,
  };
}

async function start(d: Domain, trust: DomainTrustConfig, user: string): Promise<void> {
  const registry = new AuthRegistry({
    domain: d.domain,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  d.registry = registry;
  registry.registerMechanism(scramServer({ plus: true }));
  const repository = new SqliteLocalAccountRepository(':memory:');
  await registry.registerProvider(localProvider({ repository }));
  new LocalAccounts(repository, d.domain).create(user, DEMO_PASSWORD);
  const authenticator = new Authenticator(
    registry,
    makeAuthPolicy(d.domain, [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }], {
      limits: DEFAULT_EXCHANGE_LIMITS,
    }),
    { audit: new MemoryAuditSink() },
  );
  const store = openSqliteServiceStore({ path: join(d.dir, 'store.db') });
  d.store = store;
  const node = new FederationNode({
    domain: d.domain,
    trust,
    store,
    tls: { certPem: d.tls.certPem, keyPem: d.tls.keyPem },
    domainKey: d.key,
    resolve: { overrides: d.routes },
    retry: { baseMs: 100, maxMs: 1000 },
  });
  d.node = node;
  const server = new ImppServer({
    domain: d.domain,
    tls: { key: d.tls.keyPem, cert: d.tls.certPem },
    store,
    authenticator,
    domainKey: d.key,
    remote: node.router,
  });
  d.server = server;
  node.attach(server.federationInbound);
  d.port = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  d.fedPort = await node.listen({ host: '127.0.0.1', port: 0 });
}

function newUser(d: Domain, name: string, deviceId: string): User {
  const client = new ImppClient({
    host: '127.0.0.1',
    port: d.port,
    ca: d.tls.caCertPem,
    servername: 'localhost',
    address: `${name}@${d.domain}`,
    password: DEMO_PASSWORD,
    deviceId,
    state: new SerialStateFile(join(d.dir, `${name}.state`)),
  });
  const user: User = {
    address: `${name}@${d.domain}`,
    client,
    messages: new Inbox(),
    presence: new Inbox(),
    requests: new Inbox(),
  };
  client.on('message', (m) => {
    user.messages.push({ from: m.from, text: m.text });
  });
  client.on('presence', (p) => {
    user.presence.push({ presentity: p.presentity, basic: p.basic, note: p.note ?? '' });
  });
  client.on('subscription', (s) => {
    user.requests.push(s);
  });
  return user;
}

function databaseFiles(d: Domain): { name: string; bytes: Uint8Array }[] {
  const db = join(d.dir, 'store.db');
  return [db, `${db}-wal`, `${db}-shm`]
    .filter((p) => existsSync(p))
    .map((p) => ({ name: `${d.domain}/${basename(p)}`, bytes: new Uint8Array(readFileSync(p)) }));
}

/**
 * Runs the federated demo: two domains, two users, presence and messages across; everything is
 * closed and the temporary folder removed at the end (also on failure).
 *
 * @example
 * ```ts
 * const result = await runFederatedDemo();
 * if (!result.checks.every((c) => c.passed)) process.exitCode = 1;
 * ```
 */
export async function runFederatedDemo(): Promise<FederatedDemoResult> {
  const root = mkdtempSync(join(tmpdir(), 'impp-demo-'));
  const users: User[] = [];
  const domains: Domain[] = [];
  try {
    const [a, b] = await Promise.all(FEDERATED_DOMAINS.map((name) => prepare(root, name)));
    if (a === undefined || b === undefined) throw new Error('unreachable');
    domains.push(a, b);
    return await play(a, b, users);
  } finally {
    for (const u of users) await u.client.close().catch(() => undefined);
    for (const d of domains) {
      await d.node?.close().catch(() => undefined);
      await d.server?.close().catch(() => undefined);
      await d.store?.close().catch(() => undefined);
      await d.registry?.close().catch(() => undefined);
    }
    rmSync(root, { recursive: true, force: true });
  }
}

async function play(a: Domain, b: Domain, users: User[]): Promise<FederatedDemoResult> {
  const steps: DemoStep[] = [];
  const checks: DemoCheck[] = [];
  const check = (claim: string, passed: boolean): void => {
    checks.push({ claim, passed });
  };

  // 1. Two domains, each accepting the other in its own way.
  await start(
    a,
    trustFor(a, {
      domain: b.domain,
      mode: 'allow',
      proof: { type: 'pinned-key', publicKey: toBase64Url(b.key.publicKey) },
    }),
    'alice',
  );
  await start(
    b,
    trustFor(b, {
      domain: a.domain,
      mode: 'allow',
      proof: { type: 'x509', trustAnchors: { pem: a.tls.caCertPem } },
    }),
    'bob',
  );
  a.routes.set(b.domain, [{ host: '127.0.0.1', port: b.fedPort }]);
  b.routes.set(a.domain, [{ host: '127.0.0.1', port: a.fedPort }]);
  const links: string[] = [];
  for (const d of [a, b]) {
    d.node?.on('link', (link) => {
      if (link.role === 'initiator') links.push(`${d.domain} → ${link.peer ?? '?'}`);
    });
  }
  const info: FederatedDomainInfo[] = [
    {
      domain: a.domain,
      listen: `127.0.0.1:${a.port}`,
      federation: `127.0.0.1:${a.fedPort}`,
      accepts: `${b.domain} by its pinned domain key`,
    },
    {
      domain: b.domain,
      listen: `127.0.0.1:${b.port}`,
      federation: `127.0.0.1:${b.fedPort}`,
      accepts: `${a.domain} by a certificate from ${a.domain}'s CA`,
    },
  ];

  // 2. Each user connects to their own domain's server.
  const alice = newUser(a, 'alice', 'laptop');
  const bob = newUser(b, 'bob', 'phone');
  users.push(alice, bob);
  await alice.client.connect();
  await bob.client.connect();
  steps.push({
    title: 'Alice connects to a.example, Bob to b.example (each to their own server only)',
    alice: [`registered ${alice.client.device}`, `server a.example on ${info[0]?.listen ?? '?'}`],
    bob: [`registered ${bob.client.device}`, `server b.example on ${info[1]?.listen ?? '?'}`],
    others: [],
  });

  // 3. Presence subscriptions across the domains; each presentity's home domain decides.
  const bobAsks = await bob.client.subscribe(alice.address);
  const aliceHeard = await alice.requests.wait((r) => r.watcher === bob.address);
  const aliceDecided =
    aliceHeard === undefined ? 'no request' : await alice.client.approve(bob.address);
  const aliceAsks = await alice.client.subscribe(bob.address);
  const bobHeard = await bob.requests.wait((r) => r.watcher === alice.address);
  const bobDecided =
    bobHeard === undefined ? 'no request' : await bob.client.approve(alice.address);
  steps.push({
    title: 'Subscribe to each other’s presence across the domains; each presentity approves',
    alice: [
      `asked to watch ${bob.address}: ${aliceAsks}`,
      `request from ${aliceHeard?.watcher ?? '(none, timed out)'}: ${aliceDecided}`,
    ],
    bob: [
      `asked to watch ${alice.address}: ${bobAsks}`,
      `request from ${bobHeard?.watcher ?? '(none, timed out)'}: ${bobDecided}`,
    ],
    others: [
      'the requests and decisions crossed the link; each domain keeps its own copy of the record',
      links.length > 0 ? `link opened: ${links.join(', ')}` : 'no link yet',
    ],
  });
  check('Alice approved Bob (a watcher in another domain)', aliceDecided === 'approved');
  check('Bob approved Alice (a watcher in another domain)', bobDecided === 'approved');

  // 4. Presence, published at home, fanned out by the watcher's domain.
  await alice.client.publishPresence('open', FEDERATED_TEXT.note);
  const bobSaw = await bob.presence.wait((p) => p.note === FEDERATED_TEXT.note);
  await bob.client.publishPresence('open', FEDERATED_TEXT.bobNote);
  const aliceSaw = await alice.presence.wait((p) => p.note === FEDERATED_TEXT.bobNote);
  const show = (p: { presentity: string; basic: string | undefined; note: string } | undefined) =>
    p === undefined
      ? 'nothing (timed out)'
      : `${p.presentity} is ${p.basic ?? '?'}: ${JSON.stringify(p.note)}`;
  steps.push({
    title: 'Both publish presence; it crosses the link once and reaches the approved watcher',
    alice: [`published open: ${JSON.stringify(FEDERATED_TEXT.note)}`, `saw ${show(aliceSaw)}`],
    bob: [`published open: ${JSON.stringify(FEDERATED_TEXT.bobNote)}`, `saw ${show(bobSaw)}`],
    others: [],
  });
  check('Bob saw Alice’s presence from a.example', bobSaw?.presentity === alice.address);
  check('Alice saw Bob’s presence from b.example', aliceSaw?.presentity === bob.address);

  // 5. A conversation both ways.
  await alice.client.sendMessage(bob.address, FEDERATED_TEXT.message);
  const bobGot = await bob.messages.wait((m) => m.text === FEDERATED_TEXT.message);
  await bob.client.sendMessage(alice.address, FEDERATED_TEXT.reply);
  const aliceGot = await alice.messages.wait((m) => m.text === FEDERATED_TEXT.reply);
  const said = (m: { from: string; text: string } | undefined): string =>
    m === undefined ? 'no message (timed out)' : `from ${m.from}: ${JSON.stringify(m.text)}`;
  steps.push({
    title: 'A conversation across the domains, both ways',
    alice: [`sent ${JSON.stringify(FEDERATED_TEXT.message)}`, `read ${said(aliceGot)}`],
    bob: [`read ${said(bobGot)}`, `sent ${JSON.stringify(FEDERATED_TEXT.reply)}`],
    others: [
      'each server stamped what arrived with the domain it came from; each client checked that ' +
        'the sealed sender belongs to that domain',
    ],
  });
  check('Bob read Alice’s message, sent by alice@a.example', bobGot?.from === alice.address);
  check('Alice read Bob’s reply, sent by bob@b.example', aliceGot?.from === bob.address);

  // 6. What crossed, and what stayed. A hop ACK removes its queue entry a moment after the
  // recipient had the object, so the queues are given a little time to drain.
  const stillQueued = async (): Promise<string[]> => [
    ...((await a.store?.federationQueue.peers()) ?? []),
    ...((await b.store?.federationQueue.peers()) ?? []),
  ];
  let queued = await stillQueued();
  for (let i = 0; i < 50 && queued.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    queued = await stillQueued();
  }
  const openLinks = (a.node?.endpoint.links ?? []).map((l) => l.peer);
  steps.push({
    title: 'One link between the domains, used in both directions; nothing left queued',
    alice: [],
    bob: [],
    others: [
      `open links at a.example: ${openLinks.join(', ') || 'none'}`,
      `federation queues still holding objects: ${queued.join(', ') || 'none'}`,
    ],
  });
  check('one link between the two domains', openLinks.length === 1 && openLinks[0] === b.domain);
  check('both outbound queues drained (every object acknowledged)', queued.length === 0);

  const files = [...databaseFiles(a), ...databaseFiles(b)];
  const leaks = findLeaks([], files, FEDERATED_TEXT);
  check('neither server stored any of the texts in plaintext', leaks.length === 0);
  return {
    domains: info,
    steps,
    checks,
    files: files.map((f) => ({ name: f.name, size: f.bytes.length })),
    leaks,
    links,
    plaintext: { message: bobGot?.text ?? '', reply: aliceGot?.text ?? '' },
  };
}
