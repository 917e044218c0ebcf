/**
 * Federation benchmark (issue 7, "Measure"): cross-domain sealed messages per second and their
 * latency, beside the single-domain figure from the same run and the same process layout.
 *
 * Two domains, a.example and b.example, each a whole server (ImppServer + FederationNode over its
 * own SQLite store, synchronous=FULL) in its own process (test/federation/domain-child.ts), on
 * loopback. Senders are on a.example; each of `concurrency` of them runs a closed loop — seal
 * and send one message, wait until the recipient's application (the real SDK, `message` event)
 * has opened it, send the next — to a recipient on b.example (cross-domain) and then, with the
 * same parameters, to one on a.example (single-domain). Two kinds of sender:
 *
 * - `sealed SEND`: a device that speaks the client protocol (seal layer, one prekey-bundle
 *   look-up per pair at the start, then one SEND per message): what the servers and the link
 *   carry per message;
 * - `SDK`: `ImppClient.sendMessage`, which also asks for (and verifies) the recipient's device
 *   list on every send; across domains that is a look-up over the link, answered by the
 *   recipient's domain.
 *
 * Latency: from the start of the send (sealing included) to the recipient's `message` event;
 * RESULT: to the sender's server's answer (durably stored, or queued for the peer). A warm-up
 * of a few messages per pair (sessions, links) is not counted.
 *
 * Each connection stays under the server's inbound frame rate (transport default 200 frames a
 * second, burst 400, per connection; above it the server closes the connection): with one or two
 * senders on an idle machine a closed loop can exceed it, so keep `--concurrency` at 4 or more.
 *
 * Run: `npx tsx bench/federation.ts [--messages N] [--sdk-messages M] [--concurrency C]
 * [--warmup W] [--drain]` (defaults 2000, 200, 8, 3). `--drain` then runs
 * bench/federation-drain.ts (the time to drain a queue of 100,000 objects once a peer comes
 * back) and prints its figures.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type ImppClient, bundleFromAnswer } from '../src/client/client.js';
import { generateSigningKeyPair } from '../src/crypto/index.js';
import { ClientFrame } from '../src/protocol/frames.js';
import { sealForDevices } from '../src/seal/message.js';
import { cpimTextMessage, encodeCpim } from '../src/seal/payload/cpim.js';
import { SealDevice } from '../src/seal/session.js';
import type { PrekeyBundle } from '../src/seal/x3dh.js';
import type { CborValue } from '../src/transport/cbor-strict.js';
import { RawClient, asBody } from '../src/threats/raw.js';
import { connectTls } from '../src/transport/tls-client.js';
import { parseAddress } from '../src/trust/address.js';
import { createDeviceList } from '../src/trust/device-list.js';
import { PASSWORD, startFederation } from '../test/federation/domains.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    'sdk-messages': { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '3' },
    drain: { type: 'boolean', default: false },
  },
});
const messages = Number(values.messages);
const sdkMessages = Number(values['sdk-messages']);
const concurrency = Number(values.concurrency);
const warmup = Number(values.warmup);
if (![messages, sdkMessages, concurrency, warmup].every((n) => Number.isSafeInteger(n) && n >= 0)) {
  throw new Error('--messages, --sdk-messages, --concurrency and --warmup take integers >= 0');
}
if (concurrency < 1) throw new Error('--concurrency must be at least 1');

/** A sending device on the wire: registers, then seals with the seal layer and SENDs. */
class SealingSender {
  readonly #raw: RawClient;
  readonly #device: SealDevice;
  readonly #bundles = new Map<string, PrekeyBundle>();

  private constructor(raw: RawClient, device: SealDevice) {
    this.#raw = raw;
    this.#device = device;
  }

  static async open(
    port: number,
    ca: string,
    address: string,
    deviceId: string,
  ): Promise<SealingSender> {
    const raw = new RawClient(
      await connectTls({ host: '127.0.0.1', port, ca, servername: 'localhost' }),
    );
    const identity = generateSigningKeyPair();
    await raw.auth(parseAddress(address).user, PASSWORD);
    await raw.bind(deviceId, identity);
    const device = SealDevice.create(`${address}/${deviceId}`, { identity, oneTimePrekeys: 5 });
    const pub = device.publicPrekeys();
    const list = createDeviceList({
      address: parseAddress(address),
      counter: 1,
      devices: [{ deviceId, identityKey: identity.publicKey }],
      signer: { deviceId, secretKey: identity.secretKey },
    });
    const r = await raw.request(ClientFrame.REGISTER, {
      signedPrekey: pub.signedPrekey,
      oneTimePrekeys: pub.oneTimePrekeys,
      deviceList: list.bytes,
    });
    if (!r.ok) throw new Error(`register refused: ${r.code}`);
    return new SealingSender(raw, device);
  }

  /** Seals `text` for the (one) device of `to` and sends it; resolves at RESULT. */
  async send(to: string, text: string): Promise<void> {
    let bundle = this.#bundles.get(to);
    if (bundle === undefined) {
      const r = await this.#raw.request(ClientFrame.GET_BUNDLES, { address: to });
      if (!r.ok) throw new Error(`no bundle for ${to}: ${r.code}`);
      const list = r.body.bundles;
      const first = Array.isArray(list) ? (list as readonly CborValue[])[0] : undefined;
      if (first === undefined) throw new Error(`no bundle for ${to}`);
      bundle = bundleFromAnswer(asBody(first));
      this.#bundles.set(to, bundle);
    }
    const sender = this.#device.device;
    const cpim = encodeCpim(
      cpimTextMessage({
        from: { address: parseAddress(sender.slice(0, sender.indexOf('/'))) },
        to: [{ address: parseAddress(to) }],
        text,
      }),
    );
    const target = this.#device.hasSession(bundle.device)
      ? { to: bundle.device, identityKey: bundle.identityKey }
      : { to: bundle.device, bundle, identityKey: bundle.identityKey };
    const [sealed] = sealForDevices(this.#device, [target], 'message/cpim', cpim);
    if (sealed === undefined) throw new Error('nothing sealed');
    const r = await this.#raw.request(ClientFrame.SEND, { object: sealed.bytes }, 30_000);
    if (!r.ok) throw new Error(`SEND refused: ${r.code}`);
  }

  close(): void {
    this.#raw.close();
  }
}

/** One scenario's figures. */
interface Figures {
  readonly name: string;
  readonly count: number;
  readonly seconds: number;
  readonly latency: number[];
  readonly acked: number[];
  /** CPU time per message, µs: a.example's and b.example's server processes, this process. */
  readonly cpu: { readonly a: number; readonly b: number; readonly bench: number };
}

/** Clock ticks per second of /proc/<pid>/stat (proc(5)); 100 on Linux unless configured. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU time of process `pid` so far, µs (fields 14 and 15 of proc(5) stat). */
function processCpuMicros(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const users = ['s', 'k', 'r'].flatMap((p) =>
  Array.from({ length: concurrency }, (_, i) => `${p}${i}`),
);
const root = mkdtempSync(join(tmpdir(), 'impp-bench-federation-'));
const fed = await startFederation(root, ['a.example', 'b.example'], users);
const results: Figures[] = [];
try {
  const a = fed.get('a.example');
  const ca = fed.clientCa.certPem;
  const connect = async (address: string): Promise<ImppClient> => {
    const c = fed.client(address, 'bench');
    c.on('close', () => undefined);
    await c.connect();
    return c;
  };
  const pairs = Array.from({ length: concurrency }, (_, i) => i);
  // `s<i>` send sealed objects, `k<i>` use the SDK; `r<i>` receive, on either domain.
  const sealing = await Promise.all(
    pairs.map((i) => SealingSender.open(a.clientPort, ca, `s${i}@a.example`, 'bench')),
  );
  const sdk = await Promise.all(pairs.map((i) => connect(`k${i}@a.example`)));

  const run = async (
    name: string,
    domain: string,
    count: number,
    send: (i: number, to: string, text: string) => Promise<void>,
  ): Promise<void> => {
    const perSender = Math.floor(count / concurrency);
    if (perSender === 0) return;
    const to = await Promise.all(pairs.map((i) => connect(`r${i}@${domain}`)));
    const waiting = new Map<string, () => void>();
    for (const r of to) {
      r.on('message', (m) => {
        const done = waiting.get(m.text);
        waiting.delete(m.text);
        done?.();
      });
    }
    const latency: number[] = [];
    const acked: number[] = [];
    const one = async (i: number, tag: string, record: boolean): Promise<void> => {
      const received = new Promise<void>((resolve) => waiting.set(tag, resolve));
      const t0 = performance.now();
      await send(i, (to[i] as ImppClient).address, tag);
      const t1 = performance.now();
      await received;
      if (record) {
        acked.push(t1 - t0);
        latency.push(performance.now() - t0);
      }
    };
    const loop = async (n: number, label: string, record: boolean): Promise<void> => {
      await Promise.all(
        pairs.map(async (i) => {
          for (let k = 0; k < n; k++) await one(i, `${name} ${label} ${i}.${k}`, record);
        }),
      );
    };
    await loop(warmup, 'warm-up', false);
    const pidA = fed.get('a.example').proc?.pid;
    const pidB = fed.get('b.example').proc?.pid;
    const before = {
      a: processCpuMicros(pidA),
      b: processCpuMicros(pidB),
      bench: process.cpuUsage(),
    };
    const start = performance.now();
    await loop(perSender, 'run', true);
    const seconds = (performance.now() - start) / 1000;
    const n = perSender * concurrency;
    const benchUsed = process.cpuUsage(before.bench);
    const cpu = {
      a: (processCpuMicros(pidA) - before.a) / n,
      b: (processCpuMicros(pidB) - before.b) / n,
      bench: (benchUsed.user + benchUsed.system) / n,
    };
    for (const r of to) await r.close();
    results.push({ name, count: n, seconds, latency, acked, cpu });
  };

  const sealed = (i: number, to: string, text: string): Promise<void> =>
    (sealing[i] as SealingSender).send(to, text);
  const viaSdk = async (i: number, to: string, text: string): Promise<void> => {
    await (sdk[i] as ImppClient).sendMessage(to, text);
  };
  await run('sealed SEND, a → a', 'a.example', messages, sealed);
  await run('sealed SEND, a → b', 'b.example', messages, sealed);
  await run('SDK, a → a', 'a.example', sdkMessages, viaSdk);
  await run('SDK, a → b', 'b.example', sdkMessages, viaSdk);
  for (const s of sealing) s.close();
  for (const c of sdk) await c.close();
} finally {
  await fed.close();
  rmSync(root, { recursive: true, force: true });
}

const ms = (x: number, width = 8): string => x.toFixed(1).padStart(width);
console.log(
  `federation bench: two domains in two processes on loopback; ${concurrency} closed-loop ` +
    `sender(s); warm-up ${warmup} per sender; ${cpus().length} CPU(s), node ${process.version}`,
);
console.log(
  `${'scenario'.padEnd(20)} ${'msgs'.padStart(6)} ${'msgs/s'.padStart(8)} ${'p50 ms'.padStart(8)} ` +
    `${'p99 ms'.padStart(8)} ${'RESULT p50'.padStart(10)} ${'RESULT p99'.padStart(10)} ` +
    `${'CPU µs/msg: a'.padStart(14)} ${'b'.padStart(6)} ${'bench'.padStart(6)}`,
);
for (const f of results) {
  const l = [...f.latency].sort((x, y) => x - y);
  const r = [...f.acked].sort((x, y) => x - y);
  console.log(
    `${f.name.padEnd(20)} ${String(f.count).padStart(6)} ` +
      `${String(Math.round(f.count / f.seconds)).padStart(8)} ${ms(quantile(l, 0.5))} ` +
      `${ms(quantile(l, 0.99))} ${ms(quantile(r, 0.5), 10)} ${ms(quantile(r, 0.99), 10)} ` +
      `${String(Math.round(f.cpu.a)).padStart(14)} ${String(Math.round(f.cpu.b)).padStart(6)} ` +
      String(Math.round(f.cpu.bench)).padStart(6),
  );
}
console.log(
  'latency: send started (sealing included) → recipient app opened it; RESULT: → sender’s ' +
    'server answered. SDK rows include a device-list look-up per send (over the link for a → b).\n' +
    'CPU µs/msg: user+system time of each domain’s server process and of this process (senders ' +
    'and recipients), per measured message. When `bench` nears 1e6 / (msgs/s), this process is ' +
    'the bottleneck, not the servers.',
);

if (values.drain) {
  console.log('\nqueue drain (bench/federation-drain.ts 100000):');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'federation-drain.ts'), '100000'],
      { stdio: 'inherit' },
    );
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`federation-drain exited with ${String(code)}`));
    });
  });
} else {
  console.log(
    '\nqueue drain: `npx tsx bench/federation-drain.ts 100000` (or --drain here) prints the ' +
      'time to drain 100,000 queued objects once the peer comes back.',
  );
}
