/**
 * Child process of the crash test (run with `node --import tsx`): a whole impp server on
 * 127.0.0.1 whose data (service store, local accounts) lives in `<dir>`, so that a second start
 * after SIGKILL finds everything the first one acknowledged. Prints `port <n>` when listening.
 *
 * Usage: server-child <dir>   (reads <dir>/key.pem and <dir>/cert.pem)
 */
import { existsSync, readFileSync } from 'node:fs';
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
import { SecretBytes, generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import { ImppServer } from '../../src/service/server.js';
import { openSqliteServiceStore } from '../../src/service/store/index.js';
import { DOMAIN, PASSWORD } from './harness.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: server-child <dir>');

const accountsPath = join(dir, 'accounts.db');
const fresh = !existsSync(accountsPath);
const registry = new AuthRegistry({
  domain: DOMAIN,
  serverSecret: new SecretBytes(randomBytes(32)),
});
registry.registerMechanism(scramServer({ plus: true }));
const repository = new SqliteLocalAccountRepository(accountsPath);
await registry.registerProvider(localProvider({ repository, iterations: 4096 }));
if (fresh) {
  const accounts = new LocalAccounts(repository, DOMAIN, 4096);
  for (const u of ['alice', 'bob']) accounts.create(u, PASSWORD);
}
const policy = makeAuthPolicy(DOMAIN, [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }], {
  limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
});
const server = new ImppServer({
  domain: DOMAIN,
  tls: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
  store: openSqliteServiceStore({ path: join(dir, 'service.db') }),
  authenticator: new Authenticator(registry, policy, { audit: new MemoryAuditSink() }),
  domainKey: generateSigningKeyPair(),
});
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`port ${port}\n`);
