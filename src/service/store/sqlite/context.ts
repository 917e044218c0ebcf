/**
 * What every SQLite repository shares: the connection, the commit batcher and the quotas.
 */
import type Database from 'better-sqlite3';
import type { StoreQuotas } from '../types.js';
import { storageError, type CommitBatcher } from './batcher.js';

/** Shared state of the repositories of one SQLite store. */
export interface SqliteContext {
  readonly db: Database.Database;
  readonly batcher: CommitBatcher;
  readonly quotas: StoreQuotas;
  /** Check that stored objects are sealed envelopes matching their index fields. */
  readonly verifyEnvelopes: boolean;
}

/** Runs a synchronous read and maps driver failures to `ERR_STORAGE`. */
export function read<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(storageError(error));
  }
}

/** Runs `fn` for its checks; a throw becomes a rejected promise (async-friendly validation). */
export function checked<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (error) {
    return Promise.reject(storageError(error));
  }
}

/** A driver BLOB as a fresh Uint8Array (not a Buffer view of a shared pool). */
export function blob(value: Buffer): Uint8Array {
  return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
}

/** Bytes for the driver, without copying. */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
