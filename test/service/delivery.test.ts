/**
 * Direct delivery (DeviceSession.pushStored): a caught-up device gets each just-committed object
 * from memory, a device that falls behind or reconnects reads the store again, and in every case
 * a session delivers its device's queue in queue order, each object once, over real TLS.
 *
 * Devices are registered straight into the store (as the service benchmark does) so that many
 * sessions start quickly; each still authenticates and binds for real.
 */
import { type Server, type Socket, connect, createServer } from 'node:net';
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type SigningKeyPair,
  generateSigningKeyPair,
  randomBytes,
} from '../../src/crypto/index.js';
import { ClientFrame } from '../../src/service/protocol.js';
import type { DeviceSession } from '../../src/service/session.js';
import { readServiceHeader } from '../../src/service/store/validate.js';
import type { Frame } from '../../src/transport/frame-codec.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { type Env, startEnv } from './harness.js';
import { RawClient } from './raw.js';
import { sealedMessage } from './store/envelopes.js';

let env: Env;
beforeAll(async () => {
  // The senders burst far past the default inbound frame budget.
  env = await startEnv({ limits: { frameRate: 100_000, frameBurst: 100_000 } });
});
afterAll(async () => {
  await env.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

const keys = new Map<string, SigningKeyPair>();
let nextDevice = 0;

/** Registers a fresh device of `user` in the store; returns its address. */
async function newDevice(user: string): Promise<string> {
  const deviceId = `d${++nextDevice}`;
  const identity = generateSigningKeyPair();
  await env.store.devices.register({
    address: `${user}@example.org`,
    deviceId,
    identityKey: identity.publicKey,
    enrolment: randomBytes(100),
    createdAt: Date.now(),
  });
  const device = `${user}@example.org/${deviceId}`;
  keys.set(device, identity);
  return device;
}

/** Authenticates and binds `device` (registered), through `port` (default the server's). */
async function online(device: string, port = env.port): Promise<RawClient> {
  const conn = await connectTls({ host: '127.0.0.1', port, ca: env.ca, servername: 'localhost' });
  const raw = new RawClient(conn);
  const [address, deviceId] = device.split('/') as [string, string];
  await raw.auth(address.split('@')[0] as string);
  const bound = await raw.bind(deviceId, keys.get(device));
  expect(bound.registered).toBe(true);
  return raw;
}

/**
 * Sends `count` objects to `to`, pipelined (not waiting for each answer), in waves that keep the
 * sender's own outbound queue within its bound; returns their ids.
 */
async function burst(from: RawClient, to: string, count: number, size = 200): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomBytes(16));
  const wave = Math.max(1, Math.floor((512 * 1024) / size));
  for (let i = 0; i < count; i += wave) {
    const answers = ids
      .slice(i, i + wave)
      .map((id) => from.request(ClientFrame.SEND, { object: sealedMessage(to, id, size) }, 20_000));
    for (const a of await Promise.all(answers)) expect(a).toEqual({ duplicate: false });
  }
  return ids.map(hex);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

interface Delivered {
  readonly seq: number;
  readonly id: string;
}

function idOf(object: Uint8Array): string {
  const header = readServiceHeader(object);
  if (header.kind === 'presence') throw new Error('a presence object in a device queue');
  return hex(header.messageId);
}

/** Waits until `raw` received `count` DELIVER frames (or closed); returns them in order. */
async function deliveries(raw: RawClient, count: number, ms = 15_000): Promise<Delivered[]> {
  const until = Date.now() + ms;
  const delivered = (): Frame[] => raw.frames.filter((f) => f.type === ClientFrame.DELIVER);
  while (delivered().length < count && Date.now() < until && raw.conn.state === 'open') {
    await new Promise((r) => setTimeout(r, 10));
  }
  return delivered().map((f) => {
    const body = f.body as { seq: number; object: Uint8Array };
    return { seq: body.seq, id: idOf(body.object) };
  });
}

/** The device's queue as stored: what a session must deliver, in this order. */
async function stored(device: string): Promise<Delivered[]> {
  testRead = true;
  const read = env.store.queue.pending(device, { limit: 1000 });
  testRead = false;
  const pending = await read;
  return pending.map((p) => ({ seq: p.seq, id: hex(p.id) }));
}

/** Set while the test itself reads the queue, which {@link countReads} does not count. */
let testRead = false;

/** Counts the server's reads of `device`'s queue from now on (the real method still runs). */
function countReads(device: string): () => number {
  const pending = env.store.queue.pending.bind(env.store.queue);
  let reads = 0;
  vi.spyOn(env.store.queue, 'pending').mockImplementation((d, options) => {
    if (d === device && !testRead) reads++;
    return pending(d, options);
  });
  return () => reads;
}

describe('direct delivery', () => {
  it('keeps queue order with interleaved senders, from memory once caught up', async () => {
    const to = await newDevice('bob');
    const recipient = await online(to);
    const senders = await Promise.all([1, 2, 3].map(async () => online(await newDevice('alice'))));
    const reads = countReads(to);
    // Three senders at once, each pipelining: their objects interleave in one queue. (Few
    // enough that one group commit's pushes stay under the outbound high-water mark.)
    const sent = await Promise.all(senders.map((s) => burst(s, to, 50)));
    const got = await deliveries(recipient, 150);
    expect(got).toEqual(await stored(to));
    // Each sender's objects in its own send order, every one exactly once.
    const position = new Map(got.map((d, i) => [d.id, i]));
    expect(position.size).toBe(150);
    for (const ids of sent) {
      const at = ids.map((id) => position.get(id) as number);
      expect(at).toEqual([...at].sort((a, b) => a - b));
    }
    // Caught up from the bind on: no object of this burst came from a store read.
    expect(reads()).toBe(0);
    for (const s of [recipient, ...senders]) await s.close();
  });

  it('a device that falls behind reads the store, then catches up and is served from memory', async () => {
    const to = await newDevice('carol');
    const link = await pausableLink(env.port);
    const recipient = await online(to, link.port);
    const sender = await online(await newDevice('dave'));
    const reads = countReads(to);
    // The recipient stops reading: its TCP windows fill, then the server's outbound queue
    // passes the high-water mark and the session stops pushing from memory.
    link.pause();
    const first = await burst(sender, to, 120, 64 * 1024);
    await new Promise((r) => setTimeout(r, 100));
    // It fell back to reading the store, which sends only as the queue drains: the server
    // never buffered past its bound, so it did not close the device as a slow consumer.
    expect(reads()).toBeGreaterThan(0);
    const session = env.server.online(to) as DeviceSession | undefined;
    expect(session?.connection.state).toBe('open');
    link.resume();
    let got = await deliveries(recipient, 120, 30_000);
    expect(got.map((d) => d.id)).toEqual(first);
    expect(got).toEqual(await stored(to));
    // Caught up again: the next objects come from memory, no further read.
    await new Promise((r) => setTimeout(r, 100));
    const readsBefore = reads();
    const second = await burst(sender, to, 20);
    got = await deliveries(recipient, 140);
    expect(got.map((d) => d.id)).toEqual([...first, ...second]);
    expect(got).toEqual(await stored(to));
    expect(reads()).toBe(readsBefore);
    await recipient.close();
    await sender.close();
    await link.close();
  });

  it('a reconnect racing a burst: the new session delivers the whole queue in order, once each', async () => {
    const to = await newDevice('bob');
    const before = await online(to);
    const sender = await online(await newDevice('alice'));
    // A backlog large enough that the new session's store read takes many pages and waits for
    // its outbound queue to drain between them, while objects keep committing: pushes for the
    // device arrive during that read, and must not overtake it.
    const backlog = await burst(sender, to, 150, 4096);
    const during = burst(sender, to, 150, 4096);
    const after = await online(to);
    const later = await burst(sender, to, 100, 4096);
    const all = [...backlog, ...(await during), ...later];
    await before.closed;
    const got = await deliveries(after, all.length);
    // Nothing was acknowledged, so the new session owes the whole queue, in queue order.
    expect(got).toEqual(await stored(to));
    expect(got.map((d) => d.id).sort()).toEqual([...all].sort());
    // The replaced session saw a prefix of the same queue, in order too.
    const early = (await deliveries(before, 0)).map((d) => d.seq);
    expect(early).toEqual([...early].sort((a, b) => a - b));
    expect(new Set(early).size).toBe(early.length);
    await after.close();
    await sender.close();
  });

  it('acknowledged objects are not delivered again after a reconnect', async () => {
    const to = await newDevice('carol');
    const first = await online(to);
    const sender = await online(await newDevice('dave'));
    const ids = await burst(sender, to, 10);
    const got = await deliveries(first, 10);
    expect(got.map((d) => d.id)).toEqual(ids);
    const acked = ids.slice(0, 6).map((id) => Buffer.from(id, 'hex'));
    expect(await first.request(ClientFrame.ACK, { ids: acked })).toEqual({ removed: 6 });
    await first.close();
    const second = await online(to);
    const again = await deliveries(second, 4);
    expect(again.map((d) => d.id)).toEqual(ids.slice(6));
    expect(await deliveries(second, 5, 200)).toHaveLength(4);
    await second.close();
    await sender.close();
  });
});

/**
 * A TCP relay in front of the server whose server-to-client direction can stop reading: a real
 * slow reader, as far as the server can tell.
 */
async function pausableLink(target: number): Promise<{
  port: number;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}> {
  const upstreams = new Set<Socket>();
  let paused = false;
  const server: Server = createServer((down) => {
    const up = connect(target, '127.0.0.1');
    upstreams.add(up);
    if (paused) up.pause();
    down.on('data', (d: Buffer) => up.write(d));
    up.on('data', (d: Buffer) => down.write(d));
    const end = (): void => {
      upstreams.delete(up);
      up.destroy();
      down.destroy();
    };
    up.on('close', end).on('error', end);
    down.on('close', end).on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    pause() {
      paused = true;
      for (const u of upstreams) u.pause();
    },
    resume() {
      paused = false;
      for (const u of upstreams) u.resume();
    },
    async close() {
      for (const u of upstreams) u.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
