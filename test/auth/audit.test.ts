import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/crypto/index.js';
import { FanOutAuditSink, MemoryAuditSink, PinoAuditSink } from '../../src/auth/audit.js';
import { authenticate } from '../../src/auth/client.js';
import { scramClient } from '../../src/auth/scram/client.js';
import type { AuditEvent } from '../../src/auth/types.js';
import { SessionTransport, localEnv, tlsChannel } from './helpers.js';

function collectingLogger(): { logger: pino.Logger; lines: () => string[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return {
    logger: pino({ level: 'info' }, stream),
    lines: () => text.split('\n').filter((l) => l !== ''),
  };
}

const event = (over: Partial<AuditEvent> = {}): AuditEvent => ({
  type: 'auth.failure',
  at: 1,
  exchangeId: 'x-1',
  domain: 'example.com',
  mechanism: 'SCRAM-SHA-256',
  provider: 'local',
  claimedIdentity: 'alice',
  principal: null,
  reason: 'bad-credential',
  wire: 'not-authorized',
  secureChannel: true,
  channelBound: false,
  remoteAddress: '192.0.2.1',
  durationMs: 3,
  ...over,
});

describe('audit sinks', () => {
  it('a user name with a newline and control characters is one escaped field', () => {
    const { logger, lines } = collectingLogger();
    const sink = new PinoAuditSink(logger);
    sink.record(event({ claimedIdentity: 'mallory\n{"type":"auth.success"}\u0007\u001b[2J' }));
    const out = lines();
    expect(out).toHaveLength(1);
    const parsed = JSON.parse(out[0]!) as { msg: string; audit: AuditEvent };
    expect(parsed.msg).toBe('auth.failure');
    expect(parsed.audit.claimedIdentity).toBe('mallory\n{"type":"auth.success"}\u0007\u001b[2J');
    expect(Array.from(out[0]!).some((c) => c.charCodeAt(0) < 0x20)).toBe(false);
  });

  it('control characters never become a claimed identity: SASLprep refuses them first', async () => {
    const env = await localEnv();
    const out = await env.authenticator
      .begin(tlsChannel())
      .start('SCRAM-SHA-256-PLUS', utf8('p=tls-exporter,,n=mal\nlory,r=abcdefghijkl'));
    expect(out).toEqual({ type: 'failure', failure: 'malformed-request' });
    expect(env.audit.events.at(-1)).toMatchObject({ reason: 'malformed', claimedIdentity: null });
    await env.close();
  });

  it('logs success and failure through pino at info level with no password, proof or nonce', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'SecretCanary-77');
    const { logger, lines } = collectingLogger();
    const memory = new MemoryAuditSink();
    const fan = new FanOutAuditSink([new PinoAuditSink(logger), memory]);
    const channel = tlsChannel();
    for (const password of ['SecretCanary-77', 'WrongCanary-78']) {
      const session = env.authenticator.begin(channel);
      const t = new SessionTransport(session);
      await authenticate(
        t,
        scramClient({ username: 'alice', password }),
        session.offered,
        channel,
      ).catch(() => undefined);
      const last = env.audit.events.at(-1)!;
      await fan.record(last);
      // No nonce, proof or channel-binding value the client sent appears in the event.
      const dump = JSON.stringify(last);
      for (const w of t.wire.filter((x) => x.dir === 'c2s')) {
        const b64 = w.data.split(' ').at(-1) ?? '';
        const attrs = Buffer.from(b64, 'base64').toString('utf8').split(',');
        for (const a of attrs.filter((x) => /^[rpc]=/.test(x) && x.length > 10)) {
          expect(dump.includes(a.slice(2))).toBe(false);
        }
      }
    }
    const out = lines();
    expect(out).toHaveLength(2);
    expect(out.map((l) => (JSON.parse(l) as { level: number }).level)).toEqual([30, 30]);
    expect(out.join('\n')).not.toMatch(/Canary/);
    expect(memory.events.map((e) => e.type)).toEqual(['auth.success', 'auth.failure']);
    await env.close();
  });

  it('the memory sink is bounded', () => {
    const sink = new MemoryAuditSink(3);
    for (let i = 0; i < 10; i++) sink.record(event({ exchangeId: String(i) }));
    expect(sink.events.map((e) => e.exchangeId)).toEqual(['7', '8', '9']);
    sink.clear();
    expect(sink.events).toEqual([]);
  });
});
