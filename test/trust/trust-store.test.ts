/**
 * TrustStore: the contract suite run against the in-memory store and against a RecordTrustStore
 * over a deliberately slow asynchronous storage (so the per-device serialization is exercised
 * with real interleaving), plus the pure decision function.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { parseDeviceAddress } from '../../src/trust/address.js';
import {
  MemoryTrustStore,
  RecordTrustStore,
  TRUST_RECORD_VERSION,
  decideTrust,
  isTrustPolicy,
  type TrustRecord,
  type TrustRecordStorage,
} from '../../src/trust/trust-store.js';
import { describeTrustStoreContract } from './trust-store.contract.js';

/** Storage whose reads and writes yield to the event loop, as a database would. */
class SlowStorage implements TrustRecordStorage {
  readonly records = new Map<string, TrustRecord>();

  async get(deviceKey: string): Promise<TrustRecord | undefined> {
    await sleep(1);
    const r = this.records.get(deviceKey);
    return r === undefined ? undefined : { ...r, identityKey: r.identityKey.slice() };
  }

  async set(deviceKey: string, record: TrustRecord): Promise<void> {
    await sleep(1);
    this.records.set(deviceKey, { ...record, identityKey: record.identityKey.slice() });
  }
}

describeTrustStoreContract('MemoryTrustStore', (options) => new MemoryTrustStore(options));
describeTrustStoreContract(
  'RecordTrustStore over slow async storage',
  (options) => new RecordTrustStore(new SlowStorage(), options),
);

describe('RecordTrustStore', () => {
  it('stores versioned records under the canonical device address', async () => {
    const storage = new SlowStorage();
    const store = new RecordTrustStore(storage, { policy: 'tofu', now: () => 42 });
    const key = generateSigningKeyPair().publicKey;
    await store.checkIdentity(parseDeviceAddress('Bob@Example.com/phone'), key);
    expect([...storage.records.keys()]).toEqual(['bob@example.com/phone']);
    expect(storage.records.get('bob@example.com/phone')).toEqual({
      version: TRUST_RECORD_VERSION,
      identityKey: key,
      state: 'trusted',
      firstSeen: 42,
    });
  });

  it('a failing storage write rejects the check and does not block later checks', async () => {
    const storage = new SlowStorage();
    let fail = true;
    const flaky: TrustRecordStorage = {
      get: (k) => storage.get(k),
      set: (k, r) => (fail ? Promise.reject(new Error('disk full')) : storage.set(k, r)),
    };
    const store = new RecordTrustStore(flaky, { policy: 'tofu' });
    const device = parseDeviceAddress('bob@example.com/phone');
    const key = generateSigningKeyPair().publicKey;
    await expect(store.checkIdentity(device, key)).rejects.toThrow('disk full');
    fail = false;
    expect((await store.checkIdentity(device, key)).status).toBe('new');
  });
});

describe('decideTrust', () => {
  const device = parseDeviceAddress('bob@example.com/phone');
  const key = generateSigningKeyPair().publicKey;

  it('returns the record to store only on first sight', () => {
    const first = decideTrust(undefined, key, 'tofu', 7, device);
    expect(first.decision.status).toBe('new');
    expect(first.record).toEqual({ version: 1, identityKey: key, state: 'trusted', firstSeen: 7 });
    expect(decideTrust(first.record, key, 'tofu', 8, device).record).toBeUndefined();
    const other = generateSigningKeyPair().publicKey;
    expect(decideTrust(first.record, other, 'tofu', 8, device).record).toBeUndefined();
  });

  it('a record trusted under TOFU is "unverified" once the policy requires verification', () => {
    const rec = decideTrust(undefined, key, 'tofu', 7, device).record;
    expect(decideTrust(rec, key, 'require-verified', 8, device).decision.status).toBe('unverified');
  });

  it('guards policy names', () => {
    expect(isTrustPolicy('tofu')).toBe(true);
    expect(isTrustPolicy('require-verified')).toBe(true);
    expect(isTrustPolicy('always')).toBe(false);
  });
});
