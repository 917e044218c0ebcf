import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, sign, toHex, utf8 } from '../../src/crypto/index.js';
import { encodeCbor } from '../../src/seal/cbor.js';
import { systemRandom } from '../../src/seal/rng.js';
import {
  decodePrekeyBundle,
  encodePrekeyBundle,
  generateOneTimePrekeys,
  generateSignedPrekey,
  signedPrekeyTranscript,
  verifyBundle,
  x3dhInitiate,
  x3dhRespond,
  type PrekeyBundle,
} from '../../src/seal/x3dh.js';
import { openMessage, sealMessage } from '../../src/seal/index.js';
import { ReplayCache } from '../../src/seal/replay.js';
import { STATE } from '../../src/seal/session.js';
import { ALICE, BOB, device, expectCode, flipBit } from './helpers.js';

/** verifyBundle as an expression, for expectCode. */
function check(bundle: PrekeyBundle): boolean {
  verifyBundle(bundle);
  return true;
}

function setup() {
  const aliceId = generateSigningKeyPair();
  const bobId = generateSigningKeyPair();
  const spk = generateSignedPrekey(bobId, 7, systemRandom);
  const [opk] = generateOneTimePrekeys(100, 1, systemRandom);
  const bundle: PrekeyBundle = {
    device: 'bob@example.org/laptop',
    identityKey: bobId.publicKey,
    signedPrekey: { id: spk.id, publicKey: spk.keyPair.publicKey, signature: spk.signature },
    oneTimePrekey: { id: opk!.id, publicKey: opk!.keyPair.publicKey },
  };
  return { aliceId, bobId, spk, opk: opk!, bundle };
}

describe('X3DH (X3DH §3.3, §3.4)', () => {
  it('both sides derive the same SK and AD, with a one-time prekey', () => {
    const { aliceId, bobId, spk, opk, bundle } = setup();
    const init = x3dhInitiate(aliceId, bundle, systemRandom);
    const resp = x3dhRespond(bobId, spk, opk, aliceId.publicKey, init.baseKey);
    expect(toHex(init.sharedKey.expose())).toBe(toHex(resp.sharedKey.expose()));
    expect(toHex(init.associatedData)).toBe(toHex(resp.associatedData));
    expect(toHex(init.associatedData)).toBe(toHex(aliceId.publicKey) + toHex(bobId.publicKey));
    expect(init.oneTimePrekeyId).toBe(100);
  });

  it('works without a one-time prekey (DH4 omitted), and DH4 changes the key', () => {
    const { aliceId, bobId, spk, opk, bundle } = setup();
    const noOpk: PrekeyBundle = { ...bundle };
    delete (noOpk as { oneTimePrekey?: unknown }).oneTimePrekey;
    const init = x3dhInitiate(aliceId, noOpk, systemRandom);
    const resp = x3dhRespond(bobId, spk, undefined, aliceId.publicKey, init.baseKey);
    expect(toHex(init.sharedKey.expose())).toBe(toHex(resp.sharedKey.expose()));
    const withOpk = x3dhRespond(bobId, spk, opk, aliceId.publicKey, init.baseKey);
    expect(toHex(withOpk.sharedKey.expose())).not.toBe(toHex(init.sharedKey.expose()));
  });

  it('a different initiator identity yields a different key (mutual authentication)', () => {
    const { aliceId, bobId, spk, opk, bundle } = setup();
    const init = x3dhInitiate(aliceId, bundle, systemRandom);
    const mallory = generateSigningKeyPair();
    const resp = x3dhRespond(bobId, spk, opk, mallory.publicKey, init.baseKey);
    expect(toHex(resp.sharedKey.expose())).not.toBe(toHex(init.sharedKey.expose()));
  });

  it('a bundle whose signed prekey does not verify is refused (§3.3)', () => {
    const { aliceId, bundle } = setup();
    const bad = {
      ...bundle,
      signedPrekey: {
        ...bundle.signedPrekey,
        signature: flipBit(bundle.signedPrekey.signature, 3),
      },
    };
    expectCode(() => check(bad), 'ERR_CRYPTO_VERIFY_FAILED');
    expectCode(() => x3dhInitiate(aliceId, bad, systemRandom), 'ERR_CRYPTO_VERIFY_FAILED');
    const other = generateSigningKeyPair();
    expectCode(
      () => check({ ...bundle, identityKey: other.publicKey }),
      'ERR_CRYPTO_VERIFY_FAILED',
    );
  });

  it('the signed prekey signature is domain-separated and binds the id', () => {
    const { bundle } = setup();
    expectCode(
      () => check({ ...bundle, signedPrekey: { ...bundle.signedPrekey, id: 8 } }),
      'ERR_CRYPTO_VERIFY_FAILED',
    );
    // A plain signature over the raw key (no label) is not accepted.
    const id = generateSigningKeyPair();
    const spk = generateSignedPrekey(id, 1, systemRandom);
    const raw = sign(id.secretKey, spk.keyPair.publicKey);
    expectCode(
      () =>
        check({
          device: 'x@y.z/d',
          identityKey: id.publicKey,
          signedPrekey: { id: 1, publicKey: spk.keyPair.publicKey, signature: raw },
        }),
      'ERR_CRYPTO_VERIFY_FAILED',
    );
    expect(signedPrekeyTranscript(1, spk.keyPair.publicKey)[0]).toBe(0x83); // CBOR array of 3
  });

  it('refuses a low-order signed prekey even when validly signed (all-zero DH output)', () => {
    const { aliceId, bobId } = setup();
    const lowOrder = new Uint8Array(32); // the point of order 1... encoded as zero
    const bundle: PrekeyBundle = {
      device: 'bob@example.org/laptop',
      identityKey: bobId.publicKey,
      signedPrekey: {
        id: 1,
        publicKey: lowOrder,
        signature: sign(bobId.secretKey, signedPrekeyTranscript(1, lowOrder)),
      },
    };
    expectCode(() => x3dhInitiate(aliceId, bundle, systemRandom), 'ERR_CRYPTO_WEAK_KEY');
  });

  it('bundle encoding round-trips and is strict', () => {
    const { bundle } = setup();
    const bytes = encodePrekeyBundle(bundle);
    const back = decodePrekeyBundle(bytes);
    expect(toHex(encodePrekeyBundle(back))).toBe(toHex(bytes));
    const noOpk: PrekeyBundle = { ...bundle };
    delete (noOpk as { oneTimePrekey?: unknown }).oneTimePrekey;
    expect(decodePrekeyBundle(encodePrekeyBundle(noOpk)).oneTimePrekey).toBeUndefined();
    expectCode(
      () => decodePrekeyBundle(flipBit(bytes, 8 * 40)),
      'ERR_CRYPTO_VERIFY_FAILED',
      'ERR_SEAL_MALFORMED',
    );
    expectCode(() => decodePrekeyBundle(Uint8Array.of(...bytes, 0)), 'ERR_SEAL_MALFORMED');
    const v2 = Uint8Array.from(bytes);
    v2[2] = 2; // version field value (map header, key 0, value)
    expectCode(() => decodePrekeyBundle(v2), 'ERR_SEAL_UNSUPPORTED');
    expectCode(
      () =>
        decodePrekeyBundle(
          encodeCbor(
            new Map([
              [0, 1],
              [9, 1],
            ]),
          ),
        ),
      'ERR_SEAL_MALFORMED',
    );
  });

  it('a replayed first message does not open a second session', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const first = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 't', utf8('first'));
    expect(openMessage(bob, first.bytes).newSession).toBe(true);
    expectCode(() => openMessage(bob, first.bytes), 'ERR_SEAL_REPLAY');
    // Even with the replay cache gone (evicted), the one-time prekey and the message key are.
    bob[STATE].replay = new ReplayCache();
    expectCode(() => openMessage(bob, first.bytes), 'ERR_SEAL_OPEN_FAILED');
    expect(bob.sessionDevices()).toEqual([ALICE]);
    bob[STATE].sessions.clear();
    expectCode(() => openMessage(bob, first.bytes), 'ERR_SEAL_OPEN_FAILED');
    expect(bob.sessionDevices()).toEqual([]);
  });
});
