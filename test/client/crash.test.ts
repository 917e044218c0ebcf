/**
 * kill -9 of the server mid-stream loses no acknowledged message: the server answers SEND only
 * after the object is durably committed, so everything the sender saw acknowledged is delivered
 * after a restart, once each and in order.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ImppClient, type ReceivedMessage } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { createLoopbackPki } from '../helpers/tls-fixtures.js';
import { DOMAIN, PASSWORD, quiet } from '../service/harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'impp-crash-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function startServer(): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', join(here, '../service/server-child.ts'), dir],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.push(proc);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('server child did not start within 15 s'));
    }, 15_000);
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const m = /port (\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    });
    proc.on('exit', () => {
      reject(new Error('server child exited'));
    });
  });
}

describe('crash', () => {
  it('kill -9 mid-stream loses no acknowledged message', async () => {
    const pki = await createLoopbackPki();
    writeFileSync(join(dir, 'key.pem'), pki.server.keyPem);
    writeFileSync(join(dir, 'cert.pem'), pki.server.certPem);
    const client = (user: string, deviceId: string, port: number) =>
      new ImppClient({
        host: '127.0.0.1',
        port,
        ca: pki.ca.certPem,
        servername: 'localhost',
        address: `${user}@${DOMAIN}`,
        password: PASSWORD,
        deviceId,
        state: new FileStateStore(join(dir, `${user}.state`)),
      });
    const first = await startServer();
    const bob = client('bob', 'phone', first.port);
    await bob.connect();
    await bob.close(); // offline: everything goes to the store
    const alice = client('alice', 'laptop', first.port);
    alice.on('close', () => undefined);
    await alice.connect();
    const acked: string[] = [];
    const exited = new Promise<void>((resolve) => {
      first.proc.once('exit', () => {
        resolve();
      });
    });
    let timer: NodeJS.Timeout | undefined;
    for (let i = 0; i < 2000; i++) {
      const text = `durable message number ${i}`;
      try {
        await alice.sendMessage('bob@example.org', text);
      } catch {
        break; // the server died under this one: not acknowledged
      }
      acked.push(text);
      // After ten acknowledgements, kill at an arbitrary moment: usually mid-request.
      if (acked.length === 10) {
        timer = setTimeout(() => {
          first.proc.kill('SIGKILL');
        }, 15);
      }
    }
    clearTimeout(timer);
    await exited;
    expect(acked.length).toBeGreaterThanOrEqual(10);

    const second = await startServer();
    const again = client('bob', 'phone', second.port);
    const got: ReceivedMessage[] = [];
    again.on('message', (m) => got.push(m));
    await again.connect();
    for (let i = 0; i < 200 && got.length < acked.length; i++) await quiet(25);
    await quiet(100);
    const texts = got.map((m) => m.text);
    expect(texts.slice(0, acked.length)).toEqual(acked);
    expect(new Set(texts).size).toBe(texts.length);
    await again.close();
    second.proc.kill('SIGKILL');
  });
});
