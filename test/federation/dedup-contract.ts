/**
 * The contract of the InboundDedup seam: every implementation (in-memory now, store-backed next)
 * runs this suite from its own test file.
 */
import { describe, expect, it } from 'vitest';
import type { InboundDedup } from '../../src/federation/index.js';
import { newId } from './helpers.js';

/** Behaviour every InboundDedup must have. */
export function dedupContract(
  name: string,
  make: () => Promise<InboundDedup> | InboundDedup,
): void {
  describe(`InboundDedup contract: ${name}`, () => {
    it('claims an id once per origin', async () => {
      const dedup = await make();
      const id = newId();
      expect(await dedup.claim('a.example', id)).toBe(true);
      await dedup.confirm?.('a.example', id);
      expect(await dedup.claim('a.example', id)).toBe(false);
      expect(await dedup.claim('a.example', Uint8Array.from(id))).toBe(false);
      // The same id from another origin is another object.
      expect(await dedup.claim('c.example', id)).toBe(true);
    });

    // A retry on a new link can arrive while the old link's delivery of the same id still runs.
    // Answering it "duplicate" at once would let the peer drop an object whose only delivery may
    // still fail: the second claim waits for the first's outcome.
    it('makes a claim racing a running delivery wait for its outcome', async () => {
      const dedup = await make();
      const failed = newId();
      expect(await dedup.claim('a.example', failed)).toBe(true);
      let settled = false;
      const retry = Promise.resolve(dedup.claim('a.example', failed)).then((v) => {
        settled = true;
        return v;
      });
      await new Promise((r) => setTimeout(r, 20));
      expect(settled).toBe(false);
      await dedup.release('a.example', failed);
      expect(await retry).toBe(true); // the first delivery failed: the retry is delivered

      const delivered = newId();
      expect(await dedup.claim('a.example', delivered)).toBe(true);
      const racers = [1, 2, 3].map(() => Promise.resolve(dedup.claim('a.example', delivered)));
      await dedup.confirm?.('a.example', delivered);
      expect(await Promise.all(racers)).toEqual([false, false, false]);
    });

    it('lets exactly one of several waiting claims take over a released id', async () => {
      const dedup = await make();
      const id = newId();
      expect(await dedup.claim('a.example', id)).toBe(true);
      const racers = [1, 2, 3].map(() => Promise.resolve(dedup.claim('a.example', id)));
      await dedup.release('a.example', id);
      // One wins and delivers; the others wait for it in turn.
      const first = await Promise.race(racers.map((p, i) => p.then((v) => ({ i, v }))));
      expect(first.v).toBe(true);
      await dedup.confirm?.('a.example', id);
      const rest = await Promise.all(racers.filter((_, i) => i !== first.i));
      expect(rest).toEqual([false, false]);
    });

    it('forgets a released claim, so that a retry is delivered', async () => {
      const dedup = await make();
      const id = newId();
      expect(await dedup.claim('a.example', id)).toBe(true);
      await dedup.release('a.example', id);
      expect(await dedup.claim('a.example', id)).toBe(true);
    });
  });
}
