/**
 * The duplicate-filter seam (InboundDedup): one contract every implementation must pass (the
 * in-memory one now; the store-backed one of issue 7 will call `dedupContract` too), and the
 * bound of the in-memory one.
 */
import { describe, expect, it } from 'vitest';
import { MemoryDedup } from '../../src/federation/index.js';
import { dedupContract } from './dedup-contract.js';
import { newId } from './helpers.js';

dedupContract('MemoryDedup', () => new MemoryDedup({ capacity: 100 }));

describe('MemoryDedup', () => {
  it('stays within its capacity, forgetting the oldest ids first', () => {
    const dedup = new MemoryDedup({ capacity: 3 });
    const ids = [newId(), newId(), newId(), newId()];
    for (const id of ids) {
      expect(dedup.claim('a.example', id)).toBe(true);
      dedup.confirm('a.example', id);
    }
    expect(dedup.size).toBe(3);
    expect(dedup.claim('a.example', ids[3] ?? newId())).toBe(false);
    // The oldest was forgotten: the bound is what makes this filter development-only.
    expect(dedup.claim('a.example', ids[0] ?? newId())).toBe(true);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new MemoryDedup({ capacity: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});
