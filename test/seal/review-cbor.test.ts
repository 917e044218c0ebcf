/**
 * Review findings on decoding untrusted CBOR (src/seal/cbor.ts) and a fuzz of every decode entry
 * point of src/seal: only ImppError with the documented codes may come out, quickly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/crypto/index.js';
import { isImppError, type ImppErrorCode } from '../../src/errors.js';
import { decodeCborStrict, encodeCbor, type CborValue } from '../../src/seal/cbor.js';
import { MAX_SEALED_BYTES } from '../../src/seal/constants.js';
import { parseEnvelope, readEnvelopeHeader } from '../../src/seal/header.js';
import {
  decodePrekeyBundle,
  encodePrekeyBundle,
  openMessage,
  openPresenceKey,
  PresencePublisher,
  PresenceWatch,
  SealDevice,
  sealMessage,
} from '../../src/seal/index.js';
import { ALICE, BOB, device, pair } from './helpers.js';
import { bignum, sharingBomb } from '../helpers/cbor-bombs.js';

function timed(fn: () => unknown): { code: string; ms: number } {
  const start = performance.now();
  try {
    fn();
  } catch (e) {
    return { code: isImppError(e) ? e.code : String(e), ms: performance.now() - start };
  }
  return { code: 'none', ms: performance.now() - start };
}

describe('review: CBOR work is bounded before cbor-x interprets anything', () => {
  it('a value-sharing bomb (tags 28/29) is refused at once, on the header side too', () => {
    const bomb = sharingBomb(16, 6); // 275 bytes, 16^6 values expanded
    expect(bomb.length).toBeLessThan(300);
    for (const fn of [
      () => decodeCborStrict(bomb, MAX_SEALED_BYTES),
      () => parseEnvelope(bomb),
      () => readEnvelopeHeader(bomb),
    ]) {
      const r = timed(fn);
      expect(r.code).toBe('ERR_SEAL_MALFORMED');
      expect(r.ms).toBeLessThan(100);
    }
  });

  it('a large bignum (tag 2) is refused at once', () => {
    const r = timed(() => parseEnvelope(bignum(100_000)));
    expect(r.code).toBe('ERR_SEAL_MALFORMED');
    expect(r.ms).toBeLessThan(100);
  });

  it('deep nesting is refused without recursion (beyond the subset depth)', () => {
    const deep = new Uint8Array(MAX_SEALED_BYTES).fill(0x81);
    deep[deep.length - 1] = 0;
    const r = timed(() => parseEnvelope(deep));
    expect(r.code).toBe('ERR_SEAL_MALFORMED');
    expect(r.ms).toBeLessThan(100);
    // Eight levels are the subset's limit and still decode.
    const eight = Uint8Array.from([...new Array<number>(8).fill(0x81), 0]);
    expect(decodeCborStrict(eight, 100)).toEqual([[[[[[[[0]]]]]]]]);
  });

  it('declared counts and lengths beyond the input are refused', () => {
    for (const h of ['9b ffffffffffffffff', 'bb 0000000100000000', '5a ffffffff 00', '83 00 00']) {
      const bytes = Uint8Array.from(Buffer.from(h.replace(/\s/g, ''), 'hex'));
      expect(timed(() => decodeCborStrict(bytes, 100)).code).toBe('ERR_SEAL_MALFORMED');
    }
  });
});

/** Asserts `fn` succeeds or throws an ImppError whose code is in `codes`. */
function onlyCodes(fn: () => unknown, codes: readonly ImppErrorCode[]): void {
  try {
    fn();
  } catch (e) {
    if (!(isImppError(e) && codes.includes(e.code))) {
      throw new Error(`unexpected failure: ${String(e)}`, { cause: e });
    }
  }
}

/** Arbitrary bytes, and mutations (byte set, truncation, insertion) of the valid `samples`. */
function inputs(samples: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const mutated = fc
    .tuple(
      fc.constantFrom(...samples),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom('set', 'cut', 'insert'),
    )
    .map(([s, at, byte, how]) => {
      const i = at % (s.length + 1);
      if (how === 'cut') return s.slice(0, i);
      if (how === 'insert') return Uint8Array.from([...s.slice(0, i), byte, ...s.slice(i)]);
      const out = Uint8Array.from(s);
      if (i < out.length) out[i] = byte;
      return out;
    });
  return fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated);
}

describe('review: fuzz of every decode entry point (only the documented ImppError codes)', () => {
  const { alice, bob } = pair();
  const message = sealMessage(alice, { to: BOB }, 'text/plain', utf8('fuzz')).bytes;
  const pub = new PresencePublisher(alice);
  const keyObject = pub.authorize({ to: BOB }).bytes;
  const update = pub.publish(utf8('<presence/>'));
  const watch = new PresenceWatch('alice@example.org', new Map([['phone', alice.identityKey]]));
  const small = device('dave@example.org/x', 1);
  const bundle = encodePrekeyBundle(small.bundle());
  const state = small.serialise();
  const watchState = watch.serialise();
  const pubState = pub.serialise();
  const runs = { numRuns: 300 };

  it('parseEnvelope / readEnvelopeHeader', () => {
    fc.assert(
      fc.property(inputs([message, keyObject, update]), (b) => {
        onlyCodes(
          () => readEnvelopeHeader(b),
          ['ERR_SEAL_MALFORMED', 'ERR_SEAL_UNSUPPORTED', 'ERR_SEAL_TOO_LARGE'],
        );
      }),
      runs,
    );
  });

  it('openMessage and openPresenceKey', () => {
    const codes: ImppErrorCode[] = [
      'ERR_SEAL_OPEN_FAILED',
      'ERR_SEAL_UNSUPPORTED',
      'ERR_SEAL_REPLAY',
    ];
    fc.assert(
      fc.property(inputs([message, keyObject]), (b) => {
        const before = bob.serialise();
        onlyCodes(() => openMessage(bob, b), codes);
        onlyCodes(() => openPresenceKey(bob, b), codes);
        // A mutation that changed nothing is the valid object and may open (once); any real
        // change never opens, so the state is unchanged.
        const same = [message, keyObject].some((v) => Buffer.from(v).equals(Buffer.from(b)));
        if (!same) expect(Buffer.from(bob.serialise()).equals(Buffer.from(before))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('PresenceWatch.open', () => {
    fc.assert(
      fc.property(inputs([update]), (b) => {
        onlyCodes(() => watch.open(b), ['ERR_SEAL_OPEN_FAILED', 'ERR_SEAL_UNSUPPORTED']);
      }),
      runs,
    );
  });

  it('decodePrekeyBundle', () => {
    fc.assert(
      fc.property(inputs([bundle]), (b) => {
        onlyCodes(
          () => decodePrekeyBundle(b),
          [
            'ERR_SEAL_MALFORMED',
            'ERR_SEAL_UNSUPPORTED',
            'ERR_SEAL_TOO_LARGE',
            'ERR_CRYPTO_VERIFY_FAILED',
          ],
        );
      }),
      runs,
    );
  });

  it('SealDevice.restore, PresenceWatch.restore, PresencePublisher.restore', () => {
    const codes: ImppErrorCode[] = ['ERR_SEAL_SESSION_STATE', 'ERR_SEAL_UNSUPPORTED'];
    fc.assert(
      fc.property(inputs([state, watchState, pubState]), (b) => {
        onlyCodes(() => SealDevice.restore(b), codes);
        onlyCodes(() => PresenceWatch.restore(b), codes);
        onlyCodes(() => PresencePublisher.restore(alice, b), codes);
      }),
      { numRuns: 200 },
    );
  });

  it('the bombs above, through every entry point', () => {
    for (const b of [sharingBomb(16, 6), bignum(50_000)]) {
      const r = timed(() => {
        onlyCodes(() => openMessage(bob, b), ['ERR_SEAL_OPEN_FAILED']);
        onlyCodes(() => watch.open(b), ['ERR_SEAL_OPEN_FAILED']);
        onlyCodes(() => decodePrekeyBundle(b), ['ERR_SEAL_MALFORMED', 'ERR_SEAL_TOO_LARGE']);
        onlyCodes(() => SealDevice.restore(b), ['ERR_SEAL_SESSION_STATE']);
        onlyCodes(() => PresenceWatch.restore(b), ['ERR_SEAL_SESSION_STATE']);
      });
      expect(r.code).toBe('none');
      expect(r.ms).toBeLessThan(200);
    }
  });

  it('encodeCbor output of the subset always passes the pre-scan (sanity)', () => {
    const v: CborValue = new Map<number, CborValue>([
      [0, Number.MAX_SAFE_INTEGER],
      [1, [new Uint8Array(300), 'x'.repeat(70_000), []]],
      [23, new Map()],
    ]);
    expect(decodeCborStrict(encodeCbor(v), 1 << 20)).toEqual(v);
    expect(ALICE).toBe('alice@example.org/phone');
  });
});
