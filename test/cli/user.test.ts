/**
 * `impp user`: accounts of the local provider, managed from the command line and checked with
 * real SCRAM logins (src/auth) against the very SQLite file the command wrote. One case runs the
 * real CLI in a child process with --password-stdin; the rest run in-process.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import { authenticate } from '../../src/auth/client.js';
import { AuthError } from '../../src/auth/types.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy } from '../../src/auth/policy.js';
import { localProvider } from '../../src/auth/providers/local.js';
import { SqliteLocalAccountRepository } from '../../src/auth/providers/local-store.js';
import { DEFAULT_RATE_LIMIT } from '../../src/auth/rate-limit.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { scramServer } from '../../src/auth/scram/server.js';
import { Authenticator } from '../../src/auth/server.js';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import type { CliInput, CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { SessionTransport, tlsChannel } from '../auth/helpers.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(join(tmpdir(), 'impp-user-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});
const DOMAIN = 'example.test';
let n = 0;

/** A data folder and a configuration file for DOMAIN with cheap (4096) iterations. */
function setup(): { config: string; dataDir: string } {
  const dir = join(work, `s${++n}`);
  const dataDir = join(dir, 'data');
  const config = join(work, `s${n}.yaml`);
  writeFileSync(
    config,
    [
      'version: 1',
      `domain: ${DOMAIN}`,
      `dataDir: ${dataDir}`,
      'trust:',
      '  authentication:',
      '    mechanisms: [SCRAM-SHA-256-PLUS, SCRAM-SHA-256]',
      '    providers: [{ type: local, id: local }]',
      '  policy: { scram: { iterations: 4096 } }',
    ].join('\n'),
  );
  return { config, dataDir };
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(args: string[], stdin?: CliInput, env: CliIo['env'] = {}): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env,
    ...(stdin === undefined ? {} : { stdin }),
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

const pipe = (text: string | Buffer): CliInput => Readable.from([Buffer.from(text)]);

/** A terminal that types `keys` once raw mode is on; records the raw-mode calls. */
function fakeTty(keys: string[]): CliInput & { modes: boolean[] } {
  const s = new PassThrough();
  const modes: boolean[] = [];
  let typed = 0;
  return Object.assign(s, {
    isTTY: true,
    modes,
    setRawMode(mode: boolean) {
      modes.push(mode);
      // One line of keys per prompt, typed after the prompt turned raw mode on.
      if (mode && typed < keys.length) {
        const k = keys[typed++] ?? '';
        setImmediate(() => s.write(k));
      }
      return s;
    },
  });
}

/** A SCRAM(-PLUS) login against the accounts file: 'ok' or the failure reason. */
async function login(dataDir: string, user: string, password: string): Promise<string> {
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(scramServer({ plus: true }));
  registry.registerMechanism(scramServer({ plus: false }));
  await registry.registerProvider(
    localProvider({ repository: new SqliteLocalAccountRepository(join(dataDir, 'accounts.db')) }),
  );
  const policy = makeAuthPolicy(
    DOMAIN,
    [
      { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
      { mechanism: 'SCRAM-SHA-256', provider: 'local' },
    ],
    { rateLimit: DEFAULT_RATE_LIMIT, limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 } },
  );
  const authenticator = new Authenticator(registry, policy, { audit: new MemoryAuditSink() });
  const channel = tlsChannel();
  const session = authenticator.begin(channel);
  try {
    const out = await authenticate(
      new SessionTransport(session),
      scramClient({ username: user, password }),
      session.offered,
      channel,
    );
    return out.channelBound ? 'ok' : 'not channel-bound';
  } catch (e) {
    if (e instanceof AuthError) return e.reason;
    throw e;
  } finally {
    await registry.close();
  }
}

function storeBytes(dataDir: string): Buffer[] {
  return readdirSync(dataDir).map((f) => readFileSync(join(dataDir, f)));
}

describe('impp user (child process, the real CLI)', () => {
  it('adds a user with --password-stdin; only a verifier is stored; SCRAM login works', async () => {
    const { config, dataDir } = setup();
    const password = 'Unique-Password-Marker-7d1f';
    const result = await new Promise<Result>((done, fail) => {
      const child = execFile(
        process.execPath,
        [
          '--import',
          'tsx',
          join(root, 'src/cli/main.ts'),
          'user',
          'add',
          `alice@${DOMAIN}`,
          '--password-stdin',
          '--config',
          config,
        ],
        { cwd: root, timeout: 30_000, env: { PATH: process.env.PATH ?? '' } },
        (error, stdout, stderr) => {
          if (error !== null && typeof error.code !== 'number')
            fail(new Error('impp could not be run', { cause: error }));
          else done({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
        },
      );
      child.stdin?.end(`${password}\n`);
    });
    expect(result.stderr).toBe('');
    expect(result).toMatchObject({ code: 0, stdout: `added alice@${DOMAIN} (person)\n` });
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(dataDir)) {
      expect([f, statSync(join(dataDir, f)).mode & 0o777]).toEqual([f, 0o600]);
    }
    for (const bytes of storeBytes(dataDir)) {
      expect(bytes.includes(password)).toBe(false);
      expect(bytes.includes(Buffer.from(password, 'utf16le'))).toBe(false);
    }
    // The trailing newline was removed (SASLprep would refuse a password containing one).
    expect(await login(dataDir, 'alice', password)).toBe('ok');
    expect(await login(dataDir, 'alice', `${password}x`)).toBe('bad-credential');
  });
});

describe('impp user (in-process)', () => {
  it('passwd: the new password works and the old one fails; disable and enable', async () => {
    const { config, dataDir } = setup();
    const alice = `alice@${DOMAIN}`;
    expect(
      (await run(['user', 'add', alice, '--password-stdin', '--config', config], pipe('old-pw')))
        .code,
    ).toBe(0);
    expect(await login(dataDir, 'alice', 'old-pw')).toBe('ok');

    const r = await run(
      ['user', 'passwd', alice, '--password-stdin', '--config', config],
      pipe('new-pw\r\n'),
    );
    expect(r).toMatchObject({ code: 0, stdout: `changed the password of ${alice}\n` });
    expect(await login(dataDir, 'alice', 'old-pw')).toBe('bad-credential');
    expect(await login(dataDir, 'alice', 'new-pw')).toBe('ok');

    expect((await run(['user', 'disable', alice, '--config', config])).stdout).toBe(
      `disabled ${alice}\n`,
    );
    expect(await login(dataDir, 'alice', 'new-pw')).toBe('bad-credential');
    expect((await run(['user', 'enable', alice, '--config', config])).stdout).toBe(
      `enabled ${alice}\n`,
    );
    expect(await login(dataDir, 'alice', 'new-pw')).toBe('ok');
  });

  it('list: table and --json, with no key material', async () => {
    const { config } = setup();
    await run(
      ['user', 'add', `bob@${DOMAIN}`, '--password-stdin', '--config', config],
      pipe('pw-b'),
    );
    await run(
      [
        'user',
        'add',
        `Alice@${DOMAIN}`,
        '--kind',
        'service',
        '--password-stdin',
        '--config',
        config,
      ],
      pipe('pw-a'),
    );
    await run(['user', 'disable', `bob@${DOMAIN}`, '--config', config]);
    const table = await run(['user', 'list', '--config', config]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ADDRESS\s+KIND\s+STATUS\s+CREATED\n/);
    expect(table.stdout).toMatch(new RegExp(`alice@${DOMAIN}\\s+service\\s+active`));
    expect(table.stdout).toMatch(new RegExp(`bob@${DOMAIN}\\s+person\\s+disabled`));
    const json = await run(['user', 'list', '--json', '--config', config]);
    const parsed = JSON.parse(json.stdout) as {
      version: number;
      domain: string;
      accounts: Record<string, unknown>[];
    };
    expect(parsed.version).toBe(1);
    expect(parsed.domain).toBe(DOMAIN);
    expect(parsed.accounts.map((a) => [a.address, a.kind, a.disabled, a.iterations])).toEqual([
      [`alice@${DOMAIN}`, 'service', false, 4096],
      [`bob@${DOMAIN}`, 'person', true, 4096],
    ]);
    expect(json.stdout).not.toMatch(/salt|storedKey|serverKey|credential/i);
  });

  it('refuses another domain, duplicates, unknown users and a missing store, with exit 1', async () => {
    const { config, dataDir } = setup();
    const other = await run(
      ['user', 'add', 'alice@other.test', '--password-stdin', '--config', config],
      pipe('pw'),
    );
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`domain other.test, but this server's domain is ${DOMAIN}`);
    expect(other.stderr).toContain(config);

    const missing = await run(['user', 'list', '--config', config]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no account store .*impp user add.*ERR_NOT_FOUND/);

    await run(
      ['user', 'add', `carol@${DOMAIN}`, '--password-stdin', '--config', config],
      pipe('pw-1'),
    );
    const dup = await run(
      ['user', 'add', `carol@${DOMAIN}`, '--password-stdin', '--config', config],
      pipe('pw-2'),
    );
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('ERR_CONFLICT');
    expect(await login(dataDir, 'carol', 'pw-1')).toBe('ok');

    for (const verb of ['passwd', 'disable', 'enable']) {
      const args = ['user', verb, `nobody@${DOMAIN}`, '--config', config];
      if (verb === 'passwd') args.push('--password-stdin');
      const r = await run(args, pipe('x'));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`nobody@${DOMAIN} does not exist (ERR_NOT_FOUND)`);
    }
  });

  it('passwords: never from argv, none on a pipe without --password-stdin, empty and oversize refused', async () => {
    const { config, dataDir } = setup();
    const argv = await run(
      ['user', 'add', `dave@${DOMAIN}`, 'hunter2', '--config', config],
      pipe('x'),
    );
    expect(argv.code).toBe(2);
    const noTty = await run(['user', 'add', `dave@${DOMAIN}`, '--config', config], pipe('pw'));
    expect(noTty.code).toBe(1);
    expect(noTty.stderr).toContain('--password-stdin');
    const empty = await run(
      ['user', 'add', `dave@${DOMAIN}`, '--password-stdin', '--config', config],
      pipe('\n'),
    );
    expect(empty.stderr).toContain('password on standard input is empty');
    const huge = await run(
      ['user', 'add', `dave@${DOMAIN}`, '--password-stdin', '--config', config],
      pipe('x'.repeat(5000)),
    );
    expect(huge.stderr).toContain('longer than 1024 bytes');
    const badUtf8 = await run(
      ['user', 'add', `dave@${DOMAIN}`, '--password-stdin', '--config', config],
      pipe(Buffer.from([0x70, 0xff, 0x71])),
    );
    expect(badUtf8.stderr).toContain('not UTF-8');
    const list = await run(['user', 'list', '--json', '--config', config]);
    expect(JSON.parse(list.stdout)).toMatchObject({ accounts: [] });
    expect(await login(dataDir, 'dave', 'hunter2')).not.toBe('ok');

    const help = await run(['user', 'add', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Passwords are never taken from the command line');
    expect(help.stdout).toContain('shell history');
  });

  it('prompts twice on a terminal with echo off; a mismatch or Ctrl-C changes nothing', async () => {
    const { config, dataDir } = setup();
    const tty = fakeTty(['s3cret\u007fT!\r', 's3creT!\r']);
    const ok = await run(['user', 'add', `erin@${DOMAIN}`, '--config', config], tty);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe(`New password for erin@${DOMAIN}: \nRepeat the password: \n`);
    expect(tty.modes).toEqual([true, false, true, false]);
    expect(await login(dataDir, 'erin', 's3creT!')).toBe('ok');

    const mismatch = await run(
      ['user', 'passwd', `erin@${DOMAIN}`, '--config', config],
      fakeTty(['a1\r', 'a2\r']),
    );
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toContain('the two passwords differ');
    const interrupted = fakeTty(['abc\u0003']);
    const ctrlC = await run(['user', 'passwd', `erin@${DOMAIN}`, '--config', config], interrupted);
    expect(ctrlC.code).toBe(130);
    expect(interrupted.modes).toEqual([true, false]);
    expect(await login(dataDir, 'erin', 's3creT!')).toBe('ok');
  });

  it('uses --data-dir over the configured folder, and IMPP_DATA_DIR without a configuration', async () => {
    const dataDir = join(work, 'envdir');
    const r = await run(['user', 'add', 'frank@localhost', '--password-stdin'], pipe('pw'), {
      IMPP_DATA_DIR: dataDir,
    });
    expect(r.code).toBe(0);
    expect(statSync(join(dataDir, 'accounts.db')).isFile()).toBe(true);
    const { config } = setup();
    const explicit = join(work, 'explicit');
    await run(
      [
        'user',
        'add',
        `gina@${DOMAIN}`,
        '--password-stdin',
        '--config',
        config,
        '--data-dir',
        explicit,
      ],
      pipe('pw'),
    );
    expect(statSync(join(explicit, 'accounts.db')).isFile()).toBe(true);
  });
});
