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
      expect(await dedup.claim('a.example', id)).toBe(false);
      expect(await dedup.claim('a.example', Uint8Array.from(id))).toBe(false);
      // The same id from another origin is another object.
      expect(await dedup.claim('c.example', id)).toBe(true);
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
