import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { decodeCborStrict, encodeCbor, type CborValue } from '../../src/seal/cbor.js';
import { MAX_SEALED_BYTES } from '../../src/seal/constants.js';
import { parseEnvelope, readEnvelopeHeader } from '../../src/seal/header.js';
import {
  openMessage,
  PresencePublisher,
  PresenceWatch,
  sealMessage,
} from '../../src/seal/index.js';
import { ALICE, BOB, containsBytes, device, expectCode, pair } from './helpers.js';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s/g, ''), 'hex'));

/** Re-encodes a decoded envelope with one field replaced. */
function withField(bytes: Uint8Array, key: number, value: CborValue | undefined): Uint8Array {
  const m = new Map(decodeCborStrict(bytes, MAX_SEALED_BYTES) as Map<number, CborValue>);
  if (value === undefined) m.delete(key);
  else m.set(key, value);
  return encodeCbor(m);
}

describe('strict CBOR', () => {
  it('accepts the deterministic encoding and refuses every other one', () => {
    expect(decodeCborStrict(hex('a2 00 01 01 42 0102'), 100)).toEqual(
      new Map<number, CborValue>([
        [0, 1],
        [1, Uint8Array.of(1, 2)],
      ]),
    );
    const bad = {
      trailing: 'a1 00 01 00',
      indefiniteMap: 'bf 00 01 ff',
      indefiniteBytes: 'a1 00 5f 41 01 ff',
      nonMinimalInt: 'a1 00 18 01',
      nonMinimalLength: 'a1 00 58 01 01',
      duplicateKey: 'a2 00 01 00 02',
      unorderedKeys: 'a2 01 01 00 01',
      tag: 'a1 00 c1 1a 5f000000',
      float: 'a1 00 fb 3ff0000000000000',
      negative: 'a1 00 20',
      textKey: 'a1 61 61 01',
      bool: 'a1 00 f5',
      empty: '',
      truncated: 'a1 00 42 01',
    };
    for (const [name, h] of Object.entries(bad)) {
      try {
        decodeCborStrict(hex(h), 100);
        expect.fail(`accepted ${name}`);
      } catch (e) {
        expect(isImppError(e, 'ERR_SEAL_MALFORMED'), name).toBe(true);
      }
    }
  });

  it('an object above the size limit is refused before decoding', () => {
    expectCode(() => decodeCborStrict(new Uint8Array(101), 100), 'ERR_SEAL_TOO_LARGE');
    expectCode(() => parseEnvelope(new Uint8Array(MAX_SEALED_BYTES + 1)), 'ERR_SEAL_TOO_LARGE');
  });

  it('round-trips arbitrary values of the subset (property)', () => {
    const leaf = fc.oneof(fc.nat(), fc.maxSafeNat(), fc.string(), fc.uint8Array({ maxLength: 40 }));
    const value = fc.letrec<{ v: CborValue }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('v'), { maxLength: 4 }),
        fc
          .uniqueArray(fc.tuple(fc.integer({ min: 0, max: 23 }), tie('v')), {
            maxLength: 4,
            selector: (t) => t[0],
          })
          .map((entries) => new Map(entries)),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encodeCbor(v);
        expect(toHex(encodeCbor(decodeCborStrict(bytes, 1 << 20)))).toBe(toHex(bytes));
      }),
    );
  });

  it('arbitrary bytes never fail with anything but ERR_SEAL_MALFORMED (or ERR_SEAL_UNSUPPORTED)', () => {
    const { bob } = pair();
    const anyCbor = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc
        .array(
          fc.tuple(
            fc.integer({ min: 0, max: 12 }),
            fc.oneof(fc.nat(3), fc.uint8Array({ maxLength: 20 }), fc.string()),
          ),
          { maxLength: 8 },
        )
        .map((entries) => encodeCbor(new Map(entries.sort((a, b) => a[0] - b[0])))),
    );
    fc.assert(
      fc.property(anyCbor, (bytes) => {
        try {
          parseEnvelope(bytes);
        } catch (e) {
          expect(
            isImppError(e, 'ERR_SEAL_MALFORMED') || isImppError(e, 'ERR_SEAL_UNSUPPORTED'),
          ).toBe(true);
        }
        expectCode(() => openMessage(bob, bytes), 'ERR_SEAL_OPEN_FAILED', 'ERR_SEAL_UNSUPPORTED');
      }),
      { numRuns: 500 },
    );
  });
});

describe('envelope: versions, suites, kinds', () => {
  it('unknown version and unknown suite are refused (and unknown kind), on the header side and when opening', () => {
    const { alice, bob } = pair();
    const m = sealMessage(alice, { to: BOB }, 'text/plain', utf8('x')).bytes;
    for (const [key, value] of [
      [0, 2],
      [0, 0],
      [1, 2],
      [1, 0],
      [2, 4],
      [2, 0],
    ] as const) {
      const bad = withField(m, key, value);
      expectCode(() => readEnvelopeHeader(bad), 'ERR_SEAL_UNSUPPORTED');
      expectCode(() => openMessage(bob, bad), 'ERR_SEAL_UNSUPPORTED');
    }
    // A future version may have other fields: the version is checked before the key set.
    const future = encodeCbor(
      new Map<number, CborValue>([
        [0, 2],
        [15, 'anything'],
      ]),
    );
    expectCode(() => readEnvelopeHeader(future), 'ERR_SEAL_UNSUPPORTED');
    // The message still opens: nothing was consumed.
    expect(openMessage(bob, m).payload).toEqual(utf8('x'));
  });

  it('a presence update with an unknown suite is refused by the watcher', () => {
    const { alice } = pair();
    const pub = new PresencePublisher(alice);
    const u = pub.publish(utf8('<presence/>'));
    const w = new PresenceWatch('alice@example.org', new Map([['phone', alice.identityKey]]));
    expectCode(() => w.open(withField(u, 1, 9)), 'ERR_SEAL_UNSUPPORTED');
  });

  it('malformed envelopes: missing, extra or mistyped fields', () => {
    const { alice } = pair();
    const m = sealMessage(alice, { to: BOB }, 'text/plain', utf8('x')).bytes;
    const cases: Uint8Array[] = [
      withField(m, 6, undefined),
      withField(m, 7, 1),
      withField(m, 4, new Uint8Array(15)),
      withField(m, 5, 'key'),
      withField(m, 3, 'bob@example.org'),
      withField(m, 3, 'Bob@Example.org/laptop/x y'),
      encodeCbor([1, 1, 1]),
    ];
    for (const c of cases) expectCode(() => readEnvelopeHeader(c), 'ERR_SEAL_MALFORMED');
  });
});

describe("envelope: the server's view", () => {
  it("the server's view contains no sender address and no payload bytes", () => {
    const { alice, bob } = pair();
    const payload = utf8('The quick brown fox: a very secret plaintext payload');
    const sealed = sealMessage(alice, { to: BOB }, 'message/cpim', payload);
    const h = readEnvelopeHeader(sealed.bytes);
    expect(h).toMatchObject({ kind: 'message', version: 1, suite: 1, recipientDevice: BOB });
    if (h.kind !== 'presence') expect(toHex(h.messageId)).toBe(toHex(sealed.messageId));
    const view = JSON.stringify(h);
    for (const bytes of [sealed.bytes, utf8(view)]) {
      expect(containsBytes(bytes, utf8('alice'))).toBe(false);
      expect(containsBytes(bytes, utf8(ALICE))).toBe(false);
      expect(containsBytes(bytes, alice.identityKey)).toBe(false);
      expect(containsBytes(bytes, utf8('message/cpim'))).toBe(false);
      for (let i = 0; i + 8 <= payload.length; i++) {
        expect(containsBytes(bytes, payload.subarray(i, i + 8))).toBe(false);
      }
    }
    expect(openMessage(bob, sealed.bytes).payload).toEqual(payload);
  });

  it('the first (prekey) message hides the sender too', () => {
    const alice = device(ALICE);
    const bob = device(BOB);
    const sealed = sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 't', utf8('x'));
    expect(containsBytes(sealed.bytes, utf8('alice@'))).toBe(false);
    expect(containsBytes(sealed.bytes, alice.identityKey)).toBe(false);
    expect(openMessage(bob, sealed.bytes).newSession).toBe(true);
  });
});
