/**
 * The client protocol on the wire, adversarially: a hand-written client over real TLS sends what
 * the SDK never would.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Frames, bindingInput } from '../../src/client/protocol.js';
import { generateSigningKeyPair, randomBytes, sign } from '../../src/crypto/index.js';
import { sealMessage } from '../../src/seal/message.js';
import { SealDevice } from '../../src/seal/session.js';
import { bindingTranscript } from '../../src/service/binding.js';
import { ClientFrame } from '../../src/service/protocol.js';
import { parseAddress } from '../../src/trust/address.js';
import { createDeviceList } from '../../src/trust/device-list.js';
import { verifyEnrolmentStatement } from '../../src/trust/enrolment.js';
import { type Env, startEnv } from './harness.js';
import { RawClient } from './raw.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env.close();
});

/** Authenticates and binds `user/deviceId` with a fresh identity; returns the client and keys. */
async function bound(user: string, deviceId: string) {
  const raw = await RawClient.open(env);
  await raw.auth(user);
  const identity = generateSigningKeyPair();
  const address = `${user}@example.org`;
  const signature = sign(
    identity.secretKey,
    bindingTranscript({
      exporter: raw.conn.channelBinding(),
      nonce: raw.nonce as Uint8Array,
      address,
      deviceId,
      identityKey: identity.publicKey,
    }),
  );
  raw.conn.send(ClientFrame.BIND, { deviceId, identityKey: identity.publicKey, signature });
  const b = await raw.take(ClientFrame.BOUND);
  return { raw, identity, address, deviceId, registered: b.registered };
}

/** Binds and registers a device with a genesis list and real prekeys. */
async function registered(user: string, deviceId: string) {
  const s = await bound(user, deviceId);
  const seal = SealDevice.create(`${s.address}/${deviceId}`, {
    identity: s.identity,
    oneTimePrekeys: 2,
  });
  const pub = seal.publicPrekeys();
  const list = createDeviceList({
    address: parseAddress(s.address),
    counter: 1,
    devices: [{ deviceId, identityKey: s.identity.publicKey }],
    signer: { deviceId, secretKey: s.identity.secretKey },
  });
  const keys = { signedPrekey: pub.signedPrekey, oneTimePrekeys: pub.oneTimePrekeys };
  let r = await s.raw.request(ClientFrame.REGISTER, { ...keys, deviceList: list.bytes });
  // The account has a list already (an earlier device): a later device registers without one.
  if (r.error === 'ERR_DEVICE_LIST_INVALID') r = await s.raw.request(ClientFrame.REGISTER, keys);
  expect(r.error).toBeUndefined();
  return { ...s, seal, register: r };
}

describe('frame table', () => {
  it('docs/protocol.md lists exactly the frame types of the shared table, with their numbers', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const documented = new Map(
      [...doc.matchAll(/^\| (\d+) \| ([A-Z_]+) \| [sc] → [sc] \|/gm)].map((m) => [
        m[2],
        Number(m[1]),
      ]),
    );
    expect(Object.fromEntries(documented)).toEqual({ ...ClientFrame });
    expect(Frames).toBe(ClientFrame);
    expect(new Set(Object.values(ClientFrame)).size).toBe(Object.keys(ClientFrame).length);
    for (const t of Object.values(ClientFrame)) expect(t).toBeGreaterThanOrEqual(16);
  });
});

describe('before authentication', () => {
  it('a request before authentication is refused and closes only that connection', async () => {
    const raw = await RawClient.open(env);
    await raw.take(ClientFrame.AUTH_OFFER);
    raw.conn.send(ClientFrame.GET_DEVICES, { id: 1, address: 'alice@example.org' });
    const info = await raw.closed;
    expect(info.error?.code).toBe('ERR_NOT_AUTHORIZED');
    expect(raw.frames.some((f) => f.type === ClientFrame.RESULT)).toBe(false);
    // Everyone else carries on.
    const other = await RawClient.open(env);
    await other.auth('alice');
    other.conn.close();
  });

  it('a wrong password gets AUTH_FAILURE and the connection closes', async () => {
    const raw = await RawClient.open(env);
    await expect(raw.auth('alice', 'wrong password')).rejects.toMatchObject({
      reason: 'bad-credential',
    });
    expect((await raw.closed).error?.code).toBe('ERR_AUTH_FAILED');
  });

  it('offers SCRAM-SHA-256-PLUS first on TLS', async () => {
    const raw = await RawClient.open(env);
    const offer = await raw.take(ClientFrame.AUTH_OFFER);
    expect(offer.mechanisms).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    raw.conn.close();
  });
});

describe('device binding', () => {
  it('refuses a signature by another key', async () => {
    const raw = await RawClient.open(env);
    await raw.auth('alice');
    const identity = generateSigningKeyPair();
    const other = generateSigningKeyPair();
    const signature = sign(
      other.secretKey,
      bindingTranscript({
        exporter: raw.conn.channelBinding(),
        nonce: raw.nonce as Uint8Array,
        address: 'alice@example.org',
        deviceId: 'x',
        identityKey: identity.publicKey,
      }),
    );
    raw.conn.send(ClientFrame.BIND, { deviceId: 'x', identityKey: identity.publicKey, signature });
    expect((await raw.closed).error?.code).toBe('ERR_NOT_AUTHORIZED');
  });

  it('refuses a signature made for another TLS connection (replay)', async () => {
    const a = await RawClient.open(env);
    await a.auth('alice');
    const b = await RawClient.open(env);
    await b.auth('alice');
    const identity = generateSigningKeyPair();
    const signature = sign(
      identity.secretKey,
      bindingTranscript({
        exporter: a.conn.channelBinding(),
        nonce: b.nonce as Uint8Array,
        address: 'alice@example.org',
        deviceId: 'x',
        identityKey: identity.publicKey,
      }),
    );
    b.conn.send(ClientFrame.BIND, { deviceId: 'x', identityKey: identity.publicKey, signature });
    expect((await b.closed).error?.code).toBe('ERR_NOT_AUTHORIZED');
    a.conn.close();
  });

  it('refuses a second identity key for a registered device id', async () => {
    const first = await registered('carol', 'desk');
    first.raw.conn.close();
    const raw = await RawClient.open(env);
    await raw.auth('carol');
    const identity = generateSigningKeyPair();
    const signature = sign(
      identity.secretKey,
      bindingTranscript({
        exporter: raw.conn.channelBinding(),
        nonce: raw.nonce as Uint8Array,
        address: 'carol@example.org',
        deviceId: 'desk',
        identityKey: identity.publicKey,
      }),
    );
    raw.conn.send(ClientFrame.BIND, {
      deviceId: 'desk',
      identityKey: identity.publicKey,
      signature,
    });
    expect((await raw.closed).error?.code).toBe('ERR_NOT_AUTHORIZED');
  });

  it('an unregistered device may only register', async () => {
    const s = await bound('bob', 'fresh');
    expect(s.registered).toBe(false);
    expect(await s.raw.request(ClientFrame.GET_DEVICES, { address: 'alice@example.org' })).toEqual({
      error: 'ERR_NOT_AUTHORIZED',
    });
    s.raw.conn.close();
  });
});

describe('registration and directory', () => {
  it('issues an enrolment statement signed by the domain and logs it', async () => {
    const before = env.server.keyLog.size;
    const s = await registered('alice', 'tablet');
    const enrolment = s.register.enrolment as Uint8Array;
    const verified = verifyEnrolmentStatement(enrolment, {
      domainKey: env.server.domainKey.publicKey,
    });
    expect(verified.statement.deviceId).toBe('tablet');
    expect(verified.statement.mechanism).toBe('SCRAM-SHA-256-PLUS');
    expect(verified.statement.channelBound).toBe(true);
    expect(env.server.keyLog.size).toBe(before + 1);
    expect(s.register.logIndex).toBe(before);
    s.raw.conn.close();
  });

  it('hands each one-time prekey out once', async () => {
    const owner = await registered('bob', 'otk');
    const asker = await registered('carol', 'otk-asker');
    const seen: number[] = [];
    let without = 0;
    for (let i = 0; i < 4; i++) {
      const r = await asker.raw.request(ClientFrame.GET_BUNDLES, { address: 'bob@example.org' });
      const mine = (r.bundles as { device: string; oneTimePrekey?: { id: number } }[]).find(
        (b) => b.device === 'bob@example.org/otk',
      );
      expect(mine).toBeDefined();
      if (mine?.oneTimePrekey === undefined) without++;
      else seen.push(mine.oneTimePrekey.id);
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(2); // two were uploaded
    expect(without).toBe(2);
    owner.raw.conn.close();
    asker.raw.conn.close();
  });

  it('answers another domain with ERR_DOMAIN_NOT_SERVED', async () => {
    const s = await registered('alice', 'fed');
    expect(await s.raw.request(ClientFrame.GET_DEVICES, { address: 'dave@other.example' })).toEqual(
      {
        error: 'ERR_DOMAIN_NOT_SERVED',
      },
    );
    const dave = SealDevice.create('dave@other.example/x', { oneTimePrekeys: 1 });
    const sealed = sealMessage(
      s.seal,
      { to: dave.device, bundle: dave.bundle() },
      'text/plain',
      new Uint8Array([1]),
    );
    expect(await s.raw.request(ClientFrame.SEND, { object: sealed.bytes })).toEqual({
      error: 'ERR_DOMAIN_NOT_SERVED',
    });
    s.raw.conn.close();
  });
});

describe('queues', () => {
  it("refuses another device's queue", async () => {
    const s = await registered('bob', 'nosy');
    expect(await s.raw.request(ClientFrame.FETCH, { device: 'alice@example.org/tablet' })).toEqual({
      error: 'ERR_NOT_AUTHORIZED',
    });
    expect(
      await s.raw.request(ClientFrame.ACK, {
        device: 'alice@example.org/tablet',
        ids: [randomBytes(16)],
      }),
    ).toEqual({ error: 'ERR_NOT_AUTHORIZED' });
    s.raw.conn.close();
  });

  it('drops a duplicate by id and keeps one copy until acknowledged', async () => {
    const sender = await registered('alice', 'dup-sender');
    const target = await registered('bob', 'dup-target');
    target.raw.conn.close();
    await target.raw.closed;
    const bundle = await sender.raw.request(ClientFrame.GET_BUNDLES, {
      address: 'bob@example.org',
    });
    expect(bundle.bundles).toBeDefined();
    const sealed = sealMessage(
      sender.seal,
      { to: target.seal.device, bundle: target.seal.bundle() },
      'text/plain',
      new Uint8Array([7]),
    );
    expect(await sender.raw.request(ClientFrame.SEND, { object: sealed.bytes })).toMatchObject({
      duplicate: false,
    });
    expect(await sender.raw.request(ClientFrame.SEND, { object: sealed.bytes })).toMatchObject({
      duplicate: true,
    });
    expect((await env.store.queue.usage(target.seal.device)).count).toBe(1);
    sender.raw.conn.close();
  });

  it('refuses a presence object for someone else', async () => {
    const s = await registered('carol', 'spoof');
    const alice = SealDevice.create('alice@example.org/tablet', { oneTimePrekeys: 1 });
    const { PresencePublisher } = await import('../../src/seal/presence.js');
    const object = new PresencePublisher(alice).publish(new Uint8Array([1, 2, 3]));
    expect(await s.raw.request(ClientFrame.PUBLISH, { object })).toEqual({
      error: 'ERR_NOT_AUTHORIZED',
    });
    expect(await s.raw.request(ClientFrame.SEND, { object })).toEqual({ error: 'ERR_PROTOCOL' });
    s.raw.conn.close();
  });
});

describe('device binding input (docs/protocol.md §4.2)', () => {
  it('is the canonical CBOR array the document spells out, byte for byte', () => {
    const exporter = new Uint8Array(32).fill(1);
    const nonce = new Uint8Array(32).fill(2);
    const key = new Uint8Array(32).fill(3);
    const address = 'alice@example.org';
    const deviceId = 'laptop';
    const text = (s: string) => [0x60 + s.length, ...Buffer.from(s, 'utf8')];
    const bytes32 = (b: Uint8Array) => [0x58, 0x20, ...b];
    const expected = Uint8Array.from([
      0x86,
      ...[0x76, ...Buffer.from('impp/v1/device-binding', 'utf8')],
      ...bytes32(exporter),
      ...bytes32(nonce),
      ...text(address),
      ...text(deviceId),
      ...bytes32(key),
    ]);
    const fields = { exporter, nonce, address, deviceId, identityKey: key };
    expect(bindingTranscript(fields)).toEqual(expected);
    expect(bindingInput(exporter, nonce, address, deviceId, key)).toEqual(expected);
  });
});

describe('presence publishing', () => {
  it('accepts the same update once, refuses an older version', async () => {
    const s = await registered('dave', 'pub');
    const { PresencePublisher } = await import('../../src/seal/presence.js');
    const publisher = new PresencePublisher(s.seal);
    const first = publisher.publish(new Uint8Array([1]));
    const second = publisher.publish(new Uint8Array([2]));
    expect(await s.raw.request(ClientFrame.PUBLISH, { object: second })).toMatchObject({
      duplicate: false,
    });
    expect(await s.raw.request(ClientFrame.PUBLISH, { object: second })).toMatchObject({
      duplicate: true,
      delivered: 0,
    });
    expect(await s.raw.request(ClientFrame.PUBLISH, { object: first })).toEqual({
      error: 'ERR_SEAL_ROLLBACK',
    });
    s.raw.conn.close();
  });

  it('refuses garbage where a sealed object belongs, and the session carries on', async () => {
    const s = await registered('dave', 'garbage');
    const reply = await s.raw.request(ClientFrame.SEND, { object: randomBytes(64) });
    expect(reply.error).toMatch(/^ERR_SEAL_/);
    expect(await s.raw.request(ClientFrame.SEND, { object: 'not bytes' })).toEqual({
      error: 'ERR_PROTOCOL',
    });
    expect(await s.raw.request(999, {})).toEqual({ error: 'ERR_PROTOCOL' });
    expect(await s.raw.request(ClientFrame.LIST_WATCHERS, {})).toMatchObject({ watchers: [] });
    s.raw.conn.close();
  });
});

describe('subscriptions and routing on the wire', () => {
  it('a watcher cannot approve itself; the presentity decides', async () => {
    const alice = await registered('alice', 'decider');
    const bob = await registered('bob', 'asker');
    expect(
      await bob.raw.request(ClientFrame.SUBSCRIBE, { presentity: 'alice@example.org' }),
    ).toMatchObject({
      state: 'pending',
    });
    const selfApprove = await bob.raw.request(ClientFrame.DECIDE, {
      watcher: 'bob@example.org',
      action: 'approve',
    });
    expect(selfApprove.error).toBeDefined();
    expect((await env.store.subscriptions.get('alice@example.org', 'bob@example.org'))?.state).toBe(
      'pending',
    );
    expect(
      await alice.raw.request(ClientFrame.DECIDE, { watcher: 'bob@example.org', action: 'deny' }),
    ).toMatchObject({ state: 'denied' });
    expect(
      await alice.raw.request(ClientFrame.DECIDE, { watcher: 'bob@example.org', action: 'sudo' }),
    ).toEqual({ error: 'ERR_PROTOCOL' });
    expect(
      await alice.raw.request(ClientFrame.DECIDE, {
        watcher: 'nobody@example.org',
        action: 'approve',
      }),
    ).toEqual({ error: 'ERR_NOT_FOUND' });
    alice.raw.conn.close();
    bob.raw.conn.close();
  });

  it('refuses a message for a device that is not registered', async () => {
    const s = await registered('carol', 'router');
    const ghost = SealDevice.create('bob@example.org/ghost', { oneTimePrekeys: 1 });
    const sealed = sealMessage(
      s.seal,
      { to: ghost.device, bundle: ghost.bundle() },
      'text/plain',
      new Uint8Array([1]),
    );
    expect(await s.raw.request(ClientFrame.SEND, { object: sealed.bytes })).toEqual({
      error: 'ERR_NOT_FOUND',
    });
    s.raw.conn.close();
  });

  it('serves signed tree heads with proofs, and refuses an index outside the log', async () => {
    const s = await registered('dave', 'logger');
    const r = await s.raw.request(ClientFrame.GET_LOG, { index: 0 });
    expect(r.head).toBeInstanceOf(Uint8Array);
    expect(r.entry).toBeInstanceOf(Uint8Array);
    expect(Array.isArray(r.inclusion)).toBe(true);
    expect(await s.raw.request(ClientFrame.GET_LOG, { index: 10_000 })).toEqual({
      error: 'ERR_PROTOCOL',
    });
    expect(await s.raw.request(ClientFrame.GET_LOG, { since: 10_000 })).toEqual({
      error: 'ERR_PROTOCOL',
    });
    s.raw.conn.close();
  });
});
