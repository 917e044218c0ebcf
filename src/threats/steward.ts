/**
 * Leaving the test accounts as the suite found them. Every threat registers devices on the
 * operator's accounts, and an account holds at most 64 (PROTOCOL_LIMITS.maxDevicesPerAccount),
 * so repeated runs would lock the accounts up. The protocol's one way to retire a device is a
 * signed device-list update that drops it (docs/protocol.md, "Device lists"): the server revokes
 * a device that was on the previous list and is not on the new one. So each account gets a
 * steward: one device of the suite whose identity seed is kept in a state folder between runs.
 * On an account without a device list the steward signs the genesis list, and from then on it
 * can, after each run, list every device the run added and then drop them all again.
 *
 * An account whose list another device signs (one the suite does not hold) cannot be swept:
 * the run says so, and its devices stay.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKeyPair, randomBytes, type SigningKeyPair } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import { ClientFrame } from '../protocol/frames.js';
import { connectTls } from '../transport/tls-client.js';
import { parseAddress } from '../trust/address.js';
import { createDeviceList, decodeDeviceList, type DeviceEntry } from '../trust/device-list.js';
import { RawDevice } from './attackers/watchers.js';
import { describeError } from './context.js';
import { targetTls } from './raw.js';
import type { ListSigner, Target, TestAccount } from './types.js';

/** The steward's device id on every account. */
export const STEWARD_DEVICE_ID = 'threat-steward';

/** Most devices a device list may name (src/trust/device-list.ts). */
const MAX_LISTED = 64;

interface StewardFile {
  readonly version: 1;
  readonly deviceId: string;
  /** Hex of the Ed25519 seed of the steward's identity key. */
  readonly seed: string;
}

/**
 * Where the stewards' seeds are kept for `target` when the operator names no folder:
 * `$XDG_CACHE_HOME/impp-threats/HOST_PORT_DOMAIN` (default `~/.cache`), or under the OS
 * temporary folder when there is no home folder.
 */
export function defaultStateDir(target: Target): string {
  const key = `${target.host}_${target.port}_${target.domain}`.replace(/[^A-Za-z0-9._-]/g, '_');
  const home = homedir();
  const cache =
    process.env.XDG_CACHE_HOME ??
    (home === '' ? join(tmpdir(), 'impp-cache') : join(home, '.cache'));
  return join(cache, 'impp-threats', key);
}

/** One account's steward and what the account held before the run. */
interface Steward {
  readonly account: TestAccount;
  readonly identity: SigningKeyPair;
  /** Device ids active when the run began (the steward's included). */
  readonly before: ReadonlySet<string>;
  /** Whether the steward is on the account's signed device list (and so can sweep). */
  readonly signs: boolean;
  /** Why the steward could not be set up, when it could not. */
  readonly problem?: string;
}

/**
 * The stewards of a run's accounts.
 *
 * @example
 * ```ts
 * const stewards = await Stewards.prepare(target, accounts, stateDir);
 * const report = await runThreats(threats, { target, accounts, listSigner: stewards.signer });
 * for (const line of await stewards.sweep()) log(line);
 * ```
 */
export class Stewards {
  private constructor(
    private readonly target: Target,
    private readonly stewards: readonly Steward[],
  ) {}

  /**
   * Sets up a steward per account (registering it the first time, with the genesis list where
   * the account has none) and notes which devices each account has now. Never throws: an
   * account it cannot set up is left alone, and {@link sweep} says why.
   */
  static async prepare(
    target: Target,
    accounts: readonly TestAccount[],
    stateDir: string,
  ): Promise<Stewards> {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const stewards: Steward[] = [];
    for (const account of accounts) {
      const identity = loadIdentity(stateDir, account.address);
      try {
        const d = await connect(target, account, identity);
        try {
          const { devices, list } = await devicesOf(d, account.address);
          stewards.push({
            account,
            identity,
            before: new Set(devices.map((x) => x.deviceId)),
            signs: list?.devices.some((x) => x.deviceId === STEWARD_DEVICE_ID) ?? false,
          });
        } finally {
          d.close();
        }
      } catch (error) {
        stewards.push({
          account,
          identity,
          before: new Set(),
          signs: false,
          problem: describeError(error),
        });
      }
    }
    return new Stewards(target, stewards);
  }

  /** The steward of `address` when it signs the account's device list (for the threats). */
  readonly signer = (address: string): ListSigner | undefined => {
    const s = this.stewards.find((x) => x.account.address === address);
    return s?.signs === true ? { deviceId: STEWARD_DEVICE_ID, identity: s.identity } : undefined;
  };

  /**
   * Revokes every device the run added to each account: the steward signs a list naming them
   * (so they are on it), then one without them (so the server revokes them). One line per
   * account for the run's log; never throws.
   */
  async sweep(): Promise<string[]> {
    const lines: string[] = [];
    for (const s of this.stewards) {
      const who = s.account.address;
      if (s.problem !== undefined) {
        lines.push(`${who}: not cleaned up (the steward device could not log in: ${s.problem})`);
        continue;
      }
      if (!s.signs) {
        lines.push(
          `${who}: not cleaned up: its device list is signed by a device the suite does not hold (give a fresh account)`,
        );
        continue;
      }
      try {
        const removed = await sweepAccount(this.target, s);
        lines.push(`${who}: ${removed} device(s) of this run revoked`);
      } catch (error) {
        lines.push(`${who}: clean-up failed: ${describeError(error)}`);
      }
    }
    return lines;
  }
}

function loadIdentity(stateDir: string, address: string): SigningKeyPair {
  const path = join(stateDir, `${address.replace(/[^A-Za-z0-9._@-]/g, '_')}.json`);
  if (existsSync(path)) {
    const file = JSON.parse(readFileSync(path, 'utf8')) as Partial<StewardFile>;
    if (file.version !== 1 || typeof file.seed !== 'string' || !/^[0-9a-f]{64}$/.test(file.seed)) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `${path} is not a steward file of this suite`);
    }
    return generateSigningKeyPair(Uint8Array.from(Buffer.from(file.seed, 'hex')));
  }
  const seed = randomBytes(32);
  const file: StewardFile = {
    version: 1,
    deviceId: STEWARD_DEVICE_ID,
    seed: Buffer.from(seed).toString('hex'),
  };
  // The seed is the key of a test device of a test account: private to the operator all the same.
  writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
  chmodSync(path, 0o600);
  return generateSigningKeyPair(seed);
}

/** The steward's session: logged in, bound, registered (the first time). */
async function connect(
  target: Target,
  account: TestAccount,
  identity: SigningKeyPair,
): Promise<RawDevice> {
  const d = new RawDevice(await connectTls(targetTls(target)));
  try {
    await d.authenticate(account);
    const bound = await d.bind(STEWARD_DEVICE_ID, identity);
    if (bound.registered !== true) await d.register();
    return d;
  } catch (error) {
    d.close();
    throw error;
  }
}

async function devicesOf(
  d: RawDevice,
  address: string,
): Promise<{ devices: DeviceEntry[]; list: ReturnType<typeof decodeDeviceList> | undefined }> {
  const r = await d.request(ClientFrame.GET_DEVICES, { address });
  if (!r.ok) throw new ImppError('ERR_PROTOCOL', `GET_DEVICES: ${r.code}`);
  const devices = (Array.isArray(r.body.devices) ? r.body.devices : []).map((x) => {
    const e = x as { deviceId?: unknown; identityKey?: unknown };
    return { deviceId: String(e.deviceId), identityKey: e.identityKey as Uint8Array };
  });
  const bytes = r.body.deviceList;
  return { devices, list: bytes instanceof Uint8Array ? decodeDeviceList(bytes) : undefined };
}

async function sweepAccount(target: Target, s: Steward): Promise<number> {
  const d = await connect(target, s.account, s.identity);
  try {
    const addedNow = async (): Promise<{
      added: DeviceEntry[];
      list: ReturnType<typeof decodeDeviceList>;
    }> => {
      const { devices, list } = await devicesOf(d, s.account.address);
      if (list === undefined) throw new ImppError('ERR_PROTOCOL', 'the account has no list');
      return { added: devices.filter((x) => !s.before.has(x.deviceId)), list };
    };
    let { added, list } = await addedNow();
    const initially = added.length;
    // A list names at most 64 devices, so a long run is swept in batches (bounded, in case the
    // server does not revoke what the list drops).
    for (let round = 0; added.length > 0 && round < 8; round++) {
      const listed = new Set(list.devices.map((x) => x.deviceId));
      const batch = added
        .filter((x) => !listed.has(x.deviceId))
        .slice(0, MAX_LISTED - list.devices.length);
      let counter = list.counter;
      const put = async (entries: readonly DeviceEntry[]): Promise<void> => {
        counter += 1;
        const next = createDeviceList({
          address: parseAddress(s.account.address),
          counter,
          devices: entries,
          signer: { deviceId: STEWARD_DEVICE_ID, secretKey: s.identity.secretKey },
        });
        const r = await d.request(ClientFrame.PUT_DEVICE_LIST, { deviceList: next.bytes });
        if (!r.ok) throw new ImppError('ERR_PROTOCOL', `PUT_DEVICE_LIST: ${r.code}`);
      };
      // Onto the list, then off it: only a device dropped from the list is revoked.
      if (batch.length > 0) await put([...list.devices, ...batch]);
      await put(list.devices.filter((x) => s.before.has(x.deviceId)));
      ({ added, list } = await addedNow());
    }
    return initially - added.length;
  } finally {
    d.close();
  }
}
