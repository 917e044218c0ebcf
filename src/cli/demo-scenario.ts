/**
 * The scenario behind `impp demo`: in one process, a real {@link ImppServer} on 127.0.0.1 (an
 * ephemeral port, a throwaway local CA and certificate, a SQLite store in a temporary folder,
 * local accounts) and real {@link ImppClient}s connecting over TLS 1.3. Alice and Bob register
 * devices, watch each other's presence, exchange messages (one of them while Bob is offline, so
 * the server has to store it); Carol watches Alice until Alice revokes her.
 *
 * "What the server stored" is read back from the server's own store (queued objects, latest
 * presence, key log size), and the leak check searches both those objects and the database
 * FILES (main file and write-ahead log) for every plaintext the users exchanged. Nothing here
 * writes to a stream: demo.ts renders the result.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import { SecretBytes, generateSigningKeyPair, randomBytes } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import { parseEnvelope, readEnvelopeHeader } from '../seal/header.js';
import { ensureLocalTls } from '../service/config/local-ca.js';
import { ImppServer } from '../service/server.js';
import { openSqliteServiceStore, type SqliteServiceStore } from '../service/store/index.js';
import { formatFingerprint, keyFingerprint } from '../trust/identity.js';
import { SerialStateFile } from './chat/state-file.js';

/** The demo's domain (reserved for testing, RFC 6761 §6.2). */
export const DEMO_DOMAIN = 'example.test';

/** The fixed content of the demo: the strings the server's files must never contain. */
export const DEMO_TEXT = {
  message: 'Hi Bob! Lunch at the usual place at noon?',
  reply: 'Sure, see you there at 12:00.',
  note: 'In the library until 5pm, messages welcome',
  bobNote: 'Working from the riverside cafe',
  noteAfterRevocation: 'Back at my desk, do not disturb',
} as const;

/** How long the demo waits for any one event before it reports a failed claim. */
const EVENT_TIMEOUT_MS = 10_000;
/** After Bob has the post-revocation update, how long Carol gets to (wrongly) receive it. */
const REVOKED_GRACE_MS = 300;
/** Throwaway passwords; the accounts live in memory for the run only. */
const DEMO_PASSWORD = 'demo password, not a secret';

/** A sealed object as the server stored it: a queue row or the latest presence of a user. */
export interface StoredObject {
  /** The table it came from. */
  readonly table: 'queue' | 'presence';
  readonly kind: 'message' | 'keyDistribution' | 'presence';
  /** The recipient device (queue) or the presentity (presence): the routing field. */
  readonly routing: string;
  /** Size of the whole stored object. */
  readonly size: number;
  /** Size of its ciphertext field. */
  readonly ciphertextSize: number;
  /** The stored bytes, exactly as the server keeps them. */
  readonly bytes: Uint8Array;
  /**
   * The sender's address when the object is sealed-sender (messages, presence keys): the server
   * must not be able to see it. Absent for presence updates, whose presentity is public routing.
   */
  readonly sealedSender?: string;
}

/** What the server had in its store at one moment. */
export interface StoreSnapshot {
  /** When it was taken, in words. */
  readonly moment: string;
  readonly objects: readonly StoredObject[];
  /** Entries in the domain key log (one enrolment statement per registered device). */
  readonly keyLogSize: number;
  /** Registered devices. */
  readonly devices: number;
  /** Subscriptions, as `watcher → presentity: state`. */
  readonly subscriptions: readonly string[];
}

/** One step: what each user saw, side by side, and lines about the others. */
export interface DemoStep {
  readonly title: string;
  readonly alice: readonly string[];
  readonly bob: readonly string[];
  /** Carol, the server, or anything else worth a line. */
  readonly others: readonly string[];
}

/** A claim the demo makes and has checked. */
export interface DemoCheck {
  readonly claim: string;
  readonly passed: boolean;
}

/** A plaintext (or a sealed sender's address) found where the server keeps bytes. */
export interface Leak {
  /** `stored object N` or a database file name. */
  readonly where: string;
  /** Which secret leaked, by name: never the secret itself. */
  readonly what: string;
}

/** Everything the demo did, saw, and found on the server. */
export interface DemoResult {
  readonly server: { readonly domain: string; readonly listen: string; readonly ca: string };
  readonly users: readonly { readonly device: string; readonly fingerprint: string }[];
  readonly steps: readonly DemoStep[];
  /** The store while Bob was offline (his queue holds Alice's message), and at the end. */
  readonly stored: readonly StoreSnapshot[];
  /** The database files searched by the leak check, with their sizes. */
  readonly files: readonly { readonly name: string; readonly size: number }[];
  readonly safetyNumber: { readonly alice: string; readonly bob: string; readonly match: boolean };
  readonly checks: readonly DemoCheck[];
  readonly leaks: readonly Leak[];
  /** The plaintexts the recipients read, as they read them. */
  readonly plaintext: {
    readonly message: string;
    readonly reply: string;
    readonly notes: readonly string[];
  };
}

/** Searches `haystack` for `text` in UTF-8 and UTF-16LE. */
function contains(haystack: Buffer, text: string): boolean {
  return (
    haystack.includes(Buffer.from(text, 'utf8')) || haystack.includes(Buffer.from(text, 'utf16le'))
  );
}

/**
 * Every secret of `secrets` found in a stored object's bytes (and its sealed sender's address),
 * then in each file. Reports names, never the secrets.
 *
 * @example
 * ```ts
 * findLeaks(snapshot.objects, [{ name: 'service.db', bytes }]); // [] when nothing leaked
 * ```
 */
export function findLeaks(
  objects: readonly StoredObject[],
  files: readonly { readonly name: string; readonly bytes: Uint8Array }[] = [],
  secrets: Readonly<Record<string, string>> = DEMO_TEXT,
): Leak[] {
  const leaks: Leak[] = [];
  objects.forEach((o, i) => {
    const haystack = Buffer.from(o.bytes);
    const needles = Object.entries(secrets);
    if (o.sealedSender !== undefined) needles.push(['sender address', o.sealedSender]);
    for (const [what, text] of needles) {
      if (contains(haystack, text)) leaks.push({ where: `stored object ${i + 1}`, what });
    }
  });
  for (const f of files) {
    const haystack = Buffer.from(f.bytes);
    for (const [what, text] of Object.entries(secrets)) {
      if (contains(haystack, text)) leaks.push({ where: f.name, what });
    }
  }
  return leaks;
}

/** Records a client's events and waits, bounded, for one that matches. */
export class Inbox<T> {
  readonly seen: T[] = [];
  #waiters: { test: (v: T) => boolean; done: (v: T | undefined) => void }[] = [];

  push(value: T): void {
    this.seen.push(value);
    for (const w of [...this.#waiters]) {
      if (w.test(value)) {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        w.done(value);
      }
    }
  }

  /** The first matching event, seen or coming; `undefined` after `ms`. */
  wait(test: (v: T) => boolean, ms = EVENT_TIMEOUT_MS): Promise<T | undefined> {
    const found = this.seen.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x.done !== done);
        resolve(undefined);
      }, ms);
      const done = (v: T | undefined): void => {
        clearTimeout(timer);
        resolve(v);
      };
      this.#waiters.push({ test, done });
    });
  }
}

interface Presence {
  readonly presentity: string;
  readonly basic: string | undefined;
  readonly note: string | undefined;
}

/** A demo user: its client (replaced on reconnect) and what it has seen so far. */
interface DemoUser {
  readonly name: string;
  readonly address: string;
  client: ImppClient;
  readonly messages: Inbox<{ from: string; text: string }>;
  readonly presence: Inbox<Presence>;
  readonly requests: Inbox<{ watcher: string; presentity: string; state: string }>;
}

interface DemoServer {
  readonly server: ImppServer;
  readonly store: SqliteServiceStore;
  readonly registry: AuthRegistry;
  readonly port: number;
  readonly ca: string;
  readonly caFingerprint: string;
  readonly dbPath: string;
}

async function startServer(dir: string, users: readonly string[]): Promise<DemoServer> {
  const tls = await ensureLocalTls({ dataDir: dir, domain: DEMO_DOMAIN });
  const registry = new AuthRegistry({
    domain: DEMO_DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(scramServer({ plus: true }));
  const repository = new SqliteLocalAccountRepository(':memory:');
  // SCRAM's minimum iteration count (RFC 7677 §4): throwaway accounts need no more.
  await registry.registerProvider(localProvider({ repository }));
  const accounts = new LocalAccounts(repository, DEMO_DOMAIN);
  for (const u of users) accounts.create(u, DEMO_PASSWORD);
  const policy = makeAuthPolicy(
    DEMO_DOMAIN,
    [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }],
    { limits: DEFAULT_EXCHANGE_LIMITS },
  );
  const authenticator = new Authenticator(registry, policy, { audit: new MemoryAuditSink() });
  const dbPath = join(dir, 'service.db');
  const store = openSqliteServiceStore({ path: dbPath });
  const server = new ImppServer({
    domain: DEMO_DOMAIN,
    tls: { key: tls.keyPem, cert: tls.certPem },
    store,
    authenticator,
    domainKey: generateSigningKeyPair(),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    store,
    registry,
    port,
    ca: tls.caCertPem,
    caFingerprint: tls.caFingerprint,
    dbPath,
  };
}

function newClient(srv: DemoServer, dir: string, name: string, deviceId: string): ImppClient {
  return new ImppClient({
    host: '127.0.0.1',
    port: srv.port,
    ca: srv.ca,
    servername: 'localhost',
    address: `${name}@${DEMO_DOMAIN}`,
    password: DEMO_PASSWORD,
    deviceId,
    state: new SerialStateFile(join(dir, `${name}.state`)),
  });
}

function attach(user: DemoUser, client: ImppClient): void {
  user.client = client;
  client.on('message', (m) => {
    user.messages.push({ from: m.from, text: m.text });
  });
  client.on('presence', (p) => {
    user.presence.push({ presentity: p.presentity, basic: p.basic, note: p.note });
  });
  client.on('subscription', (s) => {
    user.requests.push(s);
  });
}

function newUser(srv: DemoServer, dir: string, name: string, deviceId: string): DemoUser {
  const user: DemoUser = {
    name,
    address: `${name}@${DEMO_DOMAIN}`,
    client: newClient(srv, dir, name, deviceId),
    messages: new Inbox(),
    presence: new Inbox(),
    requests: new Inbox(),
  };
  attach(user, user.client);
  return user;
}

function shortFingerprint(key: Uint8Array): string {
  return formatFingerprint(keyFingerprint(key)).split(' ').slice(0, 4).join(' ') + ' …';
}

function storedObject(
  table: StoredObject['table'],
  bytes: Uint8Array,
  sealedSender: string | undefined,
): StoredObject {
  const header = readEnvelopeHeader(bytes);
  return {
    table,
    kind: header.kind,
    routing: header.kind === 'presence' ? header.presentity : header.recipientDevice,
    size: bytes.length,
    ciphertextSize: parseEnvelope(bytes).ciphertext.length,
    bytes: Uint8Array.from(bytes),
    ...(sealedSender === undefined ? {} : { sealedSender }),
  };
}

/**
 * Reads what the server keeps: each device's queue, each user's latest presence, the key log.
 * `senders` names who sent what is queued for a device (known to the demo, hidden from the
 * server), so that the leak check can look for the sender's address in those bytes.
 */
async function snapshot(
  srv: DemoServer,
  moment: string,
  users: readonly DemoUser[],
  senders: ReadonlyMap<string, string>,
): Promise<StoreSnapshot> {
  const objects: StoredObject[] = [];
  let devices = 0;
  const subscriptions: string[] = [];
  for (const u of users) {
    for (const d of await srv.store.devices.list(u.address)) {
      devices += 1;
      const device = `${u.address}/${d.deviceId}`;
      for (const p of await srv.store.queue.pending(device)) {
        objects.push(storedObject('queue', p.bytes, senders.get(device)));
      }
    }
    const latest = await srv.store.presence.latest(u.address);
    if (latest !== undefined) objects.push(storedObject('presence', latest.bytes, undefined));
    for (const s of await srv.store.subscriptions.listForPresentity(u.address)) {
      subscriptions.push(`${s.watcher} → ${s.presentity}: ${s.state}`);
    }
  }
  return { moment, objects, keyLogSize: srv.server.keyLog.size, devices, subscriptions };
}

/** The SQLite files of the store as they are on disk now (main file, WAL, shared memory). */
function databaseFiles(dbPath: string): { name: string; bytes: Uint8Array }[] {
  return [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]
    .filter((p) => existsSync(p))
    .map((p) => ({ name: basename(p), bytes: new Uint8Array(readFileSync(p)) }));
}

function describePresence(p: Presence | undefined): string {
  if (p === undefined) return 'nothing (timed out)';
  return `${p.presentity} is ${p.basic ?? '?'}: ${JSON.stringify(p.note ?? '')}`;
}

/**
 * Runs the whole demo: starts the server, plays the scenario, reads the store, checks for
 * leaks, shuts everything down and removes the temporary folder (also on failure).
 *
 * @example
 * ```ts
 * const result = await runDemoScenario();
 * if (result.leaks.length > 0) process.exitCode = 1;
 * ```
 */
export async function runDemoScenario(): Promise<DemoResult> {
  const dir = mkdtempSync(join(tmpdir(), 'impp-demo-'));
  let srv: DemoServer | undefined;
  const users: DemoUser[] = [];
  try {
    srv = await startServer(dir, ['alice', 'bob', 'carol']);
    return await play(srv, dir, users);
  } finally {
    for (const u of users) await u.client.close().catch(() => undefined);
    if (srv !== undefined) {
      await srv.server.close().catch(() => undefined);
      await srv.store.close().catch(() => undefined);
      await srv.registry.close().catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

async function play(srv: DemoServer, dir: string, users: DemoUser[]): Promise<DemoResult> {
  const steps: DemoStep[] = [];
  const checks: DemoCheck[] = [];
  const check = (claim: string, passed: boolean): void => {
    checks.push({ claim, passed });
  };
  const alice = newUser(srv, dir, 'alice', 'laptop');
  const bob = newUser(srv, dir, 'bob', 'phone');
  const carol = newUser(srv, dir, 'carol', 'tablet');
  users.push(alice, bob, carol);

  // 1. Devices connect over TLS 1.3 and register (identity key, prekeys, device list).
  for (const u of users) await u.client.connect();
  steps.push({
    title: 'Connect over TLS 1.3, authenticate (SCRAM-SHA-256-PLUS), register the device',
    alice: [
      `registered ${alice.client.device}`,
      `key ${shortFingerprint(alice.client.identityKey)}`,
    ],
    bob: [`registered ${bob.client.device}`, `key ${shortFingerprint(bob.client.identityKey)}`],
    others: [`carol registered ${carol.client.device}`],
  });

  // 2. Subscriptions, decided by the presentity.
  const bobAsks = await bob.client.subscribe(alice.address);
  const aliceHeard = await alice.requests.wait((r) => r.watcher === bob.address);
  const aliceAsks = await alice.client.subscribe(bob.address);
  const bobHeard = await bob.requests.wait((r) => r.watcher === alice.address);
  const aliceDecided = await alice.client.approve(bob.address);
  const bobDecided = await bob.client.approve(alice.address);
  await carol.client.subscribe(alice.address);
  await alice.requests.wait((r) => r.watcher === carol.address);
  const carolDecided = await alice.client.approve(carol.address);
  steps.push({
    title: 'Subscribe to each other’s presence; each presentity approves',
    alice: [
      `asked to watch bob: ${aliceAsks}`,
      `request from ${aliceHeard?.watcher ?? '(none)'}: approved it (${aliceDecided})`,
      `request from carol: approved it (${carolDecided})`,
    ],
    bob: [
      `asked to watch alice: ${bobAsks}`,
      `request from ${bobHeard?.watcher ?? '(none)'}: approved it (${bobDecided})`,
    ],
    others: ['the server stores each decision; the presence keys travel sealed, device to device'],
  });
  check(
    'subscriptions were approved by the presentities',
    aliceDecided === 'approved' && bobDecided === 'approved' && carolDecided === 'approved',
  );

  // 3. Bob goes offline; Alice publishes presence and sends him a message: the server stores it.
  await bob.client.close();
  await alice.client.publishPresence('open', DEMO_TEXT.note);
  const carolFirst = await carol.presence.wait((p) => p.note === DEMO_TEXT.note);
  const ids = await alice.client.sendMessage(bob.address, DEMO_TEXT.message);
  const senders = new Map([[`${bob.address}/phone`, alice.address]]);
  const offline = await snapshot(
    srv,
    'while Bob is offline: his queue holds what Alice sent',
    users,
    senders,
  );
  const filesOffline = databaseFiles(srv.dbPath);
  steps.push({
    title: 'Bob is offline; Alice publishes presence and sends him a message',
    alice: [
      `published open: ${JSON.stringify(DEMO_TEXT.note)}`,
      `sent ${JSON.stringify(DEMO_TEXT.message)} (id ${ids[0]?.slice(0, 12) ?? '?'}…)`,
    ],
    bob: ['(offline)'],
    others: [`carol saw ${describePresence(carolFirst)}`],
  });
  check(
    'the server stored Alice’s message for offline Bob, sealed',
    offline.objects.some((o) => o.table === 'queue' && o.kind === 'message'),
  );

  // 4. Bob reconnects: store-and-forward delivers the message and the latest presence.
  attach(bob, newClient(srv, dir, 'bob', 'phone'));
  await bob.client.connect();
  const bobGot = await bob.messages.wait((m) => m.text === DEMO_TEXT.message);
  const bobSaw = await bob.presence.wait((p) => p.note === DEMO_TEXT.note);
  steps.push({
    title: 'Bob comes back online: the server delivers what it stored',
    alice: [],
    bob: [
      bobGot === undefined
        ? 'no message (timed out)'
        : `message from ${bobGot.from}: ${JSON.stringify(bobGot.text)}`,
      `presence: ${describePresence(bobSaw)}`,
    ],
    others: ['the queue entries are deleted when Bob’s device acknowledges them'],
  });
  check('Bob read Alice’s message after reconnecting', bobGot?.from === alice.address);
  check('Bob saw Alice’s presence note', bobSaw !== undefined);

  // 5. Bob replies and publishes his own presence.
  await bob.client.sendMessage(alice.address, DEMO_TEXT.reply);
  await bob.client.publishPresence('open', DEMO_TEXT.bobNote);
  const aliceGot = await alice.messages.wait((m) => m.text === DEMO_TEXT.reply);
  const aliceSaw = await alice.presence.wait((p) => p.note === DEMO_TEXT.bobNote);
  steps.push({
    title: 'Bob replies and publishes his presence',
    alice: [
      aliceGot === undefined
        ? 'no reply (timed out)'
        : `message from ${aliceGot.from}: ${JSON.stringify(aliceGot.text)}`,
      `presence: ${describePresence(aliceSaw)}`,
    ],
    bob: [
      `sent ${JSON.stringify(DEMO_TEXT.reply)}`,
      `published open: ${JSON.stringify(DEMO_TEXT.bobNote)}`,
    ],
    others: [],
  });
  check('Alice read Bob’s reply', aliceGot?.from === bob.address);
  check('Alice saw Bob’s presence note', aliceSaw !== undefined);

  // 6. Alice revokes Carol: the next update reaches Bob, never Carol.
  const revoked = await alice.client.revoke(carol.address);
  await alice.client.publishPresence('closed', DEMO_TEXT.noteAfterRevocation);
  const bobAfter = await bob.presence.wait((p) => p.note === DEMO_TEXT.noteAfterRevocation);
  const carolAfter = await carol.presence.wait(
    (p) => p.note === DEMO_TEXT.noteAfterRevocation,
    REVOKED_GRACE_MS,
  );
  steps.push({
    title: 'Alice revokes Carol, then publishes again',
    alice: [
      `revoked carol (${revoked})`,
      `published closed: ${JSON.stringify(DEMO_TEXT.noteAfterRevocation)}`,
    ],
    bob: [`presence: ${describePresence(bobAfter)}`],
    others: [
      carolAfter === undefined
        ? 'carol received nothing: the server stopped at once and the key rotated'
        : 'carol received the update',
    ],
  });
  check('Bob, still approved, saw the update after the revocation', bobAfter !== undefined);
  check('Carol, revoked, did not get the update after the revocation', carolAfter === undefined);
  check('Carol saw the update from before the revocation', carolFirst !== undefined);

  // 7. Safety numbers, computed by each side from the directory's keys.
  const aliceNumber = await alice.client.safetyNumber(bob.address);
  const bobNumber = await bob.client.safetyNumber(alice.address);
  check('Alice and Bob compute the same safety number', aliceNumber === bobNumber);

  const final = await snapshot(srv, 'at the end', users, senders);
  check(
    'the key log holds an enrolment for every registered device',
    final.keyLogSize >= final.devices && final.devices === 3,
  );
  const filesEnd = databaseFiles(srv.dbPath);
  const objects = [...offline.objects, ...final.objects];
  const leaks = findLeaks(objects, [
    ...filesOffline.map((f) => ({ ...f, name: `${f.name} (while Bob was offline)` })),
    ...filesEnd,
  ]);
  const files = filesEnd.map((f) => ({ name: f.name, size: f.bytes.length }));
  if (files.length === 0) throw new ImppError('ERR_STORAGE', 'the demo store has no files');

  return {
    server: {
      domain: DEMO_DOMAIN,
      listen: `127.0.0.1:${srv.port}`,
      ca: `throwaway local CA, sha256 ${srv.caFingerprint.slice(0, 23)}…`,
    },
    users: [alice, bob, carol].map((u) => ({
      device: u.client.device,
      fingerprint: shortFingerprint(u.client.identityKey),
    })),
    steps,
    stored: [offline, final],
    files,
    safetyNumber: { alice: aliceNumber, bob: bobNumber, match: aliceNumber === bobNumber },
    checks,
    leaks,
    plaintext: {
      message: bobGot?.text ?? '',
      reply: aliceGot?.text ?? '',
      notes: [bobSaw?.note ?? '', aliceSaw?.note ?? '', bobAfter?.note ?? ''],
    },
  };
}
