/** Review findings on sealed presence: revocation by a non-canonical device address. */
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/crypto/index.js';
import { openPresenceKey, PresencePublisher, PresenceWatch } from '../../src/seal/index.js';
import { ALICE, device, expectCode } from './helpers.js';

describe('review: revocation', () => {
  it('revoking a watcher by a non-canonical spelling of its address still revokes it', () => {
    const alice = device(ALICE, 1);
    const pub = new PresencePublisher(alice);
    const bob = device('bob@example.net/laptop', 1);
    const watch = new PresenceWatch('alice@example.org', new Map([['phone', alice.identityKey]]));
    watch.installKey(
      openPresenceKey(bob, pub.authorize({ to: bob.device, bundle: bob.bundle() }).bytes),
    );
    expect(watch.open(pub.publish(utf8('<presence/>'))).version).toBe(1);

    // The same device, as a user interface or a roster might spell it.
    const keys = pub.revoke('Bob@EXAMPLE.net/laptop');
    expect(pub.watchers).toEqual([]);
    expect(keys.map((k) => k.to)).toEqual([]);
    expectCode(() => watch.open(pub.publish(utf8('<presence/>'))), 'ERR_SEAL_OPEN_FAILED');
  });

  it('an invalid address is refused, not silently ignored', () => {
    const pub = new PresencePublisher(device(ALICE, 1));
    expectCode(() => pub.revoke('not an address'), 'ERR_ADDRESS_INVALID');
  });
});
