/**
 * `impp threats` in-process: `--spawn` with the shipped catalogue (a couple of threats), the JSON
 * and JUnit reports, exit codes; a test-only threat list injected into the command (never the
 * shipped catalogue) for VULNERABLE, ERROR and ACCEPTED-RISK; `--target` with an accounts file.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { reportError, runCli } from '../../src/cli/program.js';
import { SPAWN_PRE_AUTH_TIMEOUT_MS, registerThreats } from '../../src/cli/threats.js';
import { framesIn, helloBytes, rawTls, sleep } from '../../src/threats/catalogue/net.js';
import type { Threat } from '../../src/threats/types.js';
import { startThreatTarget } from './target.js';

const work = mkdtempSync(join(tmpdir(), 'impp-threats-cli-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function capture(): { io: CliIo; out: () => { stdout: string; stderr: string } } {
  let stdout = '';
  let stderr = '';
  return {
    io: {
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: (t: string) => (stderr += t) },
      env: {},
    },
    out: () => ({ stdout, stderr }),
  };
}

async function run(args: string[]): Promise<Run> {
  const { io, out } = capture();
  const code = await runCli(['threats', ...args], io);
  return { code, ...out() };
}

/** The command with a test-only threat list instead of the shipped catalogue. */
async function runWith(threats: readonly Threat[], args: string[]): Promise<Run> {
  const { io, out } = capture();
  const program = new Command('impp').exitOverride();
  registerThreats(program, io, () => Promise.resolve(threats));
  let code = 0;
  try {
    await program.parseAsync(['threats', ...args], { from: 'user' });
  } catch (error) {
    code = reportError(error, io, program);
  }
  return { code, ...out() };
}

const fakeOk: Threat = {
  id: 'T01',
  name: 'fake-login',
  class: 'authentication',
  title: 'test-only: logs in, then "attacks" nothing',
  async run(ctx) {
    const account = ctx.accounts[1];
    if (account === undefined) throw new Error('no account');
    const client = ctx.client(account);
    await ctx.control(`${account.address} logs in`, () => client.connect());
    return { verdict: 'MITIGATED', summary: 'logged in; nothing else' };
  },
};
const fakeVulnerable: Threat = {
  id: 'T02',
  name: 'fake-vulnerable',
  class: 'content',
  title: 'test-only: always succeeds',
  run: () =>
    Promise.resolve({ verdict: 'VULNERABLE', summary: 'the attack worked', evidence: ['step 1'] }),
};
const fakeError: Threat = {
  id: 'T03',
  name: 'fake-error',
  class: 'content',
  title: 'test-only: the control step fails',
  async run(ctx) {
    await ctx.control('something benign', () => Promise.reject(new Error('refused')));
    return { verdict: 'MITIGATED', summary: 'unreachable' };
  },
};

describe('impp threats --spawn', () => {
  it('runs the selected threats and writes JSON and JUnit reports; exit 0', async () => {
    const json = join(work, 'spawn.json');
    const xml = join(work, 'spawn.xml');
    const r = await run([
      '--spawn',
      '--only',
      'T50,T27',
      '--json',
      json,
      '--junit',
      xml,
      '--verbose',
    ]);
    expect(r.code, r.stderr).toBe(0);
    // The spawned server federates with the suite's peer domains (src/threats/federated-spawn.ts).
    expect(r.stderr).toMatch(/federation on 127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/^T27 domain-spoofing \.+ MITIGATED \(\d+\.\d s\)$/m);
    expect(r.stderr).toMatch(/^ {4}T27 control ok: the honest peer peer\.threats\.example/m);
    expect(r.stderr).toMatch(/^T50 dependency-rule \.+ MITIGATED \(\d+\.\d s\)$/m);
    expect(r.stderr).toMatch(/^ {4}T50 control ok: /m);
    expect(r.stdout).toContain('content (end to end) 1/1 mitigated');
    expect(r.stdout).toContain('federation 1/1 mitigated');
    const report = JSON.parse(readFileSync(json, 'utf8')) as {
      format: string;
      exitCode: number;
      run: { mode: string; storage: boolean };
      results: { id: string; verdict: string }[];
    };
    expect(report.format).toBe('impp-threats/v1');
    expect(report.exitCode).toBe(0);
    expect(report.run).toMatchObject({ mode: 'spawn', storage: true });
    expect(report.results.map((x) => [x.id, x.verdict])).toEqual([
      ['T27', 'MITIGATED'],
      ['T50', 'MITIGATED'],
    ]);
    const junit = readFileSync(xml, 'utf8');
    expect(junit).toMatch(
      /<testsuites name="impp threats" tests="2" failures="0" errors="0" skipped="0"/,
    );
    expect(junit).toContain(
      '<testcase classname="impp.threats.content" name="T50 dependency-rule"',
    );
    // The spawned server and its folder are gone; no password reached the output.
    expect(r.stderr).toMatch(/data in (\S+)\)/);
    const dataDir = /data in (\S+)\)/.exec(r.stderr)?.[1] ?? '';
    expect(() => readFileSync(join(dataDir, 'store.db'))).toThrow();
  }, 45_000); // a --spawn run: loaded CI machines need more than the default

  it('exits 1 when a threat is VULNERABLE or ERROR (a test-only list), and reports them', async () => {
    const json = join(work, 'vuln.json');
    const xml = join(work, 'vuln.xml');
    const r = await runWith(
      [fakeOk, fakeVulnerable, fakeError],
      ['--spawn', '--json', json, '--junit', xml],
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^T01 fake-login \.+ MITIGATED/m);
    expect(r.stderr).toMatch(/^T02 fake-vulnerable \.+ VULNERABLE \(.*\): the attack worked$/m);
    expect(r.stderr).toMatch(
      /^T03 fake-error \.+ ERROR \(.*\): control failed: something benign: refused$/m,
    );
    const report = JSON.parse(readFileSync(json, 'utf8')) as { exitCode: number };
    expect(report.exitCode).toBe(1);
    const junit = readFileSync(xml, 'utf8');
    expect(junit).toContain('failures="2"');
    expect(junit).toContain('<failure type="VULNERABLE" message="the attack worked">');
    expect(junit).toContain(
      '<failure type="ERROR" message="control failed: something benign: refused">',
    );
  });

  it('an accepted risk does not fail the run; its observed verdict stays in the report', async () => {
    const accept = join(work, 'accept.yaml');
    writeFileSync(accept, '- id: T02\n  reason: known, tracked in OPS-1\n');
    const json = join(work, 'accepted.json');
    const r = await runWith([fakeVulnerable], ['--spawn', '--accept', accept, '--json', json]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/T02 fake-vulnerable \.+ ACCEPTED-RISK \[observed VULNERABLE\]/);
    const report = JSON.parse(readFileSync(json, 'utf8')) as {
      results: { verdict: string; observed: string; acceptedReason: string }[];
    };
    expect(report.results[0]).toMatchObject({
      verdict: 'ACCEPTED-RISK',
      observed: 'VULNERABLE',
      acceptedReason: 'known, tracked in OPS-1',
    });
  });
});

describe('impp threats --dos', () => {
  it('denial-of-service threats are NOT-TESTED unless --dos; --dos-rate caps them', async () => {
    let seen: unknown;
    const flood: Threat = {
      id: 'T25',
      name: 'fake-flood',
      class: 'transport-and-robustness',
      title: 'test-only: records the policy it gets',
      needs: ['dos'],
      async run(ctx) {
        seen = ctx.dos;
        await ctx.control('nothing', () => Promise.resolve());
        return { verdict: 'MITIGATED', summary: 'ok' };
      },
    };
    const off = await runWith([flood], ['--spawn']);
    expect(off.stderr).toMatch(/T25 fake-flood \.+ NOT-TESTED .*opt in with --dos/);
    expect(seen).toBeUndefined();
    const on = await runWith([flood], ['--spawn', '--dos', '--dos-rate', '7']);
    expect(on.code).toBe(0);
    expect(seen).toEqual({ enabled: true, maxRate: 7 });
  }, 45_000); // a --spawn run: loaded CI machines need more than the default

  it('--spawn announces a short pre-authentication deadline (T24 need not wait 30 s)', async () => {
    let announced: unknown;
    const welcome: Threat = {
      id: 'T24',
      name: 'fake-welcome',
      class: 'transport-and-robustness',
      title: 'test-only: records the WELCOME',
      async run(ctx) {
        const seen = await rawTls(ctx.target);
        ctx.defer(() => {
          seen.socket.destroy();
        });
        seen.socket.write(helloBytes());
        await ctx.control('WELCOME', async () => {
          for (let i = 0; i < 100 && framesIn(seen.received).length === 0; i++) await sleep(20);
          const body = framesIn(seen.received)[0]?.body as
            { preAuthTimeoutMs?: unknown } | undefined;
          announced = body?.preAuthTimeoutMs;
        });
        return { verdict: 'MITIGATED', summary: 'ok' };
      },
    };
    const r = await runWith([welcome], ['--spawn']);
    expect(r.code, r.stderr).toBe(0);
    expect(announced).toBe(SPAWN_PRE_AUTH_TIMEOUT_MS);
  });
});

describe('impp threats: usage', () => {
  it('refuses bad options and files before starting anything', async () => {
    expect((await run([])).stderr).toContain('give exactly one of --spawn and --target');
    const unknown = await run(['--spawn', '--only', 'T99']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no threat with id or name "T99"');
    expect(unknown.stderr).not.toContain('spawned');
    const accept = join(work, 'bad-accept.yaml');
    writeFileSync(accept, '- id: T01\n');
    const noReason = await run(['--spawn', '--accept', accept]);
    expect(noReason.code).toBe(1);
    expect(noReason.stderr).toContain('[0].reason: is required');
    writeFileSync(
      accept,
      '- id: T99\n  reason: x\n- id: T01\n  reason: y\n- id: T01\n  reason: z\n',
    );
    const bad = await run(['--spawn', '--accept', accept]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('[0].id: T99 is not a threat of this suite');
    expect(bad.stderr).toContain('[2].id: T01 is listed twice');
    expect((await run(['--target', 'nohost'])).stderr).toContain('--target must be HOST:PORT');
    expect((await run(['--target', 'h:70000'])).stderr).toContain('--target must be HOST:PORT');
    expect((await run(['--target', 'h:1'])).stderr).toContain('--target needs --accounts FILE');
    expect((await run(['--spawn', '--deadline', '0'])).code).toBe(2);
    expect((await run(['--spawn', '--federation', 'h:5332'])).stderr).toContain(
      '--federation is for --target',
    );
    const accounts = join(work, 'usage-accounts.yaml');
    writeFileSync(
      accounts,
      'accounts:\n  - { address: a@h.example, password: x1 }\n  - { address: b@h.example, password: y2 }\n',
      { mode: 0o600 },
    );
    const target = ['--target', 'h:1', '--accounts', accounts];
    expect((await run([...target, '--peer-domain', 'p.example'])).stderr).toContain(
      'the peer options need --federation HOST:PORT',
    );
    expect((await run([...target, '--federation', 'nohost'])).stderr).toContain(
      '--federation must be HOST:PORT',
    );
    expect((await run([...target, '--federation', 'h:5332'])).stderr).toContain(
      '--federation needs a peer the target federates with for the suite',
    );
    const partial = [...target, '--federation', 'h:5332', '--peer-domain', 'p.example'];
    expect((await run(partial)).stderr).toContain(
      '--peer-domain, --peer-cert and --peer-key go together',
    );
    const seed = [...target, '--federation', 'h:5332', '--key-peer-domain', 'k.example'];
    const shortSeed = join(work, 'short-seed.hex');
    writeFileSync(shortSeed, 'abc\n', { mode: 0o600 });
    expect((await run([...seed, '--key-peer-seed', shortSeed])).stderr).toContain(
      '--key-peer-seed must name a file holding 64 hex digits',
    );
    const hexSeed = 'ab'.repeat(32);
    const missing = await run([...seed, '--key-peer-seed', join(work, 'no-such-seed')]);
    expect(missing.stderr).toContain('cannot read the key peer seed file');
    // The seed is read from a file, never taken from the command line, nor echoed if given there.
    const inline = await run([...seed, '--key-peer-seed', hexSeed]);
    expect(inline.code).toBe(1);
    expect(inline.stderr).toContain('it takes a file holding the seed, not the seed');
    expect(inline.stderr + inline.stdout).not.toContain(hexSeed);
  });

  it('--help explains the modes and the accounts file, with examples', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('impp threats --spawn --json reports/threats.json');
    expect(r.stdout).toContain('Accounts file (--accounts; keep it chmod 600');
  });
});

describe('impp threats --target', () => {
  it('attacks a running server with the accounts file and CA; warns about a readable file', async () => {
    const t = await startThreatTarget();
    try {
      const accounts = join(work, 'accounts.yaml');
      writeFileSync(
        accounts,
        [
          'accounts:',
          ...t.accounts.map(
            (a) => `  - { address: ${a.address}, password: ${JSON.stringify(a.password)} }`,
          ),
        ].join('\n'),
      );
      chmodSync(accounts, 0o644);
      const ca = join(work, 'ca.pem');
      writeFileSync(ca, t.env.ca);
      const args = [
        '--target',
        `127.0.0.1:${t.target.port}`,
        '--accounts',
        accounts,
        '--ca',
        ca,
        '--servername',
        'localhost',
        '--state-dir',
        join(work, 'stewards'),
      ];
      const r = await runWith([fakeOk], args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('others may read it; run chmod 600');
      expect(r.stderr).toContain('storage not reachable');
      expect(r.stdout).toMatch(/T01 +fake-login +MITIGATED/);
      expect(r.stdout + r.stderr).not.toContain(t.accounts[0]?.password ?? '');
      // Each account's steward registered once, and nothing else was left behind.
      expect(r.stderr).toContain(
        `clean-up: ${t.accounts[0]?.address ?? ''}: 0 device(s) of this run revoked`,
      );
      expect(
        statSync(join(work, 'stewards', `${t.accounts[0]?.address ?? ''}.json`)).mode & 0o077,
      ).toBe(0);
      chmodSync(accounts, 0o600);
      const quiet = await runWith([fakeOk], args);
      expect(quiet.stderr).not.toContain('chmod 600');
      // Without the CA the server's certificate does not verify: the control step fails.
      const noCa = await runWith([fakeOk], [...args.slice(0, 4), ...args.slice(-2)]);
      expect(noCa.code).toBe(1);
      expect(noCa.stderr).toMatch(/T01 fake-login \.+ ERROR .*control failed/);
    } finally {
      await t.close();
    }
  });
});
