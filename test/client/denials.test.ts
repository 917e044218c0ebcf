/**
 * The denial records a user's devices agree on (src/client/denials.ts): last writer wins by stamp,
 * the denial on a tie, and the devices converge whatever order the records arrive in.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Denials, type DenialRecord } from '../../src/client/denials.js';

const USERS = ['bob@b.example', 'carol@a.example', 'eve@c.example'];

const recordArb: fc.Arbitrary<DenialRecord> = fc.record({
  user: fc.constantFrom(...USERS),
  denied: fc.boolean(),
  stamp: fc.integer({ min: 0, max: 20 }),
});

const state = (d: Denials): string[] =>
  d
    .records()
    .map((r) => `${r.user}:${r.denied}:${r.stamp}`)
    .sort();

describe('denial records', () => {
  it('a later approval lifts a denial; an older one does not; a tie keeps the denial', () => {
    const d = new Denials();
    d.decide('Bob@B.example', true, 1000);
    expect(d.isDenied('bob@b.example')).toBe(true); // stored canonical
    expect(d.merge([{ user: 'bob@b.example', denied: false, stamp: 999 }])).toBe(false);
    expect(d.merge([{ user: 'bob@b.example', denied: false, stamp: 1000 }])).toBe(false);
    expect(d.isDenied('bob@b.example')).toBe(true);
    expect(d.merge([{ user: 'bob@b.example', denied: false, stamp: 1001 }])).toBe(true);
    expect(d.isDenied('bob@b.example')).toBe(false);
    // The next local decision goes above every stamp seen, even with a clock behind it.
    d.decide('bob@b.example', true, 5);
    expect(d.records()).toEqual([{ user: 'bob@b.example', denied: true, stamp: 1002 }]);
    expect(d.aheadOf([{ user: 'bob@b.example', denied: false, stamp: 1001 }])).toBe(true);
    expect(d.aheadOf(d.records())).toBe(false);
  });

  it('devices converge on the same records in any order of arrival (property)', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 12 }), fc.nat(), (records, seed) => {
        const a = new Denials(records);
        const shuffled = [...records].sort(
          (x, y) => ((x.stamp * 31 + seed) % 7) - ((y.stamp * 31 + seed) % 7),
        );
        const b = new Denials();
        for (const r of shuffled.reverse()) b.merge([r]);
        expect(state(b)).toEqual(state(a));
        // Merging again changes nothing, and neither device is ahead of the other.
        expect(b.merge(a.records())).toBe(false);
        expect(a.aheadOf(b.records())).toBe(false);
        expect(b.aheadOf(a.records())).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});
