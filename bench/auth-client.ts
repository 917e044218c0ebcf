/**
 * Client half of bench/auth.ts, run in its own process so that the server's CPU figures are the
 * server's alone. Usage (spawned by bench/auth.ts):
 *   node --import tsx bench/auth-client.ts <mode> <port> <caFile> <concurrency> <seconds>
 * mode `scram`: full SCRAM-SHA-256-PLUS logins (TLS handshake included, one login per connection);
 * mode `tls`: bare TLS 1.3 handshakes plus one server byte, for the baseline.
 * Prints one JSON line: { done, failed, seconds, cpuMs } (cpuMs: this process's CPU time).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { scramClient } from '../src/auth/scram/client.js';
import { clientContext, tlsLogin } from '../test/auth/tls-harness.js';

const [mode = 'scram', portText = '0', caFile = '', concText = '8', secText = '5'] =
  process.argv.slice(2);
const port = Number(portText);
const ca = readFileSync(caFile, 'utf8');
const concurrency = Number(concText);
const seconds = Number(secText);
// One credential object: the client caches SaltedPassword per (salt, iterations) (RFC 5802 §5.1).
const factories = scramClient({
  username: 'bench',
  password: 'bench-password',
  channelBinding: 'require',
});

let done = 0;
let failed = 0;
const deadline = performance.now() + seconds * 1000;

async function bareHandshake(): Promise<void> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    secureContext: clientContext(ca),
    servername: 'localhost',
    minVersion: 'TLSv1.3',
  });
  try {
    // Wait for the server's first byte: in TLS 1.3 the server completes the handshake only when
    // it has read the client's Finished, so closing at 'secureConnect' would abort it.
    await once(socket, 'data');
  } finally {
    socket.destroy();
  }
}

async function worker(): Promise<void> {
  while (performance.now() < deadline) {
    try {
      if (mode === 'tls') await bareHandshake();
      else await tlsLogin(port, { ca }, factories, { requireChannelBinding: true });
      done++;
    } catch {
      failed++;
    }
  }
}

const t0 = performance.now();
const cpu0 = process.cpuUsage();
await Promise.all(Array.from({ length: concurrency }, () => worker()));
const cpu = process.cpuUsage(cpu0);
const cpuMs = (cpu.user + cpu.system) / 1000;
process.stdout.write(
  `${JSON.stringify({ done, failed, seconds: (performance.now() - t0) / 1000, cpuMs })}\n`,
);
