/**
 * Load generator for bench/transport.ts, run in a separate process (child_process.fork) so
 * that it does not share a core's event loop with the server. Commands arrive over IPC. It
 * drives either impp connections or the bare baseline router (bench/bare-router.ts).
 */
import { performance } from 'node:perf_hooks';
import { connectTls } from '../src/transport/tls-client.js';
import { BareClient } from './bare-router.js';

export const ROUTE = 16;
export const REGISTER = 18;

export type Target = 'impp' | 'bare';

export type LoadCommand =
  | {
      cmd: 'throughput';
      target: Target;
      port: number;
      ca: string;
      conns: number;
      window: number;
      seconds: number;
    }
  | {
      cmd: 'latency';
      target: Target;
      port: number;
      ca: string;
      conns: number;
      rate: number;
      seconds: number;
    }
  | { cmd: 'idle'; port: number; ca: string; conns: number }
  | { cmd: 'close' };

export type LoadReply =
  | { ok: 'throughput'; frames: number; seconds: number }
  | {
      ok: 'latency';
      samples: number;
      p50: number;
      p90: number;
      p99: number;
      max: number;
      sent: number;
    }
  | { ok: 'idle'; opened: number }
  | { ok: 'closed' }
  | { error: string };

const PAYLOAD = new Uint8Array(100).fill(0x61);

/** One routed-frame endpoint, whatever the server. */
interface Endpoint {
  send(to: number, from: number): void;
  close(): Promise<void>;
}

type OnFrame = (from: number, sentAt: number) => void;

async function imppEndpoint(
  port: number,
  ca: string,
  index: number,
  onFrame: OnFrame,
): Promise<Endpoint> {
  const conn = await connectTls({ host: 'localhost', port, ca, connectTimeoutMs: 60_000 });
  conn.on('frame', (f) => {
    const body = f.body as { from: number; t: number };
    onFrame(body.from, body.t);
  });
  conn.send(REGISTER, index);
  return {
    send: (to, from) => {
      conn.send(ROUTE, { to, from, t: performance.now(), d: PAYLOAD });
    },
    close: async () => {
      conn.close();
      await conn.closed;
    },
  };
}

async function bareEndpoint(
  port: number,
  ca: string,
  index: number,
  onFrame: OnFrame,
): Promise<Endpoint> {
  const client = await BareClient.connect(port, ca, index, onFrame);
  return {
    send: (to, from) => {
      client.send(to, from);
    },
    close: () =>
      new Promise<void>((resolve) => {
        client.socket.once('close', () => {
          resolve();
        });
        client.socket.end();
      }),
  };
}

/** Opens `n` endpoints (at most 200 handshakes at a time). */
async function openMany(
  target: Target,
  port: number,
  ca: string,
  n: number,
  base: number,
  onFrame: OnFrame,
): Promise<Endpoint[]> {
  const out = new Array<Endpoint>(n);
  let next = 0;
  const make = target === 'impp' ? imppEndpoint : bareEndpoint;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      out[i] = await make(port, ca, base + i, onFrame);
    }
  };
  await Promise.all(Array.from({ length: Math.min(200, n) }, worker));
  await new Promise((r) => setTimeout(r, 200)); // registrations land
  return out;
}

async function closeAll(endpoints: Endpoint[]): Promise<void> {
  await Promise.all(endpoints.map((e) => e.close()));
}

async function throughput(c: Extract<LoadCommand, { cmd: 'throughput' }>): Promise<LoadReply> {
  let delivered = 0;
  let running = true;
  const inflight = new Array<number>(c.conns).fill(0);
  let endpoints: Endpoint[] = [];
  const pump = (i: number): void => {
    const e = endpoints[i];
    if (e === undefined) return;
    while (running && (inflight[i] ?? 0) < c.window) {
      inflight[i] = (inflight[i] ?? 0) + 1;
      e.send(i ^ 1, i);
    }
  };
  endpoints = await openMany(c.target, c.port, c.ca, c.conns, 0, (from) => {
    delivered += 1;
    inflight[from] = (inflight[from] ?? 1) - 1;
    pump(from);
  });
  const started = performance.now();
  endpoints.forEach((_, i) => {
    pump(i);
  });
  await new Promise((r) => setTimeout(r, c.seconds * 1000));
  running = false;
  const seconds = (performance.now() - started) / 1000;
  const frames = delivered;
  await closeAll(endpoints);
  return { ok: 'throughput', frames, seconds };
}

async function latency(c: Extract<LoadCommand, { cmd: 'latency' }>): Promise<LoadReply> {
  const samples: number[] = [];
  const endpoints = await openMany(c.target, c.port, c.ca, c.conns, 0, (_from, sentAt) => {
    samples.push(performance.now() - sentAt);
  });
  let sent = 0;
  const started = performance.now();
  const end = started + c.seconds * 1000;
  // Fixed rate: every tick, send what the schedule says is due (no coordinated omission).
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now();
      const due = Math.min(c.rate * c.seconds, Math.floor(((now - started) / 1000) * c.rate));
      while (sent < due) {
        const i = sent % endpoints.length;
        endpoints[i]?.send(i ^ 1, i);
        sent += 1;
      }
      if (now >= end) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  await new Promise((r) => setTimeout(r, 500)); // stragglers
  samples.sort((a, b) => a - b);
  const pct = (p: number): number =>
    samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? NaN;
  await closeAll(endpoints);
  return {
    ok: 'latency',
    samples: samples.length,
    p50: pct(0.5),
    p90: pct(0.9),
    p99: pct(0.99),
    max: samples.at(-1) ?? NaN,
    sent,
  };
}

let idle: Endpoint[] = [];

process.on('message', (message: LoadCommand) => {
  const run = async (): Promise<LoadReply> => {
    switch (message.cmd) {
      case 'throughput':
        return throughput(message);
      case 'latency':
        return latency(message);
      case 'idle': {
        const more = await openMany(
          'impp',
          message.port,
          message.ca,
          message.conns,
          idle.length,
          () => undefined,
        );
        idle.push(...more);
        return { ok: 'idle', opened: idle.length };
      }
      case 'close': {
        const all = idle;
        idle = [];
        await closeAll(all);
        return { ok: 'closed' };
      }
    }
  };
  run().then(
    (reply) => process.send?.(reply),
    (error: unknown) =>
      process.send?.({ error: error instanceof Error ? error.message : String(error) }),
  );
});
