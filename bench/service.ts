/**
 * Service benchmark: a whole impp server (ImppServer, SQLite store with durable group commits in
 * a temporary folder, SCRAM-SHA-256-PLUS, throwaway certificates) in this process; the load
 * generator (bench/service-load.ts) in a child process; loopback only.
 *
 *   ulimit -n 65536   # 10,000 sessions need ~10k descriptors in each process (20,000 is enough)
 *   node --expose-gc --import tsx bench/service.ts           # all phases
 *   node --expose-gc --import tsx bench/service.ts --quick   # shorter runs, 1,000 idle sessions
 *   node --expose-gc --import tsx bench/service.ts --normal  # SQLite synchronous=NORMAL
 *   --generators=2 (load from two processes), --devices=100 (message phases), --heap=DIR
 *
 * tsx wraps every function in a `__name` helper that gives each closure its own property
 * store (about 2.6 KB per idle session); `impp serve` runs tsc's output instead. For memory
 * and CPU figures as deployed, compile first and run the JS:
 *   npx tsc -p tsconfig.json --noEmit false --outDir /tmp/impp-build
 *   node --expose-gc /tmp/impp-build/bench/service.js --quick
 *
 * Setup shortcuts (bench only): accounts are created with the local provider (PBKDF2 4096), and
 * devices are registered straight into the store with the load generator's identity key, so
 * each connection still authenticates (SCRAM-PLUS) and binds (signed challenge) for real but
 * skips REGISTER. Subscriptions for the presence phase are written into the store the same way.
 * Transport rate limits are raised (as for the reference servers, measured with rate limits off).
 */
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
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
} from '../src/auth/index.js';
import { SecretBytes, generateSigningKeyPair, randomBytes } from '../src/crypto/index.js';
import { PresencePublisher, SealDevice, parseEnvelope, sealMessage } from '../src/seal/index.js';
import { ImppServer } from '../src/service/server.js';
import { openSqliteServiceStore } from '../src/service/store/index.js';
import { createLoopbackPki } from '../test/helpers/tls-fixtures.js';
import { DOMAIN, PASSWORD, type DevKey, type LoadCommand, type LoadReply } from './service-load.js';

const quick = process.argv.includes('--quick');
/**
 * `--normal`: SQLite synchronous=NORMAL instead of FULL (WAL still survives a SIGKILL of the
 * process, not a power loss): shows how much of the message path is the fsync.
 */
/** `--phases=wire,messages,offline,presence,idle` (default: all). */
const phases = new Set(
  (
    process.argv.find((a) => a.startsWith('--phases='))?.slice(9) ??
    'wire,messages,offline,presence,idle'
  ).split(','),
);
const synchronous = process.argv.includes('--normal') ? 'normal' : 'full';
/**
 * `--generators=N`: load-generator processes for the 1:1 message phases (default 1). Each gets
 * whole sender/recipient pairs (latency is measured where both ends are) and 1/N of the rate.
 */
const generators = Math.max(
  1,
  Number(process.argv.find((a) => a.startsWith('--generators='))?.slice(13) ?? 1),
);
/** `--heap=DIR`: heap snapshots before and after the idle sessions (what each one holds). */
const heapDir = process.argv.find((a) => a.startsWith('--heap='))?.slice(7);
/** `--devices=100,1000`: connected devices of the message phases (default both). */
const deviceCounts = (process.argv.find((a) => a.startsWith('--devices='))?.slice(10) ?? '100,1000')
  .split(',')
  .map(Number);
const gc = (globalThis as { gc?: () => void }).gc;
const USERS = 1_001;
const DEVICES_PER_USER = 10;

function collect(): void {
  for (let i = 0; i < 3; i++) gc?.();
}

function load(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number | null, d = 0): string =>
  n === null || !Number.isFinite(n)
    ? 'n/a'
    : n.toLocaleString('en', { maximumFractionDigits: d, minimumFractionDigits: d });

/** Size of the ciphertext of a real sealed 100-byte message (second message of a session). */
function realSealedSizes(): { ciphertext: number; total: number; first: number } {
  const a = SealDevice.create(`sizer-a@${DOMAIN}/d0`, { oneTimePrekeys: 1 });
  const b = SealDevice.create(`sizer-b@${DOMAIN}/d0`, { oneTimePrekeys: 1 });
  const payload = randomBytes(100);
  const first = sealMessage(a, { to: b.device, bundle: b.bundle() }, 'message/cpim', payload);
  const second = sealMessage(a, { to: b.device }, 'message/cpim', payload);
  const env = parseEnvelope(second.bytes);
  if (env.kind === 3 || env.kind === 1) {
    return {
      ciphertext: env.ciphertext.length,
      total: second.bytes.length,
      first: first.bytes.length,
    };
  }
  throw new Error('unexpected kind');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'impp-bench-'));
  const rows: [string, string, string][] = [];
  const row = (what: string, value: string, ref: string): void => {
    rows.push([what, value, ref]);
    console.log(`  ${what}: ${value}${ref === '' ? '' : `   [ref: ${ref}]`}`);
  };
  console.log(
    `impp service bench — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ` +
      `loopback, TLS 1.3, SQLite WAL synchronous=${synchronous} in ${dir}`,
  );
  console.log(`load average at start: ${load()}`);
  const { ca, server: cert } = await createLoopbackPki();
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(scramServer({ plus: true }));
  const repository = new SqliteLocalAccountRepository(':memory:');
  await registry.registerProvider(localProvider({ repository, iterations: 4096 }));
  const accounts = new LocalAccounts(repository, DOMAIN, 4096);
  const policy = makeAuthPolicy(DOMAIN, [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }], {
    limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
  });
  const authenticator = new Authenticator(registry, policy, { audit: new MemoryAuditSink() });
  const store = openSqliteServiceStore({
    path: join(dir, 'service.db'),
    synchronous,
    quotas: { queueMaxCount: 1_000_000, queueMaxBytes: 1024 * 1024 * 1024 },
  });
  const server = new ImppServer({
    domain: DOMAIN,
    tls: { key: cert.keyPem, cert: cert.certPem },
    store,
    authenticator,
    domainKey: generateSigningKeyPair(),
    limits: {
      frameRate: 1_000_000,
      frameBurst: 1_000_000,
      maxPreAuthPerIp: 20_000,
      maxConnections: 25_000,
      preAuthTimeoutMs: 600_000,
      handshakeTimeoutMs: 60_000,
      idleTimeoutMs: 3_600_000,
      pingIntervalMs: 600_000,
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });

  // All generators bind devices with one identity key, derived from this seed.
  const seed = Buffer.from(randomBytes(32)).toString('hex');
  // Compiled (tsc to JS, as `impp serve` runs from dist/) or through tsx: the generator alike.
  const compiled = import.meta.url.endsWith('.js');
  const children = Array.from({ length: generators }, () =>
    fork(fileURLToPath(new URL(`./service-load.${compiled ? 'js' : 'ts'}`, import.meta.url)), [], {
      execArgv: compiled ? [] : ['--import', 'tsx'],
      env: { ...process.env, IMPP_BENCH_SEED: seed },
    }),
  );
  const child = children[0] as (typeof children)[number];
  const askOne = async (
    to: (typeof children)[number],
    command: LoadCommand,
  ): Promise<Exclude<LoadReply, { error: string }>> => {
    to.send(command);
    const [reply] = (await once(to, 'message')) as [LoadReply];
    if ('error' in reply) throw new Error(`load generator: ${reply.error}`);
    return reply;
  };
  /** The first generator does everything but the 1:1 message phases. */
  const ask = (command: LoadCommand): Promise<Exclude<LoadReply, { error: string }>> =>
    askOne(child, command);
  /** Disconnects every generator. */
  const disconnectAll = async (): Promise<void> => {
    await Promise.all(children.map((c) => askOne(c, { cmd: 'disconnect' })));
  };

  try {
    // ── Setup ──────────────────────────────────────────────────────────────────────────────
    const t0 = Date.now();
    const idReply = (await ask({ cmd: 'identity' })) as Extract<LoadReply, { ok: 'identity' }>;
    const identityKey = Buffer.from(idReply.publicKey, 'hex');
    const user = (i: number): string => `u${i}`;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < USERS; i++) {
      accounts.create(user(i), PASSWORD);
      for (let d = 0; d < DEVICES_PER_USER; d++) {
        pending.push(
          store.devices.register({
            address: `${user(i)}@${DOMAIN}`,
            deviceId: `d${d}`,
            identityKey,
            enrolment: randomBytes(64),
            createdAt: Date.now(),
          }),
        );
      }
    }
    await Promise.all(pending);
    console.log(
      `setup: ${fmt(USERS)} accounts, ${fmt(USERS * DEVICES_PER_USER)} registered devices in ${fmt((Date.now() - t0) / 1000, 1)} s`,
    );
    const sizes = realSealedSizes();
    console.log(
      `sealed 100-byte message (src/seal): ${sizes.total} B (first of a session, with X3DH: ${sizes.first} B); ` +
        `bench envelopes: real header + ${sizes.ciphertext} B random ciphertext`,
    );

    const connect = async (devs: DevKey[]): Promise<number> => {
      const r = (await ask({
        cmd: 'connect',
        port,
        ca: ca.certPem,
        devices: devs,
        concurrency: 32,
      })) as Extract<LoadReply, { ok: 'connect' }>;
      return r.seconds;
    };

    // ── 1. Wire bytes and round trips ───────────────────────────────────────────────────────
    const presDevice = SealDevice.create(`${user(0)}@${DOMAIN}/d9`, { oneTimePrekeys: 1 });
    const publisherW = new PresencePublisher(presDevice);
    const pidf = Buffer.from(
      '<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:u0@example.org"><tuple id="t"><status><basic>open</basic></status></tuple></presence>',
    );
    // u1 approves... no: watcher u1 watches u0.
    await store.subscriptions.transition({
      presentity: `${user(0)}@${DOMAIN}`,
      watcher: `${user(1)}@${DOMAIN}`,
      actor: `${user(1)}@${DOMAIN}`,
      action: 'request',
      at: Date.now(),
    });
    await store.subscriptions.transition({
      presentity: `${user(0)}@${DOMAIN}`,
      watcher: `${user(1)}@${DOMAIN}`,
      actor: `${user(0)}@${DOMAIN}`,
      action: 'approve',
      at: Date.now(),
    });
    if (phases.has('wire')) {
      console.log(`\n[wire] load ${load()}`);
      const w = (await ask({
        cmd: 'wire',
        port,
        ca: ca.certPem,
        sender: `${user(0)}/d9`,
        recipient: `${user(2)}/d9`,
        watcher: `${user(1)}/d9`,
        ciphertextBytes: sizes.ciphertext,
        presence: Buffer.from(publisherW.publish(pidf)).toString('hex'),
      })) as Extract<LoadReply, { ok: 'wire' }>;
      for (const [k, v] of Object.entries(w.report)) console.log(`  ${k}: ${String(v)}`);
      const rep = w.report;
      const num = (k: string): number => Number(rep[k]);
      row(
        '100-byte message, sender→server (TLS bytes on the wire)',
        `${num('sendWireBytes')} B (frame ${num('sendFrameBytes')} B, sealed object ${num('sealedMessageBytes')} B): ` +
          `overhead ${num('sendWireBytes') - 100} B over the payload, ${num('sendWireBytes') - num('sendFrameBytes')} B TLS`,
        '',
      );
      row(
        '100-byte message, server→recipient DELIVER',
        `${num('deliverWireBytes')} B (overhead ${num('deliverWireBytes') - 100} B); sender's RESULT ${num('resultWireBytes')} B`,
        '',
      );
      row(
        'presence update (PIDF ' + String(pidf.length) + ' B), publisher→server',
        `${num('publishWireBytes')} B (frame ${num('publishFrameBytes')} B, sealed ${num('sealedPresenceBytes')} B)`,
        '',
      );
      row(
        'presence update, server→one watcher',
        `${num('presenceWireBytes')} B (overhead ${num('presenceWireBytes') - pidf.length} B over the PIDF)`,
        '',
      );
      row(
        'TCP connect → first message answered, cold (median of 9)',
        `${fmt(num('coldMedianMs'), 2)} ms wall on loopback`,
        '',
      );
      row(
        'same with TLS session resumption (median of 9)',
        `${fmt(num('resumedMedianMs'), 2)} ms wall; resumed=${String(rep.resumedReused)}`,
        '',
      );
    }

    // ── 2. Throughput and latency, 100 and 1,000 devices ──────────────────────────────────
    const seconds = quick ? 3 : 6;
    for (const n of phases.has('messages') ? deviceCounts : []) {
      // n devices: u1..un, device d0, in pairs (2k+1 ↔ 2k+2) both ways.
      const devs: DevKey[] = Array.from({ length: n }, (_, i) => `${user(i + 1)}/d0`);
      await disconnectAll();
      // Pair k (devices 2k and 2k+1) goes to generator k mod N.
      const share = (g: number): DevKey[] =>
        devs.filter((_, i) => Math.floor(i / 2) % generators === g);
      const tc = performance.now();
      await Promise.all(
        children.map((c, g) =>
          askOne(c, { cmd: 'connect', port, ca: ca.certPem, devices: share(g), concurrency: 32 }),
        ),
      );
      const connSec = (performance.now() - tc) / 1000;
      console.log(
        `\n[${fmt(n)} devices] connected and bound in ${fmt(connSec, 1)} s; server sees ${fmt(server.onlineDevices)} online; load ${load()}`,
      );
      const pairsOf = (g: number): [DevKey, DevKey][] => {
        const mine = share(g);
        const out: [DevKey, DevKey][] = [];
        for (let i = 0; i + 1 < mine.length; i += 2) {
          out.push([mine[i] as DevKey, mine[i + 1] as DevKey]);
          out.push([mine[i + 1] as DevKey, mine[i] as DevKey]);
        }
        return out;
      };
      type Run = Extract<LoadReply, { ok: 'messages' }>;
      /** Runs on every generator at once and merges: counts add up, latencies pooled. */
      const run = async (
        command: Omit<Extract<LoadCommand, { cmd: 'messages' }>, 'pairs' | 'samples'>,
      ): Promise<Run> => {
        const parts = (await Promise.all(
          children.map((c, g) =>
            askOne(c, {
              ...command,
              pairs: pairsOf(g),
              samples: true,
              ...(command.rate === undefined ? {} : { rate: command.rate / generators }),
            }),
          ),
        )) as Run[];
        const lat = Float64Array.from(parts.flatMap((p) => p.samples ?? [])).sort();
        const pct = (p: number): number =>
          lat.length === 0
            ? -1
            : (lat[Math.min(lat.length - 1, Math.floor((lat.length * p) / 100))] as number);
        return {
          ok: 'messages',
          sent: parts.reduce((a, p) => a + p.sent, 0),
          completed: parts.reduce((a, p) => a + p.completed, 0),
          seconds: Math.max(...parts.map((p) => p.seconds)),
          p50: pct(50),
          p99: pct(99),
          max: lat.length === 0 ? -1 : (lat[lat.length - 1] as number),
          errors: parts.reduce((a, p) => a + p.errors, 0),
          drainSeconds: Math.max(...parts.map((p) => p.drainSeconds)),
          cpuSeconds: parts.reduce((a, p) => a + p.cpuSeconds, 0),
        };
      };
      const window = Math.max(2, Math.round(800 / n));
      const b0 = store.batchStats;
      const before = { batches: b0.batches, ops: b0.operations };
      const cpu0 = process.cpuUsage();
      const t = await run({
        cmd: 'messages',
        ciphertextBytes: sizes.ciphertext,
        window,
        seconds,
        offline: false,
      });
      const cpu = process.cpuUsage(cpu0);
      const cpuSec = (cpu.user + cpu.system) / 1e6;
      const b1 = store.batchStats;
      const batches = b1.batches - before.batches;
      const ops = b1.operations - before.ops;
      console.log(
        `  closed loop: sent ${fmt(t.sent)}, delivered ${fmt(t.completed)} in ${fmt(t.seconds, 1)} s, errors ${t.errors}; ` +
          `backlog drained in ${fmt(t.drainSeconds, 1)} s; server CPU ${fmt((cpuSec / (t.seconds + t.drainSeconds + 0.5)) * 100)}% of a core, ${fmt((cpuSec * 1e6) / Math.max(1, t.completed))} µs per message; ${fmt(batches)} commits (${fmt(ops / Math.max(1, batches), 1)} ops each); ${generators} generator(s) used ${fmt((t.cpuSeconds / t.seconds) * 100)}% of a core`,
      );
      row(
        `sealed 1:1 msg/s, ${fmt(n)} devices, closed loop (window ${window}/sender)`,
        `${fmt(t.completed / t.seconds)} msg/s; p50 ${fmt(t.p50, 2)} ms, p99 ${fmt(t.p99, 2)} ms`,
        'ejabberd 27–30k, Prosody 17–18k, bare TLS router 55–80k frames/s/core',
      );
      for (const rate of [10_000, 5_000, 2_000, 1_000]) {
        const lc0 = process.cpuUsage();
        const l = await run({
          cmd: 'messages',
          ciphertextBytes: sizes.ciphertext,
          rate,
          seconds: quick ? 3 : 5,
          offline: false,
        });
        const lc = process.cpuUsage(lc0);
        const serverCpu = (lc.user + lc.system) / 1e6 / (l.seconds + l.drainSeconds + 0.5);
        const sustained = l.completed >= 0.97 * l.sent && l.drainSeconds < 1;
        console.log(
          `  fixed ${fmt(rate)}/s: sent ${fmt(l.sent)}, delivered ${fmt(l.completed)} (${fmt(l.completed / l.seconds)}/s) ` +
            `p50 ${fmt(l.p50, 2)} ms, p99 ${fmt(l.p99, 2)} ms, max ${fmt(l.max, 1)} ms; backlog drained in ${fmt(l.drainSeconds, 1)} s; ${sustained ? 'sustained' : 'NOT sustained'}; server CPU ${fmt(serverCpu * 100)}%, generators ${fmt((l.cpuSeconds / l.seconds) * 100)}% of a core; load ${load()}`,
        );
        row(
          `fixed ${fmt(rate)} msg/s offered, ${fmt(n)} devices`,
          `${fmt(l.completed / l.seconds)} msg/s delivered; p50 ${fmt(l.p50, 2)} ms, p99 ${fmt(l.p99, 2)} ms` +
            (sustained ? '' : ' (NOT sustained)'),
          rate === 10_000 ? 'aim: p99 < 2 ms at 10k/s' : '',
        );
        if (sustained) break;
      }
    }

    // ── 3. Offline store with durable commits ───────────────────────────────────────────────
    if (phases.has('offline')) {
      await disconnectAll();
      const senders: DevKey[] = Array.from({ length: 100 }, (_, i) => `${user(i + 1)}/d1`);
      await connect(senders);
      // Each sender to an offline device of another user (d2, never connected).
      const pairs: [DevKey, DevKey][] = senders.map((s, i) => [
        s,
        `${user(((i + 50) % 100) + 1)}/d2`,
      ]);
      const b0 = store.batchStats;
      const before = { batches: b0.batches, ops: b0.operations };
      console.log(`\n[offline store] 100 senders, recipients offline; load ${load()}`);
      const o = (await ask({
        cmd: 'messages',
        pairs,
        ciphertextBytes: sizes.ciphertext,
        window: 8,
        seconds,
        offline: true,
      })) as Extract<LoadReply, { ok: 'messages' }>;
      const b1 = store.batchStats;
      const batches = b1.batches - before.batches;
      console.log(
        `  stored ${fmt(o.completed)} in ${fmt(o.seconds, 1)} s, errors ${o.errors}; ${fmt(batches)} commits, ` +
          `${fmt((b1.operations - before.ops) / Math.max(1, batches), 1)} ops each`,
      );
      row(
        'messages/s into the offline store (durable group commit, 100 senders × window 8)',
        `${fmt(o.completed / o.seconds)} msg/s; SEND→RESULT p50 ${fmt(o.p50, 2)} ms, p99 ${fmt(o.p99, 2)} ms`,
        '',
      );
    }

    // ── 4. Presence fan-out to 1,000 approved watchers ──────────────────────────────────────
    if (phases.has('presence')) {
      await disconnectAll();
      const presentity = `${user(0)}@${DOMAIN}`;
      const watchers: DevKey[] = Array.from({ length: 1_000 }, (_, i) => `${user(i + 1)}/d3`);
      const subs: Promise<unknown>[] = [];
      for (let i = 2; i <= 1_000; i++) {
        const watcher = `${user(i)}@${DOMAIN}`;
        subs.push(
          store.subscriptions
            .transition({ presentity, watcher, actor: watcher, action: 'request', at: Date.now() })
            .then(() =>
              store.subscriptions.transition({
                presentity,
                watcher,
                actor: presentity,
                action: 'approve',
                at: Date.now(),
              }),
            ),
        );
      }
      await Promise.all(subs);
      console.log(
        `\n[presence] ${fmt((await store.subscriptions.approvedWatchers(presentity)).length)} approved watchers`,
      );
      await connect([`${user(0)}/d3`, ...watchers]);
      await sleep(1_000);
      const pubDevice = SealDevice.create(`${presentity}/d3`, { oneTimePrekeys: 1 });
      // Version 1 of this presentity was published in the wire phase: continue after it.
      const publisher = new PresencePublisher(pubDevice, undefined, 1);
      const objects = Array.from({ length: quick ? 3 : 10 }, () =>
        Buffer.from(publisher.publish(pidf)).toString('hex'),
      );
      console.log(`  load ${load()}`);
      const cpu0 = process.cpuUsage();
      const p = (await ask({
        cmd: 'presence',
        publisher: `${user(0)}/d3`,
        watchers,
        objects,
      })) as Extract<LoadReply, { ok: 'presence' }>;
      const cpu = process.cpuUsage(cpu0);
      const delivered = p.runs.reduce((s, r) => s + r.delivered, 0);
      for (const r of p.runs)
        console.log(
          `  publish: RESULT after ${fmt(r.resultMs, 2)} ms (delivered ${fmt(r.delivered)}), ${fmt(r.got)} received, last after ${fmt(r.lastMs, 2)} ms`,
        );
      const last = p.runs.map((r) => r.lastMs).sort((a, b) => a - b);
      const cpuUs = cpu.user + cpu.system;
      row(
        'presence update → 1,000 approved watchers: time to last delivery',
        `median ${fmt(last[Math.floor(last.length / 2)] ?? NaN, 2)} ms (min ${fmt(last[0] ?? NaN, 2)}, max ${fmt(last[last.length - 1] ?? NaN, 2)}; ${p.runs.length} publishes)`,
        '',
      );
      row(
        'server CPU per presence delivery',
        `${fmt(cpuUs / Math.max(1, delivered), 1)} µs (process.cpuUsage over ${fmt(delivered)} deliveries, incl. ${p.runs.length}×200 ms idle gaps)`,
        '',
      );
    }

    // ── 5. Memory per idle authenticated session ──────────────────────────────────────────
    if (phases.has('idle')) {
      await disconnectAll();
      await sleep(1_000);
      if (gc === undefined) console.log('(run with node --expose-gc for steadier memory figures)');
      collect();
      const base = process.memoryUsage();
      if (heapDir !== undefined) writeHeapSnapshot(join(heapDir, 'idle-before.heapsnapshot'));
      console.log(`\n[idle sessions] load ${load()}`);
      let opened = 0;
      const targets = quick ? [1_000] : [1_000, 10_000];
      for (const target of targets) {
        const devs: DevKey[] = [];
        for (let k = opened; k < target; k++) {
          devs.push(`${user(k % USERS)}/d${Math.floor(k / USERS)}`);
        }
        const sec = await connect(devs);
        opened = target;
        await sleep(2_000);
        collect();
        const now = process.memoryUsage();
        const online = server.onlineDevices;
        if (heapDir !== undefined) {
          writeHeapSnapshot(join(heapDir, `idle-${online}.heapsnapshot`));
        }
        console.log(
          `  ${fmt(online)} bound sessions (connected in ${fmt(sec, 1)} s); load ${load()}`,
        );
        row(
          `memory per idle authenticated device session at ${fmt(online)}`,
          `RSS ${fmt((now.rss - base.rss) / online / 1024, 1)} KB, heap ${fmt((now.heapUsed - base.heapUsed) / online / 1024, 1)} KB, ` +
            `external+buffers ${fmt((now.external + now.arrayBuffers - base.external - base.arrayBuffers) / online / 1024, 1)} KB`,
          'aim < 35 KB; bare TLS 28 KB, ejabberd 70 KB, Prosody 52 KB',
        );
        // Presence fan-out and subscription pushes look up a user's sessions with onlineOf(),
        // which scans every online session: its cost grows with the number online.
        const calls = 1_000;
        const tScan = performance.now();
        let found = 0;
        for (let i = 0; i < calls; i++)
          found += server.onlineOf(`${user(i % USERS)}@${DOMAIN}`).length;
        const perCall = ((performance.now() - tScan) / calls) * 1000;
        console.log(
          `  onlineOf(address) with ${fmt(online)} online: ${fmt(perCall, 1)} µs per call (${fmt(found)} sessions found)`,
        );
        row(
          `server.onlineOf(address) lookup at ${fmt(online)} online (per watcher in a presence fan-out)`,
          `${fmt(perCall, 1)} µs per call → ${fmt((perCall * 1_000) / 1000, 1)} ms of CPU per update to 1,000 watchers`,
          '',
        );
      }
    }
  } finally {
    await disconnectAll().catch(() => undefined);
    for (const c of children) c.kill();
    await server.close();
    await store.close();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`\nload average at end: ${load()}\n`);
  console.log('| measure | impp | reference |');
  console.log('|---|---|---|');
  for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
}

await main();
