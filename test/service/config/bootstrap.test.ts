/**
 * prepareServerFiles: what `impp serve` calls before listening. Idempotent on the embedded
 * defaults; with the operator's own certificate files, a key that does not match is refused.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prepareServerFiles } from '../../../src/service/config/bootstrap.js';
import { parseServerConfig } from '../../../src/service/config/server-config.js';

const root = mkdtempSync(join(tmpdir(), 'impp-bootstrap-'));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('prepareServerFiles', () => {
  it('embedded defaults: creates everything private, and a second call reuses it', async () => {
    const dataDir = join(root, 'a');
    const config = parseServerConfig({
      version: 1,
      domain: 'chat.example.test',
      dataDir,
      tls: { extraNames: ['192.0.2.7'] },
    });
    const first = await prepareServerFiles(config);
    expect(first.domainKeyCreated).toBe(true);
    expect(first.tls.localCa?.caCreated).toBe(true);
    expect(new X509Certificate(first.tls.certPem).subjectAltName).toContain('IP Address:192.0.2.7');
    for (const p of [first.serviceDbPath, first.accountsDbPath]) {
      expect(statSync(p).mode & 0o777).toBe(0o600);
    }
    expect(first.serviceDbPath).toBe(join(dataDir, 'store.db'));
    expect(first.accountsDbPath).toBe(join(dataDir, 'accounts.db'));
    const second = await prepareServerFiles(config);
    expect(second.domainKeyCreated).toBe(false);
    expect(second.tls.localCa?.serverIssued).toBeUndefined();
    expect(second.tls.certPem).toBe(first.tls.certPem);
    expect(Buffer.from(second.domainKey.publicKey)).toEqual(Buffer.from(first.domainKey.publicKey));
  });

  it("operator's files: used as given; a mismatched or too-open key is refused", async () => {
    // Two certificates from the local CA of another folder stand in for the operator's.
    const donor = await prepareServerFiles(
      parseServerConfig({ version: 1, domain: 'x.test', dataDir: join(root, 'donor') }),
    );
    const other = await prepareServerFiles(
      parseServerConfig({ version: 1, domain: 'y.test', dataDir: join(root, 'other') }),
    );
    const cert = join(root, 'op.crt');
    const key = join(root, 'op.key');
    writeFileSync(cert, donor.tls.certPem);
    writeFileSync(key, donor.tls.keyPem, { mode: 0o600 });
    const config = parseServerConfig(
      {
        version: 1,
        domain: 'x.test',
        dataDir: join(root, 'b'),
        tls: { cert: 'op.crt', key: 'op.key' },
      },
      { baseDir: root },
    );
    const files = await prepareServerFiles(config);
    expect(files.tls.localCa).toBeUndefined();
    expect(files.tls.certPem).toBe(donor.tls.certPem);

    writeFileSync(key, other.tls.keyPem, { mode: 0o600 });
    await expect(prepareServerFiles(config)).rejects.toThrow(/is not the key of/);
    writeFileSync(key, donor.tls.keyPem);
    chmodSync(key, 0o644);
    await expect(prepareServerFiles(config)).rejects.toThrow(/chmod 600/);
    rmSync(key);
    await expect(prepareServerFiles(config)).rejects.toThrow(
      /cannot read tls.cert or tls.key \(ENOENT\)/,
    );
  });
});
