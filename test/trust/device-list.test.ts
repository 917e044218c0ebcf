/** Signed device lists: genesis, additions, removals, rollback, foreign signers, tampering. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, sign, type SigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseAddress } from '../../src/trust/address.js';
import { encodeCanonical, signingInput } from '../../src/trust/canonical.js';
import {
  DEVICE_LIST_LABEL,
  createDeviceList,
  decodeDeviceList,
  verifyDeviceList,
  type DeviceEntry,
  type DeviceList,
} from '../../src/trust/device-list.js';

const alice = parseAddress('alice@example.com');
const mallory = parseAddress('mallory@example.com');
const phone = generateSigningKeyPair(new Uint8Array(32).fill(1));
const laptop = generateSigningKeyPair(new Uint8Array(32).fill(2));
const tablet = generateSigningKeyPair(new Uint8Array(32).fill(3));
const server = generateSigningKeyPair(new Uint8Array(32).fill(9));

const entry = (deviceId: string, kp: SigningKeyPair): DeviceEntry => ({
  deviceId,
  identityKey: kp.publicKey,
});

function expectInvalid(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isImppError(caught, 'ERR_DEVICE_LIST_INVALID'), String(caught)).toBe(true);
}

function genesis(): DeviceList {
  return createDeviceList({
    address: alice,
    counter: 1,
    issued: 1000,
    devices: [entry('phone', phone)],
    signer: { deviceId: 'phone', secretKey: phone.secretKey },
  });
}

function second(prev: DeviceList): DeviceList {
  return createDeviceList({
    address: alice,
    counter: prev.counter + 1,
    issued: 2000,
    devices: [entry('phone', phone), entry('laptop', laptop)],
    signer: { deviceId: 'phone', secretKey: phone.secretKey },
  });
}

describe('device lists', () => {
  it('accepts a self-signed genesis list with one device', () => {
    const g = genesis();
    const update = verifyDeviceList(g.bytes, { address: alice });
    expect(update.list.devices.map((d) => d.deviceId)).toEqual(['phone']);
    expect(update.added.map((d) => d.deviceId)).toEqual(['phone']);
    expect(update.unchanged).toBe(false);
  });

  it('surfaces a new device as an addition, signed by a device already trusted', () => {
    const g = verifyDeviceList(genesis().bytes, { address: alice }).list;
    const next = second(g);
    const update = verifyDeviceList(next.bytes, { address: alice, previous: g });
    expect(update.added.map((d) => d.deviceId)).toEqual(['laptop']);
    expect(update.removed).toEqual([]);
    expect(update.list.devices.map((d) => d.deviceId)).toEqual(['laptop', 'phone']);
  });

  it('reports removals and key replacements', () => {
    const g = genesis();
    const l2 = second(g);
    const l3 = createDeviceList({
      address: alice,
      counter: 5,
      devices: [entry('phone', tablet)],
      signer: { deviceId: 'laptop', secretKey: laptop.secretKey },
    });
    const update = verifyDeviceList(l3.bytes, { address: alice, previous: l2 });
    expect(update.removed.map((d) => d.deviceId)).toEqual(['laptop']);
    expect(update.replaced.map((d) => d.deviceId)).toEqual(['phone']);
    expect(update.added).toEqual([]);
  });

  it('treats an identical re-delivery as unchanged', () => {
    const g = genesis();
    const l2 = second(g);
    const update = verifyDeviceList(l2.bytes, { address: alice, previous: l2 });
    expect(update.unchanged).toBe(true);
  });

  it('refuses rollback: an older list, or a different list with the same counter', () => {
    const g = genesis();
    const l2 = second(g);
    expectInvalid(() => verifyDeviceList(g.bytes, { address: alice, previous: l2 }));
    const sameCounter = createDeviceList({
      address: alice,
      counter: l2.counter,
      devices: [entry('phone', phone), entry('tablet', tablet)],
      signer: { deviceId: 'phone', secretKey: phone.secretKey },
    });
    expectInvalid(() => verifyDeviceList(sameCounter.bytes, { address: alice, previous: l2 }));
  });

  it('refuses a list signed by a device not on the previous list (a ghost device vouching for itself)', () => {
    const g = genesis();
    const ghost = createDeviceList({
      address: alice,
      counter: 2,
      devices: [entry('phone', phone), entry('ghost', server)],
      signer: { deviceId: 'ghost', secretKey: server.secretKey },
    });
    expectInvalid(() => verifyDeviceList(ghost.bytes, { address: alice, previous: g }));
  });

  it('refuses a list whose signer id is trusted but whose signature was made with another key', () => {
    const g = genesis();
    const forged = createDeviceList({
      address: alice,
      counter: 2,
      devices: [entry('phone', server), entry('laptop', laptop)],
      signer: { deviceId: 'phone', secretKey: server.secretKey },
    });
    expectInvalid(() => verifyDeviceList(forged.bytes, { address: alice, previous: g }));
  });

  it('refuses a genesis list with several devices or a foreign signer', () => {
    const two = createDeviceList({
      address: alice,
      counter: 1,
      devices: [entry('phone', phone), entry('laptop', laptop)],
      signer: { deviceId: 'phone', secretKey: phone.secretKey },
    });
    expectInvalid(() => verifyDeviceList(two.bytes, { address: alice }));
    // ...which trust-on-first-use mode accepts, because a listed device signed it.
    expect(
      verifyDeviceList(two.bytes, { address: alice, firstSight: 'self-signed' }).list.counter,
    ).toBe(1);
    const foreign = createDeviceList({
      address: alice,
      counter: 1,
      devices: [entry('phone', phone)],
      signer: { deviceId: 'laptop', secretKey: laptop.secretKey },
    });
    expectInvalid(() => verifyDeviceList(foreign.bytes, { address: alice }));
    expectInvalid(() =>
      verifyDeviceList(foreign.bytes, { address: alice, firstSight: 'self-signed' }),
    );
  });

  it("refuses another user's list", () => {
    const m = createDeviceList({
      address: mallory,
      counter: 1,
      devices: [entry('phone', server)],
      signer: { deviceId: 'phone', secretKey: server.secretKey },
    });
    expectInvalid(() => verifyDeviceList(m.bytes, { address: alice }));
  });

  it('refuses every single-byte change of the encoding', () => {
    const g = genesis();
    const l2 = second(g);
    for (let i = 0; i < l2.bytes.length; i++) {
      const tampered = Uint8Array.from(l2.bytes);
      tampered[i] = (tampered[i] ?? 0) ^ 0x01;
      expect(
        () => verifyDeviceList(tampered, { address: alice, previous: g }),
        `byte ${i}`,
      ).toThrow();
    }
  });

  it('refuses unknown versions, signatures from another context, and malformed content', () => {
    const g = genesis();
    const fields = [1, 'alice@example.com', 2, 5, [['phone', phone.publicKey]], 'phone'] as const;
    const sigFor = (label: string, f: readonly unknown[]): Uint8Array =>
      sign(phone.secretKey, signingInput(label, f as never));
    // A correct signature, but over another label (e.g. a tree head or enrolment context).
    const wrongLabel = encodeCanonical([...fields, sigFor('impp/enrolment/v1', fields)]);
    expectInvalid(() => verifyDeviceList(wrongLabel, { address: alice, previous: g }));
    const good = encodeCanonical([...fields, sigFor(DEVICE_LIST_LABEL, fields)]);
    expect(verifyDeviceList(good, { address: alice, previous: g }).list.counter).toBe(2);
    const v2Fields = [2, ...fields.slice(1)];
    const v2 = encodeCanonical([...v2Fields, sigFor(DEVICE_LIST_LABEL, v2Fields)] as never);
    expectInvalid(() => verifyDeviceList(v2, { address: alice, previous: g }));
    const malformed: unknown[][] = [
      [1, 'alice@example.com', 2, 5, [], 'phone'], // no devices
      [
        1,
        'alice@example.com',
        2,
        5,
        [
          ['phone', phone.publicKey],
          ['phone', laptop.publicKey],
        ],
        'phone',
      ], // dup id
      [
        1,
        'alice@example.com',
        2,
        5,
        [
          ['b', phone.publicKey],
          ['a', laptop.publicKey],
        ],
        'a',
      ], // unsorted
      [
        1,
        'alice@example.com',
        2,
        5,
        [
          ['a', phone.publicKey],
          ['b', phone.publicKey],
        ],
        'a',
      ], // dup key
      [1, 'Alice@EXAMPLE.com', 2, 5, [['phone', phone.publicKey]], 'phone'], // non-canonical address
      [1, 'alice@example.com', 0, 5, [['phone', phone.publicKey]], 'phone'], // counter 0
      [1, 'alice@example.com', 2, 5, [['phone', phone.publicKey.subarray(1)]], 'phone'], // short key
      [1, 'alice@example.com', 2, 5, [['bad/id', phone.publicKey]], 'bad/id'], // bad device id
    ];
    for (const f of malformed) {
      const bytes = encodeCanonical([...f, sigFor(DEVICE_LIST_LABEL, f)] as never);
      expectInvalid(() => verifyDeviceList(bytes, { address: alice, previous: g }));
    }
    expectInvalid(() => decodeDeviceList(new Uint8Array([0xff])));
  });

  it('property: a random chain of honest updates is accepted; replaying any older list is refused', () => {
    const keys = Array.from({ length: 6 }, (_, i) =>
      generateSigningKeyPair(new Uint8Array(32).fill(20 + i)),
    );
    fc.assert(
      fc.property(
        fc.array(fc.subarray([0, 1, 2, 3, 4, 5], { minLength: 1 }), { minLength: 1, maxLength: 6 }),
        (sets) => {
          let trusted = verifyDeviceList(genesisOf(keys[0]!).bytes, { address: alice }).list;
          const history: DeviceList[] = [trusted];
          let counter = 1;
          for (const set of sets) {
            const signerId = trusted.devices[0]!.deviceId;
            const signerKp = keys[Number(signerId.slice(1))]!;
            counter += 1;
            const next = createDeviceList({
              address: alice,
              counter,
              devices: set.map((i) => entry(`d${i}`, keys[i]!)),
              signer: { deviceId: signerId, secretKey: signerKp.secretKey },
            });
            const update = verifyDeviceList(next.bytes, { address: alice, previous: trusted });
            const before = new Set(trusted.devices.map((d) => d.deviceId));
            expect(update.added.map((d) => d.deviceId).sort()).toEqual(
              set
                .map((i) => `d${i}`)
                .filter((id) => !before.has(id))
                .sort(),
            );
            trusted = update.list;
            history.push(trusted);
          }
          for (const old of history.slice(0, -1)) {
            expectInvalid(() => verifyDeviceList(old.bytes, { address: alice, previous: trusted }));
          }
        },
      ),
      { numRuns: 30 },
    );
  });
});

function genesisOf(kp: SigningKeyPair): DeviceList {
  return createDeviceList({
    address: alice,
    counter: 1,
    devices: [entry('d0', kp)],
    signer: { deviceId: 'd0', secretKey: kp.secretKey },
  });
}
