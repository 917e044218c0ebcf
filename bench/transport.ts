/**
 * Transport benchmark: a TLS frame router in this process, the load generator in a child
 * process (bench/transport-load.ts), both on loopback.
 *
 *   ulimit -n 65536   # 10,000 idle connections need ~10k descriptors in each process
 *   npx tsx bench/transport.ts            # all phases
 *   npx tsx bench/transport.ts --quick    # shorter runs, 1,000 idle connections only
 *
 * Phases:
 *   0. the same two phases against a bare Node TLS router (bench/bare-router.ts) as a baseline.
 *   1. throughput: 100 connections in pairs, each keeps a window of frames in flight to its
 *      partner through the server (decode, look up, re-encode, send); 100-byte payloads.
 *   2. latency at a fixed rate (10k frames/s): p50/p99 of send → routed delivery.
 *   3. memory per idle TLS connection (negotiated and marked authenticated) at 1,000 and
 *      10,000 connections: RSS and heap delta per connection, after GC.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createLoopbackPki } from '../test/helpers/tls-fixtures.js';
import type { Connection } from '../src/transport/connection.js';
import { TlsTransportServer } from '../src/transport/tls-server.js';
import { startBareRouter } from './bare-router.js';
import {
  type LoadCommand,
  type LoadReply,
  REGISTER,
  ROUTE,
  type Target,
} from './transport-load.js';

const quick = process.argv.includes('--quick');
const gc = (globalThis as { gc?: () => void }).gc;

function collect(): void {
  for (let i = 0; i < 3; i++) gc?.();
}

async function main(): Promise<void> {
  const { ca, server: cert } = await createLoopbackPki();
  const server = new TlsTransportServer({
    key: cert.keyPem,
    cert: cert.certPem,
    limits: {
      frameRate: 1_000_000,
      frameBurst: 1_000_000,
      maxPreAuthPerIp: 20_000,
      maxConnections: 25_000,
      preAuthTimeoutMs: 600_000,
      handshakeTimeoutMs: 60_000,
    },
  });
  // The router: REGISTER binds an index to a connection (and stands in for authentication);
  // ROUTE frames go to the connection registered under body.to.
  const byIndex = new Map<number, Connection>();
  server.on('connection', (conn) => {
    conn.on('frame', (frame) => {
      if (frame.type === REGISTER) {
        conn.markAuthenticated();
        byIndex.set(frame.body as number, conn);
        conn.on('close', () => byIndex.delete(frame.body as number));
      } else if (frame.type === ROUTE) {
        const to = byIndex.get((frame.body as { to: number }).to);
        if (to?.state === 'open') to.send(ROUTE, frame.body);
      }
    });
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });

  const child = fork(fileURLToPath(new URL('./transport-load.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
  });
  const ask = async (command: LoadCommand): Promise<LoadReply> => {
    child.send(command);
    const [reply] = (await once(child, 'message')) as [LoadReply];
    if ('error' in reply) throw new Error(`load generator: ${reply.error}`);
    return reply;
  };

  console.log(
    `impp transport bench — node ${process.version}, loopback, TLS 1.3, 100-byte payloads`,
  );

  const bare = await startBareRouter(cert.keyPem, cert.certPem);
  const ports: Record<Target, number> = { impp: port, bare: bare.port };
  const seconds = quick ? 3 : 8;
  for (const target of ['bare', 'impp'] as const) {
    // 1. throughput
    const cpu0 = process.cpuUsage();
    const t = (await ask({
      cmd: 'throughput',
      target,
      port: ports[target],
      ca: ca.certPem,
      conns: 100,
      window: 32,
      seconds,
    })) as Extract<LoadReply, { ok: 'throughput' }>;
    const cpu = process.cpuUsage(cpu0);
    const serverCpuSec = (cpu.user + cpu.system) / 1e6;
    console.log(
      `[${target}] throughput: ${Math.round(t.frames / t.seconds).toLocaleString('en')} frames/s routed ` +
        `(100 conns, window 32, ${t.seconds.toFixed(1)} s); server CPU ${((serverCpuSec / t.seconds) * 100).toFixed(0)}% ` +
        `of a core, ${((serverCpuSec / t.frames) * 1e6).toFixed(1)} µs/frame ` +
        `(≈ ${Math.round(t.frames / serverCpuSec).toLocaleString('en')} frames per server CPU-second)`,
    );
    // 2. latency at a fixed rate
    for (const fixed of [10_000]) {
      const l = (await ask({
        cmd: 'latency',
        target,
        port: ports[target],
        ca: ca.certPem,
        conns: 100,
        rate: fixed,
        seconds: quick ? 3 : 5,
      })) as Extract<LoadReply, { ok: 'latency' }>;
      console.log(
        `[${target}] latency at ${fixed.toLocaleString('en')} frames/s: p50 ${l.p50.toFixed(3)} ms, p90 ${l.p90.toFixed(3)} ms, ` +
          `p99 ${l.p99.toFixed(3)} ms, max ${l.max.toFixed(1)} ms (${l.samples.toLocaleString('en')}/${l.sent.toLocaleString('en')} delivered)`,
      );
    }
  }
  await bare.close();

  // 3. memory per idle connection
  if (gc === undefined)
    console.log('(run with NODE_OPTIONS=--expose-gc for steadier memory figures)');
  collect();
  const base = process.memoryUsage();
  let opened = 0;
  for (const target of quick ? [1_000] : [1_000, 10_000]) {
    await ask({ cmd: 'idle', port, ca: ca.certPem, conns: target - opened });
    opened = target;
    while (server.stats.open < target) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    collect();
    const now = process.memoryUsage();
    console.log(
      `idle TLS connections: ${target.toLocaleString('en')} → ` +
        `RSS ${((now.rss - base.rss) / target / 1024).toFixed(1)} KB/conn, ` +
        `heap ${((now.heapUsed - base.heapUsed) / target / 1024).toFixed(1)} KB/conn, ` +
        `external+buffers ${((now.external + now.arrayBuffers - base.external - base.arrayBuffers) / target / 1024).toFixed(1)} KB/conn`,
    );
  }
  await ask({ cmd: 'close' });
  child.kill();
  await server.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
