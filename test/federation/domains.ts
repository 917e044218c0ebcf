/**
 * Whole domains in child processes (domain-child.ts), for the multi-domain tests and the
 * federation benchmark: each domain has its own federation certificate from its own CA, its own
 * domain key, its own SQLite folder, and a trust configuration naming the others (each peer by
 * pinned key or by X.509 anchors, as the caller says). Clients are the real SDK, in the calling
 * process, over TLS on loopback.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { ImppClient, type ImppClientOptions } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { randomBytes, toBase64Url, generateSigningKeyPair } from '../../src/crypto/index.js';
import { type TestCa, type TestCert, createLoopbackPki } from '../helpers/tls-fixtures.js';
import type { ChildPeer, DomainChildConfig } from './domain-child.js';
import { type TestDomain, makeDomain } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The password of every account of every domain. */
export const PASSWORD = 'correct horse battery staple';

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released for the child to take). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

/** An audit event of a domain's federation node, as the child printed it. */
export interface AuditEvent {
  readonly type: string;
  readonly peer: string | null;
  readonly claimedOrigin?: string;
  readonly claimedDomain?: string;
  readonly reason: string;
}

/** One domain's process, restartable on the same folder and ports. */
export class DomainProcess {
  readonly test: TestDomain;
  readonly seed: Uint8Array;
  readonly dir: string;
  proc: ChildProcess | null = null;
  /** Audit events the domain's federation node emitted, across restarts. */
  readonly audit: AuditEvent[] = [];
  #config: DomainChildConfig | null = null;

  constructor(
    test: TestDomain,
    seed: Uint8Array,
    dir: string,
    readonly clientPort: number,
    readonly federationPort: number,
  ) {
    this.test = test;
    this.seed = seed;
    this.dir = dir;
  }

  get domain(): string {
    return this.test.domain;
  }

  /** The domain's service store (SQLite), for reading what the server keeps. */
  get storePath(): string {
    return join(this.dir, 'service.db');
  }

  configure(config: DomainChildConfig): void {
    this.#config = config;
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, 'config.json'), JSON.stringify(config));
  }

  /** Starts the child; resolves when both its ports listen. */
  start(timeoutMs = 20_000): Promise<void> {
    if (this.#config === null) throw new Error('configure the domain first');
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, 'domain-child.ts'), join(this.dir, 'config.json')],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.proc = proc;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.domain} did not start within ${timeoutMs} ms`));
      }, timeoutMs);
      let out = '';
      proc.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        const lines = out.split('\n');
        out = lines.pop() ?? '';
        for (const line of lines) {
          if (line.startsWith('audit ')) {
            this.audit.push(JSON.parse(line.slice(6)) as AuditEvent);
          } else if (/^ports \d+ \d+$/.test(line)) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.domain} exited (${code ?? signal ?? '?'})`));
      });
    });
  }

  /** SIGKILL; resolves when the process is gone. */
  kill(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      proc.once('exit', () => {
        resolve();
      });
      proc.kill('SIGKILL');
    });
  }

  /** Rows of the domain's audit log (read-only, beside the running server). */
  auditRows(): { kind: string; source: string | null; details: Record<string, unknown> }[] {
    const db = new Database(this.storePath, { readonly: true, fileMustExist: true });
    try {
      return db
        .prepare<[], { kind: string; source: string | null; details: string }>(
          'SELECT kind, source, details FROM audit ORDER BY seq',
        )
        .all()
        .map((r) => ({
          kind: r.kind,
          source: r.source,
          details: JSON.parse(r.details) as Record<string, unknown>,
        }));
    } finally {
      db.close();
    }
  }
}

/** How one domain accepts another. */
export type ProofChoice = 'key' | 'x509';

/** Several domains federating with each other, each in its own process. */
export interface Federation {
  readonly domains: ReadonlyMap<string, DomainProcess>;
  /** The CA that signed every domain's client-facing (loopback) certificate. */
  readonly clientCa: TestCa;
  get(domain: string): DomainProcess;
  /** A client for `user@domain` on `deviceId`, its state in the root folder. */
  client(address: string, deviceId: string, extra?: Partial<ImppClientOptions>): ImppClient;
  /** Kills every domain and closes every client made by {@link client}. */
  close(): Promise<void>;
}

/**
 * Mixed proofs: each domain pins the key of the next one in `names` (cyclically) and checks the
 * certificate of every other, so that every link has one side of each kind.
 */
export function mixedProofs(names: readonly string[]): (self: string, peer: string) => ProofChoice {
  return (self, peer) =>
    names.indexOf(peer) === (names.indexOf(self) + 1) % names.length ? 'key' : 'x509';
}

/**
 * Starts `names` as domains (in parallel), each with `users`, every domain federating with every
 * other; `proof(self, peer)` says how `self` authenticates `peer` (default {@link mixedProofs}).
 */
export async function startFederation(
  root: string,
  names: readonly string[],
  users: readonly string[],
  proof: (self: string, peer: string) => ProofChoice = mixedProofs(names),
): Promise<Federation> {
  const [tests, loopback] = await Promise.all([
    Promise.all(names.map((n) => makeDomain(n))),
    createLoopbackPki(),
  ]);
  const domains = new Map<string, DomainProcess>();
  for (const t of tests) {
    const seed = randomBytes(32);
    const d = new DomainProcess(
      { ...t, key: generateSigningKeyPair(seed) },
      seed,
      join(root, t.domain),
      await freePort(),
      await freePort(),
    );
    domains.set(t.domain, d);
  }
  for (const d of domains.values()) {
    const peers: ChildPeer[] = [...domains.values()]
      .filter((p) => p !== d)
      .map((p) =>
        proof(d.domain, p.domain) === 'key'
          ? {
              domain: p.domain,
              proof: 'key',
              publicKey: toBase64Url(p.test.key.publicKey),
              port: p.federationPort,
            }
          : { domain: p.domain, proof: 'x509', caPem: p.test.ca.certPem, port: p.federationPort },
      );
    d.configure({
      dir: d.dir,
      domain: d.domain,
      clientTls: pem(loopback.server),
      federationTls: pem(d.test.cert),
      seed: toBase64Url(d.seed),
      users,
      password: PASSWORD,
      peers,
      clientPort: d.clientPort,
      federationPort: d.federationPort,
    });
  }
  await Promise.all([...domains.values()].map((d) => d.start()));
  const clients: ImppClient[] = [];
  const get = (domain: string): DomainProcess => {
    const d = domains.get(domain);
    if (d === undefined) throw new Error(`no domain ${domain}`);
    return d;
  };
  return {
    domains,
    clientCa: loopback.ca,
    get,
    client(address, deviceId, extra = {}) {
      const domain = address.slice(address.indexOf('@') + 1);
      const c = new ImppClient({
        host: '127.0.0.1',
        port: get(domain).clientPort,
        ca: loopback.ca.certPem,
        servername: 'localhost',
        address,
        password: PASSWORD,
        deviceId,
        state: new FileStateStore(join(root, `${address}-${deviceId}.state`)),
        ...extra,
      });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients.splice(0)) await c.close().catch(() => undefined);
      await Promise.all([...domains.values()].map((d) => d.kill()));
    },
  };
}

function pem(c: TestCert): { certPem: string; keyPem: string } {
  return { certPem: c.certPem, keyPem: c.keyPem };
}
