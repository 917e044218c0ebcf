/**
 * Another domain's key log through the federation seam (client protocol §5.6 with `domain`;
 * Server-to-server §5.1 op 'log'): two REAL servers (loopback TLS, SQLite) for a.example and
 * b.example, real clients, and the TEST DOUBLE of the link (./link-double.ts). The link itself
 * (strict answer checks, rate limit) is tested over real links by
 * test/federation/keylog-lookup.test.ts.
 *
 * A forked b.example is played by signing a different history with b.example's real log key and
 * handing it to a.example as b.example's answer: what a malicious b.example server (or anyone
 * holding its key) could show one domain's users.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedMessage, TrustWarningEvent } from '../../src/client/client.js';
import { generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { ClientFrame } from '../../src/service/protocol.js';
import type { LogAnswer, LogRequest, RemoteRouter } from '../../src/service/remote.js';
import { parseAddress } from '../../src/trust/address.js';
import { statementFromLogEntry, verifyEnrolmentStatement } from '../../src/trust/enrolment.js';
import { KeyLog } from '../../src/trust/keylog/log.js';
import { MemoryKeyLogStorage } from '../../src/trust/keylog/storage.js';
import { KeyLogVerifier } from '../../src/trust/keylog/verifier.js';
import { type Env, next, quiet, startEnv } from './harness.js';
import { LinkDouble } from './link-double.js';
import { RawClient } from './raw.js';

const link = new LinkDouble();
/** When set, a.example gets this instead of b.example's own key-log answer. */
let forgedLog: ((request: LogRequest) => LogAnswer) | undefined;
let A: Env;
let B: Env;
let alone: Env;

function routerOfA(): RemoteRouter {
  const real = link.routerFor('a.example');
  return {
    ...real,
    log: async (domain, request) => {
      if (forgedLog !== undefined) return forgedLog(request);
      if (real.log === undefined) throw new Error('the double has no log');
      return real.log(domain, request);
    },
  };
}

beforeAll(async () => {
  [A, B, alone] = await Promise.all([
    startEnv({ domain: 'a.example', remote: routerOfA() }),
    startEnv({ domain: 'b.example', remote: link.routerFor('b.example') }),
    startEnv({ domain: 'c.example' }),
  ]);
  link.add('a.example', () => A.server.federationInbound);
  link.add('b.example', () => B.server.federationInbound);
  // b.example's log gets entries: bob's and carol's enrolments.
  for (const user of ['bob', 'carol']) {
    const c = B.client(user, 'phone');
    await c.connect();
  }
});
afterAll(async () => {
  await Promise.all([A.close(), B.close(), alone.close()]);
});

async function codeOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => 'resolved',
    (e: unknown) => (isImppError(e) ? e.code : e),
  );
}

/** A raw session of a registered device of `user` at `env` (GET_LOG needs a bound device). */
async function rawSession(env: Env, user: string): Promise<RawClient> {
  const identity = generateSigningKeyPair();
  const deviceId = `raw${Math.floor(Math.random() * 1e9)}`;
  await env.store.devices.register({
    address: `${user}@${env.domain}`,
    deviceId,
    identityKey: identity.publicKey,
    enrolment: randomBytes(100),
    createdAt: Date.now(),
  });
  const raw = await RawClient.open(env);
  await raw.auth(user);
  expect((await raw.bind(deviceId, identity)).registered).toBe(true);
  return raw;
}

/** A history of b.example's size `size` that is not b.example's, signed with its real log key. */
function forkOfB(size: number): (request: LogRequest) => LogAnswer {
  const log = new KeyLog({ domain: 'b.example', storage: new MemoryKeyLogStorage() });
  for (let i = 0; i < size; i++) log.append(randomBytes(40));
  return (request) => {
    const head = log.signHead(B.server.logKey.secretKey, Date.now());
    const since = Math.min(request.since, head.treeSize);
    return { head: head.bytes, consistency: log.consistencyProof(since, head.treeSize) };
  };
}

describe('GET_LOG with a domain', () => {
  it('is answered by that domain: its head, proof and entry verify under its key', async () => {
    const raw = await rawSession(A, 'dave');
    try {
      const before = link.crossings.length;
      const r = await raw.request(ClientFrame.GET_LOG, { domain: 'b.example', since: 0, index: 0 });
      expect(link.crossings.slice(before)).toEqual([
        { from: 'a.example', to: 'b.example', what: 'log' },
      ]);
      const verifier = new KeyLogVerifier({ domain: 'b.example', logKey: B.domainKey });
      const head = verifier.update(r.head as Uint8Array, r.consistency as Uint8Array[]);
      expect(head.treeSize).toBeGreaterThanOrEqual(2);
      verifier.verifyEntry(r.entry as Uint8Array, 0, r.inclusion as Uint8Array[]);
      const statement = statementFromLogEntry(r.entry as Uint8Array);
      expect(
        verifyEnrolmentStatement(statement, {
          domainKey: B.domainKey,
          address: parseAddress('bob@b.example'),
        }).statement.deviceId,
      ).toBe('phone');
      // Under a.example's key it is not a.example's log (nor a head of it).
      expect(() =>
        new KeyLogVerifier({ domain: 'b.example', logKey: A.domainKey }).update(
          r.head as Uint8Array,
          [],
        ),
      ).toThrow(expect.objectContaining({ code: 'ERR_KEYLOG_PROOF_INVALID' }));

      // The own domain named (in any case) is the own log, answered here.
      const crossed = link.crossings.length;
      const own = await raw.request(ClientFrame.GET_LOG, { domain: 'A.Example', since: 0 });
      new KeyLogVerifier({ domain: 'a.example', logKey: A.domainKey }).update(
        own.head as Uint8Array,
        own.consistency as Uint8Array[],
      );
      expect(link.crossings.length).toBe(crossed);

      // What the other domain refuses comes back as its code; the session stays open.
      const size = head.treeSize;
      expect(
        await raw.request(ClientFrame.GET_LOG, { domain: 'b.example', since: 0, index: size }),
      ).toEqual({ error: 'ERR_PROTOCOL' });
      expect(
        await raw.request(ClientFrame.GET_LOG, { domain: 'b.example', since: size + 1 }),
      ).toEqual({ error: 'ERR_PROTOCOL' });
      expect(await raw.request(ClientFrame.GET_LOG, { domain: 'c.example' })).toEqual({
        error: 'ERR_DOMAIN_NOT_SERVED',
      });
      expect(await raw.request(ClientFrame.GET_LOG, { domain: 'not a domain' })).toEqual({
        error: 'ERR_ADDRESS_INVALID',
      });
      link.lookupFailure = 'ERR_TIMEOUT';
      try {
        expect(await raw.request(ClientFrame.GET_LOG, { domain: 'b.example' })).toEqual({
          error: 'ERR_TIMEOUT',
        });
      } finally {
        link.lookupFailure = undefined;
      }
      expect((await raw.request(ClientFrame.GET_LOG, {})).head).toBeInstanceOf(Uint8Array);
    } finally {
      await raw.close();
    }
  });

  it('is refused clearly by a server without federation', async () => {
    const raw = await rawSession(alone, 'dave');
    try {
      expect(await raw.request(ClientFrame.GET_LOG, { domain: 'b.example' })).toEqual({
        error: 'ERR_DOMAIN_NOT_SERVED',
      });
    } finally {
      await raw.close();
    }
  });
});

describe('verifyDomainLog', () => {
  it('verifies the head under the pinned key, moves forward, and remembers it over a restart', async () => {
    const pins = { domainKey: A.domainKey, domainKeys: { 'B.EXAMPLE': B.domainKey } };
    const alice = A.client('alice', 'laptop', pins);
    await alice.connect();
    expect(alice.domainTreeHead('b.example')).toBeUndefined();
    const first = await alice.verifyDomainLog('b.example');
    expect(first.treeSize).toBeGreaterThanOrEqual(2);
    const dave = B.client('dave', 'phone');
    await dave.connect(); // b.example's log grows
    expect(await alice.verifyDomainLog('b.example')).toEqual({ treeSize: first.treeSize + 1 });
    // The home log through the same call, under the home key.
    expect((await alice.verifyDomainLog('a.example')).treeSize).toBeGreaterThanOrEqual(1);
    const head = alice.domainTreeHead('b.example');
    await alice.close();

    const again = A.client('alice', 'laptop', pins);
    await again.connect();
    expect(again.domainTreeHead('b.example')).toEqual(head);
    expect(await again.verifyDomainLog('b.example')).toEqual({ treeSize: first.treeSize + 1 });
    expect(await codeOf(again.verifyDomainLog('c.example'))).toBe('ERR_INVALID_ARGUMENT');
    await again.close();
  });

  it('refuses a head not signed by the pinned key', async () => {
    const eve = A.client('carol', 'wrongpin', {
      domainKeys: { 'b.example': generateSigningKeyPair().publicKey },
    });
    await eve.connect();
    expect(await codeOf(eve.verifyDomainLog('b.example'))).toBe('ERR_KEYLOG_PROOF_INVALID');
    expect(eve.domainTreeHead('b.example')).toBeUndefined();
  });

  it('refuses a forked or rolled-back history of the other domain, and keeps its trusted head', async () => {
    const carol = A.client('carol', 'desk', { domainKeys: { 'b.example': B.domainKey } });
    await carol.connect();
    const { treeSize } = await carol.verifyDomainLog('b.example');
    const trusted = carol.domainTreeHead('b.example');
    try {
      // Same size, another root: a fork. Larger, not extending it: a fork. Smaller: rollback.
      for (const size of [treeSize, treeSize + 2, treeSize - 1]) {
        forgedLog = forkOfB(size);
        expect(await codeOf(carol.verifyDomainLog('b.example'))).toBe('ERR_KEYLOG_INCONSISTENT');
        expect(carol.domainTreeHead('b.example')).toEqual(trusted);
      }
      // A device that never saw b.example's log trusts the first head it gets (as for the home
      // log): the fork shows only when its head meets another (compare heads with contacts).
      forgedLog = forkOfB(treeSize);
      const fresh = A.client('carol', 'fresh', { domainKeys: { 'b.example': B.domainKey } });
      await fresh.connect();
      expect(await fresh.verifyDomainLog('b.example')).toEqual({ treeSize });
      expect(fresh.domainTreeHead('b.example')).not.toEqual(trusted);
    } finally {
      forgedLog = undefined;
    }
    expect(await carol.verifyDomainLog('b.example')).toEqual({ treeSize });
  });
});

describe('contact enrolment across domains', () => {
  it('checks a contact device of a pinned domain under that domain’s key', async () => {
    const bob = B.client('bob', 'phone');
    await bob.connect();
    const strict = A.client('dave', 'strict', {
      domainKey: A.domainKey,
      domainKeys: { 'b.example': B.domainKey },
      contactEnrolment: true,
    });
    await strict.connect();
    const got = next<ReceivedMessage>(bob, 'message');
    await strict.sendMessage('bob@b.example', 'enrolled by b.example');
    expect((await got).text).toBe('enrolled by b.example');
    await strict.close();

    // The same under a wrong pin for b.example: bob's device is not enrolled by "that" domain.
    const wrong = A.client('dave', 'wrongpin', {
      domainKey: A.domainKey,
      domainKeys: { 'b.example': generateSigningKeyPair().publicKey },
      contactEnrolment: true,
    });
    const seen: TrustWarningEvent[] = [];
    wrong.on('trustWarning', (w) => seen.push(w));
    const bobGot: ReceivedMessage[] = [];
    bob.on('message', (m) => bobGot.push(m));
    await wrong.connect();
    // Sealed for dave's own listed devices at most, never for bob's.
    await wrong.sendMessage('bob@b.example', 'not without enrolment');
    expect(seen).toContainEqual({
      kind: 'enrolment-invalid',
      address: 'bob@b.example',
      device: 'bob@b.example/phone',
    });
    await quiet(200);
    expect(bobGot).toEqual([]);
    await wrong.close();

    // A domain with no pin: not checked (as before), the message goes.
    const unpinned = A.client('dave', 'unpinned', {
      domainKey: A.domainKey,
      contactEnrolment: true,
    });
    await unpinned.connect();
    const got2 = next<ReceivedMessage>(bob, 'message');
    await unpinned.sendMessage('bob@b.example', 'unpinned domain');
    expect((await got2).text).toBe('unpinned domain');
  });
});
