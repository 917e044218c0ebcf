/**
 * A tiny typed event emitter: listeners per event name, called synchronously in order.
 * Internal to src/transport.
 */

/** Event map: event name → listener signature. */
export type EventMap = Record<string, (...args: never[]) => void>;

/**
 * Typed emitter base class.
 *
 * @example
 * ```ts
 * class Thing extends Emitter<{ ready: (n: number) => void }> {}
 * new Thing().on('ready', (n) => n + 1);
 * ```
 */
export class Emitter<E extends EventMap> {
  readonly #listeners = new Map<keyof E, Set<E[keyof E]>>();

  /** Adds a listener. */
  on<K extends keyof E>(event: K, listener: E[K]): this {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return this;
  }

  /** Removes a listener. */
  off<K extends keyof E>(event: K, listener: E[K]): this {
    this.#listeners.get(event)?.delete(listener);
    return this;
  }

  /** Number of listeners for `event`. */
  listenerCount(event: keyof E): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Calls every listener of `event` with `args`. */
  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      (listener as (...a: Parameters<E[K]>) => void)(...args);
    }
  }
}
