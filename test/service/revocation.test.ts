/**
 * T21 session-survives-revocation: a password change, a disabled account (also when another
 * process writes the accounts file, as `impp user passwd|disable` does) and a revoked device end
 * the live sessions they concern, with a clear CLOSE reason, and the old credential or the revoked
 * device cannot come back. Real TLS, real SQLite files, a real second process.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalAccounts, SqliteLocalAccountRepository } from '../../src/auth/index.js';
import type { ImppClient } from '../../src/client/client.js';
import { isImppError } from '../../src/errors.js';
import { ACCOUNT_RECHECK_MS } from '../../src/service/server.js';
import { DOMAIN, type Env, next, quiet, startEnv } from './harness.js';

const NEW_PASSWORD = 'a brand new passphrase';

/** Resolves with the close code and the time it took from `since`. */
function closed(client: ImppClient, since: () => number): Promise<{ code?: string; ms: number }> {
  return next<{ code?: string }>(client, 'close', 10_000).then((e) => ({
    ...e,
    ms: Date.now() - since(),
  }));
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isImppError(e) ? e.code : String(e);
  }
}

describe('sessions end when the account changes (T21)', () => {
  let env: Env;
  let dir: string;
  let accountsFile: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'impp-revocation-'));
    accountsFile = join(dir, 'accounts.db');
    env = await startEnv({ accountsFile });
  });
  afterEach(async () => {
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a password change through another connection to the accounts file ends every session of the user, within the poll bound', async () => {
    const laptop = env.client('alice', 'laptop');
    const phone = env.client('alice', 'phone');
    const bob = env.client('bob', 'desk');
    for (const c of [laptop, phone, bob]) await c.connect();
    let changedAt = 0;
    const ends = [closed(laptop, () => changedAt), closed(phone, () => changedAt)];
    // Another connection to the same file, as another process (impp user passwd) opens it.
    const other = new SqliteLocalAccountRepository(accountsFile);
    changedAt = Date.now();
    new LocalAccounts(other, DOMAIN, 4096).changePassword('alice', NEW_PASSWORD);
    other.close();
    const [a, b] = await Promise.all(ends);
    expect(a?.code).toBe('ERR_NOT_AUTHORIZED');
    expect(b?.code).toBe('ERR_NOT_AUTHORIZED');
    // The bound: one poll interval plus the lookup (measured figures go to the report).
    expect(Math.max(a?.ms ?? Infinity, b?.ms ?? Infinity)).toBeLessThan(ACCOUNT_RECHECK_MS + 1000);
    // Bob's session carries on.
    expect(await bob.subscribe('alice@example.org')).toBe('pending');
    // The old password no longer opens a session; the new one does.
    expect(await refusal(env.client('alice', 'laptop').connect())).toBe('ERR_AUTH_FAILED');
    const again = env.client('alice', 'laptop', { password: NEW_PASSWORD });
    await again.connect();
    await quiet(ACCOUNT_RECHECK_MS + 300);
    // A session that authenticated after the change is not ended by it.
    expect(await again.subscribe('bob@example.org')).toBe('pending');
  });

  it('disabling the account in another process ends its sessions; it cannot reconnect', async () => {
    const alice = env.client('alice', 'laptop');
    await alice.connect();
    let changedAt = 0;
    const end = closed(alice, () => changedAt);
    changedAt = Date.now();
    // A real second process writes the accounts file, as `impp user disable` does.
    const script = [
      `import { SqliteLocalAccountRepository } from ${JSON.stringify(resolve('src/auth/providers/local-store.ts'))};`,
      `const r = new SqliteLocalAccountRepository(${JSON.stringify(accountsFile)});`,
      `if (!r.setDisabled('alice', true, Date.now())) process.exit(3);`,
      'r.close();',
    ].join('\n');
    await new Promise<void>((ok, fail) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { timeout: 15_000 },
        (error) => {
          if (error === null) ok();
          else fail(new Error(error.message));
        },
      );
    });
    const { code } = await end;
    expect(code).toBe('ERR_NOT_AUTHORIZED');
    expect(await refusal(env.client('alice', 'phone').connect())).toBe('ERR_AUTH_FAILED');
  });

  it('with endSessionsOnRevocation off, the session outlives the password change (the check can fail)', async () => {
    await env.close();
    env = await startEnv({
      accountsFile: join(dir, 'weak.db'),
      accountRecheckMs: 100,
      defences: { endSessionsOnRevocation: false },
    });
    const alice = env.client('alice', 'laptop');
    await alice.connect();
    env.accounts.changePassword('alice', NEW_PASSWORD);
    await quiet(600);
    expect(await alice.subscribe('bob@example.org')).toBe('pending');
  });
});

describe('a revoked device (T21, T42)', () => {
  let env: Env;
  beforeEach(async () => {
    env = await startEnv({ accountRecheckMs: 100 });
  });
  afterEach(async () => {
    await env.close();
  });

  async function twoDevices(): Promise<{ laptop: ImppClient; phone: ImppClient }> {
    const laptop = env.client('alice', 'laptop');
    await laptop.connect();
    const phone = env.client('alice', 'phone');
    await phone.connect();
    await laptop.addDevice('phone');
    return { laptop, phone };
  }

  it('is closed at once when another device drops it from the list, cannot bind again, and gets nothing more', async () => {
    const { laptop, phone } = await twoDevices();
    const end = next<{ code?: string }>(phone, 'close');
    expect(await laptop.removeDevice('phone')).toBe(3);
    expect((await end).code).toBe('ERR_NOT_AUTHORIZED');
    const devices = await env.store.devices.list('alice@example.org', { includeRevoked: true });
    expect(devices.find((d) => d.deviceId === 'phone')?.revoked).toBe(true);
    // The same device (same key, same state file) cannot come back.
    expect(await refusal(env.client('alice', 'phone').connect())).toBe('ERR_NOT_AUTHORIZED');
    // Nothing is queued for it any more.
    const bob = env.client('bob', 'desk');
    await bob.connect();
    await bob.sendMessage('alice@example.org', 'after the revocation');
    expect(
      await env.store.queue.pending('alice@example.org/phone', { after: 0, limit: 10 }),
    ).toEqual([]);
  });

  it('with revokedDeviceRouting off, the dropped device binds again (the check can fail)', async () => {
    await env.close();
    env = await startEnv({ defences: { revokedDeviceRouting: false } });
    const { laptop } = await twoDevices();
    await laptop.removeDevice('phone');
    await quiet(100);
    await env.client('alice', 'phone').connect();
  });
});
