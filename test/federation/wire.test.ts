/**
 * The link's frame parsers: strict (unknown fields, wrong kinds and non-canonical domains are
 * refused) and total (any decoded CBOR value gives a result or an ERR_PROTOCOL, never a crash;
 * these run before the peer is authenticated).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isImppError } from '../../src/errors.js';
import { DOMAIN_PROOF_LABEL, domainProofMessage } from '../../src/federation/proof.js';
import {
  parseAccept,
  parseAck,
  parseData,
  parseLinkClose,
  parseOpen,
  parseProof,
  parseReject,
} from '../../src/federation/wire.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import { decodeStrictCbor } from '../../src/transport/cbor-strict.js';

const open = {
  versions: [1],
  from: 'a.example',
  to: 'b.example',
  want: 'key',
  window: 16,
  maxFrameBytes: 65_536,
};

const cbor: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string(),
    fc.uint8Array({ maxLength: 70 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom(
        'versions',
        'from',
        'to',
        'want',
        'window',
        'seq',
        'id',
        'origin',
        'kind',
        'body',
        'proof',
        'code',
        'x',
      ),
      tie('v'),
      { maxKeys: 6 },
    ),
  ),
})).v;

describe('link frame parsers', () => {
  it('accept a well-formed OPEN and refuse unknown fields, bad domains and bad versions', () => {
    expect(parseOpen(open).from).toBe('a.example');
    for (const bad of [
      { ...open, extra: 1 },
      { ...open, from: 'A.example' },
      { ...open, from: 'a.example.' },
      { ...open, versions: [] },
      { ...open, versions: [0] },
      { ...open, want: 'dialback' },
      { ...open, window: 0 },
      { ...open, maxFrameBytes: 100 },
    ]) {
      expect(() => parseOpen(bad as unknown as CborValue), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'ERR_PROTOCOL' }),
      );
    }
  });

  it('refuse DATA without a 16-byte id or a body', () => {
    const ok = { seq: 1, id: new Uint8Array(16), origin: 'a.example', kind: 0, body: null };
    expect(parseData(ok).seq).toBe(1);
    expect(() => parseData({ ...ok, id: new Uint8Array(15) })).toThrow();
    const noBody: Record<string, CborValue> = { ...ok };
    delete noBody.body;
    expect(() => parseData(noBody)).toThrow();
    expect(() => parseData({ ...ok, seq: 0 })).toThrow();
  });

  it('never throw anything but ERR_PROTOCOL on arbitrary input (fuzz)', () => {
    const parsers = [parseOpen, parseAccept, parseProof, parseData, parseAck, parseReject];
    fc.assert(
      fc.property(cbor, (value) => {
        for (const parse of parsers) {
          try {
            parse(value);
          } catch (error) {
            expect(isImppError(error, 'ERR_PROTOCOL')).toBe(true);
          }
        }
        expect(() => parseLinkClose(value)).not.toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it('the proof message is labelled and names role, both domains in order, and the exporter', () => {
    const exporter = new Uint8Array(32).fill(7);
    const m = domainProofMessage('initiator', {
      initiator: 'a.example',
      responder: 'b.example',
      exporter,
    });
    const [label, role, initiator, responder, bound] = decodeStrictCbor(m) as CborValue[];
    expect([label, role, initiator, responder]).toEqual([
      DOMAIN_PROOF_LABEL,
      'initiator',
      'a.example',
      'b.example',
    ]);
    expect(Array.from(bound as Uint8Array)).toEqual(Array.from(exporter));
  });
});
