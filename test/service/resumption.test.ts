/**
 * T56 (docs/security-model.md): TLS session resumption does not carry an authentication over.
 * A resumed TLS 1.3 session (RFC 8446 §2.2, PSK) runs a new key schedule, so its exporter value
 * (RFC 9266) is fresh; a SCRAM-SHA-256-PLUS proof or a device-binding signature made for the
 * earlier connection's exporter fails on the resumed one, while honest logins on the resumed
 * connection work. 0-RTT: the server's tickets allow no early data (max_early_data 0), so a
 * client holding a ticket cannot send application data before the handshake completes (checked
 * with the openssl CLI as an independent client).
 *
 * All over real TLS on loopback against the real server and store.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate, type ServerReply } from '../../src/auth/client.js';
import { scramClient } from '../../src/auth/scram/client.js';
import type { AuthWireFailure, ChannelInfo } from '../../src/auth/types.js';
import { bindingInput } from '../../src/client/protocol.js';
import { generateSigningKeyPair, sign } from '../../src/crypto/index.js';
import { ClientFrame } from '../../src/service/protocol.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { DOMAIN, PASSWORD, startEnv, type Env } from './harness.js';
import { RawClient } from './raw.js';

type Body = { readonly [key: string]: CborValue };

let env: Env;
let ticket: Buffer;
const ALICE = `alice@${DOMAIN}`;

beforeAll(async () => {
  env = await startEnv();
  // A first connection, only to get a session ticket for the ones below.
  let session: Buffer | undefined;
  const first = await connectTls({
    host: '127.0.0.1',
    port: env.port,
    ca: env.ca,
    servername: 'localhost',
    onSession: (s) => {
      session ??= s;
    },
  });
  const raw = new RawClient(first);
  await raw.take(ClientFrame.AUTH_OFFER); // TLS 1.3 tickets arrive after the handshake
  for (let i = 0; i < 50 && session === undefined; i++) await new Promise((r) => setTimeout(r, 10));
  first.close();
  if (session === undefined) throw new Error('the server sent no session ticket');
  ticket = session;
}, 20_000);

afterAll(async () => {
  await env.close();
});

/** A connection that resumes the ticket's session (asserted). */
async function resumed(): Promise<RawClient> {
  const conn = await connectTls({
    host: '127.0.0.1',
    port: env.port,
    ca: env.ca,
    servername: 'localhost',
    session: ticket,
  });
  expect(conn.sessionReused).toBe(true);
  return new RawClient(conn);
}

async function fresh(): Promise<RawClient> {
  return RawClient.open(env);
}

/** SCRAM-SHA-256-PLUS as alice on `raw`, binding to `channel`'s exporter (normally raw's own). */
async function scramLogin(raw: RawClient, exporter: Uint8Array): Promise<AuthWireFailure | 'ok'> {
  const offer = await raw.take(ClientFrame.AUTH_OFFER);
  let failure: AuthWireFailure | undefined;
  const reply = async (): Promise<ServerReply> => {
    for (;;) {
      const f = raw.frames.find((x) =>
        [ClientFrame.AUTH_CHALLENGE, ClientFrame.AUTH_SUCCESS, ClientFrame.AUTH_FAILURE].includes(
          x.type as 19 | 20 | 21,
        ),
      );
      if (f === undefined) {
        await raw.wait();
        continue;
      }
      raw.frames.splice(raw.frames.indexOf(f), 1);
      const b = f.body as Body;
      if (f.type === ClientFrame.AUTH_CHALLENGE)
        return { type: 'challenge', challenge: b.data as Uint8Array };
      if (f.type === ClientFrame.AUTH_SUCCESS) {
        raw.nonce = b.nonce as Uint8Array;
        return { type: 'success', additionalData: (b.additionalData as Uint8Array | null) ?? null };
      }
      failure = b.failure as AuthWireFailure;
      return { type: 'failure', failure };
    }
  };
  const channel: ChannelInfo = { secure: true, tlsVersion: 'TLSv1.3', tlsExporter: exporter };
  try {
    await authenticate(
      {
        start: (mechanism, initial) => {
          raw.conn.send(ClientFrame.AUTH_START, { mechanism, initial });
          return reply();
        },
        respond: (data) => {
          raw.conn.send(ClientFrame.AUTH_RESPONSE, { data });
          return reply();
        },
      },
      scramClient({ username: 'alice', password: PASSWORD, channelBinding: 'require' }),
      offer.mechanisms as string[],
      channel,
      { requireChannelBinding: true },
    );
    return 'ok';
  } catch (e) {
    if (failure === undefined) throw e;
    return failure;
  }
}

const identity = generateSigningKeyPair();

/** The BIND body for `deviceId`, signed over `exporter` and `nonce`. */
function bindBody(exporter: Uint8Array, nonce: Uint8Array, deviceId: string): Body {
  return {
    deviceId,
    identityKey: identity.publicKey,
    signature: sign(
      identity.secretKey,
      bindingInput(exporter, nonce, ALICE, deviceId, identity.publicKey),
    ),
  };
}

describe('T56: a resumed TLS session has a fresh exporter; earlier proofs fail on it', () => {
  it('the exporter of a resumed session differs from the earlier connection and from other resumptions', async () => {
    const a = await fresh();
    const b = await resumed();
    const c = await resumed();
    const values = [a, b, c].map((r) => Buffer.from(r.conn.channelBinding()).toString('hex'));
    expect(new Set(values).size).toBe(3);
    for (const r of [a, b, c]) r.conn.close();
  });

  it('a SCRAM-SHA-256-PLUS proof bound to the earlier connection fails on the resumed one', async () => {
    const earlier = await fresh();
    expect(await scramLogin(earlier, earlier.conn.channelBinding())).toBe('ok');
    const before = env.audit.events.length;
    const later = await resumed();
    // The relayed login binds to what the earlier connection exported.
    expect(await scramLogin(later, earlier.conn.channelBinding())).toBe('not-authorized');
    const failure = env.audit.events.slice(before).find((e) => e.type === 'auth.failure');
    expect(failure?.reason).toBe('channel-binding-mismatch');
    // The honest login on a resumed connection works (the refusal above is the binding's).
    const honest = await resumed();
    expect(await scramLogin(honest, honest.conn.channelBinding())).toBe('ok');
    for (const r of [earlier, later, honest]) r.conn.close();
  });

  it('a device-binding signature from the earlier connection fails on the resumed one', async () => {
    const earlier = await fresh();
    expect(await scramLogin(earlier, earlier.conn.channelBinding())).toBe('ok');
    const earlierExporter = earlier.conn.channelBinding();
    const earlierBind = bindBody(earlierExporter, earlier.nonce as Uint8Array, 'resume-dev');
    earlier.conn.send(ClientFrame.BIND, earlierBind);
    expect((await earlier.take(ClientFrame.BOUND)).deviceId).toBe('resume-dev');
    earlier.conn.close();

    // 1. The whole BIND frame replayed on a resumed connection (after a fresh login).
    const replay = await resumed();
    expect(await scramLogin(replay, replay.conn.channelBinding())).toBe('ok');
    replay.conn.send(ClientFrame.BIND, earlierBind);
    expect((await replay.closed).error?.code).toBe('ERR_NOT_AUTHORIZED');

    // 2. Signed over this connection's nonce but the earlier connection's exporter.
    const mixed = await resumed();
    expect(await scramLogin(mixed, mixed.conn.channelBinding())).toBe('ok');
    mixed.conn.send(
      ClientFrame.BIND,
      bindBody(earlierExporter, mixed.nonce as Uint8Array, 'resume-dev'),
    );
    expect((await mixed.closed).error?.code).toBe('ERR_NOT_AUTHORIZED');

    // 3. Control: the honest binding on a resumed connection works.
    const honest = await resumed();
    expect(await scramLogin(honest, honest.conn.channelBinding())).toBe('ok');
    honest.conn.send(
      ClientFrame.BIND,
      bindBody(honest.conn.channelBinding(), honest.nonce as Uint8Array, 'resume-dev'),
    );
    expect((await honest.take(ClientFrame.BOUND)).deviceId).toBe('resume-dev');
    honest.conn.close();
  });
});

/** Runs `openssl s_client` against the server; stdin closes after `holdMs`. */
function sClient(args: readonly string[], holdMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${env.port}`,
        '-servername',
        'localhost',
        '-tls1_3',
        '-alpn',
        'impp/1',
        '-CAfile',
        join(dir, 'ca.pem'),
        ...args,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.on('error', reject);
    child.on('close', () => {
      resolve(out);
    });
    setTimeout(() => child.stdin.end(), holdMs);
    setTimeout(() => child.kill(), holdMs + 5000);
  });
}

let dir: string;

describe('T56: 0-RTT is never accepted', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'impp-0rtt-'));
    writeFileSync(join(dir, 'ca.pem'), env.ca);
    // Frames a replaying attacker would like the server to act on before the handshake ends.
    writeFileSync(join(dir, 'early.bin'), Buffer.from('IMPP early data attempt\n'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('tickets allow no early data, and a resuming client sends none (openssl s_client)', async () => {
    const sess = join(dir, 'sess.pem');
    const first = await sClient(['-sess_out', sess], 700);
    expect(first).toContain('Verify return code: 0 (ok)');
    const text = await new Promise<string>((resolve, reject) => {
      const c = spawn('openssl', ['sess_id', '-in', sess, '-noout', '-text']);
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
      c.on('error', reject);
      c.on('close', () => {
        resolve(out);
      });
    });
    expect(text).toMatch(/Max Early Data: 0\b/);
    expect(readFileSync(sess, 'latin1')).toContain('BEGIN SSL SESSION PARAMETERS');
    const second = await sClient(['-sess_in', sess, '-early_data', join(dir, 'early.bin')], 700);
    expect(second).toContain('Reused, TLSv1.3');
    expect(second).toMatch(/Early data was (not sent|rejected)/);
    expect(second).not.toContain('Early data was accepted');
  });
});
