/**
 * Keys-and-trust threats (docs/security-model.md §8: T07, T08, T31–T34, T41): a compromised
 * server substitutes keys, adds ghost devices and watchers, forges enrolment statements, forks
 * the key log and moves its clock, towards the real client SDK of this build
 * (src/threats/attackers/malicious-server.ts); T32 depletes one-time prekeys on the target itself;
 * T31 feeds published edge cases to impp's own crypto wrappers.
 */
import {
  SecretBytes,
  constantTimeEqual,
  generateDhKeyPair,
  generateSigningKeyPair,
  randomBytes,
  sign,
  toHex,
  utf8,
  verify,
  x25519,
  xchachaOpen,
  xchachaSeal,
  fromHex,
} from '../../crypto/index.js';
import { ImppError, isImppError } from '../../errors.js';
import { Frames } from '../../client/protocol.js';
import { bundleFromAnswer } from '../../client/client.js';
import { openMessage, sealForDevices } from '../../seal/message.js';
import { SealDevice } from '../../seal/session.js';
import { verifyBundle, type PrekeyBundle } from '../../seal/x3dh.js';
import type { CborValue } from '../../transport/cbor-strict.js';
import { parseAddress } from '../../trust/address.js';
import { createDeviceList } from '../../trust/device-list.js';
import { issueEnrolmentStatement } from '../../trust/enrolment.js';
import { enrolmentFields, type MaliciousServer } from '../attackers/malicious-server.js';
import { describeError } from '../context.js';
import type { Threat } from '../types.js';
import {
  cpimBytes,
  flipByte,
  pair,
  quiet,
  SdkDevice,
  settled,
  startHarness,
  texts,
  threeOnHarness,
  waitUntil,
} from './sdk-support.js';
import { NOT_TESTED, VULNERABLE, verdictIf, withProblems } from './outcome.js';

const LOCAL = ['local-server'] as const;

/** Which of the objects stored for `device` since `mark` the operator's `keys` can open. */
function openedBy(evil: MaliciousServer, mark: number, device: string, keys: SealDevice): number {
  let opened = 0;
  for (const o of evil.captured.slice(mark)) {
    if (o.device !== device || o.kind !== 'message') continue;
    try {
      openMessage(keys, o.bytes);
      opened++;
    } catch {
      // Not for the operator's keys: what should happen.
    }
  }
  return opened;
}

const keySubstitution: Threat = {
  id: 'T07',
  name: 'key-substitution',
  class: 'keys-and-trust',
  title: 'The server hands out its own identity key and prekey bundle for Bob, or a forged list',
  needs: LOCAL,
  async run(ctx) {
    const { evil, alice, bob, carol } = await threeOnHarness(ctx);
    const evidence: string[] = [];
    const problems: string[] = [];
    // 1. Directory and bundle substituted: Carol has never talked to Bob.
    const impostor = SealDevice.create(bob.name);
    await evil.substituteKeys(bob.name, impostor);
    const mark = evil.captured.length;
    let sent: string;
    try {
      sent = `${(await carol.client.sendMessage(bob.address, ctx.canary())).length} object(s) sealed`;
    } catch (e) {
      sent = `refused: ${describeError(e)}`;
    }
    const opened = openedBy(evil, mark, bob.name, impostor);
    const mismatch = carol.seen.warnings.filter((w) => w.kind === 'key-mismatch').length;
    evidence.push(
      `bob's directory key and bundle replaced by the server's; carol sends: ${sent}; ` +
        `${mismatch} key-mismatch warning(s); the server opened ${opened}`,
    );
    if (opened > 0) problems.push('a message was sealed to the server’s key for bob');
    // 2. A device list for Bob signed by the server's key, on top of the one Alice verified.
    const real = await evil.deviceList(bob.address);
    const rogue = generateSigningKeyPair();
    const forged = createDeviceList({
      address: parseAddress(bob.address),
      counter: real.counter + 1,
      devices: [{ deviceId: 'phone', identityKey: rogue.publicKey }],
      signer: { deviceId: 'phone', secretKey: rogue.secretKey },
    });
    evil.serveDeviceList(bob.address, { counter: forged.counter, bytes: forged.bytes });
    let listRefused = false;
    try {
      await alice.client.deviceList(bob.address);
    } catch (e) {
      listRefused = isImppError(e, 'ERR_DEVICE_LIST_INVALID');
    }
    evil.serveDeviceList(bob.address, real);
    evidence.push(
      `a list for bob signed by the server's key: ${listRefused ? 'refused' : 'ACCEPTED'} by alice`,
    );
    if (!listRefused)
      problems.push('a device list signed by a key not on the previous list was accepted');
    return withProblems(
      problems,
      `SDK: substituted key and bundle refused (key-mismatch, nothing the server can open); forged list refused`,
      evidence,
    );
  },
};

const ghostDeviceOrWatcher: Threat = {
  id: 'T08',
  name: 'ghost-device-or-watcher',
  class: 'keys-and-trust',
  title: 'The server adds a device to Bob’s account or a watcher to Alice’s approved set',
  needs: LOCAL,
  async run(ctx) {
    const { evil, alice, bob, carol } = await threeOnHarness(ctx);
    const evidence: string[] = [];
    const problems: string[] = [];
    // 1. A ghost device in Bob's directory entry, enrolled by the domain, not on his signed list.
    const ghostName = `${bob.address}/ghost`;
    const ghost = await evil.addGhostDevice(bob.address, 'ghost');
    const mark = evil.captured.length;
    await alice.client.sendMessage(bob.address, ctx.canary());
    const forGhost = evil.captured.slice(mark).filter((o) => o.device === ghostName).length;
    const opened = openedBy(evil, mark, ghostName, ghost);
    const warned = alice.seen.warnings.some(
      (w) => w.kind === 'unlisted-device' && w.device === ghostName,
    );
    evidence.push(
      `ghost device ${ghostName} added by the server: ${forGhost} object(s) sealed for it, ` +
        `${opened} opened by the server; ${warned ? 'unlisted-device warning raised' : 'no warning'}`,
    );
    if (opened > 0 || forGhost > 0) problems.push('a message was sealed for a ghost device');
    // 2. A ghost watcher: the server approves Carol for Alice's presence on its own.
    await ctx.control('alice publishes presence', () =>
      alice.client.publishPresence('open', ctx.canary()),
    );
    evil.approveWatcher(alice.address, carol.address);
    await alice.client.publishPresence('closed', ctx.canary());
    await quiet();
    const keys = evil.captured.filter(
      (o) => o.device.startsWith(`${carol.address}/`) && o.kind === 'keyDistribution',
    ).length;
    evidence.push(
      `carol approved by the server alone: ${keys} presence key(s) sent to her, ${carol.seen.presence.length} update(s) shown`,
    );
    if (keys > 0 || carol.seen.presence.length > 0) problems.push('a ghost watcher saw presence');
    return withProblems(
      problems,
      `SDK: nothing sealed for a ghost device (warned); a ghost watcher got no presence key (the watcher side is structural: the key goes only through approve())`,
      evidence,
    );
  },
};

// ── T31: published edge cases through impp's own wrappers ─────────────────────────────────────

/**
 * X25519 public keys of small order (and non-canonical encodings of them), each of which makes
 * the shared secret all zero: the list of D. J. Bernstein, "Curve25519" (https://cr.yp.to/ecdh.html,
 * "How do I validate Curve25519 public keys?"), as libsodium blocks them
 * (crypto_scalarmult/curve25519/ref10/x25519_ref10.c), with the top bit both clear and set
 * (RFC 7748 §5: implementations mask it).
 */
const X25519_LOW_ORDER: readonly [string, string][] = [
  ['0 (order 4 point at u=0)', '0000000000000000000000000000000000000000000000000000000000000000'],
  ['1 (order 1)', '0100000000000000000000000000000000000000000000000000000000000000'],
  ['order-8 point', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'],
  ['order-8 point', '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'],
  ['p − 1 (order 2)', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['p (non-canonical 0)', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['p + 1 (non-canonical 1)', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['0 with the top bit set', '0000000000000000000000000000000000000000000000000000000000000080'],
  [
    'order-8 point, top bit set',
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880',
  ],
];

/** The order of the Ed25519 base point (RFC 8032 §5.1). */
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;

function leToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] as number);
  return n;
}

function bigIntToLe(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** The Ed25519 identity point (0, 1), encoded (RFC 8032 §5.1.2): small order. */
const ED25519_IDENTITY = fromHex(
  '0100000000000000000000000000000000000000000000000000000000000000',
);

const cryptoEdgeCases: Threat = {
  id: 'T31',
  name: 'crypto-edge-cases',
  class: 'crypto-primitives',
  title: 'Low-order X25519 points, malleable Ed25519 signatures, bad AEAD tags (this build)',
  async run(ctx) {
    await ctx.control('genuine X25519, Ed25519 and AEAD inputs work through src/crypto', () => {
      const a = generateDhKeyPair();
      const b = generateDhKeyPair();
      if (
        !constantTimeEqual(
          x25519(a.secretKey, b.publicKey).expose(),
          x25519(b.secretKey, a.publicKey).expose(),
        )
      ) {
        throw new ImppError('ERR_CRYPTO_VERIFY_FAILED', 'X25519 sides disagree');
      }
      const kp = generateSigningKeyPair();
      const m = utf8('control');
      if (!verify(kp.publicKey, m, sign(kp.secretKey, m))) {
        throw new ImppError('ERR_CRYPTO_VERIFY_FAILED', 'a genuine signature does not verify');
      }
      const k = new SecretBytes(randomBytes(32));
      const n = randomBytes(24);
      xchachaOpen(k, n, xchachaSeal(k, n, m, m), m);
      return Promise.resolve();
    });
    const evidence: string[] = [];
    const accepted: string[] = [];
    // X25519: every low-order point must be refused, never yield an all-zero secret.
    const mine = generateDhKeyPair();
    for (const [what, hex] of X25519_LOW_ORDER) {
      if (!x25519Refused(mine.secretKey, fromHex(hex))) accepted.push(`X25519 ${what}`);
    }
    evidence.push(
      `X25519: ${X25519_LOW_ORDER.length} low-order public keys (cr.yp.to/ecdh.html), ${X25519_LOW_ORDER.length - accepted.length} refused with ERR_CRYPTO_WEAK_KEY`,
    );
    // Ed25519: RFC 8032 §5.1.7 requires S < L; small-order keys and R are refused by libsodium.
    const signer = generateSigningKeyPair();
    const message = utf8('impp threat suite T31');
    const good = sign(signer.secretKey, message);
    const malleable = Uint8Array.from(good);
    malleable.set(bigIntToLe(leToBigInt(good.subarray(32)) + ED25519_L, 32), 32);
    const smallOrderSig = new Uint8Array(64);
    smallOrderSig.set(ED25519_IDENTITY, 0); // R = identity, S = 0: [0]B = R + [k]A holds for A = identity
    const sigCases: [string, boolean][] = [
      ['S + L (non-canonical S, RFC 8032 §5.1.7)', verify(signer.publicKey, message, malleable)],
      [
        'identity public key with R = identity, S = 0 (any message; Chalkias et al., "Taming the many EdDSAs", 2020)',
        verify(ED25519_IDENTITY, message, smallOrderSig),
      ],
      ['one bit of R flipped', verify(signer.publicKey, message, flipByte(good, 0))],
      ['one bit of S flipped', verify(signer.publicKey, message, flipByte(good, 40))],
    ];
    const genuine = verify(signer.publicKey, message, good);
    for (const [what, ok] of sigCases) if (ok) accepted.push(`Ed25519 ${what}`);
    evidence.push(
      `Ed25519: the genuine signature ${genuine ? 'verifies' : 'does NOT verify'}; ` +
        `${sigCases.filter(([, ok]) => !ok).length}/${sigCases.length} edge cases refused`,
    );
    // XChaCha20-Poly1305: every forged tag or changed input is the one error.
    const key = new SecretBytes(randomBytes(32));
    const nonce = randomBytes(24);
    const ad = utf8('header');
    const ct = xchachaSeal(key, nonce, utf8('payload'), ad);
    const aeadCases: [string, () => Uint8Array][] = [
      ...Array.from({ length: 16 }, (_, i): [string, () => Uint8Array] => [
        `tag byte ${i} flipped`,
        () => xchachaOpen(key, nonce, flipByte(ct, ct.length - 16 + i), ad),
      ]),
      ['first ciphertext byte flipped', () => xchachaOpen(key, nonce, flipByte(ct, 0), ad)],
      ['tag truncated', () => xchachaOpen(key, nonce, ct.subarray(0, ct.length - 1), ad)],
      ['empty input', () => xchachaOpen(key, nonce, new Uint8Array(0), ad)],
      ['other associated data', () => xchachaOpen(key, nonce, ct, utf8('headers'))],
      ['other nonce', () => xchachaOpen(key, flipByte(nonce, 0), ct, ad)],
      ['all-zero tag', () => xchachaOpen(key, nonce, new Uint8Array(ct.length), ad)],
    ];
    const answers = new Set<string>();
    for (const [what, attempt] of aeadCases) {
      try {
        attempt();
        accepted.push(`AEAD ${what}`);
      } catch (e) {
        answers.add(isImppError(e) ? `${e.code}: ${e.message}` : describeError(e));
      }
    }
    const opens = (() => {
      try {
        return xchachaOpen(key, nonce, ct, ad).length > 0;
      } catch {
        return false;
      }
    })();
    evidence.push(
      `XChaCha20-Poly1305 (RFC 8439 §2.8, draft-irtf-cfrg-xchacha): ${aeadCases.length} forgeries, answers: ${[...answers].join(' | ')}; the genuine one ${opens ? 'opens' : 'does NOT open'}`,
    );
    const ok = accepted.length === 0 && genuine && opens && answers.size === 1;
    return verdictIf(
      ok,
      `${X25519_LOW_ORDER.length} low-order X25519 keys, ${sigCases.length} Ed25519 and ${aeadCases.length} AEAD edge cases refused, one AEAD error (checks this build; primitives are never switchable)`,
      `accepted: ${accepted.join('; ') || 'a genuine input was refused, or AEAD errors differ'}`,
      evidence,
    );
  },
};

/** Whether X25519 with `point` is refused as a weak key (never an all-zero secret). */
function x25519Refused(secret: SecretBytes, point: Uint8Array): boolean {
  try {
    x25519(secret, point).wipe();
    return false;
  } catch (e) {
    return isImppError(e, 'ERR_CRYPTO_WEAK_KEY');
  }
}

// ── T32: prekey depletion against the target ──────────────────────────────────────────────────

/** Bounds the depletion loop: a deployment that never runs dry is reported, not looped on. */
const MAX_BUNDLE_REQUESTS = 600;

function asMap(v: CborValue | undefined): { readonly [key: string]: CborValue } {
  if (
    v === undefined ||
    v === null ||
    typeof v !== 'object' ||
    Array.isArray(v) ||
    v instanceof Uint8Array ||
    v instanceof Map
  ) {
    throw new ImppError('ERR_PROTOCOL', 'expected a map');
  }
  return v as { readonly [key: string]: CborValue };
}

const prekeyDepletion: Threat = {
  id: 'T32',
  name: 'prekey-depletion',
  class: 'keys-and-trust',
  title: 'Fetch Bob’s one-time prekeys until none are left; is any handed out twice?',
  deadlineMs: 45_000,
  async run(ctx) {
    const [aliceAccount, bobAccount] = ctx.accounts;
    if (aliceAccount === undefined || bobAccount === undefined) {
      return { verdict: 'NOT-TESTED', summary: 'needs two test accounts' };
    }
    const { bob, fetchers, bobName } = await ctx.control(
      'bob registers a device; two fetchers connect',
      async () => {
        const b = ctx.client(bobAccount);
        await b.connect();
        const f = [ctx.client(aliceAccount), ctx.client(aliceAccount)];
        for (const c of f) await c.connect();
        return { bob: b, fetchers: f, bobName: b.device };
      },
    );
    const seen = new Map<string, number>();
    let requests = 0;
    let rateLimited = 0;
    // Mutated by both fetch loops.
    const run: { dry: boolean; last: PrekeyBundle | undefined } = { dry: false, last: undefined };
    const fetchLoop = async (c: (typeof fetchers)[0]): Promise<void> => {
      while (!run.dry && requests < MAX_BUNDLE_REQUESTS && !ctx.signal.aborted) {
        requests++;
        let reply;
        try {
          reply = await c.rawRequest(Frames.GET_BUNDLES, { address: bobAccount.address });
        } catch (e) {
          if (isImppError(e, 'ERR_RATE_LIMITED')) {
            rateLimited++;
            await quiet(250);
            continue;
          }
          throw e;
        }
        const mine = (reply.bundles as CborValue[]).map(asMap).find((b) => b.device === bobName);
        if (mine === undefined) throw new ImppError('ERR_PROTOCOL', 'no bundle for bob’s device');
        const bundle = bundleFromAnswer(mine);
        run.last = bundle;
        if (bundle.oneTimePrekey === undefined) {
          run.dry = true;
          return;
        }
        const k = `${bundle.oneTimePrekey.id}:${toHex(bundle.oneTimePrekey.publicKey)}`;
        seen.set(k, (seen.get(k) ?? 0) + 1);
      }
    };
    await Promise.all(fetchers.map(fetchLoop));
    const twice = [...seen.values()].filter((n) => n > 1).length;
    const ids = new Set([...seen.keys()].map((k) => k.split(':')[0]));
    const evidence = [
      `${requests} bundle requests by two sessions: ${seen.size} one-time prekeys handed out, ${twice} of them more than once, ${ids.size} distinct ids; ${rateLimited} rate-limited answers`,
      run.dry
        ? 'bob’s device ran dry: bundles now carry the signed prekey only'
        : `not dry after ${MAX_BUNDLE_REQUESTS} requests`,
    ];
    // A new session on the signed prekey alone: X3DH without DH4 (X3DH §3.3), opened by Bob's SDK.
    let sessionOk = false;
    const finalBundle = run.last;
    if (run.dry && finalBundle !== undefined) {
      try {
        verifyBundle(finalBundle);
        const sender = SealDevice.create(
          `${aliceAccount.address}/threat-t32-${toHex(randomBytes(4))}`,
        );
        const text = ctx.canary();
        const [sealed] = sealForDevices(
          sender,
          [{ to: bobName, bundle: finalBundle }],
          'message/cpim',
          cpimBytes(aliceAccount.address, bobAccount.address, text),
        );
        const got = new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            resolve(false);
          }, 5_000);
          bob.on('message', (m) => {
            if (m.text === text) {
              clearTimeout(timer);
              resolve(true);
            }
          });
        });
        await (fetchers[0] as (typeof fetchers)[0]).rawRequest(Frames.SEND, {
          object: (sealed as { bytes: Uint8Array }).bytes,
        });
        sessionOk = await got;
        evidence.push(
          `a first message on the signed prekey alone: ${sessionOk ? 'opened by bob’s SDK' : 'NOT opened'}`,
        );
      } catch (e) {
        evidence.push(`a first message on the signed prekey alone failed: ${describeError(e)}`);
      }
    }
    evidence.push(
      'the client tops its prekeys up at its next connection; a replayed first message without one is R13',
    );
    if (twice > 0) {
      return VULNERABLE(`${twice} one-time prekey(s) handed to more than one fetcher`, evidence);
    }
    if (!run.dry) {
      return NOT_TESTED(
        `bob’s device did not run dry within ${MAX_BUNDLE_REQUESTS} requests`,
        evidence,
      );
    }
    return verdictIf(
      sessionOk,
      `${seen.size} one-time prekeys, each handed out once; after depletion a new session still works on the signed prekey`,
      'after depletion no new session could be started with the signed prekey',
      evidence,
    );
  },
};

// ── T33: key-log split view ───────────────────────────────────────────────────────────────────

const keylogSplitView: Threat = {
  id: 'T33',
  name: 'keylog-split-view',
  class: 'keys-and-trust',
  title: 'The server shows Alice and Bob different logs, each with its own keys for the other',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const fork = await evil.startFork();
    ctx.defer(() => fork.close());
    const { alice, carol, bob } = await ctx.control(
      'alice and carol (one view) and bob (the other) verify their enrolments in the log',
      async () => {
        const a = await new SdkDevice(ctx, evil, 'alice', 'laptop').start();
        const c = await new SdkDevice(ctx, evil, 'carol', 'desk').start();
        const b = await new SdkDevice(ctx, fork, 'bob', 'phone').start();
        // Each view holds the server's own key for the user who is on the other view.
        evil.issueEnrolment(b.address, 'phone', generateSigningKeyPair().publicKey);
        fork.issueEnrolment(a.address, 'laptop', generateSigningKeyPair().publicKey);
        for (const d of [a, c, b]) await d.client.verifyEnrolment();
        return { alice: a, carol: c, bob: b };
      },
    );
    await ctx.control('alice and carol compare tree heads (same view)', () =>
      alice.client.compareTreeHead(carol.client.treeHead as Uint8Array),
    );
    const evidence = ['alice and carol compared heads: consistent'];
    const results: string[] = [];
    for (const [who, d, other] of [
      ['alice checks bob’s head', alice, bob],
      ['bob checks alice’s head', bob, alice],
    ] as const) {
      try {
        await d.client.compareTreeHead(other.client.treeHead as Uint8Array);
        results.push(`${who}: ACCEPTED`);
      } catch (e) {
        results.push(`${who}: ${describeError(e)}`);
      }
    }
    evidence.push(
      ...results,
      'heads travel between contacts only when the app carries them: a device that never compares is on its own (R09)',
    );
    const caught = results.every((r) => r.includes('ERR_KEYLOG_INCONSISTENT'));
    return verdictIf(
      caught,
      `SDK: the forked views were caught when heads were compared (ERR_KEYLOG_INCONSISTENT, two signed heads as proof)`,
      'two forked views of the key log were accepted as consistent',
      evidence,
    );
  },
};

// ── T34: enrolment forgery ────────────────────────────────────────────────────────────────────

const enrolmentForgery: Threat = {
  id: 'T34',
  name: 'enrolment-forgery',
  class: 'keys-and-trust',
  title: 'Forged or replayed enrolment statements for Bob’s device',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const { alice, bob } = await pair(ctx, evil, { contactEnrolment: true });
    const carol = await new SdkDevice(ctx, evil, 'carol', 'desk').start();
    const genuine = (await evil.store.devices.get(bob.address, 'phone'))?.enrolment;
    const carolStatement = (await evil.store.devices.get(carol.address, 'desk'))?.enrolment;
    if (genuine === undefined || carolStatement === undefined) {
      throw new ImppError('ERR_NOT_FOUND', 'no enrolment statements in the directory');
    }
    const rogue = generateSigningKeyPair();
    const fields = enrolmentFields(bob.address, 'phone', bob.client.identityKey);
    const forgeries: [string, Uint8Array][] = [
      [
        'signed by a key other than the domain key',
        issueEnrolmentStatement(fields, rogue.secretKey).bytes,
      ],
      [
        'signed by the domain, naming another identity key',
        evil.issueEnrolment(bob.address, 'phone', rogue.publicKey),
      ],
      ['carol’s genuine statement replayed for bob', carolStatement],
      ['one byte of the genuine statement changed', flipByte(genuine, genuine.length >> 1)],
    ];
    const evidence: string[] = [];
    let sealed = 0;
    for (const [what, statement] of forgeries) {
      evil.setEnrolment(bob.name, statement);
      const mark = evil.captured.length;
      await alice.client.sendMessage(bob.address, ctx.canary());
      const forBob = evil.captured.slice(mark).filter((o) => o.device === bob.name).length;
      sealed += forBob;
      evidence.push(`${what}: ${forBob} object(s) sealed for bob's device`);
    }
    const warnings = alice.seen.warnings.filter((w) => w.kind === 'enrolment-invalid').length;
    evidence.push(`${warnings} enrolment-invalid warning(s)`);
    evil.setEnrolment(bob.name, genuine);
    const after = ctx.canary();
    await ctx.control('with the genuine statement back, bob receives again', async () => {
      await alice.client.sendMessage(bob.address, after);
      if (!(await waitUntil(() => texts(bob).includes(after), undefined, ctx.signal))) {
        throw new ImppError('ERR_TIMEOUT', 'the message did not arrive');
      }
    });
    await settled(evil, bob.name);
    return verdictIf(
      sealed === 0,
      `SDK: ${forgeries.length} forged statements: nothing sealed for the device (contactEnrolment on; it is opt-in, default off)`,
      `the SDK sealed for a device whose enrolment statement was forged (${sealed} object(s))`,
      evidence,
    );
  },
};

// ── T41: clock skew ───────────────────────────────────────────────────────────────────────────

const DAY_MS = 86_400_000;

const clockSkew: Threat = {
  id: 'T41',
  name: 'clock-skew',
  class: 'keys-and-trust',
  title: 'The server’s clock is moved to make stale tree heads look fresh',
  needs: LOCAL,
  async run(ctx) {
    const evil = await startHarness(ctx);
    const alice = await ctx.control('alice verifies her enrolment in the key log', async () => {
      const a = await new SdkDevice(ctx, evil, 'alice', 'laptop').start();
      await a.client.verifyEnrolment();
      return a;
    });
    const evidence: string[] = [];
    // A head signed "yesterday" after today's: refused, whatever its size says.
    evil.clockSkewMs = -DAY_MS;
    let backwards: string;
    try {
      await alice.client.verifyEnrolment();
      backwards = 'ACCEPTED';
    } catch (e) {
      backwards = describeError(e);
    }
    evil.clockSkewMs = 0;
    evidence.push(`server clock one day back: the new tree head was ${backwards}`);
    let now: string;
    try {
      await alice.client.verifyEnrolment();
      now = 'accepted';
    } catch (e) {
      now = describeError(e);
    }
    evidence.push(
      `clock back to now: ${now}`,
      'not tested: a head dated in the future is accepted and then makes honest heads look old (availability, R08); certificate validity under a moved client clock needs the client’s clock (R08)',
    );
    const refused = backwards.includes('ERR_KEYLOG_INCONSISTENT');
    return verdictIf(
      refused && now === 'accepted',
      `SDK: a tree head older than the trusted one is refused; order comes from counters`,
      `a tree head with an older timestamp was accepted (${backwards}), or an honest one refused (${now})`,
      evidence,
    );
  },
};

/**
 * The keys-and-trust and crypto-primitive threats, in id order.
 *
 * @example
 * ```ts
 * const results = await runThreats(keysThreats, { target, accounts });
 * ```
 */
export const keysThreats: readonly Threat[] = [
  keySubstitution,
  ghostDeviceOrWatcher,
  cryptoEdgeCases,
  prekeyDepletion,
  keylogSplitView,
  enrolmentForgery,
  clockSkew,
];
