import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { LocalAccounts, localProvider } from '../../src/auth/providers/local.js';
import { SqliteLocalAccountRepository } from '../../src/auth/providers/local-store.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { scramServer } from '../../src/auth/scram/server.js';
import { DOMAIN, tlsChannel } from './helpers.js';
import { runProviderContract } from './provider-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'impp-local-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

runProviderContract('local (SQLite, SCRAM-SHA-256-PLUS)', async () => {
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(scramServer({ plus: true }));
  registry.registerMechanism(scramServer({ plus: false }));
  const repository = new SqliteLocalAccountRepository(join(dir, 'contract.db'));
  await registry.registerProvider(localProvider({ repository }));
  const accounts = new LocalAccounts(repository, DOMAIN);
  accounts.create('alice', 'alice-secret-1');
  accounts.create('dave', 'dave-secret-1');
  accounts.disable('dave');
  const exporter = randomBytes(32);
  const channel = (remoteAddress: string) => tlsChannel(exporter, remoteAddress);
  return {
    registry,
    domain: DOMAIN,
    mechanisms: [
      { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
      { mechanism: 'SCRAM-SHA-256', provider: 'local' },
    ],
    providerName: 'local',
    good: { mechanisms: scramClient({ username: 'alice', password: 'alice-secret-1' }), channel },
    wrongSecret: {
      mechanisms: scramClient({ username: 'alice', password: 'not-her-password' }),
      channel,
    },
    unknownUser: {
      mechanisms: scramClient({ username: 'nobody', password: 'alice-secret-1' }),
      channel,
    },
    disabledUser: {
      mechanisms: scramClient({ username: 'dave', password: 'dave-secret-1' }),
      channel,
    },
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets: ['alice-secret-1', 'not-her-password', 'dave-secret-1'],
    close: () => registry.close(),
  };
});

describe('local provider and its SQLite store', () => {
  it('stores verifiers only: the password bytes are nowhere in the database file', () => {
    const path = join(dir, 'nopassword.db');
    const repo = new SqliteLocalAccountRepository(path);
    new LocalAccounts(repo, DOMAIN).create('alice', 'UniquePasswordMarker42');
    repo.close();
    const files = ['', '-wal', '-shm'].map((s) => {
      try {
        return readFileSync(path + s);
      } catch {
        return Buffer.alloc(0);
      }
    });
    for (const f of files) expect(f.includes('UniquePasswordMarker42')).toBe(false);
  });

  it('password change uses a new salt; enable/disable/list/remove work and list has no keys', async () => {
    const repo = new SqliteLocalAccountRepository(':memory:');
    const accounts = new LocalAccounts(repo, DOMAIN, 5000);
    accounts.create('Bob', 'one', 'service');
    const before = repo.get('bob')!;
    expect(before.credential.iterations).toBe(5000);
    accounts.changePassword('bob', 'two');
    const after = repo.get('bob')!;
    expect(Buffer.from(after.credential.salt).equals(Buffer.from(before.credential.salt))).toBe(
      false,
    );
    accounts.disable('bob');
    expect(repo.get('bob')!.disabled).toBe(true);
    accounts.enable('bob');
    const listed = accounts.list();
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      username: 'bob',
      kind: 'service',
      disabled: false,
      iterations: 5000,
    });
    expect(JSON.stringify(listed)).not.toMatch(/credential|storedKey|serverKey|salt/);
    expect(() => {
      accounts.create('bob', 'x');
    }).toThrow(/already exists/);
    accounts.remove('bob');
    expect(() => {
      accounts.changePassword('bob', 'x');
    }).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }) as Error);
    const provider = await localProvider({ repository: repo })({ domain: DOMAIN, now: Date.now });
    expect(await provider.getScramCredential!('bob')).toEqual({
      status: 'unknown',
      iterationsHint: 4096,
    });
    expect(await provider.getScramCredential!('bob@other.example')).toMatchObject({
      status: 'unknown',
    });
    repo.close();
  });

  it('refuses iterations below 4096 and a store with a newer schema', () => {
    const repo = new SqliteLocalAccountRepository(':memory:');
    expect(() => new LocalAccounts(repo, DOMAIN, 4095)).toThrow();
    repo.close();
    const path = join(dir, 'future.db');
    new SqliteLocalAccountRepository(path).close();
    const db = new Database(path);
    db.prepare('UPDATE schema_version SET version = 99').run();
    db.close();
    try {
      new SqliteLocalAccountRepository(path);
      expect.unreachable();
    } catch (e) {
      expect(isImppError(e, 'ERR_STORAGE')).toBe(true);
    }
  });

  it('reopens an existing store (WAL) and keeps accounts', () => {
    const path = join(dir, 'reopen.db');
    const a = new SqliteLocalAccountRepository(path);
    new LocalAccounts(a, DOMAIN).create('carol', 'pw-carol');
    a.close();
    const b = new SqliteLocalAccountRepository(path);
    expect(b.get('carol')?.username).toBe('carol');
    b.close();
  });
});

describe('local accounts: unusable passwords', () => {
  it('an empty or SASLprep-prohibited password is an argument error', () => {
    const repo = new SqliteLocalAccountRepository(':memory:');
    const accounts = new LocalAccounts(repo, DOMAIN);
    for (const pw of ['', 'bad\u0007bell']) {
      expect(() => {
        accounts.create('erin', pw);
      }).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }) as Error);
    }
    expect(repo.list()).toEqual([]);
    repo.close();
  });
});
