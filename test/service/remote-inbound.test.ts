/**
 * The service's inbound side of federation (src/service/federation-inbound.ts) against a REAL
 * server (loopback TLS, SQLite) and raw protocol sessions: what a peer domain can and cannot make
 * this domain do. The peer is this test calling `federationInbound` directly, as the federation
 * router does after its own checks (tested with real links in test/federation/*).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type SigningKeyPair,
  generateSigningKeyPair,
  randomBytes,
} from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { ClientFrame } from '../../src/service/protocol.js';
import type { FederationInbound } from '../../src/service/remote.js';
import { type Env, quiet, startEnv } from './harness.js';
import { RawClient } from './raw.js';
import { sealedMessage, sealedPresence } from './store/envelopes.js';

let env: Env;
let inbound: FederationInbound;
const keys = new Map<string, SigningKeyPair>();

beforeAll(async () => {
  env = await startEnv({ domain: 'b.example' });
  inbound = env.server.federationInbound;
});
afterAll(async () => {
  await env.close();
});

async function device(user: string, deviceId: string): Promise<string> {
  const identity = generateSigningKeyPair();
  await env.store.devices.register({
    address: `${user}@b.example`,
    deviceId,
    identityKey: identity.publicKey,
    enrolment: randomBytes(100),
    createdAt: Date.now(),
  });
  const name = `${user}@b.example/${deviceId}`;
  keys.set(name, identity);
  return name;
}

async function online(name: string): Promise<RawClient> {
  const raw = await RawClient.open(env);
  const [address, deviceId] = name.split('/') as [string, string];
  await raw.auth(address.split('@')[0] as string);
  expect((await raw.bind(deviceId, keys.get(name))).registered).toBe(true);
  return raw;
}

function bytesOf(v: unknown): Uint8Array {
  return Uint8Array.from(v as Uint8Array);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isImppError(e) ? e.code : 'other';
  }
}

describe('federationInbound', () => {
  it('is one instance per server', () => {
    expect(env.server.federationInbound).toBe(inbound);
  });

  it('knows active devices only, and takes objects only for them', async () => {
    const phone = await device('bob', 'phone');
    const old = await device('bob', 'old');
    await env.store.devices.revoke('bob@b.example', 'old', Date.now());
    expect(await inbound.deviceActive(phone)).toBe(true);
    expect(await inbound.deviceActive(old)).toBe(false);
    expect(await inbound.deviceActive('bob@b.example/none')).toBe(false);
    expect(await inbound.deviceActive('bob@a.example/phone')).toBe(false);
    const item = (to: string, id = randomBytes(16)) => ({
      kind: 'message' as const,
      recipientDevice: to,
      id,
      object: sealedMessage(to, id),
      arrivedFrom: 'a.example',
    });
    const id = randomBytes(16);
    expect(await inbound.enqueue(item(phone, id))).toBe('stored');
    expect(await inbound.enqueue(item(phone, id))).toBe('duplicate');
    expect(
      await Promise.all([
        codeOf(inbound.enqueue(item(old))),
        codeOf(inbound.enqueue(item('nobody@b.example/x'))),
        codeOf(inbound.enqueue(item('bob@c.example/phone'))),
      ]),
    ).toEqual(['ERR_NOT_FOUND', 'ERR_NOT_FOUND', 'ERR_NOT_FOUND']);
    const [stored] = await env.store.queue.pending(phone);
    expect(stored?.arrivedFrom).toBe('a.example');
  });

  it('applies a remote watcher’s request and cancel, and tells the presentity’s devices', async () => {
    const tab = await device('carol', 'tab');
    const raw = await online(tab);
    try {
      await inbound.subscription({
        presentity: 'carol@b.example',
        watcher: 'zed@a.example',
        action: 'request',
      });
      expect(await raw.take(ClientFrame.SUBSCRIPTION)).toEqual({
        presentity: 'carol@b.example',
        watcher: 'zed@a.example',
        state: 'pending',
      });
      await inbound.subscription({
        presentity: 'carol@b.example',
        watcher: 'zed@a.example',
        action: 'cancel',
      });
      expect((await raw.take(ClientFrame.SUBSCRIPTION)).state).toBe('none');
      // A cancel the record no longer needs (both copies agree it is gone): no error.
      await inbound.subscription({
        presentity: 'carol@b.example',
        watcher: 'zed@a.example',
        action: 'cancel',
      });
      expect(await env.store.subscriptions.get('carol@b.example', 'zed@a.example')).toBe(undefined);
    } finally {
      await raw.close();
    }
  });

  it('applies a remote presentity’s decisions to the local copy; a denial looks pending', async () => {
    const pad = await device('dave', 'pad');
    const raw = await online(pad);
    try {
      // dave (here) asked zed (a.example): the local copy, as a federated session writes it
      // (this server has no federation of its own).
      await env.store.subscriptions.transition({
        presentity: 'zed@a.example',
        watcher: 'dave@b.example',
        actor: 'dave@b.example',
        action: 'request',
        at: Date.now(),
      });
      await inbound.decision({
        presentity: 'zed@a.example',
        watcher: 'dave@b.example',
        action: 'deny',
      });
      expect((await env.store.subscriptions.get('zed@a.example', 'dave@b.example'))?.state).toBe(
        'denied',
      );
      const listed = await raw.request(ClientFrame.LIST_WATCHERS, {});
      expect(listed.subscriptions).toEqual([{ presentity: 'zed@a.example', state: 'pending' }]);
      await quiet(50);
      expect(raw.frames.filter((f) => f.type === ClientFrame.SUBSCRIPTION)).toEqual([]);

      const presence = sealedPresence('zed@a.example', 5);
      await inbound.decision({
        presentity: 'zed@a.example',
        watcher: 'dave@b.example',
        action: 'approve',
        presence,
      });
      expect((await raw.take(ClientFrame.SUBSCRIPTION)).state).toBe('approved');
      expect(bytesOf((await raw.take(ClientFrame.PRESENCE)).object)).toEqual(bytesOf(presence));
      expect((await env.store.presence.latest('zed@a.example'))?.version).toBe(5);

      // Fan-out: newer versions are stored and pushed, stale ones dropped without error.
      const newer = sealedPresence('zed@a.example', 6);
      expect(
        await inbound.presence({
          object: newer,
          presentity: 'zed@a.example',
          watchers: ['dave@b.example'],
        }),
      ).toBe(1);
      expect(bytesOf((await raw.take(ClientFrame.PRESENCE)).object)).toEqual(bytesOf(newer));
      expect(
        await inbound.presence({
          object: sealedPresence('zed@a.example', 4),
          presentity: 'zed@a.example',
          watchers: ['dave@b.example'],
        }),
      ).toBe(0);
      expect((await env.store.presence.latest('zed@a.example'))?.version).toBe(6);

      // A decision that does not fit the copy (it was withdrawn meanwhile) is dropped.
      await inbound.decision({
        presentity: 'zed@a.example',
        watcher: 'carol@b.example',
        action: 'approve',
      });
      expect(await env.store.subscriptions.get('zed@a.example', 'carol@b.example')).toBe(undefined);

      // After a revocation, fan-out stops here whatever the peer lists.
      await inbound.decision({
        presentity: 'zed@a.example',
        watcher: 'dave@b.example',
        action: 'revoke',
      });
      expect(
        await inbound.presence({
          object: sealedPresence('zed@a.example', 7),
          presentity: 'zed@a.example',
          watchers: ['dave@b.example'],
        }),
      ).toBe(0);
      expect((await env.store.presence.latest('zed@a.example'))?.version).toBe(6);
    } finally {
      await raw.close();
    }
  });

  it('refuses a request or decision that a peer makes in the name of this domain’s users', async () => {
    // Defence in depth under the router's own check: a peer speaks only for its own users.
    for (const action of ['request', 'cancel'] as const) {
      expect(
        await codeOf(
          inbound.subscription({
            presentity: 'carol@b.example',
            watcher: 'mallory@b.example',
            action,
          }),
        ),
      ).toBe('ERR_NOT_AUTHORIZED');
    }
    expect(await env.store.subscriptions.get('carol@b.example', 'mallory@b.example')).toBe(
      undefined,
    );
    await env.store.subscriptions.transition({
      presentity: 'erin@b.example',
      watcher: 'dave@b.example',
      actor: 'dave@b.example',
      action: 'request',
      at: Date.now(),
    });
    expect(
      await codeOf(
        inbound.decision({
          presentity: 'erin@b.example',
          watcher: 'dave@b.example',
          action: 'approve',
        }),
      ),
    ).toBe('ERR_NOT_AUTHORIZED');
    expect((await env.store.subscriptions.get('erin@b.example', 'dave@b.example'))?.state).toBe(
      'pending',
    );
  });

  it('refuses presence that a peer claims for this domain’s users or that is not presence', async () => {
    expect(
      await codeOf(
        inbound.presence({
          object: sealedPresence('bob@b.example', 1),
          presentity: 'bob@b.example',
          watchers: ['dave@b.example'],
        }),
      ),
    ).toBe('ERR_NOT_AUTHORIZED');
    // A peer cannot add a watcher: dave never asked yan, so nothing is kept or pushed.
    expect(
      await inbound.presence({
        object: sealedPresence('yan@a.example', 1),
        presentity: 'yan@a.example',
        watchers: ['dave@b.example'],
      }),
    ).toBe(0);
    expect(await env.store.presence.latest('yan@a.example')).toBe(undefined);
    await env.store.subscriptions.transition({
      presentity: 'yan@a.example',
      watcher: 'dave@b.example',
      actor: 'dave@b.example',
      action: 'request',
      at: Date.now(),
    });
    await inbound.decision({
      presentity: 'yan@a.example',
      watcher: 'dave@b.example',
      action: 'approve',
    });
    // Another presentity's object under yan's name.
    expect(
      await codeOf(
        inbound.presence({
          object: sealedPresence('zed@a.example', 9),
          presentity: 'yan@a.example',
          watchers: ['dave@b.example'],
        }),
      ),
    ).toBe('ERR_INVALID_ARGUMENT');
  });
});
