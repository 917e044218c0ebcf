/**
 * The data folder and the local CA: first start creates the CA, the server certificate and the
 * domain key with private modes; later starts reuse them byte for byte; expired, expiring or
 * renamed certificates are re-issued; and a real TLS 1.3 handshake on loopback succeeds for a
 * client that trusts only the generated CA (and fails for one that does not).
 */
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { isImppError } from '../../../src/errors.js';
import {
  DATA_FILES,
  dataFile,
  ensureDataDir,
  resolveDataDir,
  writeFileAtomic,
} from '../../../src/service/config/data-dir.js';
import { loadOrCreateDomainKey } from '../../../src/service/config/domain-key.js';
import {
  SERVER_CERT_VALIDITY_DAYS,
  ensureLocalTls,
  type LocalTls,
} from '../../../src/service/config/local-ca.js';

const root = mkdtempSync(join(tmpdir(), 'impp-config-'));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});
let n = 0;
function freshDir(): string {
  return join(root, `d${++n}`);
}
const mode = (p: string): number => statSync(p).mode & 0o777;
const DAY = 86_400_000;
const files = (dir: string): Record<string, Buffer> =>
  Object.fromEntries(
    (['caCert', 'caKey', 'serverCert', 'serverKey', 'domainKey'] as const).map((k) => [
      k,
      readFileSync(dataFile(dir, k)),
    ]),
  );

async function start(dir: string, domain = 'example.test', now?: Date): Promise<LocalTls> {
  const path = ensureDataDir(dir);
  loadOrCreateDomainKey(dataFile(path, 'domainKey'));
  return ensureLocalTls({ dataDir: path, domain, ...(now ? { now: () => now } : {}) });
}

describe('data folder', () => {
  it('defaults to ./.impp, honours IMPP_DATA_DIR, and an explicit folder wins', () => {
    expect(resolveDataDir(undefined, {})).toBe(join(process.cwd(), '.impp'));
    expect(resolveDataDir(undefined, { IMPP_DATA_DIR: '/srv/impp' })).toBe('/srv/impp');
    expect(resolveDataDir('/x', { IMPP_DATA_DIR: '/srv/impp' })).toBe('/x');
  });

  it('refuses a folder other users can read', () => {
    const dir = freshDir();
    ensureDataDir(dir);
    chmodSync(dir, 0o755);
    expect(() => ensureDataDir(dir)).toThrow(/accessible to other users/);
  });
});

describe('local CA and server certificate', () => {
  it('first start creates CA, certificate and domain key with private modes', async () => {
    const dir = freshDir();
    const tls = await start(dir);
    expect(tls.caCreated).toBe(true);
    expect(tls.serverIssued).toBe('missing');
    expect(mode(dir)).toBe(0o700);
    expect(mode(dataFile(dir, 'caKey'))).toBe(0o600);
    expect(mode(dataFile(dir, 'serverKey'))).toBe(0o600);
    expect(mode(dataFile(dir, 'domainKey'))).toBe(0o600);
    expect(mode(dataFile(dir, 'caCert'))).toBe(0o644);
    // No temporary files left behind by the atomic writes.
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir).sort()).toEqual(
      [
        DATA_FILES.caCert,
        DATA_FILES.caKey,
        DATA_FILES.serverCert,
        DATA_FILES.serverKey,
        DATA_FILES.domainKey,
      ].sort(),
    );

    const cert = new X509Certificate(tls.certPem);
    const ca = new X509Certificate(tls.caCertPem);
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subjectAltName).toBe(
      'DNS:example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const days = (Date.parse(cert.validTo) - Date.now()) / DAY;
    expect(days).toBeGreaterThan(SERVER_CERT_VALIDITY_DAYS - 1);
    expect(days).toBeLessThanOrEqual(SERVER_CERT_VALIDITY_DAYS);
    expect(tls.caFingerprint).toBe(ca.fingerprint256);
    expect(tls.caFingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('second start reuses everything byte for byte', async () => {
    const dir = freshDir();
    const first = await start(dir);
    const before = files(dir);
    const second = await start(dir);
    expect(second.caCreated).toBe(false);
    expect(second.serverIssued).toBeUndefined();
    expect(second.caFingerprint).toBe(first.caFingerprint);
    expect(files(dir)).toEqual(before);
    expect(loadOrCreateDomainKey(dataFile(dir, 'domainKey')).created).toBe(false);
  });

  it('re-issues an expired or expiring server certificate, keeping the CA', async () => {
    const dir = freshDir();
    const first = await start(dir);
    const ca = readFileSync(dataFile(dir, 'caCert'));
    const later = new Date(Date.now() + (SERVER_CERT_VALIDITY_DAYS + 1) * DAY);
    const expired = await start(dir, 'example.test', later);
    expect(expired.serverIssued).toBe('expired');
    expect(expired.certPem).not.toBe(first.certPem);
    expect(expired.keyPem).not.toBe(first.keyPem);
    expect(readFileSync(dataFile(dir, 'caCert'))).toEqual(ca);
    expect(Date.parse(new X509Certificate(expired.certPem).validTo)).toBeGreaterThan(
      later.getTime(),
    );
    const nearEnd = new Date(later.getTime() + (SERVER_CERT_VALIDITY_DAYS - 10) * DAY);
    expect((await start(dir, 'example.test', nearEnd)).serverIssued).toBe('expiring');
  });

  it('re-issues when the names change, and when the certificate is not from the CA', async () => {
    const dir = freshDir();
    await start(dir, 'example.test');
    const renamed = await start(dir, 'other.test');
    expect(renamed.serverIssued).toBe('names-changed');
    expect(new X509Certificate(renamed.certPem).subjectAltName).toContain('DNS:other.test');

    // A certificate from another CA planted in the folder is replaced, not served.
    const other = freshDir();
    const foreign = await start(other, 'other.test');
    writeFileSync(dataFile(dir, 'serverCert'), foreign.certPem);
    writeFileSync(dataFile(dir, 'serverKey'), foreign.keyPem, { mode: 0o600 });
    expect((await start(dir, 'other.test')).serverIssued).toBe('not-from-ca');
  });

  it('refuses a CA whose key is missing or readable by others, and a damaged domain key', async () => {
    const dir = freshDir();
    await start(dir);
    chmodSync(dataFile(dir, 'caKey'), 0o644);
    await expect(start(dir)).rejects.toThrow(/chmod 600/);
    rmSync(dataFile(dir, 'caKey'));
    await expect(start(dir)).rejects.toThrow(/without/);

    const keyDir = freshDir();
    ensureDataDir(keyDir);
    const keyPath = dataFile(keyDir, 'domainKey');
    writeFileSync(keyPath, 'impp-domain-key v2 ed448\nAAAA\n', { mode: 0o600 });
    expect(() => loadOrCreateDomainKey(keyPath)).toThrow(/unknown version/);
    writeFileSync(keyPath, 'impp-domain-key v1 ed25519\nAAAA\n', { mode: 0o600 });
    try {
      loadOrCreateDomainKey(keyPath);
      expect.unreachable();
    } catch (e) {
      expect(isImppError(e, 'ERR_CONFIG_INVALID')).toBe(true);
    }
  });

  it('a domain key readable by others is refused', () => {
    const dir = freshDir();
    ensureDataDir(dir);
    const path = dataFile(dir, 'domainKey');
    loadOrCreateDomainKey(path);
    chmodSync(path, 0o640);
    expect(() => loadOrCreateDomainKey(path)).toThrow(/accessible to other users/);
  });

  it('atomic writes replace a planted symlink instead of writing through it', () => {
    const dir = freshDir();
    ensureDataDir(dir);
    const victim = join(root, `victim${n}`);
    writeFileSync(victim, 'precious');
    const path = dataFile(dir, 'serverKey');
    symlinkSync(victim, path);
    writeFileAtomic(path, 'new key', 0o600);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('new key');
    expect(mode(path)).toBe(0o600);
  });

  it('the domain key round-trips: same public key after reload', () => {
    const dir = freshDir();
    ensureDataDir(dir);
    const path = dataFile(dir, 'domainKey');
    const a = loadOrCreateDomainKey(path);
    const b = loadOrCreateDomainKey(path);
    expect(a.created).toBe(true);
    expect(Buffer.from(b.keyPair.publicKey)).toEqual(Buffer.from(a.keyPair.publicKey));
    expect(readFileSync(path, 'utf8')).not.toContain(
      Buffer.from(a.keyPair.publicKey).toString('base64url'),
    );
  });
});

describe('real TLS 1.3 handshake on loopback', () => {
  async function handshake(
    tls: LocalTls,
    ca: string,
    servername: string,
    host = '127.0.0.1',
  ): Promise<TLSSocket> {
    const server = createServer(
      { cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.3' },
      (s) => s.end('hello'),
    );
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as AddressInfo;
    try {
      return await new Promise<TLSSocket>((ok, fail) => {
        const socket = connect({ host, port, ca, servername, minVersion: 'TLSv1.3' }, () => {
          ok(socket);
          socket.end();
        });
        socket.on('error', fail);
        socket.setTimeout(5000, () => {
          fail(new Error('timeout'));
        });
      });
    } finally {
      server.close();
    }
  }

  it('a client trusting only the generated CA accepts the server, by name and by IP', async () => {
    const tls = await start(freshDir());
    const byName = await handshake(tls, tls.caCertPem, 'example.test');
    expect(byName.authorized).toBe(true);
    expect(byName.getProtocol()).toBe('TLSv1.3');
    const byLocalhost = await handshake(tls, tls.caCertPem, 'localhost');
    expect(byLocalhost.authorized).toBe(true);
  });

  it('a client trusting another CA, or asking for another name, is refused', async () => {
    const tls = await start(freshDir());
    const other = await start(freshDir());
    await expect(handshake(tls, other.caCertPem, 'example.test')).rejects.toThrow(
      /self.signed|unable to verify|unable to get/i,
    );
    await expect(handshake(tls, tls.caCertPem, 'evil.test')).rejects.toThrow(/altnames|Hostname/i);
  });
});
