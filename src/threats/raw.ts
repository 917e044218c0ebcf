/**
 * The suite's one protocol-level client: it speaks the client protocol's frames directly
 * (docs/protocol.md, "Client protocol"), so a threat can send what the SDK never would and see
 * every frame the server sends (pushes included). It logs in with SCRAM as the SDK does (and can
 * record or rewrite each SASL message), and binds a device; everything after that is up to the
 * caller. The access attackers' registered device (attackers/watchers.ts) builds on it.
 */
import { authenticate, type ClientSaslTransport, type ServerReply } from '../auth/client.js';
import { scramClient, type ChannelBindingPolicy } from '../auth/scram/client.js';
import type { AuthWireFailure } from '../auth/types.js';
import { generateSigningKeyPair, sign, type SigningKeyPair } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import { bindingTranscript, ClientFrame } from '../protocol/frames.js';
import type { CborValue } from '../transport/cbor-strict.js';
import type { Connection, ConnectionCloseInfo } from '../transport/connection.js';
import type { Frame } from '../transport/frame-codec.js';
import { connectTls, type TlsConnectOptions } from '../transport/tls-client.js';
import { parseAddress } from '../trust/address.js';
import type { Target, TestAccount, ThreatContext } from './types.js';

/** A frame body (a CBOR map with text keys). */
export type RawBody = { readonly [key: string]: CborValue };

/** An answer: RESULT fields (without the id), or the ERROR's code and message. */
export type RawAnswer =
  | { readonly ok: true; readonly body: RawBody }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** How long one answer or one expected frame is waited for by default, in ms. */
export const RAW_WAIT_MS = 5_000;

const SASL_ANSWERS: readonly number[] = [
  ClientFrame.AUTH_CHALLENGE,
  ClientFrame.AUTH_SUCCESS,
  ClientFrame.AUTH_FAILURE,
];

/** What {@link RawClient.login} saw. */
export interface SaslTranscript {
  readonly mechanism: string;
  /** Server challenges in order (SCRAM: server-first is the first non-empty one). */
  readonly challenges: Uint8Array[];
  /** Client messages in order (the initial response first). */
  readonly sent: Uint8Array[];
  readonly outcome: 'success' | AuthWireFailure | 'client-refused';
  /** AUTH_SUCCESS body (nonce for device binding) on success. */
  readonly success: RawBody | undefined;
}

/** How {@link RawClient.login} logs in. */
export interface LoginOptions {
  /** The user name (the local part of the address). */
  readonly user: string;
  readonly password: string;
  /** Default `'require'`, as the SDK. */
  readonly channelBinding?: ChannelBindingPolicy;
  /** The mechanisms offered, when the AUTH_OFFER was already taken. */
  readonly offered?: readonly string[];
  /** Called with each client message before it is sent; may replace it. */
  readonly rewrite?: (message: Uint8Array, step: number) => Uint8Array;
}

/** TLS options for `target`: its CA and server name. */
export function targetTls(target: Target): TlsConnectOptions {
  return {
    host: target.host,
    port: target.port,
    ca: target.ca,
    servername: target.servername ?? target.domain,
  };
}

/** `body` as a map, or ERR_PROTOCOL. */
export function asBody(value: CborValue): RawBody {
  if (
    value === null ||
    typeof value !== 'object' ||
    Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    throw new ImppError('ERR_PROTOCOL', 'frame body is not a map');
  }
  return value as RawBody;
}

/** A text field of an answer, or '' when it is not text. */
export function textOf(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/**
 * One raw connection. Every frame the server sends is kept in {@link frames} until taken.
 *
 * @example
 * ```ts
 * const raw = await RawClient.open(ctx);
 * await raw.authenticate(ctx.accounts[0]);
 * await raw.bind('attacker');
 * const answer = await raw.request(ClientFrame.GET_DEVICES, { address: 'bob@example.org' });
 * ```
 */
export class RawClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<ConnectionCloseInfo>;
  /** The authenticated address, from AUTH_SUCCESS. */
  address = '';
  /** The bound device id. */
  deviceId = '';
  /** The server's binding nonce, from AUTH_SUCCESS. */
  nonce: Uint8Array | undefined;
  /** The identity key the device was bound with. */
  protected identity: SigningKeyPair | undefined;
  #isClosed = false;
  #waiters: (() => void)[] = [];
  #nextId = 1;

  constructor(readonly conn: Connection) {
    conn.on('frame', (f: Frame) => {
      this.frames.push(f);
      this.#wake();
    });
    this.closed = new Promise((resolve) => {
      conn.on('close', (info: ConnectionCloseInfo) => {
        this.#isClosed = true;
        resolve(info);
        this.#wake();
      });
    });
  }

  /** Connects to `target` over TLS (its CA and server name unless `options` say otherwise). */
  static async connect(
    target: Target,
    options: Partial<TlsConnectOptions> = {},
  ): Promise<RawClient> {
    return new RawClient(await connectTls({ ...targetTls(target), ...options }));
  }

  /** {@link connect} to `target` (the threat's); the connection is closed after the threat. */
  static async open(ctx: ThreatContext, target: Target = ctx.target): Promise<RawClient> {
    const raw = await RawClient.connect(target);
    ctx.defer(() => {
      raw.close();
    });
    return raw;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** The next frame of one of `types` (others stay queued), or `undefined` at close/timeout. */
  async next(types: readonly number[], ms = RAW_WAIT_MS): Promise<Frame | undefined> {
    try {
      return await this.#takeWhere((f) => types.includes(f.type), ms);
    } catch {
      return undefined;
    }
  }

  /** The body of the next frame of `type` (others stay queued); throws at close or timeout. */
  async take(type: number, ms = RAW_WAIT_MS): Promise<RawBody> {
    return asBody((await this.#takeWhere((f) => f.type === type, ms)).body);
  }

  /** Frames of `type` received and not taken (pushes are counted here). */
  count(type: number): number {
    return this.frames.filter((f) => f.type === type).length;
  }

  /** The mechanisms of the AUTH_OFFER. */
  async offer(): Promise<string[]> {
    const f = await this.next([ClientFrame.AUTH_OFFER]);
    const m = (f?.body as RawBody | undefined)?.mechanisms;
    if (!Array.isArray(m)) throw new ImppError('ERR_PROTOCOL', 'no AUTH_OFFER from the target');
    return m.filter((x): x is string => typeof x === 'string');
  }

  /**
   * A SCRAM login recording every message; never throws for a refused login (the transcript's
   * `outcome` says what happened).
   */
  async login(options: LoginOptions): Promise<SaslTranscript> {
    const record = {
      mechanism: '',
      challenges: [] as Uint8Array[],
      sent: [] as Uint8Array[],
      failure: undefined as AuthWireFailure | undefined,
      success: undefined as RawBody | undefined,
    };
    try {
      await this.#sasl(options, record);
    } catch {
      // The outcome below says what happened.
    }
    return {
      mechanism: record.mechanism,
      challenges: record.challenges,
      sent: record.sent,
      outcome: record.success !== undefined ? 'success' : (record.failure ?? 'client-refused'),
      success: record.success,
    };
  }

  /** SCRAM-SHA-256-PLUS (channel binding required) as `account`; throws when refused. */
  authenticate(account: TestAccount, password = account.password): Promise<void> {
    return this.auth(parseAddress(account.address).user, password);
  }

  /** {@link authenticate} by user name (the local part); throws the login's error when refused. */
  async auth(user: string, password: string): Promise<void> {
    await this.#sasl(
      { user, password },
      { mechanism: '', challenges: [], sent: [], failure: undefined, success: undefined },
    );
  }

  /** Resolves at the next frame (or close); rejects after `ms` or when already closed. */
  wait(ms = RAW_WAIT_MS): Promise<void> {
    if (this.#isClosed || this.conn.state === 'closed') {
      return Promise.reject(new ImppError('ERR_CONNECTION_CLOSED', 'connection closed'));
    }
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        reject(new ImppError('ERR_TIMEOUT', `no frame within ${ms} ms`));
      }, ms);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /**
   * Binds `deviceId` with `identity` (default: a fresh key) and resolves with the BOUND body
   * (`registered` says whether the device exists already). Throws with the server's reason.
   */
  async bind(
    deviceId: string,
    identity: SigningKeyPair = generateSigningKeyPair(),
  ): Promise<RawBody> {
    if (this.nonce === undefined) throw new ImppError('ERR_PROTOCOL', 'authenticate first');
    this.identity = identity;
    this.deviceId = deviceId;
    const signature = sign(
      identity.secretKey,
      bindingTranscript({
        exporter: this.conn.channelBinding(),
        nonce: this.nonce,
        address: this.address,
        deviceId,
        identityKey: identity.publicKey,
      }),
    );
    this.conn.send(ClientFrame.BIND, { deviceId, identityKey: identity.publicKey, signature });
    return this.take(ClientFrame.BOUND);
  }

  /** Sends a request with a fresh id and waits for its RESULT or ERROR; throws at close/timeout. */
  async request(type: number, body: RawBody, ms = RAW_WAIT_MS): Promise<RawAnswer> {
    const id = this.#nextId++;
    this.conn.send(type, { ...body, id });
    const f = await this.#takeWhere(
      (x) =>
        (x.type === ClientFrame.RESULT || x.type === ClientFrame.ERROR) && asBody(x.body).id === id,
      ms,
    );
    const b = asBody(f.body);
    if (f.type === ClientFrame.ERROR) {
      return { ok: false, code: textOf(b.code), message: textOf(b.message) };
    }
    return { ok: true, body: Object.fromEntries(Object.entries(b).filter(([k]) => k !== 'id')) };
  }

  close(): void {
    this.conn.close();
  }

  async #sasl(
    options: LoginOptions,
    record: {
      mechanism: string;
      challenges: Uint8Array[];
      sent: Uint8Array[];
      failure: AuthWireFailure | undefined;
      success: RawBody | undefined;
    },
  ): Promise<void> {
    const offered = options.offered ?? (await this.offer());
    const reply = async (): Promise<ServerReply> => {
      const f = await this.next(SASL_ANSWERS);
      if (f === undefined) throw new ImppError('ERR_CONNECTION_CLOSED', 'no answer to the login');
      const b = asBody(f.body);
      if (f.type === ClientFrame.AUTH_CHALLENGE) {
        record.challenges.push(b.data as Uint8Array);
        return { type: 'challenge', challenge: b.data as Uint8Array };
      }
      if (f.type === ClientFrame.AUTH_SUCCESS) {
        record.success = b;
        this.nonce = b.nonce as Uint8Array;
        this.address = textOf(b.address);
        const ad = b.additionalData;
        return { type: 'success', additionalData: ad instanceof Uint8Array ? ad : null };
      }
      record.failure = b.failure as AuthWireFailure;
      return { type: 'failure', failure: record.failure };
    };
    const out = (data: Uint8Array | null): Uint8Array | null => {
      if (data === null) return null;
      const d = options.rewrite?.(data, record.sent.length) ?? data;
      record.sent.push(d);
      return d;
    };
    const transport: ClientSaslTransport = {
      start: (mechanism, initial) => {
        record.mechanism = mechanism;
        this.conn.send(ClientFrame.AUTH_START, { mechanism, initial: out(initial) });
        return reply();
      },
      respond: (data) => {
        this.conn.send(ClientFrame.AUTH_RESPONSE, { data: out(data) });
        return reply();
      },
    };
    const policy = options.channelBinding ?? 'require';
    await authenticate(
      transport,
      scramClient({ username: options.user, password: options.password, channelBinding: policy }),
      offered,
      { secure: true, tlsVersion: 'TLSv1.3', tlsExporter: this.conn.channelBinding() },
      { requireChannelBinding: policy === 'require' },
    );
  }

  async #takeWhere(match: (f: Frame) => boolean, ms: number): Promise<Frame> {
    const until = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0] as Frame;
      if (this.#isClosed || this.conn.state === 'closed') {
        const info = await this.closed;
        throw info.error ?? new ImppError('ERR_CONNECTION_CLOSED', 'connection closed');
      }
      const left = until - Date.now();
      if (left <= 0) throw new ImppError('ERR_TIMEOUT', 'no answer from the target');
      await this.wait(left).catch(() => undefined);
    }
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}
