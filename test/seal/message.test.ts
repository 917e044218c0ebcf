import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, toHex, utf8 } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { decodeCborStrict, encodeCbor, type CborValue } from '../../src/seal/cbor.js';
import { MAX_SEALED_BYTES } from '../../src/seal/constants.js';
import {
  newPresenceKey,
  openMessage,
  openPresenceKey,
  PresencePublisher,
  PresenceWatch,
  sealMessage,
  sealPresenceKey,
} from '../../src/seal/index.js';
import { ReplayCache } from '../../src/seal/replay.js';
import { STATE } from '../../src/seal/session.js';
import { ALICE, BOB, CAROL, device, expectCode, flipBit, pair } from './helpers.js';

const HEADER_PREFIX = 7; // a7 00 01 01 01 02 kk: version, suite and kind

function withField(bytes: Uint8Array, key: number, value: CborValue): Uint8Array {
  const m = new Map(decodeCborStrict(bytes, MAX_SEALED_BYTES) as Map<number, CborValue>);
  m.set(key, value);
  return encodeCbor(m);
}

describe('sealed messages: any mutation fails to open', () => {
  it('any mutation of a sealed object fails to open (fast-check: bit flip, truncation, extension; state unchanged)', () => {
    const { alice, bob } = pair();
    const first = device(CAROL);
    const prekeyMsg = sealMessage(first, { to: BOB, bundle: bob.bundle() }, 't', utf8('prekey'));
    const normal = sealMessage(alice, { to: BOB }, 'text/plain', utf8('a normal message'));
    const before = toHex(bob.serialise());
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), bit: fc.nat() }),
      fc.record({ kind: fc.constant('truncate' as const), n: fc.integer({ min: 1, max: 400 }) }),
      fc.record({
        kind: fc.constant('extend' as const),
        tail: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      }),
    );
    fc.assert(
      fc.property(fc.boolean(), mutation, (usePrekey, mut) => {
        const original = usePrekey ? prekeyMsg.bytes : normal.bytes;
        let bad: Uint8Array;
        let touchesHeader = false;
        if (mut.kind === 'flip') {
          const bit = mut.bit % (original.length * 8);
          bad = flipBit(original, bit);
          touchesHeader = bit < HEADER_PREFIX * 8;
        } else if (mut.kind === 'truncate') {
          bad = original.slice(0, Math.max(0, original.length - mut.n));
        } else {
          bad = Uint8Array.of(...original, ...mut.tail);
        }
        const codes = touchesHeader
          ? (['ERR_SEAL_OPEN_FAILED', 'ERR_SEAL_UNSUPPORTED'] as const)
          : (['ERR_SEAL_OPEN_FAILED'] as const);
        expectCode(() => openMessage(bob, bad), ...codes);
      }),
      { numRuns: 300 },
    );
    expect(toHex(bob.serialise())).toBe(before);
    expect(openMessage(bob, normal.bytes).payload).toEqual(utf8('a normal message'));
    expect(openMessage(bob, prekeyMsg.bytes).payload).toEqual(utf8('prekey'));
  });

  it('every failure to open has the same error and message', () => {
    const { alice, bob } = pair();
    const m = sealMessage(alice, { to: BOB }, 't', utf8('x')).bytes;
    const messages = new Set<string>();
    for (const bad of [
      flipBit(m, 100),
      flipBit(m, m.length * 8 - 1),
      m.slice(0, 20),
      withField(m, 3, CAROL),
    ]) {
      try {
        openMessage(bob, bad);
      } catch (e) {
        expect(isImppError(e, 'ERR_SEAL_OPEN_FAILED')).toBe(true);
        messages.add((e as Error).message);
      }
    }
    expect([...messages]).toEqual(['sealed object could not be opened']);
  });
});

describe('sealed messages: recipients and senders', () => {
  it('a third device cannot open, even with the recipient field rewritten to it', () => {
    const { alice } = pair();
    const carol = device(CAROL);
    const m = sealMessage(alice, { to: BOB }, 't', utf8('for bob only')).bytes;
    expectCode(() => openMessage(carol, m), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => openMessage(carol, withField(m, 3, CAROL)), 'ERR_SEAL_OPEN_FAILED');
  });

  it('wrong recipient: a message for one device of Bob is refused by his other device', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const bobPhone = device('bob@example.org/phone');
    const m = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 't', utf8('x')).bytes;
    expectCode(() => openMessage(bobPhone, m), 'ERR_SEAL_OPEN_FAILED');
    expectCode(
      () => openMessage(bobPhone, withField(m, 3, 'bob@example.org/phone')),
      'ERR_SEAL_OPEN_FAILED',
    );
  });

  it('a signature by another device is refused', () => {
    const { alice, bob } = pair();
    const s = alice[STATE];
    const mallory = generateSigningKeyPair();
    // Alice's session, Alice's identity key in the sealed part, Mallory's signing key.
    const frank = {
      ...s,
      identity: { publicKey: s.identity.publicKey, secretKey: mallory.secretKey },
    };
    (alice as unknown as Record<symbol, unknown>)[STATE] = frank;
    const m = sealMessage(alice, { to: BOB }, 't', utf8('signed by mallory')).bytes;
    (alice as unknown as Record<symbol, unknown>)[STATE] = s;
    const before = toHex(bob.serialise());
    expectCode(() => openMessage(bob, m), 'ERR_SEAL_OPEN_FAILED');
    expect(toHex(bob.serialise())).toBe(before);
  });

  it('a payload re-wrapped by another device is refused', () => {
    const { bob } = pair();
    const mallory = device('mallory@example.com/pc');
    openMessage(
      bob,
      sealMessage(mallory, { to: BOB, bundle: bob.bundle() }, 't', utf8('hi')).bytes,
    );
    openMessage(mallory, sealMessage(bob, { to: 'mallory@example.com/pc' }, 't', utf8('yo')).bytes);
    expect(mallory[STATE].sessions.get(BOB)?.pendingPrekey).toBeNull();
    // Mallory seals under her own session but claims to be Alice's device: the identity key in
    // the sealed part is Mallory's, the session for Alice's device is bound to Alice's key.
    const ms = mallory[STATE];
    const asAlice = { ...ms, device: ALICE, sessions: ms.sessions };
    (mallory as unknown as Record<symbol, unknown>)[STATE] = asAlice;
    const forged = sealMessage(mallory, { to: BOB }, 't', utf8('I am alice')).bytes;
    (mallory as unknown as Record<symbol, unknown>)[STATE] = ms;
    expectCode(() => openMessage(bob, forged), 'ERR_SEAL_OPEN_FAILED');
  });

  it('the opened message names and authenticates the sender', () => {
    const { alice, bob } = pair();
    const o = openMessage(bob, sealMessage(alice, { to: BOB }, 'message/cpim', utf8('x')).bytes);
    expect(o.senderDevice).toBe(ALICE);
    expect(o.sender).toEqual({
      address: { user: 'alice', domain: 'example.org' },
      deviceId: 'phone',
    });
    expect(toHex(o.senderIdentityKey)).toBe(toHex(alice.identityKey));
    expect(o.contentType).toBe('message/cpim');
    expect(o.kind).toBe('message');
  });
});

describe('sealed messages: replay, gaps, context', () => {
  it('a replayed message is refused', () => {
    const { alice, bob } = pair();
    const m = sealMessage(alice, { to: BOB }, 't', utf8('once')).bytes;
    openMessage(bob, m);
    expectCode(() => openMessage(bob, m), 'ERR_SEAL_REPLAY');
    expectCode(() => openMessage(bob, m), 'ERR_SEAL_REPLAY');
  });

  it('a gap in message numbers is reported', () => {
    const { alice, bob } = pair();
    const ms = [1, 2, 3, 4].map((i) => sealMessage(alice, { to: BOB }, 't', utf8(`${i}`)).bytes);
    expect(openMessage(bob, ms[0]!)).toMatchObject({ sequence: 2, gap: 0, late: false });
    expect(openMessage(bob, ms[3]!)).toMatchObject({ sequence: 5, gap: 2, late: false });
    expect(openMessage(bob, ms[1]!)).toMatchObject({ sequence: 3, gap: 0, late: true });
  });

  it('an object of one kind does not open as another', () => {
    const { alice, bob } = pair();
    const msg = sealMessage(alice, { to: BOB }, 't', utf8('chat')).bytes;
    const key = sealPresenceKey(alice, { to: BOB }, newPresenceKey(alice, 1)).bytes;
    const pub = new PresencePublisher(alice);
    const update = pub.publish(utf8('<presence/>'));
    const watch = new PresenceWatch('alice@example.org', new Map([['phone', alice.identityKey]]));
    expectCode(() => openMessage(bob, key), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => openMessage(bob, update), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => openPresenceKey(bob, msg), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => openPresenceKey(bob, update), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => watch.open(msg), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => watch.open(key), 'ERR_SEAL_OPEN_FAILED');
    // Relabelling the kind in the header does not help: the label is in every AD.
    expectCode(() => openPresenceKey(bob, withField(msg, 2, 3)), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => openMessage(bob, withField(key, 2, 1)), 'ERR_SEAL_OPEN_FAILED');
    // Nothing was consumed by the attempts.
    expect(openMessage(bob, msg).payload).toEqual(utf8('chat'));
    expect(openPresenceKey(bob, key).epoch).toBe(1);
  });

  it('refuses oversized payloads when sealing', () => {
    const { alice } = pair();
    expectCode(
      () => sealMessage(alice, { to: BOB }, 't', new Uint8Array(192 * 1024 + 1)),
      'ERR_INVALID_ARGUMENT',
    );
  });

  it('the replay cache is bounded and evicts the oldest ids first', () => {
    const cache = new ReplayCache(3);
    const ids = [1, 2, 3, 4].map((i) => new Uint8Array(16).fill(i));
    const digest = new Uint8Array(32).fill(9);
    for (const id of ids) cache.add(id, digest);
    expect(cache.size).toBe(3);
    expect(cache.has(ids[0]!)).toBe(false);
    expect(cache.isExactReplay(ids[3]!, digest)).toBe(true);
    expect(cache.isExactReplay(ids[3]!, new Uint8Array(32))).toBe(false);
    expect(cache.entries().map(([id]) => id[0])).toEqual([2, 3, 4]);
  });
});
