/**
 * `impp demo --federated`: the real entry point in a child process (two domains, two servers,
 * their federation nodes and two clients in that one process), its output, its clean-up and its
 * exit code; and, in-process, that a failed claim or a leak makes it exit 1.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import type { FederatedDemoResult } from '../../src/cli/demo-federated.js';
import { registerDemo } from '../../src/cli/demo.js';
import { CliExit, type CliIo } from '../../src/cli/io.js';
import { impp, type Run } from './run-impp.js';

/** The demo's texts, written out here so the test does not trust the demo to report them. */
const MESSAGE = 'Hi Bob, greetings from a.example! Call at three?';
const REPLY = 'Three works. Regards from b.example.';

describe('impp demo --federated', () => {
  it('runs two domains, shows presence and a conversation across them, exits 0, cleans up', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'impp-cli-test-'));
    let r: Run;
    try {
      r = await impp(['demo', '--federated'], { TMPDIR: tmp });
      expect(readdirSync(tmp).filter((f) => f.startsWith('impp-demo-'))).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(
      /domain a\.example: clients on 127\.0\.0\.1:\d+, peers on 127\.0\.0\.1:\d+; accepts b\.example by its pinned domain key/,
    );
    expect(out).toMatch(/domain b\.example: .*accepts a\.example by a certificate/);
    expect(out).toMatch(/request from bob@b\.example: approved/);
    expect(out).toMatch(/request from alice@a\.example: approved/);
    expect(out).toMatch(/saw alice@a\.example is open/);
    expect(out).toMatch(/saw bob@b\.example is open/);
    expect(out).toContain('read from alice@a.example: "Hi Bob');
    expect(out).toContain('read from bob@b.example: "Three works.');
    expect(out).toContain("servers' stores contain no plaintext: yes\n");
    expect(out).not.toMatch(/\bNO\b/);
    expect(out).not.toContain('\u001b[');
  });

  it('--json: every check passed, one link, both domains described', async () => {
    const r = await impp(['demo', '--federated', '--json']);
    expect(r.code, r.stdout).toBe(0);
    const summary = JSON.parse(r.stdout) as {
      domains: { domain: string; federation: string }[];
      links: string[];
      checks: { claim: string; passed: boolean }[];
      files: { name: string }[];
      plaintext: { message: string; reply: string };
      serverStoresContainNoPlaintext: boolean;
    };
    expect(summary.plaintext).toEqual({ message: MESSAGE, reply: REPLY });
    expect(summary.domains.map((d) => d.domain)).toEqual(['a.example', 'b.example']);
    expect(summary.links).toHaveLength(1);
    expect(summary.checks.length).toBeGreaterThanOrEqual(8);
    expect(summary.checks.filter((c) => !c.passed)).toEqual([]);
    expect(summary.files.map((f) => f.name)).toContain('b.example/store.db-wal');
    expect(summary.serverStoresContainNoPlaintext).toBe(true);
  });

  it('a failed claim or a leak exits 1 and says NO', async () => {
    const base: FederatedDemoResult = {
      domains: [],
      steps: [],
      checks: [{ claim: 'Bob read Alice’s message', passed: true }],
      files: [],
      leaks: [],
      links: [],
      plaintext: { message: '', reply: '' },
    };
    const cases: FederatedDemoResult[] = [
      { ...base, checks: [{ claim: 'Bob read Alice’s message', passed: false }] },
      { ...base, leaks: [{ where: 'b.example/store.db-wal', what: 'message' }] },
    ];
    for (const result of cases) {
      const out: string[] = [];
      const io: CliIo = {
        stdout: { write: (t: string) => out.push(t), isTTY: false },
        stderr: { write: () => true, isTTY: false },
        env: {},
      };
      const program = new Command('impp').exitOverride();
      registerDemo(
        program,
        io,
        () => Promise.reject(new Error('the one-domain demo must not run')),
        () => Promise.resolve(result),
      );
      const err: unknown = await program
        .parseAsync(['demo', '--federated'], { from: 'user' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CliExit);
      expect(out.join('')).toMatch(/NO/);
    }
  });
});
