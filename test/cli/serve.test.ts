/**
 * `impp serve` as a user runs it: the real CLI in a child process, real TLS on loopback, accounts
 * added with `impp user add`, two SDK clients trusting the generated CA exchange messages, then
 * SIGTERM. Afterwards the log and every file of the data folder are searched for the message
 * texts and the passwords, which must not be there.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImppClient, type ReceivedMessage } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { AuthError } from '../../src/auth/types.js';
import { next } from '../service/harness.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAIN = join(ROOT, 'src/cli/main.ts');
const ALICE_PASSWORD = 'violet-kettle-7734-unusual';
const BOB_PASSWORD = 'granite-harbour-0261-quiet';
const WRONG_PASSWORD = 'not-the-password-5150';
const TO_BOB = 'meet me by the sundial at 17:05 sharp';
const TO_ALICE = 'bring the blue umbrella, not the green one';

let work: string;
let dataDir: string;
let config: string;
let clientDir: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'impp-serve-'));
  dataDir = join(work, 'data');
  clientDir = join(work, 'clients');
  mkdirSync(clientDir);
  config = join(work, 'impp.yaml');
  writeFileSync(
    config,
    [
      'version: 1',
      'domain: localhost',
      'listen:',
      '  tls: { host: 127.0.0.1, port: 0 }',
      '  websocket: { host: 127.0.0.1, port: 0 }',
      'log: { level: debug }',
      'trust:',
      '  authentication:',
      '    mechanisms: [SCRAM-SHA-256-PLUS, SCRAM-SHA-256]',
      '    providers: [{ type: local, id: local }]',
      '  policy: { scram: { iterations: 4096 } }',
    ].join('\n'),
  );
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

interface Server {
  readonly child: ChildProcess;
  readonly port: number;
  readonly wsPort: number;
  readonly fingerprint: string;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `impp serve` and resolves once it printed where it listens (within 20 s). */
function startServe(): Promise<Server> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'serve', '--config', config, '--data-dir', dataDir],
    { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.on('exit', (code, signal) => {
      done({ code, signal });
    });
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`impp serve did not start within 20 s:\n${out}\n${err}`));
    }, 20_000);
    const check = (): void => {
      const tls = /listening \(TLS\):\s+127\.0\.0\.1:(\d+)/.exec(out);
      const ws = /listening \(WebSocket\):\s+wss:\/\/127\.0\.0\.1:(\d+)\/impp/.exec(out);
      const fp = /CA SHA-256 fingerprint: ([0-9A-F:]+)/.exec(out);
      if (tls?.[1] === undefined || ws?.[1] === undefined || fp?.[1] === undefined) return;
      if (!out.includes('Stop with Ctrl-C')) return;
      clearTimeout(timer);
      resolve({
        child,
        port: Number(tls[1]),
        wsPort: Number(ws[1]),
        fingerprint: fp[1],
        stdout: () => out,
        stderr: () => err,
        exited,
      });
    };
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      check();
    });
    child.stderr.on('data', (chunk: string) => {
      err += chunk;
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`impp serve exited with ${String(code)} before listening:\n${out}\n${err}`));
    });
  });
}

/** `impp user add <address> --password-stdin` against the same data folder. */
function userAdd(address: string, password: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        'user',
        'add',
        address,
        '--password-stdin',
        '--config',
        config,
        '--data-dir',
        dataDir,
      ],
      { cwd: ROOT, timeout: 20_000 },
      (error, _stdout, stderr) => {
        resolve({ code: error === null ? 0 : Number(error.code ?? 1), stderr });
      },
    );
    child.stdin?.end(`${password}\n`);
  });
}

function client(user: string, password: string, port: number, deviceId = 'cli-test'): ImppClient {
  return new ImppClient({
    host: '127.0.0.1',
    port,
    ca: readFileSync(join(dataDir, 'ca.crt')),
    servername: 'localhost',
    address: `${user}@localhost`,
    password,
    deviceId,
    state: new FileStateStore(join(clientDir, `${user}-${deviceId}.state`)),
  });
}

/** Every file under `dir` (the data folder has no subfolders, but be thorough). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** JSON log lines of the server's standard error. */
function logLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('impp serve', () => {
  let firstFingerprint = '';

  it('starts on a fresh data folder, serves two users, and stops cleanly on SIGTERM', async () => {
    const server = await startServe();
    firstFingerprint = server.fingerprint;
    const out = server.stdout();
    expect(out).toContain('impp server for domain localhost');
    expect(out).toContain(`CA certificate:         ${join(dataDir, 'ca.crt')}  (new)`);
    expect(out).toContain(`impp user add alice@localhost --config ${config} --data-dir ${dataDir}`);
    expect(out).toMatch(/impp chat --server 127\.0\.0\.1:\d+ --ca \S+ca\.crt --user alice@/);

    expect(await userAdd('alice@localhost', ALICE_PASSWORD)).toMatchObject({ code: 0 });
    expect(await userAdd('bob@localhost', BOB_PASSWORD)).toMatchObject({ code: 0 });

    // A wrong password is refused and audited (without the password).
    const intruder = client('alice', WRONG_PASSWORD, server.port, 'intruder');
    await expect(intruder.connect()).rejects.toBeInstanceOf(AuthError);

    const alice = client('alice', ALICE_PASSWORD, server.port);
    const bob = client('bob', BOB_PASSWORD, server.port);
    await alice.connect();
    await bob.connect();
    const bobGot = next<ReceivedMessage>(bob, 'message');
    await alice.sendMessage('bob@localhost', TO_BOB);
    expect((await bobGot).text).toBe(TO_BOB);
    const aliceGot = next<ReceivedMessage>(alice, 'message');
    await bob.sendMessage('alice@localhost', TO_ALICE);
    expect((await aliceGot).text).toBe(TO_ALICE);

    // SIGTERM: the clients get a CLOSE frame saying why, the process exits 0, promptly.
    const aliceClosed = next<{ code: string | undefined }>(alice, 'close');
    const started = Date.now();
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    const elapsed = Date.now() - started;
    expect(code).toBe(0);
    expect(elapsed).toBeLessThan(3_000);
    expect((await aliceClosed).code).toBe('ERR_CONNECTION_CLOSED');
    expect(server.stdout()).toContain('impp server stopped');
    await alice.close().catch(() => undefined);
    await bob.close().catch(() => undefined);

    // The log tells the story in ids…
    const lines = logLines(server.stderr());
    const msgs = lines.map((l) => l.msg);
    for (const m of [
      'server.listening',
      'connection.open',
      'device.bound',
      'device.registered',
      'connection.closed',
      'auth.success',
      'auth.failure',
      'server.stopping',
      'server.stopped',
    ]) {
      expect(msgs).toContain(m);
    }
    const registered = lines.filter((l) => l.msg === 'device.registered').map((l) => l.device);
    expect(registered).toEqual(
      expect.arrayContaining(['alice@localhost/cli-test', 'bob@localhost/cli-test']),
    );
    const failure = lines.find((l) => l.msg === 'auth.failure');
    expect(JSON.stringify(failure)).toContain('alice');

    // …and never in content or secrets: not in the log, not in any file of the data folder.
    const secrets = [TO_BOB, TO_ALICE, ALICE_PASSWORD, BOB_PASSWORD, WRONG_PASSWORD];
    const log = server.stdout() + server.stderr();
    for (const s of secrets) expect(log).not.toContain(s);
    const files = filesUnder(dataDir);
    expect(files.map((f) => f.slice(dataDir.length + 1))).toEqual(
      expect.arrayContaining(['store.db', 'accounts.db', 'ca.crt', 'domain.key']),
    );
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const s of secrets) {
        expect(bytes.includes(Buffer.from(s, 'utf8')), `${s} in ${file}`).toBe(false);
      }
    }
  }, 60_000);

  it('a second start reuses the CA and the accounts; SIGINT also stops it with 0', async () => {
    const server = await startServe();
    expect(server.fingerprint).toBe(firstFingerprint);
    expect(server.stdout()).not.toContain('(new)');
    const bob = client('bob', BOB_PASSWORD, server.port);
    await bob.connect();
    await bob.close();
    server.child.kill('SIGINT');
    expect((await server.exited).code).toBe(0);
    const lines = logLines(server.stderr());
    expect(lines.find((l) => l.msg === 'server.starting')).toMatchObject({
      caCreated: false,
      domainKeyCreated: false,
    });
  }, 60_000);

  it('a port in use is a clear error with exit code 1', async () => {
    const holder = await startServe();
    const busy = join(work, 'busy.yaml');
    writeFileSync(
      busy,
      readFileSync(config, 'utf8').replace(
        'tls: { host: 127.0.0.1, port: 0 }',
        `tls: { host: 127.0.0.1, port: ${holder.port} }`,
      ),
    );
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', MAIN, 'serve', '--config', busy, '--data-dir', dataDir],
        { cwd: ROOT, timeout: 20_000 },
        (error, _stdout, stderr) => {
          resolve({ code: error === null ? 0 : Number(error.code ?? 1), stderr });
        },
      );
    });
    holder.child.kill('SIGTERM');
    expect((await holder.exited).code).toBe(0);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${holder.port} for tls`);
    expect(result.stderr).toContain('ERR_CONFIG_INVALID');
  }, 60_000);
});
