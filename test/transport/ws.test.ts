/**
 * WebSocket over TLS 1.3 on loopback: same frames as binary messages, text refused, size limits,
 * origin hook, subprotocol, no compression, no TLS 1.2, pre-auth deadline.
 */
import { request } from 'node:https';
import { afterEach, describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { isImppError } from '../../src/errors.js';
import { encodeStrictCbor } from '../../src/transport/cbor-strict.js';
import type { Connection } from '../../src/transport/connection.js';
import { FrameType, parseClose } from '../../src/transport/control.js';
import { decodeFramePayload } from '../../src/transport/frame-codec.js';
import type { TransportLimits } from '../../src/transport/limits.js';
import { connectWebSocket } from '../../src/transport/ws-client.js';
import { type OriginCheck, WebSocketTransportServer } from '../../src/transport/ws-server.js';
import { loopbackPki, within } from './harness.js';

const APP = 16;
const AUTH = 17;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function wsServer(
  limits: Partial<TransportLimits> = {},
  checkOrigin?: OriginCheck,
): Promise<{
  server: WebSocketTransportServer;
  url: string;
  ca: string;
  connections: Connection[];
}> {
  const { ca, server: cert } = await loopbackPki();
  const server = new WebSocketTransportServer({
    key: cert.keyPem,
    cert: cert.certPem,
    limits,
    ...(checkOrigin === undefined ? {} : { checkOrigin }),
  });
  const connections: Connection[] = [];
  server.on('connection', (conn) => {
    connections.push(conn);
    conn.on('frame', (f) => {
      if (f.type === AUTH) conn.markAuthenticated();
      conn.send(f.type, f.body);
    });
  });
  const { port } = await server.listen({ port: 0 });
  cleanups.push(() => server.close());
  return { server, url: `wss://localhost:${port}/impp`, ca: ca.certPem, connections };
}

async function client(url: string, ca: string, origin?: string): Promise<Connection> {
  const conn = await connectWebSocket({ url, ca, ...(origin === undefined ? {} : { origin }) });
  cleanups.push(() => {
    conn.close();
  });
  return conn;
}

async function echo(
  conn: Connection,
  body: Parameters<Connection['send']>[1],
  type = APP,
): Promise<unknown> {
  const got = new Promise<unknown>((resolve) => {
    const l = (f: { body: unknown }): void => {
      conn.off('frame', l);
      resolve(f.body);
    };
    conn.on('frame', l);
  });
  conn.send(type, body);
  return within(5000, 'echo', got);
}

/** A raw `ws` client that has done the hello exchange; collects the server's frames. */
async function rawWs(url: string, ca: string, options: { perMessageDeflate?: boolean } = {}) {
  const ws = new WebSocket(url, ['impp.v1'], {
    ca,
    perMessageDeflate: options.perMessageDeflate ?? false,
  });
  cleanups.push(() => {
    ws.terminate();
  });
  const frames: { type: number; body: unknown }[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
    });
  });
  ws.on('error', () => undefined);
  ws.on('message', (data: Buffer) => frames.push(decodeFramePayload(data, 1 << 20)));
  await within(5000, 'open', new Promise((resolve) => ws.once('open', resolve)));
  ws.send(encodeStrictCbor([FrameType.HELLO, { versions: [1], maxFrameBytes: 65_536 }]));
  await within(
    5000,
    'welcome',
    new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (frames.length > 0) {
          clearInterval(t);
          resolve();
        }
      }, 2);
    }),
  );
  return { ws, frames, closed };
}

describe('WebSocket transport', () => {
  test('frames round-trip; exporter equal on both ends', async () => {
    const { url, ca, connections } = await wsServer();
    const conn = await client(url, ca);
    expect(conn.transport).toBe('websocket');
    expect(await echo(conn, { hello: 'ws', bytes: new Uint8Array([9]) })).toMatchObject({
      hello: 'ws',
    });
    const server = connections[0]!;
    expect(Buffer.from(conn.channelBinding())).toEqual(Buffer.from(server.channelBinding()));
    const other = await client(url, ca);
    expect(Buffer.from(other.channelBinding())).not.toEqual(Buffer.from(conn.channelBinding()));
  });

  test('a text message is refused with ERR_FRAME_MALFORMED and close code 1003', async () => {
    const { url, ca } = await wsServer();
    const control = await client(url, ca);
    const { ws, frames, closed } = await rawWs(url, ca);
    ws.send(JSON.stringify([16, 'text']));
    const { code, reason } = await within(5000, 'close', closed);
    expect(code).toBe(1003);
    expect(reason).toBe('ERR_FRAME_MALFORMED');
    const last = frames.at(-1)!;
    expect(last.type).toBe(FrameType.CLOSE);
    expect(parseClose(last.body as never).code).toBe('ERR_FRAME_MALFORMED');
    expect(await echo(control, 'ok')).toBe('ok');
  });

  test('pre-auth frame limit, then the authenticated limit (ws maxPayload)', async () => {
    const { url, ca } = await wsServer({ preAuthMaxFrameBytes: 4096, maxFrameBytes: 16_384 });
    const pre = await rawWs(url, ca);
    pre.ws.send(encodeStrictCbor([APP, new Uint8Array(5000)]));
    expect((await within(5000, 'close', pre.closed)).reason).toBe('ERR_FRAME_TOO_LARGE');

    const conn = await client(url, ca);
    await echo(conn, null, AUTH);
    expect(conn.maxSendFrameBytes).toBe(16_384);
    expect(((await echo(conn, new Uint8Array(10_000))) as Uint8Array).length).toBe(10_000);

    const post = await rawWs(url, ca);
    post.ws.send(encodeStrictCbor([AUTH, null]));
    await within(
      5000,
      'limits',
      new Promise<void>((r) => {
        const t = setInterval(() => {
          if (post.frames.some((f) => f.type === FrameType.LIMITS)) {
            clearInterval(t);
            r();
          }
        }, 2);
      }),
    );
    post.ws.send(new Uint8Array(20_000)); // above maxPayload: ws refuses from the header
    const { code } = await within(5000, 'close', post.closed);
    expect(code).toBe(1009);
  });

  test('origin hook: a refused origin cannot connect, an allowed one can', async () => {
    const { url, ca } = await wsServer({}, (origin) => origin === 'https://chat.example');
    const err: unknown = await connectWebSocket({ url, ca, origin: 'https://evil.example' }).catch(
      (e: unknown) => e,
    );
    expect(isImppError(err, 'ERR_CONNECTION_CLOSED')).toBe(true);
    expect(await echo(await client(url, ca, 'https://chat.example'), 'ok')).toBe('ok');
  });

  test('the subprotocol is required and permessage-deflate is never negotiated', async () => {
    const { url, ca } = await wsServer();
    const noProto = new WebSocket(url, { ca });
    noProto.on('error', () => undefined);
    const outcome = await within(
      5000,
      'refusal',
      new Promise<string>((resolve) => {
        noProto.on('unexpected-response', (_req, res) => {
          resolve(String(res.statusCode));
        });
        noProto.on('open', () => {
          resolve('open');
        });
        noProto.on('error', () => {
          resolve('error');
        });
      }),
    );
    expect(outcome).toBe('400');
    const { ws } = await rawWs(url, ca, { perMessageDeflate: true });
    expect(ws.extensions).toBe('');
  });

  test('plain HTTPS requests get 426; ws: URLs are refused by the client', async () => {
    const { url, ca } = await wsServer();
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(url.replace('wss:', 'https:'), { ca }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(426);
    const err: unknown = await connectWebSocket({ url: url.replace('wss:', 'ws:'), ca }).catch(
      (e: unknown) => e,
    );
    expect(isImppError(err, 'ERR_INVALID_ARGUMENT')).toBe(true);
  });

  test('TLS 1.2 is refused', async () => {
    const { url, ca } = await wsServer();
    const ws = new WebSocket(url, ['impp.v1'], { ca, maxVersion: 'TLSv1.2' });
    const outcome = await within(
      5000,
      'refusal',
      new Promise<string>((resolve) => {
        ws.on('open', () => {
          resolve('open');
        });
        ws.on('error', () => {
          resolve('error');
        });
      }),
    );
    expect(outcome).toBe('error');
  });

  test('slow reader over WebSocket: bounded queue, then ERR_SLOW_CONSUMER', async () => {
    const maxOutboundBytes = 256 * 1024;
    const { url, ca, connections } = await wsServer({
      maxFrameBytes: 16 * 1024,
      preAuthMaxFrameBytes: 16 * 1024,
      maxOutboundBytes,
    });
    const { ws } = await rawWs(url, ca);
    ws.pause(); // stop reading from the socket
    const conn = connections[0]!;
    const chunk = new Uint8Array(8 * 1024);
    let error: unknown;
    for (let i = 0; i < 10_000; i++) {
      try {
        conn.send(APP, chunk);
      } catch (e) {
        error = e;
        break;
      }
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    expect(isImppError(error, 'ERR_SLOW_CONSUMER')).toBe(true);
    expect(conn.stats.peakQueuedBytes).toBeLessThanOrEqual(maxOutboundBytes);
    expect((await within(5000, 'closed', conn.closed)).error?.code).toBe('ERR_SLOW_CONSUMER');
  });

  test('frame-rate limit over WebSocket', async () => {
    const { url, ca } = await wsServer({ frameRate: 20, frameBurst: 10 });
    const conn = await client(url, ca);
    for (let i = 0; i < 50 && conn.state === 'open'; i++) conn.send(APP, i);
    expect((await within(5000, 'closed', conn.closed)).error?.code).toBe('ERR_RATE_LIMITED');
  });

  test('the pre-auth deadline closes an idle WebSocket with ERR_TIMEOUT', async () => {
    const { url, ca } = await wsServer({ preAuthTimeoutMs: 300 });
    const { closed, frames } = await rawWs(url, ca);
    const { reason } = await within(5000, 'close', closed);
    expect(reason).toBe('ERR_TIMEOUT');
    expect(frames.at(-1)?.type).toBe(FrameType.CLOSE);
  });
});
