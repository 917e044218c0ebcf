/**
 * The malicious-server harness (issue 6, "Attackers"): the suite plays a compromised server
 * towards the real client SDK of this build (src/client/client.ts).
 *
 * The server is a real {@link ImppServer} on loopback (TLS from its own throwaway CA, a SQLite
 * store in a temporary folder, local SCRAM accounts); what makes it malicious is an operator who
 * holds the domain key and writes its store directly, which is exactly what a compromised server
 * can do: substitute keys and prekey bundles, add ghost devices and watchers, serve old device
 * lists, re-queue, drop or reorder sealed objects, push old presence, write bytes that are not
 * what any client sent. The harness never holds a user's device keys: whatever it forges, it
 * forges with keys of its own, so an attack that works shows that the SDK trusted the server.
 *
 * Threats that use it need the `local-server` capability, which every run offers: they test the
 * SDK shipped with this build, not the remote deployment.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
} from '../../auth/index.js';
import type { ImppClientOptions } from '../../client/client.js';
import {
  SecretBytes,
  generateSigningKeyPair,
  randomBytes,
  toHex,
  type SigningKeyPair,
} from '../../crypto/index.js';
import { ImppError } from '../../errors.js';
import { readEnvelopeHeader } from '../../seal/header.js';
import { SealDevice } from '../../seal/session.js';
import { ensureLocalTls } from '../../service/config/local-ca.js';
import { ImppServer } from '../../service/server.js';
import {
  openSqliteServiceStore,
  type QueuedKind,
  type ServiceStore,
  type SqliteServiceStore,
} from '../../service/store/index.js';
import { parseAddress } from '../../trust/address.js';
import { enrolmentLogEntry, issueEnrolmentStatement } from '../../trust/enrolment.js';
import type { KeyLog } from '../../trust/keylog/log.js';
import type { SignedTreeHead } from '../../trust/keylog/tree-head.js';
import type { TestAccount } from '../types.js';

/** The domain the harness serves (reserved for testing, RFC 6761 §6.2). */
export const HARNESS_DOMAIN = 'compromised.test';
/** The accounts every harness has. */
export const HARNESS_USERS = ['alice', 'bob', 'carol'] as const;

const KIND_CODE: Readonly<Record<QueuedKind, number>> = {
  message: 1,
  presence: 2,
  keyDistribution: 3,
  notice: 4,
};

/** An object a client handed to the server for one recipient device, as the server stored it. */
export interface CapturedObject {
  /** `user@domain/deviceId` of the recipient. */
  readonly device: string;
  readonly id: Uint8Array;
  readonly kind: QueuedKind;
  readonly bytes: Uint8Array;
}

/** A presence update a presentity published, as the server stored it. */
export interface CapturedPresence {
  readonly presentity: string;
  readonly version: number;
  readonly bytes: Uint8Array;
}

/** Options of {@link MaliciousServer.start}. */
export interface MaliciousServerOptions {
  /** The domain key; pass another harness's to run a second server of the same domain (a fork). */
  readonly domainKey?: SigningKeyPair;
}

/** The store as the server sees it, with every enqueued object and published update recorded. */
function recording(
  store: SqliteServiceStore,
  objects: CapturedObject[],
  presence: CapturedPresence[],
): ServiceStore {
  const queue = store.queue;
  const updates = store.presence;
  return new Proxy(store, {
    get(target, property) {
      if (property === 'queue') {
        return new Proxy(queue, {
          get(q, p) {
            if (p === 'enqueue') {
              return async (o: Parameters<typeof queue.enqueue>[0]) => {
                const outcome = await queue.enqueue(o);
                if (outcome.status === 'stored') {
                  objects.push({
                    device: o.recipientDevice,
                    id: Uint8Array.from(o.id),
                    kind: o.kind,
                    bytes: Uint8Array.from(o.bytes),
                  });
                }
                return outcome;
              };
            }
            const value: unknown = Reflect.get(q, p, q);
            return typeof value === 'function' ? (value as () => unknown).bind(q) : value;
          },
        });
      }
      if (property === 'presence') {
        return new Proxy(updates, {
          get(r, p) {
            if (p === 'put') {
              return async (u: Parameters<typeof updates.put>[0]) => {
                const stored = await updates.put(u);
                if (stored) {
                  presence.push({
                    presentity: u.presentity,
                    version: u.version,
                    bytes: Uint8Array.from(u.bytes),
                  });
                }
                return stored;
              };
            }
            const value: unknown = Reflect.get(r, p, r);
            return typeof value === 'function' ? (value as () => unknown).bind(r) : value;
          },
        });
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}

/**
 * A compromised server for one domain, with the operator's tools.
 *
 * @example
 * ```ts
 * const evil = await MaliciousServer.start();
 * ctx.defer(() => evil.close());
 * const bob = ctx.client(evil.account('bob'), evil.clientOptions('bob', 'phone'));
 * await bob.connect();
 * await evil.addGhostDevice('bob@compromised.test', 'ghost');
 * ```
 */
export class MaliciousServer {
  readonly domain = HARNESS_DOMAIN;
  readonly host = '127.0.0.1';
  readonly servername = 'localhost';
  readonly port: number;
  /** The throwaway CA (PEM) that the clients trust. */
  readonly ca: string;
  readonly server: ImppServer;
  readonly store: SqliteServiceStore;
  /** Every object the server stored for delivery, in order (what the operator can read). */
  readonly captured: CapturedObject[];
  /** Every presence update the server stored, in order. */
  readonly published: CapturedPresence[];
  readonly #domainKey: SigningKeyPair;
  readonly #clock: { skewMs: number };
  readonly #password: string;
  readonly #registry: AuthRegistry;
  readonly #dir: string;
  readonly #realLog: KeyLog;

  private constructor(fields: {
    port: number;
    ca: string;
    server: ImppServer;
    store: SqliteServiceStore;
    captured: CapturedObject[];
    published: CapturedPresence[];
    domainKey: SigningKeyPair;
    clock: { skewMs: number };
    password: string;
    registry: AuthRegistry;
    dir: string;
  }) {
    this.port = fields.port;
    this.ca = fields.ca;
    this.server = fields.server;
    this.store = fields.store;
    this.captured = fields.captured;
    this.published = fields.published;
    this.#domainKey = fields.domainKey;
    this.#clock = fields.clock;
    this.#password = fields.password;
    this.#registry = fields.registry;
    this.#dir = fields.dir;
    this.#realLog = fields.server.keyLog;
  }

  /** Starts a server on 127.0.0.1 with accounts alice, bob and carol. */
  static async start(options: MaliciousServerOptions = {}): Promise<MaliciousServer> {
    const dir = mkdtempSync(join(tmpdir(), 'impp-malicious-'));
    try {
      const tls = await ensureLocalTls({ dataDir: dir, domain: HARNESS_DOMAIN });
      const registry = new AuthRegistry({
        domain: HARNESS_DOMAIN,
        serverSecret: new SecretBytes(randomBytes(32)),
      });
      registry.registerMechanism(scramServer({ plus: true }));
      const repository = new SqliteLocalAccountRepository(':memory:');
      await registry.registerProvider(localProvider({ repository }));
      // A fresh password per harness: nothing here is a real account.
      const password = `pw-${toHex(randomBytes(12))}`;
      const accounts = new LocalAccounts(repository, HARNESS_DOMAIN);
      for (const u of HARNESS_USERS) accounts.create(u, password);
      const policy = makeAuthPolicy(
        HARNESS_DOMAIN,
        [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }],
        { limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 } },
      );
      const authenticator = new Authenticator(registry, policy, { audit: new MemoryAuditSink() });
      const store = openSqliteServiceStore({ path: join(dir, 'service.db') });
      const captured: CapturedObject[] = [];
      const published: CapturedPresence[] = [];
      const domainKey = options.domainKey ?? generateSigningKeyPair();
      const clock = { skewMs: 0 };
      const server = new ImppServer({
        domain: HARNESS_DOMAIN,
        tls: { key: tls.keyPem, cert: tls.certPem },
        store: recording(store, captured, published),
        authenticator,
        domainKey,
        now: () => Date.now() + clock.skewMs,
      });
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      return new MaliciousServer({
        port,
        ca: tls.caCertPem,
        server,
        store,
        captured,
        published,
        domainKey,
        clock,
        password,
        registry,
        dir,
      });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * A second server of the same domain, signing with the same domain key but keeping its own
   * store and key log: what a server that shows some users one log and others another runs.
   */
  startFork(): Promise<MaliciousServer> {
    return MaliciousServer.start({ domainKey: this.#domainKey });
  }

  /**
   * How far the server's clock is off, in ms (what it stamps on tree heads and statements from
   * now on); 0 unless a threat moves it.
   */
  get clockSkewMs(): number {
    return this.#clock.skewMs;
  }

  set clockSkewMs(ms: number) {
    this.#clock.skewMs = ms;
  }

  /** The domain's public key (what clients pin to verify enrolments and tree heads). */
  get domainKey(): Uint8Array {
    return Uint8Array.from(this.#domainKey.publicKey);
  }

  /** `user@compromised.test`. */
  address(user: string): string {
    return `${user}@${HARNESS_DOMAIN}`;
  }

  /** The test account of `user` on this server. */
  account(user: string): TestAccount {
    return { address: this.address(user), password: this.#password };
  }

  /** Client options that reach this server (for `ctx.client(account, options)`). */
  clientOptions(user: string, deviceId?: string): Partial<ImppClientOptions> {
    return {
      host: this.host,
      port: this.port,
      ca: this.ca,
      servername: this.servername,
      address: this.address(user),
      password: this.#password,
      domainKey: this.domainKey,
      ...(deviceId === undefined ? {} : { deviceId }),
    };
  }

  /** Captured objects for `device` (of `kind`, when given), in the order they were stored. */
  capturedFor(device: string, kind?: QueuedKind): CapturedObject[] {
    return this.captured.filter(
      (o) => o.device === device && (kind === undefined || o.kind === kind),
    );
  }

  // ── The queue ──────────────────────────────────────────────────────────────────────────────

  /**
   * Queues `bytes` for `device` as they are, without the store's envelope checks (a compromised
   * server writes what it likes), and pushes them if the device is online. The id is the
   * envelope's when it has one, else random; returned, so that the object can be dropped again.
   * `arrivedFrom` stamps it as if a peer domain had delivered it (DELIVER `from`, T45).
   */
  async inject(
    device: string,
    bytes: Uint8Array,
    arrivedFrom: string | null = null,
  ): Promise<Uint8Array> {
    let id: Uint8Array = randomBytes(16);
    let kind = KIND_CODE.message;
    try {
      const h = readEnvelopeHeader(bytes);
      kind = KIND_CODE[h.kind];
      if (h.kind !== 'presence') id = h.messageId;
    } catch {
      // Not a sealed object at all: queued as a message under a random id.
    }
    this.store.db
      .prepare(
        'INSERT INTO queue (device, id, kind, received_at, size, bytes, arrived_from) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        device,
        Buffer.from(id),
        kind,
        Date.now(),
        bytes.length,
        Buffer.from(bytes),
        arrivedFrom,
      );
    await this.server.online(device)?.flush();
    return id;
  }

  /** Objects waiting for `device`, in delivery order. */
  async pending(device: string): Promise<CapturedObject[]> {
    const rows = await this.store.queue.pending(device);
    return rows.map((r) => ({ device, id: r.id, kind: r.kind, bytes: r.bytes }));
  }

  /** Deletes one waiting object of `device` (a silent drop). */
  drop(device: string, id: Uint8Array): boolean {
    const r = this.store.db
      .prepare('DELETE FROM queue WHERE device = ? AND id = ?')
      .run(device, Buffer.from(id));
    return r.changes === 1;
  }

  /** Re-queues everything waiting for `device` in `order` (indices into the waiting list). */
  async reorder(device: string, order: readonly number[]): Promise<void> {
    const waiting = await this.pending(device);
    if ([...order].sort((a, b) => a - b).join() !== waiting.map((_, i) => i).join()) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'order must be a permutation of the queue');
    }
    this.store.db.prepare('DELETE FROM queue WHERE device = ?').run(device);
    for (const i of order) await this.inject(device, (waiting[i] as CapturedObject).bytes);
  }

  // ── Presence and subscriptions ─────────────────────────────────────────────────────────────

  /** Pushes a presence object to `device` if it is online; `false` when it is not. */
  pushPresence(device: string, bytes: Uint8Array): boolean {
    const peer = this.server.online(device);
    peer?.pushPresence(bytes);
    return peer !== undefined;
  }

  /** Marks `watcher` approved for `presentity` in the store, without the presentity's decision. */
  approveWatcher(presentity: string, watcher: string): void {
    const now = Date.now();
    this.store.db
      .prepare(
        `INSERT INTO subscriptions (presentity, watcher, state, created_at, updated_at)
         VALUES (?, ?, 'approved', ?, ?)
         ON CONFLICT (presentity, watcher) DO UPDATE SET state = 'approved', updated_at = ?`,
      )
      .run(presentity, watcher, now, now, now);
  }

  // ── Directory, prekeys, device lists, key log ──────────────────────────────────────────────

  /** The stored device list of `address`. */
  async deviceList(address: string): Promise<{ counter: number; bytes: Uint8Array }> {
    const l = await this.store.deviceLists.latest(address);
    if (l === undefined) throw new ImppError('ERR_NOT_FOUND', 'no device list');
    return { counter: l.counter, bytes: Uint8Array.from(l.bytes) };
  }

  /** Serves `list` as `address`'s device list from now on (an older one, or a forged one). */
  serveDeviceList(address: string, list: { counter: number; bytes: Uint8Array }): void {
    this.store.db
      .prepare('UPDATE device_lists SET counter = ?, bytes = ? WHERE address = ?')
      .run(list.counter, Buffer.from(list.bytes), address);
  }

  /**
   * Replaces, in the directory and the prekey store, the keys of `device` with those of
   * `impostor` (a device the operator made): identity key, signed prekey, one-time prekeys.
   */
  async substituteKeys(device: string, impostor: SealDevice): Promise<void> {
    const pub = impostor.publicPrekeys();
    this.store.db
      .prepare('UPDATE devices SET identity_key = ? WHERE device = ?')
      .run(Buffer.from(pub.identityKey), device);
    await this.store.prekeys.putSignedPrekey(device, {
      keyId: pub.signedPrekey.id,
      publicKey: pub.signedPrekey.publicKey,
      signature: pub.signedPrekey.signature,
      uploadedAt: Date.now(),
    });
    this.withholdPrekeys(device);
    await this.store.prekeys.addOneTimePrekeys(
      device,
      pub.oneTimePrekeys.slice(0, 20).map((k) => ({ keyId: k.id, publicKey: k.publicKey })),
    );
  }

  /** Deletes the signed prekey of `device`: the server claims the device has no keys. */
  withholdBundle(device: string): void {
    this.store.db.prepare('DELETE FROM signed_prekeys WHERE device = ?').run(device);
  }

  /** Deletes every one-time prekey of `device` (the server withholds them). */
  withholdPrekeys(device: string): number {
    return this.store.db.prepare('DELETE FROM one_time_prekeys WHERE device = ?').run(device)
      .changes;
  }

  /** Replaces the enrolment statement the directory shows for `device`. */
  setEnrolment(device: string, statement: Uint8Array): void {
    this.store.db
      .prepare('UPDATE devices SET enrolment = ? WHERE device = ?')
      .run(Buffer.from(statement), device);
  }

  /**
   * Registers a device the operator made for `address` (in the directory, with a domain-signed
   * enrolment statement in the key log and prekeys), without any device of the user signing it
   * onto the user's device list. Returns the ghost's keys: the operator can open what is sealed
   * for it.
   */
  async addGhostDevice(address: string, deviceId: string): Promise<SealDevice> {
    const ghost = SealDevice.create(`${address}/${deviceId}`, { oneTimePrekeys: 10 });
    const statement = this.issueEnrolment(address, deviceId, ghost.identityKey);
    const now = Date.now();
    await this.store.devices.register({
      address,
      deviceId,
      identityKey: ghost.identityKey,
      enrolment: statement,
      createdAt: now,
    });
    const pub = ghost.publicPrekeys();
    const device = `${address}/${deviceId}`;
    await this.store.prekeys.putSignedPrekey(device, {
      keyId: pub.signedPrekey.id,
      publicKey: pub.signedPrekey.publicKey,
      signature: pub.signedPrekey.signature,
      uploadedAt: now,
    });
    await this.store.prekeys.addOneTimePrekeys(
      device,
      pub.oneTimePrekeys.map((k) => ({ keyId: k.id, publicKey: k.publicKey })),
    );
    return ghost;
  }

  /**
   * A statement signed with the domain key that `address`'s device `deviceId` has `identityKey`
   * (what a compromised domain can always make, R11), also appended to this server's key log.
   */
  issueEnrolment(address: string, deviceId: string, identityKey: Uint8Array): Uint8Array {
    const statement = issueEnrolmentStatement(
      enrolmentFields(address, deviceId, identityKey),
      this.#domainKey.secretKey,
    );
    this.server.keyLog.append(enrolmentLogEntry(statement));
    return statement.bytes;
  }

  /** The head GET_LOG would serve now, kept to be served again later ({@link serveHead}). */
  snapshotHead(): SignedTreeHead {
    return this.server.keyLog.signHead(this.#domainKey.secretKey, Date.now() + this.#clock.skewMs);
  }

  /**
   * From now on GET_LOG answers with `head` (e.g. an older one) whatever the log holds, as
   * modified server code would; `undefined` serves the real log again. The session's own checks
   * still see the real size, so the lie reaches the client instead of an error.
   */
  serveHead(head: SignedTreeHead | undefined): void {
    const real = this.#realLog;
    const served =
      head === undefined
        ? real
        : new Proxy(real, {
            get(target, property) {
              if (property === 'signHead')
                return (): SignedTreeHead => ({ ...head, treeSize: target.size });
              const value: unknown = Reflect.get(target, property, target);
              return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
            },
          });
    Object.defineProperty(this.server, 'keyLog', {
      value: served,
      writable: true,
      configurable: true,
    });
  }

  /** Stops the server and removes its files. */
  async close(): Promise<void> {
    await this.server.close();
    await this.store.close();
    await this.#registry.close();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/**
 * What an enrolment statement says of a device enrolled now after a channel-bound SCRAM login
 * with the local provider: the claim this server's statements make (and forgeries copy).
 */
export function enrolmentFields(
  address: string,
  deviceId: string,
  identityKey: Uint8Array,
): Parameters<typeof issueEnrolmentStatement>[0] {
  const now = Date.now();
  return {
    address: parseAddress(address),
    deviceId,
    identityKey,
    mechanism: 'SCRAM-SHA-256-PLUS',
    provider: 'local',
    channelBound: true,
    authenticatedAt: now,
    issuedAt: now,
    certificate: null,
  };
}
