/**
 * The access attackers of the threat suite: a device that speaks the client protocol frame by
 * frame (docs/protocol.md, "Client protocol"), so it sees every frame the server pushes to it and
 * can send requests the SDK never would; and, built on it, an unapproved watcher (asks for a
 * presentity's presence and is never approved, or is denied) and a revoked watcher (approved, then
 * revoked). What matters is what the server sends them: a PRESENCE frame counts, whether or not
 * the watcher could open it.
 */
import { ClientFrame as Frames } from '../../protocol/frames.js';
import { ImppError } from '../../errors.js';
import { readEnvelopeHeader } from '../../seal/header.js';
import { buildPidf } from '../../seal/payload/pidf.js';
import { PresencePublisher } from '../../seal/presence.js';
import { SealDevice } from '../../seal/session.js';
import { parseAddress } from '../../trust/address.js';
import { createDeviceList } from '../../trust/device-list.js';
import { asBody, RawClient, targetTls, textOf, type RawAnswer } from '../raw.js';
import type { TestAccount, ThreatContext } from '../types.js';
import { connectTls } from '../../transport/tls-client.js';

export { textOf, type RawAnswer, type RawBody } from '../raw.js';

/**
 * A {@link RawClient} that registers as a device of its account (real prekeys), can sign the
 * account's device list when it made the genesis list, and publishes sealed presence.
 */
export class RawDevice extends RawClient {
  #seal: SealDevice | undefined;
  /** The counter of the last device list this device signed, if it signs the account's list. */
  listCounter: number | undefined;
  /** The last presence version this device published. */
  #published = 0;

  /** Opens a TLS connection to the target; closed after the threat. */
  static override async open(ctx: ThreatContext): Promise<RawDevice> {
    const device = new RawDevice(await connectTls(targetTls(ctx.target)));
    ctx.defer(() => {
      device.close();
    });
    return device;
  }

  /**
   * Connects, authenticates as `account` (SCRAM-SHA-256-PLUS), binds a new device with a fresh
   * identity key and registers it (with a genesis device list if the account has none yet).
   */
  static async registered(
    ctx: ThreatContext,
    account: TestAccount,
    deviceId = `raw-${ctx.canary().slice(0, 10)}`,
  ): Promise<RawDevice> {
    const d = await RawDevice.open(ctx);
    await d.authenticate(account);
    await d.bind(deviceId);
    await d.register();
    return d;
  }

  /**
   * A {@link registered} device of `account`, bound again on a second connection
   * ({@link rejoin}): the one a threat drives, told the stored presence of its user.
   */
  static async rejoined(ctx: ThreatContext, account: TestAccount): Promise<RawDevice> {
    return (await RawDevice.registered(ctx, account)).rejoin(ctx, account);
  }

  /** Registers the bound device with real prekeys; a genesis list only if the account has none. */
  async register(): Promise<void> {
    const identity = this.identity;
    if (identity === undefined) throw new ImppError('ERR_PROTOCOL', 'bind first');
    const seal = SealDevice.create(`${this.address}/${this.deviceId}`, {
      identity,
      oneTimePrekeys: 2,
    });
    this.#seal = seal;
    const pub = seal.publicPrekeys();
    const keys = { signedPrekey: pub.signedPrekey, oneTimePrekeys: pub.oneTimePrekeys };
    const list = createDeviceList({
      address: parseAddress(this.address),
      counter: 1,
      devices: [{ deviceId: this.deviceId, identityKey: identity.publicKey }],
      signer: { deviceId: this.deviceId, secretKey: identity.secretKey },
    });
    let r = await this.request(Frames.REGISTER, { ...keys, deviceList: list.bytes });
    if (r.ok) this.listCounter = 1;
    if (!r.ok && r.code === 'ERR_DEVICE_LIST_INVALID') {
      r = await this.request(Frames.REGISTER, keys);
    }
    if (!r.ok) throw new ImppError('ERR_PROTOCOL', `register refused: ${r.code}`);
  }

  /** This device's identity public key (after binding). */
  get identityKey(): Uint8Array {
    if (this.identity === undefined) throw new ImppError('ERR_PROTOCOL', 'bind first');
    return this.identity.publicKey;
  }

  /**
   * Signs and stores the account's next device list naming exactly `devices` (this device
   * included by the caller). Only a device that signs the account's list can (see listCounter).
   */
  async putDeviceList(
    devices: readonly { deviceId: string; identityKey: Uint8Array }[],
  ): Promise<RawAnswer> {
    const identity = this.identity;
    if (identity === undefined || this.listCounter === undefined) {
      throw new ImppError('ERR_NOT_AUTHORIZED', 'this device does not sign the device list');
    }
    const list = createDeviceList({
      address: parseAddress(this.address),
      counter: this.listCounter + 1,
      devices: [...devices],
      signer: { deviceId: this.deviceId, secretKey: identity.secretKey },
    });
    const r = await this.request(Frames.PUT_DEVICE_LIST, { deviceList: list.bytes });
    if (r.ok) this.listCounter += 1;
    return r;
  }

  /**
   * A second connection bound as this same (registered) device: the server gives it the stored
   * presence of this user at once, and this connection is closed by the server (replaced).
   */
  async rejoin(ctx: ThreatContext, account: TestAccount): Promise<RawDevice> {
    const identity = this.identity;
    if (identity === undefined) throw new ImppError('ERR_PROTOCOL', 'bind first');
    const again = await RawDevice.open(ctx);
    await again.authenticate(account);
    await again.bind(this.deviceId, identity);
    again.#seal = this.#seal;
    return again;
  }

  /**
   * Publishes a sealed presence update with `note` (its key shared with nobody), one version
   * above the stored one. Call it on a {@link rejoin}ed device, which has been told the stored
   * version (another device of the user may have published before). Throws when the server
   * refuses the update or takes it for a duplicate.
   */
  async publishPresence(note: string): Promise<RawAnswer> {
    const seal = this.#seal;
    if (seal === undefined) throw new ImppError('ERR_PROTOCOL', 'register first');
    await sleep(150); // the stored update is pushed right after binding
    let last = this.#published;
    for (const f of this.frames) {
      if (f.type !== Frames.PRESENCE) continue;
      try {
        const h = readEnvelopeHeader(asBody(f.body).object as Uint8Array);
        if (h.kind === 'presence' && h.presentity === this.address) {
          last = Math.max(last, h.presenceVersion);
        }
      } catch {
        // Not ours to judge here.
      }
    }
    const pidf = buildPidf({
      entity: parseAddress(this.address),
      tuples: [{ id: 't1', status: { basic: 'open', extensions: [] }, extensions: [], notes: [] }],
      notes: [{ text: note }],
      extensions: [],
    });
    const object = new PresencePublisher(seal, undefined, last).publish(
      new TextEncoder().encode(pidf),
    );
    this.#published = last + 1;
    const r = await this.request(Frames.PUBLISH, { object });
    // A refused or duplicate update is fanned out to nobody: a threat must not read that as a
    // defence.
    if (!r.ok) throw new ImppError('ERR_PROTOCOL', `presence refused: ${r.code}`);
    if (r.body.duplicate === true)
      throw new ImppError('ERR_CONFLICT', 'presence taken as a duplicate');
    return r;
  }
}

/** What a watcher attack saw. */
export interface WatcherObservation {
  /** PRESENCE frames the server pushed to the watcher while it was connected. */
  readonly live: number;
  /** PRESENCE frames pushed to a fresh device of the watcher at login (the stored update). */
  readonly atLogin: number;
  /** The subscription state the watcher's own request was answered with. */
  readonly answered: string;
}

/**
 * The unapproved watcher: `watcher` asks to see `presentity`; the presentity (through `publish`)
 * leaves it pending or denies it, then publishes. Counts every PRESENCE frame the watcher gets,
 * live and when a new device of it logs in.
 */
export async function unapprovedWatcher(
  ctx: ThreatContext,
  watcher: TestAccount,
  presentity: string,
  publish: () => Promise<void>,
  settleMs: number,
): Promise<WatcherObservation> {
  const w = await RawDevice.registered(ctx, watcher);
  const r = await w.request(Frames.SUBSCRIBE, { presentity });
  const answered = r.ok ? textOf(r.body.state) : r.code;
  await publish();
  await sleep(settleMs);
  const live = w.count(Frames.PRESENCE);
  const later = await RawDevice.registered(ctx, watcher);
  await sleep(settleMs);
  return { live, atLogin: later.count(Frames.PRESENCE), answered };
}

/** Waits `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
