/**
 * Child process of the multi-domain tests and the federation benchmark (run with
 * `node --import tsx`): ONE whole domain, as `impp serve` composes it — the client-facing
 * ImppServer and the FederationNode over one SQLite store in `<dir>`, local accounts (SCRAM) in
 * the same folder — so that a second start on the same folder after SIGKILL finds everything the
 * first one acknowledged. Prints `ports <client> <federation>` when both listen, then
 * `audit <json>` for each audit event of the federation node (link and routing refusals).
 *
 * Usage: domain-child <config.json>   (see {@link DomainChildConfig})
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
import {
  SecretBytes,
  fromBase64Url,
  generateSigningKeyPair,
  randomBytes,
} from '../../src/crypto/index.js';
import { FederationNode } from '../../src/federation/node.js';
import { ImppServer } from '../../src/service/server.js';
import { openSqliteServiceStore } from '../../src/service/store/index.js';
import { type PeerRule, trustFor } from './helpers.js';

/** How the domain accepts one peer, and where that peer's federation port is. */
export type ChildPeer =
  | {
      readonly domain: string;
      readonly proof: 'x509';
      readonly caPem: string;
      readonly port: number;
    }
  | {
      readonly domain: string;
      readonly proof: 'key';
      /** base64url of the peer's pinned Ed25519 domain key. */
      readonly publicKey: string;
      readonly port: number;
    };

/** What the parent writes for the child (JSON). */
export interface DomainChildConfig {
  readonly dir: string;
  readonly domain: string;
  /** The client-facing certificate (the test PKI's loopback certificate). */
  readonly clientTls: { readonly certPem: string; readonly keyPem: string };
  /** The federation certificate naming the domain (serverAuth + clientAuth). */
  readonly federationTls: { readonly certPem: string; readonly keyPem: string };
  /** base64url seed of the domain key (enrolment statements, and proof for pinning peers). */
  readonly seed: string;
  /** Local accounts created on the first start (local part only). */
  readonly users: readonly string[];
  readonly password: string;
  readonly peers: readonly ChildPeer[];
  /** 0 picks a free port; a restart passes the ports of the first start. */
  readonly clientPort: number;
  readonly federationPort: number;
}

const configPath = process.argv[2];
if (configPath === undefined) throw new Error('usage: domain-child <config.json>');
const config = JSON.parse(readFileSync(configPath, 'utf8')) as DomainChildConfig;
const { domain } = config;

const accountsPath = join(config.dir, 'accounts.db');
const fresh = !existsSync(accountsPath);
const registry = new AuthRegistry({ domain, serverSecret: new SecretBytes(randomBytes(32)) });
registry.registerMechanism(scramServer({ plus: true }));
const repository = new SqliteLocalAccountRepository(accountsPath);
await registry.registerProvider(localProvider({ repository, iterations: 4096 }));
if (fresh) {
  const accounts = new LocalAccounts(repository, domain, 4096);
  for (const u of config.users) accounts.create(u, config.password);
}
const policy = makeAuthPolicy(domain, [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }], {
  limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
});

const store = openSqliteServiceStore({ path: join(config.dir, 'service.db') });
const domainKey = generateSigningKeyPair(fromBase64Url(config.seed));
const rules: PeerRule[] = config.peers.map((p) =>
  p.proof === 'x509'
    ? { domain: p.domain, proof: 'x509', caPem: p.caPem }
    : { domain: p.domain, proof: 'key', publicKey: fromBase64Url(p.publicKey) },
);
const node = new FederationNode({
  domain,
  trust: trustFor(domain, rules),
  store,
  tls: config.federationTls,
  domainKey,
  resolve: {
    overrides: new Map(config.peers.map((p) => [p.domain, [{ host: '127.0.0.1', port: p.port }]])),
  },
  // A killed peer is back within a second or two: retry often so the tests stay short.
  retry: { baseMs: 50, maxMs: 400 },
  linkLimits: { preAuthTimeoutMs: 3000, ackTimeoutMs: 5000 },
  lookupTimeoutMs: 3000,
});
const server = new ImppServer({
  domain,
  tls: { key: config.clientTls.keyPem, cert: config.clientTls.certPem },
  store,
  authenticator: new Authenticator(registry, policy, { audit: new MemoryAuditSink() }),
  domainKey,
  remote: node.router,
});
node.attach(server.federationInbound);
// Every refusal of a misbehaving peer, for the parent to see beside the store's audit table.
node.on('audit', (event) => {
  process.stdout.write(`audit ${JSON.stringify(event)}\n`);
});
const { port } = await server.listen({ host: '127.0.0.1', port: config.clientPort });
const federationPort = await node.listen({ host: '127.0.0.1', port: config.federationPort });

// A parent that goes away (test runner killed) takes the domain with it.
process.stdin.on('end', () => {
  process.exit(0);
});
process.stdin.resume();
process.stdout.write(`ports ${port} ${federationPort}\n`);
