/**
 * The contract every TrustStore implementation must pass. An implementation's test file calls
 * `describeTrustStoreContract('MyStore', (options) => new MyStore(..., options))`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseDeviceAddress, type DeviceAddress } from '../../src/trust/address.js';
import { formatFingerprint, keyFingerprint } from '../../src/trust/identity.js';
import {
  assertUsable,
  isUsableDecision,
  type TrustStore,
  type TrustStoreOptions,
} from '../../src/trust/trust-store.js';

export type TrustStoreFactory = (options: TrustStoreOptions) => TrustStore;

const bob = parseDeviceAddress('bob@example.com/phone');
const bobLaptop = parseDeviceAddress('bob@example.com/laptop');
const carol = parseDeviceAddress('carol@partner.example/desk');

function newKey(): Uint8Array {
  return generateSigningKeyPair().publicKey;
}

function fp(key: Uint8Array): string {
  return formatFingerprint(keyFingerprint(key));
}

/** A fixed clock that tests can advance. */
function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

export function describeTrustStoreContract(name: string, make: TrustStoreFactory): void {
  describe(`TrustStore contract: ${name}`, () => {
    describe('trust on first use', () => {
      it('first sight is "new", then "trusted"', async () => {
        const store = make({ policy: 'tofu' });
        const k = newKey();
        const first = await store.checkIdentity(bob, k);
        expect(first).toEqual({ status: 'new', device: bob, fingerprint: fp(k) });
        expect(isUsableDecision(first)).toBe(true);
        const again = await store.checkIdentity(bob, k);
        expect(again.status).toBe('trusted');
        expect(() => {
          assertUsable(again);
        }).not.toThrow();
      });

      it('devices are independent; the device address is normalized; ids are case-sensitive', async () => {
        const store = make({ policy: 'tofu' });
        const k1 = newKey();
        const k2 = newKey();
        expect((await store.checkIdentity(bob, k1)).status).toBe('new');
        expect((await store.checkIdentity(bobLaptop, k2)).status).toBe('new');
        const sameDevice = { address: { user: 'BOB', domain: 'Example.COM' }, deviceId: 'phone' };
        const d = await store.checkIdentity(sameDevice, k1);
        expect(d.status).toBe('trusted');
        expect(d.device).toEqual(bob);
        const otherCase = parseDeviceAddress('bob@example.com/PHONE');
        expect((await store.checkIdentity(otherCase, k2)).status).toBe('new');
      });

      it('records when the key was first seen', async () => {
        const c = clock();
        const store = make({ policy: 'tofu', now: c.now });
        const k = newKey();
        expect(await store.getIdentity(bob)).toBeUndefined();
        await store.checkIdentity(bob, k);
        c.advance(1000);
        await store.checkIdentity(bob, k);
        const rec = await store.getIdentity(bob);
        expect(rec).toEqual({
          version: 1,
          identityKey: k,
          state: 'trusted',
          firstSeen: c.now() - 1000,
        });
      });
    });

    describe('a key change is never silently accepted', () => {
      it('a different key is "changed", carries the previous key, and keeps being "changed"', async () => {
        const store = make({ policy: 'tofu' });
        const k1 = newKey();
        const k2 = newKey();
        await store.checkIdentity(bob, k1);
        const d = await store.checkIdentity(bob, k2);
        expect(d).toEqual({
          status: 'changed',
          device: bob,
          fingerprint: fp(k2),
          previousIdentityKey: k1,
          previousFingerprint: fp(k1),
          previouslyVerified: false,
        });
        expect(isUsableDecision(d)).toBe(false);
        expect(() => {
          assertUsable(d);
        }).toThrow(expect.objectContaining({ code: 'ERR_IDENTITY_CHANGED' }));
        // Asking again does not wear the warning down, and the old key is still the stored one.
        for (let i = 0; i < 3; i++)
          expect((await store.checkIdentity(bob, k2)).status).toBe('changed');
        expect((await store.checkIdentity(bob, k1)).status).toBe('trusted');
        expect((await store.getIdentity(bob))?.identityKey).toEqual(k1);
      });

      it('a key differing in one bit is a change', async () => {
        const store = make({ policy: 'tofu' });
        const k1 = newKey();
        const k2 = k1.slice();
        k2[31] = (k2[31] ?? 0) ^ 1;
        await store.checkIdentity(bob, k1);
        expect((await store.checkIdentity(bob, k2)).status).toBe('changed');
      });

      it('losing a verified key says so (previouslyVerified)', async () => {
        const store = make({ policy: 'tofu' });
        const k1 = newKey();
        await store.markVerified(bob, k1);
        expect((await store.checkIdentity(bob, k1)).status).toBe('verified');
        const d = await store.checkIdentity(bob, newKey());
        expect(d.status === 'changed' && d.previouslyVerified).toBe(true);
      });

      it('acceptChange is the explicit way to move on; verification is dropped', async () => {
        const c = clock();
        const store = make({ policy: 'tofu', now: c.now });
        const k1 = newKey();
        const k2 = newKey();
        await store.markVerified(bob, k1);
        c.advance(5000);
        await store.acceptChange(bob, k2);
        expect((await store.checkIdentity(bob, k2)).status).toBe('trusted');
        expect((await store.checkIdentity(bob, k1)).status).toBe('changed');
        expect(await store.getIdentity(bob)).toEqual({
          version: 1,
          identityKey: k2,
          state: 'trusted',
          firstSeen: c.now(),
        });
      });

      it('accepting the key already held keeps its verification', async () => {
        const store = make({ policy: 'tofu' });
        const k = newKey();
        await store.markVerified(bob, k);
        await store.acceptChange(bob, k);
        expect((await store.checkIdentity(bob, k)).status).toBe('verified');
      });

      it('markVerified refuses a key other than the stored one and changes nothing', async () => {
        const store = make({ policy: 'tofu' });
        const k1 = newKey();
        const k2 = newKey();
        await store.checkIdentity(bob, k1);
        await expect(store.markVerified(bob, k2)).rejects.toSatisfy((e) =>
          isImppError(e, 'ERR_IDENTITY_CHANGED'),
        );
        expect((await store.checkIdentity(bob, k1)).status).toBe('trusted');
        expect((await store.checkIdentity(bob, k2)).status).toBe('changed');
        // The supported path: accept, then verify.
        await store.acceptChange(bob, k2);
        await store.markVerified(bob, k2);
        expect((await store.checkIdentity(bob, k2)).status).toBe('verified');
      });

      it('concurrent first checks with different keys give one "new" and one "changed"', async () => {
        const store = make({ policy: 'tofu' });
        const k1 = newKey();
        const k2 = newKey();
        const [a, b] = await Promise.all([
          store.checkIdentity(carol, k1),
          store.checkIdentity(carol, k2),
        ]);
        expect([a.status, b.status].sort()).toEqual(['changed', 'new']);
      });

      it('callers cannot change stored keys by mutating arrays', async () => {
        const store = make({ policy: 'tofu' });
        const k = newKey();
        const original = k.slice();
        await store.checkIdentity(bob, k);
        k[0] = (k[0] ?? 0) ^ 0xff;
        expect((await store.checkIdentity(bob, original)).status).toBe('trusted');
        const d = await store.checkIdentity(bob, newKey());
        if (d.status !== 'changed') throw new Error('expected changed');
        d.previousIdentityKey.fill(0);
        const rec = await store.getIdentity(bob);
        rec?.identityKey.fill(0);
        expect((await store.checkIdentity(bob, original)).status).toBe('trusted');
      });
    });

    describe('require-verified policy', () => {
      it('a key is unusable until verified', async () => {
        const c = clock();
        const store = make({ policy: 'require-verified', now: c.now });
        const k = newKey();
        const first = await store.checkIdentity(bob, k);
        expect(first).toEqual({ status: 'unverified', device: bob, fingerprint: fp(k) });
        expect(() => {
          assertUsable(first);
        }).toThrow(expect.objectContaining({ code: 'ERR_IDENTITY_UNTRUSTED' }));
        expect((await store.checkIdentity(bob, k)).status).toBe('unverified');
        c.advance(60_000);
        await store.markVerified(bob, k);
        expect((await store.checkIdentity(bob, k)).status).toBe('verified');
        expect(await store.getIdentity(bob)).toEqual({
          version: 1,
          identityKey: k,
          state: 'verified',
          firstSeen: c.now() - 60_000,
          verifiedAt: c.now(),
        });
      });

      it('a change is still "changed", and an accepted change needs verifying again', async () => {
        const store = make({ policy: 'require-verified' });
        const k1 = newKey();
        const k2 = newKey();
        await store.markVerified(bob, k1);
        expect((await store.checkIdentity(bob, k2)).status).toBe('changed');
        await store.acceptChange(bob, k2);
        expect((await store.checkIdentity(bob, k2)).status).toBe('unverified');
        await store.markVerified(bob, k2);
        expect((await store.checkIdentity(bob, k2)).status).toBe('verified');
      });

      it('the policy can differ per device', async () => {
        const store = make({
          policy: (d: DeviceAddress) =>
            d.address.domain === 'partner.example' ? 'require-verified' : 'tofu',
        });
        expect((await store.checkIdentity(bob, newKey())).status).toBe('new');
        expect((await store.checkIdentity(carol, newKey())).status).toBe('unverified');
      });
    });

    describe('input validation', () => {
      it('refuses keys that are not 32 bytes and invalid device addresses', async () => {
        const store = make({ policy: 'tofu' });
        for (const bad of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(0)]) {
          await expect(store.checkIdentity(bob, bad)).rejects.toSatisfy((e) =>
            isImppError(e, 'ERR_INVALID_ARGUMENT'),
          );
          await expect(store.markVerified(bob, bad)).rejects.toSatisfy((e) =>
            isImppError(e, 'ERR_INVALID_ARGUMENT'),
          );
          await expect(store.acceptChange(bob, bad)).rejects.toSatisfy((e) =>
            isImppError(e, 'ERR_INVALID_ARGUMENT'),
          );
        }
        await expect(
          store.checkIdentity('bob' as unknown as DeviceAddress, newKey()),
        ).rejects.toSatisfy((e) => isImppError(e, 'ERR_ADDRESS_INVALID'));
        const badDevice = { address: { user: 'bob', domain: 'example.com' }, deviceId: 'a/b' };
        await expect(store.checkIdentity(badDevice, newKey())).rejects.toSatisfy((e) =>
          isImppError(e, 'ERR_ADDRESS_INVALID'),
        );
        expect(await store.getIdentity(bob)).toBeUndefined();
      });

      it('refuses an unknown policy', () => {
        expect(() => make({ policy: 'trust-everything' as 'tofu' })).toThrow(
          expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
        );
      });
    });

    it('state machine: the usable key only changes by first sight or acceptChange (property)', async () => {
      const keys = [newKey(), newKey(), newKey()];
      const command = fc.record({
        op: fc.constantFrom('check', 'verify', 'accept'),
        key: fc.integer({ min: 0, max: keys.length - 1 }),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(command, { maxLength: 25 }), fc.boolean(), async (cmds, tofu) => {
          const store = make({ policy: tofu ? 'tofu' : 'require-verified' });
          // Reference model: the stored key index and whether it is verified.
          let stored: number | undefined;
          let verified = false;
          for (const { op, key } of cmds) {
            const k = keys[key]!;
            if (op === 'check') {
              const d = await store.checkIdentity(bob, k);
              if (stored === undefined) {
                expect(d.status).toBe(tofu ? 'new' : 'unverified');
                stored = key;
              } else if (stored !== key) {
                expect(d.status).toBe('changed');
                expect(d.status === 'changed' && d.previouslyVerified).toBe(verified);
              } else {
                expect(d.status).toBe(verified ? 'verified' : tofu ? 'trusted' : 'unverified');
              }
            } else if (op === 'verify') {
              if (stored !== undefined && stored !== key) {
                await expect(store.markVerified(bob, k)).rejects.toSatisfy((e) =>
                  isImppError(e, 'ERR_IDENTITY_CHANGED'),
                );
              } else {
                await store.markVerified(bob, k);
                stored = key;
                verified = true;
              }
            } else {
              await store.acceptChange(bob, k);
              if (stored !== key) verified = false;
              stored = key;
            }
          }
        }),
        { numRuns: 150 },
      );
    });
  });
}
