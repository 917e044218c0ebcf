/**
 * Review: cbor-x encodes into one module-level buffer shared by every Encoder in the process and
 * keeps writing after the previous output, so whatever src/seal encoded last (a serialised device
 * state with its identity secret key, a presence key, a message's plaintext content) stayed in
 * memory reachable through the `.buffer` of any later cbor-x output, in any module.
 */
import { Encoder } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/crypto/index.js';
import { decodeCborStrict, type CborValue } from '../../src/seal/cbor.js';
import { newPresenceKey, openMessage, sealMessage, sealPresenceKey } from '../../src/seal/index.js';
import { BOB, device, pair } from './helpers.js';

/** The shared buffer behind another module's cbor-x output. */
function sharedEncoderBuffer(): Buffer {
  const out = new Encoder().encode(1) as Uint8Array;
  return Buffer.from(out.buffer);
}

describe('review: encoded secrets do not stay in the CBOR encoder buffer', () => {
  it('a serialised device state (identity secret key) is not left behind', () => {
    const d = device('erin@example.org/a', 1);
    const state = d.serialise();
    const secret = (decodeCborStrict(state, 1 << 20) as Map<number, CborValue>).get(2);
    expect(secret).toBeInstanceOf(Uint8Array);
    expect(sharedEncoderBuffer().indexOf(Buffer.from(secret as Uint8Array))).toBe(-1);
  });

  it('a presence key and a message plaintext are not left behind', () => {
    const { alice, bob } = pair();
    const key = newPresenceKey(alice, 1);
    const raw = Uint8Array.from(key.key.expose());
    sealPresenceKey(alice, { to: BOB }, key);
    expect(sharedEncoderBuffer().indexOf(Buffer.from(raw))).toBe(-1);
    const secretText = utf8('a confidential sentence that must not linger in memory');
    const m = sealMessage(alice, { to: BOB }, 'text/plain', secretText);
    expect(sharedEncoderBuffer().indexOf(Buffer.from(secretText))).toBe(-1);
    openMessage(bob, m.bytes);
    expect(sharedEncoderBuffer().indexOf(Buffer.from(secretText))).toBe(-1);
  });
});
