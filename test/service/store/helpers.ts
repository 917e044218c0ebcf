/**
 * Fixtures of the store tests: real SQLite files in a temporary folder (FULL durability, as in
 * production), registered devices, and opaque "sealed" bytes (the store never looks inside).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { randomBytes } from '../../../src/crypto/index.js';
import {
  openSqliteServiceStore,
  type SqliteServiceStore,
  type SqliteServiceStoreOptions,
} from '../../../src/service/store/index.js';

/** A temporary folder removed after the file's tests. */
export function tempDir(prefix = 'impp-store-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

let counter = 0;

/** Opens a fresh store file in `dir`. */
export function freshStore(
  dir: string,
  options: Omit<SqliteServiceStoreOptions, 'path'> = {},
): SqliteServiceStore {
  counter++;
  return openSqliteServiceStore({ path: join(dir, `store-${counter}.db`), ...options });
}

/** Registers `user@example.org/deviceId` and returns the device address. */
export async function addDevice(
  store: SqliteServiceStore,
  user: string,
  deviceId: string,
): Promise<string> {
  const address = `${user}@example.org`;
  await store.devices.register({
    address,
    deviceId,
    identityKey: randomBytes(32),
    enrolment: randomBytes(100),
    createdAt: Date.now(),
  });
  return `${address}/${deviceId}`;
}

export { messageId, sealed, sealedMessage, sealedPresence } from './envelopes.js';
