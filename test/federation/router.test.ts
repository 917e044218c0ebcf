/**
 * Routing of sealed messages across domains over real links on loopback, each domain with its
 * own SQLite store in a temp dir, its durable outbound queue and its store-backed duplicate
 * filter (router-harness.ts): exactly-once delivery with the stamp, the receiver's checks
 * (third-domain claims, misrouted objects, unknown devices answered as a nonexistent user would
 * be, peers no longer allowed), the sender's policy check, queueing while the peer is down, and
 * bounce notices. Presence and subscriptions: router-presence.test.ts; look-ups:
 * router-lookup.test.ts; rate limits: router-limits.test.ts.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../../src/crypto/index.js';
import { ImppError, isImppError } from '../../src/errors.js';
import {
  type DeliveryNotice,
  FederationKind,
  LinkFrameType,
  type OutboundBounce,
  decodeDeliveryNotice,
  encodeDeliveryNotice,
  encodePresenceBody,
  federationObjectId,
} from '../../src/federation/index.js';
import { MAX_SEALED_BYTES } from '../../src/seal/constants.js';
import { readEnvelopeHeader } from '../../src/seal/header.js';
import { type CborValue, encodeStrictCbor } from '../../src/transport/cbor-strict.js';
import { sealedMessage, sealedPresence } from '../service/store/envelopes.js';
import { type TestDomain, makeDomain, newId, trustFor, until } from './helpers.js';
import {
  ALICE,
  BOB,
  Harness,
  addDevice,
  eventually,
  link,
  nextFrame as answer,
  pendingOf,
  rejectsWith,
  send,
} from './router-harness.js';

let a: TestDomain;
let b: TestDomain;

beforeAll(async () => {
  [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
});

const harness = new Harness((d) =>
  d === a
    ? [
        { domain: 'b.example', proof: 'key', publicKey: b.key.publicKey },
        { domain: 'c.example', proof: 'deny' },
      ]
    : [{ domain: 'a.example', proof: 'key', publicKey: a.key.publicKey }],
);

afterEach(() => harness.close());

const startDomain = (d: TestDomain, options?: Parameters<Harness['start']>[1]) =>
  harness.start(d, options);
const rawA = (B: Awaited<ReturnType<typeof startDomain>>) => harness.raw(a, B);

describe('FederationRouter: a.example → b.example', () => {
  it('delivers a message exactly once, to the right device, stamped with a.example', async () => {
    const [A, B] = await Promise.all([startDomain(a), startDomain(b)]);
    link(A, B);
    await addDevice(A.store, ALICE);
    await addDevice(B.store, BOB);
    await addDevice(B.store, 'bob@b.example/tablet');
    const sent = await send(A, BOB);
    expect(sent.duplicate).toBe(false);
    // The router tells the device after the store resolved (the stamp is kept by then).
    await until(() => B.local.notified.length === 1);
    expect(await pendingOf(B, BOB)).toEqual([toHex(sent.object)]);
    expect(await pendingOf(B, 'bob@b.example/tablet')).toEqual([]);
    expect(B.local.stamps.get(`${BOB} ${toHex(sent.id)}`)).toBe('a.example');
    expect(B.local.notified).toEqual([BOB]);
    await eventually(async () => (await A.store.federationQueue.usage('b.example')).count === 0);

    // The client did not see RESULT and sends again: dropped by b's filter (same object id),
    // even after Bob's device took and acknowledged the first copy.
    await B.store.queue.acknowledge(BOB, [sent.id]);
    const again = await A.router.route({
      object: sent.object,
      header: readEnvelopeHeader(sent.object),
      fromDevice: ALICE,
    });
    expect(again.duplicate).toBe(false);
    await eventually(async () => (await A.store.federationQueue.usage('b.example')).count === 0);
    expect(await pendingOf(B, BOB)).toEqual([]);
    expect(B.local.notified).toEqual([BOB]);
    expect(A.local.noticesOf(ALICE)).toEqual([]);
    expect(B.audit).toEqual([]);
  });

  it('keeps exactly once per object when the link is cut mid-stream and an id record is lost', async () => {
    const [A, B] = await Promise.all([startDomain(a), startDomain(b)]);
    link(A, B);
    await addDevice(B.store, BOB);
    let cut = false;
    B.router.on('delivered', () => {
      if (!cut && B.local.notified.length >= 20) {
        cut = true;
        B.endpoint.linkTo('a.example')?.close('ERR_TIMEOUT', 'test cut');
      }
    });
    const objects: Uint8Array[] = [];
    for (let i = 0; i < 80; i++) objects.push((await send(A, BOB)).object);
    await eventually(async () => (await pendingOf(B, BOB)).length >= 80, 10_000);
    await eventually(async () => (await A.store.federationQueue.usage('b.example')).count === 0);
    expect(cut).toBe(true);
    expect(await pendingOf(B, BOB)).toEqual(objects.map(toHex));

    // A receiver killed between its queue commit and its id record (simulated: the record is
    // forgotten) gets the resend again: the device queue's unique id keeps it single.
    const first = objects[0] as Uint8Array;
    const header = readEnvelopeHeader(first);
    if (header.kind === 'presence') throw new Error('unreachable');
    await B.store.federationSeen.forget(
      'a.example',
      federationObjectId(header.recipientDevice, header.messageId),
    );
    await A.router.route({ object: first, header, fromDevice: ALICE });
    await eventually(async () => (await A.store.federationQueue.usage('b.example')).count === 0);
    expect(await pendingOf(B, BOB)).toEqual(objects.map(toHex));
  });

  it('carries the largest sealed object a client may send', async () => {
    const [A, B] = await Promise.all([startDomain(a), startDomain(b)]);
    link(A, B);
    await addDevice(B.store, BOB);
    const object = sealedMessage(BOB, newId(), MAX_SEALED_BYTES);
    expect(object.length).toBe(MAX_SEALED_BYTES);
    await A.router.route({ object, header: readEnvelopeHeader(object), fromDevice: ALICE });
    await until(() => B.local.notified.length === 1 || A.bounces.length > 0, 5000);
    expect(A.bounces).toEqual([]);
    expect(await pendingOf(B, BOB)).toEqual([toHex(object)]);
  });

  it('bounces at once for a recipient whose queue is full, without holding up the peer', async () => {
    const [A, B] = await Promise.all([
      startDomain(a),
      startDomain(b, { quotas: { queueMaxCount: 2 } }),
    ]);
    link(A, B);
    await addDevice(A.store, ALICE);
    await addDevice(B.store, BOB);
    await addDevice(B.store, 'carol@b.example/phone');
    let retries = 0;
    A.outbound.on('retry', () => (retries += 1));
    const third = [];
    for (let i = 0; i < 3; i++) third.push(await send(A, BOB));
    await send(A, 'carol@b.example/phone');
    await until(() => A.local.noticesOf(ALICE).length === 1 && B.local.notified.length === 3);
    expect(A.local.noticesOf(ALICE)[0]).toMatchObject({
      recipient: BOB,
      reason: 'refused',
      code: 'ERR_QUOTA_EXCEEDED',
    });
    expect(A.local.noticesOf(ALICE)[0]?.messageId).toEqual(third[2]?.id);
    expect(await pendingOf(B, BOB)).toHaveLength(2);
    expect(await pendingOf(B, 'carol@b.example/phone')).toHaveLength(1);
    expect(retries).toBe(0);
  });

  it('queues while the peer is down and delivers when it is back', async () => {
    const A = await startDomain(a);
    A.routes.set('b.example', [{ host: '127.0.0.1', port: 1 }]);
    let retries = 0;
    A.outbound.on('retry', () => (retries += 1));
    const sent = await send(A, BOB);
    // Durable before the client is answered; nothing can have been delivered.
    expect((await A.store.federationQueue.usage('b.example')).count).toBe(1);
    await until(() => retries >= 2);
    const B = await startDomain(b);
    await addDevice(B.store, BOB);
    link(A, B);
    await A.outbound.peerUp('b.example');
    await until(() => B.local.notified.length === 1, 5000);
    expect(await pendingOf(B, BOB)).toEqual([toHex(sent.object)]);
    expect(B.local.stamps.get(`${BOB} ${toHex(sent.id)}`)).toBe('a.example');
    await eventually(async () => (await A.store.federationQueue.usage('b.example')).count === 0);
  });

  it('bounces an object that expired while the peer stayed down: a notice to the sender device', async () => {
    const A = await startDomain(a, { outbound: { expireAfterMs: 300, sweepIntervalMs: 50 } });
    A.routes.set('b.example', [{ host: '127.0.0.1', port: 1 }]);
    await addDevice(A.store, ALICE);
    await addDevice(A.store, 'alice@a.example/phone');
    const before = Date.now();
    const sent = await send(A, BOB);
    await until(() => A.local.noticesOf(ALICE).length === 1, 5000);
    const [notice] = A.local.noticesOf(ALICE);
    expect(notice).toMatchObject({
      v: 1,
      type: 'delivery-failure',
      recipient: BOB,
      domain: 'b.example',
      reason: 'expired',
      code: 'ERR_TIMEOUT',
    });
    expect(notice?.messageId).toEqual(sent.id);
    expect(notice?.queuedAt).toBeGreaterThanOrEqual(before);
    expect(notice?.at).toBeGreaterThanOrEqual((notice?.queuedAt ?? 0) + 300);
    // Only the sending device hears of it, and the object is gone from the queue.
    expect(A.local.noticesOf('alice@a.example/phone')).toEqual([]);
    expect(A.local.notified).toEqual([ALICE]);
    await eventually(async () => (await A.store.federationQueue.usage('b.example')).count === 0);
  });

  it('refuses to route to a domain the trust configuration does not federate with', async () => {
    const A = await startDomain(a);
    for (const to of ['carol@c.example/phone', 'dave@d.example/phone']) {
      await rejectsWith(send(A, to), 'ERR_DOMAIN_NOT_SERVED');
    }
    expect(await A.store.federationQueue.peers()).toEqual([]);
    // Not the router's business: presence, local recipients, senders of other domains.
    const presence = sealedPresence('alice@a.example', 1);
    await rejectsWith(
      A.router.route({ object: presence, header: readEnvelopeHeader(presence), fromDevice: ALICE }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(send(A, 'alice@a.example/phone'), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(send(A, BOB, 'mallory@b.example/x'), 'ERR_INVALID_ARGUMENT');
  });
});

describe('FederationRouter: what the receiving domain refuses', () => {
  it('refuses and audits a DATA frame whose origin is a third domain (link check)', async () => {
    const B = await startDomain(b);
    await addDevice(B.store, BOB);
    const raw = await rawA(B);
    const id = newId();
    raw.send(LinkFrameType.DATA, {
      seq: 1,
      id,
      origin: 'c.example',
      kind: FederationKind.sealed,
      body: sealedMessage(BOB, newId()),
    });
    const r = await answer(raw);
    expect(r.type).toBe(LinkFrameType.REJECT);
    expect(r.body.code).toBe('ERR_NOT_AUTHORIZED');
    expect(B.linkAudit).toContainEqual(
      expect.objectContaining({
        type: 'federation.origin-refused',
        peer: 'a.example',
        claimedOrigin: 'c.example',
      }),
    );
    expect(await pendingOf(B, BOB)).toEqual([]);
  });

  it('refuses and audits presence whose envelope claims a third domain (router check)', async () => {
    const [A, B] = await Promise.all([startDomain(a), startDomain(b)]);
    link(A, B);
    // a.example misbehaving: its own queue, bypassing its router's checks.
    await A.outbound.enqueue({
      peer: 'b.example',
      sender: 'alice@a.example',
      id: newId(),
      kind: FederationKind.presence,
      body: encodePresenceBody({
        object: sealedPresence('carol@c.example', 1),
        watchers: ['bob@b.example'],
      }),
    });
    await until(() => A.bounces.length === 1);
    expect(A.bounces[0]).toMatchObject({ reason: 'refused', code: 'ERR_NOT_AUTHORIZED' });
    expect(B.audit).toEqual([
      expect.objectContaining({
        type: 'federation.sender-refused',
        peer: 'a.example',
        claimedDomain: 'c.example',
      }),
    ]);
    const stored = await B.store.audit.list({ kind: 'federation.sender-refused' });
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      source: 'a.example',
      outcome: 'refused',
      details: { peer: 'a.example', claimedDomain: 'c.example' },
    });
    expect(B.local.presences).toEqual([]);
    // Its own presentity's presence is handed to the service, not audited.
    await A.outbound.enqueue({
      peer: 'b.example',
      sender: 'alice@a.example',
      id: newId(),
      kind: FederationKind.presence,
      body: encodePresenceBody({
        object: sealedPresence('alice@a.example', 1),
        watchers: ['bob@b.example'],
      }),
    });
    await until(() => B.local.presences.length === 1);
    expect(A.bounces).toHaveLength(1);
    expect(B.audit).toHaveLength(1);
  });

  it('refuses and audits an object for a recipient outside its domain', async () => {
    const [A, B] = await Promise.all([startDomain(a), startDomain(b)]);
    link(A, B);
    await addDevice(A.store, ALICE);
    const object = sealedMessage('carol@c.example/phone', newId());
    await A.outbound.enqueue({
      peer: 'b.example',
      sender: ALICE,
      id: newId(),
      kind: FederationKind.sealed,
      body: object,
    });
    await until(() => A.local.noticesOf(ALICE).length === 1);
    expect(A.local.noticesOf(ALICE)[0]).toMatchObject({
      reason: 'refused',
      code: 'ERR_DOMAIN_NOT_SERVED',
      recipient: 'carol@c.example/phone',
      domain: 'b.example',
    });
    expect(B.audit).toEqual([expect.objectContaining({ type: 'federation.misrouted' })]);
    expect(await B.store.audit.list({ kind: 'federation.misrouted' })).toHaveLength(1);
  });

  it('refuses garbage and unknown kinds as invalid payloads, audited', async () => {
    const B = await startDomain(b);
    const raw = await rawA(B);
    const bodies: [number, unknown][] = [
      [FederationKind.sealed, 'text, not bytes'],
      [FederationKind.sealed, randomBytes(64)],
      [FederationKind.sealed, sealedPresence('alice@a.example', 1)],
      [FederationKind.lookup, randomBytes(8)],
    ];
    let seq = 0;
    for (const [kind, body] of bodies) {
      seq += 1;
      raw.send(LinkFrameType.DATA, {
        seq,
        id: newId(),
        origin: 'a.example',
        kind,
        body: body as Uint8Array,
      });
      const r = await answer(raw);
      expect(r.type).toBe(LinkFrameType.REJECT);
      expect(r.body.code).toBe('ERR_PAYLOAD_INVALID');
    }
    expect(B.audit.map((e) => e.type)).toEqual(Array(4).fill('federation.object-refused'));
  });

  it('bounds the audit records one peer can cause, and says how many it left out', async () => {
    const B = await startDomain(b, { router: { auditLimit: { perPeer: 3, windowMs: 300 } } });
    const raw = await rawA(B);
    let seq = 0;
    const garbage = async (): Promise<void> => {
      seq += 1;
      raw.send(LinkFrameType.DATA, {
        seq,
        id: newId(),
        origin: 'a.example',
        kind: FederationKind.sealed,
        body: randomBytes(32),
      });
      expect((await answer(raw)).body.code).toBe('ERR_PAYLOAD_INVALID');
    };
    for (let i = 0; i < 10; i++) await garbage();
    expect(B.audit).toHaveLength(10);
    expect(await B.store.audit.list()).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 350));
    await garbage();
    const records = await B.store.audit.list();
    expect(records).toHaveLength(4);
    expect(records[3]?.details).toMatchObject({ peer: 'a.example', suppressed: 7 });
  });

  it('answers an unknown user, an unknown device and a revoked device alike (T13)', async () => {
    const B = await startDomain(b);
    await addDevice(B.store, BOB);
    await addDevice(B.store, 'bob@b.example/old');
    await B.store.devices.revoke('bob@b.example', 'old', Date.now());
    const raw = await rawA(B);
    const targets = ['nobody@b.example/phone', 'bob@b.example/tablet', 'bob@b.example/old'];
    const answers: unknown[] = [];
    let seq = 0;
    for (const to of targets) {
      seq += 1;
      raw.send(LinkFrameType.DATA, {
        seq,
        id: newId(),
        origin: 'a.example',
        kind: FederationKind.sealed,
        body: sealedMessage(to, newId()),
      });
      const r = await answer(raw);
      expect(r.type).toBe(LinkFrameType.REJECT);
      answers.push({ code: r.body.code, message: r.body.message });
    }
    expect(answers[0]).toMatchObject({ code: 'ERR_NOT_FOUND' });
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    // Not a misbehaviour: nothing audited, nothing stored.
    expect(B.audit).toEqual([]);
    expect(await B.store.audit.list()).toEqual([]);
    expect(await pendingOf(B, BOB)).toEqual([]);
  });

  it('gives the sender identical notices for an unknown user and a revoked device', async () => {
    const [A, B] = await Promise.all([startDomain(a), startDomain(b)]);
    link(A, B);
    await addDevice(A.store, ALICE);
    await addDevice(B.store, 'bob@b.example/old');
    await B.store.devices.revoke('bob@b.example', 'old', Date.now());
    await send(A, 'nobody@b.example/phone');
    await send(A, 'bob@b.example/old');
    await until(() => A.local.noticesOf(ALICE).length === 2);
    const shape = A.local
      .noticesOf(ALICE)
      .map(({ v, type, domain, reason, code }) => ({ v, type, domain, reason, code }));
    expect(shape[0]).toEqual({
      v: 1,
      type: 'delivery-failure',
      domain: 'b.example',
      reason: 'refused',
      code: 'ERR_NOT_FOUND',
    });
    expect(shape[1]).toEqual(shape[0]);
  });

  it('refuses objects from a peer its current configuration no longer federates with', async () => {
    const [A, B] = await Promise.all([startDomain(a), startDomain(b)]);
    link(A, B);
    await addDevice(A.store, ALICE);
    await addDevice(B.store, BOB);
    await send(A, BOB);
    await eventually(async () => (await pendingOf(B, BOB)).length === 1);
    // The link stays open; the reloaded configuration denies a.example from now on.
    B.reloaded.trust = trustFor('b.example', [{ domain: 'a.example', proof: 'deny' }]);
    await send(A, BOB);
    await until(() => A.local.noticesOf(ALICE).length === 1);
    expect(A.local.noticesOf(ALICE)[0]).toMatchObject({
      reason: 'refused',
      code: 'ERR_NOT_AUTHORIZED',
    });
    expect(await pendingOf(B, BOB)).toHaveLength(1);
    expect(B.audit).toEqual([expect.objectContaining({ type: 'federation.peer-refused' })]);
  });
});

describe('FederationRouter.bounce', () => {
  it('tells the sending device once per object, and drops notices with nobody to tell', async () => {
    const A = await startDomain(a);
    await addDevice(A.store, ALICE);
    const dropped: [string, string][] = [];
    A.router.on('noticeDropped', (device, code) => dropped.push([device, code]));
    const object = sealedMessage(BOB, newId());
    const bounce = (sender: string): OutboundBounce => ({
      peer: 'b.example',
      sender,
      id: newId(),
      kind: FederationKind.sealed,
      body: object,
      enqueuedAt: 1,
      reason: 'refused',
      code: 'ERR_NOT_FOUND',
    });
    const mine = bounce(ALICE);
    // Repeated, as after a crash between the notice and the queue removal.
    await A.router.bounce([mine]);
    await A.router.bounce([mine]);
    await A.router.bounce([bounce('s1'), bounce('bob@b.example/phone'), bounce('eve@a.example/x')]);
    expect(A.local.noticesOf(ALICE)).toHaveLength(1);
    expect(A.local.notified).toEqual([ALICE]);
    expect(dropped).toEqual([
      ['s1', 'ERR_ADDRESS_INVALID'],
      ['bob@b.example/phone', 'ERR_ADDRESS_INVALID'],
      ['eve@a.example/x', 'ERR_NOT_FOUND'],
    ]);
  });
});

describe('delivery-failure notice format', () => {
  const notice: DeliveryNotice = {
    v: 1,
    type: 'delivery-failure',
    messageId: new Uint8Array(16).fill(7),
    recipient: BOB,
    domain: 'b.example',
    reason: 'expired',
    code: 'ERR_TIMEOUT',
    queuedAt: 1_700_000_000_000,
    at: 1_700_000_100_000,
  };

  it('round-trips and is refused when altered', () => {
    expect(decodeDeliveryNotice(encodeDeliveryNotice(notice))).toEqual(notice);
    const altered: Record<string, CborValue>[] = [
      { ...notice, v: 2 },
      { ...notice, type: 'receipt' },
      { ...notice, reason: 'lost' },
      { ...notice, messageId: new Uint8Array(8) },
      { ...notice, code: 'not a code' },
      { ...notice, at: -1 },
      { ...notice, extra: 1 },
    ];
    const codes = altered.map((n) => {
      try {
        decodeDeliveryNotice(encodeStrictCbor(n));
        return 'accepted';
      } catch (e) {
        return isImppError(e) ? e.code : 'other';
      }
    });
    expect(codes).toEqual([
      'ERR_VERSION_UNSUPPORTED',
      ...Array<string>(6).fill('ERR_PAYLOAD_INVALID'),
    ]);
    const missing: Record<string, CborValue> = { ...notice };
    delete missing.at;
    expect(() => decodeDeliveryNotice(encodeStrictCbor(missing))).toThrow(ImppError);
    expect(() => decodeDeliveryNotice(randomBytes(20))).toThrow(ImppError);
  });
});
