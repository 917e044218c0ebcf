/**
 * `impp serve` with federation: the configuration section (validated, with errors that say what
 * to do), the link certificate check, and two real `impp serve` processes for a.example and
 * b.example whose configurations name each other — a.example accepts b.example by its pinned
 * domain key, b.example accepts a.example by an X.509 certificate from a CA it was given — so
 * that a link forms when a.example has something queued for b.example; plus a rogue peer
 * refused and logged.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLinkCertificate, linkCredentials } from '../../src/cli/serve-federation.js';
import { generateSigningKeyPair, randomBytes, toBase64Url } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { FederationKind, federationObjectId } from '../../src/federation/index.js';
import {
  DEFAULT_FEDERATION_LISTEN_PORT,
  dataFile,
  loadOrCreateDomainKey,
  parseServerConfig,
} from '../../src/service/config/index.js';
import { DEFAULT_FEDERATION_PORT } from '../../src/federation/index.js';
import { openSqliteServiceStore } from '../../src/service/store/index.js';
import { ensureLocalTls } from '../../src/service/config/local-ca.js';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createTestCa, issueCert } from '../helpers/tls-fixtures.js';
import { sealedMessage } from '../service/store/envelopes.js';
import { type TestDomain, makeDomain, startEndpoint, until } from '../federation/helpers.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAIN = join(ROOT, 'src/cli/main.ts');

const AUTH = {
  authentication: {
    mechanisms: ['SCRAM-SHA-256-PLUS'],
    providers: [{ type: 'local', id: 'local' }],
  },
};

function pinnedPeer(domain: string): Record<string, unknown> {
  return {
    domain,
    mode: 'allow',
    proof: { type: 'pinned-key', publicKey: toBase64Url(generateSigningKeyPair().publicKey) },
  };
}

describe('the federation section of the server configuration', () => {
  it('is off by default, and on as soon as the trust section allows a peer', () => {
    const off = parseServerConfig({ version: 1, domain: 'a.example' });
    expect(off.federation.enabled).toBe(false);
    expect(off.federation.listen).toEqual({
      host: '127.0.0.1',
      port: DEFAULT_FEDERATION_LISTEN_PORT,
    });
    expect(DEFAULT_FEDERATION_LISTEN_PORT).toBe(DEFAULT_FEDERATION_PORT);
    const on = parseServerConfig({
      version: 1,
      domain: 'a.example',
      trust: { ...AUTH, federation: { peers: [pinnedPeer('b.example')] } },
      federation: {
        routes: { 'B.Example': '127.0.0.1:6332', 'c.example': ['[::1]:7332', 'c1.test:5332'] },
        retry: { baseMs: 50, maxMs: 500 },
        expireAfterMs: 60_000,
      },
    });
    expect(on.federation.enabled).toBe(true);
    expect(on.federation.tls).toBeUndefined();
    expect([...on.federation.routes]).toEqual([
      ['b.example', [{ host: '127.0.0.1', port: 6332 }]],
      [
        'c.example',
        [
          { host: '::1', port: 7332 },
          { host: 'c1.test', port: 5332 },
        ],
      ],
    ]);
    expect(on.federation.retry).toEqual({ baseMs: 50, maxMs: 500 });
    const webpki = parseServerConfig({
      version: 1,
      domain: 'a.example',
      trust: { ...AUTH, federation: { unlisted: 'webpki' } },
    });
    expect(webpki.federation.enabled).toBe(true);
    const disabled = parseServerConfig({
      version: 1,
      domain: 'a.example',
      trust: { ...AUTH, federation: { peers: [pinnedPeer('b.example')] } },
      federation: { enabled: false },
    });
    expect(disabled.federation.enabled).toBe(false);
  });

  it('refuses what cannot work, saying what to do', () => {
    const problems = (input: Record<string, unknown>): string => {
      try {
        parseServerConfig({ version: 1, domain: 'a.example', ...input });
      } catch (error) {
        if (isImppError(error, 'ERR_CONFIG_INVALID')) return error.message;
        throw error;
      }
      throw new Error('accepted');
    };
    expect(problems({ federation: { enabled: true } })).toMatch(
      /federation\.enabled: is true, but trust\.federation allows no peer: add trust\.federation\.peers/,
    );
    const withPeer = { trust: { ...AUTH, federation: { peers: [pinnedPeer('b.example')] } } };
    expect(problems({ ...withPeer, federation: { routes: { 'b.example': 'nohost' } } })).toMatch(
      /federation\.routes\.b\.example: must be HOST:PORT/,
    );
    expect(
      problems({ ...withPeer, federation: { routes: { 'a.example': '127.0.0.1:1' } } }),
    ).toMatch(/own domain/);
    expect(problems({ ...withPeer, federation: { cert: 'link.crt' } })).toMatch(
      /both "cert" and "key"/,
    );
    expect(problems({ ...withPeer, federation: { retry: { baseMs: 10, maxMs: 5 } } })).toMatch(
      /retry\.baseMs: must not be larger than retry\.maxMs/,
    );
    expect(problems({ ...withPeer, federation: { listen: { port: 5330 } } })).toMatch(
      /federation\.listen\.port: is the same as a client listener/,
    );
    expect(problems({ ...withPeer, federation: { bogus: 1 } })).toMatch(/federation\.bogus/);
    expect(() => parseServerConfig({ version: 1, domain: 'localhost', ...withPeer })).toThrow(
      /real domain name to federate/,
    );
  });

  it('checks the link certificate: the domain as a DNS name, both usages, the matching key', async () => {
    const ca = await createTestCa();
    const good = await issueCert(ca, { dnsNames: ['a.example'], usage: 'both' });
    expect(() => {
      checkLinkCertificate(good, 'a.example', 'tls.cert');
    }).not.toThrow();
    const serverOnly = await issueCert(ca, { dnsNames: ['a.example'], usage: 'server' });
    expect(() => {
      checkLinkCertificate(serverOnly, 'a.example', 'tls.cert');
    }).toThrow(/serverAuth and clientAuth/);
    expect(() => {
      checkLinkCertificate(good, 'b.example', 'tls.cert');
    }).toThrow(/does not name b\.example/);
    expect(() => {
      checkLinkCertificate({ certPem: good.certPem, keyPem: serverOnly.keyPem }, 'a.example', 'x');
    }).toThrow(/does not match it; give federation\.cert and federation\.key .* and its key/);
  });

  it('says which link certificate file it cannot read and what to do, not what it holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'impp-link-files-'));
    try {
      const ca = await createTestCa();
      const good = await issueCert(ca, { dnsNames: ['a.example'], usage: 'both' });
      writeFileSync(join(dir, 'link.crt'), good.certPem);
      const config = parseServerConfig(
        {
          version: 1,
          domain: 'a.example',
          trust: { ...AUTH, federation: { peers: [pinnedPeer('b.example')] } },
          federation: { cert: 'link.crt', key: 'missing.key' },
        },
        { baseDir: dir },
      );
      let message = '';
      try {
        linkCredentials(config, good);
      } catch (e) {
        message = isImppError(e) ? e.message : String(e);
      }
      expect(message).toContain(`cannot read federation.key ${join(dir, 'missing.key')} (ENOENT)`);
      expect(message).toMatch(
        /check the path .* or leave federation\.cert and federation\.key out/,
      );
      expect(message).not.toContain('BEGIN');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the local CA certificate as link certificate', () => {
  it('is issued with both usages, and an older serverAuth-only one is re-issued', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'impp-local-ca-'));
    try {
      const first = await ensureLocalTls({ dataDir: dir, domain: 'a.example' });
      expect(() => {
        checkLinkCertificate(first, 'a.example', 'server.crt');
      }).not.toThrow();
      // A certificate from before federation: same CA, same names, serverAuth only.
      x509.cryptoProvider.set(webcrypto);
      const caCert = new x509.X509Certificate(first.caCertPem);
      const der = createPrivateKey(readFileSync(join(dir, 'ca.key'))).export({
        type: 'pkcs8',
        format: 'der',
      });
      const ca = {
        certPem: first.caCertPem,
        keyPem: '',
        cert: caCert,
        keys: {
          privateKey: await webcrypto.subtle.importKey(
            'pkcs8',
            der,
            { name: 'ECDSA', namedCurve: 'P-256' },
            false,
            ['sign'],
          ),
          publicKey: await webcrypto.subtle.importKey(
            'spki',
            caCert.publicKey.rawData,
            { name: 'ECDSA', namedCurve: 'P-256' },
            true,
            ['verify'],
          ),
        },
      };
      const old = await issueCert(ca, {
        dnsNames: ['a.example', 'localhost'],
        ipAddresses: ['127.0.0.1', '::1'],
        usage: 'server',
        notAfter: new Date(Date.now() + 200 * 86_400_000),
      });
      writeFileSync(join(dir, 'server.key'), old.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, 'server.crt'), old.certPem);
      expect(() => {
        checkLinkCertificate(old, 'a.example', 'server.crt');
      }).toThrow(/serverAuth and clientAuth/);
      const again = await ensureLocalTls({ dataDir: dir, domain: 'a.example' });
      expect(again.serverIssued).toBe('usage-changed');
      expect(() => {
        checkLinkCertificate(again, 'a.example', 'server.crt');
      }).not.toThrow();
      const third = await ensureLocalTls({ dataDir: dir, domain: 'a.example' });
      expect(third.serverIssued).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A port that was free a moment ago (both configurations must name each other's port). */
function freePort(): Promise<number> {
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

interface Serve {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

function startServe(config: string, dataDir: string): Promise<Serve> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'serve', '--config', config, '--data-dir', dataDir],
    { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c: string) => (out += c));
  child.stderr.on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((done) =>
    child.on('exit', (code) => {
      done(code);
    }),
  );
  const serve: Serve = { child, stdout: () => out, stderr: () => err, exited };
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('Stop with Ctrl-C')) {
        clearInterval(timer);
        resolve(serve);
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`impp serve exited with ${String(code)}:\n${out}\n${err}`));
    });
  });
}

/** Structured log lines with message `msg`. */
function logged(serve: Serve, msg: string): Record<string, unknown>[] {
  return serve
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

describe('two impp serve processes federate', () => {
  let work: string;
  let a: TestDomain;
  const running: Serve[] = [];
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'impp-serve-fed-'));
    a = await makeDomain('a.example');
  });
  afterAll(async () => {
    for (const s of running) {
      if (s.child.exitCode === null) {
        s.child.kill('SIGKILL');
        await s.exited;
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('a link forms (pinned key one way, X.509 the other), and a rogue peer is refused', async () => {
    const [aFed, bFed] = await Promise.all([freePort(), freePort()]);
    const aData = join(work, 'a');
    const bData = join(work, 'b');
    mkdirSync(aData, { mode: 0o700 });
    mkdirSync(bData, { mode: 0o700 });
    // b's domain key made in advance, so that a's configuration can pin it.
    const bKey = loadOrCreateDomainKey(dataFile(bData, 'domainKey')).keyPair;
    // a presents a link certificate from a CA that b is told to trust for a.example.
    writeFileSync(join(work, 'a-link.crt'), a.cert.certPem);
    writeFileSync(join(work, 'a-link.key'), a.cert.keyPem, { mode: 0o600 });
    writeFileSync(join(work, 'a-ca.crt'), a.ca.certPem);
    const common = (domain: string): string[] => [
      'version: 1',
      `domain: ${domain}`,
      'listen:',
      '  tls: { host: 127.0.0.1, port: 0 }',
      '  websocket: { enabled: false }',
      'log: { level: info }',
    ];
    const aConfig = join(work, 'a.yaml');
    writeFileSync(
      aConfig,
      [
        ...common('a.example'),
        'federation:',
        `  listen: { host: 127.0.0.1, port: ${aFed} }`,
        '  cert: a-link.crt',
        '  key: a-link.key',
        `  routes: { b.example: "127.0.0.1:${bFed}" }`,
        '  retry: { baseMs: 50, maxMs: 200 }',
        'trust:',
        '  authentication: { mechanisms: [SCRAM-SHA-256-PLUS], providers: [{ type: local, id: local }] }',
        '  federation:',
        '    peers:',
        `      - { domain: b.example, mode: allow, proof: { type: pinned-key, publicKey: ${toBase64Url(bKey.publicKey)} } }`,
      ].join('\n'),
    );
    const bConfig = join(work, 'b.yaml');
    writeFileSync(
      bConfig,
      [
        ...common('b.example'),
        'federation:',
        `  listen: { host: 127.0.0.1, port: ${bFed} }`,
        `  routes: { a.example: "127.0.0.1:${aFed}" }`,
        'trust:',
        '  authentication: { mechanisms: [SCRAM-SHA-256-PLUS], providers: [{ type: local, id: local }] }',
        '  federation:',
        '    peers:',
        '      - { domain: a.example, mode: allow, proof: { type: x509, trustAnchors: { path: a-ca.crt } } }',
      ].join('\n'),
    );
    // Something already queued for b.example (as after a restart): a's driver sends it at start.
    const store = openSqliteServiceStore({ path: dataFile(aData, 'serviceDb') });
    const messageId = randomBytes(16);
    await store.federationQueue.enqueue({
      peer: 'b.example',
      sender: 'alice@a.example/laptop',
      id: federationObjectId('bob@b.example/phone', messageId),
      kind: FederationKind.sealed,
      body: sealedMessage('bob@b.example/phone', messageId),
      enqueuedAt: Date.now(),
    });
    await store.close();

    const bServe = await startServe(bConfig, bData);
    running.push(bServe);
    expect(bServe.stdout()).toContain(`listening (federation): 127.0.0.1:${bFed}`);
    expect(bServe.stdout()).toContain(`domain key (peers pin): ${toBase64Url(bKey.publicKey)}`);
    const aServe = await startServe(aConfig, aData);
    running.push(aServe);

    await until(
      () =>
        logged(aServe, 'federation.link_open').some((l) => l.peer === 'b.example') &&
        logged(bServe, 'federation.link_open').some((l) => l.peer === 'a.example'),
      15_000,
    );
    // b has no bob: it refuses the object as a nonexistent user's, and a bounces it.
    expect(logged(aServe, 'federation.peer_authenticated')[0]).toMatchObject({
      peer: 'b.example',
      reason: expect.stringMatching(/key/) as unknown,
    });
    expect(logged(bServe, 'federation.peer_authenticated')[0]).toMatchObject({
      peer: 'a.example',
      reason: expect.stringMatching(/certificate/) as unknown,
    });
    expect(logged(aServe, 'federation.peer_refused')).toEqual([]);
    await until(() => logged(aServe, 'federation.bounced').length > 0, 10_000);
    expect(logged(aServe, 'federation.bounced')[0]).toMatchObject({
      peer: 'b.example',
      reason: 'refused',
      code: 'ERR_NOT_FOUND',
    });

    // A rogue claiming b.example with a key a did not pin: refused at a, logged, no link.
    const rogue = await startEndpoint(
      { ...a, domain: 'b.example', key: generateSigningKeyPair() },
      [{ domain: 'a.example', proof: 'x509', caPem: a.ca.certPem }],
    );
    rogue.routes.set('a.example', [{ host: '127.0.0.1', port: aFed }]);
    await expect(rogue.endpoint.connect('a.example')).rejects.toThrow();
    await rogue.endpoint.close();
    await until(() => logged(aServe, 'federation.peer_refused').length > 0, 5_000);
    const refusal = logged(aServe, 'federation.peer_refused')[0];
    expect(refusal).toMatchObject({ peer: 'b.example' });
    // No secret in any log line: neither domain key nor link key material.
    for (const s of [aServe, bServe]) {
      expect(s.stderr()).not.toContain('PRIVATE KEY');
    }

    for (const s of [aServe, bServe]) s.child.kill('SIGTERM');
    expect(await aServe.exited).toBe(0);
    expect(await bServe.exited).toBe(0);
    expect(logged(aServe, 'server.stopped')).toHaveLength(1);
  }, 40_000);
});
