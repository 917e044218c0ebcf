/**
 * The DATA bodies of kinds 2–5 (src/federation/bodies.ts): what the encoders write decodes to
 * itself, and the decoders take nothing else: whatever bytes or values a peer sends, they answer
 * with a value of the documented shape or `ERR_PAYLOAD_INVALID`, never another error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import {
  MAX_PRESENCE_WATCHERS,
  decodeLookupRequest,
  decodePresenceBody,
  decodeSubscriptionBody,
  encodeLookupAnswer,
  encodeLookupRequest,
  encodePresenceBody,
  encodeSubscriptionBody,
} from '../../src/federation/index.js';
import {
  answerError,
  decodeBundlesAnswer,
  decodeDevicesAnswer,
  decodeLookupAnswerHead,
  isCanonicalAddress,
} from '../../src/federation/bodies.js';
import { type CborValue, encodeStrictCbor } from '../../src/transport/cbor-strict.js';

const user = fc
  .tuple(fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/), fc.constantFrom('a.example', 'b.example'))
  .map(([u, d]) => `${u}@${d}`)
  .filter(isCanonicalAddress);

/** Any value of the strict CBOR data model, a few levels deep. */
const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string({ maxLength: 30 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom(
        'object',
        'watchers',
        'type',
        'presentity',
        'watcher',
        'action',
        'rid',
        'op',
        'x',
      ),
      tie('v'),
      { maxKeys: 5 },
    ),
  ),
})).v;

function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (error) {
    return isImppError(error) ? error.code : `not an ImppError: ${String(error)}`;
  }
}

describe('federation bodies', () => {
  it('round-trip what the encoders write', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uniqueArray(user, { minLength: 1, maxLength: 20 }),
        (object, watchers) => {
          const decoded = decodePresenceBody(encodePresenceBody({ object, watchers }));
          expect(decoded.watchers).toEqual(watchers);
          expect(decoded.object).toEqual(object);
        },
      ),
    );
    fc.assert(
      fc.property(
        user,
        user,
        fc.constantFrom<'request' | 'cancel'>('request', 'cancel'),
        (p, w, action) => {
          fc.pre(p !== w);
          const body = { type: 'subscription', presentity: p, watcher: w, action } as const;
          expect(decodeSubscriptionBody(encodeSubscriptionBody(body))).toEqual(body);
        },
      ),
    );
    const rid = randomBytes(16);
    const request = {
      rid,
      op: 'bundles',
      address: 'bob@b.example',
      asker: 'alice@a.example',
    } as const;
    expect(decodeLookupRequest(encodeLookupRequest(request))).toEqual(request);
    const bundles = [
      {
        device: 'bob@b.example/phone',
        identityKey: randomBytes(32),
        signedPrekey: { id: 7, publicKey: randomBytes(32), signature: randomBytes(64) },
        oneTimePrekey: { id: 2 ** 32 - 1, publicKey: randomBytes(32) },
      },
    ];
    const head = decodeLookupAnswerHead(encodeLookupAnswer({ rid, op: 'bundles', ok: bundles }));
    expect(head.rid).toEqual(rid);
    expect(answerError(head.map)).toBeNull();
    expect(decodeBundlesAnswer(head.map.ok)).toEqual(bundles);
    const devices = {
      deviceList: null,
      devices: [{ deviceId: 'phone', identityKey: randomBytes(32), enrolment: randomBytes(9) }],
    };
    const dHead = decodeLookupAnswerHead(encodeLookupAnswer({ rid, op: 'devices', ok: devices }));
    expect(decodeDevicesAnswer(dHead.map.ok)).toEqual(devices);
    const eHead = decodeLookupAnswerHead(encodeLookupAnswer({ rid, error: 'ERR_STORAGE' }));
    expect(answerError(eHead.map)).toBe('ERR_STORAGE');
  });

  it('answer anything else with ERR_PAYLOAD_INVALID only', () => {
    const decoders: ((v: CborValue) => unknown)[] = [
      decodePresenceBody,
      decodeSubscriptionBody,
      decodeLookupRequest,
      decodeLookupAnswerHead,
      decodeDevicesAnswer,
      decodeBundlesAnswer,
    ];
    fc.assert(
      fc.property(cborValue, fc.boolean(), (value, wrap) => {
        const input = wrap ? encodeStrictCbor(value) : value;
        for (const decode of decoders) {
          expect(['ok', 'ERR_PAYLOAD_INVALID']).toContain(outcome(() => decode(input)));
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        for (const decode of decoders) {
          expect(['ok', 'ERR_PAYLOAD_INVALID']).toContain(outcome(() => decode(bytes)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('accept only canonical addresses and bounded lists', () => {
    const object = randomBytes(10);
    for (const w of [
      'BOB@b.example',
      'bob@B.example',
      'im:bob@b.example',
      'pres:bob@b.example',
      'bob@b.example/x',
      'bob@b.example.',
      ' bob@b.example',
      'bob',
    ]) {
      expect(outcome(() => decodePresenceBody(encodeStrictCbor({ object, watchers: [w] })))).toBe(
        'ERR_PAYLOAD_INVALID',
      );
    }
    const many = Array.from({ length: MAX_PRESENCE_WATCHERS }, (_, i) => `u${i}@b.example`);
    expect(
      decodePresenceBody(encodePresenceBody({ object, watchers: many })).watchers,
    ).toHaveLength(MAX_PRESENCE_WATCHERS);
    expect(
      outcome(() =>
        decodePresenceBody(encodeStrictCbor({ object, watchers: [...many, 'x@b.example'] })),
      ),
    ).toBe('ERR_PAYLOAD_INVALID');
  });
});
