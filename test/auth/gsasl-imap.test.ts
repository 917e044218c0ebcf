/**
 * Real-TLS interop with GNU SASL as an IMAP client: `gsasl --connect --imap` connects to a tiny
 * IMAP responder in this test, upgrades with STARTTLS (GnuTLS on its side, Node/OpenSSL on ours),
 * and runs AUTHENTICATE SCRAM-SHA-256-PLUS (RFC 3501 §6.2.2) with tls-exporter channel binding
 * (RFC 9266) computed independently by each TLS stack. Only what the test needs of IMAP is
 * implemented: CAPABILITY, STARTTLS, AUTHENTICATE, LOGOUT.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelInfoFromTlsSocket } from '../../src/auth/channel.js';
import type { SessionOutcome } from '../../src/auth/server.js';
import { localEnv, type LocalEnv } from './helpers.js';
import { makeTestPki, type TestPki } from './tls-harness.js';

let pki: TestPki;
let caFile: string;
let env: LocalEnv;

beforeAll(async () => {
  pki = makeTestPki();
  caFile = join(tmpdir(), `impp-gsasl-ca-${process.pid}.pem`);
  writeFileSync(caFile, pki.ca);
  env = await localEnv();
  env.accounts.create('user', 'pencil');
});

afterAll(async () => {
  await env.close();
  pki.cleanup();
});

/** Splits a stream into CRLF lines; `detach` stops reading so the socket can be upgraded to TLS. */
function lines(socket: Socket | tls.TLSSocket, onLine: (line: string) => void): () => void {
  let buffer = '';
  const onData = (d: Buffer) => {
    buffer += d.toString('latin1');
    let i: number;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i).replace(/\r$/, '');
      buffer = buffer.slice(i + 1);
      onLine(line);
    }
  };
  socket.on('data', onData);
  return () => socket.off('data', onData);
}

/** Runs one IMAP connection; resolves with the authentication outcome (or null). */
function imapResponder(plain: Socket): Promise<SessionOutcome | null> {
  return new Promise((resolve) => {
    let result: SessionOutcome | null = null;
    const capabilities = (secure: boolean) =>
      secure
        ? '* CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-256-PLUS AUTH=SCRAM-SHA-256'
        : '* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED';
    const send = (s: tls.TLSSocket | Socket, line: string) => s.write(`${line}\r\n`);
    plain.on('error', () => {
      resolve(result);
    });
    send(plain, '* OK impp test IMAP ready');
    const detach = lines(plain, (line) => {
      const [tag = '*', command = ''] = line.split(' ');
      if (command.toUpperCase() === 'CAPABILITY') {
        send(plain, capabilities(false));
        send(plain, `${tag} OK CAPABILITY completed`);
      } else if (command.toUpperCase() === 'STARTTLS') {
        detach();
        send(plain, `${tag} OK begin TLS`);
        const secure = new tls.TLSSocket(plain, {
          isServer: true,
          key: pki.key,
          cert: pki.cert,
          minVersion: 'TLSv1.3',
        });
        secure.on('error', () => {
          resolve(result);
        });
        secure.on('secure', () => {
          const session = env.authenticator.begin(channelInfoFromTlsSocket(secure));
          let authTag: string | null = null;
          let awaitingFinalAck = false;
          lines(secure, (l) => {
            void (async () => {
              if (authTag !== null) {
                if (awaitingFinalAck) {
                  send(secure, `${authTag} OK AUTHENTICATE completed`);
                  authTag = null;
                  return;
                }
                if (l === '*') {
                  await session.abort();
                  send(secure, `${authTag} BAD aborted`);
                  authTag = null;
                  return;
                }
                reply(await session.respond(new Uint8Array(Buffer.from(l, 'base64'))));
                return;
              }
              const [t = '*', cmd = '', mech = '', initial] = l.split(' ');
              const verb = cmd.toUpperCase();
              if (verb === 'CAPABILITY') {
                send(secure, capabilities(true));
                send(secure, `${t} OK CAPABILITY completed`);
              } else if (verb === 'AUTHENTICATE') {
                authTag = t;
                const data =
                  initial === undefined
                    ? null
                    : initial === '='
                      ? new Uint8Array(0)
                      : new Uint8Array(Buffer.from(initial, 'base64'));
                reply(await session.start(mech.toUpperCase(), data));
              } else if (verb === 'LOGOUT') {
                send(secure, '* BYE');
                send(secure, `${t} OK LOGOUT completed`);
                secure.end();
              } else {
                send(secure, `${t} BAD unsupported`);
              }
            })();
          });
          const reply = (out: SessionOutcome): void => {
            if (out.type === 'challenge') {
              send(secure, `+ ${Buffer.from(out.challenge).toString('base64')}`);
            } else if (out.type === 'success') {
              result = out;
              // RFC 3501 has no success-with-data: the server-final goes as a last continuation.
              if (out.additionalData !== null) {
                awaitingFinalAck = true;
                send(secure, `+ ${Buffer.from(out.additionalData).toString('base64')}`);
              } else {
                send(secure, `${authTag ?? '*'} OK AUTHENTICATE completed`);
                authTag = null;
              }
            } else {
              result = out;
              send(secure, `${authTag ?? '*'} NO ${out.failure}`);
              authTag = null;
            }
          };
        });
        secure.on('close', () => {
          resolve(result);
        });
      } else if (command.toUpperCase() === 'LOGOUT') {
        send(plain, `${tag} OK bye`);
        plain.end();
      } else {
        send(plain, `${tag} BAD unsupported before STARTTLS`);
      }
    });
    plain.on('close', () => {
      resolve(result);
    });
  });
}

async function runGsasl(port: number, mechanism: string, password: string) {
  const server = createServer();
  const outcome = new Promise<SessionOutcome | null>((resolve) => {
    server.once('connection', (socket) => {
      void imapResponder(socket).then(resolve);
    });
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const actualPort = (server.address() as AddressInfo).port;
  const child = spawn(
    'gsasl',
    [
      `--connect=127.0.0.1:${actualPort}`,
      '--imap',
      '--starttls',
      `--x509-ca-file=${caFile}`,
      '--hostname=localhost',
      `--mechanism=${mechanism}`,
      '-a',
      'user',
      '--password',
      password,
      '--quiet',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  const result = await outcome;
  server.close();
  return { code, output, result };
}

describe('interop over real TLS: gsasl --connect --imap --starttls', () => {
  it('SCRAM-SHA-256-PLUS with each TLS stack computing the tls-exporter value itself', async () => {
    const r = await runGsasl(0, 'SCRAM-SHA-256-PLUS', 'pencil');
    expect(r.result?.type, r.output).toBe('success');
    expect(r.result?.type === 'success' && r.result.result.channelBound).toBe(true);
    expect(r.code, r.output).toBe(0);
  });

  it('a wrong password fails', async () => {
    const r = await runGsasl(0, 'SCRAM-SHA-256-PLUS', 'wrong');
    expect(r.result).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(r.code).not.toBe(0);
  });
});
