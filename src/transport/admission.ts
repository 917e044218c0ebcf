/**
 * Admission control at TCP accept, before any TLS work is spent: a global connection cap and a
 * per-source cap on connections that have not authenticated yet, plus the pre-authentication
 * deadline that runs from accept (so TLS handshake, WebSocket upgrade, hello and the
 * authentication exchange all count against it, and a slowloris peer cannot stretch it).
 *
 * Sources are grouped by IPv4 address or IPv6 /64 (a single IPv6 host usually owns a whole /64,
 * so per-address counting would be no cap at all).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ImppError } from '../errors.js';

/**
 * The key a remote address is counted under: the IPv4 address (also for IPv4-mapped IPv6), the
 * /64 prefix for IPv6, or the raw string when it cannot be parsed.
 *
 * @example
 * ```ts
 * sourceKey('::ffff:192.0.2.7');          // '192.0.2.7'
 * sourceKey('2001:db8:1:2:3:4:5:6');      // '2001:db8:1:2::/64'
 * ```
 */
export function sourceKey(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  const bare = address.split('%')[0] ?? address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (isIPv4(bare)) return bare;
  if (!isIPv6(bare)) return bare;
  const [head = '', tail] = bare.toLowerCase().split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail takes two groups; it only matters when the prefix is short.
  const groups =
    tail === undefined
      ? headParts
      : [
          ...headParts,
          ...Array<string>(8 - headParts.length - tailParts.length).fill('0'),
          ...tailParts,
        ];
  const prefix = groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16));
  return `${prefix.join(':')}::/64`;
}

/** What admission keeps for one accepted socket. */
export interface AdmissionTicket {
  readonly source: string;
  readonly acceptedAt: number;
  /** True once the layer above has marked the connection authenticated. */
  readonly authenticated: boolean;
  /** Moves the connection out of the per-source unauthenticated count and stops the deadline. */
  markAuthenticated(): void;
  /** Sets what happens when the pre-authentication deadline passes (default: destroy). */
  onDeadline(handler: () => void): void;
  /** Frees the slots; idempotent. */
  release(): void;
}

/** Counters for monitoring. */
export interface AdmissionStats {
  readonly connections: number;
  readonly unauthenticated: number;
  readonly sources: number;
}

/**
 * Admission state of one listener.
 *
 * @example
 * ```ts
 * const admission = new Admission({ maxConnections: 10_000, maxPreAuthPerIp: 32, preAuthTimeoutMs: 30_000 });
 * const ticket = admission.admit(socket.remoteAddress, () => socket.destroy());
 * if (ticket instanceof ImppError) socket.destroy();
 * ```
 */
export class Admission {
  readonly #maxConnections: number;
  readonly #maxPreAuthPerSource: number;
  readonly #preAuthTimeoutMs: number;
  readonly #unauthenticated = new Map<string, number>();
  #connections = 0;
  #unauthTotal = 0;

  constructor(options: {
    readonly maxConnections: number;
    readonly maxPreAuthPerIp: number;
    readonly preAuthTimeoutMs: number;
  }) {
    this.#maxConnections = options.maxConnections;
    this.#maxPreAuthPerSource = options.maxPreAuthPerIp;
    this.#preAuthTimeoutMs = options.preAuthTimeoutMs;
  }

  get stats(): AdmissionStats {
    return {
      connections: this.#connections,
      unauthenticated: this.#unauthTotal,
      sources: this.#unauthenticated.size,
    };
  }

  /**
   * Admits a new socket or says why not (`ERR_CONNECTION_LIMIT`). `destroy` runs when the
   * pre-authentication deadline passes, unless replaced with {@link AdmissionTicket.onDeadline}.
   */
  admit(remoteAddress: string | undefined, destroy: () => void): AdmissionTicket | ImppError {
    if (this.#connections >= this.#maxConnections) {
      return new ImppError('ERR_CONNECTION_LIMIT', 'server connection limit reached');
    }
    const source = sourceKey(remoteAddress);
    const count = this.#unauthenticated.get(source) ?? 0;
    if (count >= this.#maxPreAuthPerSource) {
      return new ImppError(
        'ERR_CONNECTION_LIMIT',
        'too many unauthenticated connections from this address',
      );
    }
    this.#connections += 1;
    this.#unauthTotal += 1;
    this.#unauthenticated.set(source, count + 1);
    return new Ticket(this, source, destroy, this.#preAuthTimeoutMs);
  }

  /** @internal A ticket of `source` authenticated or was released before it did. */
  leaveUnauthenticated(source: string): void {
    const n = (this.#unauthenticated.get(source) ?? 1) - 1;
    if (n <= 0) this.#unauthenticated.delete(source);
    else this.#unauthenticated.set(source, n);
    this.#unauthTotal -= 1;
  }

  /** @internal A ticket was released. */
  left(): void {
    this.#connections -= 1;
  }
}

/**
 * One admitted socket. A class rather than an object of closures: it lives as long as its
 * connection, so per-connection memory matters; and once authenticated it lets go of its
 * deadline timer and handler.
 */
class Ticket implements AdmissionTicket {
  readonly acceptedAt = Date.now();
  #authenticated = false;
  #released = false;
  #deadline: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly admission: Admission,
    readonly source: string,
    destroy: () => void,
    timeoutMs: number,
  ) {
    this.#deadline = destroy;
    this.#timer = setTimeout(expire, timeoutMs, this);
    this.#timer.unref();
  }

  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** @internal The pre-authentication deadline passed. */
  expired(): void {
    if (!this.#authenticated && !this.#released) this.#deadline?.();
  }

  markAuthenticated(): void {
    if (this.#authenticated || this.#released) return;
    this.#authenticated = true;
    this.#stopDeadline();
    this.admission.leaveUnauthenticated(this.source);
  }

  onDeadline(handler: () => void): void {
    if (!this.#authenticated && !this.#released) this.#deadline = handler;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#stopDeadline();
    if (!this.#authenticated) this.admission.leaveUnauthenticated(this.source);
    this.admission.left();
  }

  #stopDeadline(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deadline = undefined;
  }
}

/** The deadline timer's callback, one function for all tickets. */
function expire(ticket: Ticket): void {
  ticket.expired();
}
