/**
 * T13 blocking-leak and T11 unauthorized-watcher at the protocol level: a user who denied you
 * answers exactly like a user who does not exist (subscription, device directory, prekey
 * bundles, message delivery), and presence reaches nobody who is not approved. Real TLS, real
 * SQLite; every answer is compared as the CBOR bytes of its frame body.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ImppClient } from '../../src/client/client.js';
import { Frames } from '../../src/client/protocol.js';
import { isImppError } from '../../src/errors.js';
import { sealMessage } from '../../src/seal/message.js';
import { SealDevice } from '../../src/seal/session.js';
import { generateSigningKeyPair, sign } from '../../src/crypto/index.js';
import { bindingTranscript } from '../../src/service/binding.js';
import { ClientFrame } from '../../src/service/protocol.js';
import { encodeStrictCbor } from '../../src/transport/cbor-strict.js';
import { type Env, next, quiet, startEnv } from './harness.js';
import { RawClient } from './raw.js';

type Answer = { readonly ok: unknown } | { readonly code: string; readonly message: string };

async function answer(
  client: ImppClient,
  type: number,
  body: Record<string, unknown>,
): Promise<Answer> {
  try {
    const r = await client.rawRequest(type, body as never);
    return { ok: Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'id')) };
  } catch (e) {
    if (!isImppError(e)) throw e;
    return { code: e.code, message: e.message };
  }
}

/** One sealed message for `device` (from a throwaway sender device: only the header matters). */
function sealedFor(device: string): Uint8Array {
  const sender = SealDevice.create('mallory@example.org/x', { oneTimePrekeys: 0 });
  const to = SealDevice.create(device, { oneTimePrekeys: 1 });
  return sealMessage(
    sender,
    { to: to.device, bundle: to.bundle() },
    'text/plain',
    new Uint8Array([1]),
  ).bytes;
}

describe('a user who denied you looks like one who does not exist (T13)', () => {
  let env: Env;
  let alice: ImppClient;
  let dave: ImppClient;

  async function setUp(defences?: { uniformBlockedAnswers: false }): Promise<void> {
    env = await startEnv(defences === undefined ? {} : { defences });
    alice = env.client('alice', 'laptop');
    dave = env.client('dave', 'phone');
    await alice.connect();
    await dave.connect();
    const told = next<{ state: string }>(alice, 'subscription');
    expect(await dave.subscribe('alice@example.org')).toBe('pending');
    await told;
    expect(await alice.deny('dave@example.org')).toBe('denied');
  }

  /** Each request against the denier and against a user who does not exist, side by side. */
  async function compare(): Promise<[string, Answer, Answer][]> {
    const pairs: [string, (who: string) => Promise<Answer>][] = [
      ['SUBSCRIBE', (who) => answer(dave, Frames.SUBSCRIBE, { presentity: `${who}@example.org` })],
      ['GET_DEVICES', (who) => answer(dave, Frames.GET_DEVICES, { address: `${who}@example.org` })],
      ['GET_BUNDLES', (who) => answer(dave, Frames.GET_BUNDLES, { address: `${who}@example.org` })],
      [
        'SEND',
        (who) => answer(dave, Frames.SEND, { object: sealedFor(`${who}@example.org/laptop`) }),
      ],
      [
        'LIST_WATCHERS',
        async (who) => {
          const r = await answer(dave, Frames.LIST_WATCHERS, {});
          const subs =
            'ok' in r
              ? (r.ok as { subscriptions: { presentity: string; state: string }[] }).subscriptions
              : [];
          return { ok: subs.find((s) => s.presentity === `${who}@example.org`)?.state };
        },
      ],
    ];
    const out: [string, Answer, Answer][] = [];
    for (const [name, ask] of pairs) {
      const denied = await ask('alice');
      const missing = await ask('nobody');
      out.push([name, denied, missing]);
    }
    return out;
  }

  afterEach(async () => {
    await env.close();
  });

  it('subscription, directory, bundles, delivery and the subscription list answer byte for byte the same', async () => {
    await setUp();
    for (const [name, denied, missing] of await compare()) {
      expect({ name, denied }).toEqual({ name, denied: missing });
      expect(Buffer.from(encodeStrictCbor(denied as never)).length, name).toBe(
        Buffer.from(encodeStrictCbor(missing as never)).length,
      );
    }
  });

  it('the denied watcher is not told of the denial', async () => {
    env = await startEnv();
    alice = env.client('alice', 'laptop');
    dave = env.client('dave', 'phone');
    await alice.connect();
    await dave.connect();
    const pushes: string[] = [];
    dave.on('subscription', (e: { state: string }) => pushes.push(e.state));
    await dave.subscribe('alice@example.org');
    await alice.deny('dave@example.org');
    await quiet(200);
    expect(pushes).toEqual([]);
    expect(await dave.unsubscribe('alice@example.org')).toBe('none');
  });

  it('with uniformBlockedAnswers off, the answers differ (the check can fail)', async () => {
    await setUp({ uniformBlockedAnswers: false });
    const differing = (await compare()).filter(
      ([, a, b]) => JSON.stringify(a) !== JSON.stringify(b),
    );
    expect(differing.map(([name]) => name)).toEqual(
      expect.arrayContaining(['SUBSCRIBE', 'GET_DEVICES', 'GET_BUNDLES', 'SEND']),
    );
  });
});

/** A hand-written watcher device of `user` (whose account has a device list already). */
async function rawWatcher(env: Env, user: string, deviceId: string): Promise<RawClient> {
  const raw = await RawClient.open(env);
  await raw.auth(user);
  const identity = generateSigningKeyPair();
  const address = `${user}@example.org`;
  const signature = sign(
    identity.secretKey,
    bindingTranscript({
      exporter: raw.conn.channelBinding(),
      nonce: raw.nonce as Uint8Array,
      address,
      deviceId,
      identityKey: identity.publicKey,
    }),
  );
  raw.conn.send(ClientFrame.BIND, { deviceId, identityKey: identity.publicKey, signature });
  await raw.take(ClientFrame.BOUND);
  const seal = SealDevice.create(`${address}/${deviceId}`, { identity, oneTimePrekeys: 1 });
  const pub = seal.publicPrekeys();
  const r = await raw.request(ClientFrame.REGISTER, {
    signedPrekey: pub.signedPrekey,
    oneTimePrekeys: pub.oneTimePrekeys,
  });
  expect(r.error).toBeUndefined();
  return raw;
}

describe('presence goes to approved watchers only (T11)', () => {
  let env: Env;
  afterEach(async () => {
    await env.close();
  });

  /** PRESENCE frames that reached a pending and a denied watcher, live and at login. */
  async function leaked(defences?: { presenceApprovalCheck: false }): Promise<number> {
    env = await startEnv(defences === undefined ? {} : { defences });
    const alice = env.client('alice', 'laptop');
    const carol = env.client('carol', 'phone');
    const dave = env.client('dave', 'phone');
    for (const c of [alice, carol, dave]) await c.connect();
    await carol.subscribe('alice@example.org');
    await dave.subscribe('alice@example.org');
    await alice.deny('dave@example.org');
    const live = [await rawWatcher(env, 'carol', 'raw'), await rawWatcher(env, 'dave', 'raw')];
    await alice.publishPresence('open', 'at the harbour');
    await quiet(200);
    // Logging in again (the only probe impp has) brings nothing either.
    const later = await rawWatcher(env, 'carol', 'later');
    await quiet(200);
    const all = [...live, later];
    const count = all.reduce(
      (n, r) => n + r.frames.filter((f) => f.type === ClientFrame.PRESENCE).length,
      0,
    );
    for (const r of all) r.conn.close();
    expect(await env.store.presence.latest('alice@example.org')).toBeDefined();
    return count;
  }

  it('a pending or denied watcher gets no presence object, live or at login', async () => {
    expect(await leaked()).toBe(0);
  });

  it('with presenceApprovalCheck off, they get it (the check can fail)', async () => {
    expect(await leaked({ presenceApprovalCheck: false })).toBeGreaterThan(0);
  });
});
