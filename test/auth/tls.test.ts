/**
 * SCRAM-SHA-256-PLUS over REAL TLS 1.3 on loopback, with the actual RFC 9266 exporter values, and
 * the two man-in-the-middle attacks channel binding exists for.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelInfoFromTlsSocket } from '../../src/auth/channel.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { isAuthError, type ChannelInfo } from '../../src/auth/types.js';
import { localEnv, type LocalEnv } from './helpers.js';
import {
  makeTestPki,
  startAuthServer,
  startMitmProxy,
  tlsLogin,
  type AuthTlsServer,
  type TestPki,
} from './tls-harness.js';

let pki: TestPki;
let env: LocalEnv;
let server: AuthTlsServer;

beforeAll(async () => {
  pki = makeTestPki();
  env = await localEnv();
  env.accounts.create('alice', 'tls-password');
  server = await startAuthServer(env.authenticator, pki);
});

afterAll(async () => {
  await server.close();
  await env.close();
  pki.cleanup();
});

const alice = (opts: { channelBinding?: 'require' | 'prefer' } = {}) =>
  scramClient({ username: 'alice', password: 'tls-password', ...opts });

describe('SCRAM-SHA-256-PLUS over real TLS 1.3', () => {
  it('logs in with tls-exporter channel binding', async () => {
    const login = await tlsLogin(server.port, pki, alice());
    expect(login.channel.tlsVersion).toBe('TLSv1.3');
    expect(login.channel.tlsExporter?.length).toBe(32);
    expect(login.offered).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    expect(login.outcome).toEqual({
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBound: true,
      downgradeSuspected: false,
    });
    expect(server.results.at(-1)).toMatchObject({
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBound: true,
      principal: { user: 'alice' },
    });
    expect(env.audit.events.at(-1)).toMatchObject({
      type: 'auth.success',
      remoteAddress: '127.0.0.1',
      secureChannel: true,
    });
  });

  it('a proxy that re-terminates TLS breaks the binding: the -PLUS login fails', async () => {
    const mitm = await startMitmProxy(server.port, pki);
    try {
      await expect(tlsLogin(mitm.port, pki, alice())).rejects.toSatisfy(isAuthError);
      expect(env.audit.events.at(-1)).toMatchObject({
        type: 'auth.failure',
        reason: 'channel-binding-mismatch',
        wire: 'not-authorized',
      });
    } finally {
      await mitm.close();
    }
  });

  it('a proxy that strips -PLUS from the offer: the client signals y and the server refuses', async () => {
    const strip = (line: string) => line.replace('"SCRAM-SHA-256-PLUS",', '');
    const mitm = await startMitmProxy(server.port, pki, strip);
    try {
      await expect(tlsLogin(mitm.port, pki, alice())).rejects.toSatisfy(isAuthError);
      expect(env.audit.events.at(-1)).toMatchObject({
        reason: 'downgrade',
        mechanism: 'SCRAM-SHA-256',
      });
      // A client that requires binding notices before sending anything.
      const before = env.audit.events.length;
      await expect(
        tlsLogin(mitm.port, pki, alice({ channelBinding: 'require' }), {
          requireChannelBinding: true,
        }),
      ).rejects.toMatchObject({
        code: 'ERR_AUTH_DOWNGRADE',
      });
      // The server only sees the connection close: one aborted exchange, no credential presented.
      await new Promise((r) => setTimeout(r, 50));
      expect(env.audit.events.slice(before).map((e) => e.reason)).toEqual(['aborted']);
      expect(env.audit.events.at(-1)?.claimedIdentity).toBeNull();
    } finally {
      await mitm.close();
    }
  });
});

describe('channel facts from real sockets', () => {
  async function pair(
    options: tls.TlsOptions,
  ): Promise<{ server: ChannelInfo; client: ChannelInfo }> {
    const srv = tls.createServer({ key: pki.key, cert: pki.cert, ...options });
    const serverSide = new Promise<ChannelInfo>((resolve) => {
      srv.once('secureConnection', (s) => {
        resolve(channelInfoFromTlsSocket(s));
        s.end('x');
      });
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const socket = tls.connect({
      host: '127.0.0.1',
      port: (srv.address() as AddressInfo).port,
      ca: pki.ca,
      servername: 'localhost',
    });
    await once(socket, 'secureConnect');
    const client = channelInfoFromTlsSocket(socket);
    const server = await serverSide;
    socket.destroy();
    srv.close();
    return { server, client };
  }

  it('TLS 1.3: both ends derive the same exporter; another connection derives another', async () => {
    const a = await pair({ minVersion: 'TLSv1.3' });
    const b = await pair({ minVersion: 'TLSv1.3' });
    expect(Buffer.from(a.server.tlsExporter!).equals(Buffer.from(a.client.tlsExporter!))).toBe(
      true,
    );
    expect(Buffer.from(a.server.tlsExporter!).equals(Buffer.from(b.server.tlsExporter!))).toBe(
      false,
    );
    expect(a.client.peerCertificate?.length).toBeGreaterThan(100);
    expect(a.client.peerCertificateVerified).toBe(true);
    expect(a.server.peerCertificate).toBeUndefined();
  });

  it('TLS 1.2: no exporter value (RFC 9266 §3), so -PLUS is not offered', async () => {
    const { server } = await pair({ maxVersion: 'TLSv1.2' });
    expect(server.tlsVersion).toBe('TLSv1.2');
    expect(server.tlsExporter).toBeUndefined();
    expect(env.authenticator.offer(server)).toEqual(['SCRAM-SHA-256']);
  });
});
