/**
 * Review: the sealed-sender layer authenticates nobody, so anyone holding a recipient's public
 * identity key can make the recipient parse an inner object of their choosing. Fuzz that layer
 * (sender, identity key, X3DH data, ratchet header, ciphertext) behind a valid sealed-sender
 * AEAD, built here from the specification (docs/formats.md §4.2): only ERR_SEAL_OPEN_FAILED,
 * no state change, bounded work.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  concatBytes,
  ed25519PublicKeyToX25519,
  generateDhKeyPair,
  hkdfSha256,
  randomBytes,
  SecretBytes,
  toHex,
  utf8,
  x25519,
  xchachaSeal,
} from '../../src/crypto/index.js';
import { encodeCbor, transcript, type CborValue } from '../../src/seal/cbor.js';
import { openMessage, sealMessage, type SealDevice } from '../../src/seal/index.js';
import { ALICE, ALICE2, BOB, device, expectCode, pair } from './helpers.js';

/** Seals `inner` for `recipient` as a kind-1 object, exactly as a sender would (§4.1, §4.2). */
function sealInner(recipient: SealDevice, inner: Uint8Array): Uint8Array {
  const e = generateDhKeyPair();
  const header = new Map<number, CborValue>([
    [0, 1],
    [1, 1],
    [2, 1],
    [3, recipient.device],
    [4, randomBytes(16)],
    [5, e.publicKey],
  ]);
  const headerBytes = encodeCbor(header);
  const ss = x25519(e.secretKey, ed25519PublicKeyToX25519(recipient.identityKey));
  const okm = hkdfSha256(
    ss.expose(),
    concatBytes(e.publicKey, recipient.identityKey),
    utf8('impp/v1/sealed-sender'),
    56,
  );
  header.set(
    6,
    xchachaSeal(
      new SecretBytes(okm.slice(0, 32)),
      okm.slice(32),
      inner,
      transcript('impp/v1/message/sealed-sender', headerBytes),
    ),
  );
  return encodeCbor(header);
}

describe('review: forged inner objects behind a valid sealed-sender layer', () => {
  const { alice, bob } = pair();
  // A second session of Bob (Alice's laptop), so current and archived paths both exist.
  const laptop = device(ALICE2, 1);
  openMessage(bob, sealMessage(laptop, { to: BOB, bundle: bob.bundle() }, 't', utf8('x')).bytes);
  const bundle = bob.bundle();

  const key32 = fc.oneof(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.constant(alice.identityKey),
    fc.constant(bob.identityKey),
    fc.constant(new Uint8Array(32)), // low order / identity
    fc.constant(bundle.signedPrekey.publicKey),
  );
  const counter = fc.oneof(fc.nat(3), fc.constantFrom(999, 1000, 1001, 2 ** 32 - 1));
  const inner = fc
    .record(
      {
        sender: fc.constantFrom(ALICE, ALICE2, BOB, 'Alice@example.org/phone', 'x@y.z/1'),
        ik: key32,
        x3dh: fc.option(
          fc.record({
            ek: key32,
            spk: fc.constantFrom(0, 1, 2),
            opk: fc.option(fc.nat(6), { nil: undefined }),
          }),
          { nil: undefined },
        ),
        dh: key32,
        pn: counter,
        n: counter,
        c2: fc.uint8Array({ maxLength: 120 }),
      },
      { requiredKeys: ['sender', 'ik', 'dh', 'pn', 'n', 'c2'] },
    )
    .map((r) => {
      const m = new Map<number, CborValue>([
        [0, r.sender],
        [1, r.ik],
      ]);
      if (r.x3dh !== undefined) {
        const p = new Map<number, CborValue>([
          [0, r.x3dh.ek],
          [1, r.x3dh.spk],
        ]);
        if (r.x3dh.opk !== undefined) p.set(2, r.x3dh.opk);
        m.set(2, p);
      }
      m.set(
        3,
        new Map<number, CborValue>([
          [0, r.dh],
          [1, r.pn],
          [2, r.n],
        ]),
      );
      m.set(4, r.c2);
      return encodeCbor(m);
    });

  it('only ERR_SEAL_OPEN_FAILED, and the state never changes', () => {
    const before = toHex(bob.serialise());
    fc.assert(
      fc.property(fc.oneof(inner, fc.uint8Array({ maxLength: 200 })), (bytes) => {
        expectCode(() => openMessage(bob, sealInner(bob, bytes)), 'ERR_SEAL_OPEN_FAILED');
        expectCode(
          () => openMessage(bob, sealInner(bob, bytes), { trustNewIdentity: () => true }),
          'ERR_SEAL_OPEN_FAILED',
        );
      }),
      { numRuns: 120 },
    );
    expect(toHex(bob.serialise())).toBe(before);
    // And the real sessions still work.
    const m = sealMessage(alice, { to: BOB }, 't', utf8('still here'));
    expect(openMessage(bob, m.bytes).payload).toEqual(utf8('still here'));
  });

  it('the worst forged object (both skips at MAX_SKIP, current and archived tried) stays cheap', () => {
    const worst = new Map<number, CborValue>([
      [0, ALICE],
      [1, alice.identityKey],
      [
        3,
        new Map<number, CborValue>([
          [0, randomBytes(32)],
          [1, 1000],
          [2, 1000],
        ]),
      ],
      [4, randomBytes(64)],
    ]);
    const bytes = sealInner(bob, encodeCbor(worst));
    const start = performance.now();
    for (let i = 0; i < 5; i++) expectCode(() => openMessage(bob, bytes), 'ERR_SEAL_OPEN_FAILED');
    const perOpen = (performance.now() - start) / 5;
    // Recorded for the security model; generous bound so a slow CI machine passes.
    expect(perOpen).toBeLessThan(250);
  });
});
