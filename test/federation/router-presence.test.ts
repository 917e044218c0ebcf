/**
 * Presence (kind 2) and subscriptions (kind 3) across domains, between two real endpoints on
 * loopback with real SQLite stores (router-harness.ts): what the sending router queues, what
 * the receiving router hands to the service, and what it refuses from a peer that speaks for
 * users of a third domain, names watchers that are not ours, or sends malformed bodies.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from '../../src/crypto/index.js';
import {
  FederationKind,
  MAX_PRESENCE_WATCHERS,
  encodePresenceBody,
  encodeSubscriptionBody,
  federationPresenceId,
} from '../../src/federation/index.js';
import { MAX_SEALED_BYTES } from '../../src/seal/constants.js';
import { type CborValue, encodeStrictCbor } from '../../src/transport/cbor-strict.js';
import { trustFor } from './helpers.js';
import { sealedMessage, sealedPresence } from '../service/store/envelopes.js';
import { type TestDomain, makeDomain, newId, until } from './helpers.js';
import {
  ALICE,
  type Dom,
  Harness,
  RawLink,
  codeOf,
  eventually,
  link,
  rejectsWith,
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

async function pair(): Promise<[Dom, Dom]> {
  const [A, B] = await Promise.all([harness.start(a), harness.start(b)]);
  link(A, B);
  link(B, A);
  return [A, B];
}

async function rawTo(B: Dom): Promise<RawLink> {
  return new RawLink(await harness.raw(a, B), 'a.example');
}

const drained = (dom: Dom, peer: string) => async () =>
  (await dom.store.federationQueue.usage(peer)).count === 0;

describe('presence across domains (kind 2)', () => {
  it('crosses once per domain with the watchers, the same sealed bytes, and only once', async () => {
    const [A, B] = await pair();
    let frames = 0;
    A.outbound.on('delivered', (_peer, n) => (frames += n));
    const object = sealedPresence('alice@a.example', 7);
    const watchers = ['bob@b.example', 'carol@b.example'];
    await A.router.presence({ object, presentity: 'alice@a.example', watchers });
    await until(() => B.local.presences.length === 1);
    expect(B.local.presences[0]).toEqual({ object, presentity: 'alice@a.example', watchers });
    await eventually(drained(A, 'b.example'));
    expect(frames).toBe(1);
    // The same publish handed over again (a session's retry): same id, dropped by b's filter.
    await A.router.presence({ object, presentity: 'alice@a.example', watchers });
    await eventually(drained(A, 'b.example'));
    expect(B.local.presences).toHaveLength(1);
    expect(B.audit).toEqual([]);
    // Ids are domain separated and depend on presentity, version, peer and part.
    const id = federationPresenceId('alice@a.example', 7, 'b.example', 0);
    expect(federationPresenceId('alice@a.example', 8, 'b.example', 0)).not.toEqual(id);
    expect(federationPresenceId('alice@a.example', 7, 'c.example', 0)).not.toEqual(id);
    expect(federationPresenceId('alice@a.example', 7, 'b.example', 1)).not.toEqual(id);
    expect(federationPresenceId('alice@a.example', 7, 'b.example', 0)).toEqual(id);
  });

  it('splits a watcher list too long for one body, and every watcher gets it', async () => {
    const [A, B] = await pair();
    const watchers = Array.from(
      { length: MAX_PRESENCE_WATCHERS + 2000 },
      (_, i) => `watcher-number-${i}@b.example`,
    );
    const object = sealedPresence('alice@a.example', 1, 4000);
    await A.router.presence({ object, presentity: 'alice@a.example', watchers });
    await eventually(drained(A, 'b.example'), 10_000);
    expect(B.local.presences.length).toBeGreaterThanOrEqual(2);
    for (const p of B.local.presences) {
      expect(p.object).toEqual(object);
      expect(p.watchers.length).toBeLessThanOrEqual(MAX_PRESENCE_WATCHERS);
    }
    expect(B.local.presences.flatMap((p) => p.watchers)).toEqual(watchers);
  });

  it('refuses what the sending side must not queue', async () => {
    const [A] = await pair();
    const object = sealedPresence('alice@a.example', 1);
    const cases: [Parameters<Dom['router']['presence']>[0], string][] = [
      [
        { object, presentity: 'alice@a.example', watchers: ['bob@b.example', 'x@c.example'] },
        'ERR_INVALID_ARGUMENT',
      ],
      [
        { object, presentity: 'alice@a.example', watchers: ['eve@a.example'] },
        'ERR_INVALID_ARGUMENT',
      ],
      [
        { object, presentity: 'alice@a.example', watchers: ['Bob@b.example'] },
        'ERR_INVALID_ARGUMENT',
      ],
      [
        { object, presentity: 'bob@a.example', watchers: ['bob@b.example'] },
        'ERR_INVALID_ARGUMENT',
      ],
      [
        {
          object: sealedMessage('bob@b.example/phone', newId()),
          presentity: 'alice@a.example',
          watchers: ['bob@b.example'],
        },
        'ERR_INVALID_ARGUMENT',
      ],
      [
        {
          object: sealedPresence('bob@b.example', 1),
          presentity: 'bob@b.example',
          watchers: ['x@b.example'],
        },
        'ERR_INVALID_ARGUMENT',
      ],
      [
        { object, presentity: 'alice@a.example', watchers: ['carol@c.example'] },
        'ERR_DOMAIN_NOT_SERVED',
      ],
      [
        { object, presentity: 'alice@a.example', watchers: ['dave@d.example'] },
        'ERR_DOMAIN_NOT_SERVED',
      ],
      [
        {
          object: sealedPresence('alice@a.example', 2, MAX_SEALED_BYTES),
          presentity: 'alice@a.example',
          watchers: ['bob@b.example'],
        },
        'ERR_FRAME_TOO_LARGE',
      ],
    ];
    const codes = [];
    for (const [request] of cases) codes.push(await codeOf(A.router.presence(request)));
    expect(codes).toEqual(cases.map(([, code]) => code));
    expect(await A.store.federationQueue.peers()).toEqual([]);
    // No watcher in the domain: nothing to send.
    await A.router.presence({ object, presentity: 'alice@a.example', watchers: [] });
    expect(await A.store.federationQueue.peers()).toEqual([]);
  });

  it('refuses a presentity of a third domain, and watchers that are not ours, audited', async () => {
    const B = await harness.start(b);
    const raw = await rawTo(B);
    const own = sealedPresence('alice@a.example', 1);
    const body = (object: Uint8Array, watchers: string[]): Uint8Array =>
      encodePresenceBody({ object, watchers });
    expect(
      await raw.data(
        FederationKind.presence,
        body(sealedPresence('carol@c.example', 1), ['bob@b.example']),
      ),
    ).toBe('ERR_NOT_AUTHORIZED');
    expect(
      await raw.data(FederationKind.presence, body(own, ['bob@b.example', 'x@c.example'])),
    ).toBe('ERR_DOMAIN_NOT_SERVED');
    // Its own users are not ours to fan out to either.
    expect(await raw.data(FederationKind.presence, body(own, ['eve@a.example']))).toBe(
      'ERR_DOMAIN_NOT_SERVED',
    );
    expect(B.audit).toEqual([
      expect.objectContaining({ type: 'federation.sender-refused', claimedDomain: 'c.example' }),
      expect.objectContaining({ type: 'federation.misrouted', peer: 'a.example' }),
      expect.objectContaining({ type: 'federation.misrouted', peer: 'a.example' }),
    ]);
    expect(await B.store.audit.list({ kind: 'federation.misrouted' })).toHaveLength(2);
    expect(B.local.presences).toEqual([]);
    // The honest case on the same link goes through.
    expect(await raw.data(FederationKind.presence, body(own, ['bob@b.example']))).toBe('ACK');
    expect(B.local.presences).toHaveLength(1);
  });

  it('refuses malformed presence bodies as invalid payloads', async () => {
    const B = await harness.start(b);
    const raw = await rawTo(B);
    const object = sealedPresence('alice@a.example', 1);
    const tooMany = Array.from({ length: MAX_PRESENCE_WATCHERS + 1 }, (_, i) => `u${i}@b.example`);
    const bodies: CborValue[] = [
      { object, watchers: ['bob@b.example'] }, // a map, not the bytes of one
      randomBytes(40),
      encodeStrictCbor({ object, watchers: ['bob@b.example'], extra: 1 }),
      encodeStrictCbor({ object }),
      encodeStrictCbor({ object, watchers: [] }),
      encodeStrictCbor({ object, watchers: tooMany }),
      encodeStrictCbor({ object, watchers: ['bob@b.example', 'bob@b.example'] }),
      encodeStrictCbor({ object, watchers: ['Bob@b.example'] }),
      encodeStrictCbor({ object, watchers: ['im:bob@b.example'] }),
      encodeStrictCbor({ object, watchers: ['bob@b.example/phone'] }),
      encodeStrictCbor({ object, watchers: [7] }),
      encodeStrictCbor({ object: 'text', watchers: ['bob@b.example'] }),
      encodeStrictCbor({ object: randomBytes(100), watchers: ['bob@b.example'] }),
      encodeStrictCbor({
        object: sealedMessage('bob@b.example/phone', newId()),
        watchers: ['bob@b.example'],
      }),
    ];
    const codes = [];
    for (const body of bodies) codes.push(await raw.data(FederationKind.presence, body));
    expect(codes).toEqual(bodies.map(() => 'ERR_PAYLOAD_INVALID'));
    expect(new Set(B.audit.map((e) => e.type))).toEqual(new Set(['federation.object-refused']));
    expect(B.local.presences).toEqual([]);
  });

  it('drops a presence the peer refused for good: no notice to anyone', async () => {
    const [A, B] = await pair();
    const dropped: string[] = [];
    A.router.on('noticeDropped', (device) => dropped.push(device));
    B.reloaded.trust = trustFor('b.example', [{ domain: 'a.example', proof: 'deny' }]);
    await A.router.presence({
      object: sealedPresence('alice@a.example', 1),
      presentity: 'alice@a.example',
      watchers: ['bob@b.example'],
    });
    await until(() => A.bounces.length === 1);
    expect(A.bounces[0]).toMatchObject({
      kind: FederationKind.presence,
      code: 'ERR_NOT_AUTHORIZED',
    });
    expect(A.local.notices.size).toBe(0);
    expect(dropped).toEqual([]);
    await eventually(drained(A, 'b.example'));
  });
});

describe('subscriptions and decisions across domains (kind 3)', () => {
  it("forwards a watcher's requests to the presentity's domain, every one, in order", async () => {
    const [A, B] = await pair();
    const req = { presentity: 'bob@b.example', watcher: 'alice@a.example' } as const;
    await A.router.subscription({ ...req, action: 'request' });
    await A.router.subscription({ ...req, action: 'cancel' });
    await A.router.subscription({ ...req, action: 'request' });
    await until(() => B.local.subscriptions.length === 3);
    expect(B.local.subscriptions.map((s) => s.action)).toEqual(['request', 'cancel', 'request']);
    expect(B.local.subscriptions[0]).toEqual({ ...req, action: 'request' });
    expect(B.audit).toEqual([]);
  });

  it("forwards a presentity's decisions to the watcher's domain, with presence on approval", async () => {
    const [A, B] = await pair();
    const presence = sealedPresence('bob@b.example', 3);
    const req = { presentity: 'bob@b.example', watcher: 'alice@a.example' } as const;
    await B.router.decision({ ...req, action: 'approve', presence });
    await B.router.decision({ ...req, action: 'revoke' });
    await until(() => A.local.decisions.length === 2);
    expect(A.local.decisions).toEqual([
      { ...req, action: 'approve', presence },
      { ...req, action: 'revoke' },
    ]);
    // A presence too large to ride along one frame with the decision: the decision still goes.
    await B.router.decision({
      ...req,
      action: 'approve',
      presence: sealedPresence('bob@b.example', 4, MAX_SEALED_BYTES),
    });
    await until(() => A.local.decisions.length === 3);
    expect(A.local.decisions[2]).toEqual({ ...req, action: 'approve' });
  });

  it('refuses what the sending side must not queue', async () => {
    const [A] = await pair();
    const results = [
      await codeOf(
        A.router.subscription({
          presentity: 'bob@b.example',
          watcher: 'eve@b.example',
          action: 'request',
        }),
      ),
      await codeOf(
        A.router.subscription({
          presentity: 'eve@a.example',
          watcher: 'alice@a.example',
          action: 'request',
        }),
      ),
      await codeOf(
        A.router.subscription({
          presentity: 'carol@c.example',
          watcher: 'alice@a.example',
          action: 'request',
        }),
      ),
      await codeOf(
        A.router.decision({
          presentity: 'bob@b.example',
          watcher: 'alice@a.example',
          action: 'approve',
        }),
      ),
      await codeOf(
        A.router.decision({
          presentity: 'alice@a.example',
          watcher: 'bob@b.example',
          action: 'deny',
          presence: sealedPresence('alice@a.example', 1),
        }),
      ),
      await codeOf(
        A.router.decision({
          presentity: 'alice@a.example',
          watcher: 'bob@b.example',
          action: 'approve',
          presence: sealedPresence('eve@a.example', 1),
        }),
      ),
      await codeOf(
        A.router.decision({
          presentity: 'alice@a.example',
          watcher: 'carol@c.example',
          action: 'approve',
        }),
      ),
    ];
    expect(results).toEqual([
      'ERR_INVALID_ARGUMENT',
      'ERR_INVALID_ARGUMENT',
      'ERR_DOMAIN_NOT_SERVED',
      'ERR_INVALID_ARGUMENT',
      'ERR_INVALID_ARGUMENT',
      'ERR_INVALID_ARGUMENT',
      'ERR_DOMAIN_NOT_SERVED',
    ]);
    expect(await A.store.federationQueue.peers()).toEqual([]);
  });

  it('refuses a peer speaking for a third domain or about users not ours, audited', async () => {
    const B = await harness.start(b);
    const raw = await rawTo(B);
    const sub = (presentity: string, watcher: string): Uint8Array =>
      encodeSubscriptionBody({ type: 'subscription', presentity, watcher, action: 'request' });
    const dec = (presentity: string, watcher: string): Uint8Array =>
      encodeSubscriptionBody({ type: 'decision', presentity, watcher, action: 'approve' });
    const results = [
      // A watcher of c.example, claimed by a.example.
      await raw.data(FederationKind.subscription, sub('bob@b.example', 'carol@c.example')),
      // A presentity of c.example: not ours to decide for.
      await raw.data(FederationKind.subscription, sub('carol@c.example', 'alice@a.example')),
      // A decision of c.example's presentity, claimed by a.example.
      await raw.data(FederationKind.subscription, dec('carol@c.example', 'bob@b.example')),
      // A decision about a watcher that is not ours.
      await raw.data(FederationKind.subscription, dec('alice@a.example', 'eve@a.example')),
      // A decision by one of OUR presentities, claimed by a.example.
      await raw.data(FederationKind.subscription, dec('bob@b.example', 'alice@a.example')),
    ];
    expect(results).toEqual([
      'ERR_NOT_AUTHORIZED',
      'ERR_DOMAIN_NOT_SERVED',
      'ERR_NOT_AUTHORIZED',
      'ERR_DOMAIN_NOT_SERVED',
      'ERR_NOT_AUTHORIZED',
    ]);
    expect(B.audit.map((e) => [e.type, e.claimedDomain])).toEqual([
      ['federation.sender-refused', 'c.example'],
      ['federation.misrouted', undefined],
      ['federation.sender-refused', 'c.example'],
      ['federation.misrouted', undefined],
      ['federation.sender-refused', 'b.example'],
    ]);
    expect(B.local.subscriptions).toEqual([]);
    expect(B.local.decisions).toEqual([]);
    expect(
      await raw.data(FederationKind.subscription, sub('bob@b.example', 'alice@a.example')),
    ).toBe('ACK');
    expect(
      await raw.data(FederationKind.subscription, dec('alice@a.example', 'bob@b.example')),
    ).toBe('ACK');
    expect(B.local.subscriptions).toHaveLength(1);
    expect(B.local.decisions).toHaveLength(1);
  });

  it('refuses malformed subscription bodies and foreign presence in a decision', async () => {
    const B = await harness.start(b);
    const raw = await rawTo(B);
    const base = { presentity: 'alice@a.example', watcher: 'bob@b.example' };
    const bodies: CborValue[] = [
      { type: 'subscription', ...base, action: 'request' },
      encodeStrictCbor({ type: 'follow', ...base, action: 'request' }),
      encodeStrictCbor({ type: 'decision', ...base, action: 'request' }),
      encodeStrictCbor({
        type: 'subscription',
        presentity: 'bob@b.example',
        watcher: 'alice@a.example',
        action: 'approve',
      }),
      encodeStrictCbor({ type: 'decision', ...base }),
      encodeStrictCbor({ type: 'decision', ...base, action: 'approve', extra: true }),
      encodeStrictCbor({
        type: 'decision',
        ...base,
        action: 'deny',
        presence: sealedPresence('alice@a.example', 1),
      }),
      encodeStrictCbor({
        type: 'decision',
        ...base,
        action: 'approve',
        presence: sealedPresence('eve@a.example', 1),
      }),
      encodeStrictCbor({
        type: 'decision',
        ...base,
        action: 'approve',
        presence: sealedMessage('bob@b.example/phone', newId()),
      }),
      encodeStrictCbor({ type: 'decision', ...base, action: 'approve', presence: randomBytes(50) }),
      encodeStrictCbor({
        type: 'decision',
        presentity: 'alice@a.example',
        watcher: 'alice@a.example',
        action: 'approve',
      }),
      encodeStrictCbor({
        type: 'decision',
        presentity: 'Alice@a.example',
        watcher: 'bob@b.example',
        action: 'approve',
      }),
    ];
    const codes = [];
    for (const body of bodies) codes.push(await raw.data(FederationKind.subscription, body));
    expect(codes).toEqual(bodies.map(() => 'ERR_PAYLOAD_INVALID'));
    expect(new Set(B.audit.map((e) => e.type))).toEqual(new Set(['federation.object-refused']));
    expect(B.local.decisions).toEqual([]);
    expect(B.local.subscriptions).toEqual([]);
  });

  it('drops a subscription the peer refused for good: no notice', async () => {
    const [A, B] = await pair();
    B.reloaded.trust = trustFor('b.example', [{ domain: 'a.example', proof: 'deny' }]);
    await A.router.subscription({
      presentity: 'bob@b.example',
      watcher: 'alice@a.example',
      action: 'request',
    });
    await until(() => A.bounces.length === 1);
    expect(A.bounces[0]).toMatchObject({ kind: FederationKind.subscription });
    expect(A.local.notices.size).toBe(0);
    expect(B.audit).toEqual([expect.objectContaining({ type: 'federation.peer-refused' })]);
    await rejectsWith(
      A.router.subscription({ presentity: 'bob@b.example', watcher: ALICE, action: 'request' }),
      'ERR_INVALID_ARGUMENT',
    );
  });
});
