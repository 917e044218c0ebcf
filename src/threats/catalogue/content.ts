/**
 * Content threats (docs/security-model.md §8: T02–T06, T09, T10, T30, T48, T49): a compromised
 * server (src/threats/attackers/malicious-server.ts) tampers with, replays, reorders, drops,
 * relabels and forges sealed objects on their way to the real client SDK of this build.
 *
 * These run against a server the suite starts itself (`local-server`), never against the target:
 * they test the SDK that ships with this build, which is what users of the deployment run.
 */
import { ImppError, isImppError } from '../../errors.js';
import { randomBytes, toHex, utf8 } from '../../crypto/index.js';
import { openMessage, sealMessage } from '../../seal/message.js';
import { buildPidf } from '../../seal/payload/pidf.js';
import { PresencePublisher } from '../../seal/presence.js';
import { SealDevice } from '../../seal/session.js';
import { parseAddress } from '../../trust/address.js';
import type { MaliciousServer } from '../attackers/malicious-server.js';
import { describeError } from '../context.js';
import type { Threat, ThreatContext } from '../types.js';
import {
  bundleFromStore,
  fieldOf,
  flipByte,
  K_PRESENCE_NONCE,
  K_SESSION_CIPHERTEXT,
  pair,
  quiet,
  SdkDevice,
  sealAsImpostor,
  settled,
  startHarness,
  texts,
  threeOnHarness,
  waitUntil,
  withField,
} from './sdk-support.js';
import { verdictIf, withProblems } from './outcome.js';

const LOCAL = ['local-server'] as const;

/**
 * Bob goes offline, Alice sends `count` messages, and the operator takes them out of Bob's
 * queue: sealed objects Bob has never seen, for the operator to play with.
 */
async function withheld(
  ctx: ThreatContext,
  evil: MaliciousServer,
  alice: SdkDevice,
  bob: SdkDevice,
  count: number,
): Promise<{ texts: string[]; objects: { id: Uint8Array; bytes: Uint8Array }[] }> {
  await bob.stop();
  const sent = Array.from({ length: count }, () => ctx.canary());
  for (const t of sent) await alice.client.sendMessage(bob.address, t);
  const objects = (await evil.pending(bob.name)).filter((o) => o.kind === 'message');
  if (objects.length !== count) {
    throw new ImppError(
      'ERR_PROTOCOL',
      `expected ${count} queued objects, found ${objects.length}`,
    );
  }
  for (const o of objects) evil.drop(bob.name, o.id);
  return { texts: sent, objects };
}

/** A PIDF document as the SDK publishes it. */
function presenceDocument(presentity: string, note: string): string {
  return buildPidf({
    entity: parseAddress(presentity),
    tuples: [{ id: 't1', status: { basic: 'open', extensions: [] }, extensions: [], notes: [] }],
    notes: [{ text: note }],
    extensions: [],
  });
}

function count(list: readonly string[], text: string): number {
  return list.filter((t) => t === text).length;
}

const tampering: Threat = {
  id: 'T02',
  name: 'tampering',
  class: 'content',
  title: 'The server flips bits, truncates, splices a header onto another body, swaps recipients',
  needs: LOCAL,
  async run(ctx) {
    const { evil, alice, bob, carol } = await threeOnHarness(ctx);
    await alice.client.sendMessage(carol.address, ctx.canary());
    const forCarol = evil.capturedFor(carol.name, 'message')[0];
    if (forCarol === undefined) throw new ImppError('ERR_NOT_FOUND', 'no message for carol');
    const { texts: sent, objects } = await withheld(ctx, evil, alice, bob, 3);
    const [m2, m3, m4] = objects as [(typeof objects)[0], (typeof objects)[0], (typeof objects)[0]];
    const body2 = fieldOf(m2.bytes, K_SESSION_CIPHERTEXT) as Uint8Array;
    const carolBody = fieldOf(forCarol.bytes, K_SESSION_CIPHERTEXT) as Uint8Array;
    const variants: [string, Uint8Array][] = [
      ['one bit flipped in the authentication tag', flipByte(m2.bytes, -1)],
      ['truncated by one byte', m3.bytes.subarray(0, m3.bytes.length - 1)],
      [
        'the header of one message spliced onto the body of another',
        withField(m3.bytes, K_SESSION_CIPHERTEXT, body2),
      ],
      [
        'carol’s body under a header for bob (bodies swapped between recipients)',
        withField(m4.bytes, K_SESSION_CIPHERTEXT, carolBody),
      ],
    ];
    const before = bob.seen.messages.length;
    for (const [, bytes] of variants) await evil.inject(bob.name, bytes);
    await bob.start();
    await waitUntil(() => bob.seen.undeliverable.length >= 3, undefined, ctx.signal);
    await quiet();
    const shown = bob.seen.messages.length - before;
    const evidence = [
      ...variants.map(([what]) => `delivered to bob: ${what}`),
      `bob's SDK showed ${shown} of them; reported ${bob.seen.undeliverable.length} undecryptable (${[...new Set(bob.seen.undeliverable)].join(', ') || 'none'}); the truncated one is not even an envelope`,
    ];
    // A failed open must leave the session as it was: the untouched originals still open.
    for (const o of objects) await evil.inject(bob.name, o.bytes);
    const intact = await waitUntil(
      () => sent.every((t) => texts(bob).includes(t)),
      undefined,
      ctx.signal,
    );
    evidence.push(
      `the untouched originals delivered afterwards: ${intact ? 'opened' : 'NOT opened'}`,
    );
    if (shown > 0) {
      return verdictIf(
        false,
        '',
        `bob's SDK showed ${shown} tampered object(s) as messages`,
        evidence,
      );
    }
    return verdictIf(
      intact,
      `SDK: ${variants.length} tampered objects refused, none shown; the originals still opened afterwards (the AEAD is not switchable)`,
      'tampered objects were refused but a failed open broke the session: the originals no longer open',
      evidence,
    );
  },
};

const replay: Threat = {
  id: 'T03',
  name: 'replay',
  class: 'content',
  title: 'The server redelivers an accepted message, in the session and after a reconnect',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const { alice, bob } = await pair(ctx, evil);
    const first = evil.capturedFor(bob.name, 'message')[0];
    if (first === undefined) throw new ImppError('ERR_NOT_FOUND', 'no captured first message');
    const firstText = bob.seen.messages[0]?.text ?? '';
    const second = ctx.canary();
    await ctx.control('a second message in the same session arrives', async () => {
      await alice.client.sendMessage(bob.address, second);
      if (!(await waitUntil(() => texts(bob).includes(second), undefined, ctx.signal))) {
        throw new ImppError('ERR_TIMEOUT', 'the second message did not arrive');
      }
    });
    const secondObject = evil.capturedFor(bob.name, 'message')[1];
    if (secondObject === undefined) throw new ImppError('ERR_NOT_FOUND', 'no second message');
    const evidence: string[] = [];
    await evil.inject(bob.name, first.bytes);
    await evil.inject(bob.name, secondObject.bytes);
    await settled(evil, bob.name);
    evidence.push('re-queued the first (prekey) message and a session message while bob is online');
    await bob.restart();
    await evil.inject(bob.name, first.bytes);
    await evil.inject(bob.name, secondObject.bytes);
    await settled(evil, bob.name);
    evidence.push('re-queued both again after bob reconnected (a new connection, state from disk)');
    // The hard case (R13): the server withholds Bob's one-time prekeys, so Carol's first message
    // rests on the signed prekey alone and only the replay cache can tell a replay from new.
    evil.withholdPrekeys(bob.name);
    const carol = await new SdkDevice(ctx, evil, 'carol', 'desk').start();
    const third = ctx.canary();
    await ctx.control('carol’s first message, without a one-time prekey, arrives', async () => {
      await carol.client.sendMessage(bob.address, third);
      if (!(await waitUntil(() => texts(bob).includes(third), undefined, ctx.signal))) {
        throw new ImppError('ERR_TIMEOUT', 'carol’s message did not arrive');
      }
    });
    const carolFirst = evil.capturedFor(bob.name, 'message').at(-1);
    if (carolFirst !== undefined) await evil.inject(bob.name, carolFirst.bytes);
    await settled(evil, bob.name);
    await bob.restart();
    if (carolFirst !== undefined) await evil.inject(bob.name, carolFirst.bytes);
    await settled(evil, bob.name);
    evidence.push(
      'replayed carol’s first message (no one-time prekey: the server withheld them), online and after a reconnect',
    );
    const seen = texts(bob);
    const firstCount = count(seen, firstText);
    const secondCount = count(seen, second);
    const thirdCount = count(seen, third);
    evidence.push(
      `bob's SDK showed the first ${firstCount}×, the second ${secondCount}×, carol's ${thirdCount}×`,
    );
    return verdictIf(
      firstCount === 1 && secondCount === 1 && thirdCount === 1,
      `SDK: 6 replays (prekey messages with and without a one-time prekey, a session message; same and new connection) shown 0 times`,
      `a replayed message was shown again (first ${firstCount}×, second ${secondCount}×, carol's ${thirdCount}×)`,
      evidence,
    );
  },
};

const reorderRollback: Threat = {
  id: 'T04',
  name: 'reorder-rollback',
  class: 'presence-and-access',
  title: 'Out-of-order delivery; an older presence update or device list served after a newer',
  needs: LOCAL,
  deadlineMs: 45_000,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const { alice, bob } = await pair(ctx, evil);
    const evidence: string[] = [];
    const problems: string[] = [];

    // 1. Out of order: every message opens, once.
    const { texts: sent, objects } = await withheld(ctx, evil, alice, bob, 3);
    for (const o of [...objects].reverse()) await evil.inject(bob.name, o.bytes);
    await bob.start();
    await waitUntil(() => sent.every((t) => texts(bob).includes(t)), undefined, ctx.signal);
    await settled(evil, bob.name);
    const counts = sent.map((t) => count(texts(bob), t));
    evidence.push(`3 messages delivered in reverse order: shown ${counts.join('/')} times`);
    if (counts.some((c) => c !== 1))
      problems.push('out-of-order messages were not each shown once');

    // 2. Presence rollback: an older signed update after a newer one.
    await ctx.control('bob watches alice and receives two presence updates', async () => {
      await bob.client.subscribe(alice.address);
      await alice.client.approve(bob.address);
      await alice.client.publishPresence('open', ctx.canary());
      await waitUntil(() => bob.seen.presence.length >= 1, undefined, ctx.signal);
      await alice.client.publishPresence('closed', ctx.canary());
      if (!(await waitUntil(() => bob.seen.presence.length >= 2, undefined, ctx.signal))) {
        throw new ImppError('ERR_TIMEOUT', 'presence did not arrive');
      }
    });
    const older = evil.published.filter((p) => p.presentity === alice.address)[0];
    const shownBefore = bob.seen.presence.length;
    if (older !== undefined) evil.pushPresence(bob.name, older.bytes);
    await quiet();
    const rolledBack = bob.seen.presence.length - shownBefore;
    evidence.push(
      `pushed presence version ${older?.version ?? '?'} after a newer one: shown ${rolledBack}×`,
    );
    if (rolledBack > 0) problems.push('an older presence update was shown after a newer one');

    // 3. Device list rollback: bob signs a second device on; the server serves the old list.
    const oldHead = evil.snapshotHead();
    const oldList = await evil.deviceList(bob.address);
    await ctx.control('bob adds a tablet to his list; alice sees counter 2', async () => {
      await new SdkDevice(ctx, evil, 'bob', 'tablet').start();
      await bob.client.addDevice('tablet');
      const l = await alice.client.deviceList(bob.address);
      if (l.counter !== oldList.counter + 1) throw new ImppError('ERR_PROTOCOL', 'no new list');
    });
    evil.serveDeviceList(bob.address, oldList);
    let listRefused = false;
    try {
      await alice.client.deviceList(bob.address);
    } catch (e) {
      listRefused = isImppError(e, 'ERR_DEVICE_LIST_INVALID');
    }
    let sendRefused = false;
    try {
      const ids = await alice.client.sendMessage(bob.address, ctx.canary());
      sendRefused = ids.length === 0;
    } catch (e) {
      sendRefused = isImppError(e, 'ERR_DEVICE_LIST_INVALID');
    }
    evidence.push(
      `served bob's list counter ${oldList.counter} after counter ${oldList.counter + 1}: ` +
        `${listRefused ? 'refused' : 'ACCEPTED'}; sending to bob ${sendRefused ? 'refused' : 'went ahead'}`,
    );
    if (!listRefused || !sendRefused) problems.push('an older device list was accepted');

    // 4. Key-log rollback: alice trusts the head with bob's tablet in it; the server serves the
    // head from before.
    await ctx.control('alice verifies her enrolment against the current head', () =>
      alice.client.verifyEnrolment(),
    );
    evil.serveHead(oldHead);
    let headAnswer: string;
    try {
      await alice.client.verifyEnrolment();
      headAnswer = 'ACCEPTED';
    } catch (e) {
      headAnswer = describeError(e);
    }
    evil.serveHead(undefined);
    evidence.push(
      `served the key-log head of size ${oldHead.treeSize} after a larger one: ${headAnswer}`,
    );
    if (!headAnswer.includes('ERR_KEYLOG_INCONSISTENT'))
      problems.push('an older key-log head was accepted');
    return withProblems(
      problems,
      `SDK: reordered messages each opened once; old presence, device list and key-log head refused`,
      evidence,
    );
  },
};

const silentDrop: Threat = {
  id: 'T05',
  name: 'silent-drop',
  class: 'content',
  title: 'The server drops message N of a conversation and delivers the rest',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const { alice, bob } = await pair(ctx, evil);
    const { texts: sent, objects } = await withheld(ctx, evil, alice, bob, 3);
    await evil.inject(bob.name, (objects[0] as { bytes: Uint8Array }).bytes);
    await evil.inject(bob.name, (objects[2] as { bytes: Uint8Array }).bytes);
    await bob.start();
    await waitUntil(
      () => texts(bob).includes(sent[0] as string) && texts(bob).includes(sent[2] as string),
      undefined,
      ctx.signal,
    );
    await settled(evil, bob.name);
    const reported = bob.seen.missing.filter((m) => m.contact === alice.address);
    const total = reported.reduce((n, m) => n + m.count, 0);
    const evidence = [
      'dropped the 2nd of 3 messages; delivered the 1st and 3rd',
      `bob's SDK raised missingMessages ${reported.length}× (${total} missing)`,
      'detection only: a message dropped last is noticed when the next one arrives (R07)',
    ];
    return verdictIf(
      total >= 1,
      `SDK: the dropped message was reported missing (count ${total})`,
      'the dropped message went unnoticed: no missingMessages event',
      evidence,
    );
  },
};

const senderImpersonation: Threat = {
  id: 'T06',
  name: 'sender-impersonation',
  class: 'content',
  title: 'The server sends messages as Alice from devices and keys of its own',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const { alice, bob } = await pair(ctx, evil);
    const carol = await ctx.control('carol verifies alice’s device list', async () => {
      const c = await new SdkDevice(ctx, evil, 'carol', 'desk').start();
      await c.client.deviceList(alice.address);
      return c;
    });
    const evidence: string[] = [];
    const problems: string[] = [];
    // 1. An impostor with Alice's listed device id and a key of the server's.
    const impostor = SealDevice.create(alice.name);
    const forged = [ctx.canary(), ctx.canary()];
    await evil.inject(
      bob.name,
      await sealAsImpostor(evil, impostor, bob.name, forged[0] as string),
    );
    await evil.inject(
      carol.name,
      await sealAsImpostor(evil, impostor, carol.name, forged[1] as string),
    );
    await settled(evil, bob.name);
    await settled(evil, carol.name);
    const atBob = count(texts(bob), forged[0] as string);
    const atCarol = count(texts(carol), forged[1] as string);
    evidence.push(
      `as ${alice.name} with another key, to bob (who has a session with it): shown ${atBob}×` +
        ` (${bob.seen.keyChanges.length} keyChange)`,
      `the same to carol (verified alice's list, no session): shown ${atCarol}×` +
        ` (${carol.seen.warnings.filter((w) => w.kind === 'key-mismatch').length} key-mismatch)`,
    );
    if (atBob > 0 || atCarol > 0)
      problems.push('a message under a key not on alice’s list was shown as alice’s');
    // 2. A ghost device of Alice's (not on her list): delivered only with a warning.
    const ghost = await evil.addGhostDevice(alice.address, 'ghost');
    const ghostText = ctx.canary();
    await evil.inject(carol.name, await sealAsImpostor(evil, ghost, carol.name, ghostText));
    await settled(evil, carol.name);
    const ghostShown = count(texts(carol), ghostText);
    const flagged = carol.seen.warnings.some(
      (w) => w.kind === 'unlisted-sender' && w.device === `${alice.address}/ghost`,
    );
    evidence.push(
      `from a ghost device of alice not on her list: shown ${ghostShown}×, ` +
        (flagged
          ? 'flagged unlisted-sender (the app must show it; the list may be newer than the one held)'
          : 'NOT flagged'),
    );
    if (ghostShown > 0 && !flagged)
      problems.push('a ghost device’s message was shown without a warning');
    // 3. Key material from the ghost: a presence key for Alice, then an update under it.
    await ctx.control('bob watches alice and sees her presence', async () => {
      await bob.client.subscribe(alice.address);
      await alice.client.approve(bob.address);
      await alice.client.publishPresence('open', ctx.canary());
      if (!(await waitUntil(() => bob.seen.presence.length >= 1, undefined, ctx.signal))) {
        throw new ImppError('ERR_TIMEOUT', 'presence did not arrive');
      }
    });
    const shownPresence = bob.seen.presence.length;
    const ghostPublisher = new PresencePublisher(ghost);
    const keyObject = ghostPublisher.authorize({
      to: bob.name,
      bundle: await bundleFromStore(evil, bob.name),
    });
    await evil.inject(bob.name, keyObject.bytes);
    await settled(evil, bob.name);
    const note = ctx.canary();
    evil.pushPresence(
      bob.name,
      ghostPublisher.publish(utf8(presenceDocument(alice.address, note))),
    );
    await quiet();
    const forgedPresence = bob.seen.presence.length - shownPresence;
    evidence.push(
      `a presence key for alice from the ghost device, then an update under it: ${forgedPresence} update(s) shown`,
    );
    if (forgedPresence > 0) problems.push('key material from an unlisted device was used');
    return withProblems(
      problems,
      `SDK: messages under keys not on alice’s list refused; a ghost device flagged; its key material ignored`,
      evidence,
    );
  },
};

const contextConfusion: Threat = {
  id: 'T09',
  name: 'context-confusion',
  class: 'content',
  title: 'A message ciphertext presented as a presence update or as key distribution',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const { alice, bob } = await pair(ctx, evil);
    const { texts: sent, objects } = await withheld(ctx, evil, alice, bob, 1);
    const m = objects[0] as { bytes: Uint8Array };
    await bob.start();
    const messagesBefore = bob.seen.messages.length;
    evil.pushPresence(bob.name, m.bytes);
    await evil.inject(bob.name, withField(m.bytes, 2, 3)); // kind relabelled: key distribution
    await settled(evil, bob.name);
    const presenceShown = bob.seen.presence.length;
    const messagesShown = bob.seen.messages.length - messagesBefore;
    await evil.inject(bob.name, m.bytes);
    await settled(evil, bob.name);
    const original = count(texts(bob), sent[0] as string);
    const evidence = [
      `a message ciphertext pushed as presence: ${presenceShown} presence event(s)`,
      `the same relabelled as key distribution: ${messagesShown} message(s), ${bob.seen.undeliverable.length} undecryptable`,
      `the original afterwards: shown ${original}×`,
    ];
    return verdictIf(
      presenceShown === 0 && messagesShown === 0 && original === 1,
      `SDK: a message never opens as presence or key distribution; the original still opens once (labels are in every AEAD AD, not switchable)`,
      'an object of one kind was accepted as another, or the attempts consumed the original',
      evidence,
    );
  },
};

const downgrade: Threat = {
  id: 'T10',
  name: 'e2e-downgrade',
  class: 'content',
  title: 'The server claims Bob has no keys; sends an envelope with an unknown version or suite',
  needs: LOCAL,
  async run(ctx) {
    const { evil, alice, bob, carol } = await threeOnHarness(ctx);
    const evidence: string[] = [];
    const problems: string[] = [];
    // 1. "Bob has no keys": Carol (no session with Bob) must send nothing, certainly no plaintext.
    evil.withholdBundle(bob.name);
    const secret = ctx.canary();
    const mark = evil.captured.length;
    let result: string;
    try {
      const ids = await carol.client.sendMessage(bob.address, secret);
      result = `sendMessage returned ${ids.length} id(s)`;
    } catch (e) {
      result = `sendMessage failed: ${describeError(e)}`;
    }
    const toBob = evil.captured.slice(mark).filter((o) => o.device.startsWith(`${bob.address}/`));
    const needle = utf8(secret);
    const plaintext = evil.captured.some((o) => Buffer.from(o.bytes).includes(Buffer.from(needle)));
    evidence.push(
      `bob's bundle withheld; carol sends: ${result}; objects for bob: ${toBob.length}; plaintext on the server: ${plaintext ? 'YES' : 'no'}`,
    );
    if (toBob.length > 0 || plaintext) problems.push('something was sent to bob without his keys');
    // 2. Unknown version and suite on a real message.
    const { texts: sent, objects } = await withheld(ctx, evil, alice, bob, 1);
    const m = objects[0] as { id: Uint8Array; bytes: Uint8Array };
    await bob.start();
    for (const [what, bytes] of [
      ['version 0', withField(m.bytes, 0, 0)],
      ['version 2', withField(m.bytes, 0, 2)],
      ['suite 2 (unknown)', withField(m.bytes, 1, 2)],
    ] as const) {
      const id = await evil.inject(bob.name, bytes);
      await quiet(150);
      evil.drop(bob.name, id); // not acknowledged: a client cannot read the envelope
      evidence.push(`${what}: shown ${count(texts(bob), sent[0] as string)}×`);
    }
    if (count(texts(bob), sent[0] as string) > 0)
      problems.push('an envelope with an unknown version or suite was opened');
    await evil.inject(bob.name, m.bytes);
    await settled(evil, bob.name);
    evidence.push(`the original afterwards: shown ${count(texts(bob), sent[0] as string)}×`);
    return withProblems(
      problems,
      `SDK: no keys means nothing sent (no plaintext mode exists); unknown versions and suites refused (not switchable)`,
      evidence,
    );
  },
};

const metadataExposure: Threat = {
  id: 'T30',
  name: 'metadata-exposure',
  class: 'content',
  title: 'The server records who talks to whom, when, and how much',
  run() {
    return Promise.resolve({
      verdict: 'NOT-TESTED',
      summary:
        'informational: the server sees the submitting session, recipient devices, sizes, timing and subscriptions by design (residual risk R02); that the sender is hidden in stored objects is checked by T01',
    });
  },
};

const decryptionOracle: Threat = {
  id: 'T48',
  name: 'decryption-oracle',
  class: 'content',
  title: 'Crafted ciphertexts to learn which check failed',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const { alice, bob } = await pair(ctx, evil);
    const { texts: sent, objects } = await withheld(ctx, evil, alice, bob, 1);
    const m = objects[0] as { id: Uint8Array; bytes: Uint8Array };
    await bob.start();
    const body = fieldOf(m.bytes, K_SESSION_CIPHERTEXT) as Uint8Array;
    const ephemeral = fieldOf(m.bytes, 5) as Uint8Array;
    const crafted: [string, Uint8Array][] = [
      ['ephemeral key changed', withField(m.bytes, 5, flipByte(ephemeral, 0))],
      ['other recipient device', withField(m.bytes, 3, `${bob.address}/other`)],
      [
        'first ciphertext byte (the sealed sender: a rewritten sender)',
        withField(m.bytes, K_SESSION_CIPHERTEXT, flipByte(body, 0)),
      ],
      [
        'middle ciphertext byte',
        withField(m.bytes, K_SESSION_CIPHERTEXT, flipByte(body, body.length >> 1)),
      ],
      ['byte before the tag', withField(m.bytes, K_SESSION_CIPHERTEXT, flipByte(body, -17))],
      ['last tag byte', withField(m.bytes, K_SESSION_CIPHERTEXT, flipByte(body, -1))],
      [
        'ciphertext cut short',
        withField(m.bytes, K_SESSION_CIPHERTEXT, body.subarray(0, body.length - 1)),
      ],
    ];
    const codes: string[] = [];
    for (const [, bytes] of crafted) {
      const before = bob.seen.undeliverable.length;
      await evil.inject(bob.name, bytes);
      await waitUntil(() => bob.seen.undeliverable.length > before, 2_000, ctx.signal);
      codes.push(bob.seen.undeliverable[before] ?? 'no answer');
      evil.drop(bob.name, m.id);
    }
    // The same at the seal layer, where the message text is visible too.
    const a = SealDevice.create(`alice@${evil.domain}/x`);
    const b = SealDevice.create(`bob@${evil.domain}/y`);
    const sealed = sealMessage(
      a,
      { to: b.device, bundle: b.bundle() },
      'text/plain',
      randomBytes(40),
    ).bytes;
    const failures = new Set<string>();
    for (let i = 0; i < sealed.length; i += Math.max(1, sealed.length >> 5)) {
      try {
        openMessage(b, flipByte(sealed, i));
        failures.add(`byte ${i}: OPENED`);
      } catch (e) {
        failures.add(isImppError(e) ? `${e.code}: ${e.message}` : describeError(e));
      }
    }
    const shown = count(texts(bob), sent[0] as string);
    await evil.inject(bob.name, m.bytes);
    await settled(evil, bob.name);
    const distinct = [...new Set(codes)];
    const evidence = [
      ...crafted.map(([what], i) => `${what}: ${codes[i] ?? '?'}`),
      `seal layer, one byte changed at ${Math.ceil(sealed.length / Math.max(1, sealed.length >> 5))} positions: ${[...failures].join(' | ')}`,
      `the original afterwards: shown ${count(texts(bob), sent[0] as string)}×`,
      'timing is not measured here',
    ];
    const ok =
      shown === 0 &&
      distinct.length === 1 &&
      distinct[0] === 'ERR_SEAL_OPEN_FAILED' &&
      failures.size <= 2 && // ERR_SEAL_OPEN_FAILED, and ERR_SEAL_MALFORMED/UNSUPPORTED from the public header
      ![...failures].some((f) => f.includes('OPENED')) &&
      [...failures].filter((f) => f.startsWith('ERR_SEAL_OPEN_FAILED')).length === 1;
    return verdictIf(
      ok,
      `SDK: ${crafted.length} crafted ciphertexts: one error (ERR_SEAL_OPEN_FAILED), one message; nothing shown`,
      `crafted ciphertexts gave distinguishable answers: ${distinct.join(', ')}`,
      evidence,
    );
  },
};

const nonceReuse: Threat = {
  id: 'T49',
  name: 'nonce-reuse',
  class: 'content',
  title: 'Many presence updates under one key: any nonce repeated?',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const alice = await ctx.control('alice publishes presence', async () => {
      const a = await new SdkDevice(ctx, evil, 'alice', 'laptop').start();
      await a.client.publishPresence('open', ctx.canary());
      return a;
    });
    for (let i = 0; i < 15; i++) {
      await alice.client.publishPresence(i % 2 === 0 ? 'closed' : 'open', ctx.canary());
    }
    const updates = evil.published.filter((p) => p.presentity === alice.address);
    const nonces = updates.map((p) => toHex(fieldOf(p.bytes, K_PRESENCE_NONCE) as Uint8Array));
    const epochs = new Set(updates.map((p) => fieldOf(p.bytes, 4)));
    const random = Array.from({ length: 256 }, () => toHex(randomBytes(24)));
    const evidence = [
      `${updates.length} updates under ${epochs.size} key epoch(s): ${new Set(nonces).size} distinct ${(nonces[0]?.length ?? 0) / 2}-byte nonces`,
      `the CSPRNG (src/crypto randomBytes): ${new Set(random).size} distinct of 256 24-byte draws`,
    ];
    return verdictIf(
      updates.length >= 16 &&
        new Set(nonces).size === nonces.length &&
        new Set(random).size === 256,
      `SDK: ${updates.length} presence updates under one key, every nonce distinct (random 24-byte nonces; not switchable)`,
      'a nonce repeated under one key',
      evidence,
    );
  },
};

/**
 * The content threats, in id order.
 *
 * @example
 * ```ts
 * const results = await runThreats(contentThreats, { target, accounts });
 * ```
 */
export const contentThreats: readonly Threat[] = [
  tampering,
  replay,
  reorderRollback,
  silentDrop,
  senderImpersonation,
  contextConfusion,
  downgrade,
  metadataExposure,
  decryptionOracle,
  nonceReuse,
];
