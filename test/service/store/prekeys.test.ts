/**
 * Prekeys: signed prekey replacement, one-time prekey upload (all or nothing, quota, duplicate
 * ids) and the central claim: a one-time prekey is handed out at most once, under many
 * concurrent takers in one process and across processes sharing the database file.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../../src/crypto/index.js';
import { isImppError, type ImppErrorCode } from '../../../src/errors.js';
import { openSqliteServiceStore } from '../../../src/service/store/index.js';
import { addDevice, freshStore, tempDir } from './helpers.js';

const dir = tempDir();
const child = join(import.meta.dirname, 'child.ts');

async function rejectsWith(promise: Promise<unknown>, code: ImppErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isImppError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

function keys(from: number, n: number): { keyId: number; publicKey: Uint8Array }[] {
  return Array.from({ length: n }, (_, i) => ({ keyId: from + i, publicKey: randomBytes(32) }));
}

describe('signed prekeys', () => {
  it('stores and replaces the signed prekey of a registered device only', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    expect(await store.prekeys.signedPrekey(bob)).toBeUndefined();
    const first = {
      keyId: 1,
      publicKey: randomBytes(32),
      signature: randomBytes(64),
      uploadedAt: 5,
    };
    await store.prekeys.putSignedPrekey(bob, first);
    expect(await store.prekeys.signedPrekey(bob)).toEqual(first);
    const second = {
      keyId: 2,
      publicKey: randomBytes(32),
      signature: randomBytes(64),
      uploadedAt: 9,
    };
    await store.prekeys.putSignedPrekey(bob, second);
    expect(await store.prekeys.signedPrekey(bob)).toEqual(second);
    await rejectsWith(store.prekeys.putSignedPrekey('eve@example.org/x', first), 'ERR_NOT_FOUND');
    await rejectsWith(
      store.prekeys.putSignedPrekey(bob, { ...first, signature: randomBytes(63) }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.prekeys.putSignedPrekey(bob, { ...first, keyId: 2 ** 32 }),
      'ERR_INVALID_ARGUMENT',
    );
    await store.close();
  });
});

describe('one-time prekeys', () => {
  it('uploads in batches, hands them out oldest first, each once, then none', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const batch1 = keys(1, 3);
    const batch2 = keys(10, 2);
    await store.prekeys.addOneTimePrekeys(bob, batch1);
    await store.prekeys.addOneTimePrekeys(bob, batch2);
    expect(await store.prekeys.countOneTimePrekeys(bob)).toBe(5);
    const taken = [];
    for (let i = 0; i < 5; i++) taken.push(await store.prekeys.takeOneTimePrekey(bob));
    expect(taken).toEqual([...batch1, ...batch2]);
    expect(await store.prekeys.takeOneTimePrekey(bob)).toBeUndefined();
    expect(await store.prekeys.countOneTimePrekeys(bob)).toBe(0);
    expect(await store.prekeys.takeOneTimePrekey('nobody@example.org/x')).toBeUndefined();
    await store.close();
  });

  it('refuses a batch with a known or repeated id, or over quota, storing none of it', async () => {
    const store = freshStore(dir, { quotas: { oneTimePrekeysMax: 10 } });
    const bob = await addDevice(store, 'bob', 'laptop');
    await store.prekeys.addOneTimePrekeys(bob, keys(1, 4));
    await rejectsWith(store.prekeys.addOneTimePrekeys(bob, keys(4, 2)), 'ERR_CONFLICT');
    await rejectsWith(
      store.prekeys.addOneTimePrekeys(bob, [...keys(20, 2), ...keys(20, 1)]),
      'ERR_CONFLICT',
    );
    await rejectsWith(store.prekeys.addOneTimePrekeys(bob, keys(30, 7)), 'ERR_QUOTA_EXCEEDED');
    expect(await store.prekeys.countOneTimePrekeys(bob)).toBe(4);
    await store.prekeys.addOneTimePrekeys(bob, keys(30, 6));
    expect(await store.prekeys.countOneTimePrekeys(bob)).toBe(10);
    await rejectsWith(store.prekeys.addOneTimePrekeys(bob, []), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(
      store.prekeys.addOneTimePrekeys(bob, [{ keyId: 99, publicKey: randomBytes(33) }]),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.prekeys.addOneTimePrekeys('eve@example.org/x', keys(1, 1)),
      'ERR_NOT_FOUND',
    );
    await store.close();
  });

  it('hands each key to exactly one of many concurrent takers (one process, two connections)', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    await store.prekeys.addOneTimePrekeys(bob, keys(1, 300));
    // A second connection to the same file takes concurrently with the first.
    const other = openSqliteServiceStore({ path: store.db.name });
    const takers = Array.from({ length: 500 }, (_, i) =>
      (i % 2 === 0 ? store : other).prekeys.takeOneTimePrekey(bob),
    );
    const got = (await Promise.all(takers)).filter((k) => k !== undefined).map((k) => k.keyId);
    expect(got).toHaveLength(300);
    expect(new Set(got).size).toBe(300);
    expect(await store.prekeys.countOneTimePrekeys(bob)).toBe(0);
    await other.close();
    await store.close();
  });

  it('hands each key to exactly one taker across three processes', async () => {
    const store = freshStore(dir);
    const bob = await addDevice(store, 'bob', 'laptop');
    const total = 450;
    await store.prekeys.addOneTimePrekeys(bob, keys(1, total));
    const path = store.db.name;
    await store.close();
    const procs = Array.from({ length: 3 }, () => {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, 'take', path, bob], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const state = { out: '', err: '' };
      proc.stdout.on('data', (d: Buffer) => (state.out += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (state.err += d.toString()));
      return { proc, state, exit: once(proc, 'exit') as Promise<[number | null]> };
    });
    // Wait until every child is ready, then start them together (bounded wait).
    for (let i = 0; i < 400 && !procs.every((p) => p.state.out.startsWith('ready')); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const p of procs) p.proc.stdin.end('go\n');
    const results: number[][] = [];
    for (const p of procs) {
      const [code] = await p.exit;
      expect(code, p.state.err).toBe(0);
      results.push(JSON.parse(p.state.out.slice('ready\n'.length)) as number[]);
    }
    // How the keys spread over the processes depends on SQLite's lock back-off (a waiting
    // writer sleeps and retries), so one process may get them all under load; the claim under
    // test is that no key is handed out twice and none is lost, whatever the interleaving.
    const all = results.flat();
    expect(all).toHaveLength(total);
    expect(new Set(all).size).toBe(total);
    const reopened = openSqliteServiceStore({ path });
    expect(await reopened.prekeys.countOneTimePrekeys(bob)).toBe(0);
    await reopened.close();
  });
});
