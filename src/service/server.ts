/**
 * The impp service for one domain: accepts connections over TLS and over WebSocket-on-TLS (the
 * same frames, the same authentication, channel binding from the same TLS exporter), runs one
 * {@link DeviceSession} per connection, and routes sealed objects between devices through the
 * store. It sees only envelope headers (src/seal/header.ts), never content, and never a
 * message's sender.
 */
import type { AddressInfo } from 'node:net';
import type { Authenticator } from '../auth/server.js';
import type { SigningKeyPair } from '../crypto/index.js';
import { TlsTransportServer } from '../transport/tls-server.js';
import type { TransportLimits } from '../transport/limits.js';
import type { Connection, ConnectionCloseInfo } from '../transport/connection.js';
import {
  WEAKEN_TRANSPORT,
  type ConnectionAttemptInfo,
  type TransportServerOptions,
} from '../transport/server-core.js';
import { type OriginCheck, WebSocketTransportServer } from '../transport/ws-server.js';
import { ImppError, isImppError } from '../errors.js';
import { KeyLog } from '../trust/keylog/log.js';
import { RequestAdmission } from './admission.js';
import { WEAKEN_SERVER, serverDefences, type ServerDefences } from './defences.js';
import { ServiceFederationInbound } from './federation-inbound.js';
import type { RoutablePeer, SessionHost } from './host.js';
import { SILENT_LOG, type ServiceLog } from './logging.js';
import { PROTOCOL_LIMITS } from './protocol.js';
import type { FederationInbound, RemoteRouter } from './remote.js';
import { DeviceSession } from './session.js';
import type { DeviceRepository, NewDevice, ServiceStore } from './store/types.js';

/** Options of {@link ImppServer}. */
export interface ImppServerOptions {
  /** The domain this server serves (canonical form). */
  readonly domain: string;
  readonly tls: { readonly key: string | Buffer; readonly cert: string | Buffer };
  /**
   * Ask clients for a TLS certificate (SASL EXTERNAL): the accepted issuers (PEM) and their CRLs.
   * Node's TLS validates the chain against exactly these anchors; a client without a certificate,
   * or with one that does not verify, still connects (other mechanisms keep working) and EXTERNAL
   * refuses it. Usually `clientCertificates` of `authenticatorFromConfig`. Default: not asked.
   */
  readonly clientCertificates?: {
    readonly ca: readonly string[];
    readonly crl?: readonly string[];
  };
  readonly store: ServiceStore;
  readonly authenticator: Authenticator;
  /** The domain's Ed25519 key: signs enrolment statements. */
  readonly domainKey: SigningKeyPair;
  /** Signs key-log tree heads; default: the domain key. */
  readonly logKey?: SigningKeyPair;
  readonly limits?: Partial<TransportLimits>;
  /** The WebSocket endpoint ({@link ImppServer.listenWebSocket}): URL path and origin policy. */
  readonly websocket?: { readonly path?: string; readonly checkOrigin?: OriginCheck };
  /**
   * Structured log of connections, bindings, registrations and failures: ids, device
   * addresses, remote IP addresses and error codes only (src/service/logging.ts). Default: none.
   */
  readonly log?: ServiceLog;
  readonly now?: () => number;
  /**
   * Token bucket for costly requests per session (bundle and key-log fetches); default
   * PROTOCOL_LIMITS.costlyRequestRate / costlyRequestBurst.
   */
  readonly costlyRequests?: { readonly rate: number; readonly burst: number };
  /**
   * Most pipelined requests (SEND, ACK) in flight across all sessions; past it, sessions stop
   * reading until a slot frees (src/service/admission.ts). Default
   * {@link DEFAULT_MAX_PIPELINED_REQUESTS}.
   */
  readonly maxPipelinedRequests?: number;
  /**
   * How often (ms) the server asks the providers which accounts changed (password, disabled),
   * possibly by another process such as `impp user passwd`, and ends the sessions that
   * authenticated before the change (T21). Bounds how long such a session survives. Default
   * {@link ACCOUNT_RECHECK_MS}.
   */
  readonly accountRecheckMs?: number;
  /**
   * The federation (docs/protocol.md, Server-to-server §5.5): what sessions ask for addresses of
   * other domains, usually `FederationNode.router`; the node is given
   * {@link ImppServer.federationInbound} in turn. Default: none, and every request about another
   * domain is answered `ERR_DOMAIN_NOT_SERVED`.
   */
  readonly remote?: RemoteRouter;
  /** Test-only (src/service/defences.ts): defences to switch off. Unreachable from the CLI. */
  readonly [WEAKEN_SERVER]?: Partial<ServerDefences>;
}

/**
 * Default of {@link ImppServerOptions.maxPipelinedRequests}: enough for a few hundred busy
 * sessions to fill large commit batches, small enough that one batch stays a few ms of work.
 */
export const DEFAULT_MAX_PIPELINED_REQUESTS = 2048;

/** Default of {@link ImppServerOptions.accountRecheckMs}. */
export const ACCOUNT_RECHECK_MS = 1000;

/**
 * Each poll asks for changes since the previous poll minus this much, so a change whose row
 * became visible late (another process's commit) or that raced an exchange still in progress
 * (the pre-authentication time-out is 30 s) is seen again; ending is idempotent.
 */
const ACCOUNT_CHANGE_LOOKBACK_MS = 60_000;

/** Where a listener listens; binds 127.0.0.1 unless told otherwise. */
export interface ImppListenOptions {
  readonly host?: string;
  /** 0 picks a free port; default the transport's default port. */
  readonly port?: number;
}

/**
 * The store as sessions see it when the server logs: the same store, with each successful
 * device registration reported (the session does the registering; this is where the server
 * can see it without reaching into the session).
 */
function observeRegistrations(
  store: ServiceStore,
  registered: (device: NewDevice) => void,
): ServiceStore {
  const devices = store.devices;
  const observed: DeviceRepository = {
    register: async (device) => {
      await devices.register(device);
      registered(device);
    },
    get: (address, deviceId) => devices.get(address, deviceId),
    list: (address, options) => devices.list(address, options),
    revoke: (address, deviceId, at) => devices.revoke(address, deviceId, at),
  };
  return new Proxy(store, {
    get(target, property) {
      if (property === 'devices') return observed;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}

/**
 * One domain's server.
 *
 * @example
 * ```ts
 * const server = new ImppServer({ domain, tls, store, authenticator, domainKey });
 * const { port } = await server.listen({ port: 0 });
 * ```
 */
export class ImppServer implements SessionHost {
  readonly domain: string;
  readonly store: ServiceStore;
  readonly authenticator: Authenticator;
  readonly domainKey: SigningKeyPair;
  readonly logKey: SigningKeyPair;
  readonly keyLog: KeyLog;
  readonly now: () => number;
  readonly costlyRequests: { readonly rate: number; readonly burst: number };
  readonly admission: RequestAdmission;
  readonly defences: ServerDefences;
  readonly remote?: RemoteRouter;
  readonly #options: ImppServerOptions;
  readonly #log: ServiceLog;
  #inbound: ServiceFederationInbound | undefined;
  readonly #transport: TlsTransportServer;
  #websocket: WebSocketTransportServer | undefined;
  /** Bound sessions by `user@domain/deviceId`; a newer session for a device replaces the older. */
  readonly #online = new Map<string, RoutablePeer>();
  /** Bound device names per address, so fan-out finds a user's sessions without a scan. */
  readonly #devicesOf = new Map<string, Set<string>>();
  readonly #sessions = new Map<DeviceSession, number>();
  /** Connection ids for logs: a counter, so that log lines of one connection can be grouped. */
  #nextConnectionId = 1;
  readonly #accountTimer: NodeJS.Timeout;
  /** Stops the queue's commit notices (see the constructor). */
  readonly #unwatchQueue: () => void;
  #accountsSince: number;
  #checkingAccounts = false;

  constructor(options: ImppServerOptions) {
    this.#options = options;
    this.#log = options.log ?? SILENT_LOG;
    this.domain = options.domain;
    this.store =
      options.log === undefined
        ? options.store
        : observeRegistrations(options.store, (d) => {
            this.#log.info({ device: `${d.address}/${d.deviceId}` }, 'device.registered');
          });
    this.authenticator = options.authenticator;
    this.domainKey = options.domainKey;
    this.logKey = options.logKey ?? options.domainKey;
    this.now = options.now ?? Date.now;
    this.costlyRequests = options.costlyRequests ?? {
      rate: PROTOCOL_LIMITS.costlyRequestRate,
      burst: PROTOCOL_LIMITS.costlyRequestBurst,
    };
    this.admission = new RequestAdmission(
      options.maxPipelinedRequests ?? DEFAULT_MAX_PIPELINED_REQUESTS,
    );
    this.defences = serverDefences(options[WEAKEN_SERVER]);
    if (options.remote !== undefined) this.remote = options.remote;
    this.keyLog = new KeyLog({ domain: options.domain, storage: options.store.keyLog });
    this.#transport = new TlsTransportServer(this.#transportOptions());
    this.#watch(this.#transport);
    this.#accountsSince = this.now() - ACCOUNT_CHANGE_LOOKBACK_MS;
    this.#accountTimer = setInterval(() => {
      void this.#endChangedAccounts();
    }, options.accountRecheckMs ?? ACCOUNT_RECHECK_MS);
    this.#accountTimer.unref();
    // Each durable enqueue reaches the recipient's session from memory; a session that is not
    // caught up reads the store instead (DeviceSession.pushStored).
    this.#unwatchQueue = options.store.queue.watch({
      stored: (object) => {
        this.#online.get(object.recipientDevice)?.pushStored(object);
      },
      unsure: (device) => {
        this.#online
          .get(device)
          ?.flush()
          .catch(() => undefined);
      },
    });
  }

  /**
   * Ends every session of an account whose credential or state changed after the session began
   * authenticating (security model §6.3, T21). Polling the providers rather than being told
   * covers changes made by another process (`impp user passwd|disable` writes the accounts
   * file); a session outlives such a change by at most one interval plus one lookup.
   */
  async #endChangedAccounts(): Promise<void> {
    if (this.#checkingAccounts) return;
    this.#checkingAccounts = true;
    const startedAt = this.now();
    try {
      const changes = await this.authenticator.changedAccounts(this.#accountsSince);
      this.#accountsSince = startedAt - ACCOUNT_CHANGE_LOOKBACK_MS;
      if (changes.length === 0 || this.#sessions.size === 0) return;
      const changedAt = new Map<string, number>();
      for (const c of changes)
        changedAt.set(c.address, Math.max(c.changedAt, changedAt.get(c.address) ?? 0));
      for (const session of this.#sessions.keys()) {
        const address = session.address;
        const began = session.authStartedAt;
        if (address === undefined || began === undefined) continue;
        const at = changedAt.get(address);
        if (at === undefined || at < began) continue;
        if (!this.defences.endSessionsOnRevocation) continue;
        this.#log.info({ conn: this.#sessions.get(session), address }, 'session.ended');
        session.revoked('the account changed (password or disabled): authenticate again');
      }
    } catch (e) {
      this.#log.warn({ code: isImppError(e) ? e.code : 'ERR_STORAGE' }, 'accounts.check.failed');
    } finally {
      this.#checkingAccounts = false;
    }
  }

  #transportOptions(): TransportServerOptions {
    const o = this.#options;
    const certs = o.clientCertificates;
    if (certs?.ca.length === 0) {
      // An empty list would make Node fall back to its public root store for client chains.
      throw new ImppError('ERR_CONFIG_INVALID', 'clientCertificates.ca lists no CA certificate');
    }
    return {
      key: o.tls.key,
      cert: o.tls.cert,
      ...(certs === undefined
        ? {}
        : {
            requestClientCert: true,
            ca: certs.ca,
            ...(certs.crl === undefined || certs.crl.length === 0 ? {} : { crl: certs.crl }),
          }),
      ...(o.limits === undefined ? {} : { limits: o.limits }),
      ...(this.defences.tls13Only ? {} : { [WEAKEN_TRANSPORT]: { tls13Only: false } }),
    };
  }

  #watch(transport: TlsTransportServer | WebSocketTransportServer): void {
    transport.on('connection', (conn: Connection) => {
      this.#accept(conn);
    });
    // Both are expected events of an exposed server (scanners, wrong certificates, floods):
    // logged for operators, never thrown.
    transport.on('failed', (info: ConnectionAttemptInfo) => {
      this.#log.info(
        { remote: info.remoteAddress, code: info.error.code, reason: info.error.message },
        'connection.failed',
      );
    });
    transport.on('refused', (info: ConnectionAttemptInfo) => {
      this.#log.warn({ remote: info.remoteAddress, code: info.error.code }, 'connection.refused');
    });
  }

  /**
   * Listens for TLS connections (length-prefixed frames) on 127.0.0.1 unless told otherwise.
   *
   * @example
   * ```ts
   * const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
   * ```
   */
  listen(options: ImppListenOptions = {}): Promise<AddressInfo> {
    return this.#transport.listen(options);
  }

  /**
   * Listens for WebSocket-over-TLS connections (path `/impp` unless configured, subprotocol
   * `impp.v1`) with the same certificate, limits and protocol as {@link listen}. Channel binding
   * (tls-exporter, RFC 9266) comes from the TLS connection under the WebSocket, so SCRAM-…-PLUS
   * and device binding work as on TLS.
   *
   * @example
   * ```ts
   * const { port } = await server.listenWebSocket({ port: 5331 }); // wss://127.0.0.1:5331/impp
   * ```
   */
  listenWebSocket(options: ImppListenOptions = {}): Promise<AddressInfo> {
    if (this.#websocket === undefined) {
      const ws = this.#options.websocket;
      this.#websocket = new WebSocketTransportServer({
        ...this.#transportOptions(),
        ...(ws?.path === undefined ? {} : { path: ws.path }),
        ...(ws?.checkOrigin === undefined ? {} : { checkOrigin: ws.checkOrigin }),
      });
      this.#watch(this.#websocket);
    }
    return this.#websocket.listen(options);
  }

  /**
   * Stops accepting and closes every connection with a CLOSE frame (`ERR_CONNECTION_CLOSED`,
   * "server shutting down"), waiting for each to end within the transport's close grace. The
   * store stays open: its owner closes it (after this resolves, so queued writes are flushed).
   */
  async close(): Promise<void> {
    clearInterval(this.#accountTimer);
    this.#unwatchQueue();
    await Promise.all([this.#transport.close(), this.#websocket?.close()]);
    for (const s of this.#sessions.keys()) s.connection.close();
  }

  /** @internal The server's structured log, for its sessions. */
  get log(): ServiceLog {
    return this.#log;
  }

  /**
   * What the federation calls when a peer domain delivers or asks something (./remote.ts,
   * {@link FederationInbound}), over this server's store and sessions. One instance per server.
   *
   * @example
   * ```ts
   * const server = new ImppServer({ ...options, remote: node.router });
   * node.attach(server.federationInbound);
   * ```
   */
  get federationInbound(): FederationInbound {
    this.#inbound ??= new ServiceFederationInbound(this);
    return this.#inbound;
  }

  /** Number of bound device sessions. */
  get onlineDevices(): number {
    return this.#online.size;
  }

  /** @internal The session of a bound device, if online. */
  online(device: string): RoutablePeer | undefined {
    return this.#online.get(device);
  }

  /** @internal Online sessions of every device of `address`. */
  onlineOf(address: string): RoutablePeer[] {
    const out: RoutablePeer[] = [];
    for (const device of this.#devicesOf.get(address) ?? []) {
      const s = this.#online.get(device);
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  #setOnline(device: string, session: RoutablePeer): void {
    this.#online.set(device, session);
    const address = device.slice(0, device.lastIndexOf('/'));
    let devices = this.#devicesOf.get(address);
    if (devices === undefined) this.#devicesOf.set(address, (devices = new Set()));
    devices.add(device);
  }

  #setOffline(device: string): void {
    this.#online.delete(device);
    const address = device.slice(0, device.lastIndexOf('/'));
    const devices = this.#devicesOf.get(address);
    devices?.delete(device);
    if (devices?.size === 0) this.#devicesOf.delete(address);
  }

  /** @internal A session finished device binding. */
  bound(device: string, session: RoutablePeer): void {
    const previous = this.#online.get(device);
    this.#setOnline(device, session);
    const conn = session instanceof DeviceSession ? this.#sessions.get(session) : undefined;
    this.#log.info({ conn, device, replaced: previous !== undefined }, 'device.bound');
    if (previous !== undefined && previous !== session) previous.replaced();
  }

  #accept(conn: Connection): void {
    const id = this.#nextConnectionId++;
    const session = new DeviceSession(this, conn);
    this.#sessions.set(session, id);
    this.#log.info(
      { conn: id, transport: conn.transport, remote: conn.remoteAddress },
      'connection.open',
    );
    conn.on('close', (info: ConnectionCloseInfo) => {
      this.#sessions.delete(session);
      const device = session.device;
      if (device !== undefined && this.#online.get(device) === session) this.#setOffline(device);
      this.#logClose(id, session, info);
    });
    session.start();
  }

  #logClose(id: number, session: DeviceSession, info: ConnectionCloseInfo): void {
    const code = info.error?.code;
    const fields = {
      conn: id,
      device: session.device,
      address: session.address,
      initiator: info.initiator,
      code,
    };
    // A peer that breaks the protocol is worth a warning; ordinary ends are information.
    const expected =
      code === undefined ||
      code === 'ERR_CONNECTION_CLOSED' ||
      code === 'ERR_AUTH_FAILED' ||
      code === 'ERR_CONFLICT' ||
      code === 'ERR_TIMEOUT';
    if (expected) this.#log.info(fields, 'connection.closed');
    else this.#log.warn({ ...fields, reason: info.error?.message }, 'connection.closed');
  }
}
