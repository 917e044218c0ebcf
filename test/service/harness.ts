/**
 * A whole impp server on loopback for the service and client tests: real TLS (test PKI), a real
 * SQLite store in a temporary folder, the local account provider with SCRAM-SHA-256(-PLUS).
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
  type AuthPolicy,
} from '../../src/auth/index.js';
import { ImppClient } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { SecretBytes, generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import type { ServerDefences } from '../../src/service/defences.js';
import { WEAKEN_SERVER } from '../../src/service/defences.js';
import type { ServiceLog } from '../../src/service/logging.js';
import type { RemoteRouter } from '../../src/service/remote.js';
import { createPrivateFile } from '../../src/service/config/data-dir.js';
import { ImppServer } from '../../src/service/server.js';
import {
  openSqliteServiceStore,
  type BatchOptions,
  type SqliteServiceStore,
} from '../../src/service/store/index.js';
import type { StoreQuotas } from '../../src/service/store/types.js';
import type { TransportLimits } from '../../src/transport/limits.js';
import { createLoopbackPki } from '../helpers/tls-fixtures.js';

export const DOMAIN = 'example.org';
export const PASSWORD = 'correct horse battery staple';

export interface Env {
  /** The domain served ({@link DOMAIN} unless {@link EnvOptions.domain}). */
  readonly domain: string;
  readonly server: ImppServer;
  readonly store: SqliteServiceStore;
  readonly port: number;
  readonly ca: string;
  readonly dir: string;
  readonly dbPath: string;
  readonly accounts: LocalAccounts;
  /** The password of every account (default {@link PASSWORD}). */
  readonly password: string;
  /** The domain key's public half (enrolment statements, key-log heads). */
  readonly domainKey: Uint8Array;
  /** The authentication audit events of this server. */
  readonly audit: MemoryAuditSink;
  /** A client for `user@<domain>` on `deviceId`, its state in the temp folder. */
  client(
    user: string,
    deviceId: string,
    extra?: Partial<ConstructorParameters<typeof ImppClient>[0]>,
  ): ImppClient;
  close(): Promise<void>;
}

/** Options of {@link startEnv}. */
export interface EnvOptions {
  /** Store quotas (defaults otherwise), e.g. small ones for the quota tests. */
  readonly quotas?: Partial<StoreQuotas>;
  /** The per-session costly-request bucket (small ones make rate-limit tests timing-proof). */
  readonly costlyRequests?: { readonly rate: number; readonly burst: number };
  /** Test-only: server defences to switch off (src/service/defences.ts). */
  readonly defences?: Partial<ServerDefences>;
  /** Transport limits (defaults otherwise), e.g. a weak configuration for the threat tests. */
  readonly limits?: Partial<TransportLimits>;
  /** Authentication exchange limits and rate limits (default: no minimum failure delay). */
  readonly auth?: Partial<Pick<AuthPolicy, 'rateLimit' | 'limits'>>;
  /** The password of every account; default {@link PASSWORD}. */
  readonly password?: string;
  /** The server's structured log; default none. */
  readonly log?: ServiceLog;
  /** The local accounts' SQLite file; default `accounts.db` in the temporary data folder. */
  readonly accountsFile?: string;
  /** How often the server polls for changed accounts (ms); default the server's. */
  readonly accountRecheckMs?: number;
  /** Server-wide bound on pipelined requests in flight; default the server's. */
  readonly maxPipelinedRequests?: number;
  /** The store's group commit (a window makes requests overlap for certain); default on. */
  readonly batch?: BatchOptions;
  /** The domain served; default {@link DOMAIN}. */
  readonly domain?: string;
  /** The federation seam (`ImppServerOptions.remote`); default none. */
  readonly remote?: RemoteRouter;
}

/** Starts a server with accounts alice, bob, carol and dave. */
export async function startEnv(options: EnvOptions = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'impp-service-'));
  const domain = options.domain ?? DOMAIN;
  const pki = await createLoopbackPki();
  const registry = new AuthRegistry({
    domain,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(scramServer({ plus: true }));
  registry.registerMechanism(scramServer({ plus: false }));
  // In the data folder by default, as `impp serve` keeps it (the operator threats grep it).
  const accountsFile = options.accountsFile ?? join(dir, 'accounts.db');
  createPrivateFile(accountsFile);
  const repository = new SqliteLocalAccountRepository(accountsFile);
  await registry.registerProvider(localProvider({ repository, iterations: 4096 }));
  const accounts = new LocalAccounts(repository, domain, 4096);
  const password = options.password ?? PASSWORD;
  for (const u of ['alice', 'bob', 'carol', 'dave']) accounts.create(u, password);
  const policy = makeAuthPolicy(
    domain,
    [
      { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
      { mechanism: 'SCRAM-SHA-256', provider: 'local' },
    ],
    { limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 }, ...options.auth },
  );
  const audit = new MemoryAuditSink();
  const authenticator = new Authenticator(registry, policy, { audit });
  const dbPath = join(dir, 'service.db');
  const store = openSqliteServiceStore({
    path: dbPath,
    ...(options.quotas === undefined ? {} : { quotas: options.quotas }),
    ...(options.batch === undefined ? {} : { batch: options.batch }),
  });
  const domainKey = generateSigningKeyPair();
  const server = new ImppServer({
    domain,
    tls: { key: pki.server.keyPem, cert: pki.server.certPem },
    store,
    authenticator,
    domainKey,
    ...(options.costlyRequests === undefined ? {} : { costlyRequests: options.costlyRequests }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.log === undefined ? {} : { log: options.log }),
    ...(options.accountRecheckMs === undefined
      ? {}
      : { accountRecheckMs: options.accountRecheckMs }),
    ...(options.maxPipelinedRequests === undefined
      ? {}
      : { maxPipelinedRequests: options.maxPipelinedRequests }),
    ...(options.defences === undefined ? {} : { [WEAKEN_SERVER]: options.defences }),
    ...(options.remote === undefined ? {} : { remote: options.remote }),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const clients: ImppClient[] = [];
  return {
    domain,
    server,
    store,
    port,
    ca: pki.ca.certPem,
    dir,
    dbPath,
    accounts,
    password,
    domainKey: domainKey.publicKey,
    audit,
    client(user, deviceId, extra = {}) {
      const c = new ImppClient({
        host: '127.0.0.1',
        port,
        ca: pki.ca.certPem,
        servername: 'localhost',
        address: `${user}@${domain}`,
        password,
        deviceId,
        state: new FileStateStore(join(dir, `${user}-${deviceId}.state`)),
        ...extra,
      });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) await c.close().catch(() => undefined);
      await server.close();
      await store.close();
      await registry.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the next `event` of `emitter`, or rejects after `ms`. */
export function next<T>(
  emitter: { once(event: string, listener: (value: T) => void): unknown },
  event: string,
  ms = 5_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    emitter.once(event, (value: T) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** Waits `ms` (bounded quiet periods for "nothing arrives" checks). */
export function quiet(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
