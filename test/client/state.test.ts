/**
 * The client's persisted state: versioned, round-trips, refuses what it does not know.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FileStateStore,
  decodeState,
  encodeState,
  type PersistedState,
} from '../../src/client/state.js';

const dir = mkdtempSync(join(tmpdir(), 'impp-client-state-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

const stateArb: fc.Arbitrary<PersistedState> = fc.record({
  address: fc.constant('alice@example.org'),
  deviceId: fc.stringMatching(/^[A-Za-z0-9_-]{1,16}$/),
  seed: bytes(32),
  device: fc.uint8Array({ maxLength: 200 }),
  registered: fc.boolean(),
  known: fc
    .array(fc.tuple(fc.stringMatching(/^[a-z]{1,8}@example\.org\/[a-z]{1,8}$/), bytes(32)), {
      maxLength: 4,
    })
    .map((entries) => new Map(entries)),
  publisher: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }),
  enrolment: fc.option(
    fc.record({ index: fc.nat(), statement: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
    { nil: null },
  ),
  trustedHead: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }),
  uploadedPrekeyId: fc.nat(),
  presenceKeys: fc.array(
    fc.record({
      presentity: fc.constant('bob@example.org'),
      epoch: fc.integer({ min: 1, max: 1000 }),
      key: bytes(32),
      senderDevice: fc.constant('bob@example.org/phone'),
      senderIdentityKey: bytes(32),
    }),
    { maxLength: 3 },
  ),
});

describe('client state', () => {
  it('round-trips any state', () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        expect(decodeState(encodeState(s))).toEqual(s);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses an unknown version and garbage', () => {
    expect(() => decodeState(new TextEncoder().encode('{"v":2}'))).toThrow(
      expect.objectContaining({ code: 'ERR_STORAGE' }),
    );
    expect(() => decodeState(Uint8Array.from([0xff, 0xfe]))).toThrow(
      expect.objectContaining({ code: 'ERR_STORAGE' }),
    );
  });

  it('writes the file atomically and readable only by its owner', async () => {
    const store = new FileStateStore(join(dir, 'x.state'));
    expect(await store.load()).toBeUndefined();
    await store.save(Uint8Array.from([1, 2, 3]));
    expect(await store.load()).toEqual(Uint8Array.from([1, 2, 3]));
    expect(statSync(join(dir, 'x.state')).mode & 0o077).toBe(0);
  });
});
