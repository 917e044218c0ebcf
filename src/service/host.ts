/**
 * What a device session needs from its server, as an interface, so that the session does not
 * import the server (no import cycle) and tests could host sessions differently.
 */
import type { Authenticator } from '../auth/server.js';
import type { SigningKeyPair } from '../crypto/index.js';
import type { KeyLog } from '../trust/keylog/log.js';
import type { RequestAdmission } from './admission.js';
import type { ServerDefences } from './defences.js';
import type { ServiceLog } from './logging.js';
import type { RemoteRouter } from './remote.js';
import type { PendingObject, ServiceStore } from './store/types.js';

/** A bound device session as the router sees it. */
export interface RoutablePeer {
  /** Pushes pending queued objects, in order, read from the store. */
  flush(): Promise<void>;
  /**
   * An object for this device was just stored (durably): pushed from memory when the session
   * is caught up, otherwise the store is read. Calls come in queue order.
   */
  pushStored(object: PendingObject): void;
  /** Pushes a presence object (same bytes to every watcher). */
  pushPresence(object: Uint8Array): void;
  /** Pushes a subscription state change. */
  pushSubscription(presentity: string, watcher: string, state: string): void;
  /** Another connection bound the same device: give way. */
  replaced(): void;
  /** The device was revoked or its account changed: close with this reason (T21). */
  revoked(reason: string): void;
}

/** The server as its sessions see it. */
export interface SessionHost {
  readonly domain: string;
  readonly store: ServiceStore;
  readonly authenticator: Authenticator;
  readonly domainKey: SigningKeyPair;
  /** Signs key-log tree heads (the domain key unless configured apart). */
  readonly logKey: SigningKeyPair;
  readonly keyLog: KeyLog;
  readonly now: () => number;
  /** Token bucket for costly requests (bundle and key-log fetches) per session. */
  readonly costlyRequests: { readonly rate: number; readonly burst: number };
  /** Server-wide bound on pipelined requests (SEND, ACK) in flight (./admission.ts). */
  readonly admission: RequestAdmission;
  /** The defences in force (all on, except in the threat suite's own tests). */
  readonly defences: ServerDefences;
  /**
   * The federation, for addresses of other domains (./remote.ts); absent: such requests get
   * `ERR_DOMAIN_NOT_SERVED`.
   */
  readonly remote?: RemoteRouter;
  /** The server's structured log (codes and addresses only), when it has one. */
  readonly log?: ServiceLog;
  /** The bound session of `user@domain/deviceId`, if online. */
  online(device: string): RoutablePeer | undefined;
  /** Bound sessions of every device of `user@domain`. */
  onlineOf(address: string): RoutablePeer[];
  /** A session finished device binding. */
  bound(device: string, peer: RoutablePeer): void;
}
