/**
 * Contract suite for {@link KeyLogStorage}: every backend (the in-memory one here, SQLite in the
 * service) must pass it. Call `keyLogStorageContract(name, factory)` from a test file.
 */
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/crypto/index.js';
import {
  KeyLog,
  leafHash,
  merkleTreeHash,
  verifyConsistency,
  verifyInclusion,
  type KeyLogStorage,
} from '../../src/trust/keylog/index.js';

export function keyLogStorageContract(name: string, factory: () => KeyLogStorage): void {
  describe(`KeyLogStorage contract: ${name}`, () => {
    it('starts empty', () => {
      const s = factory();
      expect(s.size()).toBe(0);
      expect(s.entry(0)).toBeUndefined();
      expect(s.node(0, 0)).toBeUndefined();
    });

    it('stores entries and the nodes given with them', () => {
      const s = factory();
      const h0 = leafHash(utf8('a'));
      s.append(utf8('a'), [{ level: 0, index: 0, hash: h0 }]);
      expect(s.size()).toBe(1);
      expect(s.entry(0)).toEqual(utf8('a'));
      expect(s.node(0, 0)).toEqual(h0);
      expect(s.node(1, 0)).toBeUndefined();
    });

    it('refuses a node out of order and then stores nothing', () => {
      const s = factory();
      expect(() => {
        s.append(utf8('a'), [{ level: 0, index: 5, hash: leafHash(utf8('a')) }]);
      }).toThrow();
      expect(s.size()).toBe(0);
      expect(s.entry(0)).toBeUndefined();
    });

    it('backs a KeyLog that agrees with the reference tree hash and proofs, sizes 1..33', () => {
      const log = new KeyLog({ domain: 'example.com', storage: factory() });
      const entries: Uint8Array[] = [];
      for (let n = 1; n <= 33; n++) {
        const e = utf8(`e${n}`);
        entries.push(e);
        log.append(e);
        const root = merkleTreeHash(entries);
        expect(log.root()).toEqual(root);
        for (let m = 0; m < n; m++) {
          expect(verifyInclusion(leafHash(entries[m]!), m, n, log.inclusionProof(m), root)).toBe(
            true,
          );
        }
        for (let m = 1; m < n; m++) {
          expect(verifyConsistency(m, n, log.consistencyProof(m), log.root(m), root)).toBe(true);
        }
      }
    });
  });
}
