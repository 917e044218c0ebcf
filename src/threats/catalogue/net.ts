/**
 * Network probes shared by the transport and authentication threats: raw sockets (TCP, TLS
 * without the hello exchange), SCRAM half-exchanges on a {@link RawClient}, and the malicious
 * relay with a certificate the probe's client trusts.
 */
import { type Socket, connect as netConnect } from 'node:net';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { randomBytes } from '../../crypto/random.js';
import { ImppError } from '../../errors.js';
import { ClientFrame } from '../../protocol/frames.js';
import { FrameType } from '../../transport/control.js';
import { type Frame, FrameDecoder, encodeFrame } from '../../transport/frame-codec.js';
import { createSuiteCa, issueServerCert } from '../attackers/certs.js';
import { type Relay, type RelayHook, startRelay } from '../attackers/relay.js';
import { asBody, RawClient } from '../raw.js';
import type { Target, TestAccount, ThreatContext } from '../types.js';

export { sleep } from '../wait.js';

/** ALPN of the client port. */
export const ALPN = 'impp/1';

/** The user part of `user@domain`. */
export function userOf(account: TestAccount): string {
  return account.address.slice(0, account.address.lastIndexOf('@'));
}

/** A socket and when it closed (ms after opening), with every byte it received. */
export interface Observed<S extends Socket> {
  readonly socket: S;
  readonly received: Buffer[];
  /** Resolves `true` when the socket closes within `ms`, `false` otherwise. */
  closedWithin(ms: number): Promise<boolean>;
}

function observe<S extends Socket>(socket: S): Observed<S> {
  const received: Buffer[] = [];
  let closed = false;
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => undefined);
  socket.once('close', () => {
    closed = true;
    for (const w of waiters.splice(0)) w();
  });
  return {
    socket,
    received,
    closedWithin(ms) {
      if (closed) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          resolve(false);
        }, ms);
        waiters.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
  };
}

/** A plain TCP connection to `port` (no TLS at all). */
export async function rawTcp(host: string, port: number): Promise<Observed<Socket>> {
  const socket = netConnect({ host, port });
  const seen = observe(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return seen;
}

/** TLS options for the target (its CA and name, ALPN impp/1) plus `extra`. */
export function tlsOptionsFor(target: Target, extra: ConnectionOptions = {}): ConnectionOptions {
  return {
    host: target.host,
    port: target.port,
    ca: target.ca,
    servername: target.servername ?? target.domain,
    ALPNProtocols: [ALPN],
    ...extra,
  };
}

/** A TLS connection without the hello exchange: the probe writes whatever bytes it likes. */
export async function rawTls(
  target: Target,
  extra: ConnectionOptions = {},
): Promise<Observed<TLSSocket>> {
  const socket = tlsConnect(tlsOptionsFor(target, extra));
  const seen = observe(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
    socket.once('close', () => {
      reject(new ImppError('ERR_CONNECTION_CLOSED', 'closed during the TLS handshake'));
    });
  });
  return seen;
}

/** The frames in what a raw socket received (stops at the first undecodable byte). */
export function framesIn(received: readonly Buffer[]): Frame[] {
  const decoder = new FrameDecoder({ maxFrameBytes: 16 * 1024 * 1024 });
  const out: Frame[] = [];
  try {
    decoder.push(Buffer.concat(received));
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) out.push(f);
  } catch {
    // Garbage after the frames: what came before still counts.
  }
  return out;
}

/** A HELLO frame as a client sends it, with its length prefix. */
export function helloBytes(): Buffer {
  return encodeFrame({ type: FrameType.HELLO, body: { versions: [1], maxFrameBytes: 1024 * 1024 } })
    .bytes;
}

/**
 * Sends AUTH_START with a SCRAM client-first for `user` and waits for server-first; returns it
 * and the time it took (ms), then closes: an aborted exchange, which no rate limiter counts.
 */
export async function scramFirst(
  target: Target,
  ctx: ThreatContext,
  user: string,
  mechanism = 'SCRAM-SHA-256',
): Promise<{ answer: 'challenge' | 'failure' | 'none'; text: string; ms: number }> {
  const probe = await RawClient.open(ctx, target);
  try {
    await probe.offer();
    const nonce = Buffer.from(randomBytes(18)).toString('base64');
    const gs2 = mechanism.endsWith('-PLUS') ? 'p=tls-exporter,,' : 'n,,';
    const first = Buffer.from(`${gs2}n=${user},r=${nonce}`, 'utf8');
    const t0 = performance.now();
    probe.conn.send(ClientFrame.AUTH_START, { mechanism, initial: first });
    const f = await probe.next([ClientFrame.AUTH_CHALLENGE, ClientFrame.AUTH_FAILURE]);
    const ms = performance.now() - t0;
    if (f === undefined) return { answer: 'none', text: '', ms };
    const b = asBody(f.body);
    if (f.type === ClientFrame.AUTH_FAILURE) {
      return { answer: 'failure', text: typeof b.failure === 'string' ? b.failure : '?', ms };
    }
    return {
      answer: 'challenge',
      text: Buffer.from(b.data as Uint8Array).toString('utf8'),
      ms,
    };
  } finally {
    probe.close();
  }
}

/**
 * One wrong-password SCRAM attempt without the client's PBKDF2 work: a correct client-first and
 * client-final (nonce, channel binding) with a random proof, which the server checks like any
 * wrong password. Resolves with the wire outcome (`not-authorized`, `temporary-auth-failure`, …).
 */
export async function scramWrongProof(
  target: Target,
  ctx: ThreatContext,
  user: string,
  mechanism: string,
): Promise<string> {
  const probe = await RawClient.open(ctx, target);
  try {
    await probe.offer();
    const plus = mechanism.endsWith('-PLUS');
    const gs2 = plus ? 'p=tls-exporter,,' : 'n,,';
    const nonce = Buffer.from(randomBytes(18)).toString('base64');
    probe.conn.send(ClientFrame.AUTH_START, {
      mechanism,
      initial: Buffer.from(`${gs2}n=${user},r=${nonce}`, 'utf8'),
    });
    const first = await probe.next([ClientFrame.AUTH_CHALLENGE, ClientFrame.AUTH_FAILURE]);
    if (first === undefined) return 'closed';
    const fb = asBody(first.body);
    if (first.type === ClientFrame.AUTH_FAILURE)
      return typeof fb.failure === 'string' ? fb.failure : '?';
    const serverNonce = scramAttributes(Buffer.from(fb.data as Uint8Array).toString()).get('r');
    const cb = Buffer.concat([
      Buffer.from(gs2, 'utf8'),
      plus ? Buffer.from(probe.conn.channelBinding()) : Buffer.alloc(0),
    ]).toString('base64');
    const proof = Buffer.from(randomBytes(32)).toString('base64');
    probe.conn.send(ClientFrame.AUTH_RESPONSE, {
      data: Buffer.from(`c=${cb},r=${serverNonce ?? ''},p=${proof}`, 'utf8'),
    });
    const last = await probe.next([
      ClientFrame.AUTH_SUCCESS,
      ClientFrame.AUTH_FAILURE,
      ClientFrame.AUTH_CHALLENGE,
    ]);
    if (last === undefined) return 'closed';
    if (last.type === ClientFrame.AUTH_SUCCESS) return 'success';
    const lb = asBody(last.body);
    return typeof lb.failure === 'string' ? lb.failure : '?';
  } finally {
    probe.close();
  }
}

/** Reads `key=value` attributes of a SCRAM message. */
export function scramAttributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part.slice(0, 1), part.slice(2));
  }
  return out;
}

/** A terminating relay in front of the target, with a CA of its own that the probe will trust. */
export async function trustedRelay(
  ctx: ThreatContext,
  onFrame?: RelayHook,
): Promise<{ relay: Relay; ca: string }> {
  const ca = await createSuiteCa('impp threat suite relay CA');
  const names = [
    ...new Set(['localhost', '127.0.0.1', ctx.target.servername ?? ctx.target.domain]),
  ];
  const identity = await issueServerCert(ca, { names });
  const relay = await startRelay({
    upstream: {
      host: ctx.target.host,
      port: ctx.target.port,
      ca: ctx.target.ca,
      servername: ctx.target.servername ?? ctx.target.domain,
    },
    mode: 'terminate',
    identity,
    ...(onFrame === undefined ? {} : { onFrame }),
  });
  ctx.defer(() => relay.close());
  return { relay, ca: ca.certPem };
}

/** SDK client options that send `account` through `relay`, trusting the relay's CA. */
export function viaRelay(
  ctx: ThreatContext,
  relay: Relay,
  ca: string,
): { host: string; port: number; ca: string; servername: string } {
  return {
    host: relay.host,
    port: relay.port,
    ca,
    servername: ctx.target.servername ?? ctx.target.domain,
  };
}

/** `CODE` of an error, or its message. */
export function codeOf(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? code : error.message;
  }
  return String(error);
}

/** Runs `step`, resolving with the error it threw (or `undefined` when it succeeded). */
export async function failureOf(step: () => Promise<unknown>): Promise<unknown> {
  try {
    await step();
    return undefined;
  } catch (error) {
    return error ?? new Error('failed');
  }
}
