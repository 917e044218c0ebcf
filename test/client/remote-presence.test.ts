/**
 * Presence across two domains with the client SDK (docs/protocol.md Server-to-server §5.5): bob of
 * b.example is watched by users of a.example. Two REAL servers (loopback TLS, SQLite), real
 * clients, and a TEST DOUBLE of the link (test/service/link-double.ts) that calls the other
 * server's `federationInbound` directly. The presentity's home (b.example) decides; a.example keeps
 * its own copy of each subscription and hands presence only to watchers approved in that copy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  ImppClient,
  ReceivedPresence,
  SubscriptionEvent,
  TrustWarningEvent,
} from '../../src/client/client.js';
import { Frames } from '../../src/client/protocol.js';
import { type Env, next, quiet, startEnv } from '../service/harness.js';
import { LinkDouble } from '../service/link-double.js';
import { sealedPresence } from '../service/store/envelopes.js';

const link = new LinkDouble();
let A: Env;
let B: Env;
let bob: ImppClient;
let alice: ImppClient;
let carol: ImppClient;
let daveClient: ImppClient | undefined;
const seen = new Map<string, ReceivedPresence[]>();
const subscriptionEvents = new Map<string, SubscriptionEvent[]>();
const warnings: TrustWarningEvent[] = [];

function watch(name: string, c: ImppClient): void {
  seen.set(name, []);
  subscriptionEvents.set(name, []);
  c.on('presence', (p) => seen.get(name)?.push(p));
  c.on('subscription', (s) => subscriptionEvents.get(name)?.push(s));
  c.on('trustWarning', (w) => warnings.push(w));
}

beforeAll(async () => {
  [A, B] = await Promise.all([
    startEnv({ domain: 'a.example', remote: link.routerFor('a.example') }),
    startEnv({ domain: 'b.example', remote: link.routerFor('b.example') }),
  ]);
  link.add('a.example', () => A.server.federationInbound);
  link.add('b.example', () => B.server.federationInbound);
  bob = B.client('bob', 'phone');
  alice = A.client('alice', 'laptop');
  carol = A.client('carol', 'desk');
  watch('bob', bob);
  watch('alice', alice);
  watch('carol', carol);
  for (const c of [bob, alice, carol]) await c.connect();
});
afterAll(async () => {
  await Promise.all([A.close(), B.close()]);
});

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await check()) return;
    await quiet(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const stateAt = async (env: Env, watcher: string): Promise<string | undefined> =>
  (await env.store.subscriptions.get('bob@b.example', watcher))?.state;

describe('a remote watcher', () => {
  it('asks, is approved at the presentity’s home, gets the key and the updates', async () => {
    const request = next<SubscriptionEvent>(bob, 'subscription');
    expect(await alice.subscribe('bob@b.example')).toBe('pending');
    // Both copies of the record: the watcher's domain and the presentity's home.
    expect(await stateAt(A, 'alice@a.example')).toBe('pending');
    expect(await request).toEqual({
      presentity: 'bob@b.example',
      watcher: 'alice@a.example',
      state: 'pending',
    });
    expect(await stateAt(B, 'alice@a.example')).toBe('pending');

    const approved = next<SubscriptionEvent>(alice, 'subscription');
    expect(await bob.approve('alice@a.example')).toBe('approved');
    expect(await approved).toMatchObject({ watcher: 'alice@a.example', state: 'approved' });
    expect(await stateAt(A, 'alice@a.example')).toBe('approved');

    await bob.publishPresence('open', 'at the harbour');
    await until(() => seen.get('alice')?.length === 1, 'alice to see the update');
    expect(seen.get('alice')?.[0]).toMatchObject({
      presentity: 'bob@b.example',
      basic: 'open',
      note: 'at the harbour',
    });
    // Kept at a.example as bob's latest presence: a watcher logging in later gets it there.
    expect((await A.store.presence.latest('bob@b.example'))?.version).toBe(
      seen.get('alice')?.[0]?.version,
    );
    expect(warnings).toEqual([]);
  });

  it('is denied without being told: the request looks pending and nothing arrives', async () => {
    expect(await carol.subscribe('bob@b.example')).toBe('pending');
    await until(async () => (await stateAt(B, 'carol@a.example')) === 'pending', 'the request');
    expect(await bob.deny('carol@a.example')).toBe('denied');
    expect(await stateAt(A, 'carol@a.example')).toBe('denied');
    const listed = await carol.subscriptions();
    expect(listed.subscriptions).toEqual([{ presentity: 'bob@b.example', state: 'pending' }]);
    expect(subscriptionEvents.get('carol')).toEqual([]);

    await bob.publishPresence('closed', 'out sailing');
    await until(() => seen.get('alice')?.length === 2, 'alice to see the second update');
    await quiet(150);
    expect(seen.get('carol')).toEqual([]);
    // The peer cannot add a watcher: the same object handed in for carol reaches nobody.
    const latest = await B.store.presence.latest('bob@b.example');
    expect(
      await A.server.federationInbound.presence({
        object: latest?.bytes ?? new Uint8Array(),
        presentity: 'bob@b.example',
        watchers: ['carol@a.example', 'dave@a.example'],
      }),
    ).toBe(0);
  });

  it('stops receiving at once when revoked, while an approved one keeps receiving', async () => {
    const dave = A.client('dave', 'tablet');
    daveClient = dave;
    watch('dave', dave);
    await dave.connect();
    expect(await dave.subscribe('bob@b.example')).toBe('pending');
    await until(async () => (await stateAt(B, 'dave@a.example')) === 'pending', 'the request');
    expect(await bob.approve('dave@a.example')).toBe('approved');
    await until(async () => (await stateAt(A, 'dave@a.example')) === 'approved', 'the approval');

    expect(await bob.revoke('alice@a.example')).toBe('revoked');
    expect(await stateAt(A, 'alice@a.example')).toBe('revoked');
    await bob.publishPresence('open', 'back on shore');
    await until(
      () => seen.get('dave')?.some((p) => p.note === 'back on shore') === true,
      'dave to see the update after the revocation',
    );
    await quiet(150);
    expect(seen.get('alice')?.map((p) => p.note)).toEqual(['at the harbour', 'out sailing']);
    expect(warnings).toEqual([]);
  });

  it('gets the latest presence at login when it was offline', async () => {
    const [dave] = A.server.onlineOf('dave@a.example');
    expect(dave).toBeDefined();
    await daveClient?.close();
    await until(() => A.server.onlineOf('dave@a.example').length === 0, 'dave to be offline');
    await bob.publishPresence('closed', 'asleep');
    // Stored at a.example for dave, whose copy is approved, though nobody was online to push to.
    const version = (await B.store.presence.latest('bob@b.example'))?.version;
    expect((await A.store.presence.latest('bob@b.example'))?.version).toBe(version);
    const again = A.client('dave', 'tablet');
    const got: ReceivedPresence[] = [];
    again.on('presence', (p) => got.push(p));
    await again.connect();
    await until(() => got.some((p) => p.note === 'asleep'), 'the latest presence at login');
    expect(got.map((p) => p.version)).toContain(version);
  });

  it('publishes locally even when one watcher domain cannot be reached; counts local pushes', async () => {
    // An approved watcher in a domain the link does not reach (written straight into b's store).
    for (const [actor, action] of [
      ['zoe@gone.example', 'request'],
      ['bob@b.example', 'approve'],
    ] as const) {
      await B.store.subscriptions.transition({
        presentity: 'bob@b.example',
        watcher: 'zoe@gone.example',
        actor,
        action,
        at: Date.now(),
      });
    }
    const version = 2 ** 42;
    const answer = await bob.rawRequest(Frames.PUBLISH, {
      object: sealedPresence('bob@b.example', version),
    });
    // dave (a.example) got it over the link; no local watcher of bob is online.
    expect(answer).toMatchObject({ delivered: 0, duplicate: false });
    expect((await A.store.presence.latest('bob@b.example'))?.version).toBe(version);
  });

  it('unsubscribes from a remote presentity: both copies end', async () => {
    const dave = A.client('dave', 'tablet');
    await dave.connect();
    expect(await dave.unsubscribe('bob@b.example')).toBe('none');
    expect(await stateAt(A, 'dave@a.example')).toBe(undefined);
    expect(await stateAt(B, 'dave@a.example')).toBe(undefined);
  });
});
