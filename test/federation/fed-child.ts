/**
 * Child process of the federation crash tests (run with `node --import tsx`): one domain's
 * federation side over its own SQLite store in `<dir>`, so that a second start after SIGKILL
 * finds everything the first one made durable. Prints `port <n>` when listening.
 *
 * Usage: fed-child <config.json>
 * - role `receiver`: delivers each object into table `app` of its store, in the same transaction
 *   as the duplicate filter's record (StoreDedup.atomicDeliver).
 * - role `sender`: reads `enqueue <first> <count>` lines on stdin, enqueues objects with ids
 *   first..first+count-1 (all at once) and prints `acked <n>` as each enqueue resolves (durable);
 *   on start it resumes whatever its queue still holds.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fromBase64Url, generateSigningKeyPair } from '../../src/crypto/index.js';
import { FederationEndpoint, FederationOutbound, StoreDedup } from '../../src/federation/index.js';
import { openSqliteServiceStore } from '../../src/service/store/index.js';
import { trustFor } from './helpers.js';

/** What the parent writes for the child. */
export interface ChildConfig {
  readonly role: 'sender' | 'receiver';
  readonly dir: string;
  readonly domain: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** base64url seed of the domain key. */
  readonly seed: string;
  readonly peer: { readonly domain: string; readonly publicKey: string; readonly port?: number };
  readonly listenPort: number;
}

/** Object id number `n` as 16 bytes. */
export function objectId(n: number): Uint8Array {
  const id = new Uint8Array(16);
  id[0] = 0x7e;
  new DataView(id.buffer).setUint32(12, n);
  return id;
}

const configPath = process.argv[2];
if (configPath === undefined) throw new Error('usage: fed-child <config.json>');
const config = JSON.parse(readFileSync(configPath, 'utf8')) as ChildConfig;
const store = openSqliteServiceStore({ path: join(config.dir, 'store.db') });
store.db.exec(
  'CREATE TABLE IF NOT EXISTS app (n INTEGER PRIMARY KEY, origin TEXT NOT NULL, id BLOB NOT NULL)',
);
const insert = store.db.prepare<[string, Buffer]>('INSERT INTO app (origin, id) VALUES (?, ?)');
const dedup = new StoreDedup(store.federationSeen);
const key = generateSigningKeyPair(fromBase64Url(config.seed));
const endpoint = new FederationEndpoint({
  local: {
    domain: config.domain,
    tls: { certPem: config.certPem, keyPem: config.keyPem },
    domainKey: key.secretKey,
  },
  trust: trustFor(config.domain, [
    { domain: config.peer.domain, proof: 'key', publicKey: fromBase64Url(config.peer.publicKey) },
  ]),
  dedup,
  deliver: dedup.atomicDeliver((o) => {
    insert.run(o.arrivedFrom, Buffer.from(o.id));
  }),
  limits: { preAuthTimeoutMs: 3000, ackTimeoutMs: 3000, deliverPipeline: 64 },
  resolve: {
    overrides: new Map(
      config.peer.port === undefined
        ? []
        : [[config.peer.domain, [{ host: '127.0.0.1', port: config.peer.port }]]],
    ),
  },
});
const port = await endpoint.listen({ host: '127.0.0.1', port: config.listenPort });

if (config.role === 'sender') {
  const outbound = new FederationOutbound({
    endpoint,
    queue: store.federationQueue,
    bounce: () => undefined,
    retry: { baseMs: 20, maxMs: 200 },
  });
  await outbound.start();
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [command, first, count] = line.split(' ');
    if (command !== 'enqueue') return;
    for (let n = Number(first); n < Number(first) + Number(count); n++) {
      void outbound
        .enqueue({
          peer: config.peer.domain,
          sender: `user${n % 7}@${config.domain}/d1`,
          id: objectId(n),
          kind: 1,
          body: new Uint8Array(32).fill(n & 0xff),
        })
        .then(() => process.stdout.write(`acked ${n}\n`));
    }
  });
}
process.stdout.write(`port ${port}\n`);
