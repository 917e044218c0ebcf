/**
 * Load generator for bench/service.ts, run in its own process (child_process.fork with
 * `node --import tsx`) so that it never shares an event loop with the server. It speaks the client
 * protocol directly (docs/protocol.md, "Client protocol"): TLS 1.3, SCRAM-SHA-256-PLUS in frames,
 * device binding, then SEND / ACK / PUBLISH. Commands arrive over IPC; every loop is bounded in
 * count and time.
 *
 * Messages are opaque sealed envelopes built with the seal header codec (src/seal/header.ts):
 * a real header (version, suite, kind, recipient device, message id, ephemeral key) around random
 * ciphertext of the length a real sealed 100-byte message has (the parent measures it with
 * src/seal). One template per recipient is encoded once; each message is a copy with a fresh
 * message id, so the generator does no crypto per message.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { authenticate, type ClientSaslTransport, type ServerReply } from '../src/auth/client.js';
import { scramClient } from '../src/auth/scram/client.js';
import type { AuthWireFailure } from '../src/auth/types.js';
import type { ClientMechanismFactory } from '../src/auth/types.js';
import { generateSigningKeyPair, randomBytes, sign } from '../src/crypto/index.js';
import { encodeCbor } from '../src/seal/cbor.js';
import { SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256, SealKind } from '../src/seal/constants.js';
import { sessionHeaderMap } from '../src/seal/header.js';
import { bindingTranscript } from '../src/service/binding.js';
import { ClientFrame } from '../src/service/protocol.js';
import type { CborValue } from '../src/transport/cbor-strict.js';
import type { Connection } from '../src/transport/connection.js';
import type { Frame } from '../src/transport/frame-codec.js';
import { connectTls } from '../src/transport/tls-client.js';

export const DOMAIN = 'example.org';
export const PASSWORD = 'bench password';

/** A device key: `user/deviceId` (user without the domain). */
export type DevKey = string;

export type LoadCommand =
  | { cmd: 'identity' }
  | { cmd: 'connect'; port: number; ca: string; devices: DevKey[]; concurrency: number }
  | { cmd: 'disconnect' }
  | {
      cmd: 'messages';
      /** [sender, recipient] pairs; recipients may be offline (then only RESULTs count). */
      pairs: [DevKey, DevKey][];
      ciphertextBytes: number;
      /** Outstanding messages per sender (closed loop) — or `rate` for an open loop. */
      window?: number;
      rate?: number;
      seconds: number;
      offline: boolean;
      /** Return every latency sample, so that a parent can merge several generators. */
      samples?: boolean;
    }
  | { cmd: 'presence'; publisher: DevKey; watchers: DevKey[]; objects: string[] }
  | {
      cmd: 'wire';
      port: number;
      ca: string;
      sender: DevKey;
      recipient: DevKey;
      ciphertextBytes: number;
      presence: string;
      watcher: DevKey;
    };

export type LoadReply =
  | { ok: 'identity'; publicKey: string }
  | { ok: 'connect'; connected: number; seconds: number }
  | { ok: 'disconnect' }
  | {
      ok: 'messages';
      sent: number;
      completed: number;
      seconds: number;
      p50: number;
      p99: number;
      max: number;
      errors: number;
      /** Time after the run until every SEND was answered (backlog left in the server). */
      drainSeconds: number;
      /** CPU this generator used during the run (user + system), seconds. */
      cpuSeconds: number;
      /** Latency samples in ms, when asked for. */
      samples?: number[];
    }
  | { ok: 'presence'; runs: { lastMs: number; resultMs: number; delivered: number; got: number }[] }
  | { ok: 'wire'; report: Record<string, number | string> }
  | { error: string };

type Body = { readonly [key: string]: CborValue };

/**
 * Every generator process signs bindings with the same device identity key (the parent registers
 * devices with it), derived from the seed the parent passes; a lone generator may make its own.
 */
const seedHex = process.env.IMPP_BENCH_SEED;
const identity = generateSigningKeyPair(
  seedHex === undefined ? undefined : Uint8Array.from(Buffer.from(seedHex, 'hex')),
);
const factoriesByUser = new Map<string, readonly ClientMechanismFactory[]>();

/** One bound device over one connection. */
class Device {
  #nextId = 1;
  readonly #pending = new Map<number, (f: Frame) => void>();
  readonly #auth: Frame[] = [];
  #authWaiter: (() => void) | undefined;
  onDeliver: ((seq: number, object: Uint8Array) => void) | undefined;
  onPresence: ((object: Uint8Array) => void) | undefined;
  errors = 0;

  constructor(
    readonly key: DevKey,
    readonly conn: Connection,
  ) {
    conn.on('frame', (f) => {
      this.#frame(f);
    });
  }

  get address(): string {
    return `${this.key.split('/')[0] ?? ''}@${DOMAIN}`;
  }

  get deviceId(): string {
    return this.key.split('/')[1] ?? '';
  }

  get device(): string {
    return `${this.address}/${this.deviceId}`;
  }

  #frame(f: Frame): void {
    const b = f.body as Body;
    switch (f.type) {
      case ClientFrame.RESULT:
      case ClientFrame.ERROR: {
        const id = b.id as number;
        const cb = this.#pending.get(id);
        this.#pending.delete(id);
        if (f.type === ClientFrame.ERROR) this.errors++;
        cb?.(f);
        return;
      }
      case ClientFrame.DELIVER:
        this.onDeliver?.(b.seq as number, b.object as Uint8Array);
        return;
      case ClientFrame.PRESENCE:
        this.onPresence?.(b.object as Uint8Array);
        return;
      default:
        this.#auth.push(f);
        this.#authWaiter?.();
    }
  }

  /** Sends a request; `cb` gets RESULT or ERROR. */
  request(type: number, body: Body, cb?: (f: Frame) => void): void {
    const id = this.#nextId++;
    if (cb !== undefined) this.#pending.set(id, cb);
    this.conn.send(type, { ...body, id });
  }

  requestAsync(type: number, body: Body): Promise<Frame> {
    return new Promise((resolve) => {
      this.request(type, body, resolve);
    });
  }

  /** The next pre-bind frame of one of `types`, within 30 s. */
  async take(types: readonly number[]): Promise<Frame> {
    const deadline = Date.now() + 30_000;
    for (let i = 0; i < 100; i++) {
      const idx = this.#auth.findIndex((f) => types.includes(f.type));
      if (idx >= 0) return this.#auth.splice(idx, 1)[0] as Frame;
      if (this.conn.state !== 'open') throw new Error(`${this.key}: connection closed`);
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => {
          reject(new Error(`${this.key}: no frame`));
        }, deadline - Date.now());
        this.#authWaiter = () => {
          clearTimeout(t);
          this.#authWaiter = undefined;
          resolve();
        };
      });
    }
    throw new Error('too many frames');
  }

  /** SCRAM-SHA-256-PLUS, then device binding (docs/protocol.md). */
  async login(): Promise<void> {
    const offer = (await this.take([ClientFrame.AUTH_OFFER])).body as Body;
    let nonce: Uint8Array | undefined;
    const reply = async (): Promise<ServerReply> => {
      const f = await this.take([
        ClientFrame.AUTH_CHALLENGE,
        ClientFrame.AUTH_SUCCESS,
        ClientFrame.AUTH_FAILURE,
      ]);
      const b = f.body as Body;
      if (f.type === ClientFrame.AUTH_CHALLENGE)
        return { type: 'challenge', challenge: b.data as Uint8Array };
      if (f.type === ClientFrame.AUTH_SUCCESS) {
        nonce = b.nonce as Uint8Array;
        return { type: 'success', additionalData: (b.additionalData as Uint8Array | null) ?? null };
      }
      return { type: 'failure', failure: b.failure as AuthWireFailure };
    };
    const transport: ClientSaslTransport = {
      start: (mechanism, initial) => {
        this.conn.send(ClientFrame.AUTH_START, { mechanism, initial });
        return reply();
      },
      respond: (data) => {
        this.conn.send(ClientFrame.AUTH_RESPONSE, { data });
        return reply();
      },
    };
    const user = this.key.split('/')[0] ?? '';
    let factories = factoriesByUser.get(user);
    if (factories === undefined) {
      // One factory per user: it caches the salted password (RFC 5802 §5.1).
      factories = scramClient({ username: user, password: PASSWORD, channelBinding: 'require' });
      factoriesByUser.set(user, factories);
    }
    const exporter = this.conn.channelBinding();
    await authenticate(
      transport,
      factories,
      offer.mechanisms as string[],
      { secure: true, tlsVersion: 'TLSv1.3', tlsExporter: exporter },
      { requireChannelBinding: true },
    );
    const signature = sign(
      identity.secretKey,
      bindingTranscript({
        exporter,
        nonce: nonce as Uint8Array,
        address: this.address,
        deviceId: this.deviceId,
        identityKey: identity.publicKey,
      }),
    );
    this.conn.send(ClientFrame.BIND, {
      deviceId: this.deviceId,
      identityKey: identity.publicKey,
      signature,
    });
    const bound = (await this.take([ClientFrame.BOUND])).body as Body;
    if (bound.registered !== true) throw new Error(`${this.key}: not registered`);
  }
}

async function open(
  port: number,
  ca: string,
  key: DevKey,
  session?: Buffer,
  onSession?: (s: Buffer) => void,
): Promise<Device> {
  const conn = await connectTls({
    host: '127.0.0.1',
    port,
    ca,
    servername: 'localhost',
    connectTimeoutMs: 60_000,
    ...(session === undefined ? {} : { session }),
    ...(onSession === undefined ? {} : { onSession }),
  });
  const dev = new Device(key, conn);
  await dev.login();
  return dev;
}

const devices = new Map<DevKey, Device>();

async function connectAll(
  port: number,
  ca: string,
  keys: DevKey[],
  concurrency: number,
): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++] as DevKey;
      if (devices.has(key)) continue;
      devices.set(key, await open(port, ca, key));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return devices.size;
}

/** Envelope template for `recipient`: the message id is at `idOffset` (16 bytes). */
function template(recipient: string, ciphertextBytes: number): { bytes: Buffer; idOffset: number } {
  const marker = Buffer.from('IMPPBENCHMARKID!');
  const map = sessionHeaderMap(
    SealKind.message,
    SUITE_X25519_ED25519_XCHACHA20POLY1305_SHA256,
    recipient,
    marker,
    randomBytes(32),
  );
  map.set(6, randomBytes(ciphertextBytes));
  const bytes = Buffer.from(encodeCbor(map));
  const idOffset = bytes.indexOf(marker);
  if (idOffset < 0) throw new Error('marker not found');
  return { bytes, idOffset };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return -1;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

const MAX_MESSAGES = 4_000_000;
/** Run tag: ids of an earlier run (late deliveries) are told apart and ignored. */
let runTag = 0;

async function messages(c: Extract<LoadCommand, { cmd: 'messages' }>): Promise<LoadReply> {
  runTag++;
  const tag = runTag;
  const sentAt = new Float64Array(MAX_MESSAGES);
  const latency = new Float64Array(MAX_MESSAGES);
  const senderOf = new Int32Array(MAX_MESSAGES);
  let sent = 0;
  let answered = 0;
  let arrived = 0;
  let completed = 0;
  let measuring = true;
  const senders = c.pairs.map(([s, r]) => {
    const dev = devices.get(s);
    if (dev === undefined) throw new Error(`${s} is not connected`);
    const rdev = devices.get(r);
    const to = `${r.split('/')[0] ?? ''}@${DOMAIN}/${r.split('/')[1] ?? ''}`;
    return { dev, rdev, tpl: template(to, c.ciphertextBytes) };
  });
  const send = (i: number): void => {
    if (!measuring || sent >= MAX_MESSAGES) return;
    const s = senders[i];
    if (s === undefined) return;
    const n = sent++;
    const object = Buffer.from(s.tpl.bytes);
    object.writeUInt32BE(tag, s.tpl.idOffset);
    object.writeUInt32BE(n, s.tpl.idOffset + 4);
    senderOf[n] = i;
    sentAt[n] = performance.now();
    s.dev.request(ClientFrame.SEND, { object }, (f) => {
      answered++;
      if (!c.offline || f.type !== ClientFrame.RESULT) return;
      latency[completed++] = performance.now() - (sentAt[n] as number);
      if (c.window !== undefined) send(i);
    });
  };
  // Recipients: latency at DELIVER, then batched ACKs (the server keeps objects until acked).
  const ackTimers: NodeJS.Timeout[] = [];
  if (!c.offline) {
    for (const s of senders) {
      const r = s.rdev;
      if (r === undefined) throw new Error('recipient not connected');
      const offset = s.tpl.idOffset;
      let acks: Uint8Array[] = [];
      const flushAcks = (): void => {
        if (acks.length === 0) return;
        r.request(ClientFrame.ACK, { ids: acks });
        acks = [];
      };
      ackTimers.push(setInterval(flushAcks, 5));
      r.onDeliver = (_seq, object) => {
        const buf = Buffer.from(object.buffer, object.byteOffset, object.byteLength);
        acks.push(buf.subarray(offset, offset + 16));
        if (acks.length >= 128) flushAcks();
        if (buf.readUInt32BE(offset) !== tag) return;
        arrived++;
        const n = buf.readUInt32BE(offset + 4);
        if (measuring) latency[completed++] = performance.now() - (sentAt[n] as number);
        if (c.window !== undefined) send(senderOf[n] as number);
      };
    }
  }
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let pacer: NodeJS.Timeout | undefined;
  if (c.window !== undefined) {
    for (let w = 0; w < c.window; w++) for (let i = 0; i < senders.length; i++) send(i);
  } else if (c.rate !== undefined) {
    const rate = c.rate;
    let rr = 0;
    // Open loop: every ms, send what the schedule says is due, round-robin over senders.
    pacer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate);
      for (let k = 0; sent < due && k < 10_000; k++) send(rr++ % senders.length);
    }, 1);
  }
  await new Promise((r) => setTimeout(r, c.seconds * 1000));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const done = completed;
  const sentCount = sent;
  if (pacer !== undefined) clearInterval(pacer);
  measuring = false;
  // Let what is in flight be answered (and delivered and acked) before the next run, bounded.
  const drainStart = performance.now();
  for (let i = 0; i < 1200 && (answered < sentCount || (!c.offline && arrived < sentCount)); i++) {
    await sleep(50);
  }
  const drainSeconds = (performance.now() - drainStart) / 1000;
  await sleep(500);
  for (const t of ackTimers) clearInterval(t);
  for (const s of senders) if (s.rdev !== undefined) s.rdev.onDeliver = undefined;
  const lat = latency.subarray(0, done).slice().sort();
  let errors = 0;
  for (const s of senders) errors += s.dev.errors;
  return {
    ok: 'messages',
    sent: sentCount,
    completed: done,
    seconds,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: lat.length > 0 ? (lat[lat.length - 1] as number) : -1,
    errors,
    drainSeconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    ...(c.samples === true ? { samples: Array.from(lat) } : {}),
  };
}

async function presence(c: Extract<LoadCommand, { cmd: 'presence' }>): Promise<LoadReply> {
  const pub = devices.get(c.publisher);
  if (pub === undefined) throw new Error('publisher not connected');
  const watchers = c.watchers.map((k) => {
    const d = devices.get(k);
    if (d === undefined) throw new Error(`${k} not connected`);
    return d;
  });
  const runs: { lastMs: number; resultMs: number; delivered: number; got: number }[] = [];
  for (const hex of c.objects) {
    const object = Buffer.from(hex, 'hex');
    let got = 0;
    let t0 = 0;
    let last = 0;
    const all = new Promise<void>((resolve) => {
      for (const w of watchers) {
        w.onPresence = (o) => {
          if (o.length !== object.length || !Buffer.from(o).equals(object)) return;
          got++;
          if (got === watchers.length) {
            last = performance.now() - t0;
            resolve();
          }
        };
      }
    });
    t0 = performance.now();
    const result = await pub.requestAsync(ClientFrame.PUBLISH, { object });
    const resultMs = performance.now() - t0;
    await Promise.race([all, new Promise((r) => setTimeout(r, 10_000))]);
    runs.push({
      lastMs: got === watchers.length ? last : -1,
      got,
      resultMs,
      delivered:
        result.type === ClientFrame.RESULT ? ((result.body as Body).delivered as number) : -1,
    });
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const w of watchers) w.onPresence = undefined;
  return { ok: 'presence', runs };
}

/** A loopback TCP relay that counts bytes and flights (runs of one direction) per connection. */
interface Tap {
  up: number;
  down: number;
  flights: { dir: 'c>s' | 's>c'; bytes: number; at: number }[];
}

function relay(target: number): Promise<{ server: Server; port: number; taps: Tap[] }> {
  const taps: Tap[] = [];
  const server = createServer((client: Socket) => {
    const tap: Tap = { up: 0, down: 0, flights: [] };
    taps.push(tap);
    client.setNoDelay(true);
    const upstream = tcpConnect({ host: '127.0.0.1', port: target });
    upstream.setNoDelay(true);
    const note = (dir: 'c>s' | 's>c', n: number): void => {
      const lastFlight = tap.flights[tap.flights.length - 1];
      if (lastFlight?.dir === dir) lastFlight.bytes += n;
      else if (tap.flights.length < 10_000)
        tap.flights.push({ dir, bytes: n, at: performance.now() });
    };
    client.on('data', (d: Buffer) => {
      tap.up += d.length;
      note('c>s', d.length);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      tap.down += d.length;
      note('s>c', d.length);
      client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve({ server, port: typeof addr === 'object' && addr !== null ? addr.port : 0, taps });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function wire(c: Extract<LoadCommand, { cmd: 'wire' }>): Promise<LoadReply> {
  const r = await relay(c.port);
  const report: Record<string, number | string> = {};
  try {
    // Cold: TCP + full TLS 1.3 handshake, then HELLO/WELCOME, SASL, BIND, first SEND's RESULT.
    let session: Buffer | undefined;
    const timeLogin = async (
      key: DevKey,
      resume: Buffer | undefined,
    ): Promise<{ dev: Device; ms: number; tap: Tap }> => {
      const t0 = performance.now();
      const dev = await open(r.port, c.ca, key, resume, (s) => {
        session = s;
      });
      const tap = r.taps[r.taps.length - 1] as Tap;
      return { dev, ms: performance.now() - t0, tap };
    };
    const recipient = await timeLogin(c.recipient, undefined);
    const sender = await timeLogin(c.sender, undefined);
    const to = `${c.recipient.split('/')[0] ?? ''}@${DOMAIN}/${c.recipient.split('/')[1] ?? ''}`;
    const tpl = template(to, c.ciphertextBytes);
    tpl.bytes.set(randomBytes(16), tpl.idOffset);
    report.sealedMessageBytes = tpl.bytes.length;
    await sleep(300);
    // One message: sender's SEND and RESULT; recipient's DELIVER (its ACK is counted apart).
    const s0 = { up: sender.tap.up, down: sender.tap.down, out: sender.dev.conn.stats.bytesOut };
    const r0 = { up: recipient.tap.up, down: recipient.tap.down };
    const delivered = new Promise<void>((resolve) => {
      recipient.dev.onDeliver = () => {
        resolve();
      };
    });
    const tSend = performance.now();
    await sender.dev.requestAsync(ClientFrame.SEND, { object: tpl.bytes });
    report.coldConnectToFirstResultMs = sender.ms + (performance.now() - tSend);
    report.coldLoginMs = sender.ms;
    await delivered;
    await sleep(100);
    report.sendFrameBytes = sender.dev.conn.stats.bytesOut - s0.out;
    report.sendWireBytes = sender.tap.up - s0.up;
    report.resultWireBytes = sender.tap.down - s0.down;
    report.deliverWireBytes = recipient.tap.down - r0.down;
    report.recipientUpBytesDuring = recipient.tap.up - r0.up;
    report.coldFlights = sender.tap.flights
      .map((f) => `${f.dir}:${f.bytes}`)
      .slice(0, 40)
      .join(' ');
    // Presence: publisher = sender device, one approved watcher.
    const watcher = await timeLogin(c.watcher, undefined);
    await sleep(300);
    const p0 = { up: sender.tap.up, out: sender.dev.conn.stats.bytesOut };
    const w0 = watcher.tap.down;
    const presenceBytes = Buffer.from(c.presence, 'hex');
    report.sealedPresenceBytes = presenceBytes.length;
    const got = new Promise<void>((resolve) => {
      watcher.dev.onPresence = () => {
        resolve();
      };
    });
    const pres = await sender.dev.requestAsync(ClientFrame.PUBLISH, { object: presenceBytes });
    report.publishResult = pres.type === ClientFrame.RESULT ? 'RESULT' : 'ERROR';
    await Promise.race([got, sleep(5000)]);
    await sleep(100);
    report.publishFrameBytes = sender.dev.conn.stats.bytesOut - p0.out;
    report.publishWireBytes = sender.tap.up - p0.up;
    report.presenceWireBytes = watcher.tap.down - w0;
    // Resumed: a second connection of the sender device with the saved TLS session.
    for (const d of [sender.dev, recipient.dev, watcher.dev]) d.conn.close();
    await sleep(300);
    if (session === undefined) {
      report.resumed = 'no session ticket received';
    } else {
      const again = await timeLogin(c.sender, session);
      const tpl2 = template(to, c.ciphertextBytes);
      tpl2.bytes.set(randomBytes(16), tpl2.idOffset);
      const t1 = performance.now();
      await again.dev.requestAsync(ClientFrame.SEND, { object: tpl2.bytes });
      report.resumedReused = String(again.dev.conn.sessionReused);
      report.resumedLoginMs = again.ms;
      report.resumedConnectToFirstResultMs = again.ms + (performance.now() - t1);
      report.resumedFlights = again.tap.flights
        .map((f) => `${f.dir}:${f.bytes}`)
        .slice(0, 40)
        .join(' ');
      again.dev.conn.close();
    }
    // Wall time of cold/resumed logins, median of 9 (TCP connect → first SEND answered).
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < 9; i++) {
      const a = await timeLogin(c.sender, undefined);
      const tplA = template(to, c.ciphertextBytes);
      tplA.bytes.set(randomBytes(16), tplA.idOffset);
      const tA = performance.now();
      await a.dev.requestAsync(ClientFrame.SEND, { object: tplA.bytes });
      cold.push(a.ms + performance.now() - tA);
      const saved = session;
      a.dev.conn.close();
      await sleep(50);
      const b = await timeLogin(c.sender, saved);
      const tplB = template(to, c.ciphertextBytes);
      tplB.bytes.set(randomBytes(16), tplB.idOffset);
      const tB = performance.now();
      await b.dev.requestAsync(ClientFrame.SEND, { object: tplB.bytes });
      warm.push(b.ms + performance.now() - tB);
      b.dev.conn.close();
      await sleep(50);
    }
    cold.sort((x, y) => x - y);
    warm.sort((x, y) => x - y);
    report.coldMedianMs = cold[4] as number;
    report.resumedMedianMs = warm[4] as number;
  } finally {
    r.server.close();
  }
  return { ok: 'wire', report };
}

async function handle(c: LoadCommand): Promise<LoadReply> {
  switch (c.cmd) {
    case 'identity':
      return { ok: 'identity', publicKey: Buffer.from(identity.publicKey).toString('hex') };
    case 'connect': {
      const t0 = performance.now();
      const connected = await connectAll(c.port, c.ca, c.devices, c.concurrency);
      return { ok: 'connect', connected, seconds: (performance.now() - t0) / 1000 };
    }
    case 'disconnect': {
      const all = [...devices.values()];
      devices.clear();
      for (const d of all) d.conn.close();
      await Promise.race([Promise.all(all.map((d) => d.conn.closed)), sleep(10_000)]);
      return { ok: 'disconnect' };
    }
    case 'messages':
      return messages(c);
    case 'presence':
      return presence(c);
    case 'wire':
      return wire(c);
  }
}

process.on('message', (c: LoadCommand) => {
  handle(c).then(
    (reply) => process.send?.(reply),
    (e: unknown) => process.send?.({ error: e instanceof Error ? e.message : String(e) }),
  );
});
