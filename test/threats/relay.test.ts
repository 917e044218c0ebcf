/**
 * The malicious relay on its own: a TLS frame echo server behind it for the frame surgery, and a
 * real impp server for the two modes (end-to-end TLS passes; re-terminated TLS breaks the binding).
 */
import { type TLSSocket, connect as tlsConnect, createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isImppError } from '../../src/errors.js';
import {
  type RelayHook,
  flipBit,
  framePayload,
  startRelay,
  stripPlusFromOffer,
} from '../../src/threats/attackers/relay.js';
import { createSuiteCa, issueServerCert } from '../../src/threats/attackers/certs.js';
import { FrameDecoder, type Frame, encodeFrame } from '../../src/transport/frame-codec.js';
import { createLoopbackPki } from '../helpers/tls-fixtures.js';
import { startEnv, type Env } from '../service/harness.js';

/** A TLS server (ALPN impp/1) that echoes every frame back as `[type, body]`. */
async function echoServer(): Promise<{ port: number; ca: string; close(): Promise<void> }> {
  const pki = await createLoopbackPki();
  const sockets = new Set<TLSSocket>();
  const server = createServer(
    {
      key: pki.server.keyPem,
      cert: pki.server.certPem,
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['impp/1'],
    },
    (socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      const decoder = new FrameDecoder({ maxFrameBytes: 65_536 });
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
          for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
            socket.write(encodeFrame(f).bytes);
          }
        } catch {
          socket.write(encodeFrame({ type: 5, body: 'bad' }).bytes);
          socket.end();
        }
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    ca: pki.ca.certPem,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A frame client through the relay: send frames, collect echoes. */
async function frameClient(port: number, ca: string) {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    ca,
    servername: 'localhost',
    ALPNProtocols: ['impp/1'],
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const got: Frame[] = [];
  const decoder = new FrameDecoder({ maxFrameBytes: 65_536 });
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) got.push(f);
  });
  return {
    got,
    send: (type: number, body: string) => socket.write(encodeFrame({ type, body }).bytes),
    async waitFor(n: number): Promise<Frame[]> {
      for (let i = 0; i < 100 && got.length < n; i++) await new Promise((r) => setTimeout(r, 20));
      return got;
    },
    close: () => socket.destroy(),
  };
}

describe('relay frame surgery (terminate mode, echo server)', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let relayIdentity: { certPem: string; keyPem: string };
  let relayCa: string;
  beforeAll(async () => {
    echo = await echoServer();
    const ca = await createSuiteCa('relay test CA');
    relayCa = ca.certPem;
    relayIdentity = await issueServerCert(ca, { names: ['localhost', '127.0.0.1'] });
  });
  afterAll(async () => {
    await echo.close();
  });

  it('drops, flips, reorders and replays frames on the way to the server', async () => {
    let held: Uint8Array | undefined;
    const hook: RelayHook = (f) => {
      if (f.direction !== 'to-server') return undefined;
      const body = f.frame?.body;
      if (body === 'drop') return [];
      if (body === 'flip') return [flipBit(f.payload, (f.payload.length - 1) * 8)];
      if (body === 'first') {
        held = f.payload;
        return [];
      }
      if (body === 'second' && held !== undefined) return [f.payload, held];
      if (body === 'twice') return [f.payload, f.payload];
      return undefined;
    };
    const relay = await startRelay({
      upstream: { host: '127.0.0.1', port: echo.port, ca: echo.ca, servername: 'localhost' },
      mode: 'terminate',
      identity: relayIdentity,
      onFrame: hook,
    });
    try {
      const c = await frameClient(relay.port, relayCa);
      c.send(20, 'keep');
      c.send(20, 'drop');
      c.send(20, 'flip');
      c.send(20, 'first');
      c.send(20, 'second');
      c.send(20, 'twice');
      const got = await c.waitFor(6);
      // 'flip' ends in 'p' (0x70); its lowest bit flipped gives 'q'.
      expect(got.map((f) => f.body)).toEqual(['keep', 'fliq', 'second', 'first', 'twice', 'twice']);
      const conn = await relay.nextConnection();
      expect(conn.seen('to-server').map((f) => f.frame?.body)).toEqual([
        'keep',
        'drop',
        'flip',
        'first',
        'second',
        'twice',
      ]);
      // Replay an earlier frame by injection.
      conn.inject('to-server', conn.seen('to-server')[0]?.payload as Buffer);
      const after = await c.waitFor(7);
      expect(after[6]?.body).toBe('keep');
      // A raw write with a lying length prefix reaches the server as such.
      conn.inject('to-server', { raw: Buffer.from([0, 0, 0, 9, 0x82, 0x14]) });
      c.close();
    } finally {
      await relay.close();
    }
  });

  it('rewrites an AUTH_OFFER without -PLUS', () => {
    const offer: Frame = {
      type: 16,
      body: { mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] },
    };
    const stripped = stripPlusFromOffer(offer);
    expect(stripped?.body).toEqual({ mechanisms: ['SCRAM-SHA-256'] });
    expect(stripPlusFromOffer({ type: 16, body: { mechanisms: ['SCRAM-SHA-256'] } })).toBe(
      undefined,
    );
    expect(stripPlusFromOffer({ type: 17, body: { mechanisms: [] } })).toBe(undefined);
    expect(framePayload(stripped as Frame).length).toBeGreaterThan(0);
  });

  it('a client that does not trust the relay CA never gets through', async () => {
    const relay = await startRelay({
      upstream: { host: '127.0.0.1', port: echo.port, ca: echo.ca, servername: 'localhost' },
      mode: 'terminate',
      identity: relayIdentity,
    });
    try {
      await expect(frameClient(relay.port, echo.ca)).rejects.toThrow();
    } finally {
      await relay.close();
    }
  });
});

describe('relay in front of a real impp server', () => {
  let env: Env;
  let relayCa: string;
  let relayIdentity: { certPem: string; keyPem: string };
  beforeAll(async () => {
    env = await startEnv();
    const ca = await createSuiteCa('relay test CA');
    relayCa = ca.certPem;
    relayIdentity = await issueServerCert(ca, { names: ['localhost', '127.0.0.1'] });
  });
  afterAll(async () => {
    await env.close();
  });

  it('pass mode: TLS end to end, the SDK logs in, the relay counts bytes and reads nothing', async () => {
    const relay = await startRelay({
      upstream: { host: '127.0.0.1', port: env.port },
      mode: 'pass',
    });
    try {
      const alice = env.client('alice', 'relay-pass', { port: relay.port });
      await alice.connect();
      const conn = await relay.nextConnection();
      expect(conn.bytes['to-server']).toBeGreaterThan(0);
      expect(conn.frames).toEqual([]);
      await alice.close();
    } finally {
      await relay.close();
    }
  });

  it('terminate mode: the relay reads frames, and the re-terminated -PLUS login fails', async () => {
    const relay = await startRelay({
      upstream: { host: '127.0.0.1', port: env.port, ca: env.ca, servername: 'localhost' },
      mode: 'terminate',
      identity: relayIdentity,
    });
    try {
      const alice = env.client('alice', 'relay-term', { port: relay.port, ca: relayCa });
      const error: unknown = await alice.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isImppError(error) && error.code).toBe('ERR_AUTH_FAILED');
      const conn = await relay.nextConnection();
      const offer = conn.seen('to-client').find((f) => f.frame?.type === 16);
      expect(JSON.stringify(offer?.frame?.body)).toContain('SCRAM-SHA-256-PLUS');
    } finally {
      await relay.close();
    }
  });
});
