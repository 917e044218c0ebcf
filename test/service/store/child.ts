/**
 * Child process of the store tests (run with `node --import tsx`):
 *
 * - `enqueue <db> <device> <synchronous>`: enqueues sealed-looking objects as fast as it can, 32
 *   in flight, and prints `<id hex> <sha-256 hex of bytes>` for each one after its promise
 *   resolved, that is after it was acknowledged as stored. The parent kills it with SIGKILL.
 * - `take <db> <device>`: prints `ready`, waits for a line on stdin, then takes one-time prekeys,
 *   8 takers in flight, until none is left, and prints the key ids it got as JSON.
 *
 * Writes to a pipe are synchronous on Linux, so a printed line means the acknowledgement
 * really happened before the kill.
 */
import { createHash, randomBytes } from 'node:crypto';
import { openSqliteServiceStore } from '../../../src/service/store/index.js';
import { sealedMessage } from './envelopes.js';

const [mode, path, device, synchronous] = process.argv.slice(2);
if (path === undefined || device === undefined)
  throw new Error('usage: child <mode> <db> <device>');

if (mode === 'enqueue') {
  const store = openSqliteServiceStore({
    path,
    synchronous: synchronous === 'normal' ? 'normal' : 'full',
    quotas: { queueMaxCount: 1_000_000, queueMaxBytes: 1 << 30 },
  });
  process.stdout.write('ready\n');
  const worker = async (): Promise<void> => {
    for (let i = 0; i < 1_000_000; i++) {
      const id = randomBytes(16);
      const bytes = sealedMessage(device, id, 150 + (i % 512));
      await store.queue.enqueue({
        id,
        recipientDevice: device,
        kind: 'message',
        bytes,
        receivedAt: Date.now(),
      });
      process.stdout.write(
        `${id.toString('hex')} ${createHash('sha256').update(bytes).digest('hex')}\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
} else if (mode === 'take') {
  const store = openSqliteServiceStore({ path });
  // Start together with the other takers: wait for the parent's "go".
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => {
    process.stdin.once('data', () => {
      resolve();
    });
  });
  const got: number[] = [];
  const taker = async (): Promise<void> => {
    for (let i = 0; i < 100_000; i++) {
      const key = await store.prekeys.takeOneTimePrekey(device);
      if (key === undefined) return;
      got.push(key.keyId);
    }
  };
  await Promise.all(Array.from({ length: 8 }, taker));
  await store.close();
  process.stdout.write(`${JSON.stringify(got)}\n`);
} else {
  throw new Error(`unknown mode ${String(mode)}`);
}
