/**
 * Federation drain benchmark (issue 7, "Measure"): the time to drain a peer's outbound queue of
 * N small objects once the peer comes back. Domain A queues N objects (durably, SQLite at FULL)
 * while B is down; then B starts and A's outbound driver sends the queue over one real TLS link
 * on loopback. B records each object with the store-backed duplicate filter, in the same
 * transaction as its delivery (StoreDedup.atomicDeliver), as the crash tests do.
 *
 * Run: `npx tsx bench/federation-drain.ts [objects=100000] [body bytes=200] [window=256]
 * [deliverPipeline=window]` (pipeline 1: the receiver delivers strictly one at a time).
 * Prints the enqueue rate and the drain time and rate (objects/s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from '../src/crypto/index.js';
import { FederationEndpoint, FederationOutbound, StoreDedup } from '../src/federation/index.js';
import { openSqliteServiceStore } from '../src/service/store/index.js';
import { makeDomain, trustFor } from '../test/federation/helpers.js';

const count = Number(process.argv[2] ?? 100_000);
const size = Number(process.argv[3] ?? 200);
const window = Number(process.argv[4] ?? 256);
const pipeline = Number(process.argv[5] ?? window);
const dir = mkdtempSync(join(tmpdir(), 'impp-bench-fed-'));

const [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
const storeA = openSqliteServiceStore({ path: join(dir, 'a.db') });
const storeB = openSqliteServiceStore({ path: join(dir, 'b.db') });
storeB.db.exec(
  'CREATE TABLE app (n INTEGER PRIMARY KEY, origin TEXT NOT NULL, body BLOB NOT NULL)',
);
const insert = storeB.db.prepare<[string, Buffer]>('INSERT INTO app (origin, body) VALUES (?, ?)');
const limits = { window, maxInFlightBytes: 16 * 1024 * 1024, deliverPipeline: pipeline };

const routes = new Map<string, { host: string; port: number }[]>();
const A = new FederationEndpoint({
  local: {
    domain: a.domain,
    tls: { certPem: a.cert.certPem, keyPem: a.cert.keyPem },
    domainKey: a.key.secretKey,
  },
  trust: trustFor(a.domain, [{ domain: b.domain, proof: 'key', publicKey: b.key.publicKey }]),
  deliver: () => undefined,
  limits,
  resolve: { overrides: routes },
});
await A.listen({ host: '127.0.0.1', port: 0 });
// B is down: nothing listens here.
routes.set(b.domain, [{ host: '127.0.0.1', port: 1 }]);
const outbound = new FederationOutbound({
  endpoint: A,
  queue: storeA.federationQueue,
  bounce: () => undefined,
  retry: { baseMs: 50, maxMs: 200 },
  batch: 4096,
});

const body = randomBytes(size);
let t = performance.now();
const inFlight = 1024;
for (let i = 0; i < count; i += inFlight) {
  const jobs: Promise<unknown>[] = [];
  for (let j = i; j < Math.min(count, i + inFlight); j++) {
    jobs.push(
      outbound.enqueue({
        peer: b.domain,
        sender: `u${j % 100}@a.example/d1`,
        id: randomBytes(16),
        kind: 1,
        body,
      }),
    );
  }
  await Promise.all(jobs);
}
const enqueueMs = performance.now() - t;
console.log(
  `enqueued ${count} objects of ${size} bytes in ${(enqueueMs / 1000).toFixed(2)} s (${Math.round(count / (enqueueMs / 1000))} objects/s, durable)`,
);

const dedup = new StoreDedup(storeB.federationSeen);
const B = new FederationEndpoint({
  local: {
    domain: b.domain,
    tls: { certPem: b.cert.certPem, keyPem: b.cert.keyPem },
    domainKey: b.key.secretKey,
  },
  trust: trustFor(b.domain, [{ domain: a.domain, proof: 'key', publicKey: a.key.publicKey }]),
  dedup,
  deliver: dedup.atomicDeliver((o) => {
    insert.run(o.arrivedFrom, Buffer.from(o.body as Uint8Array));
  }),
  limits,
});
const portB = await B.listen({ host: '127.0.0.1', port: 0 });
t = performance.now();
const syncsBefore = storeB.syncStats.syncs;
routes.set(b.domain, [{ host: '127.0.0.1', port: portB }]);
await outbound.peerUp(b.domain);
let delivered = 0;
await new Promise<void>((resolve) => {
  outbound.on('delivered', (_peer, n) => {
    delivered += n;
    if (delivered >= count) resolve();
  });
});
const drainMs = performance.now() - t;
const rows = (storeB.db.prepare('SELECT count(*) AS n FROM app').get() as { n: number }).n;
console.log(
  `drained ${delivered} objects in ${(drainMs / 1000).toFixed(2)} s: ${Math.round(count / (drainMs / 1000))} objects/s ` +
    `(receiver rows ${rows}, receiver WAL syncs ${storeB.syncStats.syncs - syncsBefore}, window ${window}, deliverPipeline ${pipeline})`,
);
await outbound.close();
await A.close();
await B.close();
await storeA.close();
await storeB.close();
rmSync(dir, { recursive: true, force: true });
