/**
 * The outbound driver (issue 7, item 5; docs/protocol.md, "Server-to-server protocol",
 * "Delivery, retry and bounce"): for each peer domain with queued objects, one worker that
 * connects (resolution and link from endpoint.ts), sends the queue in order within the link's
 * window, deletes each object on the peer's hop ACK, and, while the peer is down, retries with
 * exponential back-off and full jitter. Objects older than `expireAfterMs` are handed to the
 * bounce callback (for the sender's devices) and removed.
 *
 * Nothing acknowledged is lost: the router acknowledges a sender once `enqueue` resolved (the
 * entry is durable), and an entry leaves the queue only after the peer's ACK (the peer has made
 * it durable: link.ts answers after `deliver` and the dedup record) or after its bounce was
 * handed over. A crash in between resends; the receiving domain drops the duplicate by id.
 *
 * Order per sender: one worker per peer sends in enqueue order, and the receiving link handles
 * DATA one at a time in sequence order. After a failure, everything not yet acknowledged is sent
 * again from the oldest entry on. (A transient REJECT of one object while later ones of the same
 * sender were accepted reorders that one object; the peer rejects only when its own store fails.)
 */
import { randomBytes } from '../crypto/index.js';
import { type ImppErrorCode, ImppError, isImppError } from '../errors.js';
import type {
  EnqueueOutcome,
  FederationQueueEntry,
  FederationQueueRepository,
} from '../service/store/types.js';
import { normalizeDomain } from '../trust/address.js';
import { Emitter } from '../transport/emitter.js';
import type { Link } from './link.js';
import { positiveInteger } from './options.js';

/** Back-off of one peer: delay before attempt n+1 is uniform in [0, min(maxMs, baseMs·2^(n-1))]. */
export interface RetryPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** Defaults: first retry within a second, then doubling up to five minutes. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({ baseMs: 1000, maxMs: 300_000 });

/** Default time after which a queued object is bounced: two days. */
export const DEFAULT_EXPIRE_AFTER_MS = 2 * 24 * 3600_000;

/**
 * "Full jitter" back-off: a delay drawn uniformly from [0, cap], the cap doubling per failed
 * attempt up to `maxMs`. `random` returns a number in [0, 1).
 *
 * @example
 * ```ts
 * backoffDelay(3, { baseMs: 1000, maxMs: 60_000 }, () => 0.5); // 2000
 * ```
 */
export function backoffDelay(attempts: number, policy: RetryPolicy, random: () => number): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 40);
  const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const r = random();
  return Math.floor(cap * Math.min(Math.max(r, 0), 1 - Number.EPSILON));
}

/** A uniform number in [0, 1) from the CSPRNG (48 random bits). */
export function secureRandom(): number {
  const b = randomBytes(6);
  let n = 0;
  for (const byte of b) n = n * 256 + byte;
  return n / 2 ** 48;
}

/** An object the driver gave up on, for the sender's devices. */
export interface OutboundBounce {
  readonly peer: string;
  readonly sender: string;
  readonly id: Uint8Array;
  readonly kind: number;
  /** The queued body, so that the router can say which object failed (it reads the header). */
  readonly body: Uint8Array;
  readonly enqueuedAt: number;
  /** `expired`: the peer stayed unreachable; `refused`: the peer rejected it for good. */
  readonly reason: 'expired' | 'refused';
  /** `ERR_TIMEOUT` for `expired`; the peer's REJECT code for `refused`. */
  readonly code: ImppErrorCode;
}

/** What the driver needs from the endpoint. */
export interface OutboundConnector {
  connect(domain: string): Promise<Link>;
}

/** Options of {@link FederationOutbound}. */
export interface FederationOutboundOptions {
  /** Usually the domain's {@link FederationEndpoint}. */
  readonly endpoint: OutboundConnector;
  readonly queue: FederationQueueRepository;
  /**
   * Receives objects given up on. Entries are removed from the queue only after this resolved;
   * if it throws they are offered again later (so a bounce may be repeated, never lost).
   */
  readonly bounce: (bounces: readonly OutboundBounce[]) => Promise<void> | void;
  /** Objects queued longer than this are bounced, ms. Default two days. */
  readonly expireAfterMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  /** Entries read from the store at a time. Default 512. */
  readonly batch?: number;
  /** A worker waiting out a back-off wakes at least this often to bounce expired objects. */
  readonly sweepIntervalMs?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
  /** Uniform in [0, 1); default {@link secureRandom}. Injectable for tests. */
  readonly random?: () => number;
}

/** Events of the driver. */
export interface FederationOutboundEvents {
  [event: string]: (...args: never[]) => void;
  /** `count` objects were acknowledged by `peer` and removed. */
  delivered: (peer: string, count: number) => void;
  /** A round to `peer` failed; the next starts after `delayMs`. */
  retry: (peer: string, info: { attempts: number; delayMs: number; code: ImppErrorCode }) => void;
  bounced: (bounces: readonly OutboundBounce[]) => void;
}

/**
 * REJECT codes that no retry will change: the object is bounced at once. `ERR_QUOTA_EXCEEDED`
 * (the recipient device's queue is full) is among them: a local SEND is refused at once in that
 * case too, and retrying would stop the whole peer's queue behind one full device.
 */
const PERMANENT: ReadonlySet<ImppErrorCode> = new Set<ImppErrorCode>([
  'ERR_NOT_FOUND',
  'ERR_QUOTA_EXCEEDED',
  'ERR_NOT_AUTHORIZED',
  'ERR_INVALID_ARGUMENT',
  'ERR_ADDRESS_INVALID',
  'ERR_DOMAIN_NOT_SERVED',
  'ERR_FRAME_TOO_LARGE',
  'ERR_PAYLOAD_INVALID',
]);

function codeOf(error: unknown): ImppErrorCode {
  return isImppError(error) ? error.code : 'ERR_CONNECTION_CLOSED';
}

/** An object to send to a peer. */
export interface OutboundRequest {
  readonly peer: string;
  readonly sender: string;
  readonly id: Uint8Array;
  readonly kind: number;
  readonly body: Uint8Array;
}

/**
 * Per-peer delivery from the durable outbound queue.
 *
 * @example
 * ```ts
 * const outbound = new FederationOutbound({ endpoint: fed, queue: store.federationQueue,
 *   bounce: (b) => router.tellSenders(b) });
 * await outbound.start();
 * await outbound.enqueue({ peer: 'b.example', sender, id, kind: 1, body }); // durable: ack now
 * ```
 */
export class FederationOutbound extends Emitter<FederationOutboundEvents> {
  readonly #endpoint: OutboundConnector;
  readonly #queue: FederationQueueRepository;
  readonly #bounce: FederationOutboundOptions['bounce'];
  readonly #expireAfterMs: number;
  readonly #policy: RetryPolicy;
  readonly #batch: number;
  readonly #sweepMs: number;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #workers = new Map<string, Promise<void>>();
  /** Peers kicked while their worker ran: it looks again before stopping. */
  readonly #again = new Set<string>();
  readonly #sleepers = new Map<string, () => void>();
  #closed = false;

  constructor(options: FederationOutboundOptions) {
    super();
    this.#endpoint = options.endpoint;
    this.#queue = options.queue;
    this.#bounce = options.bounce;
    this.#expireAfterMs = positiveInteger(
      'expireAfterMs',
      options.expireAfterMs ?? DEFAULT_EXPIRE_AFTER_MS,
    );
    this.#policy = {
      baseMs: positiveInteger('retry.baseMs', options.retry?.baseMs ?? DEFAULT_RETRY_POLICY.baseMs),
      maxMs: positiveInteger('retry.maxMs', options.retry?.maxMs ?? DEFAULT_RETRY_POLICY.maxMs),
    };
    this.#batch = Math.min(positiveInteger('batch', options.batch ?? 512), 4096);
    this.#sweepMs = positiveInteger('sweepIntervalMs', options.sweepIntervalMs ?? 60_000);
    this.#clock = options.clock ?? Date.now;
    this.#random = options.random ?? secureRandom;
  }

  /** Starts a worker for every peer with queued objects (after a restart). */
  async start(): Promise<void> {
    for (const peer of await this.#queue.peers()) this.kick(peer);
  }

  /**
   * Queues an object for its peer; resolves once durable (acknowledge the sender then).
   * @throws `ERR_QUOTA_EXCEEDED` when the peer's queue is full.
   */
  async enqueue(request: OutboundRequest): Promise<EnqueueOutcome> {
    if (this.#closed) throw new ImppError('ERR_CONNECTION_CLOSED', 'outbound driver is closed');
    const peer = normalizeDomain(request.peer);
    const outcome = await this.#queue.enqueue({
      peer,
      sender: request.sender,
      id: request.id,
      kind: request.kind,
      body: request.body,
      enqueuedAt: this.#clock(),
    });
    this.kick(peer);
    return outcome;
  }

  /** Makes sure `peer`'s worker runs (it stops by itself when the queue is empty). */
  kick(peer: string): void {
    if (this.#closed) return;
    const name = normalizeDomain(peer);
    if (this.#workers.has(name)) {
      this.#again.add(name);
      return;
    }
    const worker = this.#run(name).finally(() => {
      this.#workers.delete(name);
      if (this.#again.delete(name)) this.kick(name);
    });
    this.#workers.set(name, worker);
  }

  /**
   * The peer is reachable again (e.g. it opened a link to us): forget its back-off and send now.
   */
  async peerUp(peer: string): Promise<void> {
    const name = normalizeDomain(peer);
    const state = await this.#queue.peerState(name);
    if (state.attempts !== 0 || state.nextAttemptAt !== 0) {
      await this.#queue.setPeerState(name, { attempts: 0, nextAttemptAt: 0, lastError: null });
    }
    this.#sleepers.get(name)?.();
    this.kick(name);
  }

  /** Peers with a running worker. */
  get activePeers(): readonly string[] {
    return [...this.#workers.keys()];
  }

  /** Stops every worker (objects in flight stay queued) and waits for them. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#sleepers.values()) wake();
    await Promise.allSettled([...this.#workers.values()]);
  }

  // -- worker -------------------------------------------------------------------------------

  async #run(peer: string): Promise<void> {
    while (!this.#closed) {
      this.#again.delete(peer);
      await this.#expire(peer);
      const state = await this.#queue.peerState(peer);
      const wait = state.nextAttemptAt - this.#clock();
      if (wait > 0) {
        await this.#sleep(peer, Math.min(wait, this.#sweepMs));
        continue;
      }
      const head = await this.#queue.peek(peer, { limit: 1 });
      if (head.length === 0) return;
      let failure: unknown = null;
      let progressed = false;
      try {
        const link = await this.#endpoint.connect(peer);
        ({ failure, progressed } = await this.#drain(peer, link));
      } catch (error) {
        failure = error;
      }
      if (this.#stopped()) return;
      if (failure === null) {
        if (state.attempts !== 0) {
          await this.#queue.setPeerState(peer, { attempts: 0, nextAttemptAt: 0, lastError: null });
        }
        continue;
      }
      // A round that got objects through (e.g. a peer that rate-limits: ERR_RATE_LIMITED after
      // a burst was taken) starts the back-off again from its first step; only rounds that
      // move nothing make it grow, so a throttled drain keeps going at the peer's pace.
      const attempts = progressed ? 1 : state.attempts + 1;
      const delayMs = backoffDelay(attempts, this.#policy, this.#random);
      const code = codeOf(failure);
      await this.#queue.setPeerState(peer, {
        attempts,
        nextAttemptAt: this.#clock() + delayMs,
        lastError: code,
      });
      this.emit('retry', peer, { attempts, delayMs, code });
    }
  }

  /** A method, not the field: `close()` may flip it across any await. */
  #stopped(): boolean {
    return this.#closed;
  }

  #sleep(peer: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#sleepers.set(peer, () => {
        this.#sleepers.delete(peer);
        done();
      });
    });
  }

  /** Bounces and removes `peer`'s expired entries. Never throws: a failure is retried later. */
  async #expire(peer: string): Promise<void> {
    try {
      for (;;) {
        const before = this.#clock() - this.#expireAfterMs;
        if (before <= 0) return;
        const entries = await this.#queue.expired(before, { peer, limit: this.#batch });
        if (entries.length === 0) return;
        await this.#giveUp(entries, 'expired', 'ERR_TIMEOUT');
      }
    } catch {
      // The bounce callback or the store failed: the entries stay and are offered again.
    }
  }

  async #giveUp(
    entries: readonly FederationQueueEntry[],
    reason: OutboundBounce['reason'],
    code: ImppErrorCode,
  ): Promise<void> {
    if (entries.length === 0) return;
    const bounces = entries.map((e): OutboundBounce => ({
      peer: e.peer,
      sender: e.sender,
      id: e.id,
      kind: e.kind,
      body: e.body,
      enqueuedAt: e.enqueuedAt,
      reason,
      code,
    }));
    await this.#bounce(bounces);
    await this.#queue.remove(
      entries[0]?.peer ?? '',
      entries.map((e) => e.id),
    );
    this.emit('bounced', bounces);
  }

  /**
   * Sends `peer`'s queue over `link` until it is empty (`failure` null) or something fails
   * (`failure` the error); `progressed` when the peer acknowledged at least one object. Waits
   * for every object in flight before resolving.
   */
  async #drain(peer: string, link: Link): Promise<{ failure: unknown; progressed: boolean }> {
    // An object, so that the checks below see what the callbacks set.
    const round: { failure: unknown; progressed: boolean } = { failure: null, progressed: false };
    const failed = (): boolean => round.failure !== null;
    let after = 0;
    const inFlight = new Set<Promise<void>>();
    let acked: Uint8Array[] = [];
    let flushing: Promise<void> = Promise.resolve();
    let flushScheduled = false;
    const flush = (): void => {
      flushScheduled = false;
      const ids = acked;
      acked = [];
      if (ids.length === 0) return;
      flushing = flushing
        .then(async () => {
          for (let i = 0; i < ids.length; i += 4096) {
            await this.#queue.remove(peer, ids.slice(i, i + 4096));
          }
          this.emit('delivered', peer, ids.length);
        })
        .catch((error: unknown) => {
          // Acknowledged but still queued: resent later, dropped by the peer as a duplicate.
          round.failure ??= error;
        });
    };
    const refused = new Map<ImppErrorCode, FederationQueueEntry[]>();
    const retryLater: Uint8Array[] = [];
    const send = (entry: FederationQueueEntry): void => {
      const p = link
        .send({ id: entry.id, kind: entry.kind, body: entry.body })
        .then(
          () => {
            round.progressed = true;
            acked.push(entry.id);
            if (!flushScheduled) {
              flushScheduled = true;
              setImmediate(flush);
            }
          },
          (error: unknown) => {
            const code = codeOf(error);
            if (PERMANENT.has(code)) {
              const list = refused.get(code) ?? [];
              list.push(entry);
              refused.set(code, list);
              return;
            }
            if (code !== 'ERR_CONNECTION_CLOSED' && code !== 'ERR_TIMEOUT') {
              retryLater.push(entry.id);
            }
            round.failure ??= error;
          },
        )
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    };
    outer: while (!failed() && !this.#stopped()) {
      const entries = await this.#queue.peek(peer, { after, limit: this.#batch });
      if (entries.length === 0) break;
      for (const entry of entries) {
        while (!failed() && !this.#stopped() && link.isOpen && !link.writable) {
          await this.#room(link);
        }
        if (failed() || this.#stopped()) break outer;
        if (!link.isOpen) {
          round.failure = new ImppError('ERR_CONNECTION_CLOSED', `link to ${peer} closed`);
          break outer;
        }
        send(entry);
        after = entry.seq;
      }
    }
    await Promise.allSettled([...inFlight]);
    flush();
    await flushing;
    if (retryLater.length > 0) {
      await this.#queue.noteAttempt(peer, retryLater).catch(() => undefined);
    }
    for (const [code, entries] of refused) {
      try {
        await this.#giveUp(entries, 'refused', code);
      } catch (error) {
        round.failure ??= error;
      }
    }
    return round;
  }

  /** Resolves when `link` has room again or closed. */
  #room(link: Link): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        link.off('drain', done);
        link.off('closed', done);
        resolve();
      };
      link.on('drain', done);
      link.on('closed', done);
    });
  }
}
