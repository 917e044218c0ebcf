/**
 * A real server built from a trust configuration as `impp serve` builds it: the configuration is
 * parsed, local accounts are created in SQLite, the authenticator comes from
 * `authenticatorFromConfig` (so a `pki` provider also yields the listeners' client-certificate
 * trust), and the server listens on 127.0.0.1 with a fresh service store. Shared by the tests
 * that log in with SASL EXTERNAL next to SCRAM.
 *
 * @example
 * ```ts
 * const s = await startConfiguredServer({
 *   dir, domain: 'example.org', tls, users: ['bob'], password: 'pw',
 *   trust: { authentication: { mechanisms: ['SCRAM-SHA-256', 'EXTERNAL'], providers: [...] } },
 * });
 * // s.port, s.server, s.configured.clientCertificates; await s.close()
 * ```
 */
import { join } from 'node:path';
import {
  LocalAccounts,
  MemoryAuditSink,
  SqliteLocalAccountRepository,
} from '../../src/auth/index.js';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import {
  authenticatorFromConfig,
  type ConfiguredAuthenticator,
} from '../../src/service/authenticator.js';
import { parseServerConfig } from '../../src/service/config/server-config.js';
import { ImppServer, type ImppServerOptions } from '../../src/service/server.js';
import { openSqliteServiceStore, type SqliteServiceStore } from '../../src/service/store/index.js';

export interface ConfiguredServerOptions {
  /** Data folder: relative provider paths (CA bundles, CRLs) resolve against it. */
  readonly dir: string;
  readonly domain: string;
  /** The `trust` section of the server configuration, as written in the file. */
  readonly trust: unknown;
  readonly tls: ImppServerOptions['tls'];
  /** Local accounts to create, all with `password`. */
  readonly users: readonly string[];
  readonly password: string;
  /** Further server options (e.g. the test-only defences to switch off). */
  readonly server?: Partial<ImppServerOptions>;
}

export interface ConfiguredServer {
  readonly server: ImppServer;
  readonly store: SqliteServiceStore;
  readonly configured: ConfiguredAuthenticator;
  readonly audit: MemoryAuditSink;
  readonly port: number;
  /** Closes the server, then the store and the authenticator; leaves `dir` to its owner. */
  close(): Promise<void>;
}

export async function startConfiguredServer(o: ConfiguredServerOptions): Promise<ConfiguredServer> {
  const config = parseServerConfig({
    version: 1,
    domain: o.domain,
    dataDir: o.dir,
    trust: o.trust,
  });
  const accountsDbPath = join(o.dir, 'accounts.db');
  const repository = new SqliteLocalAccountRepository(accountsDbPath);
  const local = new LocalAccounts(repository, o.domain, 4096);
  for (const user of o.users) local.create(user, o.password);
  repository.close();
  const audit = new MemoryAuditSink();
  const configured = await authenticatorFromConfig({
    trust: config.trust,
    accountsDbPath,
    domainKey: generateSigningKeyPair(),
    audit,
    baseDir: o.dir,
  });
  const store = openSqliteServiceStore({ path: join(o.dir, 'service.db') });
  const server = new ImppServer({
    domain: o.domain,
    tls: o.tls,
    ...(configured.clientCertificates === undefined
      ? {}
      : { clientCertificates: configured.clientCertificates }),
    store,
    authenticator: configured.authenticator,
    domainKey: generateSigningKeyPair(),
    ...o.server,
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    store,
    configured,
    audit,
    port,
    async close() {
      await server.close();
      await store.close();
      await configured.close();
    },
  };
}
