/**
 * Messages and directory look-ups across two domains through the federation seam
 * (src/service/remote.ts; docs/protocol.md Server-to-server §5.5): two REAL servers (loopback TLS,
 * SQLite) for a.example and b.example in this process, real clients, and a TEST DOUBLE of the link
 * between them (./link-double.ts) that calls the other server's `federationInbound` directly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedMessage, TrustWarningEvent } from '../../src/client/client.js';
import { generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import type { DeliveryNotice } from '../../src/protocol/notice.js';
import { ClientFrame } from '../../src/service/protocol.js';
import type { PendingObject } from '../../src/service/store/index.js';
import { type Env, next, quiet, startEnv } from './harness.js';
import { LinkDouble } from './link-double.js';
import { RawClient } from './raw.js';
import { sealedMessage } from './store/envelopes.js';

const link = new LinkDouble();
let A: Env;
let B: Env;
/** A server with no federation at all. */
let alone: Env;

beforeAll(async () => {
  [A, B, alone] = await Promise.all([
    startEnv({ domain: 'a.example', remote: link.routerFor('a.example') }),
    startEnv({ domain: 'b.example', remote: link.routerFor('b.example') }),
    startEnv({ domain: 'c.example' }),
  ]);
  link.add('a.example', () => A.server.federationInbound);
  link.add('b.example', () => B.server.federationInbound);
});
afterAll(async () => {
  await Promise.all([A.close(), B.close(), alone.close()]);
});

/** Objects stored in `env`'s queues from now on, as the store reports them. */
function watchQueue(env: Env): { seen: PendingObject[]; stop: () => void } {
  const seen: PendingObject[] = [];
  const stop = env.store.queue.watch({ stored: (o) => seen.push(o), unsure: () => undefined });
  return { seen, stop };
}

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await quiet(10);
  }
}

describe('a conversation across two domains', () => {
  it('delivers both ways, each object stamped with the domain it arrived from', async () => {
    const alice = A.client('alice', 'laptop');
    const bob = B.client('bob', 'phone');
    await alice.connect();
    await bob.connect();
    const atB = watchQueue(B);
    const atA = watchQueue(A);
    const warnings: TrustWarningEvent[] = [];
    bob.on('trustWarning', (w) => warnings.push(w));
    alice.on('trustWarning', (w) => warnings.push(w));

    const bobGot = next<ReceivedMessage>(bob, 'message');
    await alice.sendMessage('bob@b.example', 'across the border');
    const m = await bobGot;
    expect(m).toMatchObject({
      text: 'across the border',
      from: 'alice@a.example',
      fromDevice: 'alice@a.example/laptop',
    });
    const aliceGot = next<ReceivedMessage>(alice, 'message');
    await bob.sendMessage('alice@a.example', 'and back');
    expect(await aliceGot).toMatchObject({ text: 'and back', from: 'bob@b.example' });
    atA.stop();
    atB.stop();

    // The stamp each server recorded: the other domain for remote objects, none for local ones
    // (alice's copy for her own other devices would be local; she has none here).
    expect(atB.seen.map((o) => [o.recipientDevice, o.arrivedFrom])).toEqual([
      ['bob@b.example/phone', 'a.example'],
    ]);
    expect(atA.seen.map((o) => [o.recipientDevice, o.arrivedFrom])).toEqual([
      ['alice@a.example/laptop', 'b.example'],
    ]);
    expect(warnings).toEqual([]);
    await until(async () => (await B.store.queue.usage('bob@b.example/phone')).count === 0);
  });

  it('gives DELIVER and FETCH items the stamp, and a local object none', async () => {
    const identity = generateSigningKeyPair();
    await B.store.devices.register({
      address: 'carol@b.example',
      deviceId: 'raw',
      identityKey: identity.publicKey,
      enrolment: randomBytes(100),
      createdAt: Date.now(),
    });
    const device = 'carol@b.example/raw';
    const [remoteId, localId] = [randomBytes(16), randomBytes(16)];
    await B.server.federationInbound.enqueue({
      kind: 'message',
      recipientDevice: device,
      id: remoteId,
      object: sealedMessage(device, remoteId),
      arrivedFrom: 'a.example',
    });
    await B.store.queue.enqueue({
      kind: 'message',
      recipientDevice: device,
      id: localId,
      bytes: sealedMessage(device, localId),
      receivedAt: Date.now(),
    });
    const raw = await RawClient.open(B);
    try {
      await raw.auth('carol');
      expect((await raw.bind('raw', identity)).registered).toBe(true);
      const pushed = [await raw.take(ClientFrame.DELIVER), await raw.take(ClientFrame.DELIVER)];
      expect(pushed.map((p) => p.from)).toEqual(['a.example', undefined]);
      const fetched = await raw.request(ClientFrame.FETCH, {});
      const items = fetched.objects as { from?: string; object: Uint8Array }[];
      expect(items.map((i) => i.from)).toEqual(['a.example', undefined]);
      expect(items.every((i) => i.object instanceof Uint8Array)).toBe(true);
    } finally {
      await raw.close();
    }
  });
});

describe('the client checks the sealed sender against the stamp (T45)', () => {
  it('refuses a sender whose domain is not the stamped one, and acknowledges it', async () => {
    const alice = A.client('alice', 'forged');
    const dave = B.client('dave', 'phone');
    await alice.connect();
    await dave.connect();
    const got: ReceivedMessage[] = [];
    dave.on('message', (m) => got.push(m));
    const warned = next<TrustWarningEvent>(dave, 'trustWarning');
    // A peer (or this double) claiming the object came from a third domain.
    link.forgeStamp = 'c.example';
    try {
      await alice.sendMessage('dave@b.example', 'who am I');
    } finally {
      link.forgeStamp = undefined;
    }
    expect(await warned).toEqual({
      kind: 'sender-domain-mismatch',
      address: 'alice@a.example',
      device: 'alice@a.example/forged',
    });
    await until(async () => (await B.store.queue.usage('dave@b.example/phone')).count === 0);
    expect(got).toEqual([]);
  });

  it('refuses a sender of another domain on an object with no stamp (home domain only)', async () => {
    B.accounts.create('erin', B.password);
    const alice = A.client('alice', 'nostamp');
    const dave = B.client('erin', 'tablet');
    await alice.connect();
    await dave.connect();
    const got: ReceivedMessage[] = [];
    dave.on('message', (m) => got.push(m));
    const warned = next<TrustWarningEvent>(dave, 'trustWarning');
    // Written into dave's queue as if it had been sent inside b.example.
    link.divert = async (object, recipientDevice, id) => {
      await B.store.queue.enqueue({
        kind: 'message',
        recipientDevice,
        id,
        bytes: object,
        receivedAt: Date.now(),
      });
    };
    try {
      await alice.sendMessage('erin@b.example', 'I live next door, honest');
    } finally {
      link.divert = undefined;
    }
    expect((await warned).kind).toBe('sender-domain-mismatch');
    await until(async () => (await B.store.queue.usage('erin@b.example/tablet')).count === 0);
    expect(got).toEqual([]);
    // The same sender, properly stamped, is delivered: the session was not spoiled.
    const ok = next<ReceivedMessage>(dave, 'message');
    await alice.sendMessage('erin@b.example', 'now through the front door');
    expect((await ok).text).toBe('now through the front door');
  });
});

describe('delivery-failure notices', () => {
  it('surfaces a notice for an object the other domain refused, and acknowledges it', async () => {
    const alice = A.client('alice', 'notices');
    await alice.connect();
    const failure = next<DeliveryNotice>(alice, 'deliveryFailure');
    const id = randomBytes(16);
    // A device nobody has: b.example refuses it, and the notice comes back to the sending device.
    const answer = await alice.rawRequest(ClientFrame.SEND, {
      object: sealedMessage('nobody@b.example/x', id),
    });
    expect(answer.duplicate).toBe(false);
    const notice = await failure;
    expect(notice).toMatchObject({
      type: 'delivery-failure',
      recipient: 'nobody@b.example/x',
      domain: 'b.example',
      reason: 'refused',
      code: 'ERR_NOT_FOUND',
    });
    expect(Uint8Array.from(notice.messageId)).toEqual(id);
    await until(async () => (await A.store.queue.usage('alice@a.example/notices')).count === 0);
  });
});

describe('directory look-ups across domains', () => {
  it('answers GET_DEVICES in the local shape, and GET_BUNDLES spends a prekey at home', async () => {
    const carol = B.client('carol', 'home');
    await carol.connect();
    const alice = A.client('alice', 'lookup');
    await alice.connect();
    const device = 'carol@b.example/home';
    const before = await B.store.prekeys.countOneTimePrekeys(device);
    const remote = await alice.rawRequest(ClientFrame.GET_DEVICES, { address: 'carol@b.example' });
    // The same question asked inside b.example.
    const bob = B.client('bob', 'phone2');
    await bob.connect();
    const local = await bob.rawRequest(ClientFrame.GET_DEVICES, { address: 'carol@b.example' });
    expect({ ...remote, id: 0 }).toEqual({ ...local, id: 0 });
    expect((remote.devices as unknown[]).length).toBeGreaterThan(0);

    const bundles = await alice.rawRequest(ClientFrame.GET_BUNDLES, { address: 'carol@b.example' });
    const list = bundles.bundles as { device: string; oneTimePrekey?: unknown }[];
    const home = list.find((b) => b.device === device);
    expect(home?.oneTimePrekey).toBeDefined();
    expect(await B.store.prekeys.countOneTimePrekeys(device)).toBe(before - 1);
    expect(link.crossings.filter((c) => c.what === 'bundles').at(-1)).toEqual({
      from: 'a.example',
      to: 'b.example',
      what: 'bundles',
    });
  });

  it('gives a remote asker the user denied the answers of nobody (T13)', async () => {
    const bob = B.client('bob', 'denier');
    await bob.connect();
    const carol = A.client('carol', 'asker');
    await carol.connect();
    expect(await carol.subscribe('bob@b.example')).toBe('pending');
    await until(
      async () =>
        (await B.store.subscriptions.get('bob@b.example', 'carol@a.example'))?.state === 'pending',
    );
    expect(await bob.deny('carol@a.example')).toBe('denied');
    const devices = await carol.rawRequest(ClientFrame.GET_DEVICES, { address: 'bob@b.example' });
    const bundles = await carol.rawRequest(ClientFrame.GET_BUNDLES, { address: 'bob@b.example' });
    const nobody = await carol.rawRequest(ClientFrame.GET_DEVICES, {
      address: 'nobody@b.example',
    });
    expect({ ...devices, id: 0 }).toEqual({ ...nobody, id: 0 });
    expect(devices).toMatchObject({ deviceList: null, devices: [] });
    expect(bundles.bundles).toEqual([]);
  });
});

describe('same-domain checks the client keeps to its own domain', () => {
  it('seals for a remote contact with contactEnrolment on (that check is for home users)', async () => {
    const alice = A.client('alice', 'strict', { contactEnrolment: true, domainKey: A.domainKey });
    await alice.connect();
    const warnings: TrustWarningEvent[] = [];
    alice.on('trustWarning', (w) => warnings.push(w));
    const erin = B.client('erin', 'tablet');
    await erin.connect();
    const got = next<ReceivedMessage>(erin, 'message');
    const ids = await alice.sendMessage('erin@b.example', 'enrolled elsewhere');
    expect(ids.length).toBeGreaterThan(0);
    expect((await got).text).toBe('enrolled elsewhere');
    // (alice's own extra devices of these tests are unlisted: warned about, not sealed for.)
    expect(warnings.filter((w) => w.kind !== 'unlisted-device')).toEqual([]);
  });
});

describe('without federation', () => {
  it('answers every request about another domain ERR_DOMAIN_NOT_SERVED, as before', async () => {
    const alice = alone.client('alice', 'laptop');
    await alice.connect();
    const codes = await Promise.all(
      [
        alice.rawRequest(ClientFrame.GET_DEVICES, { address: 'bob@b.example' }),
        alice.rawRequest(ClientFrame.GET_BUNDLES, { address: 'bob@b.example' }),
        alice.rawRequest(ClientFrame.SUBSCRIBE, { presentity: 'bob@b.example' }),
        alice.rawRequest(ClientFrame.UNSUBSCRIBE, { presentity: 'bob@b.example' }),
        alice.rawRequest(ClientFrame.DECIDE, { watcher: 'bob@b.example', action: 'approve' }),
        alice.rawRequest(ClientFrame.SEND, {
          object: sealedMessage('bob@b.example/phone', randomBytes(16)),
        }),
      ].map((p) =>
        p.then(
          () => 'ok',
          (e: unknown) => (e as { code?: string }).code,
        ),
      ),
    );
    expect(codes).toEqual(Array<string>(6).fill('ERR_DOMAIN_NOT_SERVED'));
    expect(await alone.store.subscriptions.listForWatcher('alice@c.example')).toEqual([]);
  });

  it('passes a look-up that timed out or could not connect on, and the session stays open', async () => {
    const alice = A.client('alice', 'slow');
    await alice.connect();
    const codes: (string | undefined)[] = [];
    for (const failure of ['ERR_TIMEOUT', 'ERR_CONNECTION_CLOSED'] as const) {
      link.lookupFailure = failure;
      try {
        for (const type of [ClientFrame.GET_DEVICES, ClientFrame.GET_BUNDLES]) {
          codes.push(
            await alice.rawRequest(type, { address: 'bob@b.example' }).then(
              () => 'ok',
              (e: unknown) => (e as { code?: string }).code,
            ),
          );
        }
      } finally {
        link.lookupFailure = undefined;
      }
    }
    expect(codes).toEqual([
      'ERR_TIMEOUT',
      'ERR_TIMEOUT',
      'ERR_CONNECTION_CLOSED',
      'ERR_CONNECTION_CLOSED',
    ]);
    const after = await alice.rawRequest(ClientFrame.GET_DEVICES, { address: 'bob@b.example' });
    expect(after.deviceList).toBeInstanceOf(Uint8Array);
  });

  it('answers a domain the federation does not reach ERR_DOMAIN_NOT_SERVED', async () => {
    const alice = A.client('alice', 'far');
    await alice.connect();
    const code = await alice
      .rawRequest(ClientFrame.GET_DEVICES, { address: 'bob@elsewhere.example' })
      .then(
        () => 'ok',
        (e: unknown) => (e as { code?: string }).code,
      );
    expect(code).toBe('ERR_DOMAIN_NOT_SERVED');
  });
});
