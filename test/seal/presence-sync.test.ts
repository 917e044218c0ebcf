/**
 * One presence key, epoch and watcher set shared by the devices of one user: what a device takes
 * from a sibling's state, what it refuses, and how versions stay monotonic across devices.
 */
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/crypto/index.js';
import { encodeCbor, type CborValue } from '../../src/seal/cbor.js';
import {
  CONTENT_TYPE_PRESENCE_KEY,
  CONTENT_TYPE_PRESENCE_SYNC,
  SealKind,
} from '../../src/seal/constants.js';
import { sealSessionObject } from '../../src/seal/message.js';
import {
  openKeyDistribution,
  openPresenceKey,
  PresencePublisher,
  PresenceWatch,
  type ReceivedPresenceSync,
  type SealDevice,
} from '../../src/seal/index.js';
import { ALICE, ALICE2, BOB, CAROL, device, expectCode } from './helpers.js';

const PIDF = utf8('<presence entity="pres:alice@example.org"/>');

/** Seals `from`'s state for `to` and opens it there as a sibling state. */
function share(from: PresencePublisher, to: SealDevice): ReceivedPresenceSync {
  const r = openKeyDistribution(to, from.shareWith({ to: to.device, bundle: to.bundle() }).bytes);
  if (r.type !== 'sync') throw new Error('expected a presence state');
  return r;
}

interface Watcher {
  device: SealDevice;
  watch: PresenceWatch;
}

function world(): {
  phone: SealDevice;
  laptop: SealDevice;
  siblings: Map<string, Uint8Array>;
  watchers: [Watcher, Watcher];
} {
  const phone = device(ALICE, 4);
  const laptop = device(ALICE2, 4);
  const siblings = new Map([
    [ALICE, phone.identityKey],
    [ALICE2, laptop.identityKey],
  ]);
  const devices = new Map([
    ['phone', phone.identityKey],
    ['laptop', laptop.identityKey],
  ]);
  const watcher = (d: SealDevice): Watcher => ({
    device: d,
    watch: new PresenceWatch('alice@example.org', devices),
  });
  const watchers: [Watcher, Watcher] = [watcher(device(BOB, 4)), watcher(device(CAROL, 4))];
  return { phone, laptop, siblings, watchers };
}

describe('presence shared by the devices of one user', () => {
  it('a sibling adopts the key and watchers; its updates open for a watcher approved elsewhere', () => {
    const { phone, laptop, siblings, watchers } = world();
    const bob = watchers[0];
    const onPhone = new PresencePublisher(phone);
    bob.watch.installKey(
      openPresenceKey(
        bob.device,
        onPhone.authorize({ to: BOB, bundle: bob.device.bundle() }).bytes,
      ),
    );
    const onLaptop = PresencePublisher.fromSibling(laptop, share(onPhone, laptop), siblings);
    expect(onLaptop.watchers).toEqual([BOB]);
    expect(onLaptop.epoch).toBe(1);
    const v1 = bob.watch.open(onPhone.publish(PIDF, 1000));
    const v2 = bob.watch.open(onLaptop.publish(PIDF, 1001));
    expect([v1.deviceId, v2.deviceId]).toEqual(['phone', 'laptop']);
    expect(v2.version).toBeGreaterThan(v1.version);
  });

  it('a revocation on one device reaches the other: newer epoch, revoked watcher gone for good', () => {
    const { phone, laptop, siblings, watchers } = world();
    const [bob, carol] = watchers;
    const onPhone = new PresencePublisher(phone);
    for (const w of watchers) {
      w.watch.installKey(
        openPresenceKey(
          w.device,
          onPhone.authorize({ to: w.device.device, bundle: w.device.bundle() }).bytes,
        ),
      );
    }
    const onLaptop = PresencePublisher.fromSibling(laptop, share(onPhone, laptop), siblings);
    const stale = share(onLaptop, phone); // the laptop's older state, still naming carol
    for (const k of onPhone.revoke(CAROL))
      bob.watch.installKey(openPresenceKey(bob.device, k.bytes));
    expect(onLaptop.merge(share(onPhone, laptop), siblings)).toBe('done');
    expect(onLaptop.epoch).toBe(2);
    expect(onLaptop.watchers).toEqual([BOB]);
    // The older state (epoch 1) does not bring carol back; the sender is told the newer state.
    expect(onPhone.merge(stale, siblings)).toBe('reply');
    expect(onPhone.watchers).toEqual([BOB]);
    const update = onLaptop.publish(PIDF, 5000);
    expect(bob.watch.open(update).epoch).toBe(2);
    expectCode(() => carol.watch.open(update), 'ERR_SEAL_OPEN_FAILED');
  });

  it('a state from outside the verified device list is refused (no ghost watcher)', () => {
    const { laptop, siblings } = world();
    const ghost = device('alice@example.org/ghost', 4); // registered by the server, never listed
    const fromGhost = new PresencePublisher(ghost);
    fromGhost.authorize({ to: CAROL, bundle: device(CAROL, 4).bundle() });
    const onLaptop = new PresencePublisher(laptop);
    expectCode(() => onLaptop.merge(share(fromGhost, laptop), siblings), 'ERR_SEAL_OPEN_FAILED');
    expectCode(
      () => PresencePublisher.fromSibling(laptop, share(fromGhost, laptop), siblings),
      'ERR_SEAL_OPEN_FAILED',
    );
    expect(onLaptop.watchers).toEqual([]);
    // Another user cannot pass a state off as alice's, even one naming alice as presentity.
    const bob = device(BOB, 4);
    const forged = encodeCbor(
      new Map<number, CborValue>([
        [0, 0],
        [1, 'alice@example.org'],
        [2, 9],
        [3, new Uint8Array(32).fill(7)],
        [4, 1],
        [5, [CAROL]],
      ]),
    );
    const obj = sealSessionObject(
      bob,
      SealKind.keyDistribution,
      { to: laptop.device, bundle: laptop.bundle() },
      CONTENT_TYPE_PRESENCE_SYNC,
      forged,
    );
    const r = openKeyDistribution(laptop, obj.bytes);
    expect(r.type).toBe('sync');
    expectCode(() => onLaptop.merge(r as ReceivedPresenceSync, siblings), 'ERR_SEAL_OPEN_FAILED');
    // Nor can a device feed its own state back to itself through the server.
    expectCode(
      () =>
        onLaptop.merge(
          {
            ...(r as ReceivedPresenceSync),
            senderDevice: ALICE2,
            senderIdentityKey: laptop.identityKey,
          },
          siblings,
        ),
      'ERR_SEAL_OPEN_FAILED',
    );
  });

  it('a presence state is never taken as a watcher key, nor a state of an unknown format', () => {
    const { phone, laptop } = world();
    const obj = new PresencePublisher(phone).shareWith({
      to: laptop.device,
      bundle: laptop.bundle(),
    });
    expectCode(() => openPresenceKey(laptop, obj.bytes), 'ERR_SEAL_OPEN_FAILED');
    const future = encodeCbor(
      new Map<number, CborValue>([
        [0, 2],
        [1, 'alice@example.org'],
        [2, 1],
        [3, new Uint8Array(32)],
        [4, 1],
        [5, []],
      ]),
    );
    const bob = device(BOB, 4);
    for (const [type, payload] of [
      [CONTENT_TYPE_PRESENCE_SYNC, future],
      [CONTENT_TYPE_PRESENCE_KEY, future],
      ['application/x-unknown', future],
    ] as const) {
      const o = sealSessionObject(
        phone,
        SealKind.keyDistribution,
        { to: bob.device, bundle: bob.bundle() },
        type,
        payload,
      );
      expectCode(() => openKeyDistribution(bob, o.bytes), 'ERR_SEAL_OPEN_FAILED');
    }
  });

  it('concurrent rotations converge on one key without bringing back either revoked watcher', () => {
    const { phone, laptop, siblings } = world();
    const w = [BOB, CAROL, 'dave@example.org/d'].map((a) => device(a, 4));
    const onPhone = new PresencePublisher(phone);
    for (const d of w) onPhone.authorize({ to: d.device, bundle: d.bundle() });
    const onLaptop = PresencePublisher.fromSibling(laptop, share(onPhone, laptop), siblings);
    onPhone.revoke(BOB); // each device revokes another watcher at the same time: both epoch 2
    onLaptop.revoke(CAROL);
    const toLaptop = share(onPhone, laptop);
    const toPhone = share(onLaptop, phone);
    const atLaptop = onLaptop.merge(toLaptop, siblings);
    const atPhone = onPhone.merge(toPhone, siblings);
    expect([atLaptop, atPhone].sort()).toEqual(['reply', 'rotate']);
    expect(onPhone.watchers).toEqual(['dave@example.org/d']);
    expect(onLaptop.watchers).toEqual(['dave@example.org/d']);
    const [loser, other, otherDevice] =
      atPhone === 'rotate' ? [onPhone, onLaptop, laptop] : [onLaptop, onPhone, phone];
    // The laptop never had a session with dave: the caller supplies his bundle.
    const dave = w[2] as SealDevice;
    const keys = loser.rotate([{ to: dave.device, bundle: dave.bundle() }]);
    expect(keys.map((s) => s.to)).toEqual(['dave@example.org/d']);
    expect(openPresenceKey(dave, (keys[0] as { bytes: Uint8Array }).bytes).epoch).toBe(3);
    expect(other.merge(share(loser, otherDevice), siblings)).toBe('done');
    expect(other.epoch).toBe(3);
    expect(other.watchers).toEqual(['dave@example.org/d']);
  });

  it('two devices that started with keys of their own converge, keeping both approvals', () => {
    const { phone, laptop, siblings, watchers } = world();
    const [bob, carol] = watchers;
    const onPhone = new PresencePublisher(phone); // e.g. state kept from before keys were shared
    const onLaptop = new PresencePublisher(laptop);
    for (const [p, w] of [
      [onPhone, bob],
      [onLaptop, carol],
    ] as const) {
      w.watch.installKey(
        openPresenceKey(
          w.device,
          p.authorize({ to: w.device.device, bundle: w.device.bundle() }).bytes,
        ),
      );
    }
    const toLaptop = share(onPhone, laptop);
    const toPhone = share(onLaptop, phone);
    const atLaptop = onLaptop.merge(toLaptop, siblings);
    const atPhone = onPhone.merge(toPhone, siblings);
    expect([atLaptop, atPhone].sort()).toEqual(['reply', 'rotate']);
    expect(onPhone.watchers.sort()).toEqual([BOB, CAROL]); // epoch 1: no revocation to honour
    const [loser, other, otherDevice] =
      atPhone === 'rotate' ? [onPhone, onLaptop, laptop] : [onLaptop, onPhone, phone];
    const targets = watchers.map((w) => ({ to: w.device.device, bundle: w.device.bundle() }));
    for (const k of loser.rotate(targets)) {
      const w = watchers.find((x) => x.device.device === k.to) as Watcher;
      w.watch.installKey(openPresenceKey(w.device, k.bytes));
    }
    expect(other.merge(share(loser, otherDevice), siblings)).toBe('done');
    const fromPhone = onPhone.publish(PIDF, 2000);
    const fromLaptop = onLaptop.publish(PIDF, 2001);
    for (const w of watchers) {
      expect(w.watch.open(fromPhone).epoch).toBe(2);
      expect(w.watch.open(fromLaptop).epoch).toBe(2);
    }
  });

  it('versions stay above the clock and above what a sibling published', () => {
    const { phone, laptop, siblings } = world();
    const onPhone = new PresencePublisher(phone);
    const onLaptop = PresencePublisher.fromSibling(laptop, share(onPhone, laptop), siblings);
    expect(onPhone.publish(PIDF, 1_700_000_000_000)).toBeInstanceOf(Uint8Array);
    expect(onPhone.version).toBe(1_700_000_000_000);
    const same = onPhone.publish(PIDF, 1_700_000_000_000); // same millisecond: still + 1
    expect(onPhone.version).toBe(1_700_000_000_001);
    // The laptop's clock is behind; having seen the phone's update it still publishes above it.
    expect(onLaptop.observe(same, siblings)).toBe(true);
    onLaptop.publish(PIDF, 1_699_999_999_000);
    expect(onLaptop.version).toBe(1_700_000_000_002);
    // An update signed by a device outside the list does not move the version (server forgery).
    const ghost = new PresencePublisher(device('alice@example.org/ghost', 1));
    expect(onLaptop.observe(ghost.publish(PIDF, 9e15), siblings)).toBe(false);
    expect(onLaptop.version).toBe(1_700_000_000_002);
  });

  it('format 1 carries denial records; format 0 still opens (no records); bad records refuse', () => {
    const { phone, laptop } = world();
    const denials = [
      { user: 'bob@example.org', denied: true, stamp: 1_700_000_000_000 },
      { user: 'carol@other.example', denied: false, stamp: 5 },
    ];
    const onPhone = new PresencePublisher(phone);
    const r = openKeyDistribution(
      laptop,
      onPhone.shareWith({ to: laptop.device, bundle: laptop.bundle() }, denials).bytes,
    );
    expect(r.type === 'sync' && r.denials).toEqual(denials);
    const state = (format: number, extra: [number, CborValue][]): Uint8Array =>
      encodeCbor(
        new Map<number, CborValue>([
          [0, format],
          [1, 'alice@example.org'],
          [2, 1],
          [3, new Uint8Array(32)],
          [4, 1],
          [5, []],
          ...extra,
        ]),
      );
    const open = (payload: Uint8Array): ReturnType<typeof openKeyDistribution> =>
      openKeyDistribution(
        laptop,
        sealSessionObject(
          phone,
          SealKind.keyDistribution,
          { to: laptop.device, bundle: laptop.bundle() },
          CONTENT_TYPE_PRESENCE_SYNC,
          payload,
        ).bytes,
      );
    const old = open(state(0, []));
    expect(old.type === 'sync' && old.denials).toEqual([]);
    for (const bad of [
      state(0, [[6, []]]), // format 0 has no key 6
      state(1, []), // format 1 must have it
      state(1, [[6, [['Bob@Example.org', 1, 1]]]]), // not canonical
      state(1, [[6, [['bob@example.org', 1, 2]]]]), // flag neither 0 nor 1
      state(1, [
        [
          6,
          [
            ['bob@example.org', 1, 1],
            ['bob@example.org', 2, 0],
          ],
        ],
      ]), // twice
      state(1, [[6, [['bob@example.org', 1]]]]),
    ]) {
      expectCode(() => open(bad), 'ERR_SEAL_OPEN_FAILED');
    }
  });
});
