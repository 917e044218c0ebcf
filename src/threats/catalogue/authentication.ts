/**
 * Authentication threats (docs/security-model.md §8): cleartext, -PLUS stripping, channel-binding
 * MITM, weak SCRAM, brute force, user enumeration, device-proof replay, unbound-login relay, and
 * the rows the suite cannot play remotely (with the reason).
 *
 * The SDK under test is the one this build ships (src/client); the relay is
 * src/threats/attackers/relay.ts with a CA the probe's client is told to trust.
 */
import { generateSigningKeyPair, randomBytes, sign, toHex } from '../../crypto/index.js';
import { bindingInput } from '../../client/protocol.js';
import type { CborValue } from '../../transport/cbor-strict.js';
import { framePayload, stripPlusFromOffer, type RelayHook } from '../attackers/relay.js';
import type { Threat, ThreatContext } from '../types.js';
import {
  codeOf,
  failureOf,
  framesIn,
  helloBytes,
  rawTcp,
  scramAttributes,
  scramFirst,
  scramWrongProof,
  sleep,
  trustedRelay,
  userOf,
  viaRelay,
} from './net.js';
import { RawClient, type RawBody } from '../raw.js';
import { ClientFrame } from '../../protocol/frames.js';
import { FrameType } from '../../transport/control.js';
import { MITIGATED, NOT_TESTED, VULNERABLE } from './outcome.js';
import { pkiThreats } from './pki.js';
import { mannWhitney } from './stats.js';

function token(): string {
  return toHex(randomBytes(6));
}

/** The control every login threat starts with: the SDK logs in directly. */
async function directLogin(ctx: ThreatContext): Promise<void> {
  const account = ctx.accounts[0];
  if (account === undefined) throw new Error('no test account');
  await ctx.control(`${account.address} logs in directly with the SDK`, async () => {
    const client = ctx.client(account);
    await client.connect();
    await client.close();
  });
}

/** The mechanisms the target offers on a TLS connection. */
async function offered(ctx: ThreatContext): Promise<string[]> {
  const probe = await RawClient.open(ctx);
  try {
    return await probe.offer();
  } finally {
    probe.close();
  }
}

const t14: Threat = {
  id: 'T14',
  name: 'plain-without-tls',
  class: 'authentication',
  title: 'PLAIN offered or accepted without TLS',
  async run(ctx) {
    const mechanisms = await ctx.control('the TLS port offers mechanisms', () => offered(ctx));
    const evidence = [`offered inside TLS 1.3: ${mechanisms.join(', ')}`];
    const ports: [string, number][] = [['client', ctx.target.port]];
    if (ctx.target.websocketPort !== undefined) ports.push(['websocket', ctx.target.websocketPort]);
    const served: string[] = [];
    for (const [label, port] of ports) {
      const plain = await rawTcp(ctx.target.host, port);
      ctx.defer(() => {
        plain.socket.destroy();
      });
      // A cleartext client speaks first: a HELLO frame, then (for the WebSocket port) an
      // HTTP upgrade. Anything the target answers in impp frames or an HTTP 101 is service.
      plain.socket.write(helloBytes());
      if (label === 'websocket') {
        plain.socket.write(
          'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
      }
      const closed = await plain.closedWithin(3_000);
      const bytes = Buffer.concat(plain.received);
      const frames = framesIn(plain.received).filter(
        (f) =>
          f.type === FrameType.WELCOME ||
          f.type === ClientFrame.AUTH_OFFER ||
          f.type === FrameType.CLOSE,
      );
      const upgraded = bytes.toString('latin1').includes('HTTP/1.1 101');
      evidence.push(
        `${label} port, cleartext: ${bytes.length} bytes back, ${frames.length} impp frames, ` +
          `${upgraded ? 'HTTP 101' : 'no upgrade'}, ${closed ? 'closed' : 'still open after 3 s'}`,
      );
      if (frames.length > 0 || upgraded) served.push(label);
    }
    if (served.length > 0) {
      return VULNERABLE(
        `the ${served.join(' and ')} port serves impp in cleartext (PLAIN could run there)`,
        evidence,
      );
    }
    return MITIGATED(
      'no cleartext service on the client ports: a cleartext HELLO gets no impp answer, so no mechanism (PLAIN included) is ever offered or run before TLS',
      evidence,
    );
  },
};

/** Frame types a relay saw in one direction. */
function seenTypes(frames: readonly { frame: { type: number } | undefined }[]): number[] {
  return frames.map((f) => f.frame?.type ?? -1);
}

function mechanismStarted(
  frames: readonly { frame: { type: number; body: CborValue } | undefined }[],
): string | undefined {
  const start = frames.find((f) => f.frame?.type === ClientFrame.AUTH_START);
  const m = (start?.frame?.body as RawBody | undefined)?.mechanism;
  return typeof m === 'string' ? m : undefined;
}

const t15: Threat = {
  id: 'T15',
  name: 'scram-plus-stripping',
  class: 'authentication',
  title: 'a proxy hides -PLUS so the client falls back to unbound SCRAM',
  async run(ctx) {
    await directLogin(ctx);
    const seen = { plus: false };
    const strip: RelayHook = (f) => {
      if (f.direction !== 'to-client' || f.frame === undefined) return undefined;
      const stripped = stripPlusFromOffer(f.frame);
      if (stripped === undefined) return undefined;
      seen.plus = true;
      return [framePayload(stripped)];
    };
    const { relay, ca } = await trustedRelay(ctx, strip);
    const account = ctx.accounts[0] as (typeof ctx.accounts)[number];
    const client = ctx.client(account, viaRelay(ctx, relay, ca));
    const error = await failureOf(() => client.connect());
    const conn = await relay.nextConnection();
    if (!seen.plus) {
      return NOT_TESTED('the target offers no -PLUS mechanism, so there is nothing to strip', [
        'see T57 for unbound mechanisms',
      ]);
    }
    const toServer = conn.seen('to-server');
    const toClient = conn.seen('to-client');
    const mechanism = mechanismStarted(toServer);
    const evidence = [
      'relay (certificate trusted by the client) removed every -PLUS mechanism from AUTH_OFFER',
      `SDK: ${mechanism === undefined ? 'sent no AUTH_START' : `started ${mechanism}`}; connect ${error === undefined ? 'succeeded' : `failed with ${codeOf(error)}`}`,
      `server answers: ${seenTypes(toClient).join(', ')}`,
    ];
    if (toClient.some((f) => f.frame?.type === ClientFrame.AUTH_SUCCESS)) {
      return VULNERABLE(
        `after -PLUS was stripped the SDK logged in with ${mechanism ?? '?'} through the relay`,
        evidence,
      );
    }
    if (mechanism === undefined) {
      return MITIGATED(
        'the SDK refused to authenticate when -PLUS was stripped (nothing sent)',
        evidence,
      );
    }
    return MITIGATED(
      `the SDK signalled the downgrade (${mechanism}) and the server refused the login`,
      evidence,
    );
  },
};

const t16: Threat = {
  id: 'T16',
  name: 'channel-binding-mitm',
  class: 'authentication',
  title: 'a TLS-terminating proxy relays a SCRAM-SHA-256-PLUS login',
  async run(ctx) {
    await directLogin(ctx);
    const { relay, ca } = await trustedRelay(ctx);
    const account = ctx.accounts[0] as (typeof ctx.accounts)[number];
    const client = ctx.client(account, viaRelay(ctx, relay, ca));
    const error = await failureOf(() => client.connect());
    const conn = await relay.nextConnection();
    const mechanism = mechanismStarted(conn.seen('to-server'));
    const answers = seenTypes(conn.seen('to-client'));
    const evidence = [
      'relay re-terminated TLS with a certificate the client trusts',
      `SDK started ${mechanism ?? 'nothing'}; connect ${error === undefined ? 'succeeded' : `failed with ${codeOf(error)}`}`,
      `server answers: ${answers.join(', ')}`,
    ];
    if (mechanism === undefined || !mechanism.endsWith('-PLUS')) {
      return NOT_TESTED('no -PLUS login was attempted through the relay', evidence);
    }
    if (answers.includes(ClientFrame.AUTH_SUCCESS)) {
      return VULNERABLE(
        `the server accepted a ${mechanism} login bound to the relay's TLS connection`,
        evidence,
      );
    }
    if (answers.includes(ClientFrame.AUTH_FAILURE)) {
      return MITIGATED(
        `the server refused the relayed ${mechanism} login: the channel bindings differ`,
        evidence,
      );
    }
    return NOT_TESTED('the server gave no answer to the relayed login', evidence);
  },
};

const t17: Threat = {
  id: 'T17',
  name: 'weak-scram',
  class: 'authentication',
  title: 'low iterations, per-user salts of unknown users, client-final replay, bad nonces',
  async run(ctx) {
    const account = ctx.accounts[0] as (typeof ctx.accounts)[number];
    const user = userOf(account);
    const problems: string[] = [];
    const evidence: string[] = [];
    // A real login, recorded: iteration count, and the messages to replay.
    const first = await ctx.control(
      `${account.address} logs in at the protocol level`,
      async () => {
        const probe = await RawClient.open(ctx);
        const t = await probe.login({ user, password: account.password });
        probe.close();
        if (t.outcome !== 'success') throw new Error(`login answered ${t.outcome}`);
        return t;
      },
    );
    const serverFirst = Buffer.from(first.challenges.find((c) => c.length > 0) ?? []).toString();
    const iterations = Number(scramAttributes(serverFirst).get('i'));
    evidence.push(`${first.mechanism}: iteration count ${iterations}`);
    if (!(iterations >= 4096)) problems.push(`iteration count ${iterations} is below 4096`);

    // Unknown user, probed twice: the same salt and count (and a full challenge, not a refusal).
    const absent = `nobody-${token()}`;
    const probes = [
      await scramFirst(ctx.target, ctx, absent),
      await scramFirst(ctx.target, ctx, absent),
    ];
    const attrs = probes.map((p) => scramAttributes(p.text));
    evidence.push(
      `unknown user probed twice: answers ${probes.map((p) => p.answer).join(', ')}, ` +
        `same salt ${attrs[0]?.get('s') === attrs[1]?.get('s')}, counts ${attrs.map((a) => a.get('i')).join(', ')}`,
    );
    if (probes.some((p) => p.answer !== 'challenge')) {
      problems.push('an unknown user gets no SCRAM challenge');
    } else if (
      attrs[0]?.get('s') !== attrs[1]?.get('s') ||
      attrs[0]?.get('i') !== attrs[1]?.get('i')
    ) {
      problems.push('an unknown user gets a different salt or count on each probe');
    }

    // Client-final replay on another connection (with the same client-first, so only the
    // server's fresh nonce and the channel binding stand in the way).
    const replay = await RawClient.open(ctx);
    await replay.offer();
    replay.conn.send(ClientFrame.AUTH_START, {
      mechanism: first.mechanism,
      initial: first.sent[0] ?? null,
    });
    await replay.next([ClientFrame.AUTH_CHALLENGE, ClientFrame.AUTH_FAILURE]);
    replay.conn.send(ClientFrame.AUTH_RESPONSE, { data: first.sent[1] ?? new Uint8Array(0) });
    const replayAnswer = await replay.next([
      ClientFrame.AUTH_SUCCESS,
      ClientFrame.AUTH_FAILURE,
      ClientFrame.AUTH_CHALLENGE,
    ]);
    replay.close();
    evidence.push(
      `client-final replayed on a new connection: answer type ${replayAnswer?.type ?? 'none (closed)'}`,
    );
    if (replayAnswer?.type === ClientFrame.AUTH_SUCCESS)
      problems.push('a replayed client-final was accepted');

    // A relay (trusted certificate) sends a server nonce that does not extend the client's.
    const relayed = { rewritten: false };
    const breakNonce: RelayHook = (f) => {
      if (
        relayed.rewritten ||
        f.direction !== 'to-client' ||
        f.frame?.type !== ClientFrame.AUTH_CHALLENGE
      ) {
        return undefined;
      }
      const data = (f.frame.body as RawBody).data;
      if (!(data instanceof Uint8Array) || data.length === 0) return undefined;
      const text = Buffer.from(data).toString();
      const nonce = scramAttributes(text).get('r') ?? '';
      const foreign = Buffer.from(randomBytes(nonce.length))
        .toString('base64')
        .slice(0, nonce.length);
      relayed.rewritten = true;
      const body = {
        ...(f.frame.body as RawBody),
        data: Buffer.from(text.replace(`r=${nonce}`, `r=${foreign}`)),
      };
      return [framePayload({ type: ClientFrame.AUTH_CHALLENGE, body })];
    };
    const { relay, ca } = await trustedRelay(ctx, breakNonce);
    const client = ctx.client(account, viaRelay(ctx, relay, ca));
    const error = await failureOf(() => client.connect());
    const conn = await relay.nextConnection();
    const answered = conn
      .seen('to-server')
      .some((f) => f.frame?.type === ClientFrame.AUTH_RESPONSE);
    evidence.push(
      `relay replaced the server nonce: ${relayed.rewritten ? 'yes' : 'no challenge seen'}; SDK ${answered ? 'sent a client-final' : 'sent no client-final'}; connect ${error === undefined ? 'succeeded' : `failed with ${codeOf(error)}`}`,
    );
    if (relayed.rewritten && answered) {
      problems.push('the SDK answered a server nonce that does not extend its own');
    }
    if (problems.length > 0) return VULNERABLE(problems.join('; '), evidence);
    if (!relayed.rewritten)
      return NOT_TESTED('the relay saw no SCRAM challenge to rewrite', evidence);
    return MITIGATED(
      `iterations ${iterations} ≥ 4096; unknown users get a stable salt; a replayed client-final fails; the SDK refuses a foreign server nonce`,
      evidence,
    );
  },
};

const t18: Threat = {
  id: 'T18',
  name: 'brute-force',
  class: 'authentication',
  title: 'many passwords against one account; credential stuffing',
  needs: ['dos'],
  async run(ctx) {
    await directLogin(ctx);
    // The limiter keys on the claimed name whether or not the account exists (T19 checks that the
    // answers are the same), so a fresh name is attacked: no test account is slowed for the rest
    // of the run, and the source stays below its own allowance.
    const victim = `threat-bf-${token()}`;
    // Enough for any sane per-account allowance (the shipped configuration allows 10 failures);
    // the probe stops at the first rate-limited answer.
    const maxAttempts = 25;
    const gapMs = Math.ceil(1000 / Math.max(1, ctx.dos.maxRate));
    const mechanisms = await offered(ctx);
    const mechanism = mechanisms.includes('SCRAM-SHA-256')
      ? 'SCRAM-SHA-256'
      : mechanisms.find((m) => m.startsWith('SCRAM-SHA-256'));
    if (mechanism === undefined) return NOT_TESTED('the target offers no SCRAM mechanism');
    const answers: string[] = [];
    let limitedAt: number | undefined;
    for (let i = 1; i <= maxAttempts && limitedAt === undefined; i++) {
      // A random proof is a wrong password to the server, without the guesser's PBKDF2 work.
      const answer = await scramWrongProof(ctx.target, ctx, victim, mechanism);
      answers.push(answer);
      if (answer === 'temporary-auth-failure') limitedAt = i;
      await sleep(gapMs);
    }
    const evidence = [
      `${answers.length} wrong ${mechanism} proofs for one account name at ≤ ${ctx.dos.maxRate}/s: ${answers.join(', ')}`,
    ];
    // The real user must still get in: a limiter is not a lockout.
    const account = ctx.accounts[0] as (typeof ctx.accounts)[number];
    // A back-off that ends is not a lockout: the real user may try three times, a second apart.
    let realError: unknown;
    let tries = 0;
    do {
      if (tries > 0) await sleep(1_000);
      tries++;
      realError = await failureOf(() => ctx.client(account).connect());
    } while (realError !== undefined && tries < 3);
    evidence.push(
      `${account.address} afterwards: ${realError === undefined ? `logged in (try ${tries})` : `refused ${tries} times (${codeOf(realError)})`}`,
    );
    if (limitedAt === undefined) {
      return VULNERABLE(
        `${maxAttempts} wrong passwords in a row were all tried; none was rate limited`,
        evidence,
      );
    }
    if (realError !== undefined) {
      return VULNERABLE('guessing was rate limited, but a real user was locked out too', evidence);
    }
    return MITIGATED(
      `attempt ${limitedAt} was answered temporary-auth-failure without trying the password; a real user still logs in`,
      evidence,
    );
  },
};

/** How many timing samples per group (bounded: each is an aborted exchange, never a failure). */
const TIMING_SAMPLES = 40;
const TIMING_ALPHA = 0.001;
const TIMING_FLOOR_MS = 1;

const t19: Threat = {
  id: 'T19',
  name: 'user-enumeration',
  class: 'authentication',
  title: 'answers or timing tell existing users from absent ones',
  deadlineMs: 30_000,
  async run(ctx) {
    const account = ctx.accounts[0] as (typeof ctx.accounts)[number];
    const mechanisms = await ctx.control('the target offers mechanisms', () => offered(ctx));
    const mechanism = mechanisms.includes('SCRAM-SHA-256')
      ? 'SCRAM-SHA-256'
      : mechanisms.find((m) => m.startsWith('SCRAM-SHA-256'));
    if (mechanism === undefined) return NOT_TESTED('the target offers no SCRAM mechanism');
    const evidence: string[] = [];
    const problems: string[] = [];
    // Answers: the server-first message, then a wrong password to the end.
    const known = await scramFirst(ctx.target, ctx, userOf(account), mechanism);
    const absentName = `nobody-${token()}`;
    const absent = await scramFirst(ctx.target, ctx, absentName, mechanism);
    const shape = (text: string): string => {
      const a = scramAttributes(text);
      return `r,s(${Buffer.from(a.get('s') ?? '', 'base64').length} bytes),i=${a.get('i') ?? '?'}`;
    };
    evidence.push(
      `${mechanism} first answer: existing ${known.answer} ${shape(known.text)}; absent ${absent.answer} ${shape(absent.text)}`,
    );
    if (known.answer !== absent.answer || shape(known.text) !== shape(absent.text)) {
      problems.push('the first SCRAM answer differs between an existing and an absent user');
    }
    const wrong = async (user: string): Promise<string> => {
      const probe = await RawClient.open(ctx);
      const t = await probe.login({
        user,
        password: `wrong-${token()}`,
        channelBinding: mechanism.endsWith('-PLUS') ? 'require' : 'never',
      });
      const close = await Promise.race([probe.closed, sleep(3_000).then(() => undefined)]);
      return `${t.outcome}/${close?.error?.code ?? 'open'}`;
    };
    const finalKnown = await wrong(userOf(account));
    const finalAbsent = await wrong(absentName);
    evidence.push(`wrong password to the end: existing ${finalKnown}; absent ${finalAbsent}`);
    if (finalKnown !== finalAbsent) problems.push('the failure answer differs');
    if (mechanisms.includes('PLAIN')) {
      // PLAIN (RFC 4616) runs only inside TLS here; its answer must not depend on the user either.
      const plain = async (user: string): Promise<string> => {
        const probe = await RawClient.open(ctx);
        await probe.offer();
        const initial = Buffer.from(`\u0000${user}\u0000wrong-${token()}`, 'utf8');
        probe.conn.send(ClientFrame.AUTH_START, { mechanism: 'PLAIN', initial });
        const f = await probe.next([
          ClientFrame.AUTH_SUCCESS,
          ClientFrame.AUTH_FAILURE,
          ClientFrame.AUTH_CHALLENGE,
        ]);
        const close = await Promise.race([probe.closed, sleep(3_000).then(() => undefined)]);
        probe.close();
        const failure = (f?.body as RawBody | undefined)?.failure;
        return `${typeof failure === 'string' ? failure : String(f?.type ?? 'none')}/${close?.error?.code ?? 'open'}`;
      };
      const plainKnown = await plain(userOf(account));
      const plainAbsent = await plain(absentName);
      evidence.push(`PLAIN wrong password: existing ${plainKnown}; absent ${plainAbsent}`);
      if (plainKnown !== plainAbsent) problems.push('the PLAIN failure answer differs');
    }

    // Timing of the first answer, interleaved in random order, aborted after server-first.
    const existing: number[] = [];
    const missing: number[] = [];
    const order = Array.from({ length: 2 * TIMING_SAMPLES }, (_, i) => i % 2);
    for (let i = order.length - 1; i > 0; i--) {
      const j = (randomBytes(1)[0] as number) % (i + 1);
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    const names = ctx.accounts.map(userOf);
    for (const [i, group] of order.entries()) {
      if (ctx.signal.aborted) break;
      if (group === 0) {
        const r = await scramFirst(ctx.target, ctx, names[i % names.length] as string, mechanism);
        existing.push(r.ms);
      } else {
        const r = await scramFirst(ctx.target, ctx, `nobody-${token()}`, mechanism);
        missing.push(r.ms);
      }
    }
    const test = mannWhitney(existing, missing);
    const diff = test.medianA - test.medianB;
    evidence.push(
      `timing (${existing.length}+${missing.length} aborted exchanges, Mann-Whitney U, α=${TIMING_ALPHA}, floor ${TIMING_FLOOR_MS} ms): ` +
        `median existing ${test.medianA.toFixed(2)} ms, absent ${test.medianB.toFixed(2)} ms, z=${test.z.toFixed(2)}, p=${test.p.toExponential(2)}`,
    );
    if (test.p < TIMING_ALPHA && Math.abs(diff) >= TIMING_FLOOR_MS) {
      problems.push(
        `the first answer is ${Math.abs(diff).toFixed(1)} ms ${diff > 0 ? 'slower' : 'faster'} for existing users`,
      );
    }
    if (problems.length > 0) return VULNERABLE(problems.join('; '), evidence);
    return MITIGATED(
      'existing and absent users get the same answers, and no timing difference is detectable',
      evidence,
    );
  },
};

const t20: Threat = {
  id: 'T20',
  name: 'kerberos-replay',
  class: 'authentication',
  title: 'a captured AP-REQ replayed, or an authenticator outside the clock skew',
  async run(ctx) {
    const mechanisms = await offered(ctx);
    if (!mechanisms.some((m) => m.startsWith('GS2-KRB5'))) {
      return NOT_TESTED('the target does not offer GS2-KRB5');
    }
    return NOT_TESTED(
      "the target offers GS2-KRB5, but replaying an AP-REQ needs a Kerberos ticket for the deployment's realm, which the suite has no way to obtain; test/auth/kerberos.test.ts covers it against a real KDC",
    );
  },
};

const t44: Threat = {
  id: 'T44',
  name: 'device-proof-replay',
  class: 'authentication',
  title: 'a device-binding signature relayed onto another connection',
  async run(ctx) {
    const account = ctx.accounts[0] as (typeof ctx.accounts)[number];
    const user = userOf(account);
    const identity = generateSigningKeyPair();
    const deviceId = `threat-bind-${token()}`;
    const bindBody = await ctx.control('a device binds on its own connection', async () => {
      const probe = await RawClient.open(ctx);
      const t = await probe.login({ user, password: account.password });
      if (t.outcome !== 'success' || !(t.success?.nonce instanceof Uint8Array)) {
        throw new Error(`login answered ${t.outcome}`);
      }
      const signature = sign(
        identity.secretKey,
        bindingInput(
          probe.conn.channelBinding(),
          t.success.nonce,
          account.address,
          deviceId,
          identity.publicKey,
        ),
      );
      const body = { deviceId, identityKey: identity.publicKey, signature };
      probe.conn.send(ClientFrame.BIND, body);
      const bound = await probe.next([ClientFrame.BOUND, ClientFrame.ERROR]);
      probe.close();
      if (bound?.type !== ClientFrame.BOUND) throw new Error('the first binding was refused');
      return body;
    });
    const probe = await RawClient.open(ctx);
    const t = await probe.login({ user, password: account.password });
    if (t.outcome !== 'success') return NOT_TESTED(`the second login answered ${t.outcome}`);
    probe.conn.send(ClientFrame.BIND, bindBody);
    const answer = await probe.next([ClientFrame.BOUND, ClientFrame.ERROR], 3_000);
    const close = probe.isClosed ? await probe.closed : undefined;
    probe.close();
    const evidence = [
      `signature from connection 1 presented on connection 2: answer ${answer?.type === ClientFrame.BOUND ? 'BOUND' : answer === undefined ? 'none' : 'ERROR'}, close ${close?.error?.code ?? 'none'}`,
    ];
    if (answer?.type === ClientFrame.BOUND) {
      return VULNERABLE(
        'a device-binding signature made for another connection was accepted',
        evidence,
      );
    }
    return MITIGATED('the replayed device-binding signature was refused', evidence);
  },
};

const t57: Threat = {
  id: 'T57',
  name: 'unbound-login-relay',
  class: 'authentication',
  title: 'a TLS-terminating MITM with a trusted certificate relays an unbound login',
  async run(ctx) {
    await directLogin(ctx);
    const mechanisms = await offered(ctx);
    const unbound = mechanisms.filter((m) => !m.endsWith('-PLUS') && m !== 'EXTERNAL');
    const evidence = [`offered inside TLS 1.3: ${mechanisms.join(', ')}`];
    if (unbound.length === 0) {
      return MITIGATED('the server offers only channel-bound mechanisms (and EXTERNAL)', evidence);
    }
    // The SDK with its defaults, through a relay that only relays.
    const { relay, ca } = await trustedRelay(ctx);
    const account = ctx.accounts[0] as (typeof ctx.accounts)[number];
    const client = ctx.client(account, viaRelay(ctx, relay, ca));
    const error = await failureOf(() => client.connect());
    const conn = await relay.nextConnection();
    const mechanism = mechanismStarted(conn.seen('to-server'));
    const succeeded = conn
      .seen('to-client')
      .some((f) => f.frame?.type === ClientFrame.AUTH_SUCCESS);
    evidence.push(
      `SDK through the relay: started ${mechanism ?? 'nothing'}, ${succeeded ? 'AUTH_SUCCESS relayed' : `failed (${codeOf(error)})`}`,
    );
    // The residual risk, shown with a client that does use an unbound mechanism.
    const residual = await RawClient.open(ctx, {
      ...ctx.target,
      host: relay.host,
      port: relay.port,
      ca,
    });
    const other = await residual.login({
      user: userOf(account),
      password: account.password,
      channelBinding: 'never',
    });
    residual.close();
    evidence.push(
      `a client using ${other.mechanism || unbound[0] || '?'} through the same relay: ${other.outcome} (residual risk R03/R04, docs/security-model.md §11)`,
    );
    if (succeeded && mechanism !== undefined && !mechanism.endsWith('-PLUS')) {
      return VULNERABLE(
        `the SDK logged in with unbound ${mechanism} through a relay with a trusted certificate`,
        evidence,
      );
    }
    return MITIGATED(
      `the server accepts ${unbound.join(', ')}, but the SDK refuses unbound mechanisms by default; other clients using them remain relayable (R03/R04)`,
      evidence,
    );
  },
};

const notRemote = (id: string, name: string, title: string, reason: string): Threat => ({
  id,
  name,
  class: 'authentication',
  title,
  run: () => Promise.resolve(NOT_TESTED(reason)),
});

export const authenticationThreats: readonly Threat[] = [
  t14,
  t15,
  t16,
  t17,
  t18,
  t19,
  t20,
  t44,
  notRemote(
    'T51',
    'directory-leg',
    'cleartext or anonymous binds and injection on the server-to-directory leg',
    "the server's LDAP connection is not reachable from a client; test/auth/ldap.test.ts and test/service/enterprise-login.test.ts cover it against a real slapd",
  ),
  ...pkiThreats,
  t57,
];
