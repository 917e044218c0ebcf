/**
 * The service logger: JSON lines at the configured level, with secret-looking fields censored
 * even when a caller passes them by mistake.
 */
import { describe, expect, it } from 'vitest';
import { createServiceLogger } from '../../src/service/logging.js';

function capture(level: 'info' | 'warn') {
  const lines: Record<string, unknown>[] = [];
  const log = createServiceLogger({
    level,
    destination: {
      write: (line: string) => {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  return { log, lines };
}

describe('createServiceLogger', () => {
  it('writes one JSON object per line with a textual level and the impp name', () => {
    const { log, lines } = capture('info');
    log.info({ conn: 7, device: 'alice@localhost/laptop' }, 'device.bound');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      name: 'impp',
      conn: 7,
      device: 'alice@localhost/laptop',
      msg: 'device.bound',
    });
  });

  it('drops lines below the configured level', () => {
    const { log, lines } = capture('warn');
    log.info({ conn: 1 }, 'connection.open');
    log.debug({ conn: 1 }, 'noise');
    log.warn({ conn: 1, code: 'ERR_PROTOCOL' }, 'connection.closed');
    expect(lines.map((l) => l.msg)).toEqual(['connection.closed']);
  });

  it('censors secret-looking fields at the top level and one level down', () => {
    const { log, lines } = capture('info');
    log.info(
      {
        password: 'hunter2-password',
        token: 'tok-123',
        audit: { nonce: 'n-456', text: 'a message text', principal: 'alice@localhost' },
        child: { key: 'k-789', body: 'presence note' },
      },
      'oops',
    );
    const text = JSON.stringify(lines);
    for (const secret of ['hunter2-password', 'tok-123', 'n-456', 'a message text', 'k-789']) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toContain('presence note');
    expect(text).toContain('alice@localhost'); // ids stay
    expect(lines[0]).toMatchObject({ password: '[redacted]', token: '[redacted]' });
  });
});
