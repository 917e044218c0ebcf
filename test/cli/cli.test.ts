/**
 * End-to-end: the real `impp` entry point in a child process (tsx, as `npx tsx src/cli/main.ts`
 * would run it), its output and its exit codes.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readEnvelopeHeader } from '../../src/seal/header.js';
import { impp, main, root, type Run } from './run-impp.js';

/** The demo's texts, written out here so the test does not trust the demo to report them. */
const MESSAGE = 'Hi Bob! Lunch at the usual place at noon?';
const REPLY = 'Sure, see you there at 12:00.';
const NOTE = 'In the library until 5pm, messages welcome';
const BOB_NOTE = 'Working from the riverside cafe';
const NOTE_AFTER = 'Back at my desk, do not disturb';

interface JsonObject {
  table: 'queue' | 'presence';
  kind: string;
  routing: string;
  size: number;
  ciphertextSize: number;
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
    expect(r.stdout).toMatch(/^\s+chat\b/m);
    expect(r.stdout).toContain('Examples:');
    const demo = await impp(['demo', '--help']);
    expect(demo.code).toBe(0);
    expect(demo.stdout).toContain('--json');
    expect(demo.stdout).toContain('Examples:');
  });

  it('a reader that goes away (| head) ends the command quietly, not with an EPIPE crash', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'threats', '--help'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // Read one chunk, then close the pipe, as `head -1` does.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((done) => child.on('close', done));
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });

  it('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const r = await impp(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('an unknown command exits 2 and lists the commands', async () => {
    const r = await impp(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("impp: unknown command 'frobnicate'");
    expect(r.stderr).toMatch(/Commands: .*demo.*chat|Commands: .*chat.*demo/);
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

  it('demo exits 0, prints what each user saw and what the server stored, cleans up', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'impp-cli-test-'));
    let r: Run;
    try {
      r = await impp(['demo'], { TMPDIR: tmp });
      // The demo's temporary folder (CA, keys, SQLite store) is gone; tsx's cache may remain.
      expect(readdirSync(tmp).filter((f) => f.startsWith('impp-demo-'))).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/server example\.test on 127\.0\.0\.1:\d+ \(throwaway local CA/);
    expect(out).toContain('Alice saw');
    expect(out).toContain('Bob saw');
    expect(out).toContain('What the server stored, while Bob is offline');
    expect(out).toMatch(/message\s+queued for bob@example\.test\/phone/);
    expect(out).toMatch(/\d+ bytes, ciphertext \d+ bytes: ([0-9a-f]{2} ){16}…/);
    expect(out).toContain('carol received nothing');
    expect(out).toMatch(/match\s+yes/);
    expect(out).toContain('service.db-wal');
    expect(out).toContain('server store contains no plaintext: yes\n');
    expect(out).not.toContain('NO ');
    expect(out).not.toContain('\u001b['); // not a TTY: no escape sequences
  });

  it('demo --json: the stored bytes, searched here, hold no plaintext and no sender', async () => {
    const r = await impp(['demo', '--json']);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as {
      version: number;
      server: { listen: string };
      stored: { moment: string; keyLogSize: number; devices: number; objects: JsonObject[] }[];
      files: { name: string; size: number }[];
      plaintext: { message: string; reply: string; notes: string[] };
      safetyNumber: { alice: string; bob: string; match: boolean };
      checks: { claim: string; passed: boolean }[];
      serverStoreContainsNoPlaintext: boolean;
    };
    expect(summary.version).toBe(2);
    expect(summary.server.listen).toMatch(/^127\.0\.0\.1:\d+$/);
    // The recipients read exactly these texts...
    expect(summary.plaintext).toEqual({
      message: MESSAGE,
      reply: REPLY,
      notes: [NOTE, BOB_NOTE, NOTE_AFTER],
    });
    // ...and none of them is in what the server stored.
    const objects = summary.stored.flatMap((s) => s.objects);
    expect(
      objects.filter((o) => o.table === 'queue' && o.kind === 'message').length,
    ).toBeGreaterThan(0);
    expect(objects.filter((o) => o.kind === 'presence').length).toBeGreaterThanOrEqual(2);
    const secrets = [MESSAGE, REPLY, NOTE, BOB_NOTE, NOTE_AFTER, 'Lunch', 'library', 'riverside'];
    for (const o of objects) {
      const bytes = Buffer.from(o.bytesBase64, 'base64');
      expect(bytes.length).toBe(o.size);
      expect(o.ciphertextSize).toBeLessThan(o.size);
      // What the JSON calls the routing field is what the server-side parser reads from the bytes.
      expect(readEnvelopeHeader(bytes)).toMatchObject(
        o.kind === 'presence'
          ? { kind: 'presence', presentity: o.routing }
          : { kind: o.kind, recipientDevice: o.routing },
      );
      for (const s of secrets) {
        expect(bytes.includes(Buffer.from(s, 'utf8')), `${s} in ${o.kind}`).toBe(false);
        expect(bytes.includes(Buffer.from(s, 'utf16le'))).toBe(false);
      }
      // Sealed sender: a queued message names its recipient device, never its sender.
      if (o.table === 'queue') {
        expect(o.sealedSender).toBe('alice@example.test');
        expect(bytes.includes(Buffer.from('alice@example.test', 'utf8'))).toBe(false);
        expect(bytes.includes(Buffer.from('alice', 'utf8'))).toBe(false);
      }
    }
    expect(summary.stored.at(-1)?.devices).toBe(3);
    expect(summary.stored.at(-1)?.keyLogSize).toBeGreaterThanOrEqual(3);
    expect(summary.files.map((f) => f.name)).toContain('service.db');
    expect(summary.safetyNumber.match).toBe(true);
    expect(summary.safetyNumber.alice).toBe(summary.safetyNumber.bob);
    expect(summary.safetyNumber.alice).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(summary.checks.length).toBeGreaterThan(5);
    expect(summary.checks.every((c) => c.passed)).toBe(true);
    expect(summary.serverStoreContainsNoPlaintext).toBe(true);
  });
});
