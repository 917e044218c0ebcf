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
  domainHeads: fc
    .array(fc.tuple(fc.stringMatching(/^[a-z]{1,8}\.example$/), fc.uint8Array({ maxLength: 64 })), {
      maxLength: 3,
    })
    .map((entries) => new Map(entries)),
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
  lists: fc
    .array(
      fc.tuple(fc.stringMatching(/^[a-z]{1,8}@example\.org$/), fc.uint8Array({ maxLength: 80 })),
      {
        maxLength: 3,
      },
    )
    .map((entries) => new Map(entries)),
  watches: fc
    .array(
      fc.tuple(fc.stringMatching(/^[a-z]{1,8}@example\.org$/), fc.uint8Array({ maxLength: 80 })),
      {
        maxLength: 3,
      },
    )
    .map((entries) => new Map(entries)),
  denials: fc.uniqueArray(
    fc.record({
      user: fc.stringMatching(/^[a-z]{1,8}@[a-z]{1,8}\.example$/),
      denied: fc.boolean(),
      stamp: fc.nat(),
    }),
    { selector: (d) => d.user, maxLength: 4 },
  ),
});

/** A small state as the JSON object the current version writes, for editing into older ones. */
function currentJson(overrides: Partial<PersistedState>): Record<string, unknown> {
  const state: PersistedState = {
    address: 'alice@example.org',
    deviceId: 'laptop',
    seed: new Uint8Array(32),
    device: Uint8Array.from([1]),
    registered: true,
    known: new Map(),
    publisher: null,
    enrolment: null,
    trustedHead: null,
    domainHeads: new Map([['b.example', Uint8Array.from([3])]]),
    uploadedPrekeyId: 0,
    presenceKeys: [],
    lists: new Map(),
    watches: new Map(),
    denials: [],
    ...overrides,
  };
  return JSON.parse(new TextDecoder().decode(encodeState(state))) as Record<string, unknown>;
}

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
    expect(() => decodeState(new TextEncoder().encode('{"v":5}'))).toThrow(
      expect.objectContaining({ code: 'ERR_STORAGE' }),
    );
    expect(() => decodeState(Uint8Array.from([0xff, 0xfe]))).toThrow(
      expect.objectContaining({ code: 'ERR_STORAGE' }),
    );
  });

  it('reads version 1 and 2 files (no lists, watches or denials yet); later ones must have them', () => {
    const v2 = currentJson({
      lists: new Map([['bob@example.org', Uint8Array.from([1, 2])]]),
      denials: [{ user: 'eve@other.example', denied: true, stamp: 1 }],
    });
    const rest = Object.fromEntries(
      Object.entries(v2).filter(([k]) => k !== 'lists' && k !== 'watches'),
    );
    const v1 = decodeState(new TextEncoder().encode(JSON.stringify({ ...rest, v: 1 })));
    expect(v1.lists.size).toBe(0);
    expect(v1.watches.size).toBe(0);
    expect(v1.denials).toEqual([]);
    const withoutDenials = Object.fromEntries(Object.entries(v2).filter(([k]) => k !== 'denials'));
    expect(
      decodeState(new TextEncoder().encode(JSON.stringify({ ...withoutDenials, v: 2 }))).denials,
    ).toEqual([]);
    // Dropping the denials from a version 3 file would let denied senders through.
    expect(() => decodeState(new TextEncoder().encode(JSON.stringify(withoutDenials)))).toThrow(
      expect.objectContaining({ code: 'ERR_STORAGE' }),
    );
    expect(() =>
      decodeState(
        new TextEncoder().encode(
          JSON.stringify({ ...v2, denials: [{ user: 'eve@other.example', denied: 'yes' }] }),
        ),
      ),
    ).toThrow(expect.objectContaining({ code: 'ERR_STORAGE' }));
    // Dropping the lists from a version 2 file would silently drop rollback protection.
    expect(() =>
      decodeState(new TextEncoder().encode(JSON.stringify({ ...rest, watches: {} }))),
    ).toThrow(expect.objectContaining({ code: 'ERR_STORAGE' }));
    expect(() =>
      decodeState(
        new TextEncoder().encode(JSON.stringify({ ...v2, lists: { 'bob@example.org': 7 } })),
      ),
    ).toThrow(expect.objectContaining({ code: 'ERR_STORAGE' }));
  });

  it('reads a version 3 file (no other domain heads yet); version 4 must have them', () => {
    const v4 = currentJson({});
    expect(v4.v).toBe(4);
    expect(
      decodeState(new TextEncoder().encode(JSON.stringify(v4))).domainHeads.get('b.example'),
    ).toEqual(Uint8Array.from([3]));
    const without = Object.fromEntries(Object.entries(v4).filter(([k]) => k !== 'domainHeads'));
    // A version 3 file had none; a stray field of that name in one is not trusted.
    expect(
      decodeState(new TextEncoder().encode(JSON.stringify({ ...v4, v: 3 }))).domainHeads.size,
    ).toBe(0);
    expect(
      decodeState(new TextEncoder().encode(JSON.stringify({ ...without, v: 3 }))).domainHeads.size,
    ).toBe(0);
    // Dropping them from a version 4 file would forget a head a fork must extend.
    expect(() => decodeState(new TextEncoder().encode(JSON.stringify(without)))).toThrow(
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
