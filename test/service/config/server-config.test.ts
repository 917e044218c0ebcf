/**
 * The server configuration file: defaults, YAML parsing, strictness, and error messages that name
 * the file and the path of every bad field (never echoing values).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isImppError } from '../../../src/errors.js';
import {
  DEFAULT_DOMAIN,
  loadServerConfig,
  localAccountsPath,
  parseServerConfig,
  parseServerConfigYaml,
} from '../../../src/service/config/server-config.js';
import { DEFAULT_LIMITS } from '../../../src/transport/limits.js';
import { DEFAULT_STORE_QUOTAS } from '../../../src/service/store/types.js';

const dir = mkdtempSync(join(tmpdir(), 'impp-serverconfig-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isImppError(e, 'ERR_CONFIG_INVALID')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected ERR_CONFIG_INVALID');
}

describe('server configuration', () => {
  it('no file: the embedded defaults, fully filled in', () => {
    const c = loadServerConfig(undefined, { IMPP_DATA_DIR: '/srv/impp' });
    expect(c.domain).toBe(DEFAULT_DOMAIN);
    expect(c.dataDir).toBe('/srv/impp');
    expect(c.listen.tls).toEqual({ enabled: true, host: '127.0.0.1', port: 5330 });
    expect(c.listen.websocket).toEqual({ enabled: true, host: '127.0.0.1', port: 5331 });
    expect(c.tls).toEqual({ source: 'local-ca', extraNames: [] });
    expect(c.limits).toEqual(DEFAULT_LIMITS);
    expect(c.quotas).toEqual(DEFAULT_STORE_QUOTAS);
    expect(c.log.level).toBe('info');
    expect(c.trust.domain).toBe(DEFAULT_DOMAIN);
    expect(c.trust.authentication.mechanisms).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    expect(c.source).toBeUndefined();
    expect(localAccountsPath(c)).toBe('/srv/impp/accounts.db');
  });

  it('a full file is read, with relative paths resolved against its folder', () => {
    const path = join(dir, 'full.yaml');
    writeFileSync(
      path,
      [
        'version: 1',
        'domain: Example.COM',
        'dataDir: data',
        'listen:',
        '  tls: { host: "::", port: 6330 }',
        '  websocket: { enabled: false }',
        'tls: { cert: certs/server.crt, key: /etc/impp/server.key }',
        'limits: { maxFrameBytes: 131072, frameRate: 50 }',
        'quotas: { queueMaxCount: 500 }',
        'log: { level: debug }',
        'trust:',
        '  authentication:',
        '    mechanisms: [SCRAM-SHA-256-PLUS]',
        '    providers: [{ type: local, id: local, store: accounts/users.db }]',
        '  policy: { scram: { iterations: 4096 } }',
      ].join('\n'),
    );
    const c = loadServerConfig(path, { IMPP_DATA_DIR: '/ignored' });
    expect(c.domain).toBe('example.com');
    expect(c.dataDir).toBe(join(dir, 'data'));
    expect(c.listen.tls).toEqual({ enabled: true, host: '::', port: 6330 });
    expect(c.listen.websocket.enabled).toBe(false);
    expect(c.tls).toEqual({
      source: 'files',
      certPath: join(dir, 'certs/server.crt'),
      keyPath: '/etc/impp/server.key',
    });
    expect(c.limits.maxFrameBytes).toBe(131072);
    expect(c.limits.frameRate).toBe(50);
    expect(c.limits.idleTimeoutMs).toBe(DEFAULT_LIMITS.idleTimeoutMs);
    expect(c.quotas.queueMaxCount).toBe(500);
    expect(c.quotas.queueMaxBytes).toBe(DEFAULT_STORE_QUOTAS.queueMaxBytes);
    expect(c.log.level).toBe('debug');
    expect(c.trust.domain).toBe('example.com');
    expect(c.trust.policy.scram.iterations).toBe(4096);
    expect(c.source).toBe(path);
    expect(localAccountsPath(c)).toBe(join(dir, 'accounts/users.db'));
  });

  it('errors name the file and the path of every bad field, all at once', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(
      path,
      'version: 1\ndomain: example.com\nlisten: { tls: { port: 70000 } }\nlog: { level: loud }\n',
    );
    const message = errorOf(() => loadServerConfig(path));
    expect(message).toContain(`configuration file ${path} is invalid (2 problems)`);
    expect(message).toContain('- listen.tls.port: must be 0..65535');
    expect(message).toMatch(/- log\.level: must be one of fatal, error/);
  });

  it('unknown keys are refused, at every level, including the trust section', () => {
    const m = errorOf(() =>
      parseServerConfig({
        version: 1,
        domain: 'example.com',
        listn: {},
        listen: { tls: { prot: 1 } },
        trust: {
          authentication: {
            mechanisms: ['SCRAM-SHA-256'],
            providers: [{ type: 'local', id: 'l' }],
          },
          polcy: {},
        },
      }),
    );
    expect(m).toContain('- listn: unknown field');
    expect(m).toContain('- listen.tls.prot: unknown field');
    expect(m).toContain('- trust.polcy: unknown field');
  });

  it('the trust section is validated by the domain trust rules, reported under trust.', () => {
    const m = errorOf(() =>
      parseServerConfig({
        version: 1,
        domain: 'example.com',
        trust: {
          domain: 'other.com',
          authentication: { mechanisms: ['PLAIN'], providers: [{ type: 'local', id: 'local' }] },
        },
      }),
    );
    expect(m).toContain('- trust.domain: is set at the top level');
    expect(m).toMatch(/- trust\.authentication\.mechanisms\[0\]: PLAIN has no provider/);
  });

  it('missing, mistyped and inconsistent fields', () => {
    expect(errorOf(() => parseServerConfig({ domain: 'example.com' }))).toContain(
      '- version: is required',
    );
    expect(errorOf(() => parseServerConfig({ version: 2, domain: 'example.com' }))).toContain(
      '- version: must be 1',
    );
    expect(errorOf(() => parseServerConfig({ version: 1 }))).toContain('- domain: is required');
    expect(errorOf(() => parseServerConfig({ version: 1, domain: 'bad..domain' }))).toMatch(
      /- domain: /,
    );
    expect(
      errorOf(() =>
        parseServerConfig({ version: 1, domain: 'example.com', tls: { cert: 'a.crt' } }),
      ),
    ).toContain('- tls: must have both "cert" and "key"');
    expect(
      errorOf(() =>
        parseServerConfig({
          version: 1,
          domain: 'example.com',
          limits: { pingIntervalMs: 200_000, maxFrameBytes: -1 },
        }),
      ),
    ).toContain('- limits.maxFrameBytes: must be a positive integer');
    expect(
      errorOf(() =>
        parseServerConfig({
          version: 1,
          domain: 'example.com',
          limits: { pingIntervalMs: 200_000 },
        }),
      ),
    ).toContain('limits.pingIntervalMs must be below limits.idleTimeoutMs');
    expect(
      errorOf(() =>
        parseServerConfig({
          version: 1,
          domain: 'example.com',
          listen: { tls: { port: 7000 }, websocket: { port: 7000 } },
        }),
      ),
    ).toContain('- listen.websocket.port: is the same as listen.tls.port');
    expect(
      errorOf(() =>
        parseServerConfig({
          version: 1,
          domain: 'example.com',
          listen: { tls: { enabled: false }, websocket: { enabled: false } },
        }),
      ),
    ).toContain('- listen: must leave at least one listener enabled');
    expect(
      errorOf(() =>
        parseServerConfig({ version: 1, domain: 'example.com', trust: { secretKey: 'hunter2' } }),
      ),
    ).not.toContain('hunter2');
  });

  it('hostile files: an alias bomb and an oversized file are refused', () => {
    const bomb = ['version: 1', 'domain: a.test', 'a: &a [x, x, x, x, x, x, x, x, x, x]']
      .concat(
        Array.from({ length: 12 }, (_, i) => {
          const prev = i === 0 ? 'a' : `b${i - 1}`;
          return `b${i}: &b${i} [*${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}]`;
        }),
      )
      .join('\n');
    expect(errorOf(() => parseServerConfigYaml(bomb))).toBe(
      'server configuration expands YAML aliases too often (at most 100)',
    );
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `version: 1\ndomain: a.test\n#${'x'.repeat(1 << 20)}\n`);
    expect(errorOf(() => loadServerConfig(big))).toContain('larger than 1048576 bytes');
  });

  it('YAML problems: syntax with line and column, duplicate keys, unreadable file', () => {
    const m = errorOf(() =>
      parseServerConfigYaml('version: 1\ndomain: [example.com\n', { source: '/x/impp.yaml' }),
    );
    expect(m).toMatch(
      /configuration file \/x\/impp\.yaml is not valid YAML at line \d+, column \d+/,
    );
    expect(errorOf(() => parseServerConfigYaml('version: 1\nversion: 1\ndomain: a.com\n'))).toMatch(
      /DUPLICATE_KEY/,
    );
    expect(errorOf(() => loadServerConfig(join(dir, 'missing.yaml')))).toMatch(
      /cannot read configuration file .*missing\.yaml \(ENOENT\)/,
    );
    expect(errorOf(() => parseServerConfigYaml('- 1\n- 2\n'))).toContain(
      '(top level): Invalid input',
    );
  });
});
