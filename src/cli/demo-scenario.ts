/**
 * The scenario behind `impp demo`: two users (and a third watcher) exchange sealed messages and
 * presence in one process, with the real src/trust and src/seal code and no network.
 *
 * There is no server yet (issue 5). Each object a server would store or route is recorded with
 * the only view a server gets of it, {@link readEnvelopeHeader} from src/seal/header.ts, and
 * {@link findLeaks} checks that no plaintext and no sealed sender's address is in those bytes.
 * The renderer (demo.ts) prints the result; nothing here writes to a stream.
 */
import { toHex, utf8 } from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import {
  PresencePublisher,
  PresenceWatch,
  SealDevice,
  decodePrekeyBundle,
  encodePrekeyBundle,
  openMessage,
  openPresenceKey,
  parseEnvelope,
  readEnvelopeHeader,
  sealMessage,
  type OpenedObject,
  type SealedObject,
} from '../seal/index.js';
import {
  buildPidf,
  cpimText,
  cpimTextMessage,
  decodeCpim,
  encodeCpim,
  parsePidf,
} from '../seal/payload/index.js';
import {
  createDeviceList,
  formatAddress,
  formatFingerprint,
  formatSafetyNumber,
  generateDeviceIdentity,
  keyFingerprint,
  parseAddress,
  sameAddress,
  sameKey,
  safetyNumber,
  verifyDeviceList,
  type Address,
  type DeviceList,
} from '../trust/index.js';

/** The fixed content of the demo: the strings the server view must never contain. */
export const DEMO_TEXT = {
  message: 'Hi Bob! Lunch at the usual place at noon?',
  reply: 'Sure, see you there at 12:00.',
  note: 'In the library until 5pm, messages welcome',
  noteAfterRevocation: 'Back at my desk, do not disturb',
} as const;

/** How many one-time prekeys each demo device makes: enough for the demo, fast to generate. */
const ONE_TIME_PREKEYS = 4;

/** The server's view of one sealed object: header fields, never payload. JSON-friendly. */
export type ServerHeader =
  | {
      readonly kind: 'message' | 'keyDistribution';
      readonly recipientDevice: string;
      readonly id: string;
      readonly size: number;
    }
  | {
      readonly kind: 'presence';
      readonly presentity: string;
      readonly deviceId: string;
      readonly epoch: number;
      readonly presenceVersion: number;
      readonly size: number;
    };

/** One object a server would store and route. */
export interface ServerObject {
  readonly header: ServerHeader;
  /** Devices the server delivers these exact bytes to. */
  readonly routeTo: readonly string[];
  /** The whole object as it would travel: the bytes {@link findLeaks} searches. */
  readonly bytes: Uint8Array;
  /** The opaque part (the ciphertext field of the envelope), as the server parses it. */
  readonly ciphertext: Uint8Array;
  /**
   * The sender's address when the object is sealed-sender (messages, presence keys): the
   * server must not see it. Absent for presence updates, whose presentity the server routes by.
   */
  readonly sealedSender?: string;
}

/** What one party saw or did in a step: a label and a value per line. */
export interface DemoLine {
  readonly label: string;
  readonly value: string;
}

/** One step of the demo, in the three views the demo prints. */
export interface DemoStep {
  readonly title: string;
  readonly actor: string;
  readonly did: readonly DemoLine[];
  readonly observers: readonly { readonly who: string; readonly saw: readonly DemoLine[] }[];
  readonly server: readonly ServerObject[];
  /** What the server stores that is public by design (device lists, prekey bundles). */
  readonly serverPublic: readonly DemoLine[];
}

/** A claim the demo makes and has checked. */
export interface DemoCheck {
  readonly claim: string;
  readonly passed: boolean;
}

/** A plaintext (or sealed sender address) found in server-visible bytes. */
export interface Leak {
  /** Index of the object in the flat server view. */
  readonly object: number;
  /** Which secret leaked, by name: never the secret itself. */
  readonly what: string;
}

/** Everything the demo did and saw. */
export interface DemoResult {
  readonly users: readonly { readonly device: string; readonly fingerprint: string }[];
  readonly steps: readonly DemoStep[];
  readonly safetyNumber: { readonly alice: string; readonly bob: string; readonly match: boolean };
  readonly checks: readonly DemoCheck[];
  /** Every server-visible object of every step, in order. */
  readonly serverView: readonly ServerObject[];
  readonly leaks: readonly Leak[];
  /** The plaintexts the recipients read, as they read them. */
  readonly plaintext: {
    readonly message: string;
    readonly reply: string;
    readonly notes: readonly string[];
  };
}

/** One demo user: a device with its identity and its signed device list. */
interface User {
  readonly name: string;
  readonly address: Address;
  readonly device: SealDevice;
  readonly list: DeviceList;
}

function newUser(name: string, address: string, deviceId: string): User {
  const parsed = parseAddress(address);
  const { keyPair } = generateDeviceIdentity({ address: parsed, deviceId });
  const device = SealDevice.create(
    { address: parsed, deviceId },
    { identity: keyPair, oneTimePrekeys: ONE_TIME_PREKEYS },
  );
  // Genesis list: one device, signed by itself (device-list.ts). Contacts verify it below.
  const list = createDeviceList({
    address: parsed,
    counter: 1,
    devices: [{ deviceId, identityKey: keyPair.publicKey }],
    signer: { deviceId, secretKey: keyPair.secretKey },
  });
  return { name, address: parsed, device, list };
}

/** A contact's list as a client accepts it: signature and genesis rules checked. */
function verifiedList(of: User): DeviceList {
  return verifyDeviceList(of.list.bytes, { address: of.address }).list;
}

/** `true` when `device` with `key` is on the verified list of its owner. */
function onList(list: DeviceList, device: string, key: Uint8Array): boolean {
  const slash = device.lastIndexOf('/');
  return (
    device.slice(0, slash) === formatAddress(list.address) &&
    list.devices.some((d) => d.deviceId === device.slice(slash + 1) && sameKey(d.identityKey, key))
  );
}

function fingerprint(key: Uint8Array): string {
  return formatFingerprint(keyFingerprint(key)).split(' ').slice(0, 4).join(' ') + ' …';
}

/** What a server sees of `bytes`, through the header module only, and where it routes them. */
function serverObject(
  bytes: Uint8Array,
  routeTo: readonly string[],
  sealedSender?: string,
): ServerObject {
  return {
    header: serverHeader(bytes),
    routeTo,
    bytes,
    ciphertext: parseEnvelope(bytes).ciphertext,
    ...(sealedSender !== undefined ? { sealedSender } : {}),
  };
}

function serverHeader(bytes: Uint8Array): ServerHeader {
  const h = readEnvelopeHeader(bytes);
  if (h.kind === 'presence') {
    return {
      kind: 'presence',
      presentity: h.presentity,
      deviceId: h.deviceId,
      epoch: h.epoch,
      presenceVersion: h.presenceVersion,
      size: h.size,
    };
  }
  return {
    kind: h.kind,
    recipientDevice: h.recipientDevice,
    id: toHex(h.messageId),
    size: h.size,
  };
}

function sessionObject(sealed: SealedObject, sender: User): ServerObject {
  return serverObject(sealed.bytes, [sealed.to], formatAddress(sender.address));
}

/**
 * Searches every server-visible object for the demo's plaintexts and, in sealed-sender objects,
 * for the sender's address. An empty result is what the demo's "no plaintext" line claims.
 *
 * @example
 * ```ts
 * if (findLeaks(result.serverView).length > 0) process.exitCode = 1;
 * ```
 */
export function findLeaks(
  objects: readonly ServerObject[],
  secrets: Readonly<Record<string, string>> = DEMO_TEXT,
): Leak[] {
  const leaks: Leak[] = [];
  objects.forEach((o, i) => {
    const haystack = Buffer.from(o.bytes);
    const needles = Object.entries(secrets);
    if (o.sealedSender !== undefined) needles.push(['sender address', o.sealedSender]);
    for (const [what, text] of needles) {
      if (haystack.includes(Buffer.from(utf8(text)))) leaks.push({ object: i, what });
    }
  });
  return leaks;
}

/** Opens `bytes` as `who`, accepting a new session only from a device on `list`. */
function openFrom(who: User, bytes: Uint8Array, list: DeviceList): OpenedObject {
  return openMessage(who.device, bytes, trustList(list));
}

/** Reads a CPIM text message and checks its From against the authenticated sender. */
function readCpim(opened: OpenedObject): { from: string; text: string; fromMatches: boolean } {
  if (opened.contentType !== 'message/cpim') {
    throw new ImppError('ERR_PAYLOAD_INVALID', 'expected a message/cpim payload');
  }
  const msg = decodeCpim(opened.payload);
  return {
    from: formatAddress(msg.from.address),
    text: cpimText(msg),
    fromMatches: sameAddress(msg.from.address, opened.sender.address),
  };
}

function cpimBytes(from: User, to: User, text: string): Uint8Array {
  return encodeCpim(
    cpimTextMessage({
      from: { address: from.address },
      to: [{ address: to.address }],
      dateTime: new Date().toISOString(),
      text,
    }),
  );
}

function pidfBytes(user: User, basic: 'open' | 'closed', note: string): Uint8Array {
  return utf8(
    buildPidf({
      entity: user.address,
      tuples: [
        {
          id: 't1',
          status: { basic, extensions: [] },
          extensions: [],
          contact: { uri: `im:${formatAddress(user.address)}` },
          notes: [{ text: note, lang: 'en' }],
        },
      ],
      notes: [],
      extensions: [],
    }),
  );
}

function describePresence(pidf: Uint8Array): { status: string; note: string } {
  const doc = parsePidf(pidf);
  const tuple = doc.tuples[0];
  return {
    status: tuple?.status.basic ?? '(none)',
    note: tuple?.notes[0]?.text ?? '(none)',
  };
}

/** Runs `fn` and returns the ImppError code it throws, or `undefined` when it succeeds. */
function failureCode(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (isImppError(e)) return e.code;
    throw e;
  }
}

/**
 * Runs the whole demo. Throws only on a bug or a failure of the sealing code itself; the claims
 * the demo makes are returned in `checks` and `leaks` for the caller to judge.
 *
 * @example
 * ```ts
 * const r = runDemoScenario();
 * const ok = r.checks.every((c) => c.passed) && r.leaks.length === 0;
 * ```
 */
export function runDemoScenario(): DemoResult {
  const alice = newUser('Alice', 'alice@example.test', 'phone');
  const bob = newUser('Bob', 'bob@example.test', 'laptop');
  const carol = newUser('Carol', 'carol@example.test', 'tablet');
  const steps: DemoStep[] = [];
  const checks: DemoCheck[] = [];

  // 1. Identities and signed device lists; each contact verifies the others' lists.
  const bobSeesAlice = verifiedList(alice);
  const aliceSeesBob = verifiedList(bob);
  const aliceSeesCarol = verifiedList(carol);
  const carolSeesAlice = verifiedList(alice);
  steps.push({
    title: 'Identities: a device key and a signed device list for each user',
    actor: 'Each device',
    did: [alice, bob, carol].map((u) => ({
      label: u.name,
      value: `${u.device.device}, identity key ${fingerprint(u.device.identityKey)}`,
    })),
    observers: [
      {
        who: 'Each contact',
        saw: [{ label: 'device lists', value: "verified the others' signed lists (genesis)" }],
      },
    ],
    server: [],
    serverPublic: [alice, bob, carol].map((u) => ({
      label: 'device list',
      value: `${formatAddress(u.address)}: ${u.list.bytes.length} bytes, signed, public keys only`,
    })),
  });

  // 2. Bob and Carol publish prekey bundles (X3DH §3.2); the server hands them out.
  const bobBundleBytes = encodePrekeyBundle(bob.device.bundle());
  const carolBundleBytes = encodePrekeyBundle(carol.device.bundle());
  steps.push({
    title: 'Bob publishes a prekey bundle',
    actor: 'Bob',
    did: [
      {
        label: 'uploaded',
        value: `signed prekey #${bob.device.publicPrekeys().signedPrekey.id} and ${ONE_TIME_PREKEYS} one-time prekeys`,
      },
    ],
    observers: [],
    server: [],
    serverPublic: [
      {
        label: 'prekey bundle',
        value: `${bob.device.device}: ${bobBundleBytes.length} bytes, public keys only`,
      },
      {
        label: 'prekey bundle',
        value: `${carol.device.device}: ${carolBundleBytes.length} bytes (Carol did the same)`,
      },
    ],
  });

  // 3. Alice opens a session from Bob's bundle (X3DH) and sends a sealed CPIM message.
  const bobBundle = decodePrekeyBundle(bobBundleBytes);
  const bundleOnList = onList(aliceSeesBob, bobBundle.device, bobBundle.identityKey);
  checks.push({ claim: "Bob's bundle key is on his signed device list", passed: bundleOnList });
  if (!bundleOnList) throw new ImppError('ERR_IDENTITY_UNTRUSTED', 'bundle key not on the list');
  const toBob = sealMessage(
    alice.device,
    { to: bobBundle.device, bundle: bobBundle },
    'message/cpim',
    cpimBytes(alice, bob, DEMO_TEXT.message),
  );
  const bobGot = openFrom(bob, toBob.bytes, bobSeesAlice);
  const bobRead = readCpim(bobGot);
  checks.push({
    claim: "Bob read Alice's message, from a device on her signed list",
    passed:
      bobRead.text === DEMO_TEXT.message &&
      bobRead.fromMatches &&
      onList(bobSeesAlice, bobGot.senderDevice, bobGot.senderIdentityKey),
  });
  steps.push({
    title: 'Alice sends Bob a message',
    actor: 'Alice',
    did: [
      { label: 'checked', value: "Bob's bundle key is on his verified device list" },
      {
        label: 'session',
        value: `X3DH with one-time prekey #${String(bobBundle.oneTimePrekey?.id ?? '-')}, then Double Ratchet`,
      },
      { label: 'sealed', value: `a message/cpim document for ${toBob.to}, sender inside` },
    ],
    observers: [
      {
        who: 'Bob',
        saw: [
          { label: 'from', value: `${bobGot.senderDevice} (authenticated, on Alice's list)` },
          {
            label: 'CPIM From',
            value: `${bobRead.from} (${bobRead.fromMatches ? 'matches' : 'DOES NOT match'} the sender)`,
          },
          { label: 'text', value: JSON.stringify(bobRead.text) },
          { label: 'new session', value: bobGot.newSession ? 'yes (prekey message)' : 'no' },
        ],
      },
    ],
    server: [sessionObject(toBob, alice)],
    serverPublic: [],
  });

  // 4. Bob replies in the same session: no bundle needed, X3DH data no longer sent.
  const toAlice = sealMessage(
    bob.device,
    { to: alice.device.device },
    'message/cpim',
    cpimBytes(bob, alice, DEMO_TEXT.reply),
  );
  const aliceGot = openFrom(alice, toAlice.bytes, aliceSeesBob);
  const aliceRead = readCpim(aliceGot);
  checks.push({
    claim: "Alice read Bob's reply in the same session",
    passed: aliceRead.text === DEMO_TEXT.reply && aliceRead.fromMatches && !aliceGot.newSession,
  });
  steps.push({
    title: 'Bob replies',
    actor: 'Bob',
    did: [{ label: 'sealed', value: `a reply for ${toAlice.to} in the ratchet session` }],
    observers: [
      {
        who: 'Alice',
        saw: [
          { label: 'from', value: `${aliceGot.senderDevice} (authenticated)` },
          { label: 'text', value: JSON.stringify(aliceRead.text) },
        ],
      },
    ],
    server: [sessionObject(toAlice, bob)],
    serverPublic: [],
  });

  // 5. Presence: Alice authorizes Bob and Carol, then publishes one sealed update.
  const publisher = new PresencePublisher(alice.device);
  const watchers = new Map<User, PresenceWatch>();
  const keyObjects: ServerObject[] = [];
  const carolBundle = decodePrekeyBundle(carolBundleBytes);
  const carolOnList = onList(aliceSeesCarol, carolBundle.device, carolBundle.identityKey);
  checks.push({ claim: "Carol's bundle key is on her signed device list", passed: carolOnList });
  if (!carolOnList) throw new ImppError('ERR_IDENTITY_UNTRUSTED', 'bundle key not on the list');
  for (const [watcher, target, sees] of [
    [bob, { to: bob.device.device }, bobSeesAlice],
    [carol, { to: carolBundle.device, bundle: carolBundle }, carolSeesAlice],
  ] as const) {
    const listOfAlice = new Map(sees.devices.map((d) => [d.deviceId, d.identityKey]));
    const watch = new PresenceWatch(alice.address, listOfAlice);
    const keyObject = publisher.authorize(target);
    watch.installKey(openPresenceKey(watcher.device, keyObject.bytes, trustList(sees)));
    watchers.set(watcher, watch);
    keyObjects.push(sessionObject(keyObject, alice));
  }
  const update1 = publisher.publish(pidfBytes(alice, 'open', DEMO_TEXT.note));
  const bobPresence = describePresence(watch(watchers, bob).open(update1).pidf);
  const carolPresence = describePresence(watch(watchers, carol).open(update1).pidf);
  checks.push({
    claim: 'Bob and Carol opened the same presence bytes',
    passed:
      bobPresence.status === 'open' &&
      bobPresence.note === DEMO_TEXT.note &&
      carolPresence.note === DEMO_TEXT.note,
  });
  steps.push({
    title: 'Alice authorizes watchers and publishes presence, sealed once',
    actor: 'Alice',
    did: [
      { label: 'authorized', value: `${bob.device.device}, ${carol.device.device}` },
      { label: 'sent', value: `presence key epoch ${publisher.epoch} to each, in the sessions` },
      { label: 'published', value: 'PIDF, status open, with a note: one seal for all watchers' },
    ],
    observers: [
      {
        who: 'Bob',
        saw: [
          { label: 'status', value: bobPresence.status },
          { label: 'note', value: JSON.stringify(bobPresence.note) },
        ],
      },
      {
        who: 'Carol',
        saw: [{ label: 'note', value: JSON.stringify(carolPresence.note) }],
      },
    ],
    server: [...keyObjects, serverObject(update1, [bob.device.device, carol.device.device])],
    serverPublic: [],
  });

  // 6. Alice revokes Carol: a new key (next epoch) goes to the remaining watchers only.
  const rotated = publisher.revoke(carol.device.device);
  for (const k of rotated) {
    const watcher = k.to === bob.device.device ? bob : undefined;
    if (watcher === undefined) {
      throw new ImppError('ERR_NOT_AUTHORIZED', 'presence key sealed for a revoked watcher');
    }
    watch(watchers, watcher).installKey(
      openPresenceKey(watcher.device, k.bytes, trustList(bobSeesAlice)),
    );
  }
  const update2 = publisher.publish(pidfBytes(alice, 'closed', DEMO_TEXT.noteAfterRevocation));
  const bobPresence2 = describePresence(watch(watchers, bob).open(update2).pidf);
  const carolCode = failureCode(() => watch(watchers, carol).open(update2));
  checks.push({
    claim: 'After revocation Bob opens the next update, Carol cannot',
    passed:
      bobPresence2.note === DEMO_TEXT.noteAfterRevocation &&
      carolCode === 'ERR_SEAL_OPEN_FAILED' &&
      rotated.every((k) => k.to !== carol.device.device),
  });
  steps.push({
    title: 'Alice revokes Carol and publishes again',
    actor: 'Alice',
    did: [
      { label: 'revoked', value: carol.device.device },
      {
        label: 'rotated',
        value: `presence key epoch ${publisher.epoch}, sent to ${rotated.map((k) => k.to).join(', ')} only`,
      },
      { label: 'published', value: 'PIDF, status closed, with a new note' },
    ],
    observers: [
      {
        who: 'Bob',
        saw: [
          { label: 'status', value: bobPresence2.status },
          { label: 'note', value: JSON.stringify(bobPresence2.note) },
        ],
      },
      {
        who: 'Carol',
        saw: [{ label: 'open', value: `refused: ${carolCode ?? 'it opened (a failure)'}` }],
      },
    ],
    server: [
      ...rotated.map((k) => sessionObject(k, alice)),
      // A server that ignored the revocation would still forward to Carol: she still cannot read.
      serverObject(update2, [bob.device.device]),
    ],
    serverPublic: [],
  });

  // 7. Safety numbers, each computed from what that side verified (trust/safety-number.ts).
  const aliceView = formatSafetyNumber(
    safetyNumber(
      { address: alice.address, identityKeys: [alice.device.identityKey] },
      { address: bob.address, identityKeys: aliceSeesBob.devices.map((d) => d.identityKey) },
    ),
  );
  const bobView = formatSafetyNumber(
    safetyNumber(
      { address: bob.address, identityKeys: [bob.device.identityKey] },
      { address: alice.address, identityKeys: bobSeesAlice.devices.map((d) => d.identityKey) },
    ),
  );
  const match = aliceView === bobView;
  checks.push({ claim: 'Alice and Bob see the same safety number', passed: match });

  const serverView = steps.flatMap((s) => s.server);
  const leaks = findLeaks(serverView);
  checks.push({ claim: 'server view contains no plaintext', passed: leaks.length === 0 });
  return {
    users: [alice, bob, carol].map((u) => ({
      device: u.device.device,
      fingerprint: formatFingerprint(keyFingerprint(u.device.identityKey)),
    })),
    steps,
    safetyNumber: { alice: aliceView, bob: bobView, match },
    checks,
    serverView,
    leaks,
    plaintext: {
      message: bobRead.text,
      reply: aliceRead.text,
      notes: [bobPresence.note, bobPresence2.note],
    },
  };
}

function trustList(list: DeviceList): {
  trustNewIdentity: (device: string, key: Uint8Array) => boolean;
} {
  return { trustNewIdentity: (device, key) => onList(list, device, key) };
}

function watch(watchers: ReadonlyMap<User, PresenceWatch>, user: User): PresenceWatch {
  const w = watchers.get(user);
  if (w === undefined) throw new ImppError('ERR_NOT_FOUND', 'no presence watch for this user');
  return w;
}
