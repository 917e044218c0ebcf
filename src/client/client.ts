/**
 * The impp client SDK: connects over TLS 1.3 (or WebSocket on TLS 1.3), authenticates with SASL
 * (SCRAM-SHA-256-PLUS preferred, or EXTERNAL with a TLS client certificate), binds and registers the device, sends and receives sealed messages (CPIM inside),
 * publishes and watches sealed presence (PIDF inside), and decides on watchers.
 * docs/protocol.md, "Client protocol", describes the wire side.
 */
import { EventEmitter } from 'node:events';
import { authenticate, type ClientSaslTransport, type ServerReply } from '../auth/client.js';
import { externalClient } from '../auth/pki/external.js';
import { scramClient, type ChannelBindingPolicy } from '../auth/scram/client.js';
import type { AuthWireFailure, ChannelInfo } from '../auth/types.js';
import {
  fromUtf8,
  generateSigningKeyPair,
  randomBytes,
  SecretBytes,
  sign,
  toHex,
  utf8,
  type SigningKeyPair,
} from '../crypto/index.js';
import { ImppError, isImppError, type ImppErrorCode } from '../errors.js';
import { type DeliveryNotice, decodeDeliveryNotice } from '../protocol/notice.js';
import { WEAKEN_SEAL } from '../seal/defences.js';
import { readEnvelopeHeader } from '../seal/header.js';
import { openMessage, sealForDevices, type SealTarget } from '../seal/message.js';
import { cpimText, cpimTextMessage, decodeCpim, encodeCpim } from '../seal/payload/cpim.js';
import { buildPidf, parsePidf } from '../seal/payload/pidf.js';
import {
  PresencePublisher,
  PresenceWatch,
  openKeyDistribution,
  type PresenceMerge,
  type ReceivedPresenceSync,
} from '../seal/presence.js';
import { canonicalDevice, SealDevice } from '../seal/session.js';
import { decodePrekeyBundle, encodePrekeyBundle, type PrekeyBundle } from '../seal/x3dh.js';
import type { CborValue } from '../transport/cbor-strict.js';
import type { Connection } from '../transport/connection.js';
import type { Frame } from '../transport/frame-codec.js';
import { connectTls } from '../transport/tls-client.js';
import { connectWebSocket } from '../transport/ws-client.js';
import {
  formatAddress,
  normalizeDomain,
  parseAddress,
  parseDeviceAddress,
} from '../trust/address.js';
import {
  type DeviceList,
  type DeviceListUpdate,
  createDeviceList,
  decodeDeviceList,
  verifyDeviceList,
} from '../trust/device-list.js';
import {
  type EnrolmentStatement,
  statementFromLogEntry,
  verifyEnrolmentStatement,
} from '../trust/enrolment.js';
import { verifyTreeHead } from '../trust/keylog/tree-head.js';
import { KeyLogVerifier } from '../trust/keylog/verifier.js';
import { sameKey } from '../trust/identity.js';
import { formatSafetyNumber, safetyNumber } from '../trust/safety-number.js';
import { WEAKEN_CLIENT, clientDefences, type ClientDefences } from './defences.js';
import { Denials } from './denials.js';
import { Frames, bindingInput } from './protocol.js';
import {
  type ClientStateStore,
  type StoredPresenceKey,
  decodeState,
  encodeState,
} from './state.js';

/** Options of {@link ImppClient}. */
export interface ImppClientOptions {
  readonly host: string;
  readonly port: number;
  /** CA certificates that verify the server (PEM). */
  readonly ca?: string | Buffer;
  readonly servername?: string;
  /**
   * `'tls'` (default): length-prefixed frames on TLS 1.3. `'websocket'`: the same frames over
   * `wss://host:port` + {@link websocketPath} (subprotocol impp.v1), channel binding from the TLS
   * connection under the WebSocket.
   */
  readonly transport?: 'tls' | 'websocket';
  /** URL path of the server's WebSocket endpoint; default `/impp`. */
  readonly websocketPath?: string;
  /** `user@domain` of the account. */
  readonly address: string;
  /** The account password, for SCRAM; not needed with `mechanism: 'external'`. */
  readonly password?: string;
  /**
   * A TLS client certificate and its private key (PEM), presented in the handshake. With
   * `mechanism: 'external'` it is the credential (SASL EXTERNAL, RFC 4422 appendix A).
   */
  readonly clientCertificate?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /**
   * `'scram'` (default): SCRAM-SHA-256(-PLUS) with {@link password}. `'external'`: EXTERNAL with
   * {@link clientCertificate}, asking for {@link address} as the authorization identity (the
   * server refuses it unless the certificate maps to that address).
   */
  readonly mechanism?: 'scram' | 'external';
  /** This device's id (1..64 of [A-Za-z0-9_-]). */
  readonly deviceId: string;
  readonly state: ClientStateStore;
  /** SCRAM channel binding; default `'require'` (only -PLUS is used). */
  readonly channelBinding?: ChannelBindingPolicy;
  /**
   * The home domain's Ed25519 key (enrolment statements and key-log tree heads), pinned out of
   * band. Needed for {@link ImppClient.verifyEnrolment}.
   */
  readonly domainKey?: Uint8Array;
  /** The key-log key when the domain uses a separate one; default {@link domainKey}. */
  readonly logKey?: Uint8Array;
  /**
   * Ed25519 keys of OTHER domains (domain → key), pinned out of band (e.g. the key the home
   * domain pins for that peer in its federation trust configuration). Each serves both as that
   * domain's enrolment key (for {@link contactEnrolment}) and its key-log key (for
   * {@link ImppClient.verifyDomainLog}). The home domain's keys stay {@link domainKey} and
   * {@link logKey}.
   */
  readonly domainKeys?: Readonly<Record<string, Uint8Array>>;
  /**
   * Accept a contact device's changed identity key (after a `keyChange` event). Default false.
   * The session made with the old key is then dropped and a new one started from a prekey bundle
   * carrying the new (listed) key: nothing is ever sealed to, or opened from, the old key.
   */
  readonly acceptKeyChanges?: boolean;
  /**
   * Also require, before sealing for a listed device of a contact, that its enrolment statement
   * (from the directory) verifies under {@link domainKey} and names that device and key: `true`
   * for any valid statement, or a policy hook (e.g. `(s) => s.channelBound`). A device that fails
   * raises `enrolment-invalid` and gets nothing. Needs `domainKey`. Contacts of this domain and
   * of the domains in {@link domainKeys} (checked under that domain's key); a contact of any
   * other domain is enrolled by a domain whose key this client does not pin, so its devices are
   * neither checked nor refused here (their verified device list and the sealed sender still
   * are). Default: off. (Not yet: the statement's inclusion in the key log,
   * which needs its index.)
   */
  readonly contactEnrolment?: boolean | ((statement: EnrolmentStatement) => boolean);
  /** Test-only (src/client/defences.ts): defences to switch off. Unreachable from the CLI. */
  readonly [WEAKEN_CLIENT]?: Partial<ClientDefences>;
}

/** A received message. */
export interface ReceivedMessage {
  /** Hex of the 16-byte message id (unique per recipient device). */
  readonly id: string;
  readonly from: string;
  readonly fromDevice: string;
  readonly text: string;
  readonly timestamp: number;
}

/** A received presence update. */
export interface ReceivedPresence {
  readonly presentity: string;
  readonly basic: 'open' | 'closed' | undefined;
  readonly note: string | undefined;
  readonly version: number;
}

/** A subscription state change pushed by the server. */
export interface SubscriptionEvent {
  readonly presentity: string;
  readonly watcher: string;
  readonly state: string;
}

/** A contact device's identity key differs from the one seen before. */
export interface KeyChangeEvent {
  readonly device: string;
  readonly previousKey: Uint8Array;
  readonly newKey: Uint8Array;
}

/**
 * A contact's verified device list changed (or was seen for the first time): the app should show
 * added devices ("Bob added a device") so that a device slipped in by a compromised account is
 * noticed. Only lists signed by a device of the previous verified list get here.
 */
export interface DeviceListEvent {
  readonly address: string;
  readonly counter: number;
  /** `true` for the first list seen for `address` (trust on first use: compare safety numbers). */
  readonly firstSight: boolean;
  /** Device ids new on the list (every device on first sight). */
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Device ids that stayed but carry a new key (also raise `keyChange` when used). */
  readonly replaced: readonly string[];
}

/**
 * The server presented something the client refused (docs/security-model.md T07, T08):
 * - `device-list-rejected`: a device list that does not verify against the last one accepted
 *   (rollback, a signer that was not on the previous list, a bad signature, or no list at all);
 * - `unlisted-device`: the directory or a bundle names a device that is not on the verified list
 *   (a ghost device, or one its owner has not signed onto the list yet); nothing is sealed for it;
 * - `key-mismatch`: the directory or a bundle gives a listed device another identity key than the
 *   list (key substitution); nothing is sealed for it;
 * - `enrolment-invalid`: with `contactEnrolment` on, a listed device's enrolment statement is
 *   missing, does not verify under the domain key, names another device or key, or fails the
 *   policy hook; nothing is sealed for it;
 * - `bundle-invalid`: a listed device's prekey bundle does not verify (e.g. a signed prekey the
 *   device did not sign, X3DH §3.3); nothing is sealed for it;
 * - `bundle-missing`: the server gave no prekey bundle for a listed device this device has no
 *   session with (T10: withheld, or the device has none left); nothing is sealed for it, and when
 *   that leaves the recipient with no device at all `sendMessage` rejects instead;
 * - `unlisted-sender`: a message came from a device not on the sender's last verified list (it is
 *   delivered, flagged: the list may simply be newer than the one held);
 * - `sender-domain-mismatch`: a sealed object whose sender is of another domain than the one the
 *   server says it arrived from (its `from` stamp; this client's own domain without one): a peer
 *   domain speaking for a third domain's user (T45). Not delivered; acknowledged, so it does not
 *   come back. `address` and `device` are the sender the sealed object claims;
 * - `blocked-sender`: a sealed object from a user this account denied (T13; src/client/denials.ts):
 *   the server cannot drop it when the sender is of another domain (sealed sender). Opened (the
 *   sender is only known then), not delivered, acknowledged; `address` and `device` are its
 *   authenticated sender; nothing of the content is passed on.
 */
export interface TrustWarningEvent {
  readonly kind:
    | 'device-list-rejected'
    | 'unlisted-device'
    | 'key-mismatch'
    | 'bundle-invalid'
    | 'bundle-missing'
    | 'enrolment-invalid'
    | 'unlisted-sender'
    | 'sender-domain-mismatch'
    | 'blocked-sender';
  readonly address: string;
  /** `user@domain/deviceId`, when one device is concerned. */
  readonly device?: string;
}

/**
 * Messages from a contact's device are missing (docs/security-model.md T05): a message arrived
 * whose per-session sequence number is more than one above the highest seen from that device, so
 * the server (or the network) dropped or is still holding the ones in between. Detection only:
 * a message dropped last is noticed when the next one arrives. A late one still opens (and is
 * flagged `late` by the seal layer); this event is not withdrawn.
 */
export interface MissingMessagesEvent {
  /** `user@domain` of the contact. */
  readonly contact: string;
  /** `user@domain/deviceId` of the sending device. */
  readonly device: string;
  /** How many messages of that session are missing before this one. */
  readonly count: number;
}

/** Events of {@link ImppClient}. */
export interface ImppClientEvents {
  message: [ReceivedMessage];
  presence: [ReceivedPresence];
  subscription: [SubscriptionEvent];
  keyChange: [KeyChangeEvent];
  deviceList: [DeviceListEvent];
  trustWarning: [TrustWarningEvent];
  missingMessages: [MissingMessagesEvent];
  /** A delivered object could not be opened (it is acknowledged and dropped). */
  undeliverable: [{ readonly code: ImppErrorCode }];
  /**
   * This user's server could not deliver an object this device sent to another domain
   * (docs/protocol.md, Server-to-server §5.3): the server's word, not authenticated by the peer
   * or the recipient. Notices of a version this SDK does not read are dropped silently.
   */
  deliveryFailure: [DeliveryNotice];
  close: [{ readonly code: ImppErrorCode | undefined }];
}

type Body = { readonly [key: string]: CborValue };

/** One-time prekeys per upload (the protocol's limit). */
const MAX_PREKEY_UPLOAD = 100;
/** Below this many one-time prekeys on the server, a connecting device uploads more. */
const PREKEY_LOW_WATER = 20;
/** How many one-time prekeys a top-up generates. */
const PREKEY_BATCH = 50;

interface DirectoryDevice {
  readonly deviceId: string;
  readonly identityKey: Uint8Array;
  /** The domain-signed enrolment statement, when the server gave one. */
  readonly enrolment: Uint8Array | undefined;
}

/**
 * One device's client.
 *
 * @example
 * ```ts
 * const alice = new ImppClient({ host, port, ca, address: 'alice@example.org', password,
 *   deviceId: 'laptop', state: new FileStateStore('alice.state') });
 * alice.on('message', (m) => show(m.from, m.text));
 * await alice.connect();
 * await alice.sendMessage('bob@example.org', 'hello');
 * ```
 */
export class ImppClient extends EventEmitter<ImppClientEvents> {
  readonly address: string;
  readonly deviceId: string;
  #conn: Connection | undefined;
  #identity: SigningKeyPair | undefined;
  #seed: Uint8Array | undefined;
  #device: SealDevice | undefined;
  #registered = false;
  #known = new Map<string, Uint8Array>();
  #publisher: PresencePublisher | undefined;
  #presenceKeys: StoredPresenceKey[] = [];
  /** Users this account denied, as its devices agree (persisted, shared in the presence state). */
  #denials = new Denials();
  #enrolment: { index: number; statement: Uint8Array } | null = null;
  #trustedHead: Uint8Array | null = null;
  /** Other domain → the last head of its key log this device verified (see verifyDomainLog). */
  readonly #domainHeads = new Map<string, Uint8Array>();
  /** {@link ImppClientOptions.domainKeys} under canonical domain names. */
  readonly #domainKeys = new Map<string, Uint8Array>();
  #uploadedPrekeyId = 0;
  /** The last verified device list per address (persisted: rollback protection over restarts). */
  readonly #lists = new Map<string, DeviceList>();
  /** `unlisted-device` warnings already raised (once per device and process, not per send). */
  readonly #warnedUnlisted = new Set<string>();
  readonly #watches = new Map<string, PresenceWatch>();
  readonly #stashedPresence = new Map<string, Uint8Array>();
  readonly #requests = new Map<
    number,
    { resolve: (b: Body) => void; reject: (e: ImppError) => void }
  >();
  #nextId = 1;
  #authInbox: Frame[] = [];
  #authWaiter: ((f: Frame | undefined) => void) | undefined;
  /** Why the server closed the connection, when it said. */
  #closedWith: ImppError | undefined;
  #ready = false;
  /** Incoming objects are handled one at a time, in order (the seal state is not reentrant). */
  #work: Promise<void> = Promise.resolve();
  /** All on, except in the threat suite's own tests (src/client/defences.ts). */
  readonly #defences: ClientDefences;

  constructor(private readonly options: ImppClientOptions) {
    super();
    this.#defences = clientDefences(options[WEAKEN_CLIENT]);
    for (const [domain, key] of Object.entries(options.domainKeys ?? {})) {
      if (!(key instanceof Uint8Array) || key.length !== 32) {
        throw new ImppError(
          'ERR_INVALID_ARGUMENT',
          `domainKeys: the key of ${domain} is not 32 bytes`,
        );
      }
      this.#domainKeys.set(normalizeDomain(domain), Uint8Array.from(key));
    }
    if (
      options.contactEnrolment !== undefined &&
      options.contactEnrolment !== false &&
      options.domainKey === undefined
    ) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'contactEnrolment needs the domainKey');
    }
    if (options.mechanism === 'external' && options.clientCertificate === undefined) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'mechanism external needs a clientCertificate');
    }
    if (options.mechanism !== 'external' && options.password === undefined) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'mechanism scram needs a password');
    }
    if (options.websocketPath !== undefined && !options.websocketPath.startsWith('/')) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'websocketPath must start with /');
    }
    this.address = formatAddress(parseAddress(options.address));
    this.deviceId = options.deviceId;
  }

  /** `user@domain/deviceId`. */
  get device(): string {
    return `${this.address}/${this.deviceId}`;
  }

  /** This device's identity public key. */
  get identityKey(): Uint8Array {
    return this.#sealDevice().identityKey;
  }

  /** Connects, authenticates, binds and (first time) registers the device. */
  async connect(): Promise<void> {
    await this.#loadState();
    const conn = await this.#open();
    this.#conn = conn;
    this.#closedWith = undefined;
    conn.on('frame', (f) => {
      this.#onFrame(f);
    });
    conn.on('close', (info) => {
      this.#ready = false;
      const err = info.error ?? new ImppError('ERR_CONNECTION_CLOSED', 'connection closed');
      for (const r of this.#requests.values()) r.reject(err);
      this.#requests.clear();
      this.#closedWith = info.error;
      this.#authWaiter?.(undefined);
      this.emit('close', { code: info.error?.code });
    });
    try {
      await this.#authenticate(conn);
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  #open(): Promise<Connection> {
    const o = this.options;
    const common = {
      ...(o.ca === undefined ? {} : { ca: o.ca }),
      ...(o.servername === undefined ? {} : { servername: o.servername }),
      ...(o.clientCertificate === undefined
        ? {}
        : { cert: o.clientCertificate.cert, key: o.clientCertificate.key }),
    };
    if (o.transport === 'websocket') {
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      return connectWebSocket({
        ...common,
        url: `wss://${host}:${o.port}${o.websocketPath ?? '/impp'}`,
      });
    }
    return connectTls({ ...common, host: o.host, port: o.port });
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.#work;
    this.#conn?.close();
  }

  /**
   * Drops the connection at once, without waiting for objects being handled: what a crash looks
   * like to the server. Unacknowledged objects are delivered again on the next connect.
   */
  abort(): void {
    this.#ready = false;
    this.#conn?.close();
  }

  // ── Authentication and binding ─────────────────────────────────────────────────────────────

  async #authenticate(conn: Connection): Promise<void> {
    const offer = await this.#expect(Frames.AUTH_OFFER);
    const offered = (offer.mechanisms as CborValue[]).filter(
      (m): m is string => typeof m === 'string',
    );
    const channel: ChannelInfo = {
      secure: true,
      tlsVersion: 'TLSv1.3',
      tlsExporter: conn.channelBinding(),
    };
    let success: Body | undefined;
    const reply = async (): Promise<ServerReply> => {
      const f = await this.#nextAuthFrame();
      const b = asBody(f.body);
      if (f.type === Frames.AUTH_CHALLENGE)
        return { type: 'challenge', challenge: b.data as Uint8Array };
      if (f.type === Frames.AUTH_SUCCESS) {
        success = b;
        const ad = b.additionalData;
        return { type: 'success', additionalData: ad instanceof Uint8Array ? ad : null };
      }
      if (f.type === Frames.AUTH_FAILURE) {
        return { type: 'failure', failure: b.failure as AuthWireFailure };
      }
      throw new ImppError('ERR_PROTOCOL', 'unexpected frame during authentication');
    };
    const transport: ClientSaslTransport = {
      start: (mechanism, initialResponse) => {
        conn.send(Frames.AUTH_START, { mechanism, initial: initialResponse });
        return reply();
      },
      respond: (data) => {
        conn.send(Frames.AUTH_RESPONSE, { data });
        return reply();
      },
    };
    const policy = this.options.channelBinding ?? 'require';
    const external = this.options.mechanism === 'external';
    try {
      await authenticate(
        transport,
        external
          ? // The certificate's proof of possession in the TLS handshake ties this login to the
            // connection; there is no password to bind.
            [externalClient({ authzid: this.address })]
          : scramClient({
              username: parseAddress(this.address).user,
              password: this.options.password ?? '',
              channelBinding: policy,
              checkServerNonce: this.#defences.scramNonceCheck,
            }),
        offered,
        channel,
        { requireChannelBinding: !external && policy === 'require' },
      );
    } catch (e) {
      if (isImppError(e)) throw e;
      throw new ImppError('ERR_AUTH_FAILED', 'authentication failed', { cause: e });
    }
    const ok = success as Body;
    if (ok.address !== this.address || !(ok.nonce instanceof Uint8Array)) {
      throw new ImppError('ERR_PROTOCOL', 'server authenticated another address');
    }
    const identity = this.#identity as SigningKeyPair;
    const signature = sign(
      identity.secretKey,
      bindingInput(
        channel.tlsExporter as Uint8Array,
        ok.nonce,
        this.address,
        this.deviceId,
        identity.publicKey,
      ),
    );
    conn.send(Frames.BIND, { deviceId: this.deviceId, identityKey: identity.publicKey, signature });
    const bound = await this.#expect(Frames.BOUND);
    // Frames that came in right behind BOUND (pending messages) are handled as usual now.
    const early = this.#authInbox;
    this.#authInbox = [];
    this.#ready = true;
    for (const f of early) this.#onFrame(f);
    if (bound.registered !== true) await this.#register();
    else await this.#replenishPrekeys();
  }

  async #nextAuthFrame(): Promise<Frame> {
    const frame =
      this.#authInbox.shift() ??
      (await new Promise<Frame | undefined>((resolve) => {
        this.#authWaiter = resolve;
      }));
    this.#authWaiter = undefined;
    if (frame === undefined) {
      // The server's reason (e.g. a revoked device at binding) says more than "closed".
      throw (
        this.#closedWith ??
        new ImppError('ERR_CONNECTION_CLOSED', 'connection closed during authentication')
      );
    }
    return frame;
  }

  async #expect(type: number): Promise<Body> {
    const frame = await this.#nextAuthFrame();
    if (frame.type !== type) throw new ImppError('ERR_PROTOCOL', `expected frame type ${type}`);
    return asBody(frame.body);
  }

  async #register(): Promise<void> {
    const device = this.#sealDevice();
    const pub = device.publicPrekeys();
    const identity = this.#identity as SigningKeyPair;
    const uploaded = pub.oneTimePrekeys.slice(0, MAX_PREKEY_UPLOAD);
    const base = { signedPrekey: pub.signedPrekey, oneTimePrekeys: uploaded };
    const genesis = createDeviceList({
      address: parseAddress(this.address),
      counter: 1,
      devices: [{ deviceId: this.deviceId, identityKey: identity.publicKey }],
      signer: { deviceId: this.deviceId, secretKey: identity.secretKey },
    });
    let result: Body;
    try {
      result = await this.#request(Frames.REGISTER, { ...base, deviceList: genesis.bytes });
    } catch (e) {
      // The account already has a list (another device): register without one; an existing
      // device adds this one to the list later (PUT_DEVICE_LIST).
      if (!isImppError(e, 'ERR_DEVICE_LIST_INVALID')) throw e;
      result = await this.#request(Frames.REGISTER, base);
    }
    const { enrolment, logIndex } = result;
    if (enrolment instanceof Uint8Array && typeof logIndex === 'number') {
      this.#enrolment = { index: logIndex, statement: enrolment };
    }
    this.#registered = true;
    this.#uploadedPrekeyId = Math.max(0, ...uploaded.map((k) => k.id));
    await this.#save();
  }

  /**
   * Tops up the server's one-time prekeys when they run low (each is handed out once, X3DH §3.2),
   * so new contacts keep getting a one-time prekey in their bundle.
   */
  async #replenishPrekeys(): Promise<void> {
    const status = await this.#request(Frames.ADD_PREKEYS, {});
    if (typeof status.count !== 'number' || status.count >= PREKEY_LOW_WATER) return;
    const device = this.#sealDevice();
    device.addOneTimePrekeys(PREKEY_BATCH);
    const fresh = device
      .publicPrekeys()
      .oneTimePrekeys.filter((k) => k.id > this.#uploadedPrekeyId)
      .slice(0, MAX_PREKEY_UPLOAD);
    if (fresh.length === 0) return;
    await this.#save(); // the secret halves exist before the server hands out the public ones
    await this.#request(Frames.ADD_PREKEYS, { oneTimePrekeys: fresh });
    this.#uploadedPrekeyId = Math.max(this.#uploadedPrekeyId, ...fresh.map((k) => k.id));
    await this.#save();
  }

  // ── Frames ─────────────────────────────────────────────────────────────────────────────────

  #onFrame(f: Frame): void {
    if (!this.#ready) {
      this.#authInbox.push(f);
      const w = this.#authWaiter;
      if (w !== undefined) {
        this.#authWaiter = undefined;
        w(this.#authInbox.shift());
      }
      return;
    }
    const b = asBody(f.body);
    switch (f.type) {
      case Frames.RESULT:
      case Frames.ERROR: {
        const id = b.id as number;
        const r = this.#requests.get(id);
        if (r === undefined) return;
        this.#requests.delete(id);
        if (f.type === Frames.RESULT) r.resolve(b);
        else
          r.reject(
            new ImppError(errorCode(b.code), typeof b.message === 'string' ? b.message : 'refused'),
          );
        return;
      }
      case Frames.DELIVER:
        if (b.notice instanceof Uint8Array && b.id instanceof Uint8Array) {
          const [notice, id] = [b.notice, b.id];
          this.#enqueue(() => this.#notice(notice, id));
        } else if (b.object instanceof Uint8Array) {
          const [object, from] = [b.object, typeof b.from === 'string' ? b.from : undefined];
          this.#enqueue(() => this.#deliver(object, from));
        }
        return;
      case Frames.PRESENCE:
        this.#enqueue(() => this.#presence(b.object as Uint8Array));
        return;
      case Frames.SUBSCRIPTION:
        this.emit('subscription', {
          presentity: str(b.presentity),
          watcher: str(b.watcher),
          state: str(b.state),
        });
        return;
      default:
        return;
    }
  }

  #enqueue(job: () => Promise<void>): void {
    this.#work = this.#work.then(job).catch(() => undefined);
  }

  #request(type: number, body: Body): Promise<Body> {
    const conn = this.#conn;
    if (conn === undefined || !this.#ready) {
      return Promise.reject(new ImppError('ERR_CONNECTION_CLOSED', 'not connected'));
    }
    const id = this.#nextId++;
    return new Promise<Body>((resolve, reject) => {
      this.#requests.set(id, { resolve, reject });
      try {
        conn.send(type, { ...body, id });
      } catch (e) {
        this.#requests.delete(id);
        reject(isImppError(e) ? e : new ImppError('ERR_CONNECTION_CLOSED', 'send failed'));
      }
    });
  }

  /** @internal For tests and tools: a raw request. */
  rawRequest(type: number, body: Body): Promise<Body> {
    return this.#request(type, body);
  }

  // ── Messages ───────────────────────────────────────────────────────────────────────────────

  /**
   * Sends `text` to every device on `to`'s verified device list and to this user's other listed
   * devices. Resolves when the server has stored every copy. Returns the message ids (hex), one
   * per device sealed for: a device refused for trust reasons (see the `trustWarning` and
   * `keyChange` events) is left out, so an empty array means nothing was sent. A listed device
   * without session or prekey bundle is left out with a `bundle-missing` warning. Rejects, before
   * anything is sent, with `ERR_DEVICE_LIST_INVALID` when a list does not verify (rollback, forged
   * signer), and with `ERR_SEAL_SESSION_STATE` when no device of the recipient can be sealed for
   * and a missing bundle is why (T10: a missing bundle is an error, never a silent empty send).
   */
  async sendMessage(to: string, text: string): Promise<string[]> {
    const recipient = formatAddress(parseAddress(to));
    const { targets, withoutBundle } = await this.#targetsOf(recipient);
    if (targets.length === 0 && withoutBundle.length > 0) {
      throw new ImppError(
        'ERR_SEAL_SESSION_STATE',
        `no prekey bundle for ${withoutBundle.length} listed device(s) of the recipient and no other device to seal for`,
      );
    }
    if (recipient !== this.address) targets.push(...(await this.#targets(this.address)));
    const cpim = encodeCpim(
      cpimTextMessage({
        from: { address: parseAddress(this.address) },
        to: [{ address: parseAddress(recipient) }],
        text,
      }),
    );
    const sealed = sealForDevices(this.#sealDevice(), targets, 'message/cpim', cpim);
    await this.#save();
    for (const s of sealed) await this.#request(Frames.SEND, { object: s.bytes });
    return sealed.map((s) => toHex(s.messageId));
  }

  /** {@link #targetsOf} without the devices left out for want of a bundle (warned about). */
  async #targets(address: string): Promise<SealTarget[]> {
    return (await this.#targetsOf(address)).targets;
  }

  /**
   * Seal targets for the devices on `address`'s verified device list (bundles fetched for devices
   * without a session), each bound to its listed identity key. The server's directory only
   * informs: a device it shows that is not on the list (T08), or a bundle whose identity key is
   * not the listed one (T07), gets nothing. `withoutBundle`: listed, accepted devices left out
   * because the server gave no bundle for them (T10).
   */
  async #targetsOf(address: string): Promise<{ targets: SealTarget[]; withoutBundle: string[] }> {
    const listed = await this.#listedDevices(address);
    const device = this.#sealDevice();
    // A listed key that differs from the one used before is a key change: refuse that device
    // unless the app accepts changes (the list was signed by a device trusted before).
    const names = [...listed]
      .filter(([name, key]) => name !== this.device && this.#checkKey(name, key))
      .map(([name]) => name);
    // A session bound to another key than the listed (and accepted) one was made with the
    // replaced key: dropped, so that nothing is sealed to or opened from that key again; the
    // device gets a new session from a bundle under its new key below.
    let dropped = false;
    for (const n of names) {
      const bound = device.sessionIdentityKey(n);
      if (bound !== undefined && !sameKey(bound, listed.get(n) as Uint8Array)) {
        dropped = device.dropSession(n) || dropped;
      }
    }
    if (dropped) await this.#save();
    const missing = names.filter((n) => !device.hasSession(n));
    const refused = new Set<string>();
    const bundles = new Map<string, PrekeyBundle>();
    if (missing.length > 0) {
      const reply = await this.#request(Frames.GET_BUNDLES, { address });
      if (!Array.isArray(reply.bundles)) throw new ImppError('ERR_PROTOCOL', 'expected bundles');
      for (const raw of reply.bundles as readonly CborValue[]) {
        // Checked against the list before anything else, and one bad bundle costs only its own
        // device: the others are still sealed for.
        const b = asBody(raw);
        const name = str(b.device);
        const key = listed.get(name);
        if (key === undefined) {
          this.#warnUnlisted(address, name);
          continue;
        }
        if (
          this.#defences.bundleKeyCheck &&
          (!(b.identityKey instanceof Uint8Array) || !sameKey(key, b.identityKey))
        ) {
          refused.add(name);
          this.emit('trustWarning', { kind: 'key-mismatch', address, device: name });
          continue;
        }
        let bundle: PrekeyBundle;
        try {
          bundle = bundleFromAnswer(b);
        } catch (e) {
          if (!isImppError(e)) throw e;
          refused.add(name);
          this.emit('trustWarning', { kind: 'bundle-invalid', address, device: name });
          continue;
        }
        bundles.set(name, bundle);
      }
    }
    const targets: SealTarget[] = [];
    const withoutBundle: string[] = [];
    for (const n of names) {
      const key = listed.get(n) as Uint8Array;
      const bundle = bundles.get(n);
      if (device.hasSession(n)) targets.push({ to: n, identityKey: key });
      else if (bundle !== undefined) {
        // The seal layer checks the bundle against the key too; with the client's own check
        // switched off (a threat-suite test) the directory's word is what is being tested.
        const identityKey = this.#defences.bundleKeyCheck ? key : bundle.identityKey;
        targets.push({ to: n, bundle, identityKey });
      } else if (!refused.has(n)) {
        withoutBundle.push(n);
        this.emit('trustWarning', { kind: 'bundle-missing', address, device: n });
      }
    }
    return { targets, withoutBundle };
  }

  /**
   * `user@domain/deviceId` → identity key for every device on `address`'s device list, after
   * verifying the list the server serves against the last one this client accepted (T07, T08).
   * Directory entries not on the list raise `unlisted-device`; directory keys that differ from
   * the list raise `key-mismatch`; neither is ever used.
   */
  async #listedDevices(address: string): Promise<Map<string, Uint8Array>> {
    const reply = await this.#request(Frames.GET_DEVICES, { address });
    const list = await this.#acceptList(address, reply.deviceList);
    const listed = new Map(list.devices.map((d) => [`${address}/${d.deviceId}`, d.identityKey]));
    const directory = directoryOf(reply);
    for (const d of directory) {
      const name = `${address}/${d.deviceId}`;
      const key = listed.get(name);
      if (key === undefined) {
        if (this.#defences.listedDevicesOnly) this.#warnUnlisted(address, name);
        else listed.set(name, d.identityKey);
      } else if (!sameKey(key, d.identityKey)) {
        this.emit('trustWarning', { kind: 'key-mismatch', address, device: name });
      }
    }
    // Enrolment statements are checked for users of domains with a pinned key only (see
    // `contactEnrolment`).
    if (
      this.#defences.enrolmentCheck &&
      this.options.contactEnrolment !== undefined &&
      this.options.contactEnrolment !== false &&
      this.#enrolmentKeyOf(parseAddress(address).domain) !== undefined
    ) {
      for (const [name, key] of listed) {
        if (name === this.device) continue;
        const deviceId = name.slice(address.length + 1);
        const entry = directory.find((d) => d.deviceId === deviceId);
        if (!this.#enrolmentAcceptable(address, deviceId, key, entry?.enrolment)) {
          listed.delete(name);
          this.emit('trustWarning', { kind: 'enrolment-invalid', address, device: name });
        }
      }
    }
    return listed;
  }

  /**
   * Verifies a device list from the server against the last one accepted for `address` (a first
   * sight accepts a list signed by one of its own devices: trust on first use), stores it, and
   * reports what changed. Refused (`ERR_DEVICE_LIST_INVALID` and a `device-list-rejected`
   * warning): no list, a rollback, a signer not on the previous list, a bad signature, and for
   * this account a list that gives this device another key.
   */
  async #acceptList(address: string, bytes: CborValue | undefined): Promise<DeviceList> {
    const previous = this.#lists.get(address);
    let update: DeviceListUpdate;
    try {
      if (!(bytes instanceof Uint8Array)) {
        throw new ImppError('ERR_DEVICE_LIST_INVALID', 'the account has no device list');
      }
      update = verifyDeviceList(bytes, {
        address: parseAddress(address),
        ...(previous === undefined ? { firstSight: 'self-signed' as const } : { previous }),
      });
      const mine = update.list.devices.find((d) => d.deviceId === this.deviceId);
      if (
        address === this.address &&
        mine !== undefined &&
        !sameKey(mine.identityKey, this.identityKey)
      ) {
        throw new ImppError('ERR_DEVICE_LIST_INVALID', 'the list gives this device another key');
      }
    } catch (e) {
      if (isImppError(e, 'ERR_DEVICE_LIST_INVALID')) {
        this.emit('trustWarning', { kind: 'device-list-rejected', address });
      }
      throw e;
    }
    if (update.unchanged) return update.list;
    this.#lists.set(address, update.list);
    await this.#save();
    this.emit('deviceList', {
      address,
      counter: update.list.counter,
      firstSight: previous === undefined,
      added: update.added.map((d) => d.deviceId),
      removed: update.removed.map((d) => d.deviceId),
      replaced: update.replaced.map((d) => d.deviceId),
    });
    return update.list;
  }

  /** The pinned enrolment key of `domain`: the home domain's, or one of `domainKeys`. */
  #enrolmentKeyOf(domain: string): Uint8Array | undefined {
    if (domain === parseAddress(this.address).domain) return this.options.domainKey;
    return this.#domainKeys.get(domain);
  }

  /**
   * Whether `statement` is the domain's enrolment of exactly this device and key, and passes the
   * app's policy hook. Statements are verified under the pinned key of the contact's domain.
   */
  #enrolmentAcceptable(
    address: string,
    deviceId: string,
    key: Uint8Array,
    statement: Uint8Array | undefined,
  ): boolean {
    const domainKey = this.#enrolmentKeyOf(parseAddress(address).domain);
    const policy = this.options.contactEnrolment;
    if (statement === undefined || domainKey === undefined) return false;
    try {
      const { statement: s } = verifyEnrolmentStatement(statement, {
        domainKey,
        address: parseAddress(address),
      });
      if (s.deviceId !== deviceId || !sameKey(s.identityKey, key)) return false;
      return typeof policy === 'function' ? policy(s) : true;
    } catch (e) {
      if (isImppError(e)) return false;
      throw e;
    }
  }

  #warnUnlisted(address: string, device: string): void {
    if (this.#warnedUnlisted.has(device)) return;
    this.#warnedUnlisted.add(device);
    this.emit('trustWarning', { kind: 'unlisted-device', address, device });
  }

  /**
   * Whether an incoming session from `sender` with `key` is acceptable: a key that contradicts
   * the sender's last verified list is refused (key substitution); a device not on that list is
   * accepted but flagged (its owner may have signed a newer list); otherwise trust on first use
   * per device, as for sealing.
   */
  #trustSender(sender: string, key: Uint8Array): boolean {
    const slash = sender.lastIndexOf('/');
    const address = sender.slice(0, slash);
    const list = this.#lists.get(address);
    const entry = list?.devices.find((d) => d.deviceId === sender.slice(slash + 1));
    if (list !== undefined && entry === undefined) {
      this.emit('trustWarning', { kind: 'unlisted-sender', address, device: sender });
    }
    if (this.#defences.senderKeyCheck && entry !== undefined && !sameKey(entry.identityKey, key)) {
      this.emit('trustWarning', { kind: 'key-mismatch', address, device: sender });
      return false;
    }
    return this.#checkKey(sender, key);
  }

  /** Trust on first use per device, then a `keyChange` event (and refusal) on any change. */
  #checkKey(device: string, key: Uint8Array): boolean {
    const previous = this.#known.get(device);
    if (previous === undefined) {
      this.#known.set(device, Uint8Array.from(key));
      return true;
    }
    if (sameKey(previous, key)) return true;
    this.emit('keyChange', { device, previousKey: previous, newKey: Uint8Array.from(key) });
    if (this.options.acceptKeyChanges === true) {
      this.#known.set(device, Uint8Array.from(key));
      return true;
    }
    return false;
  }

  /**
   * Whether a sealed sender device may have sent an object stamped `from` (the domain it arrived
   * from, per this user's server; none: this domain): a peer domain speaks only for its own
   * users, and this domain's server does not relay for others (T45).
   */
  #senderDomainOk(senderDevice: string, from: string | undefined): boolean {
    if (!this.#defences.senderDomainCheck) return true;
    let expected: string;
    let actual: string;
    try {
      expected = from === undefined ? parseAddress(this.address).domain : normalizeDomain(from);
      actual = parseDeviceAddress(senderDevice).address.domain;
    } catch {
      return false;
    }
    return actual === expected;
  }

  /**
   * Whether an opened sender device belongs to a user this account denied (T13): the server
   * blocks a denied user of its own domain, but sees no sender in what another domain relays
   * (docs/protocol.md, Server-to-server §5.1), so the check is here, for every domain.
   */
  #deniedSender(senderDevice: string): boolean {
    if (!this.#defences.deniedSenderCheck) return false;
    let user: string;
    try {
      user = formatAddress(parseDeviceAddress(senderDevice).address);
    } catch {
      return false; // no user this account could have denied (the domain check refuses it)
    }
    return user !== this.address && this.#denials.isDenied(user);
  }

  /** A delivery-failure notice from this user's server: surfaced, then acknowledged. */
  async #notice(bytes: Uint8Array, id: Uint8Array): Promise<void> {
    let notice: DeliveryNotice | undefined;
    try {
      notice = decodeDeliveryNotice(bytes);
    } catch {
      // An unknown version or a malformed notice: nothing this SDK can tell the app.
    }
    if (notice !== undefined) this.emit('deliveryFailure', notice);
    await this.#request(Frames.ACK, { ids: [id] });
  }

  /**
   * A sealed object from the queue; `from` is the domain it arrived from when another domain's
   * server handed it to this user's server. Opened, checked (the sealed sender must be of that
   * domain, T45), given to the app, then acknowledged.
   */
  async #deliver(object: Uint8Array, from?: string): Promise<void> {
    let id: Uint8Array;
    let kind: string;
    try {
      const h = readEnvelopeHeader(object);
      if (h.kind === 'presence') return;
      id = h.messageId;
      kind = h.kind;
    } catch {
      return;
    }
    const device = this.#sealDevice();
    /** Why the sender the seal layer named is refused: of another domain than `from`, or denied. */
    let refusal: { kind: 'sender-domain-mismatch' | 'blocked-sender'; sender: string } | undefined;
    const refused = (sender: string): boolean => {
      if (!this.#senderDomainOk(sender, from)) refusal = { kind: 'sender-domain-mismatch', sender };
      else if (this.#deniedSender(sender)) refusal = { kind: 'blocked-sender', sender };
      return refusal !== undefined;
    };
    const options = {
      // Before trust on first use records the key: a forged or denied sender leaves no trace (no
      // trusted key, no session, its one-time prekey unused).
      trustNewIdentity: (sender: string, key: Uint8Array) =>
        !refused(sender) && this.#trustSender(sender, key),
    };
    try {
      if (kind === 'message') {
        const opened = openMessage(device, object, options);
        await this.#save();
        if (refused(opened.senderDevice)) {
          throw new ImppError('ERR_NOT_AUTHORIZED', 'sealed sender refused');
        }
        if (this.#defences.missingMessageCheck && opened.gap > 0) {
          this.emit('missingMessages', {
            contact: formatAddress(opened.sender.address),
            device: opened.senderDevice,
            count: opened.gap,
          });
        }
        let text: string;
        try {
          text = cpimText(decodeCpim(opened.payload));
        } catch {
          text = fromUtf8(opened.payload);
        }
        this.emit('message', {
          id: toHex(opened.messageId),
          from: formatAddress(opened.sender.address),
          fromDevice: opened.senderDevice,
          text,
          timestamp: opened.timestamp,
        });
      } else {
        const received = openKeyDistribution(device, object, options);
        if (refused(received.senderDevice)) {
          received.key.wipe();
          throw new ImppError('ERR_NOT_AUTHORIZED', 'sealed sender refused');
        }
        if (received.type === 'sync') {
          await this.#mergePresence(received);
        } else {
          const watch = await this.#watch(received.presentity);
          watch.installKey(received);
          this.#presenceKeys = [
            ...this.#presenceKeys.filter(
              (k) => k.presentity !== received.presentity || watch.epochs.includes(k.epoch),
            ),
            {
              presentity: received.presentity,
              epoch: received.epoch,
              key: Uint8Array.from(received.key.expose()),
              senderDevice: received.senderDevice,
              senderIdentityKey: received.senderIdentityKey,
            },
          ];
          await this.#save();
          const stashed = this.#stashedPresence.get(received.presentity);
          if (stashed !== undefined) await this.#presence(stashed);
        }
      }
    } catch (e) {
      // A replay is a duplicate delivery: acknowledge it silently. Anything else is dropped
      // with an event; the object can never be opened, so keeping it would block the queue.
      if (refusal !== undefined) {
        const { kind, sender } = refusal;
        this.emit('trustWarning', {
          kind,
          address: sender.slice(0, sender.lastIndexOf('/')),
          device: sender,
        });
      } else if (!isImppError(e, 'ERR_SEAL_REPLAY')) {
        this.emit('undeliverable', { code: isImppError(e) ? e.code : 'ERR_SEAL_OPEN_FAILED' });
      }
    }
    // Acknowledged only after the state that records the open is saved: at least once on the
    // wire, exactly once to the application (the seal layer's replay check drops repeats).
    await this.#request(Frames.ACK, { ids: [id] });
  }

  // ── Presence ───────────────────────────────────────────────────────────────────────────────

  /** Asks to watch `presentity`'s presence. Resolves with the subscription state. */
  async subscribe(presentity: string): Promise<string> {
    const r = await this.#request(Frames.SUBSCRIBE, { presentity });
    return str(r.state);
  }

  /** Withdraws a request or ends a subscription (`'none'`); a denial stands (`'denied'`). */
  async unsubscribe(presentity: string): Promise<string> {
    const r = await this.#request(Frames.UNSUBSCRIBE, { presentity });
    return str(r.state);
  }

  /**
   * Approves `watcher`: distributes the presence key to its devices and shares the new watcher
   * set with this user's other devices (so they publish to it and keep it on rotation), then
   * tells the server. A denial of `watcher` is lifted on every device of this user: what it
   * sends is delivered again.
   */
  async approve(watcher: string): Promise<string> {
    const publisher = this.#presencePublisher();
    const address = formatAddress(parseAddress(watcher));
    // Recorded before the state is shared below, so the other devices lift the denial too.
    const previous = this.#denials.decide(address, false, Date.now());
    try {
      // A watcher this user denied is answered by the server as if this user did not exist
      // (T13), so it could not check the device list behind a presence key sent now: lift the
      // block at the server first. (Otherwise the key goes first, so that the presence the server
      // hands over on approval can be opened at once.)
      const unblockFirst = previous?.denied === true;
      let state = unblockFirst
        ? str((await this.#request(Frames.DECIDE, { watcher: address, action: 'approve' })).state)
        : undefined;
      let epoch: number;
      do {
        // A sibling's newer state may arrive meanwhile (it replaces key and watcher set): then the
        // watcher is authorized again, under that key.
        epoch = publisher.epoch;
        for (const t of await this.#targets(address)) {
          const sealed = publisher.authorize(t);
          await this.#save();
          await this.#request(Frames.SEND, { object: sealed.bytes });
        }
      } while (publisher.epoch !== epoch);
      await this.#sharePresence();
      state ??= str(
        (await this.#request(Frames.DECIDE, { watcher: address, action: 'approve' })).state,
      );
      return state;
    } catch (e) {
      // Not approved after all: a denial it lifted stands again, on every device.
      if (previous?.denied === true) await this.#recordDenial(address);
      throw e;
    }
  }

  /**
   * Denies a pending request. The watcher is blocked too (T13): the server gives it the answers
   * of a user who does not exist, and this user's devices drop what it sends, whatever its domain
   * (its server, not this one, relays it with the sender sealed; src/client/denials.ts).
   */
  async deny(watcher: string): Promise<string> {
    const address = formatAddress(parseAddress(watcher));
    const r = await this.#request(Frames.DECIDE, { watcher: address, action: 'deny' });
    const state = str(r.state);
    if (state === 'denied') await this.#recordDenial(address);
    return state;
  }

  /** Records a denial and shares it with this user's other devices (in the presence state). */
  async #recordDenial(address: string): Promise<void> {
    this.#denials.decide(address, true, Date.now());
    this.#presencePublisher();
    await this.#save();
    try {
      await this.#sharePresence();
    } catch (e) {
      // Kept here; the other devices learn it with the next presence state this device shares.
      if (!isImppError(e)) throw e;
    }
  }

  /** Revokes `watcher`: the server stops at once; the key rotates for the remaining watchers. */
  async revoke(watcher: string): Promise<string> {
    const address = formatAddress(parseAddress(watcher));
    const r = await this.#request(Frames.DECIDE, { watcher: address, action: 'revoke' });
    const publisher = this.#presencePublisher();
    publisher.drop(...publisher.watchers.filter((w) => w.startsWith(`${address}/`)));
    await this.#rotatePresence();
    return str(r.state);
  }

  /** Publishes presence (sealed PIDF) to approved watchers. */
  async publishPresence(basic: 'open' | 'closed', note?: string): Promise<void> {
    const pidf = buildPidf({
      entity: parseAddress(this.address),
      tuples: [{ id: 't1', status: { basic, extensions: [] }, extensions: [], notes: [] }],
      notes: note === undefined ? [] : [{ text: note }],
      extensions: [],
    });
    const fresh = this.#publisher === undefined;
    // The clock keeps the version above what this user's other devices published (section 7.4).
    const object = this.#presencePublisher().publish(utf8(pidf), Date.now());
    await this.#save();
    if (fresh) await this.#sharePresence();
    await this.#request(Frames.PUBLISH, { object });
  }

  /**
   * A rotation: the new key to every remaining watcher device (with bundles for those a sibling
   * authorized), then the new state to this user's other devices.
   */
  async #rotatePresence(): Promise<void> {
    const publisher = this.#presencePublisher();
    const users = new Set(publisher.watchers.map((w) => w.slice(0, w.lastIndexOf('/'))));
    const targets: SealTarget[] = [];
    for (const user of users) {
      try {
        targets.push(...(await this.#targets(user)));
      } catch (e) {
        if (!isImppError(e)) throw e; // that user's devices get the key when reachable again
      }
    }
    const rotated = publisher.rotate(targets);
    await this.#save();
    for (const s of rotated) await this.#request(Frames.SEND, { object: s.bytes });
    await this.#sharePresence();
  }

  /** Seals this device's presence state for this user's other listed devices (or `only`). */
  async #sharePresence(only?: string): Promise<void> {
    const publisher = this.#publisher;
    if (publisher === undefined) return;
    const targets = (await this.#targets(this.address)).filter(
      (t) => only === undefined || canonicalDevice(t.to) === canonicalDevice(only),
    );
    const denials = this.#denials.records();
    const sealed = targets.map((t) => publisher.shareWith(t, denials));
    await this.#save();
    for (const s of sealed) await this.#request(Frames.SEND, { object: s.bytes });
  }

  /** This user’s other devices on its verified list, each with a key that passes #checkKey. */
  async #siblings(): Promise<Map<string, Uint8Array>> {
    const siblings = new Map<string, Uint8Array>();
    for (const [name, key] of await this.#listedDevices(this.address)) {
      if (name !== this.device && this.#checkKey(name, key)) siblings.set(name, key);
    }
    return siblings;
  }

  /**
   * A presence state from another device of this user, taken only if that device is on this
   * user's verified device list: the server can neither add a watcher nor keep a revoked one.
   */
  async #mergePresence(received: ReceivedPresenceSync): Promise<void> {
    try {
      const siblings = await this.#siblings();
      // The denial records are taken only once the sender is known to be a listed sibling (the
      // publisher checks it first and throws otherwise).
      let outcome: PresenceMerge = 'done';
      if (this.#publisher === undefined) {
        this.#publisher = PresencePublisher.fromSibling(this.#sealDevice(), received, siblings);
      } else {
        outcome = this.#publisher.merge(received, siblings);
      }
      this.#denials.merge(received.denials);
      await this.#save();
      if (outcome === 'rotate') await this.#rotatePresence();
      else if (outcome === 'reply' || this.#denials.aheadOf(received.denials)) {
        // The sender lacks a denial decision of this device's: it catches up from the reply.
        await this.#sharePresence(received.senderDevice);
      }
    } finally {
      received.key.wipe();
    }
  }

  /** Watchers and subscriptions of this user, as the server holds them. */
  async subscriptions(): Promise<{
    watchers: { watcher: string; state: string }[];
    subscriptions: { presentity: string; state: string }[];
  }> {
    const r = await this.#request(Frames.LIST_WATCHERS, {});
    return {
      watchers: (r.watchers as CborValue[]).map((w) => {
        const b = asBody(w);
        return { watcher: str(b.watcher), state: str(b.state) };
      }),
      subscriptions: (r.subscriptions as CborValue[]).map((w) => {
        const b = asBody(w);
        return { presentity: str(b.presentity), state: str(b.state) };
      }),
    };
  }

  /** The watch of `presentity`, its devices refreshed from the verified device list. */
  async #watch(presentity: string): Promise<PresenceWatch> {
    let watch = this.#watches.get(presentity);
    const devices = new Map<string, Uint8Array>();
    for (const [name, key] of await this.#listedDevices(presentity)) {
      if (this.#checkKey(name, key)) devices.set(name.slice(presentity.length + 1), key);
    }
    if (watch === undefined) {
      watch = new PresenceWatch(presentity, devices);
      this.#watches.set(presentity, watch);
    } else {
      watch.setDevices(devices);
    }
    return watch;
  }

  async #presence(object: Uint8Array): Promise<void> {
    let presentity: string;
    let publisherDevice: string;
    try {
      const h = readEnvelopeHeader(object);
      if (h.kind !== 'presence') return;
      presentity = h.presentity;
      publisherDevice = h.deviceId;
    } catch {
      return;
    }
    if (presentity === this.address) {
      // Another device of this user published: the next version from here goes above it.
      const publisher = this.#publisher;
      if (publisher === undefined) return;
      if (publisher.observe(object, await this.#siblings())) await this.#save();
      return;
    }
    let watch = this.#watches.get(presentity);
    const saved = this.#presenceKeys.filter((k) => k.presentity === presentity);
    if (watch === undefined && saved.length > 0) {
      // Restarted: rebuild the watch from the keys kept in the state file.
      const restored = await this.#watch(presentity);
      for (const k of saved) {
        try {
          restored.installKey({ ...k, key: new SecretBytes(Uint8Array.from(k.key)) });
        } catch {
          // A key from a device no longer on the verified set is simply not used.
        }
      }
      watch = restored;
    }
    if (watch === undefined || watch.epochs.length === 0) {
      this.#stashedPresence.set(presentity, object); // the key may still be on its way
      return;
    }
    // Any listed device of the presentity may publish: one added since the watch last looked
    // at the list is verified against the list as it is now.
    if (!watch.hasDevice(publisherDevice)) watch = await this.#watch(presentity);
    try {
      const opened = watch.open(object, {
        [WEAKEN_SEAL]: { presenceRollbackCheck: this.#defences.presenceRollbackCheck },
      });
      this.#stashedPresence.delete(presentity);
      await this.#save(); // the accepted version survives a restart (rollback protection)
      const doc = parsePidf(opened.pidf);
      this.emit('presence', {
        presentity,
        basic: doc.tuples[0]?.status.basic,
        note: doc.notes[0]?.text,
        version: opened.version,
      });
    } catch (e) {
      if (isImppError(e, 'ERR_SEAL_OPEN_FAILED')) this.#stashedPresence.set(presentity, object);
    }
  }

  // ── Verification ───────────────────────────────────────────────────────────────────────────

  /**
   * The safety number between this user and `contact`, over the keys of both users' verified
   * device lists (the keys messages are sealed to).
   */
  async safetyNumber(contact: string): Promise<string> {
    const other = formatAddress(parseAddress(contact));
    const mine = await this.#listedDevices(this.address);
    const theirs = await this.#listedDevices(other);
    return formatSafetyNumber(
      safetyNumber(
        { address: parseAddress(this.address), identityKeys: [...mine.values()] },
        { address: parseAddress(other), identityKeys: [...theirs.values()] },
      ),
    );
  }

  /**
   * Fetches and verifies `address`'s signed device list: the signature, the address, and that it
   * extends the list verified before (no rollback, signed by a device of the previous list; kept
   * in the state file, so across restarts too). A first sight accepts a self-signed list (trust on first use; confirm with the
   * safety number). Throws `ERR_DEVICE_LIST_INVALID`.
   */
  async deviceList(
    address: string,
  ): Promise<{ counter: number; devices: string[]; added: string[]; removed: string[] }> {
    const canonical = formatAddress(parseAddress(address));
    const previous = this.#lists.get(canonical);
    const reply = await this.#request(Frames.GET_DEVICES, { address: canonical });
    const list = await this.#acceptList(canonical, reply.deviceList);
    const before = new Set(previous?.devices.map((d) => d.deviceId));
    const after = new Set(list.devices.map((d) => d.deviceId));
    return {
      counter: list.counter,
      devices: [...after],
      added: [...after].filter((d) => !before.has(d)),
      removed: [...before].filter((d) => !after.has(d)),
    };
  }

  /**
   * Adds another device of this account (already registered, e.g. a new phone) to the signed
   * device list: this device signs the next list (counter + 1) naming every device on the current
   * list plus `deviceId` with the key the directory shows for it. Compare that key with the new
   * device (e.g. its safety number) before calling this. Resolves with the new counter.
   */
  async addDevice(deviceId: string): Promise<number> {
    const reply = await this.#request(Frames.GET_DEVICES, { address: this.address });
    // The list to extend is verified first: signing on top of a list the server made up would
    // launder the server's ghost device into a list signed by this device.
    const current = await this.#acceptList(this.address, reply.deviceList);
    if (!current.devices.some((d) => d.deviceId === this.deviceId)) {
      throw new ImppError('ERR_NOT_AUTHORIZED', 'this device is not on the current device list');
    }
    const entry = (reply.devices as CborValue[])
      .map((raw) => asBody(raw))
      .find((d) => d.deviceId === deviceId);
    if (entry === undefined || !(entry.identityKey instanceof Uint8Array)) {
      throw new ImppError('ERR_NOT_FOUND', 'no registered device with that id');
    }
    const identity = this.#identity as SigningKeyPair;
    const next = createDeviceList({
      address: parseAddress(this.address),
      counter: current.counter + 1,
      devices: [
        ...current.devices.filter((d) => d.deviceId !== deviceId),
        { deviceId, identityKey: entry.identityKey },
      ],
      signer: { deviceId: this.deviceId, secretKey: identity.secretKey },
    });
    const r = await this.#request(Frames.PUT_DEVICE_LIST, { deviceList: next.bytes });
    // The new device publishes under the shared presence key and knows the approved watchers.
    await this.#sharePresence(`${this.address}/${deviceId}`);
    return r.counter as number;
  }

  /**
   * Removes another device of this account (lost, stolen, retired) from the signed device list:
   * this device signs the next list without it. The server then revokes it: its live session
   * ends, it cannot bind again, its queue is deleted (T21, T42). Resolves with the new counter.
   */
  async removeDevice(deviceId: string): Promise<number> {
    if (deviceId === this.deviceId) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'a device cannot remove itself');
    }
    const reply = await this.#request(Frames.GET_DEVICES, { address: this.address });
    const current = await this.#acceptList(this.address, reply.deviceList);
    if (!current.devices.some((d) => d.deviceId === this.deviceId)) {
      throw new ImppError('ERR_NOT_AUTHORIZED', 'this device is not on the current device list');
    }
    if (!current.devices.some((d) => d.deviceId === deviceId)) {
      throw new ImppError('ERR_NOT_FOUND', 'no device with that id on the device list');
    }
    const identity = this.#identity as SigningKeyPair;
    const next = createDeviceList({
      address: parseAddress(this.address),
      counter: current.counter + 1,
      devices: current.devices.filter((d) => d.deviceId !== deviceId),
      signer: { deviceId: this.deviceId, secretKey: identity.secretKey },
    });
    const r = await this.#request(Frames.PUT_DEVICE_LIST, { deviceList: next.bytes });
    // The removed device held the shared presence key: rotate it away from that device.
    if (this.#publisher !== undefined) await this.#rotatePresence();
    return r.counter as number;
  }

  /**
   * Checks that the domain logged this device's enrolment: fetches a signed tree head, checks it
   * extends the last one this client trusted (no fork, no rollback), checks the inclusion proof
   * of the enrolment entry, and that the logged statement is this device's, signed by the domain.
   * Throws `ERR_KEYLOG_INCONSISTENT`, `ERR_KEYLOG_PROOF_INVALID` or `ERR_ENROLMENT_INVALID`.
   */
  async verifyEnrolment(): Promise<{ index: number; treeSize: number }> {
    const domainKey = this.options.domainKey;
    if (domainKey === undefined) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'domainKey is needed to verify the enrolment');
    }
    const own = this.#enrolment;
    if (own === null) throw new ImppError('ERR_NOT_FOUND', 'this device has no enrolment yet');
    const verifier = new KeyLogVerifier({
      domain: parseAddress(this.address).domain,
      logKey: this.options.logKey ?? domainKey,
      ...(this.#trustedHead === null ? {} : { trusted: this.#trustedHead }),
    });
    const r = await this.#request(Frames.GET_LOG, {
      since: verifier.trusted?.treeSize ?? 0,
      index: own.index,
    });
    const head = verifier.update(r.head as Uint8Array, r.consistency as Uint8Array[]);
    const entry = r.entry as Uint8Array;
    verifier.verifyEntry(entry, own.index, r.inclusion as Uint8Array[]);
    const statement = statementFromLogEntry(entry);
    const verified = verifyEnrolmentStatement(statement, {
      domainKey,
      address: parseAddress(this.address),
    });
    if (
      verified.statement.deviceId !== this.deviceId ||
      !sameKey(verified.statement.identityKey, this.identityKey) ||
      !sameKey(statement, own.statement)
    ) {
      throw new ImppError('ERR_ENROLMENT_INVALID', 'the logged enrolment is not this device’s');
    }
    this.#trustedHead = head.bytes;
    await this.#save();
    return { index: own.index, treeSize: head.treeSize };
  }

  /**
   * The last key-log tree head this device verified (signed by the log key), for comparing with
   * contacts (see {@link compareTreeHead}); `undefined` before the first verification.
   */
  get treeHead(): Uint8Array | undefined {
    return this.#trustedHead === null ? undefined : Uint8Array.from(this.#trustedHead);
  }

  /**
   * Checks a tree head that a contact's device verified (handed over in a sealed message or out
   * of band) against this device's view of the key log (docs/security-model.md T33, split view).
   * The server's current head must be proven consistent with this device's trusted head and with
   * the contact's, and both answers must be the same head: a server that shows the two devices
   * different histories cannot do that. On success this device trusts the server's current head.
   *
   * Throws `ERR_KEYLOG_INCONSISTENT` when the heads cannot be reconciled (a fork: keep both heads,
   * they prove it), `ERR_KEYLOG_PROOF_INVALID` when `head` is not signed by the log key.
   * Only heads of this device's own domain; gossip between contacts is the app's to carry.
   *
   * @example
   * ```ts
   * await alice.verifyEnrolment();
   * // bob.treeHead reached Alice inside a sealed message or out of band:
   * await alice.compareTreeHead(headFromBob); // throws ERR_KEYLOG_INCONSISTENT on a split view
   * ```
   */
  async compareTreeHead(head: Uint8Array): Promise<{ treeSize: number }> {
    const domainKey = this.options.domainKey;
    if (domainKey === undefined) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'domainKey is needed to compare tree heads');
    }
    const base = {
      domain: parseAddress(this.address).domain,
      logKey: this.options.logKey ?? domainKey,
    };
    const theirs = new KeyLogVerifier({ ...base, trusted: head });
    const theirSize = theirs.trusted?.treeSize ?? 0;
    // A busy log may grow between the two requests; a few rounds tell that from a fork.
    for (let round = 0; round < 3; round++) {
      const mine = new KeyLogVerifier({
        ...base,
        ...(this.#trustedHead === null ? {} : { trusted: this.#trustedHead }),
      });
      const a = await this.#request(Frames.GET_LOG, { since: mine.trusted?.treeSize ?? 0 });
      const current = mine.update(a.head as Uint8Array, a.consistency as Uint8Array[]);
      if (!this.#defences.treeHeadCheck) return { treeSize: current.treeSize };
      if (current.treeSize < theirSize) {
        throw new ImppError(
          'ERR_KEYLOG_INCONSISTENT',
          'the contact holds a larger tree than the server shows this device (fork)',
        );
      }
      const b = await this.#request(Frames.GET_LOG, { since: theirSize });
      const other = new KeyLogVerifier({ ...base, trusted: head });
      const extended = other.update(b.head as Uint8Array, b.consistency as Uint8Array[]);
      if (extended.treeSize !== current.treeSize) continue;
      if (!sameKey(extended.rootHash, current.rootHash)) {
        throw new ImppError(
          'ERR_KEYLOG_INCONSISTENT',
          'two different roots for the same tree size (fork)',
        );
      }
      this.#trustedHead = current.bytes;
      await this.#save();
      return { treeSize: current.treeSize };
    }
    throw new ImppError(
      'ERR_KEYLOG_INCONSISTENT',
      'the contact’s tree head could not be proven consistent with this device’s',
    );
  }

  /**
   * Checks another domain's key log as this device last saw it: fetches that domain's signed tree
   * head through the home server (GET_LOG with `domain`, answered by that domain over the
   * federation), verifies it under the key pinned for it in `domainKeys`, and that it extends
   * the last head of that domain this device trusted (no fork, no rollback: the same check as
   * for the home log, T33). On success the new head is trusted (persisted). The home server only
   * relays the answer: it cannot forge a head, which only a holder of that domain's key can sign.
   * For the home domain this is the same check against its own `logKey`/`domainKey`.
   *
   * Throws `ERR_KEYLOG_INCONSISTENT` on a fork or rollback, `ERR_KEYLOG_PROOF_INVALID` on a head
   * not signed by the pinned key (or a malformed answer), `ERR_INVALID_ARGUMENT` for a domain
   * with no pinned key, and the federation's errors (`ERR_DOMAIN_NOT_SERVED`, `ERR_TIMEOUT`).
   *
   * @example
   * ```ts
   * const alice = new ImppClient({ ..., domainKeys: { 'b.example': bDomainKey } });
   * await alice.verifyDomainLog('b.example'); // { treeSize: 12 }
   * ```
   */
  async verifyDomainLog(domain: string): Promise<{ treeSize: number }> {
    const name = normalizeDomain(domain);
    const own = name === parseAddress(this.address).domain;
    const logKey = own
      ? (this.options.logKey ?? this.options.domainKey)
      : this.#domainKeys.get(name);
    if (logKey === undefined) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `no key is pinned for ${name}`);
    }
    const trusted = own ? this.#trustedHead : (this.#domainHeads.get(name) ?? null);
    const verifier = new KeyLogVerifier({
      domain: name,
      logKey,
      ...(trusted === null ? {} : { trusted }),
    });
    const since = verifier.trusted?.treeSize ?? 0;
    const ask = (from: number): Promise<Body> =>
      this.#request(Frames.GET_LOG, own ? { since: from } : { domain: name, since: from });
    let r: Body;
    try {
      r = await ask(since);
    } catch (e) {
      // A log smaller than the trusted head refuses `since` (client protocol §5.6): ask for its
      // head alone, so that a rollback shows as one rather than as a refused request.
      if (since === 0 || !isImppError(e, 'ERR_PROTOCOL')) throw e;
      const current = await ask(0);
      if (!(current.head instanceof Uint8Array)) throw e;
      const size = verifyTreeHead(current.head, { domain: name, logKey }).treeSize;
      if (size >= since) throw e;
      r = current;
    }
    if (!(r.head instanceof Uint8Array) || !Array.isArray(r.consistency)) {
      throw new ImppError('ERR_KEYLOG_PROOF_INVALID', 'the key-log answer is malformed');
    }
    const head = verifier.update(r.head, r.consistency as Uint8Array[]);
    if (own) this.#trustedHead = head.bytes;
    else this.#domainHeads.set(name, head.bytes);
    await this.#save();
    return { treeSize: head.treeSize };
  }

  /**
   * The last head of `domain`'s key log this device verified (see {@link verifyDomainLog}), for
   * gossip with contacts of that domain; `undefined` before the first verification.
   */
  domainTreeHead(domain: string): Uint8Array | undefined {
    const name = normalizeDomain(domain);
    if (name === parseAddress(this.address).domain) return this.treeHead;
    const head = this.#domainHeads.get(name);
    return head === undefined ? undefined : Uint8Array.from(head);
  }

  // ── State ──────────────────────────────────────────────────────────────────────────────────

  #sealDevice(): SealDevice {
    if (this.#device === undefined) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        'connect() first: the device state is not loaded',
      );
    }
    return this.#device;
  }

  #presencePublisher(): PresencePublisher {
    this.#publisher ??= new PresencePublisher(this.#sealDevice());
    return this.#publisher;
  }

  async #loadState(): Promise<void> {
    if (this.#device !== undefined) return;
    const bytes = await this.options.state.load();
    if (bytes === undefined) {
      this.#seed = randomBytes(32);
      this.#identity = generateSigningKeyPair(this.#seed);
      this.#device = SealDevice.create(this.device, {
        identity: this.#identity,
        oneTimePrekeys: 50,
      });
      await this.#save();
      return;
    }
    const s = decodeState(bytes);
    if (s.address !== this.address || s.deviceId !== this.deviceId) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'the state file belongs to another device');
    }
    this.#seed = s.seed;
    this.#identity = generateSigningKeyPair(s.seed);
    this.#device = SealDevice.restore(s.device);
    this.#registered = s.registered;
    this.#known = new Map(s.known);
    this.#enrolment = s.enrolment;
    this.#trustedHead = s.trustedHead;
    for (const [domain, head] of s.domainHeads) this.#domainHeads.set(domain, head);
    this.#uploadedPrekeyId = s.uploadedPrekeyId;
    this.#presenceKeys = [...s.presenceKeys];
    this.#denials = new Denials(s.denials);
    for (const [address, bytes] of s.lists) {
      const list = decodeDeviceList(bytes);
      if (formatAddress(list.address) !== address) {
        throw new ImppError(
          'ERR_STORAGE',
          'client state: a device list is filed under another address',
        );
      }
      this.#lists.set(address, list);
    }
    for (const [presentity, bytes] of s.watches) {
      const watch = PresenceWatch.restore(bytes);
      if (watch.presentity !== presentity) {
        throw new ImppError(
          'ERR_STORAGE',
          'client state: a presence watch is filed under another address',
        );
      }
      this.#watches.set(presentity, watch);
    }
    if (s.publisher !== null)
      this.#publisher = PresencePublisher.restore(this.#device, s.publisher);
  }

  async #save(): Promise<void> {
    await this.options.state.save(
      encodeState({
        address: this.address,
        deviceId: this.deviceId,
        seed: this.#seed as Uint8Array,
        device: this.#sealDevice().serialise(),
        registered: this.#registered,
        known: this.#known,
        publisher: this.#publisher?.serialise() ?? null,
        presenceKeys: this.#presenceKeys,
        enrolment: this.#enrolment,
        trustedHead: this.#trustedHead,
        domainHeads: this.#domainHeads,
        uploadedPrekeyId: this.#uploadedPrekeyId,
        lists: new Map([...this.#lists].map(([a, l]) => [a, l.bytes])),
        watches: new Map([...this.#watches].map(([p, w]) => [p, w.serialise()])),
        denials: this.#denials.records(),
      }),
    );
  }
}

function asBody(v: CborValue): Body {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw new ImppError('ERR_PROTOCOL', 'expected a map');
  }
  return v as Body;
}

/** A text field from the server, or ERR_PROTOCOL. */
function str(v: CborValue | undefined): string {
  if (typeof v !== 'string') throw new ImppError('ERR_PROTOCOL', 'expected text from the server');
  return v;
}

/** The directory part of a GET_DEVICES answer (unverified: the server's word). */
function directoryOf(reply: Body): DirectoryDevice[] {
  if (!Array.isArray(reply.devices)) throw new ImppError('ERR_PROTOCOL', 'expected a device array');
  return (reply.devices as readonly CborValue[]).map((raw) => {
    const d = asBody(raw);
    const key = d.identityKey;
    if (!(key instanceof Uint8Array)) throw new ImppError('ERR_PROTOCOL', 'expected a key');
    return {
      deviceId: str(d.deviceId),
      identityKey: key,
      enrolment: d.enrolment instanceof Uint8Array ? d.enrolment : undefined,
    };
  });
}

function errorCode(v: CborValue | undefined): ImppErrorCode {
  return typeof v === 'string' && v.startsWith('ERR_') ? (v as ImppErrorCode) : 'ERR_PROTOCOL';
}

/**
 * A bundle from one entry of a GET_BUNDLES answer, checked by the seal layer (signature
 * included). Exported for the threat suite, which fetches bundles at the protocol level.
 *
 * @throws ImppError when the entry is not a well-formed, correctly signed bundle.
 * @example
 * ```ts
 * const bundle = bundleFromAnswer(asBody(reply.bundles[0]));
 * ```
 */
export function bundleFromAnswer(b: Body): PrekeyBundle {
  const spk = asBody(b.signedPrekey ?? null);
  const otk = b.oneTimePrekey === undefined ? undefined : asBody(b.oneTimePrekey);
  return decodePrekeyBundle(
    encodePrekeyBundle({
      device: str(b.device),
      identityKey: b.identityKey as Uint8Array,
      signedPrekey: {
        id: spk.id as number,
        publicKey: spk.publicKey as Uint8Array,
        signature: spk.signature as Uint8Array,
      },
      ...(otk === undefined
        ? {}
        : { oneTimePrekey: { id: otk.id as number, publicKey: otk.publicKey as Uint8Array } }),
    }),
  );
}
