/**
 * Several devices per user, end to end over real TLS: every device of the recipient and the
 * sender's own other devices get a copy; each device has its own queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedMessage } from '../../src/client/client.js';
import { verifyEnrolmentStatement } from '../../src/trust/enrolment.js';
import { type Env, next, startEnv } from '../service/harness.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env.close();
});

describe('several devices per user', () => {
  it('fans a message out to all recipient devices and the sender’s other devices', async () => {
    const laptop = env.client('alice', 'laptop');
    const phone = env.client('alice', 'phone');
    const bob = env.client('bob', 'phone');
    await laptop.connect();
    await phone.connect(); // a second device registers without a list of its own
    await bob.connect();
    const atLaptop = next<ReceivedMessage>(laptop, 'message');
    const atPhone = next<ReceivedMessage>(phone, 'message');
    const ids = await bob.sendMessage('alice@example.org', 'to both of your devices');
    expect(ids).toHaveLength(2);
    expect((await atLaptop).text).toBe('to both of your devices');
    expect((await atPhone).text).toBe('to both of your devices');
    const atBob = next<ReceivedMessage>(bob, 'message');
    const copy = next<ReceivedMessage>(phone, 'message');
    await laptop.sendMessage('bob@example.org', 'sent from the laptop');
    expect((await atBob).fromDevice).toBe('alice@example.org/laptop');
    const own = await copy;
    expect(own.text).toBe('sent from the laptop');
    expect(own.from).toBe('alice@example.org');
  });

  it('an existing device signs the new one onto the device list; contacts see it added', async () => {
    const bob = env.client('bob', 'phone');
    await bob.connect();
    expect(await bob.deviceList('alice@example.org')).toMatchObject({
      counter: 1,
      devices: ['laptop'],
    });
    const laptop = env.client('alice', 'laptop');
    await laptop.connect();
    expect(await laptop.addDevice('phone')).toBe(2);
    expect(await bob.deviceList('alice@example.org')).toEqual({
      counter: 2,
      devices: ['laptop', 'phone'],
      added: ['phone'],
      removed: [],
    });
    const phone = env.client('alice', 'phone');
    await phone.connect();
    await expect(phone.addDevice('nonexistent')).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    // A registered device that is not on the list cannot sign the next list.
    const tablet = env.client('alice', 'tablet');
    await tablet.connect();
    await expect(tablet.addDevice('tablet')).rejects.toMatchObject({ code: 'ERR_NOT_AUTHORIZED' });
  });

  it('each device is enrolled by the domain and logged', async () => {
    const devices = await env.store.devices.list('alice@example.org');
    expect(devices.map((d) => d.deviceId).sort()).toEqual(['laptop', 'phone', 'tablet']);
    for (const d of devices) {
      const v = verifyEnrolmentStatement(d.enrolment, {
        domainKey: env.server.domainKey.publicKey,
      });
      expect(v.statement.channelBound).toBe(true);
      expect(v.statement.mechanism).toBe('SCRAM-SHA-256-PLUS');
    }
    expect(env.server.keyLog.size).toBe(4); // alice ×3, bob
  });

  it('a device verifies that the domain logged its enrolment, and the log only grows', async () => {
    const domainKey = env.server.domainKey.publicKey;
    const before = env.server.keyLog.size;
    const carol = env.client('carol', 'desk', { domainKey });
    await carol.connect();
    expect(await carol.verifyEnrolment()).toEqual({ index: before, treeSize: before + 1 });
    const dave = env.client('dave', 'desk');
    await dave.connect(); // the log grows by one
    expect(await carol.verifyEnrolment()).toEqual({ index: before, treeSize: before + 2 });
    // Restarted, with the trusted head from its state file: still consistent.
    await carol.close();
    const again = env.client('carol', 'desk', { domainKey });
    await again.connect();
    expect(await again.verifyEnrolment()).toEqual({ index: before, treeSize: before + 2 });
  });

  it('refuses tree heads and statements under another domain key', async () => {
    const { generateSigningKeyPair } = await import('../../src/crypto/index.js');
    const wrong = env.client('carol', 'desk', { domainKey: generateSigningKeyPair().publicKey });
    await wrong.connect();
    await expect(wrong.verifyEnrolment()).rejects.toMatchObject({
      code: 'ERR_KEYLOG_PROOF_INVALID',
    });
  });

  it('a device tops up its one-time prekeys when they run low', async () => {
    const owner = env.client('dave', 'prekeys');
    await owner.connect();
    const device = 'dave@example.org/prekeys';
    expect(await env.store.prekeys.countOneTimePrekeys(device)).toBe(50);
    const asker = env.client('carol', 'desk');
    await asker.connect();
    for (let i = 0; i < 35; i++) await asker.rawRequest(35, { address: 'dave@example.org' });
    expect(await env.store.prekeys.countOneTimePrekeys(device)).toBe(15);
    await owner.close();
    const again = env.client('dave', 'prekeys');
    await again.connect();
    expect(await env.store.prekeys.countOneTimePrekeys(device)).toBe(65);
    // Fresh ids only: nothing uploaded twice (the server would have refused with ERR_CONFLICT).
  });

  it('a second connection for the same device replaces the first', async () => {
    const first = env.client('bob', 'phone');
    const closed = next<{ code: string | undefined }>(first, 'close');
    await first.connect();
    const second = env.client('bob', 'phone');
    await second.connect();
    expect((await closed).code).toBe('ERR_CONFLICT');
  });
});
