/**
 * The TLS transport over real TLS 1.3 on loopback: round trips, channel binding, refusal of
 * old TLS and garbage, framing errors, limits, time-outs, back-pressure and caps. Each hostile
 * case also checks that a control connection on the same server keeps working.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { isImppError } from '../../src/errors.js';
import { FrameType } from '../../src/transport/control.js';
import type { Connection } from '../../src/transport/connection.js';
import { encodeStrictCbor } from '../../src/transport/cbor-strict.js';
import { connectTls } from '../../src/transport/tls-client.js';
import type { TlsTransportServer } from '../../src/transport/tls-server.js';
import type { TransportLimits } from '../../src/transport/limits.js';
import { RawTlsClient, rawFrame, startTlsServer, within } from './harness.js';

const APP = 16;
const AUTH = 17; // test convention: asks the echo server to mark the connection authenticated

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** Echo server: echoes type-16 frames, marks authenticated on type 17. */
async function echoServer(limits: Partial<TransportLimits> = {}): Promise<{
  server: TlsTransportServer;
  port: number;
  ca: string;
  connections: Connection[];
}> {
  const { server, port, ca } = await startTlsServer(limits);
  const connections: Connection[] = [];
  server.on('connection', (conn) => {
    connections.push(conn);
    conn.on('frame', (frame) => {
      if (frame.type === AUTH) {
        conn.markAuthenticated();
        conn.send(AUTH, 'ok');
      } else {
        conn.send(frame.type, frame.body);
      }
    });
  });
  cleanups.push(() => server.close());
  return { server, port, ca, connections };
}

async function client(
  port: number,
  ca: string,
  extra: { maxFrameBytes?: number } = {},
): Promise<Connection> {
  const conn = await connectTls({ host: 'localhost', port, ca, ...extra });
  cleanups.push(() => {
    conn.close();
  });
  return conn;
}

async function raw(port: number, ca: string): Promise<RawTlsClient> {
  const c = await RawTlsClient.connect(port, ca);
  cleanups.push(() => {
    c.destroy();
  });
  return c;
}

/** Sends a frame and waits for the echo. */
async function echo(conn: Connection, body: Parameters<Connection['send']>[1]): Promise<unknown> {
  const got = new Promise<unknown>((resolve) => {
    const listener = (frame: { body: unknown }): void => {
      conn.off('frame', listener);
      resolve(frame.body);
    };
    conn.on('frame', listener);
  });
  conn.send(APP, body);
  return within(5000, 'echo', got);
}

async function authenticate(conn: Connection): Promise<void> {
  const got = new Promise<void>((resolve) => {
    const listener = (frame: { type: number }): void => {
      if (frame.type !== AUTH) return;
      conn.off('frame', listener);
      resolve();
    };
    conn.on('frame', listener);
  });
  conn.send(AUTH, null);
  await within(5000, 'auth ack', got);
}

describe('round trips and channel binding', () => {
  test('frames round-trip with the same values', async () => {
    const { port, ca } = await echoServer();
    const conn = await client(port, ca);
    expect(conn.version).toBe(1);
    expect(conn.transport).toBe('tls');
    const body = {
      text: 'héllo',
      n: -42,
      f: 1.5,
      ok: true,
      none: null,
      list: [1, [2]],
      bytes: new Uint8Array([0, 255]),
    };
    const back = (await echo(conn, body)) as Record<string, unknown>;
    expect({ ...back, bytes: new Uint8Array(back.bytes as Uint8Array) }).toEqual(body);
  });

  test('many frames in flight arrive in order', async () => {
    const { port, ca } = await echoServer({ frameRate: 100_000, frameBurst: 100_000 });
    const conn = await client(port, ca);
    const received: number[] = [];
    const done = new Promise<void>((resolve) => {
      conn.on('frame', (f) => {
        received.push(f.body as number);
        if (received.length === 2000) resolve();
      });
    });
    for (let i = 0; i < 2000; i++) conn.send(APP, i);
    await within(10_000, '2000 echoes', done);
    expect(received).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });

  test('async iteration yields frames and ends on close', async () => {
    const { port, ca } = await echoServer();
    const conn = await client(port, ca);
    conn.send(APP, 'a');
    conn.send(APP, 'b');
    const seen: unknown[] = [];
    for await (const frame of conn.frames()) {
      seen.push(frame.body);
      if (seen.length === 2) conn.close();
    }
    expect(seen).toEqual(['a', 'b']);
    expect((await conn.closed).initiator).toBe('local');
  });

  test('tls-exporter is equal on both ends and differs across connections', async () => {
    const { port, ca, connections } = await echoServer();
    const a = await client(port, ca);
    const b = await client(port, ca);
    await echo(a, 1);
    await echo(b, 1);
    const [sa, sb] = connections;
    expect(a.channelBinding()).toHaveLength(32);
    expect(Buffer.from(a.channelBinding())).toEqual(Buffer.from(sa!.channelBinding()));
    expect(Buffer.from(b.channelBinding())).toEqual(Buffer.from(sb!.channelBinding()));
    expect(Buffer.from(a.channelBinding())).not.toEqual(Buffer.from(b.channelBinding()));
  });

  test('TLS session resumption: a saved session is reused on the next connect', async () => {
    const { port, ca } = await echoServer();
    let session: Buffer | undefined;
    const first = await connectTls({
      host: 'localhost',
      port,
      ca,
      onSession: (s) => {
        session = s;
      },
    });
    expect(first.sessionReused).toBe(false);
    await echo(first, 'x'); // the TLS 1.3 ticket arrives after the handshake
    first.close();
    await first.closed;
    expect(session).toBeDefined();
    const second = await connectTls({ host: 'localhost', port, ca, session: session! });
    cleanups.push(() => {
      second.close();
    });
    expect(second.sessionReused).toBe(true);
    expect(await echo(second, 'resumed')).toBe('resumed');
  });

  test('the client sees the server certificate', async () => {
    const { port, ca } = await echoServer();
    const conn = await client(port, ca);
    expect(conn.peerCertificate()?.subject).toContain('CN=localhost');
    expect(conn.peerCertificateAuthorized).toBe(true);
  });

  test('client certificates (for SASL EXTERNAL) reach the server, verified or not', async () => {
    const { issueCert, createTestCa } = await import('../helpers/tls-fixtures.js');
    const { loopbackPki } = await import('./harness.js');
    const { server, port, ca } = await startTlsServer({}, { requestClientCert: true });
    cleanups.push(() => server.close());
    const seen: { subject: string | undefined; authorized: boolean }[] = [];
    server.on('connection', (conn) => {
      seen.push({
        subject: conn.peerCertificate()?.subject,
        authorized: conn.peerCertificateAuthorized,
      });
      conn.on('frame', (f) => conn.send(APP, f.body));
    });
    const pki = await loopbackPki();
    const alice = await issueCert(pki.ca, {
      commonName: 'alice',
      emails: ['alice@example.com'],
      usage: 'client',
    });
    const good = await connectTls({
      host: 'localhost',
      port,
      ca,
      cert: alice.certPem,
      key: alice.keyPem,
    });
    cleanups.push(() => {
      good.close();
    });
    await echo(good, 1);
    const rogueCa = await createTestCa({ commonName: 'rogue' });
    const mallory = await issueCert(rogueCa, { commonName: 'alice', usage: 'client' });
    const rogue = await connectTls({
      host: 'localhost',
      port,
      ca,
      cert: mallory.certPem,
      key: mallory.keyPem,
    });
    cleanups.push(() => {
      rogue.close();
    });
    await echo(rogue, 1);
    const anonymous = await client(port, ca);
    await echo(anonymous, 1);
    expect(seen).toEqual([
      { subject: 'CN=alice', authorized: true },
      { subject: 'CN=alice', authorized: false },
      { subject: undefined, authorized: false },
    ]);
  });

  test('a client that does not trust the CA cannot connect', async () => {
    const { port } = await echoServer();
    const other = (await import('../helpers/tls-fixtures.js')).createTestCa();
    const err: unknown = await connectTls({
      host: 'localhost',
      port,
      ca: (await other).certPem,
    }).catch((e: unknown) => e);
    expect(isImppError(err, 'ERR_CONNECTION_CLOSED')).toBe(true);
  });
});

describe('refusals before and around TLS', () => {
  test('a TLS 1.2 client is refused; others carry on', async () => {
    const { port, ca, server } = await echoServer();
    const failed = new Promise<void>((resolve) =>
      server.on('failed', () => {
        resolve();
      }),
    );
    const err = await new Promise<Error>((resolve) => {
      const s = tlsConnect({
        host: '127.0.0.1',
        port,
        ca,
        servername: 'localhost',
        maxVersion: 'TLSv1.2',
        ALPNProtocols: ['impp/1'],
      });
      s.on('secureConnect', () => {
        resolve(new Error('unexpectedly connected'));
      });
      s.on('error', resolve);
    });
    expect(err.message).not.toBe('unexpectedly connected');
    await within(5000, 'failed event', failed);
    expect(await echo(await client(port, ca), 'still fine')).toBe('still fine');
  });

  test('a client without the impp ALPN id is refused', async () => {
    const { port, ca } = await echoServer();
    const outcome = await RawTlsClient.connect(port, ca, { alpn: ['http/1.1'] }).then(
      async (c) => {
        await within(5000, 'close', c.closed);
        return 'closed by server';
      },
      () => 'handshake refused',
    );
    expect(['closed by server', 'handshake refused']).toContain(outcome);
  });

  test('garbage before TLS (an HTTP request, random bytes) closes only that socket', async () => {
    // A truncated TLS record waits for more bytes until the handshake time-out.
    const { port, ca, server } = await echoServer({ handshakeTimeoutMs: 500 });
    const control = await client(port, ca);
    for (const garbage of [
      Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
      Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
      Buffer.alloc(5000, 0x41),
    ]) {
      const closed = await new Promise<boolean>((resolve) => {
        const s = netConnect(port, '127.0.0.1', () => s.write(garbage));
        s.resume(); // read (and discard) any alert, so the end of the stream is seen
        s.on('error', () => undefined);
        s.on('close', () => {
          resolve(true);
        });
      });
      expect(closed).toBe(true);
    }
    expect(await echo(control, 'ok')).toBe('ok');
    expect(server.stats.open).toBe(1);
  });

  test('garbage after TLS (an HTTP request inside TLS) gets ERR_FRAME_TOO_LARGE', async () => {
    const { port, ca } = await echoServer();
    const control = await client(port, ca);
    const c = await raw(port, ca);
    c.write(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    expect((await c.closeFrame()).code).toBe('ERR_FRAME_TOO_LARGE');
    expect(await echo(control, 'ok')).toBe('ok');
  });
});

describe('hello and version negotiation', () => {
  test('WELCOME advertises version and limits', async () => {
    const { port, ca } = await echoServer({ preAuthMaxFrameBytes: 4096, maxFrameBytes: 65_536 });
    const c = await raw(port, ca);
    const welcome = await c.hello([1]);
    expect(welcome.type).toBe(FrameType.WELCOME);
    expect(welcome.body).toMatchObject({
      version: 1,
      maxFrameBytes: 4096,
      authMaxFrameBytes: 65_536,
    });
  });

  test('the highest common version is chosen; unknown ones are ignored', async () => {
    const { port, ca } = await echoServer();
    const c = await raw(port, ca);
    expect((await c.hello([9, 1, 7])).body).toMatchObject({ version: 1 });
  });

  test('no common version: CLOSE with ERR_VERSION_UNSUPPORTED', async () => {
    const { port, ca } = await echoServer();
    const c = await raw(port, ca);
    c.send(FrameType.HELLO, { versions: [2, 3], maxFrameBytes: 65_536 });
    expect((await c.closeFrame()).code).toBe('ERR_VERSION_UNSUPPORTED');
  });

  test('a WELCOME with a version the client did not offer is refused (no downgrade/upgrade)', async () => {
    const { server: cert, ca } = await (await import('./harness.js')).loopbackPki();
    const { createServer } = await import('node:tls');
    const { encodeFrame } = await import('../../src/transport/frame-codec.js');
    const fake = createServer(
      { key: cert.keyPem, cert: cert.certPem, minVersion: 'TLSv1.3', ALPNProtocols: ['impp/1'] },
      (s) => {
        s.on('error', () => undefined);
        s.once('data', () => {
          s.write(
            encodeFrame({
              type: FrameType.WELCOME,
              body: {
                version: 2,
                maxFrameBytes: 4096,
                authMaxFrameBytes: 4096,
                preAuthTimeoutMs: 1000,
                pingIntervalMs: 1000,
                idleTimeoutMs: 5000,
                frameRate: 10,
                frameBurst: 10,
              },
            }).bytes,
          );
        });
      },
    );
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) =>
          fake.close(() => {
            r();
          }),
        ),
    );
    const port = (fake.address() as { port: number }).port;
    const err: unknown = await connectTls({ host: 'localhost', port, ca: ca.certPem }).catch(
      (e: unknown) => e,
    );
    expect(isImppError(err, 'ERR_VERSION_UNSUPPORTED')).toBe(true);
  });

  test('application frame before HELLO, HELLO twice, unknown control type: ERR_PROTOCOL', async () => {
    const { port, ca } = await echoServer();
    const before = await raw(port, ca);
    before.send(APP, 'too early');
    expect((await before.closeFrame()).code).toBe('ERR_PROTOCOL');

    const twice = await raw(port, ca);
    await twice.hello();
    twice.send(FrameType.HELLO, { versions: [1], maxFrameBytes: 4096 });
    expect((await twice.closeFrame()).code).toBe('ERR_PROTOCOL');

    const unknown = await raw(port, ca);
    await unknown.hello();
    unknown.send(9, null);
    expect((await unknown.closeFrame()).code).toBe('ERR_PROTOCOL');

    const malformedHello = await raw(port, ca);
    malformedHello.send(FrameType.HELLO, { versions: 'one' });
    expect((await malformedHello.closeFrame()).code).toBe('ERR_PROTOCOL');
  });

  test('PING is answered with PONG echoing the token', async () => {
    const { port, ca } = await echoServer();
    const c = await raw(port, ca);
    await c.hello();
    c.send(FrameType.PING, 12345);
    expect(await c.next()).toEqual({ type: FrameType.PONG, body: 12345 });
  });
});

describe('application handler failures', () => {
  test('a throwing frame handler closes only that connection with ERR_PROTOCOL', async () => {
    const { server, port, ca } = await startTlsServer();
    cleanups.push(() => server.close());
    server.on('connection', (conn) => {
      conn.on('frame', (frame) => {
        if (frame.body === 'boom') throw new Error('handler bug');
        conn.send(APP, frame.body);
      });
    });
    const victim = await client(port, ca);
    const control = await client(port, ca);
    victim.send(APP, 'boom');
    const info = await within(5000, 'victim closed', victim.closed);
    expect(info.error?.code).toBe('ERR_PROTOCOL');
    expect(info.error?.message).not.toContain('handler bug');
    expect(await echo(control, 'fine')).toBe('fine');
  });
});

describe('framing errors', () => {
  test('an oversized length is refused at once; the control connection carries on', async () => {
    const { port, ca, server } = await echoServer({ preAuthMaxFrameBytes: 4096 });
    const control = await client(port, ca);
    const c = await raw(port, ca);
    await c.hello();
    // Only the prefix is sent: the server must not wait for (or buffer) the body.
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(4097);
    c.write(prefix);
    expect((await c.closeFrame()).code).toBe('ERR_FRAME_TOO_LARGE');
    expect(await echo(control, 'ok')).toBe('ok');
    expect(server.stats.open).toBe(1);
  });

  test('the client refuses to send a frame above the advertised limit', async () => {
    const { port, ca } = await echoServer({ preAuthMaxFrameBytes: 4096 });
    const conn = await client(port, ca);
    expect(conn.maxSendFrameBytes).toBe(4096);
    expect(() => conn.send(APP, new Uint8Array(5000))).toThrow(/exceeds/);
    expect(conn.state).toBe('open');
  });

  test('a length shorter than the CBOR item is ERR_FRAME_MALFORMED', async () => {
    const { port, ca } = await echoServer();
    const c = await raw(port, ca);
    await c.hello();
    const payload = encodeStrictCbor([APP, 'hello world']);
    c.write(rawFrame(payload.subarray(0, payload.length - 3)));
    expect((await c.closeFrame()).code).toBe('ERR_FRAME_MALFORMED');
  });

  test('a length longer than the CBOR item (trailing bytes) is ERR_FRAME_MALFORMED', async () => {
    const { port, ca } = await echoServer();
    const c = await raw(port, ca);
    await c.hello();
    const payload = encodeStrictCbor([APP, 'x']);
    c.write(rawFrame(Buffer.concat([payload, Buffer.from([0x00, 0x00])])));
    expect((await c.closeFrame()).code).toBe('ERR_FRAME_MALFORMED');
  });

  test('a zero length and a tagged item are ERR_FRAME_MALFORMED', async () => {
    const { port, ca } = await echoServer();
    const zero = await raw(port, ca);
    await zero.hello();
    zero.write(Buffer.alloc(4));
    expect((await zero.closeFrame()).code).toBe('ERR_FRAME_MALFORMED');
    const tagged = await raw(port, ca);
    await tagged.hello();
    tagged.write(rawFrame(Buffer.from([0x82, 0x10, 0xc1, 0x00])));
    expect((await tagged.closeFrame()).code).toBe('ERR_FRAME_MALFORMED');
  });
});

describe('authentication, time-outs and keep-alive', () => {
  test('markAuthenticated raises the frame limit and tells the client', async () => {
    const { port, ca } = await echoServer({ preAuthMaxFrameBytes: 4096, maxFrameBytes: 65_536 });
    const conn = await client(port, ca);
    expect(conn.authenticated).toBe(false);
    await authenticate(conn);
    expect(conn.authenticated).toBe(true);
    expect(conn.maxSendFrameBytes).toBe(65_536);
    const big = new Uint8Array(20_000).fill(7);
    expect(Buffer.from((await echo(conn, big)) as Uint8Array)).toEqual(Buffer.from(big));
  });

  test('pre-auth deadline closes a slowloris (1 byte every 40 ms); control carries on', async () => {
    // 1 s leaves the control connection time to authenticate on a loaded machine; the trickle
    // would need ~8 s to complete its frame.
    const { port, ca } = await echoServer({ preAuthTimeoutMs: 1000 });
    const control = await client(port, ca);
    await authenticate(control);
    const c = await raw(port, ca);
    await c.hello();
    const trickle = rawFrame(encodeStrictCbor([APP, 'x'.repeat(200)]));
    let i = 0;
    const timer = setInterval(() => {
      if (i < trickle.length) c.write(trickle.subarray(i, ++i));
    }, 40);
    cleanups.push(() => {
      clearInterval(timer);
    });
    const close = await c.closeFrame(5000);
    expect(close.code).toBe('ERR_TIMEOUT');
    expect(i).toBeLessThan(trickle.length);
    expect(await echo(control, 'ok')).toBe('ok');
  });

  test('pre-auth deadline also covers a TCP peer that never finishes TLS', async () => {
    const { port } = await echoServer({ preAuthTimeoutMs: 300, handshakeTimeoutMs: 60_000 });
    const started = Date.now();
    await within(
      5000,
      'socket close',
      new Promise<void>((resolve) => {
        const s = netConnect(port, '127.0.0.1', () => s.write(Buffer.from([0x16, 0x03])));
        s.on('error', () => undefined);
        s.on('close', () => {
          resolve();
        });
      }),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  test('idle peers are pinged, then closed with ERR_TIMEOUT; answering peers stay', async () => {
    const { port, ca } = await echoServer({ pingIntervalMs: 150, idleTimeoutMs: 1000 });
    const live = await client(port, ca);
    await authenticate(live);
    const silent = await raw(port, ca);
    await silent.hello();
    const ping = await silent.next();
    expect(ping.type).toBe(FrameType.PING);
    expect((await silent.closeFrame()).code).toBe('ERR_TIMEOUT');
    // The library client answered the server's pings all along (and pinged back).
    expect(live.state).toBe('open');
    expect(await echo(live, 'alive')).toBe('alive');
  });
});

describe('rate, back-pressure and caps', () => {
  test('frame-rate limit: a flood is closed with ERR_RATE_LIMITED', async () => {
    const { port, ca } = await echoServer({ frameRate: 20, frameBurst: 10 });
    const control = await client(port, ca);
    const flooder = await client(port, ca);
    for (let i = 0; i < 50 && flooder.state === 'open'; i++) flooder.send(APP, i);
    const info = await within(5000, 'flooder closed', flooder.closed);
    expect(info.error?.code).toBe('ERR_RATE_LIMITED');
    expect(info.initiator).toBe('remote');
    expect(await echo(control, 'ok')).toBe('ok');
  });

  test('slow reader: the outbound queue stays bounded and the peer is closed', async () => {
    const maxOutboundBytes = 256 * 1024;
    const { port, ca, connections } = await echoServer({
      maxFrameBytes: 16 * 1024,
      preAuthMaxFrameBytes: 16 * 1024,
      maxOutboundBytes,
      outboundHighWaterBytes: 64 * 1024,
    });
    const c = await raw(port, ca);
    await c.hello();
    c.socket.pause(); // never read again
    await within(
      5000,
      'server side',
      new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (connections.length > 0) {
            clearInterval(t);
            resolve();
          }
        }, 5);
      }),
    );
    const conn = connections[0]!;
    const chunk = new Uint8Array(8 * 1024);
    let sent = 0;
    let error: unknown;
    // A sender that ignores back-pressure (e.g. fan-out) must hit the bound, not grow memory.
    for (let i = 0; i < 10_000; i++) {
      try {
        conn.send(APP, chunk);
        sent += chunk.length;
      } catch (e) {
        error = e;
        break;
      }
      // Yield often so the kernel buffers fill first and the in-process queue grows after.
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    expect(isImppError(error, 'ERR_SLOW_CONSUMER')).toBe(true);
    expect(conn.stats.peakQueuedBytes).toBeLessThanOrEqual(maxOutboundBytes);
    const info = await within(5000, 'closed', conn.closed);
    expect(info.error?.code).toBe('ERR_SLOW_CONSUMER');
    console.log(
      `slow reader: ${sent} bytes accepted before close, peak queued ${conn.stats.peakQueuedBytes} bytes (limit ${maxOutboundBytes})`,
    );
  });

  test('a sender that waits for drain delivers 8 MB to a reading peer without closing', async () => {
    const { port, ca, connections } = await echoServer({ maxOutboundBytes: 512 * 1024 });
    const conn = await client(port, ca);
    await echo(conn, 'start');
    const serverSide = connections[0]!;
    let received = 0;
    const total = 8 * 1024 * 1024;
    const done = new Promise<void>((resolve) => {
      conn.on('frame', (f) => {
        received += (f.body as Uint8Array).length;
        if (received >= total) resolve();
      });
    });
    const chunk = new Uint8Array(32 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!serverSide.send(APP, chunk)) await serverSide.drained();
    }
    await within(15_000, 'all bytes', done);
    expect(serverSide.state).toBe('open');
    expect(serverSide.stats.peakQueuedBytes).toBeLessThanOrEqual(512 * 1024);
  });

  test('per-IP cap on unauthenticated connections; authenticating frees a slot', async () => {
    const { port, ca, server } = await echoServer({ maxPreAuthPerIp: 2 });
    const refused = new Promise<string>((resolve) =>
      server.on('refused', (info) => {
        resolve(info.error.code);
      }),
    );
    const a = await client(port, ca);
    await client(port, ca);
    const err: unknown = await connectTls({ host: 'localhost', port, ca }).catch((e: unknown) => e);
    expect(isImppError(err)).toBe(true);
    expect(await within(5000, 'refused event', refused)).toBe('ERR_CONNECTION_LIMIT');
    await authenticate(a);
    const c = await client(port, ca);
    expect(await echo(c, 'in')).toBe('in');
    expect(server.stats.unauthenticated).toBe(2);
  });

  test('global connection cap', async () => {
    const { port, ca, server } = await echoServer({ maxConnections: 2 });
    const a = await client(port, ca);
    await authenticate(a);
    const b = await client(port, ca);
    await authenticate(b);
    const err: unknown = await connectTls({ host: 'localhost', port, ca }).catch((e: unknown) => e);
    expect(isImppError(err)).toBe(true);
    expect(server.stats.connections).toBe(2);
    b.close();
    await b.closed;
    await within(
      5000,
      'slot freed',
      new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (server.stats.connections < 2) {
            clearInterval(t);
            resolve();
          }
        }, 5);
      }),
    );
    expect(await echo(await client(port, ca), 'ok')).toBe('ok');
  });

  test('server close does not wait for a peer stuck before the TLS handshake', async () => {
    const { server, port } = await startTlsServer({ handshakeTimeoutMs: 60_000 });
    const stuck = netConnect(port, '127.0.0.1');
    stuck.on('error', () => undefined);
    await new Promise<void>((resolve) =>
      stuck.once('connect', () => {
        resolve();
      }),
    );
    await within(
      5000,
      'listener registered the socket',
      new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (server.stats.connections === 1) {
            clearInterval(t);
            resolve();
          }
        }, 5);
      }),
    );
    await within(5000, 'server close', server.close());
    stuck.destroy();
  });

  test('server close tells clients ERR_CONNECTION_CLOSED', async () => {
    const { server, port, ca } = await startTlsServer();
    const conn = await connectTls({ host: 'localhost', port, ca });
    await server.close();
    const info = await within(5000, 'client closed', conn.closed);
    expect(info.error?.code).toBe('ERR_CONNECTION_CLOSED');
    expect(info.initiator).toBe('remote');
  });
});
