/**
 * Presence end to end over real TLS: subscription requests decided by the presentity, sealed
 * updates fanned out to approved watchers only, revocation effective at once.
 */
import { readFileSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImppClient, ReceivedPresence, SubscriptionEvent } from '../../src/client/client.js';
import { type Env, next, quiet, startEnv } from '../service/harness.js';

let env: Env;
let alice: ImppClient;
let bob: ImppClient;
let carol: ImppClient;
let dave: ImppClient;
const seen = new Map<string, ReceivedPresence[]>();

beforeAll(async () => {
  env = await startEnv();
  alice = env.client('alice', 'laptop');
  bob = env.client('bob', 'phone');
  carol = env.client('carol', 'desk');
  dave = env.client('dave', 'tablet');
  for (const [name, c] of [
    ['bob', bob],
    ['carol', carol],
    ['dave', dave],
  ] as const) {
    seen.set(name, []);
    c.on('presence', (p) => seen.get(name)?.push(p));
  }
  for (const c of [alice, bob, carol, dave]) await c.connect();
});
afterAll(async () => {
  await env.close();
});

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await quiet(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('presence', () => {
  it('the presentity hears of requests and approved watchers receive updates', async () => {
    const request = next<SubscriptionEvent>(alice, 'subscription');
    expect(await bob.subscribe('alice@example.org')).toBe('pending');
    expect(await request).toEqual({
      presentity: 'alice@example.org',
      watcher: 'bob@example.org',
      state: 'pending',
    });
    expect(await carol.subscribe('alice@example.org')).toBe('pending');
    expect(await dave.subscribe('alice@example.org')).toBe('pending'); // never approved
    expect(await alice.approve('bob@example.org')).toBe('approved');
    expect(await alice.approve('carol@example.org')).toBe('approved');
    await alice.publishPresence('open', 'reading in the blue armchair');
    await until(
      () => seen.get('bob')?.length === 1 && seen.get('carol')?.length === 1,
      'bob and carol to see the update',
    );
    expect(seen.get('bob')?.[0]).toMatchObject({
      presentity: 'alice@example.org',
      basic: 'open',
      note: 'reading in the blue armchair',
    });
    expect(seen.get('dave')).toEqual([]);
  });

  it('a revoked watcher stops receiving at once; a never-approved one never receives', async () => {
    expect(await alice.revoke('carol@example.org')).toBe('revoked');
    await alice.publishPresence('closed', 'gone fishing at the lake');
    await until(() => seen.get('bob')?.length === 2, 'bob to see the second update');
    expect(seen.get('bob')?.[1]).toMatchObject({
      basic: 'closed',
      note: 'gone fishing at the lake',
    });
    await quiet(150);
    expect(seen.get('carol')?.map((p) => p.note)).toEqual(['reading in the blue armchair']);
    expect(seen.get('dave')).toEqual([]);
    const list = await alice.subscriptions();
    expect(list.watchers).toEqual(
      expect.arrayContaining([
        { watcher: 'bob@example.org', state: 'approved' },
        { watcher: 'carol@example.org', state: 'revoked' },
        { watcher: 'dave@example.org', state: 'pending' },
      ]),
    );
  });

  it('a watcher that comes online later gets the latest update', async () => {
    await bob.close();
    await alice.publishPresence('open', 'back from the lake');
    const later = env.client('bob', 'phone');
    const got = next<ReceivedPresence>(later, 'presence');
    await later.connect();
    expect(await got).toMatchObject({ note: 'back from the lake', basic: 'open' });
  });

  it('the presentity denies a pending request; the watcher is not told and cannot reopen it', async () => {
    const told: SubscriptionEvent[] = [];
    dave.on('subscription', (e: SubscriptionEvent) => told.push(e));
    expect(await alice.deny('dave@example.org')).toBe('denied');
    // The decision stands and stays invisible to dave (T13): his request looks undecided, as one
    // to a user who does not exist does; withdrawing or asking again does not reopen it.
    expect(await dave.unsubscribe('alice@example.org')).toBe('none');
    expect(await dave.subscribe('alice@example.org')).toBe('pending');
    expect(told).toEqual([]);
    const list = await alice.subscriptions();
    expect(list.watchers).toContainEqual({ watcher: 'dave@example.org', state: 'denied' });
    expect(seen.get('dave')).toEqual([]);
  });

  it('the SQLite files hold none of the presence notes', () => {
    const files = [env.dbPath, `${env.dbPath}-wal`].filter((f) => existsSync(f));
    const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
    for (const note of ['blue armchair', 'gone fishing', 'back from the lake']) {
      expect(bytes.includes(Buffer.from(note, 'utf8'))).toBe(false);
    }
  });
});
