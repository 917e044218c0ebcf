/**
 * The impp service for one domain: accepts TLS connections, runs one {@link DeviceSession} per
 * connection, and routes sealed objects between devices through the store. It sees only envelope
 * headers (src/seal/header.ts), never content, and never a message's sender.
 */
import type { AddressInfo } from 'node:net';
import type { Authenticator } from '../auth/server.js';
import type { SigningKeyPair } from '../crypto/index.js';
import { TlsTransportServer } from '../transport/tls-server.js';
import type { TransportLimits } from '../transport/limits.js';
import type { Connection } from '../transport/connection.js';
import { KeyLog } from '../trust/keylog/log.js';
import type { RoutablePeer, SessionHost } from './host.js';
import { DeviceSession } from './session.js';
import type { ServiceStore } from './store/types.js';

/** Options of {@link ImppServer}. */
export interface ImppServerOptions {
  /** The domain this server serves (canonical form). */
  readonly domain: string;
  readonly tls: { readonly key: string | Buffer; readonly cert: string | Buffer };
  readonly store: ServiceStore;
  readonly authenticator: Authenticator;
  /** The domain's Ed25519 key: signs enrolment statements. */
  readonly domainKey: SigningKeyPair;
  /** Signs key-log tree heads; default: the domain key. */
  readonly logKey?: SigningKeyPair;
  readonly limits?: Partial<TransportLimits>;
  readonly now?: () => number;
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
  readonly #transport: TlsTransportServer;
  /** Bound sessions by `user@domain/deviceId`; a newer session for a device replaces the older. */
  readonly #online = new Map<string, RoutablePeer>();
  readonly #sessions = new Set<DeviceSession>();

  constructor(options: ImppServerOptions) {
    this.domain = options.domain;
    this.store = options.store;
    this.authenticator = options.authenticator;
    this.domainKey = options.domainKey;
    this.logKey = options.logKey ?? options.domainKey;
    this.now = options.now ?? Date.now;
    this.keyLog = new KeyLog({ domain: options.domain, storage: options.store.keyLog });
    this.#transport = new TlsTransportServer({
      key: options.tls.key,
      cert: options.tls.cert,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    });
    this.#transport.on('connection', (conn: Connection) => {
      this.#accept(conn);
    });
  }

  /** Listens on 127.0.0.1 unless told otherwise. */
  listen(options: { host?: string; port?: number } = {}): Promise<AddressInfo> {
    return this.#transport.listen(options);
  }

  /** Closes every connection and the listener (the store stays open: its owner closes it). */
  async close(): Promise<void> {
    await this.#transport.close();
    for (const s of this.#sessions) s.connection.close();
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
    for (const [device, s] of this.#online) {
      if (device.slice(0, device.lastIndexOf('/')) === address) out.push(s);
    }
    return out;
  }

  /** @internal A session finished device binding. */
  bound(device: string, session: RoutablePeer): void {
    const previous = this.#online.get(device);
    this.#online.set(device, session);
    if (previous !== undefined && previous !== session) previous.replaced();
  }

  #accept(conn: Connection): void {
    const session = new DeviceSession(this, conn);
    this.#sessions.add(session);
    conn.on('close', () => {
      this.#sessions.delete(session);
      const device = session.device;
      if (device !== undefined && this.#online.get(device) === session) this.#online.delete(device);
    });
    session.start();
  }
}
