/**
 * A user's client drops what users it denied send (docs/protocol.md, Server-to-server §5.1;
 * docs/security-model.md T13): the recipient's server cannot, for a sender of another domain,
 * because the sealed sender hides who sent. Two REAL servers (loopback TLS, SQLite), real clients,
 * and a TEST DOUBLE of the link (test/service/link-double.ts) between them; a third real server
 * with its own block switched off shows the client's check alone for a local sender.
 *
 * The remote sender seals before the denial and its object arrives after it (held by the link
 * double here, as a federation queue holds it during an outage): after the denial alice's server
 * answers bob with no devices, so this is how a denied remote sender's object reaches her.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImppClient, ReceivedMessage, TrustWarningEvent } from '../../src/client/client.js';
import { decodeState } from '../../src/client/state.js';
import { type Env, next, quiet, startEnv } from '../service/harness.js';
import { LinkDouble } from '../service/link-double.js';

const link = new LinkDouble();
let A: Env;
let B: Env;
let bob: ImppClient;
let laptop: ImppClient;
let phone: ImppClient;
const messages = new Map<string, ReceivedMessage[]>();
const warnings = new Map<string, TrustWarningEvent[]>();
const undeliverable: string[] = [];
type Held = { object: Uint8Array; to: string; id: Uint8Array }[];
/** Sealed before the denial, handed in after a restart of alice's phone. */
let heldForRestart: Held = [];

function record(name: string, c: ImppClient): void {
  messages.set(name, []);
  warnings.set(name, []);
  c.on('message', (m) => messages.get(name)?.push(m));
  c.on('trustWarning', (w) => warnings.get(name)?.push(w));
  c.on('undeliverable', (u) => undeliverable.push(`${name}: ${u.code}`));
}

const texts = (name: string): string[] => (messages.get(name) ?? []).map((m) => m.text);
const blocked = (name: string): TrustWarningEvent[] =>
  (warnings.get(name) ?? []).filter((w) => w.kind === 'blocked-sender');

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await check()) return;
    await quiet(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Bob's next objects for alice, sealed and sent, held by the link instead of delivered. */
async function sealHeld(text: string): Promise<Held> {
  const held: Held = [];
  link.divert = (object, to, id) => {
    held.push({ object, to, id });
    return Promise.resolve();
  };
  try {
    await bob.sendMessage('alice@a.example', text);
  } finally {
    link.divert = undefined;
  }
  return held;
}

/** What the link held, handed to alice's server now, stamped as coming from b.example. */
async function arrive(held: Held): Promise<void> {
  for (const h of held) {
    await A.server.federationInbound.enqueue({
      kind: 'message',
      recipientDevice: h.to,
      id: h.id,
      object: h.object,
      arrivedFrom: 'b.example',
    });
  }
}

beforeAll(async () => {
  [A, B] = await Promise.all([
    startEnv({ domain: 'a.example', remote: link.routerFor('a.example') }),
    startEnv({ domain: 'b.example', remote: link.routerFor('b.example') }),
  ]);
  link.add('a.example', () => A.server.federationInbound);
  link.add('b.example', () => B.server.federationInbound);
  bob = B.client('bob', 'phone');
  laptop = A.client('alice', 'laptop');
  phone = A.client('alice', 'phone');
  record('bob', bob);
  record('laptop', laptop);
  record('phone', phone);
  await laptop.connect();
  await phone.connect();
  await laptop.addDevice('phone');
  await bob.connect();
});
afterAll(async () => {
  await Promise.all([A.close(), B.close()]);
});

describe('a sender of another domain that alice denied', () => {
  it('is dropped by every device of alice: no message, a blocked-sender warning, acknowledged', async () => {
    await bob.sendMessage('alice@a.example', 'hello from b');
    await until(
      () => texts('laptop').length === 1 && texts('phone').length === 1,
      'the first message on both devices',
    );
    const held = await sealHeld('sealed before the denial');
    expect(held).toHaveLength(2);
    heldForRestart = await sealHeld('still denied after a restart');

    expect(await bob.subscribe('alice@a.example')).toBe('pending');
    await until(
      async () =>
        (await A.store.subscriptions.get('alice@a.example', 'bob@b.example')) !== undefined,
      'the request at a.example',
    );
    // Denied on the laptop only: the phone learns it from the laptop's sealed presence state,
    // which the laptop sent before deny() resolved, so it is ahead of bob's objects in the queue.
    expect(await laptop.deny('bob@b.example')).toBe('denied');
    await arrive(held);
    await until(
      () => blocked('laptop').length === 1 && blocked('phone').length === 1,
      'blocked-sender on both devices',
    );
    expect(blocked('laptop')[0]).toEqual({
      kind: 'blocked-sender',
      address: 'bob@b.example',
      device: 'bob@b.example/phone',
    });
    expect(blocked('phone')[0]?.device).toBe('bob@b.example/phone');
    expect(texts('laptop')).toEqual(['hello from b']);
    expect(texts('phone')).toEqual(['hello from b']);
    // Nothing of the content reaches the app, not even in the warning.
    expect(JSON.stringify([...warnings.values()])).not.toContain('sealed before');
    // Acknowledged: nothing is left in either queue to come back.
    for (const d of ['alice@a.example/laptop', 'alice@a.example/phone']) {
      await until(
        async () => (await A.store.queue.pending(d)).length === 0,
        `the empty queue of ${d}`,
      );
    }
    expect(undeliverable).toEqual([]);
  });

  it('a denial survives a restart of the device (client state)', async () => {
    await phone.close();
    const again = A.client('alice', 'phone');
    record('phone', again);
    phone = again;
    await phone.connect();
    await arrive(heldForRestart);
    await until(
      () => blocked('laptop').length === 2 && blocked('phone').length === 1,
      'blocked-sender again',
    );
    expect(texts('phone')).toEqual([]);
    expect(texts('laptop')).toEqual(['hello from b']);
  });

  it('once alice approves bob (on one device), what he sends arrives on both', async () => {
    expect(await laptop.approve('bob@b.example')).toBe('approved');
    await bob.sendMessage('alice@a.example', 'approved now');
    await until(
      () => texts('laptop').includes('approved now') && texts('phone').includes('approved now'),
      'the message after the approval on both devices',
    );
    expect(blocked('laptop')).toHaveLength(2);
    expect(blocked('phone')).toHaveLength(1);
    // Bob included: approve() lifts the block at the server before it sends him the presence
    // key, so he can check alice's device list behind it.
    expect(undeliverable).toEqual([]);
  });
});

describe('a local sender that alice denied', () => {
  it('is dropped by her client even when her server’s block is switched off', async () => {
    const L = await startEnv({ defences: { uniformBlockedAnswers: false } });
    try {
      const alice = L.client('alice', 'desk');
      const carol = L.client('carol', 'desk');
      const got: string[] = [];
      const seen: TrustWarningEvent[] = [];
      alice.on('message', (m) => got.push(m.text));
      alice.on('trustWarning', (w) => seen.push(w));
      await alice.connect();
      await carol.connect();
      expect(await carol.subscribe(alice.address)).toBe('pending');
      expect(await alice.deny(carol.address)).toBe('denied');
      const warned = next<TrustWarningEvent>(alice, 'trustWarning');
      // The server's block is off: it finds alice's devices for carol and queues the message.
      await carol.sendMessage(alice.address, 'from a denied neighbour');
      expect(await warned).toMatchObject({ kind: 'blocked-sender', address: carol.address });
      await quiet(100);
      expect(got).toEqual([]);
      expect(seen.map((w) => w.kind)).toEqual(['blocked-sender']);
      // Refused before trust on first use: no key of hers, no session with her, is persisted.
      const saved = decodeState(readFileSync(join(L.dir, 'alice-desk.state')));
      expect([...saved.known.keys()]).not.toContain(carol.device);
    } finally {
      await L.close();
    }
  });
});
