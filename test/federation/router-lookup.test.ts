/**
 * Look-ups across domains (kinds 4 and 5) between two real endpoints on loopback with real
 * SQLite stores (router-harness.ts): devices and prekey bundles asked over the open link and
 * answered on it, outside the durable queue and the durable duplicate filter; time-outs, the
 * per-peer bound of waiting look-ups, a link that closes under a waiting look-up; and a lying
 * peer, played by hand: answers for another user, a third domain's devices, forged request ids,
 * malformed and oversized answers, look-ups on behalf of a third domain's user.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../../src/crypto/index.js';
import {
  FederationKind,
  MAX_LOOKUP_DEVICES,
  decodeLookupRequest,
  encodeLookupAnswer,
  encodeLookupRequest,
} from '../../src/federation/index.js';
import type { BundleAnswer } from '../../src/service/remote.js';
import {
  type CborValue,
  decodeStrictCbor,
  encodeStrictCbor,
} from '../../src/transport/cbor-strict.js';
import { type TestDomain, makeDomain, until } from './helpers.js';
import {
  ALICE,
  BOB,
  type Dom,
  Harness,
  RawLink,
  type StartOptions,
  addDevice,
  codeOf,
  link,
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

async function pair(options: StartOptions = {}): Promise<[Dom, Dom]> {
  const [A, B] = await Promise.all([harness.start(a, options), harness.start(b, options)]);
  link(A, B);
  link(B, A);
  return [A, B];
}

/** Registers `device` with a signed prekey and `oneTime` one-time prekeys (ids 1..n). */
async function withPrekeys(dom: Dom, device: string, oneTime: number): Promise<void> {
  await addDevice(dom.store, device);
  await dom.store.prekeys.putSignedPrekey(device, {
    keyId: 9,
    publicKey: randomBytes(32),
    signature: randomBytes(64),
    uploadedAt: Date.now(),
  });
  if (oneTime > 0) {
    await dom.store.prekeys.addOneTimePrekeys(
      device,
      Array.from({ length: oneTime }, (_, i) => ({ keyId: i + 1, publicKey: randomBytes(32) })),
    );
  }
}

const bundle = (device: string): BundleAnswer => ({
  device,
  identityKey: randomBytes(32),
  signedPrekey: { id: 1, publicKey: randomBytes(32), signature: randomBytes(64) },
});

describe('look-ups across domains', () => {
  it("answers devices and bundles from the user's home domain, outside the durable filter", async () => {
    const [A, B] = await pair();
    await addDevice(B.store, BOB);
    await withPrekeys(B, 'bob@b.example/tablet', 2);
    const list = randomBytes(120);
    await B.store.deviceLists.put({
      address: 'bob@b.example',
      counter: 1,
      bytes: list,
      storedAt: Date.now(),
    });
    const devices = await A.router.devices('bob@b.example', 'alice@a.example');
    const stored = await B.store.devices.list('bob@b.example');
    expect(devices.deviceList).toEqual(list);
    expect(devices.devices.map((d) => d.deviceId).sort()).toEqual(['phone', 'tablet']);
    for (const d of devices.devices) {
      const s = stored.find((x) => x.deviceId === d.deviceId);
      expect(d.identityKey).toEqual(Uint8Array.from(s?.identityKey ?? []));
    }
    // Each bundle look-up takes one one-time prekey at b.example; the phone has no prekeys.
    const first = await A.router.bundles('bob@b.example', 'alice@a.example');
    const second = await A.router.bundles('bob@b.example', 'alice@a.example');
    const third = await A.router.bundles('bob@b.example', 'alice@a.example');
    expect(first.map((x) => x.device)).toEqual(['bob@b.example/tablet']);
    expect([first, second, third].map((x) => x[0]?.oneTimePrekey?.id)).toEqual([1, 2, undefined]);
    expect(first[0]?.signedPrekey.id).toBe(9);
    expect(B.local.lookups).toEqual([
      { op: 'devices', address: 'bob@b.example', asker: 'alice@a.example' },
      ...Array.from({ length: 3 }, () => ({
        op: 'bundles',
        address: 'bob@b.example',
        asker: 'alice@a.example',
      })),
    ]);
    // An unknown user: what the service says (no devices), not an error.
    expect(await A.router.devices('nobody@b.example', 'alice@a.example')).toEqual({
      deviceList: null,
      devices: [],
    });
    // Nothing queued, nothing recorded by either duplicate filter...
    expect(await A.store.federationQueue.peers()).toEqual([]);
    expect(await B.store.federationSeen.count()).toBe(0);
    expect(await A.store.federationSeen.count()).toBe(0);
    // ...which a sealed message on the same link is (so the check above can fail).
    await send(A, BOB);
    await until(() => B.local.notified.length === 1);
    expect(await B.store.federationSeen.count()).toBe(1);
    expect(B.audit).toEqual([]);
    expect(A.router.pendingLookups).toBe(0);
  });

  it('works both ways at once without the two links waiting on each other', async () => {
    const [A, B] = await pair();
    await addDevice(A.store, ALICE);
    await addDevice(B.store, BOB);
    const asks = [];
    for (let i = 0; i < 40; i++) {
      asks.push(A.router.devices('bob@b.example', 'alice@a.example'));
      asks.push(B.router.devices('alice@a.example', 'bob@b.example'));
      // Durable traffic in between, over the same link.
      asks.push(send(A, BOB));
    }
    const results = await Promise.all(asks);
    expect(results).toHaveLength(120);
    expect(A.endpoint.links).toHaveLength(1);
  });

  it('refuses what the asking side must not ask, and says when the peer is unreachable', async () => {
    const [A] = await pair();
    const results = [
      await codeOf(A.router.devices('bob@b.example', 'eve@b.example')),
      await codeOf(A.router.devices('eve@a.example', 'alice@a.example')),
      await codeOf(A.router.bundles('Bob@b.example', 'alice@a.example')),
      await codeOf(A.router.devices('carol@c.example', 'alice@a.example')),
      await codeOf(A.router.bundles('dave@d.example', 'alice@a.example')),
    ];
    expect(results).toEqual([
      'ERR_INVALID_ARGUMENT',
      'ERR_INVALID_ARGUMENT',
      'ERR_INVALID_ARGUMENT',
      'ERR_DOMAIN_NOT_SERVED',
      'ERR_DOMAIN_NOT_SERVED',
    ]);
    A.routes.set('b.example', [{ host: '127.0.0.1', port: 1 }]);
    expect(await codeOf(A.router.devices('bob@b.example', 'alice@a.example'))).toBe(
      'ERR_CONNECTION_CLOSED',
    );
    expect(A.router.pendingLookups).toBe(0);
  });

  it('times out an unanswered look-up, and drops its late answer', async () => {
    const [A, B] = await pair({ router: { lookupTimeoutMs: 300 } });
    let release!: () => void;
    B.local.stall = new Promise((resolve) => (release = resolve));
    const started = Date.now();
    expect(await codeOf(A.router.devices('bob@b.example', 'alice@a.example'))).toBe('ERR_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(A.router.pendingLookups).toBe(0);
    release();
    // The late answer arrives with a rid nobody waits for: ACKed and dropped, not audited.
    await until(() => B.local.lookups.length === 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(A.audit).toEqual([]);
    expect(A.endpoint.links).toHaveLength(1);
    B.local.stall = null;
    expect(await A.router.devices('bob@b.example', 'alice@a.example')).toEqual({
      deviceList: null,
      devices: [],
    });
  });

  it('bounds the look-ups waiting for one peer', async () => {
    const [A, B] = await pair({ router: { maxLookupsPerPeer: 3, lookupTimeoutMs: 5000 } });
    let release!: () => void;
    B.local.stall = new Promise((resolve) => (release = resolve));
    const waiting = [1, 2, 3].map(() => A.router.devices('bob@b.example', 'alice@a.example'));
    expect(await codeOf(A.router.bundles('bob@b.example', 'alice@a.example'))).toBe(
      'ERR_RATE_LIMITED',
    );
    expect(A.router.pendingLookups).toBe(3);
    release();
    await Promise.all(waiting);
    expect(A.router.pendingLookups).toBe(0);
    await A.router.bundles('bob@b.example', 'alice@a.example');
  });

  it('fails a waiting look-up at once when its link closes', async () => {
    const [A, B] = await pair({ router: { lookupTimeoutMs: 5000 } });
    B.local.stall = new Promise(() => undefined);
    const asked = A.router.devices('bob@b.example', 'alice@a.example');
    await until(() => B.local.lookups.length === 1);
    const started = Date.now();
    B.endpoint.linkTo('a.example')?.close('ERR_TIMEOUT', 'test cut');
    expect(await codeOf(asked)).toBe('ERR_CONNECTION_CLOSED');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

/** a.example asks bob@b.example's bundles of a hand-played b.example; resolves to the request. */
async function askRaw(
  A: Dom,
  op: 'devices' | 'bundles',
): Promise<{ raw: RawLink; asked: Promise<unknown>; rid: Uint8Array }> {
  const raw = new RawLink(await harness.raw(b, A), 'b.example');
  await until(() => A.endpoint.linkTo('b.example') !== undefined);
  const asked = codeOf(
    op === 'devices'
      ? A.router.devices('bob@b.example', 'alice@a.example')
      : A.router.bundles('bob@b.example', 'alice@a.example'),
  );
  const data = await raw.nextData();
  expect(data.kind).toBe(FederationKind.lookup);
  const request = decodeLookupRequest(data.body as CborValue);
  expect(request).toMatchObject({ op, address: 'bob@b.example', asker: 'alice@a.example' });
  return { raw, asked, rid: request.rid };
}

describe('look-up answers from a lying peer', () => {
  it("drops an answer with another user's bundle or a third domain's device, audited", async () => {
    const A = await harness.start(a, { router: { lookupTimeoutMs: 3000 } });
    const cases: [BundleAnswer[], string, string | undefined][] = [
      [
        [bundle('bob@b.example/phone'), bundle('eve@b.example/phone')],
        'federation.object-refused',
        undefined,
      ],
      [[bundle('carol@c.example/phone')], 'federation.sender-refused', 'c.example'],
    ];
    for (const [bundles, type, claimedDomain] of cases) {
      const { raw, asked, rid } = await askRaw(A, 'bundles');
      const answer = encodeLookupAnswer({ rid, op: 'bundles', ok: bundles });
      expect(await raw.data(FederationKind.lookupResult, answer)).toBe('ERR_PAYLOAD_INVALID');
      expect(await asked).toBe('ERR_PAYLOAD_INVALID');
      const event = A.audit.at(-1);
      expect([event?.type, event?.peer, event?.claimedDomain]).toEqual([
        type,
        'b.example',
        claimedDomain,
      ]);
      raw.raw.destroy();
      await until(() => A.endpoint.linkTo('b.example') === undefined);
    }
    expect(await A.store.audit.list({ kind: 'federation.sender-refused' })).toHaveLength(1);
  });

  it('ignores a forged request id, and takes the real answer after it', async () => {
    const A = await harness.start(a);
    const { raw, asked, rid } = await askRaw(A, 'devices');
    const forged = encodeLookupAnswer({
      rid: randomBytes(16),
      op: 'devices',
      ok: { deviceList: null, devices: [] },
    });
    expect(await raw.data(FederationKind.lookupResult, forged)).toBe('ACK');
    expect(A.router.pendingLookups).toBe(1);
    const real = encodeLookupAnswer({
      rid,
      op: 'devices',
      ok: {
        deviceList: null,
        devices: [{ deviceId: 'phone', identityKey: new Uint8Array(32).fill(1), enrolment: null }],
      },
    });
    expect(await raw.data(FederationKind.lookupResult, real)).toBe('ACK');
    expect(await asked).toEqual({
      resolved: {
        deviceList: null,
        devices: [{ deviceId: 'phone', identityKey: new Uint8Array(32).fill(1), enrolment: null }],
      },
    });
    // The same answer again: nobody waits for it any more.
    expect(await raw.data(FederationKind.lookupResult, real)).toBe('ACK');
    expect(A.audit).toEqual([]);
  });

  it("ignores a third peer's answer carrying the right request id", async () => {
    // A federates with c.example here too: C is an authenticated peer that saw (or guessed)
    // the rid of A's look-up to B. Answers are matched by rid AND the peer asked.
    const c = await makeDomain('c.example');
    const both = new Harness(() => [
      { domain: 'b.example', proof: 'key', publicKey: b.key.publicKey },
      { domain: 'c.example', proof: 'key', publicKey: c.key.publicKey },
    ]);
    try {
      const A = await both.start(a, { router: { lookupTimeoutMs: 5000 } });
      const fromB = new RawLink(await both.raw(b, A), 'b.example');
      const fromC = new RawLink(await both.raw(c, A), 'c.example');
      await until(() => A.endpoint.linkTo('b.example') !== undefined);
      const asked = codeOf(A.router.devices('bob@b.example', 'alice@a.example'));
      const { rid } = decodeLookupRequest((await fromB.nextData()).body as CborValue);
      const forged = encodeLookupAnswer({
        rid,
        op: 'devices',
        ok: { deviceList: null, devices: [] },
      });
      expect(await fromC.data(FederationKind.lookupResult, forged)).toBe('ACK');
      expect(A.router.pendingLookups).toBe(1);
      const device = {
        deviceId: 'phone',
        identityKey: new Uint8Array(32).fill(2),
        enrolment: null,
      };
      const real = encodeLookupAnswer({
        rid,
        op: 'devices',
        ok: { deviceList: null, devices: [device] },
      });
      expect(await fromB.data(FederationKind.lookupResult, real)).toBe('ACK');
      expect(await asked).toEqual({ resolved: { deviceList: null, devices: [device] } });
    } finally {
      await both.close();
    }
  });

  it('refuses malformed and oversized answers and passes on error codes', async () => {
    const A = await harness.start(a);
    const device = { deviceId: 'phone', identityKey: randomBytes(32), enrolment: null };
    const tooMany = Array.from({ length: MAX_LOOKUP_DEVICES + 1 }, (_, i) => ({
      ...device,
      deviceId: `d${i}`,
    }));
    const answers: [(rid: Uint8Array) => CborValue, string, string][] = [
      [
        (rid) => encodeStrictCbor({ rid, ok: { deviceList: null, devices: tooMany } }),
        'ERR_PAYLOAD_INVALID',
        'ERR_PAYLOAD_INVALID',
      ],
      [
        (rid) =>
          encodeStrictCbor({
            rid,
            ok: { deviceList: null, devices: [{ ...device, identityKey: randomBytes(31) }] },
          }),
        'ERR_PAYLOAD_INVALID',
        'ERR_PAYLOAD_INVALID',
      ],
      [
        (rid) => encodeStrictCbor({ rid, ok: { deviceList: null, devices: [device, device] } }),
        'ERR_PAYLOAD_INVALID',
        'ERR_PAYLOAD_INVALID',
      ],
      [
        (rid) =>
          encodeStrictCbor({
            rid,
            ok: { deviceList: null, devices: [{ ...device, deviceId: 'a/b' }] },
          }),
        'ERR_PAYLOAD_INVALID',
        'ERR_PAYLOAD_INVALID',
      ],
      [
        (rid) => encodeStrictCbor({ rid, ok: { devices: [] } }),
        'ERR_PAYLOAD_INVALID',
        'ERR_PAYLOAD_INVALID',
      ],
      [(rid) => encodeStrictCbor({ rid, ok: [] }), 'ERR_PAYLOAD_INVALID', 'ERR_PAYLOAD_INVALID'],
      [
        (rid) =>
          encodeStrictCbor({ rid, ok: { deviceList: randomBytes(64 * 1024 + 1), devices: [] } }),
        'ERR_PAYLOAD_INVALID',
        'ERR_PAYLOAD_INVALID',
      ],
      [(rid) => encodeStrictCbor({ rid, error: 'ERR_STORAGE' }), 'ACK', 'ERR_STORAGE'],
      [(rid) => encodeStrictCbor({ rid, error: 'ERR_MADE_UP' }), 'ACK', 'ERR_PAYLOAD_INVALID'],
      [
        (rid) => encodeStrictCbor({ rid, error: 'not a code' }),
        'ERR_PAYLOAD_INVALID',
        'ERR_PAYLOAD_INVALID',
      ],
    ];
    const got: [string, unknown][] = [];
    for (const [make] of answers) {
      const { raw, asked, rid } = await askRaw(A, 'devices');
      got.push([await raw.data(FederationKind.lookupResult, make(rid)), await asked]);
      raw.raw.destroy();
      await until(() => A.endpoint.linkTo('b.example') === undefined);
    }
    expect(got).toEqual(answers.map(([, reject, caller]) => [reject, caller]));
  });

  it('refuses answers it cannot read at all, and the asker times out', async () => {
    const A = await harness.start(a, { router: { lookupTimeoutMs: 300 } });
    const { raw, asked, rid } = await askRaw(A, 'devices');
    const bodies: CborValue[] = [
      { rid, ok: { deviceList: null, devices: [] } }, // a map, not bytes
      encodeStrictCbor({ rid: rid.subarray(0, 8), ok: { deviceList: null, devices: [] } }),
      encodeStrictCbor({ rid, ok: { deviceList: null, devices: [] }, error: 'ERR_STORAGE' }),
      encodeStrictCbor({ rid }),
      encodeStrictCbor({ rid, ok: { deviceList: null, devices: [] }, more: 1 }),
    ];
    const codes = [];
    for (const body of bodies) codes.push(await raw.data(FederationKind.lookupResult, body));
    expect(codes).toEqual(bodies.map(() => 'ERR_PAYLOAD_INVALID'));
    expect(await asked).toBe('ERR_TIMEOUT');
  });
});

describe('look-ups a peer asks of us', () => {
  it('answers on the link, and refuses a third domain asker or a user not ours, audited', async () => {
    const B = await harness.start(b);
    await addDevice(B.store, BOB);
    const raw = new RawLink(await harness.raw(a, B), 'a.example');
    const ask = (address: string, asker: string, rid = randomBytes(16)): Uint8Array =>
      encodeLookupRequest({ rid, op: 'devices', address, asker });
    expect(await raw.data(FederationKind.lookup, ask('bob@b.example', 'carol@c.example'))).toBe(
      'ERR_NOT_AUTHORIZED',
    );
    expect(await raw.data(FederationKind.lookup, ask('eve@a.example', 'alice@a.example'))).toBe(
      'ERR_DOMAIN_NOT_SERVED',
    );
    expect(await raw.data(FederationKind.lookup, ask('carol@c.example', 'alice@a.example'))).toBe(
      'ERR_DOMAIN_NOT_SERVED',
    );
    expect(B.audit.map((e) => [e.type, e.claimedDomain])).toEqual([
      ['federation.sender-refused', 'c.example'],
      ['federation.misrouted', undefined],
      ['federation.misrouted', undefined],
    ]);
    expect(B.local.lookups).toEqual([]);
    const rid = randomBytes(16);
    expect(
      await raw.data(FederationKind.lookup, ask('bob@b.example', 'alice@a.example', rid)),
    ).toBe('ACK');
    const answer = await raw.nextData();
    expect(answer.kind).toBe(FederationKind.lookupResult);
    expect(answer.origin).toBe('b.example');
    const body = decodeStrictCbor(answer.body as Uint8Array) as {
      rid: Uint8Array;
      ok: { devices: { deviceId: string }[] };
    };
    expect(toHex(body.rid)).toBe(toHex(rid));
    expect(body.ok.devices.map((d) => d.deviceId)).toEqual(['phone']);
    // A service failure is answered as a code, never as a guess.
    B.local.stall = Promise.reject(new Error('disk on fire'));
    B.local.stall.catch(() => undefined);
    expect(await raw.data(FederationKind.lookup, ask('bob@b.example', 'alice@a.example'))).toBe(
      'ACK',
    );
    const failed = decodeStrictCbor((await raw.nextData()).body as Uint8Array) as { error: string };
    expect(failed.error).toBe('ERR_STORAGE');
  });

  it('refuses malformed look-ups as invalid payloads', async () => {
    const B = await harness.start(b);
    const raw = new RawLink(await harness.raw(a, B), 'a.example');
    const good = {
      rid: randomBytes(16),
      op: 'devices',
      address: 'bob@b.example',
      asker: 'alice@a.example',
    };
    const bodies: CborValue[] = [
      good,
      encodeStrictCbor({ ...good, rid: randomBytes(8) }),
      encodeStrictCbor({ ...good, op: 'keys' }),
      encodeStrictCbor({ ...good, extra: 0 }),
      encodeStrictCbor({ rid: good.rid, op: 'devices', address: 'bob@b.example' }),
      encodeStrictCbor({ ...good, address: 'bob@b.example/phone' }),
      encodeStrictCbor({ ...good, asker: 'ALICE@a.example' }),
      randomBytes(30),
    ];
    const codes = [];
    for (const body of bodies) codes.push(await raw.data(FederationKind.lookup, body));
    expect(codes).toEqual(bodies.map(() => 'ERR_PAYLOAD_INVALID'));
    expect(B.local.lookups).toEqual([]);
    expect(raw.received).toEqual([]);
  });
});
