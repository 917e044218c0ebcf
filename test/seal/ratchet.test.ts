import { describe, expect, it } from 'vitest';
import {
  SecretBytes,
  generateDhKeyPair,
  randomBytes,
  toHex,
  utf8,
} from '../../src/crypto/index.js';
import { encodeCbor } from '../../src/seal/cbor.js';
import { MAX_SKIP, MAX_SKIPPED_KEYS } from '../../src/seal/constants.js';
import {
  cloneRatchetState,
  encodeRatchetHeader,
  initRatchetInitiator,
  initRatchetResponder,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetStateFromCbor,
  ratchetStateToCbor,
  skippedKeyCount,
  type RatchetHeader,
  type RatchetState,
} from '../../src/seal/ratchet.js';
import { systemRandom } from '../../src/seal/rng.js';
import { expectCode } from './helpers.js';

const AD = utf8('test-ad');
const ad = (hb: Uint8Array): Uint8Array => new Uint8Array([...AD, ...hb]);

interface Msg {
  header: RatchetHeader;
  ciphertext: Uint8Array;
  hb: Uint8Array;
}

function setup(): { a: RatchetState; b: RatchetState } {
  const sk = new SecretBytes(randomBytes(32));
  const bobSpk = generateDhKeyPair();
  return {
    a: initRatchetInitiator(sk, bobSpk.publicKey, systemRandom),
    b: initRatchetResponder(sk, bobSpk),
  };
}

function send(s: RatchetState, text: string): Msg {
  let hb: Uint8Array = new Uint8Array(0);
  const { header, ciphertext } = ratchetEncrypt(s, utf8(text), (h) => {
    hb = h;
    return ad(h);
  });
  return { header, ciphertext, hb };
}

/** Decrypts on a copy and commits on success, as the session layer does. */
function recv(holder: { s: RatchetState }, m: Msg): string {
  const draft = cloneRatchetState(holder.s);
  const pt = ratchetDecrypt(draft, m.header, m.ciphertext, ad(m.hb), systemRandom);
  holder.s = draft;
  return Buffer.from(pt).toString();
}

describe('Double Ratchet (§3)', () => {
  it('ping-pong with a DH ratchet step on every turn', () => {
    const { a, b } = setup();
    const A = { s: a };
    const B = { s: b };
    for (let i = 0; i < 5; i++) {
      expect(recv(B, send(A.s, `a${i}`))).toBe(`a${i}`);
      const before = toHex(B.s.dhSelf.publicKey);
      expect(recv(A, send(B.s, `b${i}`))).toBe(`b${i}`);
      expect(toHex(B.s.dhSelf.publicKey)).toBe(before);
    }
    expect(A.s.dhRemote).not.toBeNull();
  });

  it('the responder cannot send before receiving (§3.3 RatchetInitBob has no CKs)', () => {
    const { b } = setup();
    expectCode(() => send(b, 'x'), 'ERR_SEAL_SESSION_STATE');
  });

  it('out-of-order messages open once, via skipped keys (§3.5, §2.6)', () => {
    const { a, b } = setup();
    const B = { s: b };
    const msgs = [0, 1, 2, 3, 4].map((i) => send(a, `m${i}`));
    expect(recv(B, msgs[4]!)).toBe('m4');
    expect(skippedKeyCount(B.s)).toBe(4);
    expect(recv(B, msgs[1]!)).toBe('m1');
    expect(recv(B, msgs[0]!)).toBe('m0');
    expect(skippedKeyCount(B.s)).toBe(2);
    expectCode(() => recv(B, msgs[0]!), 'ERR_SEAL_OPEN_FAILED');
    expectCode(() => recv(B, msgs[4]!), 'ERR_SEAL_OPEN_FAILED');
  });

  it('messages from a previous chain open after a DH ratchet step (PN)', () => {
    const { a, b } = setup();
    const A = { s: a };
    const B = { s: b };
    const early = send(A.s, 'early');
    expect(recv(B, send(A.s, 'first'))).toBe('first');
    expect(recv(A, send(B.s, 'reply'))).toBe('reply');
    expect(recv(B, send(A.s, 'new chain'))).toBe('new chain');
    // "early" was number 0 of Alice's first chain, skipped when "first" (n = 1) opened.
    expect(recv(B, early)).toBe('early');
  });

  it('refuses a jump beyond MAX_SKIP in one chain', () => {
    const { a, b } = setup();
    const B = { s: b };
    for (let i = 0; i <= MAX_SKIP; i++) send(a, '');
    const far = send(a, 'far'); // n = MAX_SKIP + 1
    expectCode(() => recv(B, far), 'ERR_SEAL_OPEN_FAILED');
    expect(B.s.nr).toBe(0);
  });

  it('caps the stored skipped keys globally, evicting the oldest', () => {
    const { a, b } = setup();
    const A = { s: a };
    const B = { s: b };
    const firstSkipped: Msg[] = [];
    for (let round = 0; round < 3; round++) {
      const batch: Msg[] = [];
      for (let i = 0; i < MAX_SKIP; i++) batch.push(send(A.s, `r${round}m${i}`));
      if (round === 0) firstSkipped.push(batch[0]!);
      recv(B, batch[MAX_SKIP - 1]!);
      recv(A, send(B.s, 'turn'));
    }
    expect(skippedKeyCount(B.s)).toBe(MAX_SKIPPED_KEYS);
    // The oldest skipped key was evicted: that message can no longer be opened.
    expectCode(() => recv(B, firstSkipped[0]!), 'ERR_SEAL_OPEN_FAILED');
  });

  it('a failed open leaves the session unchanged', () => {
    const { a, b } = setup();
    const B = { s: b };
    recv(B, send(a, 'x'));
    const m = send(a, 'y');
    const before = toHex(encodeCbor(ratchetStateToCbor(B.s)));
    const bad = { ...m, ciphertext: Uint8Array.from(m.ciphertext).fill(1, 0, 1) };
    expectCode(() => recv(B, bad), 'ERR_SEAL_OPEN_FAILED');
    expect(toHex(encodeCbor(ratchetStateToCbor(B.s)))).toBe(before);
    expect(recv(B, m)).toBe('y');
  });

  it('binds the associated data and the header', () => {
    const { a, b } = setup();
    const m = send(a, 'x');
    const draft = cloneRatchetState(b);
    expectCode(
      () => ratchetDecrypt(draft, m.header, m.ciphertext, utf8('other'), systemRandom),
      'ERR_SEAL_OPEN_FAILED',
    );
    // The header is part of the AD (CONCAT(AD, header)): a changed PN alone fails the tag.
    const draft2 = cloneRatchetState(b);
    const changed = { ...m.header, pn: 1 };
    expectCode(
      () =>
        ratchetDecrypt(
          draft2,
          changed,
          m.ciphertext,
          ad(encodeRatchetHeader(changed)),
          systemRandom,
        ),
      'ERR_SEAL_OPEN_FAILED',
    );
  });

  it('state survives serialisation mid-conversation (with skipped keys)', () => {
    const { a, b } = setup();
    const A = { s: a };
    const B = { s: b };
    const m0 = send(A.s, 'm0');
    recv(B, send(A.s, 'm1'));
    recv(A, send(B.s, 'r'));
    const restored = { s: ratchetStateFromCbor(ratchetStateToCbor(B.s)) };
    expect(toHex(encodeCbor(ratchetStateToCbor(restored.s)))).toBe(
      toHex(encodeCbor(ratchetStateToCbor(B.s))),
    );
    expect(recv(restored, m0)).toBe('m0');
    expect(recv(restored, send(A.s, 'after'))).toBe('after');
    expect(recv(A, send(restored.s, 'back'))).toBe('back');
    expectCode(() => ratchetStateFromCbor(new Map([[0, 1]])), 'ERR_SEAL_MALFORMED');
  });
});
