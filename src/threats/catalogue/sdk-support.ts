/**
 * What the client-side threats (content.ts, keys.ts) share: a malicious server per threat, SDK
 * devices whose events are recorded, bounded waits, and the operator's small forgeries (an
 * envelope field rewritten, a message sealed by a device the operator made).
 */
import { join } from 'node:path';
import type {
  ImppClient,
  ImppClientOptions,
  KeyChangeEvent,
  MissingMessagesEvent,
  ReceivedMessage,
  ReceivedPresence,
  TrustWarningEvent,
} from '../../client/client.js';
import { FileStateStore } from '../../client/state.js';
import { ImppError } from '../../errors.js';
import { decodeCborStrict, encodeCbor, type CborValue } from '../../seal/cbor.js';
import { MAX_SEALED_BYTES } from '../../seal/constants.js';
import { sealForDevices } from '../../seal/message.js';
import { cpimTextMessage, encodeCpim } from '../../seal/payload/cpim.js';
import type { SealDevice } from '../../seal/session.js';
import type { PrekeyBundle } from '../../seal/x3dh.js';
import { parseAddress } from '../../trust/address.js';
import { MaliciousServer } from '../attackers/malicious-server.js';
import type { ThreatContext } from '../types.js';

/** How long "nothing more arrives" is watched for, in ms. */
export const QUIET_MS = 400;
/** The longest wait for something that should arrive, in ms. */
export const ARRIVAL_MS = 5_000;

/**
 * Starts a malicious server that is closed after the threat.
 *
 * @example
 * ```ts
 * const evil = await startHarness(ctx);
 * const bob = await new SdkDevice(ctx, evil, 'bob', 'phone').start();
 * ```
 */
export async function startHarness(ctx: ThreatContext): Promise<MaliciousServer> {
  const evil = await MaliciousServer.start();
  ctx.defer(() => evil.close());
  ctx.note(
    'played by a compromised server the suite runs on loopback, against the client SDK of this ' +
      'build: this tests the SDK users run, not the target deployment',
  );
  return evil;
}

/** What one SDK device saw, in order. */
export interface Seen {
  readonly messages: ReceivedMessage[];
  readonly presence: ReceivedPresence[];
  readonly warnings: TrustWarningEvent[];
  readonly keyChanges: KeyChangeEvent[];
  readonly missing: MissingMessagesEvent[];
  /** Error codes of objects that could not be opened. */
  readonly undeliverable: string[];
}

/**
 * One device of a user of the malicious server, driven through the real SDK; its state file
 * survives {@link SdkDevice.restart}, so "the device goes offline and comes back" is real.
 *
 * @example
 * ```ts
 * const bob = await new SdkDevice(ctx, evil, 'bob', 'phone').start();
 * await bob.stop(); // offline: the server queues for him
 * await bob.start(); // back, same keys and sessions
 * if (bob.seen.missing.length > 0) note('bob was told messages are missing');
 * ```
 */
export class SdkDevice {
  readonly seen: Seen = {
    messages: [],
    presence: [],
    warnings: [],
    keyChanges: [],
    missing: [],
    undeliverable: [],
  };
  readonly name: string;
  readonly address: string;
  #client: ImppClient | undefined;
  readonly #options: Partial<ImppClientOptions>;

  constructor(
    private readonly ctx: ThreatContext,
    private readonly evil: MaliciousServer,
    readonly user: string,
    readonly deviceId: string,
    extra: Partial<ImppClientOptions> = {},
  ) {
    this.address = evil.address(user);
    this.name = `${this.address}/${deviceId}`;
    this.#options = {
      ...evil.clientOptions(user, deviceId),
      state: new FileStateStore(join(ctx.tempDir(), `${user}-${deviceId}.state`)),
      ...extra,
    };
  }

  /** The connected client (after {@link start}). */
  get client(): ImppClient {
    if (this.#client === undefined) throw new ImppError('ERR_INVALID_ARGUMENT', 'not started');
    return this.#client;
  }

  /** Connects (registering the device the first time). */
  async start(): Promise<this> {
    const c = this.ctx.client(this.evil.account(this.user), this.#options);
    c.on('message', (m) => this.seen.messages.push(m));
    c.on('presence', (p) => this.seen.presence.push(p));
    c.on('trustWarning', (w) => this.seen.warnings.push(w));
    c.on('keyChange', (k) => this.seen.keyChanges.push(k));
    c.on('missingMessages', (m) => this.seen.missing.push(m));
    c.on('undeliverable', (u) => this.seen.undeliverable.push(u.code));
    this.#client = c;
    await c.connect();
    return this;
  }

  /** Goes offline (what the server sees when a phone sleeps). */
  async stop(): Promise<void> {
    await this.#client?.close();
    this.#client = undefined;
  }

  /** Comes back with the same state. */
  async restart(): Promise<this> {
    await this.stop();
    return this.start();
  }
}

/**
 * Resolves `true` as soon as `check()` holds, `false` after `ms`.
 *
 * @example
 * ```ts
 * const arrived = await waitUntil(() => texts(bob).includes(canary), 5_000, ctx.signal);
 * ```
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  ms: number = ARRIVAL_MS,
  signal?: AbortSignal,
): Promise<boolean> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() >= until || signal?.aborted === true) return check();
    await quiet(20);
  }
  return true;
}

/** Waits until the server holds nothing for `device` (it acknowledged everything), then a little. */
export async function settled(evil: MaliciousServer, device: string): Promise<boolean> {
  const done = await waitUntil(async () => (await evil.pending(device)).length === 0);
  await quiet(50);
  return done;
}

/** Waits `ms`. */
export function quiet(ms: number = QUIET_MS): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A copy of `bytes` with one byte XORed (index from the end when negative).
 *
 * @example
 * ```ts
 * const badTag = flipByte(sealed, -1);
 * ```
 */
export function flipByte(bytes: Uint8Array, index: number, mask = 0x01): Uint8Array {
  const out = Uint8Array.from(bytes);
  const i = index < 0 ? out.length + index : index;
  out[i] = (out[i] as number) ^ mask;
  return out;
}

/** The envelope map of a sealed object. */
function envelopeMap(bytes: Uint8Array): Map<number, CborValue> {
  const v = decodeCborStrict(bytes, MAX_SEALED_BYTES);
  if (!(v instanceof Map)) throw new ImppError('ERR_SEAL_MALFORMED', 'not an envelope');
  return new Map<number, CborValue>(v);
}

/**
 * A sealed object with envelope field `key` set to `value`, re-encoded canonically.
 *
 * @example
 * ```ts
 * const asKeyDistribution = withField(message, 2, 3); // kind relabelled
 * ```
 */
export function withField(bytes: Uint8Array, key: number, value: CborValue): Uint8Array {
  const m = envelopeMap(bytes);
  m.set(key, value);
  return encodeCbor(m);
}

/** Envelope field `key` of a sealed object. */
export function fieldOf(bytes: Uint8Array, key: number): CborValue | undefined {
  return envelopeMap(bytes).get(key);
}

/** The envelope key of a session-sealed object's ciphertext (docs/formats.md). */
export const K_SESSION_CIPHERTEXT = 6;
/** The envelope key of a presence update's nonce. */
export const K_PRESENCE_NONCE = 8;

/**
 * The bundle of `device` as the operator reads it from its own store, taking one one-time
 * prekey as the server would.
 */
export async function bundleFromStore(
  evil: MaliciousServer,
  device: string,
): Promise<PrekeyBundle> {
  const slash = device.lastIndexOf('/');
  const record = await evil.store.devices.get(device.slice(0, slash), device.slice(slash + 1));
  const spk = await evil.store.prekeys.signedPrekey(device);
  if (record === undefined || spk === undefined) {
    throw new ImppError('ERR_NOT_FOUND', 'no such device in the directory');
  }
  const otk = await evil.store.prekeys.takeOneTimePrekey(device);
  return {
    device,
    identityKey: record.identityKey,
    signedPrekey: { id: spk.keyId, publicKey: spk.publicKey, signature: spk.signature },
    ...(otk === undefined ? {} : { oneTimePrekey: { id: otk.keyId, publicKey: otk.publicKey } }),
  };
}

/** A CPIM text message from `from` to `to`, as the SDK sends it. */
export function cpimBytes(from: string, to: string, text: string): Uint8Array {
  return encodeCpim(
    cpimTextMessage({
      from: { address: parseAddress(from) },
      to: [{ address: parseAddress(to) }],
      text,
    }),
  );
}

/**
 * A message sealed by a device the operator made (`sender`, which may claim any address and
 * device id) for `recipient`, using the recipient's bundle from the store.
 *
 * @example
 * ```ts
 * const impostor = SealDevice.create('alice@compromised.test/laptop');
 * await evil.inject(bob.name, await sealAsImpostor(evil, impostor, bob.name, 'hi, it is alice'));
 * ```
 */
export async function sealAsImpostor(
  evil: MaliciousServer,
  sender: SealDevice,
  recipient: string,
  text: string,
): Promise<Uint8Array> {
  const bundle = await bundleFromStore(evil, recipient);
  const [sealed] = sealForDevices(
    sender,
    [{ to: recipient, bundle }],
    'message/cpim',
    cpimBytes(
      sender.device.slice(0, sender.device.lastIndexOf('/')),
      recipient.slice(0, recipient.lastIndexOf('/')),
      text,
    ),
  );
  if (sealed === undefined) throw new ImppError('ERR_INVALID_ARGUMENT', 'nothing sealed');
  return sealed.bytes;
}

/** Texts of the messages a device saw. */
export function texts(d: SdkDevice): string[] {
  return d.seen.messages.map((m) => m.text);
}

/**
 * The control step of the client-side threats: Alice (laptop) and Bob (phone) connected to the
 * malicious server, and Alice's first message reached Bob.
 *
 * @example
 * ```ts
 * const { alice, bob } = await pair(ctx, evil);
 * ```
 */
export async function pair(
  ctx: ThreatContext,
  evil: MaliciousServer,
  aliceOptions: Partial<ImppClientOptions> = {},
): Promise<{ alice: SdkDevice; bob: SdkDevice }> {
  return ctx.control('alice sends bob a message through the server', async () => {
    const alice = await new SdkDevice(ctx, evil, 'alice', 'laptop', aliceOptions).start();
    const bob = await new SdkDevice(ctx, evil, 'bob', 'phone').start();
    const hello = ctx.canary();
    await alice.client.sendMessage(bob.address, hello);
    if (!(await waitUntil(() => texts(bob).includes(hello), undefined, ctx.signal))) {
      throw new ImppError('ERR_TIMEOUT', 'the message did not arrive');
    }
    return { alice, bob };
  });
}

/**
 * A malicious server with Alice and Bob {@link pair}ed and Carol (desk) connected: the cast of
 * the threats where a third user must not be fooled.
 *
 * @example
 * ```ts
 * const { evil, alice, bob, carol } = await threeOnHarness(ctx);
 * ```
 */
export async function threeOnHarness(ctx: ThreatContext): Promise<{
  evil: MaliciousServer;
  alice: SdkDevice;
  bob: SdkDevice;
  carol: SdkDevice;
}> {
  const evil = await startHarness(ctx);
  const { alice, bob } = await pair(ctx, evil);
  const carol = await new SdkDevice(ctx, evil, 'carol', 'desk').start();
  return { evil, alice, bob, carol };
}
