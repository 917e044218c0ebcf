/**
 * A whole domain on loopback in this process, for tests that need two real servers federating:
 * local SCRAM accounts (alice, bob), an ImppServer with its SQLite store, and its FederationNode
 * wired as `impp serve` wires them (`remote: node.router`, `node.attach(server.federationInbound)`).
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
import { ImppClient, type ImppClientOptions } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { FederationNode } from '../../src/federation/index.js';
import { ImppServer } from '../../src/service/server.js';
import { type SqliteServiceStore, openSqliteServiceStore } from '../../src/service/store/index.js';
import { createLoopbackPki } from '../helpers/tls-fixtures.js';
import { type PeerRule, type TestDomain, trustFor } from './helpers.js';

/** The password of every account of a {@link startFullDomain} domain. */
export const FULL_DOMAIN_PASSWORD = 'federated test password';

/** A running domain; its clean-up was handed to the caller's list. */
export interface FullDomain {
  readonly node: FederationNode;
  readonly server: ImppServer;
  readonly store: SqliteServiceStore;
  readonly port: number;
  readonly fedPort: number;
  readonly ca: string;
  readonly dir: string;
  /** An SDK client of `user@domain` (not connected), closed at clean-up. */
  client(user: string, deviceId: string, extra?: Partial<ImppClientOptions>): ImppClient;
}

/**
 * Starts domain `d` federating with one peer under `peer`'s rule, reaching peers through
 * `routes` (static overrides the test fills in). Pushes its clean-up onto `cleanups`.
 */
export async function startFullDomain(
  d: TestDomain,
  peer: PeerRule,
  routes: Map<string, { host: string; port: number }[]>,
  cleanups: (() => Promise<void>)[],
  options: { readonly iterations?: number } = {},
): Promise<FullDomain> {
  const dir = mkdtempSync(join(tmpdir(), `impp-full-${d.domain}-`));
  const pki = await createLoopbackPki();
  const registry = new AuthRegistry({
    domain: d.domain,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(scramServer({ plus: true }));
  const repository = new SqliteLocalAccountRepository(':memory:');
  const iterations = options.iterations;
  await registry.registerProvider(
    localProvider(iterations === undefined ? { repository } : { repository, iterations }),
  );
  const accounts = new LocalAccounts(repository, d.domain, iterations);
  for (const u of ['alice', 'bob']) accounts.create(u, FULL_DOMAIN_PASSWORD);
  const authenticator = new Authenticator(
    registry,
    makeAuthPolicy(d.domain, [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }], {
      limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
    }),
    { audit: new MemoryAuditSink() },
  );
  const store = openSqliteServiceStore({ path: join(dir, 'store.db') });
  const node = new FederationNode({
    domain: d.domain,
    trust: trustFor(d.domain, [peer]),
    store,
    tls: { certPem: d.cert.certPem, keyPem: d.cert.keyPem },
    domainKey: d.key,
    resolve: { overrides: routes },
    retry: { baseMs: 20, maxMs: 100 },
  });
  const server = new ImppServer({
    domain: d.domain,
    tls: { key: pki.server.keyPem, cert: pki.server.certPem },
    store,
    authenticator,
    domainKey: d.key,
    remote: node.router,
  });
  node.attach(server.federationInbound);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const fedPort = await node.listen({ port: 0, host: '127.0.0.1' });
  const clients: ImppClient[] = [];
  cleanups.push(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await node.close();
    await server.close();
    await store.close();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    node,
    server,
    store,
    port,
    fedPort,
    ca: pki.ca.certPem,
    dir,
    client(user, deviceId, extra = {}) {
      const c = new ImppClient({
        host: '127.0.0.1',
        port,
        ca: pki.ca.certPem,
        servername: 'localhost',
        address: `${user}@${d.domain}`,
        password: FULL_DOMAIN_PASSWORD,
        deviceId,
        state: new FileStateStore(join(dir, `${user}-${deviceId}.state`)),
        ...extra,
      });
      clients.push(c);
      return c;
    },
  };
}
