import fc from 'fast-check';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/crypto/index.js';
import { decodeCborStrict, encodeCbor, type CborValue } from '../../src/seal/cbor.js';
import { MAX_SEALED_BYTES } from '../../src/seal/constants.js';
import { readEnvelopeHeader } from '../../src/seal/header.js';
import {
  newPresenceKey,
  openPresenceKey,
  PresencePublisher,
  PresenceWatch,
  sealPresence,
  sealPresenceKey,
  type SealDevice,
} from '../../src/seal/index.js';
import { ALICE, ALICE2, CAROL, containsBytes, device, expectCode, flipBit } from './helpers.js';

const PIDF = utf8(
  '<presence entity="pres:alice@example.org"><tuple id="t1"><status><basic>open</basic></status></tuple></presence>',
);

interface Watcher {
  device: SealDevice;
  watch: PresenceWatch;
}

function world(watcherCount: number): {
  alice: SealDevice;
  pub: PresencePublisher;
  watchers: Watcher[];
} {
  const alice = device(ALICE, 1);
  const pub = new PresencePublisher(alice);
  const watchers: Watcher[] = [];
  for (let i = 0; i < watcherCount; i++) {
    const d = device(`w${i}@example.net/d`, 1);
    const watch = new PresenceWatch('alice@example.org', new Map([['phone', alice.identityKey]]));
    const obj = pub.authorize({ to: d.device, bundle: d.bundle() });
    watch.installKey(openPresenceKey(d, obj.bytes));
    watchers.push({ device: d, watch });
  }
  return { alice, pub, watchers };
}

describe('sealed presence', () => {
  it('one sealed update, the same bytes, opens for every authorized watcher', () => {
    const { pub, watchers } = world(5);
    const update = pub.publish(PIDF);
    for (const w of watchers) {
      const p = w.watch.open(update);
      expect(p.pidf).toEqual(PIDF);
      expect(p).toMatchObject({
        presentity: 'alice@example.org',
        deviceId: 'phone',
        epoch: 1,
        version: 1,
      });
    }
  });

  it('the server sees presentity, epoch and version, never the PIDF', () => {
    const { pub } = world(1);
    const update = pub.publish(PIDF);
    expect(readEnvelopeHeader(update)).toMatchObject({
      kind: 'presence',
      presentity: 'alice@example.org',
      epoch: 1,
      presenceVersion: 1,
    });
    expect(containsBytes(update, utf8('<presence'))).toBe(false);
    expect(containsBytes(update, utf8('open'))).toBe(false);
  });

  it('a revoked watcher cannot open the next update', () => {
    const { pub, watchers } = world(3);
    const [kept1, revoked, kept2] = watchers as [Watcher, Watcher, Watcher];
    expect(revoked.watch.open(pub.publish(PIDF)).version).toBe(1);
    const keys = pub.revoke(revoked.device.device);
    expect(keys.map((k) => k.to).sort()).toEqual([kept1.device.device, kept2.device.device].sort());
    for (const k of keys) {
      const w = k.to === kept1.device.device ? kept1 : kept2;
      w.watch.installKey(openPresenceKey(w.device, k.bytes));
    }
    const next = pub.publish(utf8('<presence>after</presence>'));
    expect(readEnvelopeHeader(next)).toMatchObject({ epoch: 2 });
    expectCode(() => revoked.watch.open(next), 'ERR_SEAL_OPEN_FAILED');
    expect(kept1.watch.open(next).pidf).toEqual(utf8('<presence>after</presence>'));
    expect(kept2.watch.open(next).epoch).toBe(2);
    // Nor can the revoked watcher open a key object sealed for someone else.
    expectCode(() => openPresenceKey(revoked.device, keys[0]!.bytes), 'ERR_SEAL_OPEN_FAILED');
    // Relabelling the epoch to one it holds does not help (epoch is in the AD and signature).
    const m = new Map(decodeCborStrict(next, MAX_SEALED_BYTES) as Map<number, CborValue>);
    m.set(4, 1);
    expectCode(() => revoked.watch.open(encodeCbor(m)), 'ERR_SEAL_OPEN_FAILED');
  });

  it('a rolled-back presence version is refused (ERR_SEAL_ROLLBACK, also for a replay)', () => {
    const { pub, watchers } = world(1);
    const w = watchers[0]!.watch;
    const v1 = pub.publish(utf8('<v1/>'));
    const v2 = pub.publish(utf8('<v2/>'));
    expect(w.open(v2).version).toBe(2);
    expectCode(() => w.open(v1), 'ERR_SEAL_ROLLBACK');
    expectCode(() => w.open(v2), 'ERR_SEAL_ROLLBACK');
    expect(w.lastVersion).toBe(2);
    expect(w.open(pub.publish(utf8('<v3/>'))).version).toBe(3);
  });

  it('refuses updates signed by a device outside the verified set, and forgeries', () => {
    const { alice, pub, watchers } = world(1);
    const w = watchers[0]!.watch;
    const alice2 = device(ALICE2, 1);
    // alice2 is Alice's but not (yet) in the watcher's verified device set.
    const fromLaptop = sealPresence(
      alice2,
      { epoch: 1, key: newPresenceKey(alice2, 1).key },
      5,
      PIDF,
    );
    expectCode(() => w.open(fromLaptop), 'ERR_SEAL_OPEN_FAILED');
    // Mallory claims to be Alice's phone: the signature does not verify under the phone's key.
    const mallory = device(ALICE, 1);
    const forged = sealPresence(
      mallory,
      { epoch: 1, key: newPresenceKey(mallory, 1).key },
      9,
      PIDF,
    );
    expectCode(() => w.open(forged), 'ERR_SEAL_OPEN_FAILED');
    expect(w.lastVersion).toBe(0);
    expect(w.open(pub.publish(PIDF)).version).toBe(1);
    w.setDevices(
      new Map([
        ['phone', alice.identityKey],
        ['laptop', alice2.identityKey],
      ]),
    );
    expectCode(() => w.open(fromLaptop), 'ERR_SEAL_OPEN_FAILED'); // no key for its epoch 1 copy
  });

  it('installs keys only from verified devices of the presentity', () => {
    const { watchers } = world(1);
    const bobDev = watchers[0]!.device;
    const w = watchers[0]!.watch;
    const carol = device(CAROL, 1);
    const fromCarol = sealPresenceKey(
      carol,
      { to: bobDev.device, bundle: bobDev.bundle() },
      newPresenceKey(carol, 7),
    );
    const received = openPresenceKey(bobDev, fromCarol.bytes);
    expectCode(() => {
      w.installKey(received);
    }, 'ERR_SEAL_OPEN_FAILED');
    expect(w.epochs).toEqual([1]);
  });

  it('keeps only the newest epochs and refuses an old one', () => {
    const { alice, pub, watchers } = world(1);
    const { device: d, watch } = watchers[0]!;
    for (let i = 0; i < 3; i++) {
      for (const k of pub.rotate()) watch.installKey(openPresenceKey(d, k.bytes));
    }
    expect(watch.epochs).toEqual([3, 4]);
    const stale = {
      presentity: 'alice@example.org',
      epoch: 2,
      key: newPresenceKey(alice, 2).key,
      senderDevice: ALICE,
      senderIdentityKey: alice.identityKey,
    };
    expectCode(() => {
      watch.installKey(stale);
    }, 'ERR_SEAL_ROLLBACK');
    expect(watch.epochs).toEqual([3, 4]);
  });

  it('any mutation of an update fails to open (property)', () => {
    const { pub, watchers } = world(1);
    const w = watchers[0]!.watch;
    const update = pub.publish(PIDF);
    fc.assert(
      fc.property(fc.nat(), (bit) => {
        const b = bit % (update.length * 8);
        expectCode(
          () => w.open(flipBit(update, b)),
          ...(b < 7 * 8
            ? (['ERR_SEAL_OPEN_FAILED', 'ERR_SEAL_UNSUPPORTED'] as const)
            : (['ERR_SEAL_OPEN_FAILED'] as const)),
        );
      }),
      { numRuns: 300 },
    );
    expectCode(() => w.open(update.slice(0, -1)), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => w.open(Uint8Array.of(...update, 0)), 'ERR_SEAL_OPEN_FAILED');
    expect(w.lastVersion).toBe(0);
    expect(w.open(update).pidf).toEqual(PIDF);
  });

  it('a watcher for another presentity refuses the update', () => {
    const { pub, alice } = world(0);
    const w = new PresenceWatch('bob@example.org', new Map([['phone', alice.identityKey]]));
    expectCode(() => w.open(pub.publish(PIDF)), 'ERR_SEAL_OPEN_FAILED');
  });

  it('redacts keys in JSON and inspect', () => {
    const { pub, watchers } = world(1);
    const k = newPresenceKey(watchers[0]!.device, 1);
    const hex = toHex(k.key.expose());
    for (const text of [
      JSON.stringify({ pub, w: watchers[0]!.watch, k }),
      inspect(pub),
      inspect(watchers[0]!.watch),
      inspect(k),
    ]) {
      expect(text).not.toContain(hex);
    }
    expect(JSON.stringify(watchers[0]!.watch)).toBe(
      '{"presentity":"alice@example.org","lastVersion":0,"epochs":[1]}',
    );
  });

  it('the presence key goes only to approved watchers', () => {
    const { pub, watchers } = world(2);
    const stranger = device(CAROL, 1);
    const keys = pub.rotate();
    expect(keys.map((k) => k.to).sort()).toEqual(watchers.map((w) => w.device.device).sort());
    for (const k of keys) {
      expectCode(() => openPresenceKey(stranger, k.bytes), 'ERR_SEAL_OPEN_FAILED');
    }
    expect(pub.watchers.sort()).toEqual(watchers.map((w) => w.device.device).sort());
  });

  it('a device without the presence key cannot open', () => {
    const { alice, pub } = world(1);
    const update = pub.publish(PIDF);
    const noKey = new PresenceWatch('alice@example.org', new Map([['phone', alice.identityKey]]));
    expectCode(() => noKey.open(update), 'ERR_SEAL_OPEN_FAILED');
    // A guessed key for the right epoch does not help either.
    noKey.installKey({
      presentity: 'alice@example.org',
      epoch: 1,
      key: newPresenceKey(alice, 1).key,
      senderDevice: ALICE,
      senderIdentityKey: alice.identityKey,
    });
    expectCode(() => noKey.open(update), 'ERR_SEAL_OPEN_FAILED');
  });

  it('updates under one key never share a nonce', () => {
    const { pub } = world(0);
    const nonces = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const h = decodeCborStrict(pub.publish(PIDF), MAX_SEALED_BYTES) as Map<number, CborValue>;
      nonces.add(toHex(h.get(8) as Uint8Array));
    }
    expect(nonces.size).toBe(300);
  });

  it('watcher and publisher state persist (rollback protection survives a restart)', () => {
    const { alice, pub, watchers } = world(2);
    const w = watchers[0]!.watch;
    expect(w.open(pub.publish(PIDF)).version).toBe(1);
    const old = pub.publish(utf8('<v2/>'));
    expect(w.open(pub.publish(utf8('<v3/>'))).version).toBe(3);
    const w2 = PresenceWatch.restore(w.serialise());
    expect(toHex(w2.serialise())).toBe(toHex(w.serialise()));
    expectCode(() => w2.open(old), 'ERR_SEAL_ROLLBACK');
    const pub2 = PresencePublisher.restore(alice, pub.serialise());
    expect(toHex(pub2.serialise())).toBe(toHex(pub.serialise()));
    expect(w2.open(pub2.publish(PIDF)).version).toBe(4);
    expect(pub2.watchers).toEqual(pub.watchers);
    expectCode(() => PresenceWatch.restore(w.serialise().slice(1)), 'ERR_SEAL_SESSION_STATE');
    const v2 = w.serialise();
    v2[2] = 2;
    expectCode(() => PresenceWatch.restore(v2), 'ERR_SEAL_UNSUPPORTED');
  });
});
