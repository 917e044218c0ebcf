/**
 * Input lines of `impp chat`, one at a time, from a `node:readline` interface: lines that
 * arrive while a command is still running wait in order (a script may write all of its input
 * at once).
 */
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

/** Lines buffered at most before input is paused (a pasted flood does not grow memory). */
const MAX_BUFFERED_LINES = 1000;

/**
 * A queue of input lines.
 *
 * @example
 * ```ts
 * const lines = new LineQueue(process.stdin);
 * const first = await lines.next(); // undefined at end of input
 * ```
 */
export class LineQueue {
  readonly rl: Interface;
  readonly #buffer: string[] = [];
  #ended = false;
  #waiter: ((line: string | undefined) => void) | undefined;

  /** `output` (a terminal) gets the prompt and the line editing; without it, no echo. */
  constructor(input: Readable, output?: Writable) {
    this.rl = createInterface({
      input,
      ...(output === undefined ? { terminal: false } : { output, terminal: true }),
      crlfDelay: Infinity,
    });
    this.rl.on('line', (line) => {
      const w = this.#waiter;
      if (w !== undefined) {
        this.#waiter = undefined;
        w(line);
        return;
      }
      this.#buffer.push(line);
      if (this.#buffer.length >= MAX_BUFFERED_LINES) this.rl.pause();
    });
    // Ctrl-C on a terminal ends the session like Ctrl-D (readline would only pause otherwise).
    this.rl.on('SIGINT', () => {
      this.rl.close();
    });
    this.rl.on('close', () => {
      this.#ended = true;
      const w = this.#waiter;
      this.#waiter = undefined;
      w?.(undefined);
    });
  }

  /** The next line, or `undefined` once input has ended. */
  next(): Promise<string | undefined> {
    const line = this.#buffer.shift();
    if (line !== undefined) {
      if (this.#buffer.length < MAX_BUFFERED_LINES / 2) this.rl.resume();
      return Promise.resolve(line);
    }
    if (this.#ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Stops reading (and lets the process exit). */
  close(): void {
    this.rl.close();
  }
}
