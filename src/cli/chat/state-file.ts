/**
 * The client state file of `impp chat` and `impp demo`: a {@link FileStateStore} whose saves run
 * one at a time. A client saves from several places at once (a command and an incoming object),
 * and two overlapping saves through one temporary file can lose the rename race; chaining them
 * keeps the last save last.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { FileStateStore, type ClientStateStore } from '../../client/state.js';

/**
 * A state file with serialised saves; its folder is created (0700) when missing.
 *
 * @example
 * ```ts
 * const state = new SerialStateFile('/home/alice/.impp-chat/alice@example.org.json');
 * ```
 */
export class SerialStateFile implements ClientStateStore {
  readonly #file: FileStateStore;
  #last: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#file = new FileStateStore(path);
  }

  load(): Promise<Uint8Array | undefined> {
    return this.#file.load();
  }

  save(bytes: Uint8Array): Promise<void> {
    const copy = Uint8Array.from(bytes);
    const next = this.#last.then(() => this.#file.save(copy));
    // The chain goes on after a failed save; the caller still sees the failure.
    this.#last = next.catch(() => undefined);
    return next;
  }
}
