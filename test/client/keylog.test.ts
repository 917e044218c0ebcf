/**
 * Comparing key-log tree heads between contacts (docs/security-model.md T33): a server that shows
 * two users two different logs, each signed with the domain key, is caught when one user's SDK
 * checks the other's head. The split view is played by the threat suite's malicious server: two
 * real servers of one domain, sharing the domain key, each with its own store and log.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImppClient } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { MaliciousServer } from '../../src/threats/attackers/malicious-server.js';

let view: MaliciousServer;
let fork: MaliciousServer;
let dir: string;
const clients: ImppClient[] = [];

function client(server: MaliciousServer, user: string, deviceId: string): ImppClient {
  const c = new ImppClient({
    host: server.host,
    port: server.port,
    address: server.address(user),
    password: server.account(user).password,
    ca: server.ca,
    servername: server.servername,
    domainKey: server.domainKey,
    deviceId,
    state: new FileStateStore(join(dir, `${user}-${deviceId}.state`)),
  });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'impp-keylog-'));
  view = await MaliciousServer.start();
  fork = await view.startFork();
});
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await view.close();
  await fork.close();
  rmSync(dir, { recursive: true, force: true });
});

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isImppError(e) ? e.code : e).toBe(code);
}

describe('compareTreeHead', () => {
  it('a contact’s head from the same log is consistent; one from a forked log is refused', async () => {
    const alice = client(view, 'alice', 'laptop');
    const carol = client(view, 'carol', 'desk');
    const bob = client(fork, 'bob', 'phone');
    for (const c of [alice, carol, bob]) {
      await c.connect();
      await c.verifyEnrolment();
    }
    expect(alice.treeHead).toBeInstanceOf(Uint8Array);
    await expect(alice.compareTreeHead(carol.treeHead as Uint8Array)).resolves.toEqual({
      treeSize: 2,
    });
    // The log grows after carol's head: still consistent (a proof from her size).
    view.issueEnrolment(view.address('carol'), 'phone', generateSigningKeyPair().publicKey);
    await expect(alice.compareTreeHead(carol.treeHead as Uint8Array)).resolves.toEqual({
      treeSize: 3,
    });
    await expectCode(alice.compareTreeHead(bob.treeHead as Uint8Array), 'ERR_KEYLOG_INCONSISTENT');
    await expectCode(bob.compareTreeHead(alice.treeHead as Uint8Array), 'ERR_KEYLOG_INCONSISTENT');
  });

  it('refuses a head not signed by the log key', async () => {
    const alice = client(view, 'alice', 'tablet');
    await alice.connect();
    const other = await MaliciousServer.start(); // another domain key
    try {
      const elsewhere = client(other, 'alice', 'x');
      await elsewhere.connect();
      await elsewhere.verifyEnrolment();
      await expectCode(
        alice.compareTreeHead(elsewhere.treeHead as Uint8Array),
        'ERR_KEYLOG_PROOF_INVALID',
      );
    } finally {
      await other.close();
    }
  });
});
