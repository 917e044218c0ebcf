/**
 * End-to-end: the real `impp` entry point in a child process (tsx, as `npx tsx src/cli/main.ts`
 * would run it), its output and its exit codes.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readEnvelopeHeader } from '../../src/seal/header.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const main = join(root, 'src/cli/main.ts');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function impp(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done, fail) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', main, ...args],
      {
        cwd: root,
        timeout: 30_000,
        maxBuffer: 8 << 20,
        // A pipe, not a TTY: no colours whatever the caller's environment says.
        env: { PATH: process.env.PATH ?? '', ...env },
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          fail(new Error('impp could not be run', { cause: error }));
          return;
        }
        done({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}

/** The demo's texts, written out here so the test does not trust the demo to report them. */
const MESSAGE = 'Hi Bob! Lunch at the usual place at noon?';
const REPLY = 'Sure, see you there at 12:00.';
const NOTE = 'In the library until 5pm, messages welcome';
const NOTE_AFTER = 'Back at my desk, do not disturb';

interface JsonObject {
  header: { kind: string; recipientDevice?: string; presentity?: string; size: number };
  routeTo: string[];
  sealedSender?: string;
  bytesBase64: string;
}

// Each test waits on child processes: run them side by side.
describe.concurrent('impp (child process)', () => {
  it('--help lists the demo command and exits 0', async () => {
    const r = await impp(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: impp/);
    expect(r.stdout).toMatch(/^\s+demo\b/m);
    expect(r.stdout).toContain('Examples:');
    const demo = await impp(['demo', '--help']);
    expect(demo.code).toBe(0);
    expect(demo.stdout).toContain('--json');
    expect(demo.stdout).toContain('Examples:');
  });

  it('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const r = await impp(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('an unknown command exits 2 and lists the commands', async () => {
    const r = await impp(['serve']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("impp: unknown command 'serve'");
    expect(r.stderr).toMatch(/Commands: .*demo/);
    expect(r.stderr).toContain('impp --help');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const typo = await impp(['dmeo']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('Did you mean demo?');
  });

  it('usage errors exit 2: unknown option, extra argument, no command', async () => {
    expect((await impp(['demo', '--bogus'])).code).toBe(2);
    expect((await impp(['demo', 'extra'])).code).toBe(2);
    const none = await impp([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: impp');
  });

  it('demo exits 0 and prints the three views of every step, without colours', async () => {
    const r = await impp(['demo']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain('in-process, no network');
    expect(out).toContain('Alice did');
    expect(out).toContain('Bob saw');
    expect(out).toContain('what a server would store and route');
    expect(out).toContain(JSON.stringify(MESSAGE));
    expect(out).toContain(JSON.stringify(REPLY));
    expect(out).toContain(JSON.stringify(NOTE));
    expect(out).toContain('refused: ERR_SEAL_OPEN_FAILED');
    expect(out).toMatch(/match\s+yes/);
    expect(out).toContain('server view contains no plaintext: yes\n');
    expect(out).not.toContain('\u001b['); // not a TTY: no escape sequences
  });

  it('demo --json: the server-visible bytes, searched here, hold no plaintext', async () => {
    const r = await impp(['demo', '--json']);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as {
      version: number;
      mode: string;
      serverView: JsonObject[];
      plaintext: { message: string; reply: string; notes: string[] };
      safetyNumber: { alice: string; bob: string; match: boolean };
      checks: { claim: string; passed: boolean }[];
      serverViewContainsNoPlaintext: boolean;
    };
    expect(summary.version).toBe(1);
    expect(summary.mode).toBe('in-process, no network');
    // The recipients read exactly these texts...
    expect(summary.plaintext).toEqual({
      message: MESSAGE,
      reply: REPLY,
      notes: [NOTE, NOTE_AFTER],
    });
    // ...and none of them is in what the server gets.
    const kinds = summary.serverView.map((o) => o.header.kind);
    expect(kinds.filter((k) => k === 'message')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'presence')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'keyDistribution')).toHaveLength(3);
    const secrets = [MESSAGE, REPLY, NOTE, NOTE_AFTER, 'Lunch', 'library', 'desk'];
    for (const o of summary.serverView) {
      const bytes = Buffer.from(o.bytesBase64, 'base64');
      expect(bytes.length).toBe(o.header.size);
      // What the JSON calls the header is what the server-side parser reads from the bytes.
      expect(readEnvelopeHeader(bytes)).toMatchObject(
        o.header.kind === 'presence'
          ? { kind: 'presence', presentity: o.header.presentity }
          : { kind: o.header.kind, recipientDevice: o.header.recipientDevice },
      );
      for (const s of secrets) {
        expect(bytes.includes(Buffer.from(s, 'utf8')), `${s} in ${o.header.kind}`).toBe(false);
        expect(bytes.includes(Buffer.from(s, 'utf16le'))).toBe(false);
      }
      // Sealed sender: a message names its recipient device, never its sender.
      if (o.header.kind !== 'presence') {
        const sender = o.header.recipientDevice?.startsWith('alice@')
          ? 'bob@example.test'
          : 'alice@example.test';
        expect(o.sealedSender).toBe(sender);
        expect(bytes.includes(Buffer.from(sender, 'utf8'))).toBe(false);
      }
    }
    expect(summary.safetyNumber.match).toBe(true);
    expect(summary.safetyNumber.alice).toBe(summary.safetyNumber.bob);
    expect(summary.safetyNumber.alice).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(summary.checks.length).toBeGreaterThan(5);
    expect(summary.checks.every((c) => c.passed)).toBe(true);
    expect(summary.serverViewContainsNoPlaintext).toBe(true);
  });
});
