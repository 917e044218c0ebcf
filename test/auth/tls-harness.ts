/**
 * Real TLS over loopback for the auth tests and the bench: a throwaway CA and server certificate
 * (openssl CLI), a tiny line protocol carrying SASL messages as JSON, a server that runs one
 * {@link AuthSession} per connection, a client, and a man-in-the-middle proxy that re-terminates
 * TLS (optionally rewriting the offered mechanism list).
 *
 * Wire protocol (one JSON object per line, at most 16 KiB per line):
 * ```
 * S: {"mechanisms":["SCRAM-SHA-256-PLUS","SCRAM-SHA-256"]}
 * C: {"start":"SCRAM-SHA-256-PLUS","data":"<base64>"|null}
 * S: {"challenge":"<base64>"} | {"success":"<base64>"|null} | {"failure":"not-authorized"}
 * C: {"respond":"<base64>"}
 * ```
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { channelInfoFromTlsSocket } from '../../src/auth/channel.js';
import {
  authenticate,
  type ClientAuthOptions,
  type ClientAuthOutcome,
  type ClientSaslTransport,
  type ServerReply,
} from '../../src/auth/client.js';
import type { Authenticator, SessionOutcome } from '../../src/auth/server.js';
import type { ChannelInfo, ClientMechanismFactory, AuthWireFailure } from '../../src/auth/types.js';

export interface TestPki {
  readonly ca: string;
  readonly key: string;
  readonly cert: string;
  /** A second certificate for the same name from the same CA: what a MITM with a trusted CA has. */
  readonly mitmKey: string;
  readonly mitmCert: string;
  cleanup(): void;
}

/** Generates a throwaway P-256 CA and two localhost certificates with the openssl CLI. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'impp-tls-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=impp test CA',
  );
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  for (const name of ['server', 'mitm']) {
    run(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      '/CN=localhost',
    );
    run(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    );
  }
  return finish(dir);
}

function finish(dir: string): TestPki {
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    ca: read('ca.pem'),
    key: read('server.key'),
    cert: read('server.pem'),
    mitmKey: read('mitm.key'),
    mitmCert: read('mitm.pem'),
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads newline-delimited lines from a socket, bounded in size. */
export class LineReader {
  #buffer = '';
  readonly #lines: string[] = [];
  readonly #waiters: ((line: string | null) => void)[] = [];
  #closed = false;

  constructor(
    socket: tls.TLSSocket,
    private readonly maxLine = 16 * 1024,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      if (this.#buffer.length > this.maxLine * 2) socket.destroy();
      let i: number;
      while ((i = this.#buffer.indexOf('\n')) >= 0) {
        this.#push(this.#buffer.slice(0, i));
        this.#buffer = this.#buffer.slice(i + 1);
      }
    });
    const close = () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w(null);
    };
    socket.on('close', close);
    socket.on('error', close);
  }

  #push(line: string): void {
    const w = this.#waiters.shift();
    if (w !== undefined) w(line);
    else this.#lines.push(line);
  }

  next(): Promise<string | null> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

const b64 = (d: Uint8Array | null): string | null =>
  d === null ? null : Buffer.from(d).toString('base64');
const unb64 = (s: unknown): Uint8Array | null =>
  typeof s === 'string' ? new Uint8Array(Buffer.from(s, 'base64')) : null;

function outcomeLine(out: SessionOutcome): string {
  if (out.type === 'challenge') return JSON.stringify({ challenge: b64(out.challenge) });
  if (out.type === 'success') return JSON.stringify({ success: b64(out.additionalData) });
  return JSON.stringify({ failure: out.failure });
}

export interface AuthTlsServer {
  readonly port: number;
  /** Server-side results of successful logins, in order. */
  readonly results: import('../../src/auth/types.js').AuthResult[];
  close(): Promise<void>;
}

/** A TLS 1.3 server on 127.0.0.1 that runs one authentication exchange per connection. */
export async function startAuthServer(
  authenticator: Authenticator,
  pki: TestPki,
): Promise<AuthTlsServer> {
  const results: AuthTlsServer['results'] = [];
  const server = tls.createServer(
    { key: pki.key, cert: pki.cert, minVersion: 'TLSv1.3' },
    (socket) => {
      void serve(socket);
    },
  );
  const serve = async (socket: tls.TLSSocket): Promise<void> => {
    socket.on('error', () => undefined);
    const session = authenticator.begin(channelInfoFromTlsSocket(socket));
    const reader = new LineReader(socket);
    socket.write(`${JSON.stringify({ mechanisms: session.offered })}\n`);
    for (let steps = 0; steps < 20; steps++) {
      const line = await reader.next();
      if (line === null) {
        await session.abort();
        return;
      }
      let out: SessionOutcome;
      try {
        const msg = JSON.parse(line) as { start?: unknown; data?: unknown; respond?: unknown };
        if (typeof msg.start === 'string') out = await session.start(msg.start, unb64(msg.data));
        else out = await session.respond(unb64(msg.respond) ?? new Uint8Array(0));
      } catch {
        out = { type: 'failure', failure: 'malformed-request' };
        await session.abort();
      }
      if (out.type === 'success') results.push(out.result);
      socket.write(`${outcomeLine(out)}\n`);
      if (out.type !== 'challenge') {
        socket.end();
        return;
      }
    }
    socket.destroy();
  };
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    results,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}

class LineTransport implements ClientSaslTransport {
  constructor(
    private readonly socket: tls.TLSSocket,
    private readonly reader: LineReader,
  ) {}

  async #reply(): Promise<ServerReply> {
    const line = await this.reader.next();
    if (line === null) return { type: 'failure', failure: 'aborted' };
    const msg = JSON.parse(line) as {
      challenge?: string;
      success?: string | null;
      failure?: AuthWireFailure;
    };
    if (msg.challenge !== undefined)
      return { type: 'challenge', challenge: unb64(msg.challenge) ?? new Uint8Array(0) };
    if ('success' in msg) return { type: 'success', additionalData: unb64(msg.success) };
    return { type: 'failure', failure: msg.failure ?? 'aborted' };
  }

  start(mechanism: string, initial: Uint8Array | null): Promise<ServerReply> {
    this.socket.write(`${JSON.stringify({ start: mechanism, data: b64(initial) })}\n`);
    return this.#reply();
  }

  respond(data: Uint8Array): Promise<ServerReply> {
    this.socket.write(`${JSON.stringify({ respond: b64(data) })}\n`);
    return this.#reply();
  }
}

const contexts = new Map<string, tls.SecureContext>();

/** One client SecureContext per CA bundle: parsing the CA on every connect costs more than the handshake. */
export function clientContext(ca: string): tls.SecureContext {
  let ctx = contexts.get(ca);
  if (ctx === undefined) {
    ctx = tls.createSecureContext({ ca, minVersion: 'TLSv1.3' });
    contexts.set(ca, ctx);
  }
  return ctx;
}

/** What a client login over real TLS saw. */
export interface TlsLogin {
  readonly channel: ChannelInfo;
  readonly offered: string[];
  readonly outcome: ClientAuthOutcome;
}

/** Connects with TLS 1.3, reads the offer, and runs {@link authenticate}. Throws on failure. */
export async function tlsLogin(
  port: number,
  pki: Pick<TestPki, 'ca'>,
  factories: readonly ClientMechanismFactory[],
  options: ClientAuthOptions = {},
): Promise<TlsLogin> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    secureContext: clientContext(pki.ca),
    servername: 'localhost',
    minVersion: 'TLSv1.3',
  });
  try {
    await once(socket, 'secureConnect');
    const channel = channelInfoFromTlsSocket(socket, { peerCertificate: false });
    const reader = new LineReader(socket);
    const first = await reader.next();
    if (first === null) throw new Error('server closed before offering mechanisms');
    const offered = (JSON.parse(first) as { mechanisms: string[] }).mechanisms;
    const outcome = await authenticate(
      new LineTransport(socket, reader),
      factories,
      offered,
      channel,
      options,
    );
    return { channel, offered, outcome };
  } finally {
    socket.destroy();
  }
}

export interface MitmProxy {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A man in the middle that terminates the client's TLS with its own (trusted) certificate and opens
 * a second TLS session to the server: two TLS sessions, two different exporter values. `rewrite`
 * may alter each server→client line (e.g. strip -PLUS from the offer).
 */
export async function startMitmProxy(
  targetPort: number,
  pki: TestPki,
  rewrite: (line: string) => string = (l) => l,
): Promise<MitmProxy> {
  const server = tls.createServer(
    { key: pki.mitmKey, cert: pki.mitmCert, minVersion: 'TLSv1.3' },
    (client) => {
      client.on('error', () => undefined);
      const upstream = tls.connect({
        host: '127.0.0.1',
        port: targetPort,
        ca: pki.ca,
        servername: 'localhost',
      });
      upstream.on('error', () => client.destroy());
      client.pipe(upstream);
      let pending = '';
      upstream.setEncoding('utf8');
      upstream.on('data', (chunk: string) => {
        pending += chunk;
        let i: number;
        while ((i = pending.indexOf('\n')) >= 0) {
          client.write(`${rewrite(pending.slice(0, i))}\n`);
          pending = pending.slice(i + 1);
        }
      });
      upstream.on('end', () => client.end());
      client.on('close', () => upstream.destroy());
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}
