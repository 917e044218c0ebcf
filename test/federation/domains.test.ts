/**
 * Three domains on loopback, each a separate server process (domain-child.ts: ImppServer and
 * FederationNode over its own SQLite store), clients on the real SDK (issue 7, "Done when"):
 * conversations and presence across domains, every spoofing case refused, a domain killed under
 * load and restarted delivering every acknowledged message exactly once to the application, and
 * a remote watcher who is not approved receiving nothing.
 *
 * a.example pins b.example's key and checks c.example's certificate, b.example pins c.example's
 * key and checks a.example's certificate, c.example pins a.example's key and checks
 * b.example's certificate (domains.ts, mixedProofs): every link has one proof of each kind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ImppClient,
  type ReceivedMessage,
  type ReceivedPresence,
  type TrustWarningEvent,
  bundleFromAnswer,
} from '../../src/client/client.js';
import { isImppError } from '../../src/errors.js';
import {
  FederationKind,
  LinkFrameType,
  federationObjectId,
  signDomainProof,
} from '../../src/federation/index.js';
import { encodePresenceBody } from '../../src/federation/bodies.js';
import { ClientFrame } from '../../src/protocol/frames.js';
import { readEnvelopeHeader } from '../../src/seal/header.js';
import { sealForDevices } from '../../src/seal/message.js';
import { cpimTextMessage, encodeCpim } from '../../src/seal/payload/cpim.js';
import { buildPidf } from '../../src/seal/payload/pidf.js';
import { PresencePublisher } from '../../src/seal/presence.js';
import { SealDevice } from '../../src/seal/session.js';
import { RawDevice } from '../../src/threats/attackers/watchers.js';
import { asBody } from '../../src/threats/raw.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { parseAddress } from '../../src/trust/address.js';
import { createTestCa, issueCert } from '../helpers/tls-fixtures.js';
import { type Federation, PASSWORD, startFederation } from './domains.js';
import { RawPeer, newId } from './helpers.js';

const DOMAINS = ['a.example', 'b.example', 'c.example'] as const;
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
/**
 * Messages per kill test: the SDK seals and looks the recipient's devices up (across the link)
 * on every send, some 60 to 150 messages a second here; more would not fit the time budget.
 */
const LOAD = 500;

const root = mkdtempSync(join(tmpdir(), 'impp-domains-'));
let fed: Federation;

beforeAll(async () => {
  fed = await startFederation(root, DOMAINS, USERS);
}, 40_000);

afterAll(async () => {
  await fed.close();
  rmSync(root, { recursive: true, force: true });
});

/** Polls `check` every 20 ms until it holds, or throws after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not reached within ${ms} ms: ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** What a client's application saw. */
interface Seen {
  readonly messages: ReceivedMessage[];
  readonly presence: ReceivedPresence[];
  readonly undeliverable: string[];
  readonly warnings: TrustWarningEvent[];
}

/** A connected SDK client with its application events recorded. */
async function online(address: string, deviceId: string): Promise<{ c: ImppClient; seen: Seen }> {
  const c = fed.client(address, deviceId);
  const seen: Seen = { messages: [], presence: [], undeliverable: [], warnings: [] };
  c.on('message', (m) => seen.messages.push(m));
  c.on('presence', (p) => seen.presence.push(p));
  c.on('undeliverable', (u) => seen.undeliverable.push(u.code));
  c.on('trustWarning', (w) => seen.warnings.push(w));
  c.on('close', () => undefined);
  await c.connect();
  return { c, seen };
}

/** A device that speaks the client protocol frame by frame: every pushed frame is visible. */
async function rawDevice(address: string, deviceId: string): Promise<RawDevice> {
  const { user, domain } = parseAddress(address);
  const d = new RawDevice(
    await connectTls({
      host: '127.0.0.1',
      port: fed.get(domain).clientPort,
      ca: fed.clientCa.certPem,
      servername: 'localhost',
    }),
  );
  await d.auth(user, PASSWORD);
  await d.bind(deviceId);
  await d.register();
  return d;
}

/** A PIDF document for `presentity` with one tuple, open, and `note`. */
function pidfOf(presentity: string, note: string): string {
  return buildPidf({
    entity: parseAddress(presentity),
    tuples: [{ id: 't1', status: { basic: 'open', extensions: [] }, extensions: [], notes: [] }],
    notes: [{ text: note }],
    extensions: [],
  });
}

function presenceFrames(d: RawDevice): number {
  return d.frames.filter((f) => f.type === ClientFrame.PRESENCE).length;
}

describe('three domains, each its own server process', { concurrent: false }, () => {
  describe('a conversation across domains, both ways', () => {
    it('a ↔ b and b ↔ c: opened by the recipient, stamped with the domain it came from', async () => {
      const alice = await online('alice@a.example', 'laptop');
      const bob = await online('bob@b.example', 'phone');
      const carol = await online('carol@c.example', 'desk');

      await alice.c.sendMessage('bob@b.example', 'hello bob, from a');
      await until(() => bob.seen.messages.length === 1, 10_000, 'bob gets alice’s message');
      expect(bob.seen.messages[0]).toMatchObject({
        from: 'alice@a.example',
        fromDevice: 'alice@a.example/laptop',
        text: 'hello bob, from a',
      });
      await bob.c.sendMessage('alice@a.example', 'hi alice, from b');
      await until(() => alice.seen.messages.length === 1, 10_000, 'alice gets bob’s reply');
      expect(alice.seen.messages[0]).toMatchObject({
        from: 'bob@b.example',
        text: 'hi alice, from b',
      });

      await bob.c.sendMessage('carol@c.example', 'to c');
      await until(() => carol.seen.messages.length === 1, 10_000, 'carol gets bob’s message');
      await carol.c.sendMessage('bob@b.example', 'back to b');
      await until(() => bob.seen.messages.length === 2, 10_000, 'bob gets carol’s reply');
      expect(carol.seen.messages[0]).toMatchObject({ from: 'bob@b.example', text: 'to c' });
      expect(bob.seen.messages[1]).toMatchObject({ from: 'carol@c.example', text: 'back to b' });
      for (const s of [alice.seen, bob.seen, carol.seen]) expect(s.undeliverable).toEqual([]);

      // What the receiving server pushes: the domain each object arrived from, on DELIVER; none
      // for an object from its own domain.
      const frank = await rawDevice('frank@b.example', 'raw');
      await alice.c.sendMessage('frank@b.example', 'from a');
      await bob.c.sendMessage('frank@b.example', 'from b');
      const first = await frank.take(ClientFrame.DELIVER, 10_000);
      const second = await frank.take(ClientFrame.DELIVER, 10_000);
      const stamps = [first, second].map((d) => [
        d.from ?? null,
        (readEnvelopeHeader(d.object as Uint8Array) as { recipientDevice: string }).recipientDevice,
      ]);
      expect(stamps).toHaveLength(2);
      expect(stamps).toEqual(
        expect.arrayContaining([
          ['a.example', 'frank@b.example/raw'],
          [null, 'frank@b.example/raw'],
        ]),
      );
      frank.close();
      for (const x of [alice, bob, carol]) await x.c.close();
    }, 30_000);
  });

  describe('presence across domains', () => {
    it('an approved remote watcher gets it; an unapproved or revoked one gets no frame at all', async () => {
      const alice = await online('alice@a.example', 'laptop');
      const bob = await online('bob@b.example', 'phone');
      // Frame-level watchers: what matters is what their server pushes, opened or not.
      const dave = await rawDevice('dave@b.example', 'raw');
      const erin = await rawDevice('erin@b.example', 'raw');
      const carol = await rawDevice('carol@c.example', 'raw');
      const requests: string[] = [];
      alice.c.on('subscription', (s) => {
        if (s.state === 'pending') requests.push(s.watcher);
      });

      expect(await bob.c.subscribe('alice@a.example')).toBe('pending');
      for (const w of [dave, erin, carol]) {
        expect(
          await w.request(ClientFrame.SUBSCRIBE, { presentity: 'alice@a.example' }),
        ).toMatchObject({
          ok: true,
          body: { state: 'pending' },
        });
      }
      // The requests cross to alice's domain, which tells her.
      await until(() => requests.length === 4, 10_000, 'alice is asked by four remote watchers');
      expect(new Set(requests)).toEqual(
        new Set(['bob@b.example', 'dave@b.example', 'erin@b.example', 'carol@c.example']),
      );

      for (const w of ['bob@b.example', 'dave@b.example', 'erin@b.example']) {
        await alice.c.approve(w);
      }
      await alice.c.publishPresence('open', 'at my desk');
      await until(
        () => bob.seen.presence.some((p) => p.note === 'at my desk'),
        10_000,
        'bob sees alice’s presence',
      );
      expect(bob.seen.presence.at(-1)).toMatchObject({
        presentity: 'alice@a.example',
        basic: 'open',
      });
      await until(() => presenceFrames(dave) >= 1, 10_000, 'dave (approved) gets a frame');

      // Dave is revoked; carol was never approved. A later publish reaches bob only.
      await alice.c.revoke('dave@b.example');
      const daveBefore = presenceFrames(dave);
      await alice.c.publishPresence('closed', 'gone home');
      await until(
        () => bob.seen.presence.some((p) => p.note === 'gone home'),
        10_000,
        'bob sees the later update',
      );
      await sleep(500);
      expect(presenceFrames(carol)).toBe(0);
      expect(presenceFrames(dave)).toBe(daveBefore);

      // b.example decides for its own watchers from its own copy of each subscription: a
      // presence object from a.example (here a hand-driven one with a's real certificate) that
      // still lists revoked dave reaches only erin.
      const erinBefore = presenceFrames(erin);
      const rogueA = await RawPeer.connect(
        fed.get('b.example').federationPort,
        'b.example',
        fed.get('a.example').test.cert,
      );
      rogueA.send(LinkFrameType.OPEN, {
        versions: [1],
        from: 'a.example',
        to: 'b.example',
        want: 'certificate',
        window: 16,
        maxFrameBytes: 1024 * 1024,
      });
      expect((await rogueA.next())?.type).toBe(LinkFrameType.ACCEPT);
      expect((await rogueA.next())?.type).toBe(LinkFrameType.READY);
      // Versions are the publishing device's clock in ms (above every version stored so far).
      const forged = new PresencePublisher(
        SealDevice.create('alice@a.example/rogue', { oneTimePrekeys: 0 }),
      ).publish(new TextEncoder().encode(pidfOf('alice@a.example', 'for dave')), Date.now());
      rogueA.send(LinkFrameType.DATA, {
        seq: 1,
        id: newId(),
        origin: 'a.example',
        kind: FederationKind.presence,
        body: encodePresenceBody({
          object: forged,
          watchers: ['dave@b.example', 'erin@b.example'],
        }),
      });
      await until(() => presenceFrames(erin) > erinBefore, 10_000, 'erin gets the object');
      await sleep(300);
      expect(presenceFrames(dave)).toBe(daveBefore);
      rogueA.destroy();
      await alice.c.close();
      await bob.c.close();
      for (const w of [dave, erin, carol]) w.close();
    }, 30_000);
  });

  describe('spoofing', () => {
    /** A hand-driven c.example (its real certificate: a.example checks c by X.509) on a's port. */
    async function rogueC(): Promise<RawPeer> {
      const c = fed.get('c.example');
      const raw = await RawPeer.connect(
        fed.get('a.example').federationPort,
        'a.example',
        c.test.cert,
      );
      raw.send(LinkFrameType.OPEN, {
        versions: [1],
        from: 'c.example',
        to: 'a.example',
        want: 'certificate',
        window: 16,
        maxFrameBytes: 1024 * 1024,
      });
      expect((await raw.next())?.type).toBe(LinkFrameType.ACCEPT);
      expect((await raw.next())?.type).toBe(LinkFrameType.READY);
      return raw;
    }

    async function answer(raw: RawPeer): Promise<{ type: number; body: Record<string, unknown> }> {
      for (;;) {
        const f = await raw.next(10_000);
        if (f === null) throw new Error('link closed');
        if (f.type === LinkFrameType.PING) continue;
        return { type: f.type, body: f.body as Record<string, unknown> };
      }
    }

    it('c.example speaking for b.example is refused and audited at a.example', async () => {
      const raw = await rogueC();
      const alice = await online('alice@a.example', 'laptop');
      // 1. An object whose DATA origin claims b.example.
      raw.send(LinkFrameType.DATA, {
        seq: 1,
        id: newId(),
        origin: 'b.example',
        kind: FederationKind.sealed,
        body: new Uint8Array(64),
      });
      expect(await answer(raw)).toMatchObject({
        type: LinkFrameType.REJECT,
        body: { seq: 1, code: 'ERR_NOT_AUTHORIZED' },
      });
      // 2. Presence of a presentity of b.example, sent (with c's own origin) by c.example.
      const pidf = pidfOf('bob@b.example', 'forged by c');
      const forgedPresence = new PresencePublisher(
        SealDevice.create('bob@b.example/rogue', { oneTimePrekeys: 0 }),
      ).publish(new TextEncoder().encode(pidf));
      raw.send(LinkFrameType.DATA, {
        seq: 2,
        id: newId(),
        origin: 'c.example',
        kind: FederationKind.presence,
        body: encodePresenceBody({ object: forgedPresence, watchers: ['alice@a.example'] }),
      });
      expect(await answer(raw)).toMatchObject({
        type: LinkFrameType.REJECT,
        body: { seq: 2, code: 'ERR_NOT_AUTHORIZED' },
      });
      raw.destroy();
      // Both refusals are audit events of a.example's federation and rows of its store's audit
      // log (link-level and routing refusals alike).
      expect(fed.get('a.example').audit).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            type: 'federation.origin-refused',
            peer: 'c.example',
            claimedOrigin: 'b.example',
          }),
          expect.objectContaining({
            type: 'federation.sender-refused',
            peer: 'c.example',
            claimedDomain: 'b.example',
          }),
        ]),
      );
      const rows = fed.get('a.example').auditRows();
      expect(rows).toContainEqual(
        expect.objectContaining({
          kind: 'federation.origin-refused',
          details: expect.objectContaining({
            peer: 'c.example',
            claimed: false,
            claimedOrigin: 'b.example',
          }) as unknown,
        }),
      );
      expect(rows).toContainEqual(
        expect.objectContaining({
          kind: 'federation.sender-refused',
          source: 'c.example',
          details: expect.objectContaining({ claimedDomain: 'b.example' }) as unknown,
        }),
      );
      await sleep(300);
      expect(alice.seen.presence).toEqual([]);
      await alice.c.close();
    }, 20_000);

    it('a sealed sender of b.example arriving over the c.example link is refused by the client', async () => {
      const alice = await online('alice@a.example', 'laptop');
      const carol = await online('carol@c.example', 'desk');
      /** A message sealed for alice's device by a device `sender` the rogue holds. */
      const sealFor = async (sender: string, text: string): Promise<Uint8Array> => {
        // Alice's bundle, fetched through c.example (a look-up across the link, as any peer can).
        const reply = await carol.c.rawRequest(ClientFrame.GET_BUNDLES, {
          address: 'alice@a.example',
        });
        const raws = reply.bundles as readonly unknown[];
        const bundle = bundleFromAnswer(asBody(raws[0] as never));
        const device = SealDevice.create(sender, { oneTimePrekeys: 0 });
        const cpim = encodeCpim(
          cpimTextMessage({
            from: { address: parseAddress(sender.slice(0, sender.indexOf('/'))) },
            to: [{ address: parseAddress('alice@a.example') }],
            text,
          }),
        );
        const [sealed] = sealForDevices(
          device,
          [{ to: bundle.device, bundle, identityKey: bundle.identityKey }],
          'message/cpim',
          cpim,
        );
        if (sealed === undefined) throw new Error('nothing sealed');
        return sealed.bytes;
      };
      const forged = await sealFor('bob@b.example/rogue', 'forged: bob never wrote this');
      const honest = await sealFor('carol@c.example/rogue', 'c speaking for its own user');
      const raw = await rogueC();
      let seq = 0;
      for (const object of [forged, honest]) {
        const h = readEnvelopeHeader(object);
        if (h.kind === 'presence') throw new Error('unexpected');
        seq += 1;
        raw.send(LinkFrameType.DATA, {
          seq,
          id: federationObjectId(h.recipientDevice, h.messageId),
          origin: 'c.example',
          kind: FederationKind.sealed,
          body: object,
        });
        // The server cannot see the sealed sender: both are stored, stamped c.example.
        expect(await answer(raw)).toMatchObject({ type: LinkFrameType.ACK, body: { seq } });
      }
      raw.destroy();
      await until(() => alice.seen.messages.length === 1, 10_000, 'the honest one is opened').catch(
        (e: unknown) => {
          console.log(alice.seen);
          throw e;
        },
      );
      expect(alice.seen.messages[0]).toMatchObject({
        from: 'carol@c.example',
        text: 'c speaking for its own user',
      });
      expect(alice.seen.messages.some((m) => m.from === 'bob@b.example')).toBe(false);
      expect(alice.seen.warnings).toContainEqual({
        kind: 'sender-domain-mismatch',
        address: 'bob@b.example',
        device: 'bob@b.example/rogue',
      });
      expect(alice.seen.undeliverable).toEqual([]);
      await alice.c.close();
      await carol.c.close();
    }, 20_000);

    it('a peer with a wrong certificate, a certificate for another name or a wrong pinned key cannot open a link', async () => {
      const aPort = fed.get('a.example').federationPort;
      // a.example checks c.example's certificate: one for c.example from another CA.
      const otherCa = await createTestCa({ commonName: 'rogue CA' });
      const wrongCert = await issueCert(otherCa, { dnsNames: ['c.example'], usage: 'both' });
      // c.example's own CA, but a certificate naming another domain.
      const otherName = await issueCert(fed.get('c.example').test.ca, {
        dnsNames: ['elsewhere.example'],
        usage: 'both',
      });
      for (const cert of [wrongCert, otherName]) {
        // The handshake completes (a missing or unknown client certificate does not fail TLS,
        // so pinned-key peers can connect); the link is refused right after OPEN.
        const byCert = await RawPeer.connect(aPort, 'a.example', cert);
        byCert.send(LinkFrameType.OPEN, {
          versions: [1],
          from: 'c.example',
          to: 'a.example',
          want: 'certificate',
          window: 16,
          maxFrameBytes: 65_536,
        });
        const frames: number[] = [];
        for (let f = await byCert.next(5000); f !== null; f = await byCert.next(5000)) {
          frames.push(f.type);
          if (f.type === LinkFrameType.CLOSE) {
            expect(f.body).toMatchObject({ code: 'ERR_AUTH_FAILED' });
          }
        }
        expect(frames).toEqual([LinkFrameType.CLOSE]);
        byCert.destroy();
      }
      // a.example pins b.example's key: a proof made with another key.
      const byKey = await RawPeer.connect(aPort, 'a.example', undefined);
      byKey.send(LinkFrameType.OPEN, {
        versions: [1],
        from: 'b.example',
        to: 'a.example',
        want: 'certificate',
        window: 16,
        maxFrameBytes: 65_536,
      });
      const accept = await byKey.next(5000);
      expect(accept?.type).toBe(LinkFrameType.ACCEPT);
      byKey.send(LinkFrameType.PROOF, {
        proof: signDomainProof(generateSigningKeyPair().secretKey, 'initiator', {
          initiator: 'b.example',
          responder: 'a.example',
          exporter: byKey.exporter(),
        }),
      });
      expect(await byKey.closeCode(5000)).toBe('ERR_AUTH_FAILED');
      byKey.destroy();
      const a = fed.get('a.example');
      await until(
        () => a.audit.filter((e) => e.type === 'federation.proof-failed').length >= 3,
        5000,
        'three proof failures audited',
      );
      expect(a.audit).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            type: 'federation.proof-failed',
            peer: 'c.example',
            reason: expect.stringContaining('chain not accepted') as unknown,
          }),
          expect.objectContaining({
            type: 'federation.proof-failed',
            peer: 'c.example',
            reason: 'certificate does not name the domain',
          }),
          expect.objectContaining({ type: 'federation.proof-failed', peer: 'b.example' }),
        ]),
      );
    }, 20_000);
  });

  describe('a domain killed under load', () => {
    /** Sends `count` messages from each sender to `to`; returns the ids that got a RESULT. */
    async function load(
      senders: { address: string; deviceId: string }[],
      to: string,
      count: number,
      onAcked: (n: number) => void,
      failed: () => unknown,
    ): Promise<Set<string>> {
      const acked = new Set<string>();
      const deadline = Date.now() + 30_000;
      await Promise.all(
        senders.map(async ({ address, deviceId }) => {
          let client = (await online(address, deviceId)).c;
          for (let i = 0; i < count;) {
            try {
              for (const id of await client.sendMessage(to, `${address} #${i}`)) acked.add(id);
              i += 1;
              onAcked(acked.size);
            } catch (e) {
              if (!isImppError(e)) throw e;
              // A restart that failed, or a domain that never comes back, ends the test clearly.
              const why = failed();
              if (why !== null)
                throw new Error('the killed domain did not restart', { cause: why });
              if (Date.now() > deadline)
                throw new Error(`${address} could not send in time`, { cause: e });
              // Not acknowledged: the recipient's domain is down (look-up fails) or ours died
              // under the request (then reconnect once it is back).
              if (e.code === 'ERR_CONNECTION_CLOSED' && !(await stillOnline(client))) {
                await client.close().catch(() => undefined);
                client = await reconnect(address, deviceId);
              } else {
                await sleep(50);
              }
            }
          }
          await client.close();
        }),
      );
      return acked;
    }

    async function stillOnline(c: ImppClient): Promise<boolean> {
      try {
        await c.rawRequest(ClientFrame.GET_DEVICES, { address: c.address });
        return true;
      } catch {
        return false;
      }
    }

    async function reconnect(address: string, deviceId: string): Promise<ImppClient> {
      for (let attempt = 0; ; attempt++) {
        try {
          return (await online(address, deviceId)).c;
        } catch (e) {
          if (attempt > 100) throw e;
          await sleep(100);
        }
      }
    }

    function exactlyOnce(received: readonly ReceivedMessage[], acked: ReadonlySet<string>): void {
      const counts = new Map<string, number>();
      for (const m of received) counts.set(m.id, (counts.get(m.id) ?? 0) + 1);
      expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
      expect([...acked].filter((id) => !counts.has(id))).toEqual([]);
    }

    /**
     * Senders on a.example and c.example (two links into b.example, one of them through the
     * victim when it is a.example) send `total` messages to bob@b.example; `victim` is SIGKILLed once a quarter are acknowledged and
     * restarted on the same folder and ports. Bob's application must see every acknowledged
     * message exactly once.
     */
    async function killUnderLoad(victim: 'a.example' | 'b.example', total: number): Promise<void> {
      const received: ReceivedMessage[] = [];
      const ids = new Set<string>();
      const listen = (c: ImppClient): void => {
        c.on('message', (m) => {
          received.push(m);
          ids.add(m.id);
        });
      };
      let bob = (await online('bob@b.example', 'phone')).c;
      listen(bob);
      const domain = fed.get(victim);
      const killed: { done: Promise<void> | null; error: unknown } = { done: null, error: null };
      let atKill = { acked: 0, received: 0 };
      const acked = await load(
        [
          { address: 'erin@a.example', deviceId: 'e1' },
          { address: 'erin@c.example', deviceId: 'e1' },
        ],
        'bob@b.example',
        total / 2,
        (n) => {
          if (n < total / 4 || killed.done !== null) return;
          atKill = { acked: n, received: ids.size };
          killed.done = (async () => {
            await domain.kill();
            await domain.start();
            if (victim === 'b.example') {
              await bob.close().catch(() => undefined);
              bob = (await online('bob@b.example', 'phone')).c;
              listen(bob);
            }
          })().catch((e: unknown) => {
            killed.error = e;
          });
        },
        () => killed.error,
      );
      await killed.done;
      expect(killed.error).toBeNull();
      // The kill came mid-stream: after some acknowledgements, before most of them.
      expect(atKill.acked).toBeGreaterThanOrEqual(total / 4);
      expect(atKill.received).toBeLessThan(total / 2);
      expect(acked.size).toBe(total);
      await until(
        () => [...acked].every((id) => ids.has(id)),
        20_000,
        'bob has every acknowledged message',
      );
      await sleep(300); // a duplicate would come now
      exactlyOnce(received, acked);
      await bob.close();
    }

    it('the receiving domain, SIGKILLed mid-stream and restarted: every acknowledged message once', async () => {
      await killUnderLoad('b.example', LOAD);
    }, 45_000);

    it('the sending domain, SIGKILLed mid-stream and restarted: every acknowledged message once', async () => {
      await killUnderLoad('a.example', LOAD);
    }, 45_000);
  });
});
