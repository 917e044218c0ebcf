/**
 * The authenticator `impp serve` builds from the configuration's trust section.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/auth/index.js';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseServerConfig } from '../../src/service/config/server-config.js';
import { authenticatorFromConfig } from '../../src/service/authenticator.js';

const dir = mkdtempSync(join(tmpdir(), 'impp-authcfg-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const tls = { secure: true, tlsVersion: 'TLSv1.3', tlsExporter: new Uint8Array(32).fill(9) };

describe('authenticatorFromConfig', () => {
  it('offers the configured local mechanisms in the configured order', async () => {
    const config = parseServerConfig({ version: 1, domain: 'example.org', dataDir: dir });
    const configured = await authenticatorFromConfig({
      trust: config.trust,
      accountsDbPath: join(dir, 'a.db'),
      domainKey: generateSigningKeyPair(),
      audit: new MemoryAuditSink(),
    });
    try {
      expect(configured.authenticator.offer(tls)).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    } finally {
      await configured.close();
    }
  });

  it('refuses a configuration whose mechanisms need a provider serve cannot run yet', async () => {
    const config = parseServerConfig({
      version: 1,
      domain: 'example.org',
      dataDir: dir,
      trust: {
        authentication: {
          mechanisms: ['SCRAM-SHA-256-PLUS', 'PLAIN'],
          providers: [
            { type: 'local', id: 'local' },
            {
              type: 'ldap',
              id: 'corp',
              url: 'ldaps://ldap.example.org',
              userSearch: { base: 'dc=example,dc=org', filter: '(uid={user})' },
            },
          ],
        },
      },
    });
    const error: unknown = await authenticatorFromConfig({
      trust: config.trust,
      accountsDbPath: join(dir, 'b.db'),
      domainKey: generateSigningKeyPair(),
      audit: new MemoryAuditSink(),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImppError(error, 'ERR_CONFIG_INVALID')).toBe(true);
    expect((error as Error).message).toContain('PLAIN needs a provider');
  });
});
