/**
 * The directory answers of this domain (client protocol §5.3 GET_DEVICES, §5.4 GET_BUNDLES) and
 * its key log (§5.6 GET_LOG), built once for both askers: a local session, and a peer domain asking for one of its users
 * (./federation-inbound.ts). Either way the owner's decisions apply (T13): an asker the owner
 * denied gets the answers of a user who does not exist.
 */
import type { SigningKeyPair } from '../crypto/index.js';
import type { CborValue } from '../transport/cbor-strict.js';
import type { KeyLog } from '../trust/keylog/log.js';
import type { ServerDefences } from './defences.js';
import { bad } from './protocol.js';
import type { BundleAnswer, DevicesAnswer, LogAnswer, LogRequest } from './remote.js';
import type { ServiceStore } from './store/types.js';

/** The answer for a user who does not exist, or who denied the asker. */
export const NO_DEVICES: DevicesAnswer = Object.freeze({ deviceList: null, devices: [] });

/**
 * Whether `owner` denied `asker` (both `user@domain`; the asker may be of another domain). Such
 * an asker gets the answers of a user who does not exist: no devices, no bundles, no delivery,
 * an undecided subscription (T13).
 *
 * @example
 * ```ts
 * if (await deniedBy(server, 'bob@example.org', 'eve@other.example')) return NO_DEVICES;
 * ```
 */
export async function deniedBy(
  host: { readonly store: ServiceStore; readonly defences: ServerDefences },
  owner: string,
  asker: string,
): Promise<boolean> {
  if (owner === asker || !host.defences.uniformBlockedAnswers) return false;
  return (await host.store.subscriptions.get(owner, asker))?.state === 'denied';
}

/**
 * GET_DEVICES of local user `address`: its signed device list as uploaded and its registered,
 * unrevoked devices with their enrolment statements. The caller applies {@link deniedBy} first.
 *
 * @example
 * ```ts
 * const answer = await localDevices(server.store, 'bob@example.org');
 * ```
 */
export async function localDevices(store: ServiceStore, address: string): Promise<DevicesAnswer> {
  const listed = await store.deviceLists.latest(address);
  const devices = await store.devices.list(address);
  return {
    deviceList: listed?.bytes ?? null,
    devices: devices.map((d) => ({
      deviceId: d.deviceId,
      identityKey: d.identityKey,
      enrolment: d.enrolment,
    })),
  };
}

/**
 * GET_BUNDLES of local user `address`: one bundle per device with a signed prekey, each taking
 * one of that device's one-time prekeys (handed out once: the store deletes what it returns).
 * `except` (the asking device itself) gets none. The caller applies {@link deniedBy} first.
 *
 * @example
 * ```ts
 * const bundles = await localBundles(server.store, 'bob@example.org', 'bob@example.org/laptop');
 * ```
 */
export async function localBundles(
  store: ServiceStore,
  address: string,
  except?: string,
): Promise<BundleAnswer[]> {
  const bundles: BundleAnswer[] = [];
  for (const d of await store.devices.list(address)) {
    const device = `${address}/${d.deviceId}`;
    if (device === except) continue;
    const spk = await store.prekeys.signedPrekey(device);
    if (spk === undefined) continue;
    const otk = await store.prekeys.takeOneTimePrekey(device);
    bundles.push({
      device,
      identityKey: d.identityKey,
      signedPrekey: { id: spk.keyId, publicKey: spk.publicKey, signature: spk.signature },
      ...(otk === undefined ? {} : { oneTimePrekey: { id: otk.keyId, publicKey: otk.publicKey } }),
    });
  }
  return bundles;
}

/** A directory answer as a RESULT body (the wire shape is the interface's own). */
export function devicesBody(answer: DevicesAnswer): {
  deviceList: Uint8Array | null;
  devices: { deviceId: string; identityKey: Uint8Array; enrolment: Uint8Array | null }[];
} {
  return {
    deviceList: answer.deviceList,
    devices: answer.devices.map((d) => ({
      deviceId: d.deviceId,
      identityKey: d.identityKey,
      enrolment: d.enrolment,
    })),
  };
}

/** Bundles as a RESULT body's `bundles` (the wire shape is the interface's own). */
export function bundlesBody(bundles: readonly BundleAnswer[]): {
  device: string;
  identityKey: Uint8Array;
  signedPrekey: { id: number; publicKey: Uint8Array; signature: Uint8Array };
  oneTimePrekey?: { id: number; publicKey: Uint8Array };
}[] {
  return bundles.map((b) => ({
    device: b.device,
    identityKey: b.identityKey,
    signedPrekey: {
      id: b.signedPrekey.id,
      publicKey: b.signedPrekey.publicKey,
      signature: b.signedPrekey.signature,
    },
    ...(b.oneTimePrekey === undefined
      ? {}
      : { oneTimePrekey: { id: b.oneTimePrekey.id, publicKey: b.oneTimePrekey.publicKey } }),
  }));
}

/**
 * GET_LOG of this domain's key log: a tree head signed now, the consistency proof from the size
 * the asker trusts (RFC 9162 §2.1.4) and, when asked, one entry with its inclusion proof
 * (§2.1.3). Signing costs a signature per call: callers rate-limit it.
 *
 * @throws `ERR_PROTOCOL` when `since` is beyond the log or `index` is not inside it.
 * @example
 * ```ts
 * const answer = localLog(server, { since: 3, index: 5 });
 * ```
 */
export function localLog(
  host: {
    readonly keyLog: KeyLog;
    readonly logKey: Pick<SigningKeyPair, 'secretKey'>;
    readonly now: () => number;
  },
  request: LogRequest,
): LogAnswer {
  const log = host.keyLog;
  const head = log.signHead(host.logKey.secretKey, host.now());
  const size = head.treeSize;
  const { since, index } = request;
  if (!Number.isSafeInteger(since) || since < 0 || since > size) {
    bad('since', `an integer 0..${size}`);
  }
  const answer = { head: head.bytes, consistency: log.consistencyProof(since, size) };
  if (index === undefined) return answer;
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
    bad('index', 'an index inside the log');
  }
  return { ...answer, entry: log.entry(index), inclusion: log.inclusionProof(index, size) };
}

/** A log answer as a RESULT body (the wire shape is the interface's own). */
export function logBody(answer: LogAnswer): Record<string, CborValue> {
  const out: Record<string, CborValue> = {
    head: answer.head,
    consistency: [...answer.consistency],
  };
  if (answer.entry !== undefined) out.entry = answer.entry;
  if (answer.inclusion !== undefined) out.inclusion = [...answer.inclusion];
  return out;
}
