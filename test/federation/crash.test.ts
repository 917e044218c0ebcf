/**
 * kill -9 of either domain's server mid-stream loses nothing acknowledged and delivers nothing
 * twice (issue 7, item 5). Real child processes (fed-child.ts) holding real TLS links on
 * loopback, real SQLite stores; the receiving application is a table written in the same
 * transaction as the duplicate filter's record, so every row is one delivery.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair, randomBytes, toBase64Url } from '../../src/crypto/index.js';
import { FederationEndpoint, FederationOutbound, StoreDedup } from '../../src/federation/index.js';
import { type SqliteServiceStore, openSqliteServiceStore } from '../../src/service/store/index.js';
import type { ChildConfig } from './fed-child.js';
import { type TestDomain, makeDomain, trustFor, until } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'impp-fedcrash-'));
const children: ChildProcess[] = [];
const closers: (() => Promise<void>)[] = [];

let a: TestDomain;
let b: TestDomain;
const seeds = { a: randomBytes(32), b: randomBytes(32) };
const keys = { a: generateSigningKeyPair(seeds.a), b: generateSigningKeyPair(seeds.b) };

beforeAll(async () => {
  [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const close of closers.splice(0)) await close();
  rmSync(root, { recursive: true, force: true });
});

interface Child {
  readonly proc: ChildProcess;
  readonly port: number;
  /** Ids (numbers) whose enqueue the child reported durable. */
  readonly acked: Set<number>;
}

function startChild(config: ChildConfig, commands: string[] = []): Promise<Child> {
  const path = join(config.dir, `config-${config.role}.json`);
  writeFileSync(path, JSON.stringify(config));
  const proc = spawn(process.execPath, ['--import', 'tsx', join(here, 'fed-child.ts'), path], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(proc);
  const acked = new Set<number>();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('child did not start within 15 s'));
    }, 15_000);
    let out = '';
    let started = false;
    proc.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^(port|acked) (\d+)$/.exec(line);
        if (m === null) continue;
        if (m[1] === 'acked') acked.add(Number(m[2]));
        else if (!started) {
          started = true;
          clearTimeout(timer);
          for (const c of commands) proc.stdin.write(`${c}\n`);
          resolve({ proc, port: Number(m[2]), acked });
        }
      }
    });
    proc.on('exit', () => {
      reject(new Error('child exited'));
    });
  });
}

function kill(child: Child): Promise<void> {
  return new Promise((resolve) => {
    child.proc.once('exit', () => {
      resolve();
    });
    child.proc.kill('SIGKILL');
  });
}

function childConfig(
  role: ChildConfig['role'],
  dir: string,
  self: TestDomain,
  peer: TestDomain,
  listenPort: number,
  peerPort?: number,
): ChildConfig {
  const own = self === a ? seeds.a : seeds.b;
  const other = peer === a ? keys.a : keys.b;
  return {
    role,
    dir,
    domain: self.domain,
    certPem: self.cert.certPem,
    keyPem: self.cert.keyPem,
    seed: toBase64Url(own),
    peer: {
      domain: peer.domain,
      publicKey: toBase64Url(other.publicKey),
      ...(peerPort === undefined ? {} : { port: peerPort }),
    },
    listenPort,
  };
}

/** Object numbers in the `app` table of a store file, with their delivery counts. */
function deliveredCounts(path: string): Map<number, number> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare<[], { id: Buffer }>('SELECT id FROM app').all();
    const counts = new Map<number, number>();
    for (const r of rows) {
      const n = r.id.readUInt32BE(12);
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    return counts;
  } finally {
    db.close();
  }
}

/** An in-process domain with a store, an endpoint and (for senders) the outbound driver. */
async function inProcess(
  self: TestDomain,
  peer: TestDomain,
  dir: string,
  peerPort?: number,
): Promise<{ store: SqliteServiceStore; endpoint: FederationEndpoint; port: number }> {
  const store = openSqliteServiceStore({ path: join(dir, 'store.db') });
  store.db.exec(
    'CREATE TABLE IF NOT EXISTS app (n INTEGER PRIMARY KEY, origin TEXT NOT NULL, id BLOB NOT NULL)',
  );
  const insert = store.db.prepare<[string, Buffer]>('INSERT INTO app (origin, id) VALUES (?, ?)');
  const dedup = new StoreDedup(store.federationSeen);
  const own = self === a ? keys.a : keys.b;
  const other = peer === a ? keys.a : keys.b;
  const endpoint = new FederationEndpoint({
    local: {
      domain: self.domain,
      tls: { certPem: self.cert.certPem, keyPem: self.cert.keyPem },
      domainKey: own.secretKey,
    },
    trust: trustFor(self.domain, [
      { domain: peer.domain, proof: 'key', publicKey: other.publicKey },
    ]),
    dedup,
    deliver: dedup.atomicDeliver((o) => {
      insert.run(o.arrivedFrom, Buffer.from(o.id));
    }),
    limits: { preAuthTimeoutMs: 3000, ackTimeoutMs: 3000, deliverPipeline: 64 },
    resolve: {
      overrides: new Map(
        peerPort === undefined ? [] : [[peer.domain, [{ host: '127.0.0.1', port: peerPort }]]],
      ),
    },
  });
  const port = await endpoint.listen({ host: '127.0.0.1', port: 0 });
  closers.push(async () => {
    await endpoint.close();
    await store.close();
  });
  return { store, endpoint, port };
}

function exactlyOnce(counts: Map<number, number>, acked: Iterable<number>): void {
  const twice = [...counts].filter(([, c]) => c !== 1).map(([n]) => n);
  expect(twice).toEqual([]);
  const missing = [...acked].filter((n) => !counts.has(n));
  expect(missing).toEqual([]);
}

describe('federation durability under kill -9', () => {
  it('a sender killed after enqueue and restarted delivers everything exactly once', async () => {
    const dir = join(root, 'sender-killed');
    mkdirSync(join(dir, 'a'), { recursive: true });
    mkdirSync(join(dir, 'b'), { recursive: true });
    const B = await inProcess(b, a, join(dir, 'b'));
    const appPath = join(dir, 'b', 'store.db');
    const count = 4000;
    const config = childConfig('sender', join(dir, 'a'), a, b, 0, B.port);
    const first = await startChild(config, [`enqueue 0 ${count}`]);
    // Kill mid-stream: some objects delivered, most still queued (some maybe in flight).
    await until(
      () => (B.store.db.prepare('SELECT count(*) AS n FROM app').get() as { n: number }).n >= 200,
      15_000,
    );
    await kill(first);
    const acked = new Set(first.acked);
    expect(acked.size).toBeGreaterThan(200);
    const before = deliveredCounts(appPath).size;
    expect(before).toBeLessThan(count);
    // Restarted with nothing new to send: it resumes its durable queue.
    const second = await startChild({ ...config, listenPort: first.port });
    await until(() => {
      const got = deliveredCounts(appPath);
      return [...acked].every((n) => got.has(n));
    }, 15_000);
    await kill(second);
    exactlyOnce(deliveredCounts(appPath), acked);
  }, 40_000);

  it('a receiver killed mid-stream and restarted gets everything exactly once', async () => {
    const dir = join(root, 'receiver-killed');
    mkdirSync(join(dir, 'a'), { recursive: true });
    mkdirSync(join(dir, 'b'), { recursive: true });
    const config = childConfig('receiver', join(dir, 'b'), b, a, 0);
    const first = await startChild(config);
    const A = await inProcess(a, b, join(dir, 'a'), first.port);
    const outbound = new FederationOutbound({
      endpoint: A.endpoint,
      queue: A.store.federationQueue,
      bounce: () => {
        throw new Error('nothing may bounce');
      },
      retry: { baseMs: 20, maxMs: 200 },
    });
    closers.unshift(() => outbound.close());
    const count = 4000;
    await Promise.all(
      Array.from({ length: count }, (_, n) => {
        const id = new Uint8Array(16);
        id[0] = 0x7e;
        new DataView(id.buffer).setUint32(12, n);
        return outbound.enqueue({
          peer: 'b.example',
          sender: `user${n % 7}@a.example/d1`,
          id,
          kind: 1,
          body: new Uint8Array(32),
        });
      }),
    );
    const appPath = join(dir, 'b', 'store.db');
    await until(() => deliveredCounts(appPath).size >= 300, 15_000);
    await kill(first);
    expect(deliveredCounts(appPath).size).toBeLessThan(count);
    const second = await startChild({ ...config, listenPort: first.port });
    await until(() => deliveredCounts(appPath).size >= count, 20_000);
    await until(() => outbound.activePeers.length === 0, 5000);
    expect((await A.store.federationQueue.usage('b.example')).count).toBe(0);
    await kill(second);
    exactlyOnce(
      deliveredCounts(appPath),
      Array.from({ length: count }, (_, n) => n),
    );
  }, 40_000);
});
