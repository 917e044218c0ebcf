/**
 * Presence from any device of a user, end to end over real TLS: the devices share one presence
 * key and watcher set through sealed presence states, versions stay monotonic across devices, a
 * watcher approved on one device reads updates from the other, and a revocation on one device
 * also shuts the revoked watcher out of the other's updates (cryptographically, not only because
 * the server stops forwarding).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImppClient, ReceivedPresence } from '../../src/client/client.js';
import { decodeState } from '../../src/client/state.js';
import { readEnvelopeHeader } from '../../src/seal/header.js';
import { PresencePublisher, PresenceWatch } from '../../src/seal/presence.js';
import { SealDevice } from '../../src/seal/session.js';
import { type Env, quiet, startEnv } from '../service/harness.js';

let env: Env;
let laptop: ImppClient;
let phone: ImppClient;
let bob: ImppClient;
let carol: ImppClient;
const seen = new Map<string, ReceivedPresence[]>();

beforeAll(async () => {
  env = await startEnv();
  laptop = env.client('alice', 'laptop');
  phone = env.client('alice', 'phone');
  bob = env.client('bob', 'phone');
  carol = env.client('carol', 'desk');
  for (const [name, c] of [
    ['bob', bob],
    ['carol', carol],
  ] as const) {
    seen.set(name, []);
    c.on('presence', (p) => seen.get(name)?.push(p));
  }
  for (const c of [laptop, phone, bob, carol]) await c.connect();
  await laptop.addDevice('phone');
});
afterAll(async () => {
  await env.close();
});

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await check()) return;
    await quiet(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Until `device` has opened and acknowledged everything queued for it. */
async function drained(device: string): Promise<void> {
  await until(
    async () => (await env.store.queue.pending(device, { after: 0, limit: 10 })).length === 0,
    `${device} to drain its queue`,
  );
}

function notes(who: string): (string | undefined)[] {
  return (seen.get(who) ?? []).map((p) => p.note);
}

/** The presence watch of alice as `file` persisted it. */
function persistedWatch(file: string): PresenceWatch {
  const state = decodeState(new Uint8Array(readFileSync(join(env.dir, file))));
  const bytes = state.watches.get('alice@example.org');
  if (bytes === undefined) throw new Error('no watch of alice');
  return PresenceWatch.restore(bytes);
}

describe('presence from several devices of one user', () => {
  it('a watcher approved on the laptop reads updates published from the phone, and back', async () => {
    expect(await bob.subscribe('alice@example.org')).toBe('pending');
    expect(await carol.subscribe('alice@example.org')).toBe('pending');
    expect(await laptop.approve('bob@example.org')).toBe('approved');
    await drained('alice@example.org/phone'); // the laptop's presence state reached the phone
    await phone.publishPresence('open', 'on the phone');
    await until(() => notes('bob').length === 1, 'bob to see the phone');
    await laptop.publishPresence('closed', 'on the laptop');
    await until(() => notes('bob').length === 2, 'bob to see the laptop');
    await phone.publishPresence('open', 'phone again');
    await until(() => notes('bob').length === 3, 'bob to see the phone again');
    expect(notes('bob')).toEqual(['on the phone', 'on the laptop', 'phone again']);
    const versions = (seen.get('bob') ?? []).map((p) => p.version);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    expect(new Set(versions).size).toBe(3);
  });

  it('a watcher approved on the phone reads the laptop’s updates', async () => {
    expect(await phone.approve('carol@example.org')).toBe('approved');
    await drained('alice@example.org/laptop');
    await laptop.publishPresence('open', 'laptop for carol too');
    await until(() => notes('carol').includes('laptop for carol too'), 'carol to see the laptop');
    await until(() => notes('bob').length === 4, 'bob to see it as well');
  });

  it('a revocation on the phone shuts carol out of the laptop’s updates too', async () => {
    expect(await phone.revoke('carol@example.org')).toBe('revoked');
    await drained('alice@example.org/laptop');
    await drained('bob@example.org/phone');
    await laptop.publishPresence('closed', 'after carol left');
    await until(() => notes('bob').includes('after carol left'), 'bob to see the laptop');
    await quiet(100);
    expect(notes('carol')).not.toContain('after carol left');
    // Not only the server's refusal: the stored update is sealed under a key carol never got.
    const latest = await env.store.presence.latest('alice@example.org');
    if (latest === undefined) throw new Error('no stored presence');
    const header = readEnvelopeHeader(latest.bytes);
    if (header.kind !== 'presence') throw new Error('not a presence update');
    expect(header.deviceId).toBe('laptop');
    expect(header.epoch).toBe(2);
    const atCarol = persistedWatch('carol-desk.state');
    expect(atCarol.epochs).not.toContain(2);
    expect(() => atCarol.open(latest.bytes)).toThrow(
      expect.objectContaining({ code: 'ERR_SEAL_OPEN_FAILED' }),
    );
    expect(persistedWatch('bob-phone.state').epochs).toContain(2);
  });

  it('a device added later publishes under the shared key at once', async () => {
    const tablet = env.client('alice', 'tablet');
    await tablet.connect();
    await phone.addDevice('tablet');
    await drained('alice@example.org/tablet');
    await tablet.publishPresence('open', 'from the tablet');
    await until(() => notes('bob').includes('from the tablet'), 'bob to see the tablet');
    expect(notes('carol')).not.toContain('from the tablet');
  });

  it('removing a device rotates the shared key away from it', async () => {
    await laptop.removeDevice('tablet');
    await drained('alice@example.org/phone');
    await drained('bob@example.org/phone');
    await phone.publishPresence('open', 'tablet retired');
    await until(() => notes('bob').includes('tablet retired'), 'bob to see the phone');
    const latest = await env.store.presence.latest('alice@example.org');
    if (latest === undefined) throw new Error('no stored presence');
    const header = readEnvelopeHeader(latest.bytes);
    expect(header.kind === 'presence' && header.epoch).toBe(3);
    const atTablet = decodeState(new Uint8Array(readFileSync(join(env.dir, 'alice-tablet.state'))));
    if (atTablet.publisher === null) throw new Error('the tablet had no presence state');
    // The tablet held epoch 2 (it published under it) and never learnt epoch 3.
    const tabletPublisher = PresencePublisher.restore(
      SealDevice.restore(atTablet.device),
      atTablet.publisher,
    );
    expect(tabletPublisher.epoch).toBe(2);
  });
});
