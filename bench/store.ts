/**
 * Offline store benchmark: sealed objects per second into the SQLite message queue with durable
 * commits (each enqueue's promise resolves only after its COMMIT), batched and unbatched, for
 * synchronous = FULL (the default) and NORMAL, and the acknowledge/delete rate.
 *
 * Run: `npx tsx bench/store.ts [seconds per phase=3] [in flight=256] [object bytes=400]
 * [pool=200000]`. Envelopes (well-formed, random ciphertext) are built before timing starts, as
 * a server receives them ready-made; a phase ends after its seconds or when the pool is used up.
 * The database lives in a temporary folder on the same disk as the system temp dir.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  openSqliteServiceStore,
  type BatchOptions,
  type SqliteServiceStore,
  type SqliteSynchronous,
} from '../src/service/store/index.js';
import { sealedMessage } from '../test/service/store/envelopes.js';

const seconds = Number(process.argv[2] ?? 3);
const inFlight = Number(process.argv[3] ?? 256);
const size = Number(process.argv[4] ?? 400);
const poolSize = Number(process.argv[5] ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'impp-bench-store-'));
let dbCount = 0;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

/** Raw cost of one small write + fsync on this disk, for context. */
function fsyncCost(): number {
  const path = join(dir, 'fsync.probe');
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(4096, 1);
  const n = 200;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    writeSync(fd, buf, 0, buf.length, 0);
    fsyncSync(fd);
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / n;
  closeSync(fd);
  return ms;
}

const DEVICE = 'bench@example.org/d1';
const pool = Array.from({ length: poolSize }, () => {
  const id = randomBytes(16);
  return { id, bytes: sealedMessage(DEVICE, id, size) };
});

async function openWithDevice(
  synchronous: SqliteSynchronous,
  batch: BatchOptions,
  verifyEnvelopes = true,
): Promise<{ store: SqliteServiceStore; device: string }> {
  const store = openSqliteServiceStore({
    path: join(dir, `bench-${++dbCount}.db`),
    synchronous,
    batch,
    verifyEnvelopes,
    quotas: { queueMaxCount: 100_000_000, queueMaxBytes: Number.MAX_SAFE_INTEGER },
  });
  await store.devices.register({
    address: 'bench@example.org',
    deviceId: 'd1',
    identityKey: randomBytes(32),
    enrolment: randomBytes(200),
    createdAt: Date.now(),
  });
  return { store, device: DEVICE };
}

interface Result {
  phase: string;
  ops: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  batches: number;
}

async function enqueuePhase(
  phase: string,
  synchronous: SqliteSynchronous,
  batch: BatchOptions,
  concurrency: number,
  verifyEnvelopes = true,
): Promise<{ result: Result; store: SqliteServiceStore; device: string; ids: Buffer[] }> {
  const { store, device } = await openWithDevice(synchronous, batch, verifyEnvelopes);
  let next = 0;
  const ids: Buffer[] = [];
  const latencies: number[] = [];
  const before = store.batchStats.batches;
  const end = performance.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    for (
      let item = pool[next++];
      item !== undefined && performance.now() < end;
      item = pool[next++]
    ) {
      const { id, bytes } = item;
      const t0 = performance.now();
      await store.queue.enqueue({
        id,
        recipientDevice: device,
        kind: 'message',
        bytes,
        receivedAt: Date.now(),
      });
      latencies.push(performance.now() - t0);
      ids.push(id);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    result: {
      phase,
      ops: ids.length,
      perSecond: Math.round(ids.length / elapsed),
      p50ms: Number(percentile(latencies, 50).toFixed(2)),
      p99ms: Number(percentile(latencies, 99).toFixed(2)),
      batches: store.batchStats.batches - before,
    },
    store,
    device,
    ids,
  };
}

async function ackPhase(
  phase: string,
  store: SqliteServiceStore,
  device: string,
  ids: Buffer[],
  perCall: number,
  concurrency: number,
): Promise<Result> {
  const before = store.batchStats.batches;
  let next = 0;
  let done = 0;
  const latencies: number[] = [];
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const chunk = ids.slice(next, next + perCall);
      next += perCall;
      const t0 = performance.now();
      const deleted = await store.queue.acknowledge(device, chunk);
      done += deleted; // not `done += await …`: that reads `done` before the await
      latencies.push(performance.now() - t0);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    phase,
    ops: done,
    perSecond: Math.round(done / elapsed),
    p50ms: Number(percentile(latencies, 50).toFixed(2)),
    p99ms: Number(percentile(latencies, 99).toFixed(2)),
    batches: store.batchStats.batches - before,
  };
}

const results: Result[] = [];
console.log(
  `impp store bench: ${seconds}s per phase, ${inFlight} enqueues in flight, ${size}-byte objects`,
);
console.log(`raw write+fsync of 4 KiB on this disk: ${fsyncCost().toFixed(3)} ms`);

for (const synchronous of ['full', 'normal'] as const) {
  const batched = await enqueuePhase(
    `enqueue batched (${synchronous})`,
    synchronous,
    { enabled: true },
    inFlight,
  );
  results.push(batched.result);
  results.push(
    await ackPhase(
      `ack 1 id/call batched (${synchronous})`,
      batched.store,
      batched.device,
      batched.ids.slice(0, Math.floor(batched.ids.length / 2)),
      1,
      inFlight,
    ),
  );
  results.push(
    await ackPhase(
      `ack 100 ids/call batched (${synchronous})`,
      batched.store,
      batched.device,
      batched.ids.slice(Math.floor(batched.ids.length / 2)),
      100,
      8,
    ),
  );
  await batched.store.close();

  const delayed = await enqueuePhase(
    `enqueue batched, 2 ms window (${synchronous})`,
    synchronous,
    { enabled: true, maxDelayMs: 2 },
    inFlight,
  );
  results.push(delayed.result);
  await delayed.store.close();

  const unchecked = await enqueuePhase(
    `enqueue batched, no envelope check (${synchronous})`,
    synchronous,
    { enabled: true },
    inFlight,
    false,
  );
  results.push(unchecked.result);
  await unchecked.store.close();

  const unbatched = await enqueuePhase(
    `enqueue unbatched (${synchronous})`,
    synchronous,
    { enabled: false },
    1,
  );
  results.push(unbatched.result);
  results.push(
    await ackPhase(
      `ack 1 id/call unbatched (${synchronous})`,
      unbatched.store,
      unbatched.device,
      unbatched.ids,
      1,
      1,
    ),
  );
  await unbatched.store.close();
}

console.table(results);
rmSync(dir, { recursive: true, force: true });
