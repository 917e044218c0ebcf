import fc from 'fast-check';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { fromUtf8, toHex, utf8 } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import {
  openMessage,
  SealDevice,
  sealForDevices,
  sealMessage,
  type SealedObject,
} from '../../src/seal/index.js';
import { sealPresenceKey, newPresenceKey } from '../../src/seal/presence.js';
import { STATE } from '../../src/seal/session.js';
import { ALICE, ALICE2, BOB, CAROL, device, expectCode, flipBit, pair } from './helpers.js';

type Cmd =
  { op: 'sendA' } | { op: 'sendB' } | { op: 'deliver'; i: number } | { op: 'replay'; i: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.constant<Cmd>({ op: 'sendA' }),
  fc.constant<Cmd>({ op: 'sendB' }),
  fc.nat(50).map<Cmd>((i) => ({ op: 'deliver', i })),
  fc.nat(50).map<Cmd>((i) => ({ op: 'replay', i })),
);

describe('sessions: any order of sends and deliveries', () => {
  it('any delivery order within the window opens exactly once', () => {
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 1, maxLength: 40 }), (cmds) => {
        const alice = device(ALICE, 2);
        const bob = device(BOB, 2);
        const bundle = bob.bundle();
        const aliceBundle = alice.bundle();
        interface InFlight {
          to: SealDevice;
          text: string;
          obj: SealedObject;
        }
        const pending: InFlight[] = [];
        const delivered: InFlight[] = [];
        let counter = 0;
        const sendFrom = (from: 'A' | 'B'): void => {
          const text = `${from}${counter++}`;
          if (from === 'A') {
            pending.push({
              to: bob,
              text,
              obj: sealMessage(alice, { to: BOB, bundle }, 'text/plain', utf8(text)),
            });
          } else {
            pending.push({
              to: alice,
              text,
              // Without a session Bob starts his own: both sides initiate at once.
              obj: sealMessage(bob, { to: ALICE, bundle: aliceBundle }, 'text/plain', utf8(text)),
            });
          }
        };
        const deliver = (idx: number): void => {
          const [m] = pending.splice(idx, 1);
          if (m === undefined) return;
          const opened = openMessage(m.to, m.obj.bytes);
          expect(fromUtf8(opened.payload)).toBe(m.text);
          expect(opened.senderDevice).toBe(m.to === bob ? ALICE : BOB);
          delivered.push(m);
        };
        for (const c of cmds) {
          if (c.op === 'sendA') sendFrom('A');
          else if (c.op === 'sendB') sendFrom('B');
          else if (c.op === 'deliver' && pending.length > 0) deliver(c.i % pending.length);
          else if (c.op === 'replay' && delivered.length > 0) {
            const m = delivered[c.i % delivered.length]!;
            expectCode(() => openMessage(m.to, m.obj.bytes), 'ERR_SEAL_REPLAY');
          }
        }
        while (pending.length > 0) deliver(pending.length - 1);
        expect(delivered.length).toBe(counter);
      }),
      { numRuns: 150 },
    );
  });

  it('both devices starting a session at once still converge', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const a1 = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 't', utf8('a1'));
    const b1 = sealMessage(bob, { to: ALICE, bundle: alice.bundle() }, 't', utf8('b1'));
    expect(openMessage(bob, a1.bytes).newSession).toBe(true);
    expect(openMessage(alice, b1.bytes).newSession).toBe(true);
    for (let i = 0; i < 3; i++) {
      const a = sealMessage(alice, { to: BOB }, 't', utf8(`a${i}`));
      expect(openMessage(bob, a.bytes).payload).toEqual(utf8(`a${i}`));
      const b = sealMessage(bob, { to: ALICE }, 't', utf8(`b${i}`));
      expect(openMessage(alice, b.bytes).payload).toEqual(utf8(`b${i}`));
    }
    const restored = SealDevice.restore(bob.serialise());
    expect(toHex(restored.serialise())).toBe(toHex(bob.serialise()));
  });
});

describe('sessions: a failed open changes nothing', () => {
  it('serialised state is byte-identical after failed opens of every sort', () => {
    const { alice, bob } = pair();
    const good = sealMessage(alice, { to: BOB }, 'text/plain', utf8('secret'));
    const keyObj = sealPresenceKey(alice, { to: BOB }, newPresenceKey(alice, 1));
    const before = toHex(bob.serialise());
    const attempts: Uint8Array[] = [
      flipBit(good.bytes, good.bytes.length * 8 - 3),
      flipBit(good.bytes, 200),
      good.bytes.slice(0, -1),
      Uint8Array.of(...good.bytes, 0),
      keyObj.bytes, // key distribution offered as a message
    ];
    for (const bad of attempts) {
      expectCode(() => openMessage(bob, bad), 'ERR_SEAL_OPEN_FAILED');
      expect(toHex(bob.serialise())).toBe(before);
    }
    expect(fromUtf8(openMessage(bob, good.bytes).payload)).toBe('secret');
    const after = toHex(bob.serialise());
    expectCode(() => openMessage(bob, good.bytes), 'ERR_SEAL_REPLAY');
    expect(toHex(bob.serialise())).toBe(after);
  });

  it('a tampered prekey message consumes no one-time prekey and creates no session', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const first = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 'text/plain', utf8('x'));
    const before = toHex(bob.serialise());
    const opks = bob.publicPrekeys().oneTimePrekeys.length;
    expectCode(() => openMessage(bob, flipBit(first.bytes, 8 * 150)), 'ERR_SEAL_OPEN_FAILED');
    expect(toHex(bob.serialise())).toBe(before);
    expect(bob.hasSession(ALICE)).toBe(false);
    openMessage(bob, first.bytes);
    expect(bob.publicPrekeys().oneTimePrekeys.length).toBe(opks - 1);
    expect(bob.hasSession(ALICE)).toBe(true);
  });
});

describe('sessions: prekeys', () => {
  it('a one-time prekey used twice opens only once (X3DH §4.2)', () => {
    const bob = device(BOB);
    const bundle = bob.bundle();
    const alice = device(ALICE);
    openMessage(bob, sealMessage(alice, { to: BOB, bundle }, 'text/plain', utf8('a')).bytes);
    const carol = device(CAROL);
    const reuse = sealMessage(carol, { to: BOB, bundle }, 'text/plain', utf8('c'));
    expectCode(() => openMessage(bob, reuse.bytes), 'ERR_SEAL_OPEN_FAILED');
    const carol2 = device('carol@example.net/phone');
    const noOpk = sealMessage(
      carol2,
      { to: BOB, bundle: bob.bundle(null) },
      'text/plain',
      utf8('d'),
    );
    expect(fromUtf8(openMessage(bob, noOpk.bytes).payload)).toBe('d');
  });

  it('repeats X3DH data until the first reply, and opens them all', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const bundle = bob.bundle();
    const m = [1, 2, 3].map((i) =>
      sealMessage(alice, { to: BOB, bundle }, 'text/plain', utf8(`${i}`)),
    );
    expect(openMessage(bob, m[2]!.bytes).newSession).toBe(true);
    expect(openMessage(bob, m[0]!.bytes).newSession).toBe(false);
    openMessage(alice, sealMessage(bob, { to: ALICE }, 'text/plain', utf8('r')).bytes);
    expect(alice[STATE].sessions.get(BOB)?.pendingPrekey).toBeNull();
    expect(openMessage(bob, m[1]!.bytes).payload).toEqual(utf8('2'));
  });

  it('a prekey message to a rotated signed prekey still opens (previous one kept)', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const m = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 'text/plain', utf8('x'));
    bob.rotateSignedPrekey();
    expect(bob.publicPrekeys().signedPrekey.id).toBe(2);
    expect(openMessage(bob, m.bytes).payload).toEqual(utf8('x'));
    bob.rotateSignedPrekey();
    const carol = device(CAROL);
    expect(
      openMessage(bob, sealMessage(carol, { to: BOB, bundle: bob.bundle() }, 't', utf8('y')).bytes)
        .sequence,
    ).toBe(1);
  });

  it('refuses to seal without a session or bundle, for itself, or with a bundle of another device', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    expectCode(() => sealMessage(alice, { to: BOB }, 't', utf8('x')), 'ERR_SEAL_SESSION_STATE');
    expectCode(
      () => sealMessage(alice, { to: CAROL, bundle: bob.bundle() }, 't', utf8('x')),
      'ERR_INVALID_ARGUMENT',
    );
    expectCode(
      () => sealMessage(alice, { to: ALICE, bundle: alice.bundle() }, 't', utf8('x')),
      'ERR_INVALID_ARGUMENT',
    );
    expectCode(
      () => sealMessage(alice, { to: BOB, bundle: bob.bundle() }, '', utf8('x')),
      'ERR_INVALID_ARGUMENT',
    );
  });
});

describe('sessions: identity binding', () => {
  it('a new identity key for a known device is refused unless accepted', () => {
    const { bob } = pair();
    const mallory = device(ALICE); // claims Alice's device address with her own key
    const forged = sealMessage(mallory, { to: BOB, bundle: bob.bundle() }, 't', utf8('evil'));
    const before = toHex(bob.serialise());
    expectCode(() => openMessage(bob, forged.bytes), 'ERR_IDENTITY_CHANGED');
    expect(toHex(bob.serialise())).toBe(before);
    const opened = openMessage(bob, forged.bytes, { trustNewIdentity: () => true });
    expect(toHex(opened.senderIdentityKey)).toBe(toHex(mallory.identityKey));
  });

  it('a target with a new identity key replaces the old key’s session; the old key opens nothing', () => {
    const { alice, bob } = pair(); // alice holds a session with bob's old key
    const rekeyed = device(BOB); // bob's laptop, reinstalled with a new identity key
    const before = toHex(alice.serialise());
    // Without a bundle, or with one under any key but the expected one: refused, nothing changes.
    expectCode(
      () => sealMessage(alice, { to: BOB, identityKey: rekeyed.identityKey }, 't', utf8('x')),
      'ERR_SEAL_SESSION_STATE',
    );
    for (const bundle of [bob.bundle(), device(BOB).bundle()]) {
      expectCode(
        () =>
          sealMessage(alice, { to: BOB, bundle, identityKey: rekeyed.identityKey }, 't', utf8('x')),
        'ERR_IDENTITY_CHANGED',
      );
    }
    expect(toHex(alice.serialise())).toBe(before);
    // The session's own key still uses the session (no bundle needed, none consumed).
    const same = sealMessage(alice, { to: BOB, identityKey: bob.identityKey }, 't', utf8('same'));
    expect(fromUtf8(openMessage(bob, same.bytes).payload)).toBe('same');

    const target = { to: BOB, bundle: rekeyed.bundle(), identityKey: rekeyed.identityKey };
    const m = sealMessage(alice, target, 't', utf8('for the new key'));
    expect(toHex(alice.sessionIdentityKey(BOB) as Uint8Array)).toBe(toHex(rekeyed.identityKey));
    expectCode(() => openMessage(bob, m.bytes), 'ERR_SEAL_OPEN_FAILED');
    const opened = openMessage(rekeyed, m.bytes);
    expect(fromUtf8(opened.payload)).toBe('for the new key');
    expect(opened.newSession).toBe(true);
    // The next one too, over the new session; still nothing for the old key, even after a restart.
    const restored = SealDevice.restore(alice.serialise());
    const m2 = sealMessage(restored, { to: BOB, identityKey: rekeyed.identityKey }, 't', utf8('2'));
    expectCode(() => openMessage(bob, m2.bytes), 'ERR_SEAL_OPEN_FAILED');
    expect(openMessage(rekeyed, m2.bytes).sequence).toBe(2);
    // The old key's device can no longer reach alice over the dropped session either.
    const fromOld = sealMessage(bob, { to: ALICE }, 't', utf8('from the old key'));
    expectCode(() => openMessage(restored, fromOld.bytes), 'ERR_SEAL_OPEN_FAILED');
  });

  it('dropSession forgets the current and the archived session', () => {
    const { alice, bob } = pair();
    expect(alice.dropSession(BOB)).toBe(true);
    expect(alice.hasSession(BOB)).toBe(false);
    expect(alice.dropSession(BOB)).toBe(false);
    const fromBob = sealMessage(bob, { to: ALICE }, 't', utf8('over the dropped session'));
    expectCode(() => openMessage(alice, fromBob.bytes), 'ERR_SEAL_OPEN_FAILED');
    expect(alice[STATE].archivedSessions.size).toBe(0);
  });

  it('trustNewIdentity can refuse a first contact', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const m = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 't', utf8('x'));
    expectCode(
      () => openMessage(bob, m.bytes, { trustNewIdentity: () => false }),
      'ERR_IDENTITY_UNTRUSTED',
    );
    expect(bob.hasSession(ALICE)).toBe(false);
    const seen: string[] = [];
    openMessage(bob, m.bytes, {
      trustNewIdentity: (d, k) => {
        seen.push(d);
        return toHex(k) === toHex(alice.identityKey);
      },
    });
    expect(seen).toEqual([ALICE]);
  });
});

describe('sessions: persistence and redaction', () => {
  it('a restored device continues every session and keeps its replay cache', () => {
    const { alice, bob } = pair();
    const m1 = sealMessage(alice, { to: BOB }, 't', utf8('one'));
    const m2 = sealMessage(alice, { to: BOB }, 't', utf8('two'));
    openMessage(bob, m2.bytes);
    const bob2 = SealDevice.restore(bob.serialise());
    expect(toHex(bob2.serialise())).toBe(toHex(bob.serialise()));
    expectCode(() => openMessage(bob2, m2.bytes), 'ERR_SEAL_REPLAY');
    expect(openMessage(bob2, m1.bytes).late).toBe(true);
    const reply = sealMessage(bob2, { to: ALICE }, 't', utf8('back'));
    expect(openMessage(alice, reply.bytes).payload).toEqual(utf8('back'));
  });

  it('refuses a corrupted or unknown-version state', () => {
    const { bob } = pair();
    const bytes = bob.serialise();
    expectCode(() => SealDevice.restore(bytes.slice(0, -2)), 'ERR_SEAL_SESSION_STATE');
    const v2 = Uint8Array.from(bytes);
    expect(v2[1]).toBe(0x00); // key 0
    v2[2] = 0x02; // version 2
    expectCode(() => SealDevice.restore(v2), 'ERR_SEAL_UNSUPPORTED');
  });

  it('redacts secrets in JSON and inspect', () => {
    const { alice, bob } = pair();
    const secretHex = toHex(bob[STATE].identity.secretKey.expose());
    const rootHex = toHex(bob[STATE].sessions.get(ALICE)!.ratchet.rootKey.expose());
    for (const text of [
      JSON.stringify(bob),
      inspect(bob),
      String(bob),
      JSON.stringify({ alice }),
    ]) {
      expect(text).not.toContain(secretHex.slice(0, 16));
      expect(text).not.toContain(rootHex.slice(0, 16));
    }
    expect(inspect(bob)).toContain('redacted');
    expect(JSON.stringify(bob[STATE].sessions.get(ALICE)!.ratchet.rootKey)).toBe('"[redacted]"');
  });
});

describe('sessions: fan-out to devices', () => {
  it('seals once per recipient device and per own other device, never for itself', () => {
    const alice = device(ALICE);
    const alice2 = device(ALICE2);
    const bob = device(BOB);
    const bob2 = device('bob@example.org/phone');
    const out = sealForDevices(
      alice,
      [
        { to: BOB, bundle: bob.bundle() },
        { to: 'bob@example.org/phone', bundle: bob2.bundle() },
        { to: ALICE2, bundle: alice2.bundle() },
        { to: ALICE },
        { to: BOB },
      ],
      'text/plain',
      utf8('to all'),
    );
    expect(out.map((o) => o.to).sort()).toEqual([ALICE2, 'bob@example.org/phone', BOB].sort());
    const byTo = new Map(out.map((o) => [o.to, o.bytes]));
    for (const [d, addr] of [
      [bob, BOB],
      [bob2, 'bob@example.org/phone'],
      [alice2, ALICE2],
    ] as const) {
      expect(openMessage(d, byTo.get(addr)!).payload).toEqual(utf8('to all'));
      // A device cannot open the copy sealed for another device.
      const other = out.find((o) => o.to !== addr)!;
      try {
        openMessage(d, other.bytes);
        expect.fail('opened another device copy');
      } catch (e) {
        expect(isImppError(e, 'ERR_SEAL_OPEN_FAILED')).toBe(true);
      }
    }
  });
});
