/**
 * Devices, signed device lists, presence and the audit trail on real SQLite files: every
 * operation, and the invariants the store keeps whatever the caller asks (no rollback of a
 * device list or of presence, no secrets in the audit trail).
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../../src/crypto/index.js';
import { isImppError, type ImppErrorCode } from '../../../src/errors.js';
import {
  addDevice,
  freshStore,
  sealed,
  sealedMessage,
  sealedPresence,
  tempDir,
} from './helpers.js';

const dir = tempDir();

async function rejectsWith(promise: Promise<unknown>, code: ImppErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isImppError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

describe('devices', () => {
  it('registers, gets, lists in order and revokes', async () => {
    const store = freshStore(dir);
    const key = randomBytes(32);
    const enrolment = randomBytes(300);
    await store.devices.register({
      address: 'alice@example.org',
      deviceId: 'phone',
      identityKey: key,
      enrolment,
      createdAt: 1000,
    });
    await addDevice(store, 'alice', 'laptop');
    await addDevice(store, 'bob', 'desk');
    const phone = await store.devices.get('alice@example.org', 'phone');
    expect(phone).toEqual({
      address: 'alice@example.org',
      deviceId: 'phone',
      identityKey: key,
      enrolment,
      createdAt: 1000,
      revoked: false,
      revokedAt: null,
    });
    expect((await store.devices.list('alice@example.org')).map((d) => d.deviceId)).toEqual([
      'laptop',
      'phone',
    ]);
    expect(await store.devices.revoke('alice@example.org', 'phone', 2000)).toBe(true);
    expect(await store.devices.revoke('alice@example.org', 'phone', 3000)).toBe(false);
    expect(await store.devices.revoke('alice@example.org', 'nothing', 3000)).toBe(false);
    expect((await store.devices.list('alice@example.org')).map((d) => d.deviceId)).toEqual([
      'laptop',
    ]);
    const all = await store.devices.list('alice@example.org', { includeRevoked: true });
    expect(all.map((d) => [d.deviceId, d.revoked, d.revokedAt])).toEqual([
      ['laptop', false, null],
      ['phone', true, 2000],
    ]);
    expect(await store.devices.get('carol@example.org', 'x')).toBeUndefined();
    await store.close();
  });

  it('never reuses a device id, even after revocation', async () => {
    const store = freshStore(dir);
    await addDevice(store, 'alice', 'phone');
    await rejectsWith(addDevice(store, 'alice', 'phone'), 'ERR_CONFLICT');
    await store.devices.revoke('alice@example.org', 'phone', 1);
    await rejectsWith(addDevice(store, 'alice', 'phone'), 'ERR_CONFLICT');
    await store.close();
  });

  it('refuses malformed input before touching the database', async () => {
    const store = freshStore(dir);
    const base = {
      address: 'alice@example.org',
      deviceId: 'phone',
      identityKey: randomBytes(32),
      enrolment: randomBytes(10),
      createdAt: 1,
    };
    for (const bad of [
      { ...base, address: 'Alice@Example.org' },
      { ...base, address: 'alice@example.org/phone' },
      { ...base, address: 'not an address' },
      { ...base, deviceId: 'bad id' },
      { ...base, deviceId: '' },
      { ...base, identityKey: randomBytes(31) },
      { ...base, enrolment: new Uint8Array(0) },
      { ...base, enrolment: new Uint8Array(64 * 1024 + 1) },
      { ...base, createdAt: -1 },
      { ...base, createdAt: 1.5 },
    ]) {
      await rejectsWith(store.devices.register(bad), 'ERR_INVALID_ARGUMENT');
    }
    expect(await store.devices.list('alice@example.org', { includeRevoked: true })).toEqual([]);
    await store.close();
  });

  it('revoking a device deletes its prekeys and pending messages and stops new ones', async () => {
    const store = freshStore(dir);
    const device = await addDevice(store, 'bob', 'laptop');
    await store.prekeys.putSignedPrekey(device, {
      keyId: 1,
      publicKey: randomBytes(32),
      signature: randomBytes(64),
      uploadedAt: 1,
    });
    await store.prekeys.addOneTimePrekeys(device, [{ keyId: 1, publicKey: randomBytes(32) }]);
    const queued = randomBytes(16);
    await store.queue.enqueue({
      id: queued,
      recipientDevice: device,
      kind: 'message',
      bytes: sealedMessage(device, queued),
      receivedAt: 1,
    });
    await store.devices.revoke('bob@example.org', 'laptop', 5);
    expect(await store.prekeys.signedPrekey(device)).toBeUndefined();
    expect(await store.prekeys.countOneTimePrekeys(device)).toBe(0);
    expect(await store.queue.pending(device)).toEqual([]);
    expect(await store.queue.usage(device)).toEqual({ count: 0, bytes: 0 });
    await rejectsWith(
      store.queue.enqueue({
        id: queued,
        recipientDevice: device,
        kind: 'message',
        bytes: sealedMessage(device, queued),
        receivedAt: 1,
      }),
      'ERR_NOT_FOUND',
    );
    await rejectsWith(
      store.prekeys.addOneTimePrekeys(device, [{ keyId: 2, publicKey: randomBytes(32) }]),
      'ERR_NOT_FOUND',
    );
    await store.close();
  });
});

describe('signed device lists', () => {
  it('keeps the latest list and refuses an older or equal counter', async () => {
    const store = freshStore(dir);
    const address = 'alice@example.org';
    expect(await store.deviceLists.latest(address)).toBeUndefined();
    const v1 = randomBytes(120);
    const v3 = randomBytes(150);
    expect(await store.deviceLists.put({ address, counter: 1, bytes: v1, storedAt: 10 })).toBe(
      true,
    );
    expect(await store.deviceLists.put({ address, counter: 3, bytes: v3, storedAt: 20 })).toBe(
      true,
    );
    // A re-delivery of the same list is harmless.
    expect(await store.deviceLists.put({ address, counter: 3, bytes: v3, storedAt: 30 })).toBe(
      false,
    );
    // Rollback to an older list, or another list under the same counter: refused.
    await rejectsWith(
      store.deviceLists.put({ address, counter: 2, bytes: randomBytes(100), storedAt: 40 }),
      'ERR_CONFLICT',
    );
    await rejectsWith(
      store.deviceLists.put({ address, counter: 1, bytes: v1, storedAt: 40 }),
      'ERR_CONFLICT',
    );
    await rejectsWith(
      store.deviceLists.put({ address, counter: 3, bytes: randomBytes(150), storedAt: 40 }),
      'ERR_CONFLICT',
    );
    expect(await store.deviceLists.latest(address)).toEqual({
      address,
      counter: 3,
      bytes: v3,
      storedAt: 20,
    });
    await store.close();
  });

  it('keeps counters monotonic under concurrent puts in any order', async () => {
    const store = freshStore(dir);
    const address = 'bob@example.org';
    const lists = Array.from({ length: 20 }, (_, i) => ({
      address,
      counter: i + 1,
      bytes: randomBytes(50),
      storedAt: i,
    }));
    const shuffled = [...lists].sort(() => Math.random() - 0.5);
    await Promise.allSettled(shuffled.map((l) => store.deviceLists.put(l)));
    expect((await store.deviceLists.latest(address))?.counter).toBe(20);
    expect((await store.deviceLists.latest(address))?.bytes).toEqual(lists[19]!.bytes);
    await store.close();
  });
});

describe('presence', () => {
  it('replaces only with a higher version and refuses rollback', async () => {
    const store = freshStore(dir);
    const presentity = 'alice@example.org';
    expect(await store.presence.latest(presentity)).toBeUndefined();
    const v5 = sealedPresence(presentity, 5, 300);
    expect(await store.presence.put({ presentity, version: 5, bytes: v5, receivedAt: 1 })).toBe(
      true,
    );
    await rejectsWith(
      store.presence.put({
        presentity,
        version: 4,
        bytes: sealedPresence(presentity, 4),
        receivedAt: 2,
      }),
      'ERR_SEAL_ROLLBACK',
    );
    await rejectsWith(
      store.presence.put({
        presentity,
        version: 5,
        bytes: sealedPresence(presentity, 5),
        receivedAt: 2,
      }),
      'ERR_SEAL_ROLLBACK',
    );
    expect(await store.presence.put({ presentity, version: 5, bytes: v5, receivedAt: 3 })).toBe(
      false,
    );
    expect(await store.presence.latest(presentity)).toEqual({
      presentity,
      version: 5,
      bytes: v5,
      receivedAt: 1,
    });
    const v9 = sealedPresence(presentity, 9, 200);
    expect(await store.presence.put({ presentity, version: 9, bytes: v9, receivedAt: 4 })).toBe(
      true,
    );
    expect((await store.presence.latest(presentity))?.bytes).toEqual(v9);
    await rejectsWith(
      store.presence.put({
        presentity,
        version: 6,
        bytes: sealedPresence(presentity, 6),
        receivedAt: 2,
      }),
      'ERR_SEAL_ROLLBACK',
    );
    await rejectsWith(
      store.presence.put({ presentity, version: 10, bytes: new Uint8Array(0), receivedAt: 2 }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.presence.put({ presentity, version: 10, bytes: sealed(256 * 1024 + 1), receivedAt: 2 }),
      'ERR_INVALID_ARGUMENT',
    );
    await store.close();
  });

  it('refuses plaintext and updates whose header disagrees with the fields given', async () => {
    const store = freshStore(dir);
    const presentity = 'dave@example.org';
    const note = new TextEncoder().encode('<presence><note>at the dentist</note></presence>');
    await rejectsWith(
      store.presence.put({ presentity, version: 1, bytes: note, receivedAt: 1 }),
      'ERR_SEAL_MALFORMED',
    );
    // Filed under a higher version than its header says: would defeat the rollback check.
    await rejectsWith(
      store.presence.put({
        presentity,
        version: 7,
        bytes: sealedPresence(presentity, 2),
        receivedAt: 1,
      }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.presence.put({
        presentity,
        version: 1,
        bytes: sealedPresence('erin@example.org', 1),
        receivedAt: 1,
      }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.presence.put({
        presentity,
        version: 1,
        bytes: sealedMessage('dave@example.org/phone', randomBytes(16)),
        receivedAt: 1,
      }),
      'ERR_INVALID_ARGUMENT',
    );
    expect(await store.presence.latest(presentity)).toBeUndefined();
    await store.close();
  });

  it('ends at the highest version whatever order concurrent updates arrive in', async () => {
    const store = freshStore(dir);
    const presentity = 'carol@example.org';
    const updates = Array.from({ length: 30 }, (_, i) => ({
      presentity,
      version: i + 1,
      bytes: sealedPresence(presentity, i + 1, 150),
      receivedAt: i,
    }));
    const results = await Promise.allSettled(
      [...updates].reverse().map((u) => store.presence.put(u)),
    );
    // Highest first: every later (lower) one is a rollback.
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await store.presence.latest(presentity))?.version).toBe(30);
    await store.close();
  });
});

describe('audit trail', () => {
  it('appends and lists events in order, filtered by kind and principal', async () => {
    const store = freshStore(dir);
    await store.audit.append({
      at: 1,
      kind: 'device.register',
      principal: 'alice@example.org',
      source: '192.0.2.1',
      outcome: 'success',
      details: { deviceId: 'phone', channelBound: true, n: 3, note: null },
    });
    await store.audit.append({
      at: 2,
      kind: 'subscription.approve',
      principal: 'bob@example.org',
      source: null,
      outcome: 'refused',
      details: {},
    });
    await store.audit.append({
      at: 3,
      kind: 'device.register',
      principal: null,
      source: 'cli',
      outcome: 'failure',
      details: { reason: 'ERR_CONFLICT' },
    });
    const all = await store.audit.list();
    expect(all.map((e) => [e.seq, e.kind, e.outcome])).toEqual([
      [1, 'device.register', 'success'],
      [2, 'subscription.approve', 'refused'],
      [3, 'device.register', 'failure'],
    ]);
    expect(all[0]?.details).toEqual({ deviceId: 'phone', channelBound: true, n: 3, note: null });
    expect((await store.audit.list({ kind: 'device.register' })).map((e) => e.at)).toEqual([1, 3]);
    expect((await store.audit.list({ principal: 'bob@example.org' })).map((e) => e.at)).toEqual([
      2,
    ]);
    expect((await store.audit.list({ after: 1, limit: 1 })).map((e) => e.at)).toEqual([2]);
    await store.close();
  });

  it('refuses details that name secrets or are not short scalars', async () => {
    const store = freshStore(dir);
    const base = {
      at: 1,
      kind: 'auth.failure',
      principal: 'alice@example.org',
      source: null,
      outcome: 'failure' as const,
    };
    for (const details of [
      { password: 'hunter2' },
      { sessionKey: 'x' },
      { clientProof: 'x' },
      { token: 'x' },
      { nonce: 'x' },
      { payload: 'x' },
      { body: 'x' },
      { big: 'x'.repeat(513) },
      { nested: { a: 1 } },
      { list: [1, 2] },
      { bytes: new Uint8Array(4) },
      { inf: Number.POSITIVE_INFINITY },
      { 'bad key': 1 },
    ]) {
      await rejectsWith(
        store.audit.append({ ...base, details: details as never }),
        'ERR_INVALID_ARGUMENT',
      );
    }
    await rejectsWith(
      store.audit.append({ ...base, kind: 'Bad Kind', details: {} }),
      'ERR_INVALID_ARGUMENT',
    );
    expect(await store.audit.list()).toEqual([]);
    await store.close();
  });
});
