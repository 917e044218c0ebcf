/**
 * Federation threats (docs/security-model.md §8: T27, T28, T45, T46, T47; the link half of T29
 * is here too, called from ./transport.ts): a peer domain the suite holds the credentials of
 * connects to the target's federation endpoint, first honestly (the control step: the link
 * opens and an object reaches a device of a test account), then as a rogue.
 *
 * Every attack goes through a hand-driven link (attackers/rogue-domain.ts), so the suite can
 * send what an honest endpoint never would. What counts is what the target does: whether the
 * link opens, what it answers to each DATA frame, what a device of the test account receives,
 * and, when the suite runs the target (`--spawn`), which audit events the target emitted.
 */
import type { SigningKeyPair } from '../../crypto/index.js';
import { generateSigningKeyPair, randomBytes } from '../../crypto/index.js';
import { FederationEndpoint } from '../../federation/endpoint.js';
import type { InboundObject } from '../../federation/link.js';
import { ClientFrame } from '../../protocol/frames.js';
import { readEnvelopeHeader } from '../../seal/header.js';
import { encodeStrictCbor } from '../../transport/cbor-strict.js';
import { parseDomainTrustConfig } from '../../trust/config.js';
import { createSuiteCa, issueServerCert, selfSignedServerCert } from '../attackers/certs.js';
import {
  LinkFrame,
  LinkKind,
  type OpenOutcome,
  ROGUE_HOST_NAME,
  RawLink,
  RogueListener,
  THIRD_DOMAIN,
  domainProof,
  presenceOf,
  sealedFor,
} from '../attackers/rogue-domain.js';
import { RawDevice } from '../attackers/watchers.js';
import { asBody } from '../raw.js';
import { SdkDevice, settled, startHarness, texts, waitUntil } from './sdk-support.js';
import type {
  FederationAccess,
  FederationAuditRecord,
  PemCredentials,
  Threat,
  ThreatContext,
} from '../types.js';
import { sleep } from '../wait.js';
import { NOT_TESTED, withProblems } from './outcome.js';

/** How long a delivery to a device of the test account is waited for, in ms. */
const DELIVERY_WAIT_MS = 5_000;
/** How long the suite watches for a second copy that must not come, in ms. */
const QUIET_MS = 500;

function fedOf(ctx: ThreatContext): FederationAccess {
  const fed = ctx.federation;
  // The runner checks the capability first; this guards a direct call.
  if (fed === undefined) throw new Error('no federation access');
  return fed;
}

/** An honest peer the suite can play: the X.509 one (its certificate), else the pinned-key one. */
interface HonestPeer {
  readonly domain: string;
  readonly cert: PemCredentials | undefined;
  readonly key: SigningKeyPair | undefined;
  readonly proof: 'x509' | 'key';
}

function honestPeer(fed: FederationAccess, prefer: 'x509' | 'key' = 'x509'): HonestPeer {
  const x = fed.x509Peer;
  const k = fed.keyPeer;
  const asX509 = x === undefined ? undefined : { ...x, key: undefined, proof: 'x509' as const };
  const asKey = k === undefined ? undefined : { ...k, cert: undefined, proof: 'key' as const };
  const pick = prefer === 'x509' ? (asX509 ?? asKey) : (asKey ?? asX509);
  if (pick === undefined) throw new Error('no peer credentials');
  return pick;
}

/** A registered raw device of the first test account: where the peer's objects go. */
async function recipient(ctx: ThreatContext): Promise<{ device: RawDevice; address: string }> {
  const account = ctx.accounts[0];
  if (account === undefined) throw new Error('no test account');
  const device = await RawDevice.registered(ctx, account);
  return { device, address: `${device.address}/${device.deviceId}` };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** True when `bytes` is a message envelope with message id `messageId`. */
function isMessage(bytes: unknown, messageId: Uint8Array): boolean {
  if (!(bytes instanceof Uint8Array)) return false;
  try {
    const header = readEnvelopeHeader(bytes);
    return header.kind !== 'presence' && sameBytes(header.messageId, messageId);
  } catch {
    // Not an envelope (a delivery notice): not ours.
    return false;
  }
}

/**
 * DELIVER pushes to `device` of the object with message id `messageId`: waits up to `ms` for
 * the first, then `quietMs` more for a second that must not come. Each push is taken off
 * the device's frames, so a later copy counts again.
 */
async function copiesOf(
  device: RawDevice,
  messageId: Uint8Array,
  ms: number,
  quietMs = QUIET_MS,
): Promise<number> {
  let copies = 0;
  let end = Date.now() + ms;
  for (;;) {
    const left = end - Date.now();
    if (left <= 0) return copies;
    const f = await device.next([ClientFrame.DELIVER], left);
    if (f === undefined) return copies;
    if (isMessage(asBody(f.body).object, messageId)) {
      copies += 1;
      if (copies === 1) end = Math.min(end, Date.now() + quietMs);
    }
  }
}

/** Opens a raw link as `peer` with its honest credentials. */
async function openHonest(
  ctx: ThreatContext,
  fed: FederationAccess,
  peer: HonestPeer,
): Promise<RawLink> {
  const link = await RawLink.connect(ctx, fed, peer.cert);
  const r = await link.openAs(
    peer.domain,
    fed.domain,
    peer.key === undefined ? {} : { key: peer.key },
  );
  if (!r.open) {
    throw new Error(
      `the target refused the honest peer ${peer.domain} (${r.code ?? 'no code'} at ${r.stage})`,
    );
  }
  return link;
}

/**
 * The control step of every federation threat: `peer`'s link opens and a sealed object it sends
 * is ACKed and pushed to a device of the first test account.
 */
async function controlDelivery(
  ctx: ThreatContext,
  fed: FederationAccess,
  peer: HonestPeer,
): Promise<{ link: RawLink; device: RawDevice; address: string }> {
  return ctx.control(
    `the honest peer ${peer.domain} (${peer.proof === 'x509' ? 'X.509' : 'pinned key'}) opens a link and delivers an object`,
    async () => {
      const { device, address } = await recipient(ctx);
      const link = await openHonest(ctx, fed, peer);
      const messageId = randomBytes(16);
      const answer = await link.data(
        randomBytes(16),
        LinkKind.sealed,
        sealedFor(address, messageId),
      );
      if (answer.type !== 'ack') {
        throw new Error(
          `the target answered ${answer.type} ${'code' in answer ? String(answer.code) : ''}`,
        );
      }
      if ((await copiesOf(device, messageId, DELIVERY_WAIT_MS, 0)) !== 1) {
        throw new Error('the object was ACKed but not delivered to the device');
      }
      return { link, device, address };
    },
  );
}

/** Audit events of the target since `from` (an index into its list), or undefined if unseen. */
function auditSince(
  fed: FederationAccess,
  from: number,
): readonly FederationAuditRecord[] | undefined {
  return fed.audit?.().slice(from);
}

function auditMark(fed: FederationAccess): number {
  return fed.audit?.().length ?? 0;
}

function describe(r: OpenOutcome): string {
  return r.open ? 'the link OPENED' : `refused with ${r.code ?? 'no code'} at ${r.stage}`;
}

/**
 * One spoofed opening: `attempt` opens a raw link its own way; refused with `ERR_AUTH_FAILED`
 * and (when the suite sees the target's audit) an audit event naming the claimed domain.
 */
async function spoof(
  fed: FederationAccess,
  label: string,
  claimed: string,
  attempt: () => Promise<OpenOutcome>,
  evidence: string[],
  problems: string[],
  expectedCode = 'ERR_AUTH_FAILED',
): Promise<void> {
  const mark = auditMark(fed);
  let r: OpenOutcome;
  let linkLevel = true;
  try {
    r = await attempt();
  } catch (error) {
    // The target ended the connection before answering the opening (TLS refused, or silence):
    // the rogue is not in, but there is no link code or audit event to expect.
    linkLevel = false;
    r = {
      open: false,
      code: null,
      stage: `TLS (${error instanceof Error ? error.message : 'error'})`,
    };
  }
  let audited = '';
  if (!r.open && linkLevel && fed.audit !== undefined) {
    await sleep(50);
    const events = auditSince(fed, mark) ?? [];
    const hit = events.find((e) => e.peer === claimed && e.type !== 'federation.link-open');
    audited = hit === undefined ? ', no audit event' : `, audited (${hit.type})`;
    if (hit === undefined) problems.push(`${label}: refused but not audited`);
  }
  evidence.push(`${label}: ${describe(r)}${audited}`);
  if (r.open) problems.push(`${label}: the link opened`);
  else if (linkLevel && r.code !== expectedCode) {
    problems.push(`${label}: refused with ${r.code ?? 'no code'}, expected ${expectedCode}`);
  }
}

// ── T27 ─────────────────────────────────────────────────────────────────────────────────────

const t27: Threat = {
  id: 'T27',
  name: 'domain-spoofing',
  class: 'federation',
  title: 'a rogue server claims another domain on the federation port',
  needs: ['federation', 'accounts:3'],
  async run(ctx) {
    const fed = fedOf(ctx);
    await controlDelivery(ctx, fed, honestPeer(fed));
    const evidence: string[] = [];
    const problems: string[] = [];
    const skipped: string[] = [];
    const k = fed.keyPeer;
    if (k === undefined) skipped.push('no pinned-key peer: wrong pinned key not tried');
    else {
      const wrong = generateSigningKeyPair();
      await spoof(
        fed,
        `${k.domain} with a wrong pinned key`,
        k.domain,
        async () => {
          const link = await RawLink.connect(ctx, fed, undefined);
          return link.openAs(k.domain, fed.domain, { key: wrong });
        },
        evidence,
        problems,
      );
    }
    const x = fed.x509Peer;
    if (x === undefined) skipped.push('no X.509 peer: certificates not tried');
    else {
      const otherCa = await createSuiteCa('impp threat suite rogue federation CA');
      const foreign = await issueServerCert(otherCa, { names: [x.domain], usage: 'both' });
      await spoof(
        fed,
        `${x.domain} with a certificate of another CA`,
        x.domain,
        async () => {
          const link = await RawLink.connect(ctx, fed, foreign);
          return link.openAs(x.domain, fed.domain);
        },
        evidence,
        problems,
      );
      if (x.issue === undefined) {
        skipped.push(
          'the peer CA key is not available: a valid certificate for another name not tried',
        );
      } else {
        const other = await x.issue({
          names: [`other-${ctx.canary().slice(6, 14)}.threats.example`],
        });
        await spoof(
          fed,
          `${x.domain} with a valid certificate for another name`,
          x.domain,
          async () => {
            const link = await RawLink.connect(ctx, fed, other);
            return link.openAs(x.domain, fed.domain);
          },
          evidence,
          problems,
        );
      }
      // The honest certificate, but the opening claims the pinned-key peer: one credential
      // does not speak for another configured domain.
      if (k !== undefined) {
        await spoof(
          fed,
          `${k.domain} with ${x.domain}'s valid certificate`,
          k.domain,
          async () => {
            const link = await RawLink.connect(ctx, fed, x.cert);
            return link.openAs(k.domain, fed.domain);
          },
          evidence,
          problems,
        );
      }
    }
    if (fed.audit === undefined)
      evidence.push("the target's audit log is not visible to the suite");
    evidence.push(...skipped);
    return withProblems(
      problems,
      `every spoofed opening was refused with ERR_AUTH_FAILED${fed.audit === undefined ? '' : ' and audited'}${skipped.length > 0 ? ` (${skipped.length} skipped)` : ''}`,
      evidence,
    );
  },
};

// ── T28 ─────────────────────────────────────────────────────────────────────────────────────

const t28: Threat = {
  id: 'T28',
  name: 'federation-proof-confusion',
  class: 'federation',
  title: 'a domain-key proof made for another connection or pair of domains',
  needs: ['federation', 'accounts:3'],
  async run(ctx) {
    const fed = fedOf(ctx);
    const k = fed.keyPeer;
    if (k === undefined) {
      return NOT_TESTED(
        'needs a peer the target accepts by pinned key (--key-peer-domain, --key-peer-seed)',
      );
    }
    await controlDelivery(ctx, fed, honestPeer(fed, 'key'));
    const evidence: string[] = [];
    const problems: string[] = [];
    const target = fed.domain;
    const cases: [string, (link: RawLink, elsewhere: Uint8Array) => Uint8Array][] = [
      [
        'a proof made on another connection',
        (_l, elsewhere) => domainProof(k.key, 'initiator', k.domain, target, elsewhere),
      ],
      [
        'a proof for another pair of domains',
        (l) => domainProof(k.key, 'initiator', k.domain, THIRD_DOMAIN, l.exporter()),
      ],
      [
        'a proof with the domains swapped',
        (l) => domainProof(k.key, 'initiator', target, k.domain, l.exporter()),
      ],
      [
        "the responder's proof reflected",
        (l) => domainProof(k.key, 'responder', k.domain, target, l.exporter()),
      ],
    ];
    for (const [label, make] of cases) {
      await spoof(
        fed,
        label,
        k.domain,
        async () => {
          // The other connection is real: its exporter is what a captured proof would cover.
          const other = await RawLink.connect(ctx, fed, undefined);
          const elsewhere = other.exporter();
          other.destroy();
          const link = await RawLink.connect(ctx, fed, undefined);
          return link.openAs(k.domain, target, { proof: make(link, elsewhere) });
        },
        evidence,
        problems,
      );
    }
    // A proof nobody asked for, before the opening: the link ends at once.
    const link = await RawLink.connect(ctx, fed, undefined);
    link.send(LinkFrame.PROOF, {
      proof: domainProof(k.key, 'initiator', k.domain, target, link.exporter()),
    });
    const code = await link.closeCode().catch(() => 'no answer');
    evidence.push(`an unsolicited PROOF before OPEN: link closed with ${code ?? 'no code'}`);
    if (code !== 'ERR_PROTOCOL')
      problems.push(`an unsolicited proof was answered with ${code ?? 'no code'}`);
    return withProblems(
      problems,
      'proofs from another connection, another pair of domains, swapped or reflected were refused, and an unsolicited proof closed the link',
      evidence,
    );
  },
};

// ── T29, link half ──────────────────────────────────────────────────────────────────────────

/**
 * The link half of T29: the target's federation endpoint refuses a peer presenting a link
 * certificate that is expired, self-signed, for the wrong usage, naming the domain only in the
 * subject's CN, or a wildcard. Returns the problems found (empty: all refused); evidence goes
 * to `evidence`. Needs the X.509 peer's CA (`issue`); otherwise says why it did not run.
 */
export async function linkCertificateMisvalidation(
  ctx: ThreatContext,
  evidence: string[],
): Promise<{ problems: string[]; ran: boolean }> {
  const fed = ctx.federation;
  const x = fed?.x509Peer;
  if (fed === undefined || x?.issue === undefined) {
    evidence.push(
      fed === undefined
        ? 'link half not run: no federation access (--spawn, or --federation with a peer)'
        : 'link half not run: the CA the target trusts for the peer is not available',
    );
    return { problems: [], ran: false };
  }
  const issue = x.issue;
  const problems: string[] = [];
  const now = Date.now();
  const parent = x.domain.split('.').slice(1).join('.');
  const bad: [string, () => Promise<PemCredentials>][] = [
    [
      'expired',
      () =>
        issue({
          names: [x.domain],
          notBefore: new Date(now - 172_800_000),
          notAfter: new Date(now - 86_400_000),
        }),
    ],
    ['self-signed', () => selfSignedServerCert({ names: [x.domain] })],
    ['serverAuth only (no clientAuth)', () => issue({ names: [x.domain], usage: 'server' })],
    ['the domain only in the CN', () => issue({ names: [], commonName: x.domain })],
    ['a wildcard', () => issue({ names: [`*.${parent}`] })],
  ];
  // The control: the same CA's proper certificate opens a link.
  const good = await RawLink.connect(ctx, fed, x.cert);
  const opened = await good.openAs(x.domain, fed.domain);
  if (!opened.open)
    throw new Error(`the honest link certificate was refused (${opened.code ?? 'no code'})`);
  good.destroy();
  evidence.push(`link: ${x.domain}'s own certificate opens a link`);
  for (const [label, make] of bad) {
    const cert = await make();
    await spoof(
      fed,
      `link certificate ${label}`,
      x.domain,
      async () => {
        const link = await RawLink.connect(ctx, fed, cert);
        return link.openAs(x.domain, fed.domain);
      },
      evidence,
      problems,
    );
  }
  return { problems, ran: true };
}

// ── T45 ─────────────────────────────────────────────────────────────────────────────────────

const t45: Threat = {
  id: 'T45',
  name: 'forged-third-domain-sender',
  class: 'federation',
  title: 'a peer sends an object claiming a third domain as sender',
  needs: ['federation', 'accounts:3', 'local-server'],
  async run(ctx) {
    const fed = fedOf(ctx);
    const peer = honestPeer(fed);
    const { link, device, address } = await controlDelivery(ctx, fed, peer);
    const local = device.address;
    const evidence: string[] = [];
    const problems: string[] = [];
    const mallory = `mallory@${THIRD_DOMAIN}`;
    /** Sends `body` as DATA of `kind`: mitigated when refused with ERR_NOT_AUTHORIZED. */
    const refusedAsForeign = async (
      kind: number,
      body: Uint8Array,
    ): Promise<{ answer: string; ok: boolean }> => {
      const a = await link.data(randomBytes(16), kind, body);
      return {
        answer: a.type === 'ack' ? 'ACK' : `${a.type} ${String(a.code)}`,
        ok: a.type === 'reject' && a.code === 'ERR_NOT_AUTHORIZED',
      };
    };
    const attempts: [string, () => Promise<{ answer: string; ok: boolean; delivered?: number }>][] =
      [
        [
          'DATA with a third domain as origin',
          async () => {
            const messageId = randomBytes(16);
            const mark = auditMark(fed);
            const a = await link.data(
              randomBytes(16),
              LinkKind.sealed,
              sealedFor(address, messageId),
              {
                origin: THIRD_DOMAIN,
              },
            );
            const delivered = await copiesOf(device, messageId, QUIET_MS);
            // The log line of a refusal names its type and the peer, not the claimed origin.
            const audited = auditSince(fed, mark)?.some(
              (e) => e.claimedOrigin === THIRD_DOMAIN || e.type === 'federation.origin-refused',
            );
            const code = a.type === 'ack' ? 'ACK' : String(a.code);
            return {
              answer: `${a.type === 'ack' ? 'ACK' : `${a.type} ${code}`}${audited === undefined ? '' : audited ? ', audited' : ', not audited'}`,
              ok:
                a.type === 'reject' &&
                a.code === 'ERR_NOT_AUTHORIZED' &&
                audited !== false &&
                delivered === 0,
              delivered,
            };
          },
        ],
        [
          "presence of a third domain's presentity",
          async () => {
            const body = encodeStrictCbor({ object: presenceOf(mallory), watchers: [local] });
            return refusedAsForeign(LinkKind.presence, body);
          },
        ],
        [
          "a subscription request by a third domain's watcher",
          async () => {
            const body = encodeStrictCbor({
              type: 'subscription',
              presentity: local,
              watcher: mallory,
              action: 'request',
            });
            return refusedAsForeign(LinkKind.subscription, body);
          },
        ],
        [
          "an approval by a third domain's presentity",
          async () => {
            const body = encodeStrictCbor({
              type: 'decision',
              presentity: mallory,
              watcher: local,
              action: 'approve',
            });
            return refusedAsForeign(LinkKind.subscription, body);
          },
        ],
      ];
    for (const [label, attempt] of attempts) {
      const r = await attempt();
      evidence.push(
        `${label}: ${r.answer}${r.delivered === undefined ? '' : `, ${r.delivered} delivered`}`,
      );
      if (!r.ok) problems.push(`${label}: ${r.answer}`);
    }
    const sdk = await sdkSenderDomain(ctx, peer.domain);
    evidence.push(...sdk.evidence);
    problems.push(...sdk.problems);
    return withProblems(
      problems,
      "a third domain's origin, presentity and watcher were refused with ERR_NOT_AUTHORIZED and nothing was delivered; the SDK refused a sealed sender of another domain than the stamp",
      evidence,
    );
  },
};

/**
 * The recipient's half of T45, against the SDK of this build (a compromised server the suite
 * runs, as for the other client-side threats): a message sealed by a user of the server's own
 * domain reaches the recipient stamped as delivered by `peer`; the SDK must refuse it (the peer
 * speaks only for its own users), where the same message unstamped is accepted.
 */
async function sdkSenderDomain(
  ctx: ThreatContext,
  peer: string,
): Promise<{ evidence: string[]; problems: string[] }> {
  const evil = await startHarness(ctx);
  const alice = await new SdkDevice(ctx, evil, 'alice', 'phone').start();
  const bob = await new SdkDevice(ctx, evil, 'bob', 'phone').start();
  const hello = ctx.canary();
  await ctx.control('SDK: a message of the home domain, unstamped, arrives', async () => {
    await alice.client.sendMessage(bob.address, hello);
    if (!(await waitUntil(() => texts(bob).includes(hello), undefined, ctx.signal))) {
      throw new Error('the message did not arrive');
    }
  });
  // Bob is offline; the operator takes Alice's next message out of his queue and hands it back
  // stamped as if the peer domain had delivered it.
  await bob.stop();
  const forged = ctx.canary();
  await alice.client.sendMessage(bob.address, forged);
  const queued = (await evil.pending(bob.name)).filter((o) => o.kind === 'message');
  const object = queued[0];
  if (queued.length !== 1 || object === undefined) {
    throw new Error(`expected one queued message, found ${queued.length}`);
  }
  evil.drop(bob.name, object.id);
  await evil.inject(bob.name, object.bytes, peer);
  await bob.start();
  await settled(evil, bob.name);
  const shown = texts(bob).includes(forged);
  const warned = bob.seen.warnings.some((w) => w.kind === 'sender-domain-mismatch');
  const evidence = [
    `SDK: ${alice.address}'s message stamped as from ${peer}: ${shown ? 'SHOWN as from ' + alice.address : 'not shown'}${warned ? ', sender-domain-mismatch warning' : ''}`,
  ];
  return {
    evidence,
    problems: shown ? [`the SDK showed a sealed sender of another domain than ${peer}`] : [],
  };
}

// ── T46 ─────────────────────────────────────────────────────────────────────────────────────

const t46: Threat = {
  id: 'T46',
  name: 'federation-link-replay',
  class: 'federation',
  title: 'link frames replayed to duplicate deliveries',
  needs: ['federation', 'accounts:3'],
  async run(ctx) {
    const fed = fedOf(ctx);
    const peer = honestPeer(fed);
    const { device, address } = await controlDelivery(ctx, fed, peer);
    const evidence: string[] = [];
    const problems: string[] = [];
    // One object over a fresh link, taken and acknowledged by the device (so a second copy
    // could be stored again: only the link's duplicate filter stands in the way).
    const link = await openHonest(ctx, fed, peer);
    const objectId = randomBytes(16);
    const messageId = randomBytes(16);
    const object = sealedFor(address, messageId);
    const first = await link.data(objectId, LinkKind.sealed, object);
    const got = await copiesOf(device, messageId, DELIVERY_WAIT_MS, 0);
    if (first.type !== 'ack' || got !== 1) {
      throw new Error(`the first copy was not delivered (${first.type}, ${got} copies)`);
    }
    const acked = await device.request(ClientFrame.ACK, { ids: [messageId] });
    if (!acked.ok) throw new Error(`the device could not acknowledge (${acked.code})`);
    // The same frame again on the same link (same sequence number): a protocol violation.
    const replay = await link.data(objectId, LinkKind.sealed, object, { seq: 1 });
    const replayText = replay.type === 'ack' ? 'ACK' : `${replay.type} ${String(replay.code)}`;
    evidence.push(`the same DATA frame (seq 1) again on its link: ${replayText}`);
    if (!(replay.type === 'closed' && replay.code === 'ERR_PROTOCOL')) {
      problems.push(`a replayed frame was answered ${replayText}, not closed with ERR_PROTOCOL`);
    }
    // The same object id on a new link: acknowledged (the peer may resend after a lost ACK),
    // never delivered twice.
    const again = await openHonest(ctx, fed, peer);
    const second = await again.data(objectId, LinkKind.sealed, object);
    const copies = await copiesOf(device, messageId, QUIET_MS);
    const fetched = await device.request(ClientFrame.FETCH, {});
    const queued = fetched.ok
      ? (fetched.body.objects as unknown[]).filter((o) => {
          const bytes = asBody(o as never).object;
          return isMessage(bytes, messageId);
        }).length
      : 0;
    const secondText = second.type === 'ack' ? 'ACK' : `${second.type} ${String(second.code)}`;
    evidence.push(
      `the same object id on a new link: ${secondText}, ${copies} more pushed, ${queued} queued`,
    );
    if (second.type !== 'ack')
      problems.push(`the resent object was answered ${secondText}, not ACK`);
    if (copies + queued > 0) problems.push('the device received the object a second time');
    return withProblems(
      problems,
      'a replayed frame closed the link with ERR_PROTOCOL; the object resent on a new link was acknowledged and not delivered again',
      evidence,
    );
  },
};

// ── T47 ─────────────────────────────────────────────────────────────────────────────────────

/**
 * An honest peer endpoint for `domain` on loopback (what resolution should reach): accepts the
 * target by the CA its link certificate chains to, records what it is sent.
 */
async function honestEndpoint(
  ctx: ThreatContext,
  domain: string,
  cert: PemCredentials,
  target: string,
  targetCa: string,
): Promise<{ port: number; delivered: InboundObject[]; close(): Promise<void> }> {
  const delivered: InboundObject[] = [];
  const endpoint = new FederationEndpoint({
    local: { domain, tls: cert },
    trust: parseDomainTrustConfig({
      version: 1,
      domain,
      authentication: {
        mechanisms: ['SCRAM-SHA-256-PLUS'],
        providers: [{ type: 'local', id: 'local' }],
      },
      federation: {
        unlisted: 'deny',
        peers: [
          {
            domain: target,
            mode: 'allow',
            proof: { type: 'x509', trustAnchors: { pem: targetCa } },
          },
        ],
      },
    }),
    deliver: (o) => {
      delivered.push(o);
    },
    limits: { preAuthTimeoutMs: 5_000 },
  });
  ctx.defer(() => endpoint.close());
  const port = await endpoint.listen({ port: 0, host: '127.0.0.1' });
  return { port, delivered, close: () => endpoint.close() };
}

/** Sends a sealed message from `sender` to a device of `domain`; true when the target took it. */
async function sendRemote(sender: RawDevice, domain: string): Promise<string> {
  const object = sealedFor(`pat@${domain}/phone`, randomBytes(16));
  const r = await sender.request(ClientFrame.SEND, { object });
  return r.ok ? 'accepted' : r.code;
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(25);
  }
  return true;
}

const t47: Threat = {
  id: 'T47',
  name: 'srv-redirection',
  class: 'federation',
  title: "spoofed DNS or SRV answers send a domain's traffic elsewhere",
  needs: ['federation', 'accounts:3'],
  deadlineMs: 45_000,
  async run(ctx) {
    const fed = fedOf(ctx);
    const res = fed.resolution;
    if (res === undefined) {
      return NOT_TESTED(
        "needs control of the target's resolution of a peer domain (run with --spawn); against a deployment, point its static route or DNS for a peer at a host you control",
      );
    }
    const { device: sender } = await recipient(ctx);
    const honest = await ctx.control(
      `the target delivers to the honest ${res.domain} where resolution points`,
      async () => {
        const peer = await honestEndpoint(ctx, res.domain, res.cert, fed.domain, res.targetCa);
        res.point({ host: '127.0.0.1', port: peer.port });
        const sent = await sendRemote(sender, res.domain);
        if (sent !== 'accepted') throw new Error(`SEND to ${res.domain} answered ${sent}`);
        if (!(await until(() => peer.delivered.length > 0, 10_000))) {
          throw new Error(`nothing reached the honest ${res.domain}`);
        }
        return peer;
      },
    );
    // The honest host goes away (its link with it), so the target's next object for the domain
    // needs a new connection, to wherever resolution now points.
    await honest.close();
    const evidence: string[] = [];
    const problems: string[] = [];
    const otherCa = await createSuiteCa('impp threat suite rogue federation CA');
    const rogues: [string, PemCredentials][] = [
      [
        'a self-signed certificate for the domain',
        await selfSignedServerCert({ names: [res.domain] }),
      ],
      [
        'a certificate of another CA for the domain',
        await issueServerCert(otherCa, { names: [res.domain], usage: 'both' }),
      ],
      [
        'a certificate for the SRV target name only',
        await issueServerCert(otherCa, { names: [ROGUE_HOST_NAME], usage: 'both' }),
      ],
      ...(res.issue === undefined
        ? []
        : ([
            [
              "a valid certificate of the domain's CA for the SRV target name",
              await res.issue({ names: [ROGUE_HOST_NAME] }),
            ],
          ] as [string, PemCredentials][])),
    ];
    for (const [label, cert] of rogues) {
      const rogue = await RogueListener.start(ctx, cert);
      res.point({ host: '127.0.0.1', port: rogue.port });
      const sent = await sendRemote(sender, res.domain);
      // The queued object is retried with back-off; the first attempt is what matters.
      const reached = await until(() => rogue.tally.connections > 0, 8_000);
      await sleep(100);
      const t = rogue.tally;
      evidence.push(
        `${label}: SEND ${sent}; the target ${reached ? `connected (${t.handshakes} TLS handshakes, ${t.frames} frames, ${t.data} DATA)` : 'did not connect in time'}`,
      );
      if (t.data > 0) problems.push(`${label}: the rogue was sent ${t.data} objects`);
      else if (t.frames > 0) problems.push(`${label}: the target opened a link with the rogue`);
      if (!reached) {
        // Not a verdict either way: the attack did not happen.
        throw new Error(`${label}: the target never tried the redirected address`);
      }
      await rogue.close();
    }
    return withProblems(
      problems,
      'redirected to rogue hosts, the target refused each (no link, nothing sent): resolution cost availability, not identity',
      evidence,
    );
  },
};

/** The federation threats, in catalogue order. */
export const federationThreats: readonly Threat[] = [t27, t28, t45, t46, t47];
