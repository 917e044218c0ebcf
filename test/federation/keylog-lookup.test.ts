/**
 * Key-log look-ups across domains (Server-to-server §5.1 kind 4/5 op 'log'; client protocol §5.6
 * with `domain`) over REAL links on loopback:
 *
 * - the router's strict checks of a key-log answer, against a hand-played b.example (RawLink,
 *   ./router-harness.ts): sizes, shapes, an entry exactly when asked, and the rate limit on
 *   answering;
 * - end to end, two real servers with their FederationNodes in this process: a client of
 *   a.example verifies b.example's log under b.example's pinned key, checks a b.example
 *   contact's enrolment under it, and refuses b.example's log when a second server holding
 *   b.example's keys (the malicious-server trick: a forked domain) answers with another history.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedMessage, TrustWarningEvent } from '../../src/client/client.js';
import { generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import {
  FederationKind,
  MAX_LOG_HEAD_BYTES,
  MAX_LOG_PROOF_HASHES,
  decodeLookupRequest,
  encodeLookupRequest,
} from '../../src/federation/index.js';
import type { LogAnswer } from '../../src/service/remote.js';
import {
  type CborValue,
  decodeStrictCbor,
  encodeStrictCbor,
} from '../../src/transport/cbor-strict.js';
import { KEYLOG_MAX_ENTRY_BYTES } from '../../src/trust/keylog/log.js';
import { next, quiet } from '../service/harness.js';
import { startFullDomain } from './full-domain.js';
import { type TestDomain, makeDomain, until } from './helpers.js';
import { Harness, RawLink, codeOf } from './router-harness.js';

let a: TestDomain;
let b: TestDomain;
beforeAll(async () => {
  [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
});

const harness = new Harness((d) =>
  d === a
    ? [{ domain: 'b.example', proof: 'key', publicKey: b.key.publicKey }]
    : [{ domain: 'a.example', proof: 'key', publicKey: a.key.publicKey }],
);
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await harness.close();
});

const hash = (): Uint8Array => randomBytes(32);
const hashes = (n: number): Uint8Array[] => Array.from({ length: n }, hash);

describe('key-log answers from a hand-played peer', () => {
  /** a.example asks b.example's log; resolves to the request the hand-played b.example got. */
  async function askLog(
    raw: RawLink,
    asked: Promise<unknown>,
  ): Promise<{ asked: Promise<unknown>; rid: Uint8Array; request: CborValue }> {
    const data = await raw.nextData();
    expect(data.kind).toBe(FederationKind.lookup);
    const request = decodeLookupRequest(data.body as CborValue);
    return { asked, rid: request.rid, request: decodeStrictCbor(data.body as Uint8Array) };
  }

  it('asks with since and index only, and takes a well-formed answer', async () => {
    const A = await harness.start(a);
    const raw = new RawLink(await harness.raw(b, A), 'b.example');
    await until(() => A.endpoint.linkTo('b.example') !== undefined);
    const pending = codeOf(A.router.log('B.Example', { since: 3, index: 1 }));
    const { asked, rid, request } = await askLog(raw, pending);
    // No address, no asker: the log is the peer domain's own, and public to whoever checks it.
    expect(Object.keys(request as object).sort()).toEqual(['index', 'op', 'rid', 'since']);
    expect(request).toMatchObject({ op: 'log', since: 3, index: 1 });
    const ok: LogAnswer = {
      head: randomBytes(200),
      consistency: hashes(3),
      entry: randomBytes(100),
      inclusion: hashes(2),
    };
    const body = encodeStrictCbor({ rid, ok: { ...ok } as unknown as CborValue });
    expect(await raw.data(FederationKind.lookupResult, body)).toBe('ACK');
    expect(await asked).toEqual({ resolved: ok });
    // Not for the own domain.
    expect(await codeOf(A.router.log('a.example', { since: 0 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(A.router.log('b.example', { since: -1 }))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('refuses malformed, oversized and unasked-for answers, audited', async () => {
    const A = await harness.start(a, { router: { lookupTimeoutMs: 3000 } });
    const head = randomBytes(150);
    type Case = [string, { index?: number }, Record<string, CborValue>];
    const cases: Case[] = [
      ['no head', {}, { consistency: [] }],
      ['empty head', {}, { head: new Uint8Array(0), consistency: [] }],
      ['huge head', {}, { head: randomBytes(MAX_LOG_HEAD_BYTES + 1), consistency: [] }],
      ['long proof', {}, { head, consistency: hashes(MAX_LOG_PROOF_HASHES + 1) }],
      ['short hash', {}, { head, consistency: [randomBytes(31)] }],
      ['proof not a list', {}, { head, consistency: hash() }],
      ['entry not asked', {}, { head, consistency: [], entry: randomBytes(9), inclusion: [] }],
      ['entry missing', { index: 0 }, { head, consistency: [] }],
      ['entry without proof', { index: 0 }, { head, consistency: [], entry: randomBytes(9) }],
      [
        'huge entry',
        { index: 0 },
        { head, consistency: [], entry: randomBytes(KEYLOG_MAX_ENTRY_BYTES + 1), inclusion: [] },
      ],
      [
        'long inclusion proof',
        { index: 0 },
        {
          head,
          consistency: [],
          entry: randomBytes(9),
          inclusion: hashes(MAX_LOG_PROOF_HASHES + 1),
        },
      ],
      ['unknown key', {}, { head, consistency: [], more: 1 }],
    ];
    const got: [string, string, unknown][] = [];
    for (const [name, index, ok] of cases) {
      const raw = new RawLink(await harness.raw(b, A), 'b.example');
      await until(() => A.endpoint.linkTo('b.example') !== undefined);
      const { asked, rid } = await askLog(
        raw,
        codeOf(A.router.log('b.example', { since: 0, ...index })),
      );
      const answer = await raw.data(FederationKind.lookupResult, encodeStrictCbor({ rid, ok }));
      got.push([name, answer, await asked]);
      raw.raw.destroy();
      await until(() => A.endpoint.linkTo('b.example') === undefined);
    }
    expect(got).toEqual(
      cases.map(([name]) => [name, 'ERR_PAYLOAD_INVALID', 'ERR_PAYLOAD_INVALID']),
    );
    expect(A.audit.filter((e) => e.type === 'federation.object-refused')).toHaveLength(
      cases.length,
    );
  });

  it('answers a peer’s key-log look-up under the bundle rate limit, and refuses bad requests', async () => {
    const B = await harness.start(b, { router: { lookupRate: { rate: 0.001, burst: 2 } } });
    const raw = new RawLink(await harness.raw(a, B), 'a.example');
    const ask = (extra: Record<string, CborValue> = {}): Uint8Array =>
      encodeStrictCbor({ rid: randomBytes(16), op: 'log', since: 0, ...extra });
    // The harness's stand-in inbound keeps no key log: answered with that code, on the link.
    expect(await raw.data(FederationKind.lookup, ask())).toBe('ACK');
    const answer = await raw.nextData();
    expect(answer.kind).toBe(FederationKind.lookupResult);
    expect(decodeStrictCbor(answer.body as Uint8Array)).toMatchObject({ error: 'ERR_NOT_FOUND' });
    for (const bad of [
      ask({ address: 'bob@b.example' }),
      ask({ since: -1 }),
      ask({ index: 'one' }),
      encodeStrictCbor({ rid: randomBytes(16), op: 'log' }),
    ]) {
      expect(await raw.data(FederationKind.lookup, bad)).toBe('ERR_PAYLOAD_INVALID');
    }
    expect(await raw.data(FederationKind.lookup, ask())).toBe('ACK');
    expect(await raw.data(FederationKind.lookup, ask())).toBe('ERR_RATE_LIMITED');
    // Devices look-ups are not under that bucket.
    const devices = encodeLookupRequest({
      rid: randomBytes(16),
      op: 'devices',
      address: 'bob@b.example',
      asker: 'alice@a.example',
    });
    expect(await raw.data(FederationKind.lookup, devices)).toBe('ACK');
  });
});

// ── Two real servers and the client SDK ──────────────────────────────────────────────────────

async function code(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => 'resolved',
    (e: unknown) => (isImppError(e) ? e.code : e),
  );
}

describe('another domain’s key log between two real servers', () => {
  it('verifies it under the pinned key, checks enrolments with it, and refuses a fork', async () => {
    const aRoutes = new Map<string, { host: string; port: number }[]>();
    const bRoutes = new Map<string, { host: string; port: number }[]>();
    const da = await startFullDomain(
      a,
      { domain: b.domain, proof: 'key', publicKey: b.key.publicKey },
      aRoutes,
      cleanups,
      { iterations: 4096 },
    );
    const db = await startFullDomain(
      b,
      { domain: a.domain, proof: 'key', publicKey: a.key.publicKey },
      bRoutes,
      cleanups,
      { iterations: 4096 },
    );
    aRoutes.set(b.domain, [{ host: '127.0.0.1', port: db.fedPort }]);
    bRoutes.set(a.domain, [{ host: '127.0.0.1', port: da.fedPort }]);
    const bob = db.client('bob', 'phone');
    await bob.connect();
    const pins = {
      domainKey: a.key.publicKey,
      domainKeys: { 'b.example': b.key.publicKey },
      contactEnrolment: true,
    };
    const alice = da.client('alice', 'laptop', pins);
    await alice.connect();
    expect(await alice.verifyDomainLog('b.example')).toEqual({ treeSize: 1 });
    const bobTablet = db.client('bob', 'tablet');
    await bobTablet.connect();
    expect(await alice.verifyDomainLog('b.example')).toEqual({ treeSize: 2 });

    // bob's phone is enrolled by b.example: alice seals for it.
    const got = next<ReceivedMessage>(bob, 'message', 10_000);
    await alice.sendMessage('bob@b.example', 'enrolled over there');
    expect((await got).text).toBe('enrolled over there');
    // Under a wrong pin for b.example the same device is refused and gets nothing.
    const wrong = da.client('alice', 'wrongpin', {
      ...pins,
      domainKeys: { 'b.example': generateSigningKeyPair().publicKey },
    });
    const warnings: TrustWarningEvent[] = [];
    wrong.on('trustWarning', (w) => warnings.push(w));
    const bobGot: ReceivedMessage[] = [];
    bob.on('message', (m) => bobGot.push(m));
    await wrong.connect();
    await wrong.sendMessage('bob@b.example', 'refused');
    expect(warnings).toContainEqual({
      kind: 'enrolment-invalid',
      address: 'bob@b.example',
      device: 'bob@b.example/phone',
    });
    expect(await code(wrong.verifyDomainLog('b.example'))).toBe('ERR_KEYLOG_PROOF_INVALID');
    await quiet(300);
    expect(bobGot).toEqual([]);

    // A second b.example (same certificate and keys, its own store and log) now answers a.example.
    const forkRoutes = new Map<string, { host: string; port: number }[]>();
    const forked = await startFullDomain(
      b,
      { domain: a.domain, proof: 'key', publicKey: a.key.publicKey },
      forkRoutes,
      cleanups,
      { iterations: 4096 },
    );
    forkRoutes.set(a.domain, [{ host: '127.0.0.1', port: da.fedPort }]);
    const mallory = forked.client('bob', 'phone');
    await mallory.connect(); // its log: one entry, not b.example's first
    aRoutes.set(b.domain, [{ host: '127.0.0.1', port: forked.fedPort }]);
    for (const l of da.node.endpoint.links) l.close('ERR_TIMEOUT', 'test: move to the fork');
    await until(() => da.node.endpoint.links.length === 0, 5000);
    const trusted = alice.domainTreeHead('b.example');
    expect(await code(alice.verifyDomainLog('b.example'))).toBe('ERR_KEYLOG_INCONSISTENT');
    await forked.client('alice', 'laptop').connect(); // the fork grows to the trusted size
    expect(await code(alice.verifyDomainLog('b.example'))).toBe('ERR_KEYLOG_INCONSISTENT');
    expect(alice.domainTreeHead('b.example')).toEqual(trusted);
  }, 30_000);
});
