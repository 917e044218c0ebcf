/**
 * The client against a malicious server (docs/security-model.md T07 key substitution, T08 ghost
 * device or watcher): the server here is real, and the tests make it lie by writing its SQLite
 * store directly, which is what a compromised server can do. The client must seal only for
 * devices on the contact's verified signed device list, refuse bundles and directory keys that
 * contradict the list, refuse rolled-back lists and presence, and keep that protection across a
 * restart (the state file).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  DeviceListEvent,
  ImppClient,
  KeyChangeEvent,
  ReceivedMessage,
  ReceivedPresence,
  TrustWarningEvent,
} from '../../src/client/client.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeState, FileStateStore } from '../../src/client/state.js';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { openMessage, SealDevice } from '../../src/seal/index.js';
import { parseAddress } from '../../src/trust/address.js';
import { createDeviceList } from '../../src/trust/device-list.js';
import { issueEnrolmentStatement } from '../../src/trust/enrolment.js';
import { type Env, next, quiet, startEnv } from '../service/harness.js';

let env: Env;
let alice: ImppClient;
let bob: ImppClient;
let carol: ImppClient;
let warnings: TrustWarningEvent[] = [];

const ALICE = 'alice@example.org';

beforeAll(async () => {
  env = await startEnv();
  alice = env.client('alice', 'laptop');
  bob = env.client('bob', 'phone');
  carol = env.client('carol', 'desk');
  for (const c of [alice, bob, carol]) await c.connect();
  bob.on('trustWarning', (w) => warnings.push(w));
  // Both sides verify each other's list once (alice her own too): what later lists must extend.
  const got = next<ReceivedMessage>(bob, 'message');
  await alice.sendMessage('bob@example.org', 'hello bob');
  await got;
  await bob.deviceList(ALICE);
});
afterAll(async () => {
  await env.close();
});

/** The highest queue sequence number ever used: unchanged means nothing was enqueued. */
function queued(): number {
  const row = env.store.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'queue'").get() as
    { seq: number } | undefined;
  return row?.seq ?? 0;
}

async function storedList(address: string): Promise<{ counter: number; bytes: Uint8Array }> {
  const l = await env.store.deviceLists.latest(address);
  if (l === undefined) throw new Error('no list');
  return { counter: l.counter, bytes: l.bytes };
}

/** What a compromised server does: serve another device list than the one its owner signed. */
function serveList(address: string, list: { counter: number; bytes: Uint8Array }): void {
  env.store.db
    .prepare('UPDATE device_lists SET counter = ?, bytes = ? WHERE address = ?')
    .run(list.counter, Buffer.from(list.bytes), address);
}

function setDirectoryKey(device: string, key: Uint8Array): void {
  env.store.db
    .prepare('UPDATE devices SET identity_key = ? WHERE device = ?')
    .run(Buffer.from(key), device);
}

describe('ghost devices (T08)', () => {
  it('a device in the directory but not on the signed list gets nothing sealed', async () => {
    warnings = [];
    const ghost = env.client('alice', 'ghost'); // registered, never signed onto the list
    await ghost.connect();
    const atLaptop = next<ReceivedMessage>(alice, 'message');
    const ids = await bob.sendMessage(ALICE, 'for alice’s real device');
    expect(ids).toHaveLength(1);
    expect((await atLaptop).text).toBe('for alice’s real device');
    expect(warnings).toContainEqual({
      kind: 'unlisted-device',
      address: ALICE,
      device: `${ALICE}/ghost`,
    });
    expect((await env.store.queue.usage(`${ALICE}/ghost`)).count).toBe(0);
    // What it sends is delivered, but flagged: its owner may have signed a list bob lacks.
    const got = next<ReceivedMessage>(bob, 'message');
    await ghost.sendMessage('bob@example.org', 'hi from a device you have not seen listed');
    expect((await got).fromDevice).toBe(`${ALICE}/ghost`);
    expect(warnings).toContainEqual({
      kind: 'unlisted-sender',
      address: ALICE,
      device: `${ALICE}/ghost`,
    });
    await ghost.close();
  });

  it('a list signed by a device that was not on the previous list is refused; nothing is sealed', async () => {
    warnings = [];
    const genuine = await storedList(ALICE);
    const spy = generateSigningKeyPair();
    const forged = createDeviceList({
      address: parseAddress(ALICE),
      counter: 99,
      devices: [
        { deviceId: 'laptop', identityKey: alice.identityKey },
        { deviceId: 'spy', identityKey: spy.publicKey },
      ],
      signer: { deviceId: 'spy', secretKey: spy.secretKey },
    });
    serveList(ALICE, forged);
    try {
      const before = queued();
      await expect(bob.sendMessage(ALICE, 'must not reach the spy')).rejects.toMatchObject({
        code: 'ERR_DEVICE_LIST_INVALID',
      });
      expect(warnings).toContainEqual({ kind: 'device-list-rejected', address: ALICE });
      expect(queued()).toBe(before);
      // alice's own device will not sign on top of it either (no laundering of the spy).
      await expect(alice.addDevice('ghost')).rejects.toMatchObject({
        code: 'ERR_DEVICE_LIST_INVALID',
      });
    } finally {
      serveList(ALICE, genuine);
    }
    expect(await bob.sendMessage(ALICE, 'back to normal')).toHaveLength(1);
  });

  it('a watcher the server approved on its own never receives the presence key', async () => {
    const carolSaw: ReceivedPresence[] = [];
    carol.on('presence', (p) => carolSaw.push(p));
    expect(await carol.subscribe(ALICE)).toBe('pending');
    env.store.db
      .prepare("UPDATE subscriptions SET state = 'approved' WHERE presentity = ? AND watcher = ?")
      .run(ALICE, 'carol@example.org');
    await alice.publishPresence('open', 'only for those I approved');
    await quiet(300);
    expect(carolSaw).toEqual([]);
    expect((await env.store.queue.usage('carol@example.org/desk')).count).toBe(0);
  });
});

describe('key substitution (T07)', () => {
  it('a bundle whose identity key is not the listed one is refused; nothing is sealed', async () => {
    warnings = [];
    const dave = env.client('dave', 'tablet');
    await dave.connect(); // bob has no session with dave yet: a bundle will be fetched
    const device = 'dave@example.org/tablet';
    const substitute = generateSigningKeyPair().publicKey;
    setDirectoryKey(device, substitute);
    try {
      const ids = await bob.sendMessage('dave@example.org', 'not for an impostor');
      expect(ids).toEqual([]);
      expect(warnings).toContainEqual({
        kind: 'key-mismatch',
        address: 'dave@example.org',
        device,
      });
      expect((await env.store.queue.usage(device)).count).toBe(0);
    } finally {
      setDirectoryKey(device, dave.identityKey);
    }
    const got = next<ReceivedMessage>(dave, 'message');
    expect(await bob.sendMessage('dave@example.org', 'for the real dave')).toHaveLength(1);
    expect((await got).text).toBe('for the real dave');
  });
});

describe('key changes (T07)', () => {
  it('a changed key raises a key-changed event', async () => {
    // Its own server: the test re-keys alice's phone, which the tests below must not see.
    const own = await startEnv();
    try {
      const laptop = own.client('alice', 'laptop');
      const phone = own.client('alice', 'phone');
      const sender = own.client('bob', 'phone');
      for (const c of [laptop, phone, sender]) await c.connect();
      await laptop.addDevice('phone');
      const changes: KeyChangeEvent[] = [];
      sender.on('keyChange', (k) => changes.push(k));
      const got = next<ReceivedMessage>(phone, 'message');
      expect(await sender.sendMessage(ALICE, 'before the change')).toHaveLength(2);
      expect((await got).text).toBe('before the change');
      expect(changes).toEqual([]);

      // The phone now has another identity key (reinstalled, or swapped in by whoever controls
      // the directory), and a listed device signs it onto the list: a properly signed list, so
      // only the per-device memory of keys stands between the sender and the new key.
      const device = `${ALICE}/phone`;
      const oldKey = phone.identityKey;
      const newKey = generateSigningKeyPair().publicKey;
      own.store.db
        .prepare('UPDATE devices SET identity_key = ? WHERE device = ?')
        .run(Buffer.from(newKey), device);
      await laptop.addDevice('phone');
      const lists: DeviceListEvent[] = [];
      sender.on('deviceList', (l) => lists.push(l));
      const seq = (): number =>
        (
          own.store.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'queue'").get() as {
            seq: number;
          }
        ).seq;
      const before = seq();
      const ids = await sender.sendMessage(ALICE, 'not for an unaccepted key');
      expect(ids).toHaveLength(1); // the laptop only
      expect(seq()).toBe(before + 1);
      expect(lists).toMatchObject([{ address: ALICE, replaced: ['phone'] }]);
      expect(changes).toEqual([{ device, previousKey: oldKey, newKey }]);
      // Still refused on the next send, and after a restart (the known key is in the state file).
      expect(await sender.sendMessage(ALICE, 'still not')).toHaveLength(1);
      await sender.close();
      const restarted = own.client('bob', 'phone');
      const again: KeyChangeEvent[] = [];
      restarted.on('keyChange', (k) => again.push(k));
      await restarted.connect();
      expect(await restarted.sendMessage(ALICE, 'nor after a restart')).toHaveLength(1);
      expect(again).toEqual([{ device, previousKey: oldKey, newKey }]);
      // Accepting the change never seals to the old key through the session made with it, nor
      // to a bundle that the new key did not sign (here the server still serves the old one).
      await restarted.close();
      const accepting = own.client('bob', 'phone', { acceptKeyChanges: true });
      const seen: TrustWarningEvent[] = [];
      accepting.on('trustWarning', (w) => seen.push(w));
      await accepting.connect();
      expect(await accepting.sendMessage(ALICE, 'not to the old key either')).toHaveLength(1);
      expect(seq()).toBe(before + 4);
      expect(seen).toContainEqual({ kind: 'bundle-invalid', address: ALICE, device });
    } finally {
      await own.close();
    }
  });

  it('after an accepted change the next message reaches the re-keyed device; the old key opens nothing', async () => {
    const own = await startEnv();
    try {
      const laptop = own.client('alice', 'laptop');
      const phone = own.client('alice', 'phone');
      const sender = own.client('bob', 'phone', { acceptKeyChanges: true });
      for (const c of [laptop, phone, sender]) await c.connect();
      await laptop.addDevice('phone');
      const got = next<ReceivedMessage>(phone, 'message');
      expect(await sender.sendMessage(ALICE, 'before the change')).toHaveLength(2);
      expect((await got).text).toBe('before the change');

      // The phone is reinstalled: a new identity key under the same device id (the operator reset
      // the id; its prekeys and queue went with it). The old state file is the old key's holder.
      const device = `${ALICE}/phone`;
      const oldKey = phone.identityKey;
      await phone.close();
      const oldHolder = SealDevice.restore(
        decodeState(readFileSync(join(own.dir, 'alice-phone.state'))).device,
      );
      own.store.db.prepare('DELETE FROM devices WHERE device = ?').run(device);
      const newState = (): FileStateStore =>
        new FileStateStore(join(own.dir, 'alice-phone-reinstalled.state'));
      const reinstalled = own.client('alice', 'phone', { state: newState() });
      await reinstalled.connect();
      const newKey = reinstalled.identityKey;
      expect(Buffer.from(newKey).equals(Buffer.from(oldKey))).toBe(false);
      await reinstalled.close(); // offline: its copies stay on the server, to be inspected
      await laptop.addDevice('phone');

      const changes: KeyChangeEvent[] = [];
      sender.on('keyChange', (k) => changes.push(k));
      expect(await sender.sendMessage(ALICE, 'after the change')).toHaveLength(2);
      expect(changes).toEqual([{ device, previousKey: oldKey, newKey }]);
      const forPhone = (): Uint8Array[] =>
        (
          own.store.db
            .prepare('SELECT bytes FROM queue WHERE device = ? ORDER BY seq')
            .all(device) as { bytes: Buffer }[]
        ).map((r) => new Uint8Array(r.bytes));
      const prekeysLeft = (): number =>
        (
          own.store.db
            .prepare('SELECT count(*) AS n FROM one_time_prekeys WHERE device = ?')
            .get(device) as { n: number }
        ).n;
      expect(forPhone()).toHaveLength(1);

      // The new session is in the state file: a restarted sender goes on with it (no bundle).
      await sender.close();
      const restarted = own.client('bob', 'phone', { acceptKeyChanges: true });
      await restarted.connect();
      const left = prekeysLeft();
      expect(await restarted.sendMessage(ALICE, 'and after a restart')).toHaveLength(2);
      expect(prekeysLeft()).toBe(left);
      const copies = forPhone();
      expect(copies).toHaveLength(2);
      for (const bytes of copies) {
        expect(() => openMessage(oldHolder, bytes)).toThrow(
          expect.objectContaining({ code: 'ERR_SEAL_OPEN_FAILED' }),
        );
      }

      // Back online, the re-keyed phone opens both with its new key, in order.
      const texts: string[] = [];
      const back = own.client('alice', 'phone', { state: newState() });
      back.on('message', (m) => texts.push(m.text));
      await back.connect();
      for (let i = 0; i < 100 && texts.length < 2; i++) await quiet(20);
      expect(texts).toEqual(['after the change', 'and after a restart']);
    } finally {
      await own.close();
    }
  });
});

describe('a withheld prekey bundle (T10)', () => {
  it('is an error when no device is left, a bundle-missing warning when one is', async () => {
    // frank has two listed devices; carol has never sealed for either (bundles will be fetched).
    env.accounts.create('frank', env.password);
    const FRANK = 'frank@example.org';
    const phone = env.client('frank', 'phone');
    const tablet = env.client('frank', 'tablet');
    await phone.connect();
    await tablet.connect();
    await phone.addDevice('tablet');
    const seen: TrustWarningEvent[] = [];
    carol.on('trustWarning', (w) => seen.push(w));
    type Row = { device: string; key_id: number; public_key: Buffer; signature: Buffer };
    const withhold = (device: string): Row => {
      const row = env.store.db
        .prepare(
          'SELECT device, key_id, public_key, signature FROM signed_prekeys WHERE device = ?',
        )
        .get(device) as Row;
      env.store.db.prepare('DELETE FROM signed_prekeys WHERE device = ?').run(device);
      return row;
    };
    const restore = (r: Row): void => {
      env.store.db
        .prepare(
          'INSERT INTO signed_prekeys (device, key_id, public_key, signature, uploaded_at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(r.device, r.key_id, r.public_key, r.signature, Date.now());
    };
    // The server claims neither device has keys: a typed error, and nothing is stored.
    const phoneRow = withhold(`${FRANK}/phone`);
    withhold(`${FRANK}/tablet`);
    const before = queued();
    await expect(carol.sendMessage(FRANK, 'not into the void')).rejects.toMatchObject({
      name: 'ImppError',
      code: 'ERR_SEAL_SESSION_STATE',
    });
    expect(queued()).toBe(before);
    for (const d of ['phone', 'tablet']) {
      expect(seen).toContainEqual({
        kind: 'bundle-missing',
        address: FRANK,
        device: `${FRANK}/${d}`,
      });
    }
    // Only the tablet's is withheld: the phone gets it, the tablet is named in a warning.
    restore(phoneRow);
    seen.length = 0;
    const got = next<ReceivedMessage>(phone, 'message');
    expect(await carol.sendMessage(FRANK, 'for the phone')).toHaveLength(1);
    expect((await got).text).toBe('for the phone');
    expect(seen).toEqual([{ kind: 'bundle-missing', address: FRANK, device: `${FRANK}/tablet` }]);
    expect((await env.store.queue.usage(`${FRANK}/tablet`)).count).toBe(0);
  });
});

describe('rollback protection survives a restart', () => {
  it('a restarted client refuses an older device list', async () => {
    const phone = env.client('alice', 'phone');
    await phone.connect();
    const old = await storedList(ALICE);
    expect(await alice.addDevice('phone')).toBe(old.counter + 1);
    const added = next<DeviceListEvent>(bob, 'deviceList');
    expect(await bob.sendMessage(ALICE, 'to laptop and phone')).toHaveLength(2);
    expect(await added).toMatchObject({ address: ALICE, firstSight: false, added: ['phone'] });
    const current = await storedList(ALICE);
    await bob.close();
    const restarted = env.client('bob', 'phone');
    const seen: TrustWarningEvent[] = [];
    restarted.on('trustWarning', (w) => seen.push(w));
    await restarted.connect();
    serveList(ALICE, old); // the server rolls the list back (e.g. to drop a removal)
    try {
      const before = queued();
      await expect(restarted.sendMessage(ALICE, 'after the rollback')).rejects.toMatchObject({
        code: 'ERR_DEVICE_LIST_INVALID',
      });
      await expect(restarted.deviceList(ALICE)).rejects.toMatchObject({
        code: 'ERR_DEVICE_LIST_INVALID',
      });
      expect(seen).toContainEqual({ kind: 'device-list-rejected', address: ALICE });
      expect(queued()).toBe(before);
    } finally {
      serveList(ALICE, current);
    }
    expect(await restarted.sendMessage(ALICE, 'list restored')).toHaveLength(2);
    bob = restarted;
  });

  it('a restarted watcher refuses an older presence update, and still opens newer ones', async () => {
    const seen: ReceivedPresence[] = [];
    bob.on('presence', (p) => seen.push(p));
    await bob.subscribe(ALICE);
    await alice.approve('bob@example.org');
    await alice.publishPresence('open', 'first note');
    for (let i = 0; i < 100 && !seen.some((p) => p.note === 'first note'); i++) await quiet(20);
    expect(seen.map((p) => p.note)).toContain('first note');
    const first = env.store.db
      .prepare('SELECT version, bytes FROM presence WHERE presentity = ?')
      .get(ALICE) as { version: number; bytes: Buffer };
    await alice.publishPresence('closed', 'second note');
    for (let i = 0; i < 100 && !seen.some((p) => p.note === 'second note'); i++) await quiet(20);
    expect(seen.map((p) => p.note)).toContain('second note');
    await bob.close();

    // The server replays the older update to the restarted watcher (pushed right after BOUND).
    env.store.db
      .prepare('UPDATE presence SET version = ?, bytes = ? WHERE presentity = ?')
      .run(first.version, first.bytes, ALICE);
    const restarted = env.client('bob', 'phone');
    const after: ReceivedPresence[] = [];
    restarted.on('presence', (p) => after.push(p));
    await restarted.connect();
    await quiet(300);
    expect(after).toEqual([]);
    // The keys came back from the state file too: the next real update opens.
    await alice.publishPresence('open', 'third note');
    for (let i = 0; i < 100 && after.length === 0; i++) await quiet(20);
    expect(after.map((p) => p.note)).toEqual(['third note']);
    bob = restarted;
  });
});

describe('contact enrolment statements (optional policy)', () => {
  it('seals only for devices the domain enrolled, under the app’s policy', async () => {
    const domainKey = env.server.domainKey.publicKey;
    const strict = env.client('dave', 'strict', { domainKey, contactEnrolment: true });
    const seen: TrustWarningEvent[] = [];
    strict.on('trustWarning', (w) => seen.push(w));
    await strict.connect();
    const got = next<ReceivedMessage>(carol, 'message');
    // carol's device and dave's own listed tablet (a copy).
    expect(await strict.sendMessage('carol@example.org', 'enrolled by the domain')).toHaveLength(2);
    expect((await got).text).toBe('enrolled by the domain');

    // The server swaps in a statement signed by another key for carol's device: refused.
    const device = 'carol@example.org/desk';
    const genuine = (await env.store.devices.get('carol@example.org', 'desk'))?.enrolment;
    if (genuine === undefined) throw new Error('no enrolment');
    const forged = issueEnrolmentStatement(
      {
        address: parseAddress('carol@example.org'),
        deviceId: 'desk',
        identityKey: carol.identityKey,
        mechanism: 'SCRAM-SHA-256-PLUS',
        provider: 'local',
        channelBound: true,
        authenticatedAt: Date.now(),
        issuedAt: Date.now(),
        certificate: null,
      },
      generateSigningKeyPair().secretKey,
    );
    env.store.db
      .prepare('UPDATE devices SET enrolment = ? WHERE device = ?')
      .run(Buffer.from(forged.bytes), device);
    try {
      const before = queued();
      const ids = await strict.sendMessage('carol@example.org', 'not without enrolment');
      expect(ids).toHaveLength(1); // dave's own tablet only
      expect(seen).toContainEqual({
        kind: 'enrolment-invalid',
        address: 'carol@example.org',
        device,
      });
      expect(queued()).toBe(before + 1); // the tablet's copy, nothing for carol
    } finally {
      env.store.db
        .prepare('UPDATE devices SET enrolment = ? WHERE device = ?')
        .run(Buffer.from(genuine), device);
    }

    // A policy hook: this app wants Kerberos-enrolled devices only.
    const picky = env.client('dave', 'strict', {
      domainKey,
      contactEnrolment: (s) => s.mechanism === 'GS2-KRB5',
    });
    await strict.close();
    await picky.connect();
    expect(await picky.sendMessage('carol@example.org', 'policy says no')).toEqual([]);
    expect(() => env.client('dave', 'strict', { contactEnrolment: true })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});
