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
} from '../../src/auth/index.js';
import { ImppClient } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { SecretBytes, generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import { ImppServer } from '../../src/service/server.js';
import { openSqliteServiceStore, type SqliteServiceStore } from '../../src/service/store/index.js';
import type { StoreQuotas } from '../../src/service/store/types.js';
import { createLoopbackPki } from '../helpers/tls-fixtures.js';

export const DOMAIN = 'example.org';
export const PASSWORD = 'correct horse battery staple';

export interface Env {
  readonly server: ImppServer;
  readonly store: SqliteServiceStore;
  readonly port: number;
  readonly ca: string;
  readonly dir: string;
  readonly dbPath: string;
  readonly accounts: LocalAccounts;
  /** A client for `user@example.org` on `deviceId`, its state in the temp folder. */
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
}

/** Starts a server with accounts alice, bob, carol and dave. */
export async function startEnv(options: EnvOptions = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'impp-service-'));
  const pki = await createLoopbackPki();
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(scramServer({ plus: true }));
  registry.registerMechanism(scramServer({ plus: false }));
  const repository = new SqliteLocalAccountRepository(':memory:');
  await registry.registerProvider(localProvider({ repository, iterations: 4096 }));
  const accounts = new LocalAccounts(repository, DOMAIN, 4096);
  for (const u of ['alice', 'bob', 'carol', 'dave']) accounts.create(u, PASSWORD);
  const policy = makeAuthPolicy(
    DOMAIN,
    [
      { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
      { mechanism: 'SCRAM-SHA-256', provider: 'local' },
    ],
    { limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 } },
  );
  const authenticator = new Authenticator(registry, policy, { audit: new MemoryAuditSink() });
  const dbPath = join(dir, 'service.db');
  const store = openSqliteServiceStore({
    path: dbPath,
    ...(options.quotas === undefined ? {} : { quotas: options.quotas }),
  });
  const server = new ImppServer({
    domain: DOMAIN,
    tls: { key: pki.server.keyPem, cert: pki.server.certPem },
    store,
    authenticator,
    domainKey: generateSigningKeyPair(),
    ...(options.costlyRequests === undefined ? {} : { costlyRequests: options.costlyRequests }),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const clients: ImppClient[] = [];
  return {
    server,
    store,
    port,
    ca: pki.ca.certPem,
    dir,
    dbPath,
    accounts,
    client(user, deviceId, extra = {}) {
      const c = new ImppClient({
        host: '127.0.0.1',
        port,
        ca: pki.ca.certPem,
        servername: 'localhost',
        address: `${user}@${DOMAIN}`,
        password: PASSWORD,
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
