/**
 * `impp chat` end to end: an in-process server (real TLS, real SQLite), two real `impp chat`
 * child processes driven through their standard input (`--password-stdin`: the first line is
 * the password, the next lines are commands), their output read line by line.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChatLine, printable } from '../../src/cli/chat/commands.js';
import { parseServer } from '../../src/cli/chat.js';
import { type Env, PASSWORD, startEnv } from '../service/harness.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const main = join(root, 'src/cli/main.ts');
/** Generous: a child process starts tsx and libsodium before it connects. */
const WAIT_MS = 20_000;

/** A running `impp chat` whose output lines can be awaited. */
class Chat {
  readonly child: ChildProcessWithoutNullStreams;
  out = '';
  err = '';
  readonly exited: Promise<number | null>;
  #waiters: { re: RegExp; from: number; done: () => void }[] = [];

  constructor(args: readonly string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', main, 'chat', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent', ...env },
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => {
      this.out += chunk;
      for (const w of [...this.#waiters]) {
        if (w.re.test(this.out.slice(w.from))) {
          this.#waiters = this.#waiters.filter((x) => x !== w);
          w.done();
        }
      }
    });
    this.child.stderr.on('data', (chunk: string) => {
      this.err += chunk;
    });
    this.exited = new Promise((done) =>
      this.child.on('close', (code) => {
        done(code);
      }),
    );
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  /** Waits until the output after position `from` matches `re`; returns the output's length. */
  waitFor(re: RegExp, from = 0): Promise<number> {
    return new Promise((done, fail) => {
      const check = (): boolean => re.test(this.out.slice(from));
      if (check()) {
        done(this.out.length);
        return;
      }
      const timer = setTimeout(() => {
        fail(
          new Error(
            `no ${String(re)} within ${WAIT_MS} ms; stdout:\n${this.out}\nstderr:\n${this.err}`,
          ),
        );
      }, WAIT_MS);
      this.#waiters.push({
        re,
        from,
        done: () => {
          clearTimeout(timer);
          done(this.out.length);
        },
      });
    });
  }

  /** Sends `line` and waits for `re` in what is printed after it. */
  async run(line: string, re: RegExp): Promise<void> {
    const from = this.out.length;
    this.send(line);
    await this.waitFor(re, from);
  }
}

let env: Env;
let caFile: string;
const chats: Chat[] = [];

function chat(user: string, extra: readonly string[] = []): Chat {
  const c = new Chat([
    '--server',
    `127.0.0.1:${env.port}`,
    '--ca',
    caFile,
    '--servername',
    'localhost',
    '--user',
    `${user}@example.org`,
    '--state',
    join(env.dir, 'chat', `${user}.json`),
    '--password-stdin',
    ...extra,
  ]);
  chats.push(c);
  return c;
}

beforeAll(async () => {
  env = await startEnv();
  caFile = join(env.dir, 'ca.pem');
  writeFileSync(caFile, env.ca);
});
afterAll(async () => {
  for (const c of chats) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  await env.close();
});

describe('impp chat (two child processes against an in-process server)', () => {
  it('subscribes, approves, sees live presence, exchanges messages and quits with 0', async () => {
    const alice = chat('alice');
    const bob = chat('bob');
    alice.send(PASSWORD);
    bob.send(PASSWORD);
    await Promise.all([
      alice.waitFor(/connected as alice@example\.org\/terminal \(new device registered/),
      bob.waitFor(/connected as bob@example\.org\/terminal/),
    ]);
    // The state file holds secret keys: private from its creation.
    expect(statSync(join(env.dir, 'chat', 'alice.json')).mode & 0o777).toBe(0o600);

    const bobHeard = bob.waitFor(
      /alice@example\.org asks to see your presence: \/approve alice@example\.org/,
      bob.out.length,
    );
    await alice.run('/sub bob@example.org', /subscription to bob@example\.org: pending/);
    await bobHeard;
    const aliceTold = alice.waitFor(/bob@example\.org approved your request/, alice.out.length);
    await bob.run(
      '/approve alice@example.org',
      /alice@example\.org may see your presence \(approved\)/,
    );
    await aliceTold;

    const seen = alice.waitFor(/bob@example\.org is open: at desk/, alice.out.length);
    await bob.run('/status open "at desk"', /published open: at desk/);
    await seen;
    await alice.run('/who', /bob@example\.org\s+open: at desk/);

    const got = bob.waitFor(/<alice@example\.org> hi\n/, bob.out.length);
    await alice.run('/msg bob@example.org hi', /sent to bob@example\.org/);
    await got;
    // /to, then a plain line: the reply goes back the same way.
    const reply = alice.waitFor(/<bob@example\.org> hello alice\n/, alice.out.length);
    await bob.run('/to alice@example.org', /talking to alice@example\.org/);
    await bob.run('hello alice', /sent to alice@example\.org/);
    await reply;

    // Both compute the same safety number from the directory.
    await alice.run('/safety bob@example.org', /safety number with bob@example\.org: [\d ]+\n/);
    await bob.run('/safety alice@example.org', /safety number with alice@example\.org: [\d ]+\n/);
    const number = (c: Chat): string | undefined =>
      /safety number with \S+: ([\d ]+)\n/.exec(c.out)?.[1];
    expect(number(alice)).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(number(alice)).toBe(number(bob));

    await alice.run('/bogus', /unknown command \/bogus: try \/help/);
    alice.send('/quit');
    bob.child.stdin.end(); // end of input quits too
    expect(await alice.exited).toBe(0);
    expect(await bob.exited).toBe(0);
    expect(alice.out).toContain('* bye');
    expect(alice.err).toBe('');
    expect(bob.err).toBe('');
    // A pipe is not a terminal: no escape sequences.
    expect(alice.out + bob.out).not.toContain('\u001b[');
  });

  it('a restart reuses the state file: no new registration, messages kept for it', async () => {
    // Alice is offline; Bob (again) sends; the restarted Alice receives it from the queue.
    const bob = chat('bob');
    bob.send(PASSWORD);
    await bob.waitFor(/connected as bob@example\.org\/terminal\n/);
    expect(bob.out).not.toContain('new device registered');
    await bob.run('/msg alice@example.org while you were away', /sent to alice@example\.org/);
    bob.send('/quit');
    expect(await bob.exited).toBe(0);
    const alice = chat('alice');
    alice.send(PASSWORD);
    await alice.waitFor(/<bob@example\.org> while you were away\n/);
    alice.child.stdin.end();
    expect(await alice.exited).toBe(0);
  });

  it('a lost connection is reported and exits 1', async () => {
    const own = await startEnv();
    try {
      const ca = join(own.dir, 'ca.pem');
      writeFileSync(ca, own.ca);
      const alice = new Chat([
        ...['--server', `127.0.0.1:${own.port}`, '--ca', ca, '--servername', 'localhost'],
        ...['--user', 'alice@example.org', '--state', join(own.dir, 'a.json'), '--password-stdin'],
      ]);
      chats.push(alice);
      alice.send(PASSWORD);
      await alice.waitFor(/connected as alice@example\.org/);
      await own.server.close();
      expect(await alice.exited).toBe(1);
      expect(alice.err).toContain(
        'impp: the connection to the server was lost (ERR_CONNECTION_CLOSED)',
      );
    } finally {
      await own.close().catch(() => undefined);
    }
  });

  it('a wrong password exits 1 with a clear error and no stack', async () => {
    const carol = chat('carol');
    carol.send('not the password');
    carol.child.stdin.end();
    expect(await carol.exited).toBe(1);
    expect(carol.err).toMatch(/^impp: .*\(ERR_AUTH_FAILED\)\n$/);
  });

  it('no password line exits 1 and says what --password-stdin expects', async () => {
    const dave = chat('dave');
    dave.child.stdin.end();
    expect(await dave.exited).toBe(1);
    expect(dave.err).toContain('the first line of input is the password');
  });
});

describe('chat commands (parser)', () => {
  it('parses every command and refuses malformed ones', () => {
    expect(parseChatLine('/msg bob@x.org hi there')).toEqual({
      kind: 'msg',
      to: 'bob@x.org',
      text: 'hi there',
    });
    expect(parseChatLine('/status open "at desk"')).toEqual({
      kind: 'status',
      basic: 'open',
      note: 'at desk',
    });
    expect(parseChatLine('/status closed')).toEqual({
      kind: 'status',
      basic: 'closed',
      note: undefined,
    });
    for (const k of ['sub', 'unsub', 'approve', 'deny', 'revoke', 'safety'] as const) {
      expect(parseChatLine(`/${k} a@b.org`)).toEqual({ kind: k, address: 'a@b.org' });
      expect(parseChatLine(`/${k}`).kind).toBe('invalid');
      expect(parseChatLine(`/${k} a@b.org extra`).kind).toBe('invalid');
    }
    expect(parseChatLine('/to a@b.org')).toEqual({ kind: 'to', to: 'a@b.org' });
    expect(parseChatLine('just text')).toEqual({ kind: 'text', text: 'just text' });
    expect(parseChatLine('//not a command')).toEqual({ kind: 'text', text: '/not a command' });
    expect(parseChatLine('   ')).toEqual({ kind: 'empty' });
    expect(parseChatLine('/who')).toEqual({ kind: 'who' });
    expect(parseChatLine('/QUIT')).toEqual({ kind: 'quit' });
    expect(parseChatLine('/status away').kind).toBe('invalid');
    expect(parseChatLine('/msg a@b.org').kind).toBe('invalid');
    expect(parseChatLine('/nope').kind).toBe('invalid');
    expect(parseChatLine(`/msg a@b.org ${'x'.repeat(5000)}`).kind).toBe('invalid');
  });

  it('neutralises terminal escapes and bidi overrides in text from the network', () => {
    expect(printable('hi\u001b[2J\u001b]0;owned\u0007')).toBe('hi\ufffd[2J\ufffd]0;owned\ufffd');
    expect(printable('a\u202ebc\r\n\u009b')).toBe('a\ufffdbc\ufffd\ufffd\ufffd');
    expect(printable('héllo wörld 👋')).toBe('héllo wörld 👋');
  });

  it('parses --server', () => {
    expect(parseServer('127.0.0.1:5330')).toEqual({ host: '127.0.0.1', port: 5330 });
    expect(parseServer('[::1]:7')).toEqual({ host: '::1', port: 7 });
    expect(parseServer('chat.example.com')).toEqual({ host: 'chat.example.com', port: 5330 });
    for (const bad of ['', ':5330', 'host:0', 'host:70000', 'a b:1', 'host:x']) {
      expect(parseServer(bad)).toBeUndefined();
    }
  });
});
