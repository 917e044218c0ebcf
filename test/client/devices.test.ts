/**
 * Several devices per user, end to end over real TLS: every device on the recipient's signed
 * device list and the sender's own other listed devices get a copy; each device has its own queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  DeviceListEvent,
  ReceivedMessage,
  TrustWarningEvent,
} from '../../src/client/client.js';
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
  it('a registered device that is not on the signed list gets nothing until it is signed on', async () => {
    const laptop = env.client('alice', 'laptop');
    const phone = env.client('alice', 'phone');
    const bob = env.client('bob', 'phone');
    await laptop.connect();
    await phone.connect(); // a second device registers without a list of its own
    await bob.connect();
    const warnings: TrustWarningEvent[] = [];
    bob.on('trustWarning', (w) => warnings.push(w));
    const atLaptop = next<ReceivedMessage>(laptop, 'message');
    const ids = await bob.sendMessage('alice@example.org', 'to the listed device only');
    expect(ids).toHaveLength(1); // alice/phone is in the directory but not on the list
    expect((await atLaptop).text).toBe('to the listed device only');
    expect(warnings).toContainEqual({
      kind: 'unlisted-device',
      address: 'alice@example.org',
      device: 'alice@example.org/phone',
    });
    expect(
      await env.store.queue.pending('alice@example.org/phone', { after: 0, limit: 10 }),
    ).toEqual([]);
    // Once an existing device signs it onto the list, it is sealed for.
    await laptop.addDevice('phone');
    const atLaptop2 = next<ReceivedMessage>(laptop, 'message');
    const atPhone = next<ReceivedMessage>(phone, 'message');
    expect(await bob.sendMessage('alice@example.org', 'to both of your devices')).toHaveLength(2);
    expect((await atLaptop2).text).toBe('to both of your devices');
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
    // bob's state file holds the list verified in the last test (counter 2): no rollback.
    expect(await bob.deviceList('alice@example.org')).toMatchObject({
      counter: 2,
      devices: ['laptop', 'phone'],
      added: [],
    });
    const laptop = env.client('alice', 'laptop');
    await laptop.connect();
    const tablet = env.client('alice', 'tablet');
    await tablet.connect();
    const seen = next<DeviceListEvent>(bob, 'deviceList');
    expect(await laptop.addDevice('tablet')).toBe(3);
    expect(await bob.deviceList('alice@example.org')).toEqual({
      counter: 3,
      devices: ['laptop', 'phone', 'tablet'],
      added: ['tablet'],
      removed: [],
    });
    expect(await seen).toEqual({
      address: 'alice@example.org',
      counter: 3,
      firstSight: false,
      added: ['tablet'],
      removed: [],
      replaced: [],
    });
    const phone = env.client('alice', 'phone');
    await phone.connect();
    await expect(phone.addDevice('nonexistent')).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    // A registered device that is not on the list cannot sign the next list.
    const desk = env.client('alice', 'desk');
    await desk.connect();
    await expect(desk.addDevice('desk')).rejects.toMatchObject({ code: 'ERR_NOT_AUTHORIZED' });
  });

  it('each device is enrolled by the domain and logged', async () => {
    const devices = await env.store.devices.list('alice@example.org');
    expect(devices.map((d) => d.deviceId).sort()).toEqual(['desk', 'laptop', 'phone', 'tablet']);
    for (const d of devices) {
      const v = verifyEnrolmentStatement(d.enrolment, {
        domainKey: env.server.domainKey.publicKey,
      });
      expect(v.statement.channelBound).toBe(true);
      expect(v.statement.mechanism).toBe('SCRAM-SHA-256-PLUS');
    }
    expect(env.server.keyLog.size).toBe(5); // alice ×4, bob
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

  it('after a revocation nothing new is sealed for the device', async () => {
    const ALICE = 'alice@example.org';
    const laptop = env.client('alice', 'laptop');
    const tablet = env.client('alice', 'tablet');
    const bob = env.client('bob', 'phone');
    for (const c of [laptop, tablet, bob]) await c.connect();
    const lists: DeviceListEvent[] = [];
    bob.on('deviceList', (l) => lists.push(l));
    const queued = (): Map<string, number> => {
      const rows = env.store.db
        .prepare('SELECT device, COUNT(*) AS n FROM queue GROUP BY device')
        .all() as { device: string; n: number }[];
      return new Map(rows.map((r) => [r.device, r.n]));
    };
    const sequence = (): number =>
      (
        env.store.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'queue'").get() as {
          seq: number;
        }
      ).seq;
    // Before: laptop, phone and tablet are listed, and all three are sealed for.
    const atTablet = next<ReceivedMessage>(tablet, 'message');
    expect(await bob.sendMessage(ALICE, 'to all three')).toHaveLength(3);
    expect((await atTablet).text).toBe('to all three');

    const counter = await laptop.removeDevice('tablet');
    const before = sequence();
    const tabletBefore = queued().get(`${ALICE}/tablet`) ?? 0;
    expect(await bob.sendMessage(ALICE, 'not for the tablet')).toHaveLength(2);
    expect(lists).toContainEqual(
      expect.objectContaining({ address: ALICE, counter, removed: ['tablet'] }),
    );
    // alice's own copies leave it out too.
    expect(await laptop.sendMessage('bob@example.org', 'not to the tablet either')).toHaveLength(2);
    // Exactly the copies counted above were stored, none of them for the tablet.
    expect(sequence()).toBe(before + 4);
    expect(queued().get(`${ALICE}/tablet`) ?? 0).toBe(tabletBefore);
  });
});
