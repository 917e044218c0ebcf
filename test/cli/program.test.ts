/** The CLI in-process: error reporting and exit codes, colours, version, the demo's checks. */
import { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImppError } from '../../src/errors.js';
import { registerDemo } from '../../src/cli/demo.js';
import {
  DEMO_TEXT,
  findLeaks,
  runDemoScenario,
  type DemoResult,
  type StoredObject,
} from '../../src/cli/demo-scenario.js';
import { CliExit, colorEnabled, type CliIo } from '../../src/cli/io.js';
import { EXIT_SOFTWARE, packageVersion, reportError, runCli } from '../../src/cli/program.js';

interface Captured extends CliIo {
  readonly out: () => string;
  readonly err: () => string;
}

function capture(env: Record<string, string> = {}, isTTY = false): Captured {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: { write: (t: string) => out.push(t), isTTY },
    stderr: { write: (t: string) => err.push(t), isTTY },
    env,
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

describe('error reporting', () => {
  it('an ImppError prints one line with its code and exits 1, no stack', () => {
    const io = capture();
    const code = reportError(new ImppError('ERR_NOT_FOUND', 'no such user'), io);
    expect(code).toBe(1);
    expect(io.err()).toBe('impp: no such user (ERR_NOT_FOUND)\n');
    expect(io.out()).toBe('');
  });

  it('IMPP_DEBUG=1 adds the stack of an ImppError', () => {
    const io = capture({ IMPP_DEBUG: '1' });
    expect(reportError(new ImppError('ERR_TIMEOUT', 'timed out'), io)).toBe(1);
    expect(io.err()).toMatch(/^impp: timed out \(ERR_TIMEOUT\)\nImppError: timed out\n\s+at /);
  });

  it('anything else is a bug: printed with its stack, exit 70', () => {
    const io = capture();
    expect(reportError(new TypeError('x is undefined'), io)).toBe(EXIT_SOFTWARE);
    expect(EXIT_SOFTWARE).toBe(70);
    expect(io.err()).toMatch(/internal error.*\nTypeError: x is undefined\n\s+at /);
    const io2 = capture();
    expect(reportError('a thrown string', io2)).toBe(70);
    expect(io2.err()).toContain('a thrown string');
  });

  it('CliExit carries an exit code and prints nothing more', () => {
    const io = capture();
    expect(reportError(new CliExit(1), io)).toBe(1);
    expect(io.err()).toBe('');
  });

  it('runCli maps usage errors to 2 and help to 0, in-process', async () => {
    const io = capture();
    expect(await runCli(['nope'], io)).toBe(2);
    expect(io.err()).toMatch(/^impp: unknown command 'nope'\nCommands: demo, (\w+, )*help\n/);
    const help = capture();
    expect(await runCli(['help', 'demo'], help)).toBe(0);
    expect(help.out()).toContain('Usage: impp demo');
  });

  it('chat: help documents the commands and --password-stdin; bad options are refused', async () => {
    const help = capture();
    expect(await runCli(['chat', '--help'], help)).toBe(0);
    for (const text of ['--server', '--ca', '--user', '--state', '--password-stdin', '/approve']) {
      expect(help.out()).toContain(text);
    }
    expect(help.out()).toContain('first line of');
    const missing = capture();
    expect(await runCli(['chat', '--user', 'alice@localhost'], missing)).toBe(2);
    expect(missing.err()).toContain('--server');
    const noStdin = capture();
    const args = ['chat', '--server', 'localhost:1', '--user', 'alice@localhost'];
    expect(await runCli([...args.slice(0, 2), 'local host:x', ...args.slice(3)], noStdin)).toBe(1);
    expect(noStdin.err()).toContain('--server must be HOST:PORT (ERR_INVALID_ARGUMENT)');
    const badUser = capture();
    expect(await runCli(['chat', '--server', 'localhost:1', '--user', 'no-at-sign'], badUser)).toBe(
      1,
    );
    expect(badUser.err()).toMatch(/^impp: .*\(ERR_[A-Z_]+\)\n$/);
    const noIo = capture();
    expect(await runCli(args, noIo)).toBe(1);
    expect(noIo.err()).toContain('impp chat needs standard input');
  });

  it('reads the version from package.json at run time', () => {
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('colours', () => {
  it('only on a terminal, and never with NO_COLOR set and non-empty', () => {
    expect(colorEnabled({ write: () => 0, isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ write: () => 0 }, {})).toBe(false);
    expect(colorEnabled({ write: () => 0, isTTY: false }, {})).toBe(false);
    expect(colorEnabled({ write: () => 0, isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ write: () => 0, isTTY: true }, { NO_COLOR: '' })).toBe(true);
  });

  it('the demo uses colours on a terminal and none with NO_COLOR', async () => {
    const tty = capture({}, true);
    expect(await runCli(['demo'], tty)).toBe(0);
    expect(tty.out()).toContain('\u001b[');
    const noColor = capture({ NO_COLOR: '1' }, true);
    expect(await runCli(['demo'], noColor)).toBe(0);
    expect(noColor.out()).not.toContain('\u001b[');
    expect(noColor.out()).toContain('server store contains no plaintext: yes');
  });
});

describe('the demo fails closed', () => {
  let real: DemoResult;
  beforeAll(async () => {
    real = await runDemoScenario();
  });

  function object(bytes: Uint8Array, sealedSender?: string): StoredObject {
    return {
      table: 'queue',
      kind: 'message',
      routing: 'bob@example.test/phone',
      size: bytes.length,
      ciphertextSize: bytes.length,
      bytes,
      ...(sealedSender !== undefined ? { sealedSender } : {}),
    };
  }

  it('the real run: a real server stored sealed objects, no leaks, every check passes', () => {
    expect(real.leaks).toEqual([]);
    expect(real.checks.every((c) => c.passed)).toBe(true);
    expect(real.server.listen).toMatch(/^127\.0\.0\.1:\d+$/);
    const [offline, end] = real.stored;
    expect(offline?.objects.some((o) => o.table === 'queue' && o.kind === 'message')).toBe(true);
    expect(end?.objects.filter((o) => o.table === 'presence')).toHaveLength(2);
    expect(end?.keyLogSize).toBeGreaterThanOrEqual(3);
    // The database files were searched, the write-ahead log included.
    expect(real.files.map((f) => f.name)).toEqual(expect.arrayContaining(['service.db']));
    expect(real.plaintext.message).toBe(DEMO_TEXT.message);
    expect(real.plaintext.reply).toBe(DEMO_TEXT.reply);
  });

  it('findLeaks finds a plaintext or a sealed sender address in objects and files', () => {
    const planted = Buffer.concat([Buffer.of(1, 2, 3), Buffer.from(DEMO_TEXT.note), Buffer.of(9)]);
    expect(findLeaks([object(Buffer.of(1, 2, 3)), object(planted)])).toEqual([
      { where: 'stored object 2', what: 'note' },
    ]);
    const sender = Buffer.from('xx alice@example.test yy');
    expect(findLeaks([object(sender, 'alice@example.test')])).toEqual([
      { where: 'stored object 1', what: 'sender address' },
    ]);
    // A presence update names its presentity by design: not a sealed sender, not a leak.
    expect(findLeaks([object(sender)])).toEqual([]);
    // In a database file, in UTF-16 too (SQLite can store text that way).
    const file = Buffer.concat([Buffer.alloc(100), Buffer.from(DEMO_TEXT.reply, 'utf16le')]);
    expect(findLeaks([], [{ name: 'service.db-wal', bytes: file }])).toEqual([
      { where: 'service.db-wal', what: 'reply' },
    ]);
    // The message text appended to a real stored object is found.
    const first = real.stored[0]?.objects[0];
    expect(first).toBeDefined();
    if (first === undefined) return;
    const leaky = Buffer.concat([Buffer.from(first.bytes), Buffer.from(DEMO_TEXT.message)]);
    expect(findLeaks([{ ...first, bytes: leaky }]).map((l) => l.what)).toEqual(['message']);
  });

  it('a leak makes `impp demo` print "NO" and exit 1', async () => {
    const broken: DemoResult = {
      ...real,
      leaks: [{ where: 'service.db-wal', what: 'reply' }],
    };
    for (const json of [false, true]) {
      const io = capture();
      const program = new Command('impp').exitOverride();
      registerDemo(program, io, () => Promise.resolve(broken));
      const args = json ? ['demo', '--json'] : ['demo'];
      const err: unknown = await program
        .parseAsync(args, { from: 'user' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CliExit);
      expect(reportError(err, io)).toBe(1);
      if (json) {
        expect(JSON.parse(io.out())).toMatchObject({ serverStoreContainsNoPlaintext: false });
      } else {
        expect(io.out()).toContain('server store contains no plaintext: NO');
        expect(io.out()).not.toContain('server store contains no plaintext: yes');
        expect(io.out()).toContain('reply in service.db-wal');
      }
    }
  });

  it('a failed claim alone also exits 1', async () => {
    const checks = real.checks.map((c, i) => (i === 0 ? { ...c, passed: false } : c));
    const io = capture();
    const program = new Command('impp').exitOverride();
    registerDemo(program, io, () => Promise.resolve({ ...real, checks }));
    const err: unknown = await program
      .parseAsync(['demo'], { from: 'user' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliExit);
    expect(io.out()).toMatch(/NO\s+subscriptions were approved/);
  });
});
