/**
 * Interoperability with GNU SASL (`gsasl`, Debian package `gsasl`), an independent SCRAM
 * implementation: our server mechanisms against `gsasl --client`, our client against
 * `gsasl --server`, over gsasl's standard-input protocol (base64 lines). For -PLUS, the same
 * 32-byte tls-exporter value is handed to both sides (gsasl reads it from standard input), which
 * exercises the RFC 9266 channel-binding encoding on both sides of the exchange.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { randomBytes, utf8 } from '../../src/crypto/index.js';
import { scramClient } from '../../src/auth/scram/client.js';
import type { ClientMechanism, ChannelInfo } from '../../src/auth/types.js';
import { localEnv, tlsChannel } from './helpers.js';

const probe = spawnSync('gsasl', ['--version'], { encoding: 'utf8' });
if (probe.status !== 0) {
  throw new Error('gsasl is required for the SCRAM interop tests: apt-get install -y gsasl');
}

type GsaslEvent =
  | { type: 'output'; data: string }
  | { type: 'prompt-data' }
  | { type: 'finished'; text: string }
  | { type: 'prompt-cb'; kind: 'tls-exporter' | 'tls-unique' }
  | { type: 'exit'; code: number | null; text: string };

/** Drives a gsasl process through its prompts. Every wait is bounded by the test timeout. */
class Gsasl {
  readonly #child: ChildProcessWithoutNullStreams;
  #buffer = '';
  #transcript = '';
  #exit: { code: number | null } | null = null;
  #wake: (() => void) | null = null;

  constructor(args: string[]) {
    // One pipe for stdout and stderr, so data lines and prompts keep gsasl's own order.
    this.#child = spawn('sh', ['-c', 'exec gsasl "$@" 2>&1', 'gsasl', ...args, '--no-starttls'], {
      stdio: 'pipe',
    });
    const onData = (d: Buffer) => {
      this.#buffer += d.toString('utf8');
      this.#transcript += d.toString('utf8');
      this.#wake?.();
    };
    this.#child.stdout.on('data', onData);
    this.#child.stderr.on('data', onData);
    this.#child.on('close', (code) => {
      this.#exit = { code };
      this.#wake?.();
    });
  }

  get transcript(): string {
    return this.#transcript;
  }

  #take(): GsaslEvent | null {
    const patterns: [RegExp, (m: RegExpExecArray) => GsaslEvent][] = [
      [/Output from (?:client|server):\n([^\n]*)\n/, (m) => ({ type: 'output', data: m[1] ?? '' })],
      [
        /(?:Client|Server) authentication finished[^\n]*\n/,
        (m) => ({ type: 'finished', text: m[0] }),
      ],
      [
        /Enter base64 authentication data from (?:client|server) \(press RET if none\):\n?/,
        () => ({ type: 'prompt-data' }),
      ],
      [
        /Enter base64 encoded (tls-exporter|tls-unique) channel binding: ?/,
        (m) => ({ type: 'prompt-cb', kind: m[1] as 'tls-exporter' | 'tls-unique' }),
      ],
    ];
    let best: { index: number; length: number; event: GsaslEvent } | null = null;
    for (const [re, make] of patterns) {
      const m = re.exec(this.#buffer);
      if (m !== null && (best === null || m.index < best.index))
        best = { index: m.index, length: m[0].length, event: make(m) };
    }
    if (best === null) return null;
    this.#buffer = this.#buffer.slice(best.index + best.length);
    return best.event;
  }

  async next(): Promise<GsaslEvent> {
    for (;;) {
      const e = this.#take();
      if (e !== null) return e;
      if (this.#exit !== null)
        return { type: 'exit', code: this.#exit.code, text: this.#transcript };
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = null;
    }
  }

  send(line: string): void {
    this.#child.stdin.write(`${line}\n`);
  }

  async exit(): Promise<number | null> {
    this.#child.stdin.end();
    for (;;) {
      const e = await this.next();
      if (e.type === 'exit') return e.code;
    }
  }
}

const b64 = (d: Uint8Array) => Buffer.from(d).toString('base64');

/** Our server (an AuthSession) against `gsasl --client`. */
async function ourServerVsGsaslClient(
  mechanism: string,
  channel: ChannelInfo,
  gsaslArgs: string[],
  exporterForGsasl: Uint8Array | null,
) {
  const env = await localEnv();
  env.accounts.create('user', 'pencil');
  const session = env.authenticator.begin(channel);
  const g = new Gsasl([
    '--client',
    '--mechanism',
    mechanism,
    '-a',
    'user',
    '--password',
    'pencil',
    ...gsaslArgs,
  ]);
  let outcome: Awaited<ReturnType<typeof session.start>> | null = null;
  let toSend: string | null = null;
  for (let i = 0; i < 30; i++) {
    const e = await g.next();
    if (e.type === 'exit' || e.type === 'finished') break;
    if (e.type === 'prompt-cb') {
      g.send(e.kind === 'tls-exporter' && exporterForGsasl !== null ? b64(exporterForGsasl) : '');
    } else if (e.type === 'prompt-data') {
      g.send(toSend ?? '');
      toSend = null;
    } else if (outcome?.type !== 'success') {
      const data = new Uint8Array(Buffer.from(e.data, 'base64'));
      outcome =
        outcome === null ? await session.start(mechanism, data) : await session.respond(data);
      if (outcome.type === 'challenge') toSend = b64(outcome.challenge);
      else if (outcome.type === 'success')
        toSend = b64(outcome.additionalData ?? new Uint8Array(0));
      else break;
    }
  }
  const code = await g.exit();
  await env.close();
  return { outcome, code, transcript: g.transcript, audit: env.audit.events };
}

describe('interop: our SCRAM server against gsasl --client', () => {
  it('SCRAM-SHA-256 (gsasl without channel binding)', async () => {
    const r = await ourServerVsGsaslClient(
      'SCRAM-SHA-256',
      { secure: true, remoteAddress: '127.0.0.1' },
      ['--no-cb'],
      null,
    );
    expect(r.outcome?.type, r.transcript).toBe('success');
    expect(r.code, r.transcript).toBe(0);
  });

  it('SCRAM-SHA-256-PLUS with a tls-exporter value given to both sides', async () => {
    const exporter = randomBytes(32);
    const r = await ourServerVsGsaslClient(
      'SCRAM-SHA-256-PLUS',
      tlsChannel(exporter),
      [],
      exporter,
    );
    expect(r.outcome?.type, r.transcript).toBe('success');
    expect(r.outcome?.type === 'success' && r.outcome.result.channelBound).toBe(true);
    expect(r.code, r.transcript).toBe(0);
  });

  it('SCRAM-SHA-256-PLUS with a different exporter on the gsasl side fails (binding mismatch)', async () => {
    const r = await ourServerVsGsaslClient(
      'SCRAM-SHA-256-PLUS',
      tlsChannel(randomBytes(32)),
      [],
      randomBytes(32),
    );
    expect(r.outcome).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(r.audit.at(-1)?.reason).toBe('channel-binding-mismatch');
  });

  it('gsasl without binding support (GS2 n) is accepted where -PLUS was offered: only y signals a downgrade', async () => {
    // (gsasl 2.2 given binding data for the non-PLUS mechanism aborts instead of sending y, so the
    // y rule is tested with our own client in scram.test.ts and tls.test.ts.)
    const r = await ourServerVsGsaslClient(
      'SCRAM-SHA-256',
      tlsChannel(randomBytes(32)),
      ['--no-cb'],
      null,
    );
    expect(r.outcome?.type, r.transcript).toBe('success');
    expect(r.outcome?.type === 'success' && r.outcome.result.channelBound).toBe(false);
  });

  it('wrong password from gsasl fails', async () => {
    const env = await localEnv();
    env.accounts.create('user', 'other');
    const session = env.authenticator.begin({ secure: true, remoteAddress: '127.0.0.1' });
    const g = new Gsasl([
      '--client',
      '--mechanism',
      'SCRAM-SHA-256',
      '-a',
      'user',
      '--password',
      'pencil',
      '--no-cb',
    ]);
    let last = null as Awaited<ReturnType<typeof session.start>> | null;
    for (let i = 0; i < 10; i++) {
      const e = await g.next();
      if (e.type === 'exit' || e.type === 'finished') break;
      if (e.type === 'output') {
        const d = new Uint8Array(Buffer.from(e.data, 'base64'));
        last = last === null ? await session.start('SCRAM-SHA-256', d) : await session.respond(d);
        if (last.type !== 'challenge') break;
      } else if (e.type === 'prompt-data' && last?.type === 'challenge')
        g.send(b64(last.challenge));
      else g.send('');
    }
    await g.exit();
    expect(last).toEqual({ type: 'failure', failure: 'not-authorized' });
    await env.close();
  });
});

/** Our client mechanism against `gsasl --server`. Returns gsasl's exit code and our finish() result. */
async function ourClientVsGsaslServer(
  mech: ClientMechanism,
  name: string,
  password: string,
  exporter: Uint8Array | null,
) {
  const g = new Gsasl([
    '--server',
    '--mechanism',
    name,
    '--password',
    password,
    '--iteration-count',
    '4096',
  ]);
  let finished: 'ok' | Error | null = null;
  let started = false;
  let toSend: string | null = null;
  for (let i = 0; i < 30; i++) {
    const e = await g.next();
    if (e.type === 'exit' || e.type === 'finished') break;
    if (e.type === 'prompt-cb') g.send(exporter === null ? '' : b64(exporter));
    else if (e.type === 'prompt-data') {
      if (!started) {
        started = true;
        g.send(b64((await mech.start()) ?? new Uint8Array(0)));
      } else {
        g.send(toSend ?? '');
        toSend = null;
      }
    } else if (started && e.data !== '') {
      // gsasl --server delivers server-final (v=) as a last challenge: the client verifies it in
      // step() and answers with an empty response (RFC 4422 §3.6 allows either form).
      try {
        toSend = b64(await mech.step(new Uint8Array(Buffer.from(e.data, 'base64'))));
      } catch (err) {
        finished = err as Error;
        break;
      }
    }
  }
  if (finished === null) {
    try {
      await mech.finish(null);
      finished = 'ok';
    } catch (err) {
      finished = err as Error;
    }
  }
  const code = await g.exit();
  return { code, finished, transcript: g.transcript };
}

describe('interop: our SCRAM client against gsasl --server', () => {
  it('SCRAM-SHA-256: gsasl accepts our proof and we verify its server signature', async () => {
    const [plain] = scramClient({ username: 'user', password: 'pencil', channelBinding: 'never' });
    const mech = plain!.create({ channel: { secure: true }, offeredMechanisms: ['SCRAM-SHA-256'] });
    const r = await ourClientVsGsaslServer(mech, 'SCRAM-SHA-256', 'pencil', null);
    expect(r.finished, r.transcript).toBe('ok');
    expect(r.code, r.transcript).toBe(0);
  });

  it('SCRAM-SHA-256-PLUS with the same tls-exporter value on both sides', async () => {
    const exporter = randomBytes(32);
    const [plus] = scramClient({ username: 'user', password: 'pencil' });
    const mech = plus!.create({
      channel: tlsChannel(exporter),
      offeredMechanisms: ['SCRAM-SHA-256-PLUS'],
    });
    const r = await ourClientVsGsaslServer(mech, 'SCRAM-SHA-256-PLUS', 'pencil', exporter);
    expect(r.finished, r.transcript).toBe('ok');
    expect(r.code, r.transcript).toBe(0);
    expect(mech.channelBound).toBe(true);
  });

  it('a gsasl server with another password is detected (no valid v=)', async () => {
    const [plain] = scramClient({ username: 'user', password: 'pencil', channelBinding: 'never' });
    const mech = plain!.create({ channel: { secure: true }, offeredMechanisms: ['SCRAM-SHA-256'] });
    const r = await ourClientVsGsaslServer(mech, 'SCRAM-SHA-256', 'not-pencil', null);
    expect(r.finished).not.toBe('ok');
    expect(r.code).not.toBe(0);
    expect(utf8(r.transcript).length).toBeGreaterThan(0);
  });
});
