/**
 * Admission control for pipelined requests (SEND, ACK) across all sessions of a server.
 *
 * Each session already keeps at most a few dozen requests in flight; with thousands of sessions
 * that still lets an overload pile tens of thousands of writes into one commit batch, and every
 * turn of the event loop (answers, deliveries, pings) then waits behind it. Past the server-wide
 * bound a session simply stops reading its connection until a slot frees: the overload backs up
 * in the clients' TCP windows (transport back-pressure), not in the server's memory, and what
 * was admitted keeps moving at the store's pace. Nothing on the wire changes.
 */

/**
 * A counting semaphore with FIFO hand-over, so no session starves under sustained load.
 *
 * @example
 * ```ts
 * await admission.acquire(); // may wait while the server is at its bound
 * try { await handle(frame); } finally { admission.release(); }
 * ```
 */
export class RequestAdmission {
  readonly limit: number;
  #inFlight = 0;
  /** Waiters in arrival order from #head on; taken ones are cleared so they can be collected. */
  #waiting: ((() => void) | undefined)[] = [];
  #head = 0;
  /** How often a request had to wait, for benchmarks and tests. */
  readonly stats = { waited: 0 };

  constructor(limit: number) {
    this.limit = Math.max(1, Math.trunc(limit));
  }

  /** Requests admitted and not yet released. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Takes a slot: `undefined` when one was free (no await, so a session's requests still reach
   * the store synchronously in frame order), else a promise that resolves once it holds one.
   * Call {@link release} exactly once afterwards.
   */
  acquire(): Promise<void> | undefined {
    if (this.#inFlight < this.limit) {
      this.#inFlight++;
      return undefined;
    }
    this.stats.waited++;
    return new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Frees a slot, handing it straight to the longest waiter if there is one. */
  release(): void {
    if (this.#head === this.#waiting.length) {
      this.#inFlight = Math.max(0, this.#inFlight - 1);
      return;
    }
    const next = this.#waiting[this.#head];
    this.#waiting[this.#head++] = undefined;
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    }
    next?.();
  }
}
