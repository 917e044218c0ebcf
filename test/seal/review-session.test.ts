/** Review findings on sessions: archived sessions after an accepted identity change. */
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/crypto/index.js';
import { openMessage, SealDevice, sealMessage } from '../../src/seal/index.js';
import { ALICE, BOB, device, expectCode, pair } from './helpers.js';

describe('review: an accepted identity change is final', () => {
  it('the replaced identity key can neither open a message nor become current again', () => {
    const { alice, bob } = pair();
    // Alice's old phone (identity key 1, sessions included) is in someone else's hands.
    const oldPhone = SealDevice.restore(alice.serialise());
    // Alice reinstalls: a new identity key for the same device address, accepted by Bob.
    const reinstalled = device(ALICE);
    const hello = sealMessage(reinstalled, { to: BOB, bundle: bob.bundle() }, 't', utf8('new'));
    openMessage(bob, hello.bytes, { trustNewIdentity: () => true });
    expect(toHex(bob.sessionIdentityKey(ALICE) ?? new Uint8Array())).toBe(
      toHex(reinstalled.identityKey),
    );

    // The old key sends through its old session: no identity check may be skipped.
    const stale = sealMessage(oldPhone, { to: BOB }, 't', utf8('from the old key'));
    const before = toHex(bob.serialise());
    expectCode(() => openMessage(bob, stale.bytes), 'ERR_SEAL_OPEN_FAILED', 'ERR_IDENTITY_CHANGED');
    expect(toHex(bob.serialise())).toBe(before);
    expect(toHex(bob.sessionIdentityKey(ALICE) ?? new Uint8Array())).toBe(
      toHex(reinstalled.identityKey),
    );

    // Bob's next message goes to the accepted key only.
    const reply = sealMessage(bob, { to: ALICE }, 't', utf8('to the new key'));
    expect(openMessage(reinstalled, reply.bytes).payload).toEqual(utf8('to the new key'));
    expectCode(() => openMessage(oldPhone, reply.bytes), 'ERR_SEAL_OPEN_FAILED');
  });

  it('the old session is wiped, not kept in the persisted state', () => {
    const { alice, bob } = pair();
    const reinstalled = device(ALICE);
    const hello = sealMessage(reinstalled, { to: BOB, bundle: bob.bundle() }, 't', utf8('new'));
    openMessage(bob, hello.bytes, { trustNewIdentity: () => true });
    // The old identity key no longer appears anywhere in Bob's state.
    const state = Buffer.from(SealDevice.restore(bob.serialise()).serialise());
    expect(state.indexOf(Buffer.from(alice.identityKey))).toBe(-1);
  });
});

describe('review: key arrays handed to callers are copies', () => {
  it('mutating an opened sender identity key (or a getter result) does not rebind the session', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const first = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 't', utf8('1'));
    const opened = openMessage(bob, first.bytes);
    opened.senderIdentityKey.fill(0); // e.g. a caller wiping what it was handed
    bob.sessionIdentityKey(ALICE)?.fill(0);
    bob.identityKey.fill(0);
    expect(toHex(bob.sessionIdentityKey(ALICE) ?? new Uint8Array())).toBe(toHex(alice.identityKey));
    const second = sealMessage(alice, { to: BOB }, 't', utf8('2'));
    expect(openMessage(bob, second.bytes).payload).toEqual(utf8('2'));
    const reply = sealMessage(bob, { to: ALICE }, 't', utf8('3'));
    expect(openMessage(alice, reply.bytes).payload).toEqual(utf8('3'));
  });
});

describe('review: published prekeys are copies', () => {
  it('mutating a bundle handed out does not alter the device keys', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const handedOut = bob.bundle();
    const good = bob.bundle();
    handedOut.signedPrekey.publicKey.fill(0);
    handedOut.signedPrekey.signature.fill(0);
    handedOut.oneTimePrekey?.publicKey.fill(0);
    handedOut.identityKey.fill(0);
    const first = sealMessage(alice, { to: BOB, bundle: good }, 't', utf8('hi'));
    expect(openMessage(bob, first.bytes).payload).toEqual(utf8('hi'));
    const reply = sealMessage(bob, { to: ALICE }, 't', utf8('ho'));
    expect(openMessage(alice, reply.bytes).payload).toEqual(utf8('ho'));
  });
});
