/**
 * Authentication benchmark: full SCRAM-SHA-256-PLUS logins per second over real TLS 1.3 on
 * loopback (handshake included, one login per connection, tls-exporter channel binding), and the
 * server's CPU time per login, next to a bare TLS 1.3 handshake baseline on the same machine.
 *
 * The clients run in a separate process (bench/auth-client.ts), so `process.cpuUsage()` here is
 * the server's alone. Run: `npx tsx bench/auth.ts [seconds=5] [concurrency=16] [client processes=1]`.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import * as tls from 'node:tls';
import pino from 'pino';
import { SecretBytes, randomBytes } from '../src/crypto/index.js';
import { PinoAuditSink } from '../src/auth/audit.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy } from '../src/auth/policy.js';
import { LocalAccounts, localProvider } from '../src/auth/providers/local.js';
import { SqliteLocalAccountRepository } from '../src/auth/providers/local-store.js';
import { DEFAULT_RATE_LIMIT } from '../src/auth/rate-limit.js';
import { AuthRegistry } from '../src/auth/registry.js';
import { scramServer } from '../src/auth/scram/server.js';
import { Authenticator } from '../src/auth/server.js';
import { makeTestPki, startAuthServer } from '../test/auth/tls-harness.js';

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 16);
const processes = Number(process.argv[4] ?? 1);
const domain = 'bench.example';

const pki = makeTestPki();
const caFile = join(tmpdir(), `impp-bench-ca-${process.pid}.pem`);
writeFileSync(caFile, pki.ca);

const registry = new AuthRegistry({ domain, serverSecret: new SecretBytes(randomBytes(32)) });
registry.registerMechanism(scramServer({ plus: true }));
const repository = new SqliteLocalAccountRepository(':memory:');
await registry.registerProvider(localProvider({ repository }));
new LocalAccounts(repository, domain).create('bench', 'bench-password');
const policy = makeAuthPolicy(domain, [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }], {
  // The global throttle would cap the benchmark itself; everything else is the default.
  rateLimit: { ...DEFAULT_RATE_LIMIT, globalPerSecond: 1_000_000 },
  limits: DEFAULT_EXCHANGE_LIMITS,
});
const audit = new PinoAuditSink(
  pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true })),
);
const authenticator = new Authenticator(registry, policy, { audit });

interface ClientReport {
  done: number;
  failed: number;
  seconds: number;
  cpuMs: number;
}

async function runClients(mode: 'scram' | 'tls', port: number): Promise<ClientReport> {
  const one = async (): Promise<ClientReport> => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/auth-client.ts',
        mode,
        String(port),
        caFile,
        String(concurrency),
        String(seconds),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
    });
    await once(child, 'close');
    return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ClientReport;
  };
  const reports = await Promise.all(Array.from({ length: processes }, one));
  return {
    done: reports.reduce((a, r) => a + r.done, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    seconds: Math.max(...reports.map((r) => r.seconds)),
    cpuMs: reports.reduce((a, r) => a + r.cpuMs, 0),
  };
}

async function measure(mode: 'scram' | 'tls', port: number, count: () => number) {
  const before = count();
  const cpu0 = process.cpuUsage();
  const client = await runClients(mode, port);
  const cpu = process.cpuUsage(cpu0);
  const n = count() - before;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    client,
    n,
    perSecond: n / client.seconds,
    cpuMsPer: cpuMs / Math.max(1, n),
    cpuShare: cpuMs / (client.seconds * 1000),
  };
}

// Baseline: bare TLS 1.3 handshakes against a server with the same key and certificate.
let handshakes = 0;
const bare = tls.createServer({ key: pki.key, cert: pki.cert, minVersion: 'TLSv1.3' }, (s) => {
  handshakes++;
  s.on('error', () => undefined);
  s.end('ok\n');
});
bare.listen(0, '127.0.0.1');
await once(bare, 'listening');
const barePort = (bare.address() as import('node:net').AddressInfo).port;

const server = await startAuthServer(authenticator, pki);

// Warm-up (JIT, the client's PBKDF2 cache) before measuring.
await measure('scram', server.port, () => server.results.length);

const tlsResult = await measure('tls', barePort, () => handshakes);
const scramResult = await measure('scram', server.port, () => server.results.length);
const bound = server.results.every((r) => r.channelBound && r.mechanism === 'SCRAM-SHA-256-PLUS');
const capacity = (msPer: number) => (1000 / msPer).toFixed(0);

console.log(
  `node ${process.version}, ${processes} client process(es) x ${concurrency} concurrent connections, ${seconds}s per run; the server runs alone in this process`,
);
console.log(
  `bare TLS 1.3 handshakes:        ${tlsResult.perSecond.toFixed(0)}/s, server CPU ${tlsResult.cpuMsPer.toFixed(3)} ms per handshake (server process at ${(tlsResult.cpuShare * 100).toFixed(0)}% of one core); client CPU ${(tlsResult.client.cpuMs / tlsResult.client.done).toFixed(3)} ms each; server capacity ≈ ${capacity(tlsResult.cpuMsPer)}/s per core`,
);
console.log(
  `SCRAM-SHA-256-PLUS logins:      ${scramResult.perSecond.toFixed(0)}/s, server CPU ${scramResult.cpuMsPer.toFixed(3)} ms per login (server process at ${(scramResult.cpuShare * 100).toFixed(0)}% of one core); client CPU ${(scramResult.client.cpuMs / scramResult.client.done).toFixed(3)} ms each; server capacity ≈ ${capacity(scramResult.cpuMsPer)}/s per core; failures ${scramResult.client.failed}, all channel-bound: ${bound}`,
);

await server.close();
await new Promise<void>((r) =>
  bare.close(() => {
    r();
  }),
);
await registry.close();
pki.cleanup();
