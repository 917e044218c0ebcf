/**
 * Transport and robustness threats (docs/security-model.md §8): malformed and oversized frames,
 * slow clients, resource exhaustion, weak TLS, TLS early data and resumption, and the client half
 * of certificate misvalidation (the suite plays TLS servers with bad certificates towards the SDK).
 *
 * Each probe is bounded: a handful of connections, each closed within seconds; the
 * denial-of-service ones need the `dos` capability and stay under its rate.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { type TLSSocket, connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import * as fc from 'fast-check';
import { randomBytes, toHex } from '../../crypto/index.js';
import { decodeFramePayload, encodeFrame } from '../../transport/frame-codec.js';
import { connectTls } from '../../transport/tls-client.js';
import {
  type SuiteCert,
  createSuiteCa,
  issueServerCert,
  selfSignedServerCert,
} from '../attackers/certs.js';
import { LINK_ALPN, LinkFrame } from '../attackers/rogue-domain.js';
import type { FederationAccess, Target, Threat, ThreatContext } from '../types.js';
import {
  ALPN,
  codeOf,
  failureOf,
  framesIn,
  helloBytes,
  rawTcp,
  rawTls,
  sleep,
  userOf,
  type Observed,
} from './net.js';
import { RawClient, type RawBody } from '../raw.js';
import { ClientFrame } from '../../protocol/frames.js';
import { FrameType } from '../../transport/control.js';
import { linkCertificateMisvalidation } from './federation.js';
import { MITIGATED, NOT_TESTED, VULNERABLE } from './outcome.js';

/** Seconds a probe waits for the target to close a hostile connection. */
const CLOSE_WAIT_MS = 3_000;

function account(ctx: ThreatContext, i: number): (typeof ctx.accounts)[number] {
  const a = ctx.accounts[i] ?? ctx.accounts[0];
  if (a === undefined) throw new Error('no test account');
  return a;
}

/** A raw TLS connection that has done the hello exchange by hand; resolves with the WELCOME. */
async function helloed(
  target: Target,
  ctx: ThreatContext,
): Promise<{ seen: Observed<TLSSocket>; welcome: RawBody }> {
  const seen = await rawTls(target);
  ctx.defer(() => {
    seen.socket.destroy();
  });
  seen.socket.write(helloBytes());
  for (let i = 0; i < 100; i++) {
    const w = framesIn(seen.received).find((f) => f.type === FrameType.WELCOME);
    if (w !== undefined) return { seen, welcome: w.body as RawBody };
    await sleep(20);
  }
  throw new Error('no WELCOME within 2 s');
}

/** The CLOSE code a raw socket received, if any. */
function closeCode(seen: Observed<TLSSocket>): string {
  const c = framesIn(seen.received).find((f) => f.type === FrameType.CLOSE);
  const code = (c?.body as RawBody | undefined)?.code;
  return typeof code === 'string' ? code : 'no CLOSE frame';
}

/** A well-behaved SDK session that must survive what the probe does to others. */
async function bystander(ctx: ThreatContext): Promise<{ check(): Promise<string | undefined> }> {
  const a = account(ctx, 0);
  const client = ctx.client(a);
  await ctx.control(`${a.address} holds a well-behaved session`, () => client.connect());
  let closed = false;
  client.on('close', () => {
    closed = true;
  });
  return {
    async check() {
      if (closed) return 'the well-behaved session was closed';
      const error = await failureOf(() => client.subscriptions());
      if (error !== undefined)
        return `the well-behaved session failed a request (${codeOf(error)})`;
      const fresh = ctx.client(account(ctx, 1));
      const loginError = await failureOf(() => fresh.connect());
      if (loginError !== undefined) return `a new login failed (${codeOf(loginError)})`;
      return undefined;
    },
  };
}

// ── T22 ─────────────────────────────────────────────────────────────────────────────────────

/** Zero bytes that complete any frame or TLS record a garbage prefix announced, and then some. */
const PAD = Buffer.alloc(70 * 1024);

function invalidPayload(bytes: Uint8Array): boolean {
  try {
    decodeFramePayload(bytes, 1 << 20);
    return false;
  } catch {
    return true;
  }
}

interface Case {
  readonly label: string;
  run(): Promise<{ closed: boolean; detail: string }>;
}

function malformedCases(ctx: ThreatContext, seed: number): Case[] {
  const { target } = ctx;
  const n = 4;
  const garbage = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), { numRuns: n, seed });
  const badCbor = fc.sample(
    fc.uint8Array({ minLength: 1, maxLength: 200 }).filter(invalidPayload),
    { numRuns: n, seed: seed + 1 },
  );
  const cuts = fc.sample(fc.integer({ min: 0, max: 1_000 }), { numRuns: n, seed: seed + 2 });
  const types = [
    ...fc.sample(fc.integer({ min: 6, max: 15 }), { numRuns: 2, seed: seed + 3 }),
    ...fc.sample(fc.integer({ min: 67, max: 0xffff }), { numRuns: 2, seed: seed + 4 }),
  ];
  const beforeAuth: [number, RawBody][] = [
    [ClientFrame.SEND, { id: 1, object: new Uint8Array(64) }],
    [ClientFrame.GET_DEVICES, { id: 1, address: account(ctx, 1).address }],
    [
      ClientFrame.BIND,
      { deviceId: 'x', identityKey: new Uint8Array(32), signature: new Uint8Array(64) },
    ],
    [ClientFrame.ADD_PREKEYS, { id: 1 }],
  ];
  const afterHello = (label: string, bytes: () => Buffer): Case => ({
    label,
    async run() {
      const { seen } = await helloed(target, ctx);
      seen.socket.write(bytes());
      const closed = await seen.closedWithin(CLOSE_WAIT_MS);
      return { closed, detail: closeCode(seen) };
    },
  });
  const cases: Case[] = [];
  for (const g of garbage) {
    cases.push({
      label: `${g.length} random bytes before TLS`,
      async run() {
        const seen = await rawTcp(target.host, target.port);
        ctx.defer(() => {
          seen.socket.destroy();
        });
        seen.socket.write(Buffer.concat([g, PAD.subarray(0, 20 * 1024)]));
        return { closed: await seen.closedWithin(CLOSE_WAIT_MS), detail: 'TLS refused' };
      },
    });
    cases.push({
      label: `${g.length} random bytes after TLS, before HELLO`,
      async run() {
        const seen = await rawTls(target);
        ctx.defer(() => {
          seen.socket.destroy();
        });
        seen.socket.write(Buffer.concat([g, PAD]));
        const closed = await seen.closedWithin(CLOSE_WAIT_MS);
        return { closed, detail: closeCode(seen) };
      },
    });
  }
  const hello = encodeFrame({
    type: FrameType.HELLO,
    body: { versions: [1], maxFrameBytes: 1 << 20 },
  });
  for (const cut of cuts) {
    const length = cut % hello.payload.length; // shorter than the CBOR item (0 included)
    cases.push({
      label: `HELLO with length prefix ${length} instead of ${hello.payload.length}`,
      async run() {
        const seen = await rawTls(target);
        ctx.defer(() => {
          seen.socket.destroy();
        });
        const prefix = Buffer.alloc(4);
        prefix.writeUInt32BE(length, 0);
        seen.socket.write(Buffer.concat([prefix, hello.payload, PAD]));
        const closed = await seen.closedWithin(CLOSE_WAIT_MS);
        return { closed, detail: closeCode(seen) };
      },
    });
  }
  for (const b of badCbor) {
    cases.push(
      afterHello(`invalid CBOR frame (${b.length} bytes)`, () => {
        const prefix = Buffer.alloc(4);
        prefix.writeUInt32BE(b.length, 0);
        return Buffer.concat([prefix, b]);
      }),
    );
  }
  for (const type of types) {
    cases.push(
      afterHello(`unknown frame type ${type}`, () => encodeFrame({ type, body: null }).bytes),
    );
  }
  // [16, {"m": "<0xff 0xfe>"}]: well-formed CBOR whose text string is not UTF-8.
  const badUtf8 = Buffer.from([0x82, 0x10, 0xa1, 0x61, 0x6d, 0x62, 0xff, 0xfe]);
  cases.push(
    afterHello('a text string that is not UTF-8', () => {
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(badUtf8.length, 0);
      return Buffer.concat([prefix, badUtf8]);
    }),
  );
  for (const [type, body] of beforeAuth) {
    cases.push(
      afterHello(
        `request type ${type} before authentication`,
        () => encodeFrame({ type, body }).bytes,
      ),
    );
  }
  return cases;
}

const t22: Threat = {
  id: 'T22',
  name: 'malformed-frames',
  class: 'transport-and-robustness',
  title: 'garbage, bad lengths, invalid CBOR, unknown types, requests before authentication',
  deadlineMs: 30_000,
  async run(ctx) {
    const good = await bystander(ctx);
    const seed = Buffer.from(randomBytes(4)).readUInt32BE(0) >>> 1;
    const cases = malformedCases(ctx, seed);
    const evidence = [`fast-check seed ${seed}; ${cases.length} hostile connections, 3 at a time`];
    const survived: string[] = [];
    for (let i = 0; i < cases.length; i += 3) {
      const batch = cases.slice(i, i + 3);
      const results = await Promise.all(
        batch.map(async (c) => {
          try {
            return { c, ...(await c.run()) };
          } catch (error) {
            // Refused before the probe got going (e.g. TLS closed at once): that is a close.
            return { c, closed: true, detail: `refused (${codeOf(error)})` };
          }
        }),
      );
      for (const r of results) {
        evidence.push(`${r.c.label}: ${r.closed ? 'closed' : 'STILL OPEN'} (${r.detail})`);
        if (!r.closed) survived.push(r.c.label);
      }
    }
    const broken = await good.check();
    if (broken !== undefined) evidence.push(broken);
    if (broken !== undefined) return VULNERABLE(`hostile input harmed others: ${broken}`, evidence);
    if (survived.length > 0) {
      return VULNERABLE(
        `${survived.length} hostile connection(s) were not closed within ${CLOSE_WAIT_MS / 1000} s: ${survived[0] ?? ''}`,
        evidence,
      );
    }
    return MITIGATED(
      `all ${cases.length} hostile connections were closed (typed CLOSE where TLS was up); the well-behaved session and a new login kept working`,
      evidence,
    );
  },
};

// ── T23 ─────────────────────────────────────────────────────────────────────────────────────

/** Above this, a stranger (not yet authenticated) may make the server hold too much per socket. */
const MAX_SANE_PRE_AUTH_FRAME = 1024 * 1024;

const t23: Threat = {
  id: 'T23',
  name: 'oversized-frames',
  class: 'transport-and-robustness',
  title: 'a length prefix over the limit, or a huge field in a valid frame',
  async run(ctx) {
    const good = await bystander(ctx);
    const evidence: string[] = [];
    const problems: string[] = [];
    const { seen, welcome } = await helloed(ctx.target, ctx);
    const limit = Number(welcome.maxFrameBytes);
    const authLimit = Number(welcome.authMaxFrameBytes);
    evidence.push(
      `WELCOME: pre-auth frame limit ${limit} bytes, after authentication ${authLimit}`,
    );
    if (!(limit <= MAX_SANE_PRE_AUTH_FRAME)) {
      problems.push(`unauthenticated peers may send ${limit}-byte frames (more than 1 MiB each)`);
    }
    // A prefix one above the limit, and nothing after it: refused at once, nothing buffered.
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(Math.min(limit + 1, 0xffffffff), 0);
    const t0 = Date.now();
    seen.socket.write(prefix);
    const closed = await seen.closedWithin(CLOSE_WAIT_MS);
    evidence.push(
      `prefix of ${limit + 1} bytes alone: ${closed ? `closed after ${Date.now() - t0} ms` : 'still open'} (${closeCode(seen)})`,
    );
    if (!closed) problems.push('an over-limit length prefix did not close the connection');
    // A huge field inside a valid frame: a mechanism name of half the frame limit.
    const size = Math.floor(Math.min(limit, 64 * 1024) / 2);
    const probe = await RawClient.open(ctx);
    await probe.offer();
    probe.conn.send(ClientFrame.AUTH_START, { mechanism: 'X'.repeat(size), initial: null });
    const answer = await probe.next(
      [ClientFrame.AUTH_FAILURE, ClientFrame.AUTH_CHALLENGE],
      CLOSE_WAIT_MS,
    );
    const closeInfo = probe.isClosed ? await probe.closed : undefined;
    const failure = (answer?.body as RawBody | undefined)?.failure;
    const seenAnswer =
      answer === undefined ? 'no answer' : typeof failure === 'string' ? failure : 'a challenge';
    evidence.push(
      `AUTH_START with a ${size}-character mechanism name: ${seenAnswer}, ${closeInfo === undefined ? 'open' : `closed (${closeInfo.error?.code ?? 'no code'})`}`,
    );
    if (answer?.type === ClientFrame.AUTH_CHALLENGE)
      problems.push('a bogus huge mechanism name was accepted');
    probe.close();
    const broken = await good.check();
    if (broken !== undefined) problems.push(broken);
    if (problems.length > 0) return VULNERABLE(problems.join('; '), evidence);
    return MITIGATED(
      `an over-limit prefix closes the connection at once (limit ${limit} bytes before authentication); huge fields are refused; others carry on`,
      evidence,
    );
  },
};

// ── T24 ─────────────────────────────────────────────────────────────────────────────────────

/** The longest the suite waits for a pre-auth deadline to strike. */
const SLOW_WAIT_CAP_MS = 40_000;
/** A pre-auth window beyond this lets a slowloris hold sockets for minutes. */
const MAX_SANE_PRE_AUTH_MS = 300_000;

const t24: Threat = {
  id: 'T24',
  name: 'slow-clients',
  class: 'transport-and-robustness',
  title: 'slowloris before authentication; a client that never reads',
  needs: ['dos'],
  deadlineMs: SLOW_WAIT_CAP_MS + 15_000,
  async run(ctx) {
    const good = await bystander(ctx);
    const { seen: first, welcome } = await helloed(ctx.target, ctx);
    first.socket.destroy();
    const deadline = Number(welcome.preAuthTimeoutMs);
    const evidence = [`WELCOME: pre-authentication deadline ${deadline} ms`];
    if (!(deadline <= MAX_SANE_PRE_AUTH_MS)) {
      return VULNERABLE(
        `the pre-authentication deadline is ${Math.round(deadline / 1000)} s: a slowloris may hold each socket that long`,
        evidence,
      );
    }
    const wait = deadline + 3_000;
    if (wait > SLOW_WAIT_CAP_MS) {
      return NOT_TESTED(
        `the pre-authentication deadline (${deadline} ms) is longer than the suite waits (${SLOW_WAIT_CAP_MS} ms); lower limits.preAuthTimeoutMs for the run to observe it`,
        evidence,
      );
    }
    // Three slowloris sockets (after HELLO, the prefix of a frame just under the limit, then one
    // byte of it every 200 ms: it would take hours to complete) and one TCP socket that never
    // starts TLS, all bounded by the same deadline from accept.
    const slow = await Promise.all([0, 1, 2].map(() => helloed(ctx.target, ctx)));
    const silent = await rawTcp(ctx.target.host, ctx.target.port);
    ctx.defer(() => {
      silent.socket.destroy();
    });
    const announced = Math.max(1, Math.min(Number(welcome.maxFrameBytes) - 1, 60_000));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(announced, 0);
    for (const s of slow) s.seen.socket.write(prefix);
    const timer = setInterval(() => {
      for (const s of slow) if (!s.seen.socket.destroyed) s.seen.socket.write(Buffer.alloc(1));
    }, 200);
    ctx.defer(() => {
      clearInterval(timer);
    });
    const t0 = Date.now();
    const closed = await Promise.all([
      ...slow.map((s) => s.seen.closedWithin(wait)),
      silent.closedWithin(wait),
    ]);
    clearInterval(timer);
    evidence.push(
      `3 slowloris sockets (1 byte / 200 ms) and 1 silent TCP socket: ${closed.filter(Boolean).length}/4 closed within ${Date.now() - t0} ms (codes: ${slow.map((s) => closeCode(s.seen)).join(', ')})`,
    );
    evidence.push(
      'a client that never reads is cut off at the outbound limit: not probed remotely (it needs megabytes pushed at one device); test/transport/tls.test.ts "slow reader" covers it',
    );
    const broken = await good.check();
    if (broken !== undefined) evidence.push(broken);
    if (closed.some((c) => !c)) {
      return VULNERABLE(
        'a slow pre-authentication socket outlived the advertised deadline',
        evidence,
      );
    }
    if (broken !== undefined) return VULNERABLE(`slow clients harmed others: ${broken}`, evidence);
    return MITIGATED(
      `slowloris and silent sockets were closed by the ${deadline} ms pre-authentication deadline; others carried on`,
      evidence,
    );
  },
};

// ── T25 ─────────────────────────────────────────────────────────────────────────────────────

/** Upload batches of 100 one-time prekeys the probe may try before calling the quota missing. */
const PREKEY_BATCHES = 12;

const t25: Threat = {
  id: 'T25',
  name: 'resource-exhaustion',
  class: 'transport-and-robustness',
  title: 'floods of subscriptions, devices, queues, prekey fetches, fan-out',
  needs: ['dos'],
  deadlineMs: 30_000,
  async run(ctx) {
    const good = await bystander(ctx);
    const attacker = ctx.client(account(ctx, ctx.accounts.length - 1));
    await ctx.control('the attacking account logs in on a fresh device', () => attacker.connect());
    const gapMs = Math.ceil(1000 / Math.max(1, ctx.dos.maxRate));
    const evidence: string[] = [];
    // One-time prekeys: 100 per upload, until the store refuses.
    let stored = 0;
    let refusedAt: string | undefined;
    for (let b = 0; b < PREKEY_BATCHES && refusedAt === undefined; b++) {
      const keys = Array.from({ length: 100 }, (_, i) => ({
        id: 1_000_000 + b * 100 + i,
        publicKey: randomBytes(32),
      }));
      try {
        const r = await attacker.rawRequest(ClientFrame.ADD_PREKEYS, { oneTimePrekeys: keys });
        stored = Number(r.count);
      } catch (error) {
        refusedAt = codeOf(error);
      }
      await sleep(gapMs);
    }
    evidence.push(
      `one-time prekey uploads of 100: ${refusedAt === undefined ? `all ${PREKEY_BATCHES} accepted` : `refused with ${refusedAt}`} (${stored} stored before)`,
    );
    // Bundle fetches for an address with no devices, at the probe's rate for two seconds.
    const nobody = `nobody-${toHex(randomBytes(5))}@${ctx.target.domain}`;
    const errors = new Map<string, number>();
    let fetched = 0;
    const until = Date.now() + 2_000;
    while (Date.now() < until) {
      const error = await failureOf(() => attacker.rawRequest(35, { address: nobody }));
      if (error === undefined) fetched++;
      else errors.set(codeOf(error), (errors.get(codeOf(error)) ?? 0) + 1);
      await sleep(gapMs);
    }
    evidence.push(
      `bundle fetches at ≤ ${ctx.dos.maxRate}/s for 2 s: ${fetched} answered, ${[...errors].map(([c, k]) => `${k}× ${c}`).join(', ') || 'none refused (the per-session allowance is above the probe rate)'}`,
    );
    const broken = await good.check();
    if (broken !== undefined) evidence.push(broken);
    if (refusedAt === undefined) {
      return VULNERABLE(
        `${PREKEY_BATCHES * 100} one-time prekeys were stored for one device without a quota`,
        evidence,
      );
    }
    if (refusedAt !== 'ERR_QUOTA_EXCEEDED' && refusedAt !== 'ERR_RATE_LIMITED') {
      return VULNERABLE(`the prekey flood ended with ${refusedAt}, not a quota error`, evidence);
    }
    if (broken !== undefined) return VULNERABLE(`the flood harmed others: ${broken}`, evidence);
    return MITIGATED(
      `the prekey flood hit ${refusedAt} after ${stored} keys; the server kept serving the others`,
      evidence,
    );
  },
};

// ── T26 ─────────────────────────────────────────────────────────────────────────────────────

const AEAD_SUITES = new Set([
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_CCM_SHA256',
]);

/** Tries a handshake capped at TLS 1.2; resolves with the protocol it got, or `undefined`. */
function oldTls(
  host: string,
  port: number,
  ca: string,
  servername: string,
  alpn: string[],
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      ca,
      servername,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.2',
      ALPNProtocols: alpn,
      // Old clients offer old suites too: allow them so only the server's choice counts.
      ciphers: 'ALL:@SECLEVEL=0',
      rejectUnauthorized: false,
    });
    const done = (v: string | undefined): void => {
      socket.destroy();
      resolve(v);
    };
    socket.once('secureConnect', () => {
      done(socket.getProtocol() ?? 'unknown');
    });
    socket.once('error', () => {
      done(undefined);
    });
    socket.once('close', () => {
      done(undefined);
    });
    setTimeout(() => {
      done(undefined);
    }, CLOSE_WAIT_MS).unref();
  });
}

/** What one connection to the federation port got. */
interface LinkTlsProbe {
  /** The negotiated protocol and suite, when the handshake completed. */
  readonly protocol?: string;
  readonly cipher?: string;
  /** A link frame came back to our OPEN: the link layer served this connection. */
  readonly answered: boolean;
  /** The connection was still open, silent, when the probe gave up. */
  readonly lingered: boolean;
}

/**
 * One connection to the federation port, capped at `maxVersion` and offering `alpn` (none if
 * undefined); after the handshake it sends an OPEN as a peer the target federates with. The
 * target's certificate is not checked: only what the port agrees to counts.
 */
function probeLink(
  fed: FederationAccess,
  maxVersion: 'TLSv1.2' | 'TLSv1.3',
  alpn: string[] | undefined,
): Promise<LinkTlsProbe> {
  // The pinned-key peer first: its OPEN is answered with ACCEPT and no link opens without a
  // proof, so the probe leaves nothing behind.
  const cert = fed.keyPeer === undefined ? fed.x509Peer?.cert : undefined;
  const from = fed.keyPeer?.domain ?? fed.x509Peer?.domain ?? 'peer.invalid';
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: fed.host,
      port: fed.port,
      servername: fed.domain,
      minVersion: maxVersion === 'TLSv1.2' ? 'TLSv1' : 'TLSv1.3',
      maxVersion,
      ...(alpn === undefined ? {} : { ALPNProtocols: alpn }),
      ...(maxVersion === 'TLSv1.2' ? { ciphers: 'ALL:@SECLEVEL=0' } : {}),
      ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }),
      rejectUnauthorized: false,
    });
    let protocol: string | undefined;
    let cipher: string | undefined;
    let settled = false;
    const done = (answered: boolean, lingered: boolean): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({
        ...(protocol === undefined ? {} : { protocol }),
        ...(cipher === undefined ? {} : { cipher }),
        answered,
        lingered,
      });
    };
    socket.once('secureConnect', () => {
      protocol = socket.getProtocol() ?? 'unknown';
      cipher = socket.getCipher().name;
      socket.write(
        encodeFrame({
          type: LinkFrame.OPEN,
          body: {
            versions: [1],
            from,
            to: fed.domain,
            want: 'certificate',
            window: 64,
            maxFrameBytes: 263_168,
          },
        }).bytes,
      );
    });
    socket.on('data', () => {
      done(true, false);
    });
    socket.once('error', () => {
      done(false, false);
    });
    socket.once('close', () => {
      done(false, false);
    });
    setTimeout(() => {
      done(false, protocol !== undefined);
    }, CLOSE_WAIT_MS).unref();
  });
}

/** T26 on the federation port: TLS 1.3 with ALPN `impp-s2s/1` only, AEAD suites. */
async function weakLinkTls(
  ctx: ThreatContext,
  evidence: string[],
  problems: string[],
): Promise<void> {
  const fed = ctx.federation;
  if (fed === undefined) {
    evidence.push(
      'federation port not probed: no federation access (--spawn, or --federation with a peer)',
    );
    return;
  }
  const good = await ctx.control(
    `a TLS 1.3 link with ALPN ${LINK_ALPN} gets an answer to OPEN`,
    async () => {
      const got = await probeLink(fed, 'TLSv1.3', [LINK_ALPN]);
      if (!got.answered) throw new Error('the federation port did not answer OPEN');
      return got;
    },
  );
  evidence.push(
    `federation port, TLS 1.3 client with ${LINK_ALPN}: ${good.protocol ?? '?'} with ${good.cipher ?? '?'}, OPEN answered`,
  );
  if (good.protocol !== 'TLSv1.3')
    problems.push(`a modern peer got ${good.protocol ?? '?'} on the federation port`);
  if (good.cipher === undefined || !AEAD_SUITES.has(good.cipher))
    problems.push(`federation cipher ${good.cipher ?? '?'} is not an AEAD suite`);
  const old = await probeLink(fed, 'TLSv1.2', [LINK_ALPN]);
  evidence.push(
    `federation port, client capped at TLS 1.2 (old suites allowed): ${old.protocol ?? 'refused'}`,
  );
  if (old.protocol !== undefined)
    problems.push(`the federation port completed a ${old.protocol} handshake`);
  const offers: [string, string[] | undefined][] = [
    ['no ALPN', undefined],
    [`ALPN ${ALPN} only`, [ALPN]],
  ];
  for (const [label, alpn] of offers) {
    const got = await probeLink(fed, 'TLSv1.3', alpn);
    const seen =
      got.protocol === undefined
        ? 'refused at the handshake'
        : got.answered
          ? 'OPEN answered'
          : got.lingered
            ? 'kept open, silent'
            : 'closed after the handshake, OPEN unanswered';
    evidence.push(`federation port, TLS 1.3 with ${label}: ${seen}`);
    if (got.answered || got.lingered)
      problems.push(`the federation port served a link with ${label} (${seen})`);
  }
}

const t26: Threat = {
  id: 'T26',
  name: 'weak-tls',
  class: 'transport-and-robustness',
  title: 'TLS 1.2 or older, weak cipher suites',
  async run(ctx) {
    const { target } = ctx;
    const servername = target.servername ?? target.domain;
    const modern = await ctx.control('a TLS 1.3 client connects', async () => {
      const seen = await rawTls(target);
      const info = { protocol: seen.socket.getProtocol(), cipher: seen.socket.getCipher().name };
      seen.socket.destroy();
      return info;
    });
    const evidence = [`TLS 1.3 client: ${modern.protocol ?? '?'} with ${modern.cipher}`];
    const problems: string[] = [];
    if (modern.protocol !== 'TLSv1.3')
      problems.push(`a modern client got ${modern.protocol ?? '?'}`);
    if (!AEAD_SUITES.has(modern.cipher))
      problems.push(`cipher ${modern.cipher} is not an AEAD suite`);
    const ports: [string, number, string[]][] = [['client', target.port, [ALPN]]];
    if (target.websocketPort !== undefined)
      ports.push(['websocket', target.websocketPort, ['http/1.1']]);
    for (const [label, port, alpn] of ports) {
      const got = await oldTls(target.host, port, target.ca, servername, alpn);
      evidence.push(
        `${label} port, client capped at TLS 1.2 (old suites allowed): ${got ?? 'refused'}`,
      );
      if (got !== undefined) problems.push(`the ${label} port completed a ${got} handshake`);
    }
    await weakLinkTls(ctx, evidence, problems);
    if (problems.length > 0) return VULNERABLE(problems.join('; '), evidence);
    const link =
      ctx.federation === undefined
        ? ''
        : `; so does the federation port, which serves only ALPN ${LINK_ALPN}`;
    return MITIGATED(
      `only TLS 1.3 is negotiated (${modern.cipher}); TLS 1.2 and older are refused${link}`,
      evidence,
    );
  },
};

// ── T29 (client side) ────────────────────────────────────────────────────────────────────────

/** A TLS 1.3 server with `cert` that records whether a client finished the handshake. */
async function fakeServer(
  ctx: ThreatContext,
  cert: SuiteCert,
): Promise<{ port: number; handshakes: () => number; bytes: () => number }> {
  let handshakes = 0;
  let bytes = 0;
  const server = createTlsServer(
    { key: cert.keyPem, cert: cert.certPem, minVersion: 'TLSv1.3', ALPNProtocols: [ALPN] },
    (socket) => {
      handshakes++;
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        socket.destroy();
      });
    },
  );
  server.on('tlsClientError', () => undefined);
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  ctx.defer(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    handshakes: () => handshakes,
    bytes: () => bytes,
  };
}

const t29: Threat = {
  id: 'T29',
  name: 'certificate-misvalidation',
  class: 'federation',
  title: 'the SDK accepts an expired, self-signed, wrong-name or other-CA server certificate',
  needs: ['local-server'],
  async run(ctx) {
    const name = 'localhost';
    const trusted = await createSuiteCa('impp threat suite CA');
    const rogue = await createSuiteCa('impp threat suite CA'); // same name, other key
    const now = Date.now();
    const good = await issueServerCert(trusted, { names: [name, '127.0.0.1'] });
    const bad: [string, SuiteCert][] = [
      [
        'expired',
        await issueServerCert(trusted, {
          names: [name],
          notBefore: new Date(now - 172_800_000),
          notAfter: new Date(now - 86_400_000),
        }),
      ],
      [
        'not yet valid',
        await issueServerCert(trusted, {
          names: [name],
          notBefore: new Date(now + 86_400_000),
          notAfter: new Date(now + 172_800_000),
        }),
      ],
      ['self-signed', await selfSignedServerCert({ names: [name] })],
      ['wrong name', await issueServerCert(trusted, { names: ['other.invalid'] })],
      ["rogue CA with the trusted CA's name", await issueServerCert(rogue, { names: [name] })],
    ];
    const a = account(ctx, 0);
    const attempt = async (
      cert: SuiteCert,
    ): Promise<{ handshakes: number; bytes: number; error: unknown }> => {
      const server = await fakeServer(ctx, cert);
      const client = ctx.client(a, {
        host: '127.0.0.1',
        port: server.port,
        ca: trusted.certPem,
        servername: name,
      });
      const error = await failureOf(() => client.connect());
      await sleep(50);
      return { handshakes: server.handshakes(), bytes: server.bytes(), error };
    };
    await ctx.control('the SDK completes TLS with a valid certificate of its CA', async () => {
      const r = await attempt(good);
      if (r.handshakes === 0 || r.bytes === 0)
        throw new Error('the SDK did not talk to a valid server');
    });
    const evidence: string[] = [];
    const accepted: string[] = [];
    for (const [label, cert] of bad) {
      const r = await attempt(cert);
      evidence.push(
        `${label}: ${r.handshakes > 0 ? `handshake completed, ${r.bytes} bytes sent` : 'refused'} (${codeOf(r.error)})`,
      );
      if (r.handshakes > 0 || r.bytes > 0) accepted.push(label);
    }
    // The link half: the target's federation endpoint and a peer's link certificate.
    const link = await linkCertificateMisvalidation(ctx, evidence);
    if (accepted.length > 0 || link.problems.length > 0) {
      return VULNERABLE(
        [
          ...(accepted.length > 0
            ? [`the SDK accepted a server certificate that is ${accepted.join(', ')}`]
            : []),
          ...link.problems,
        ].join('; '),
        evidence,
      );
    }
    return MITIGATED(
      'the SDK refused expired, not-yet-valid, self-signed, wrong-name and rogue-CA certificates before sending anything' +
        (link.ran
          ? '; the federation endpoint refused expired, self-signed, serverAuth-only, CN-only and wildcard link certificates'
          : ' (link half not run: see the evidence)'),
      evidence,
    );
  },
};

// ── T56 ─────────────────────────────────────────────────────────────────────────────────────

/**
 * Runs `openssl s_client` with `args`, closing its input after 700 ms (TLS 1.3 tickets arrive
 * after the handshake); resolves with its output, or `undefined` when there is no openssl.
 */
function opensslClient(args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', ...args]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.on('error', () => undefined);
    const timer = setTimeout(() => {
      child.stdin.end();
    }, 700);
    const kill = setTimeout(() => {
      child.kill();
    }, 5_000);
    child.once('error', () => {
      clearTimeout(timer);
      clearTimeout(kill);
      resolve(undefined);
    });
    child.once('close', () => {
      clearTimeout(timer);
      clearTimeout(kill);
      resolve(out);
    });
  });
}

const t56: Threat = {
  id: 'T56',
  name: 'tls-early-data',
  class: 'transport-and-robustness',
  title: 'TLS 1.3 early data replayed; a resumed session reusing a binding',
  async run(ctx) {
    const { target } = ctx;
    const a = account(ctx, 0);
    const servername = target.servername ?? target.domain;
    const evidence: string[] = [];
    const problems: string[] = [];
    // Resumption: the exporter of a resumed connection must be fresh, and a login proof made on
    // the first connection must not work on the resumed one.
    let ticket: Buffer | undefined;
    const firstConn = await ctx.control('a TLS connection and a -PLUS login', async () => {
      const conn = await connectTls({
        host: target.host,
        port: target.port,
        ca: target.ca,
        servername,
        onSession: (s) => {
          ticket = s;
        },
      });
      ctx.defer(() => {
        conn.close();
      });
      return conn;
    });
    const firstProbe = new RawClient(firstConn);
    const login = await firstProbe.login({ user: userOf(a), password: a.password });
    for (let i = 0; i < 50 && ticket === undefined; i++) await sleep(20);
    const exporter1 = Buffer.from(firstConn.channelBinding());
    firstConn.close();
    if (ticket === undefined) {
      evidence.push('the server issued no session ticket: nothing to resume');
    } else {
      const resumed = await connectTls({
        host: target.host,
        port: target.port,
        ca: target.ca,
        servername,
        session: ticket,
      });
      ctx.defer(() => {
        resumed.close();
      });
      const exporter2 = Buffer.from(resumed.channelBinding());
      const probe = new RawClient(resumed);
      await probe.offer();
      probe.conn.send(ClientFrame.AUTH_START, {
        mechanism: login.mechanism,
        initial: login.sent[0] ?? null,
      });
      await probe.next([ClientFrame.AUTH_CHALLENGE, ClientFrame.AUTH_FAILURE]);
      probe.conn.send(ClientFrame.AUTH_RESPONSE, { data: login.sent[1] ?? new Uint8Array(0) });
      const answer = await probe.next([ClientFrame.AUTH_SUCCESS, ClientFrame.AUTH_FAILURE]);
      probe.close();
      evidence.push(
        `resumed: ${resumed.sessionReused ? 'yes' : 'no (full handshake)'}; exporter ${exporter1.equals(exporter2) ? 'SAME' : 'fresh'}; the first connection's ${login.mechanism} proof replayed: ${answer?.type === ClientFrame.AUTH_SUCCESS ? 'ACCEPTED' : 'refused'}`,
      );
      if (exporter1.equals(exporter2))
        problems.push('a resumed connection has the same exporter value');
      if (answer?.type === ClientFrame.AUTH_SUCCESS)
        problems.push('a login proof from an earlier connection worked on the resumed one');
    }
    // 0-RTT: Node cannot send early data, so the probe uses the openssl command line if present.
    const dir = ctx.tempDir();
    const sess = join(dir, 'session.pem');
    const caFile = join(dir, 'ca.pem');
    const early = join(dir, 'early.bin');
    writeFileSync(caFile, target.ca);
    writeFileSync(early, helloBytes());
    const common = [
      '-connect',
      `${target.host}:${target.port}`,
      '-servername',
      servername,
      '-alpn',
      ALPN,
      '-tls1_3',
      '-CAfile',
      caFile,
    ];
    const firstOut = await opensslClient([...common, '-sess_out', sess]);
    const earlyProbed = firstOut !== undefined;
    if (firstOut === undefined) {
      evidence.push('0-RTT: not probed (no openssl command line on this machine)');
    } else {
      const out = (await opensslClient([...common, '-sess_in', sess, '-early_data', early])) ?? '';
      const line =
        /Early data was (accepted|rejected|not sent)/.exec(out)?.[0] ?? 'no early-data line';
      const maxEarly = /Max Early Data: (\d+)/.exec(firstOut)?.[1] ?? '?';
      const reused = /^Reused,/m.test(out) ? 'resumed' : 'not resumed';
      evidence.push(
        `0-RTT with openssl s_client: tickets allow ${maxEarly} bytes of early data; ${reused}; ${line}`,
      );
      if (/Early data was accepted/.test(out))
        problems.push('TLS 1.3 early data (0-RTT) was accepted');
    }
    if (problems.length > 0) return VULNERABLE(problems.join('; '), evidence);
    if (ticket === undefined && !earlyProbed) {
      return NOT_TESTED('no session ticket to resume and no openssl to try 0-RTT', evidence);
    }
    return MITIGATED(
      `${earlyProbed ? 'no early data is accepted' : '0-RTT not probed (no openssl)'}; ${ticket === undefined ? 'no resumption offered' : 'a resumed connection has a fresh exporter and an old proof fails there'}`,
      evidence,
    );
  },
};

export const transportThreats: readonly Threat[] = [t22, t23, t24, t25, t26, t29, t56];
