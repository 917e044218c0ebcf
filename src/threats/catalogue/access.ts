/**
 * Presence and access-control threats (T11, T12, T13, T43), ending sessions and devices (T21,
 * T42) and spellings of one address (T54), played with the watchers of ../attackers/watchers.ts:
 * devices that speak the protocol frame by frame, so that what the server sends them is counted
 * whether or not they could open it. Every subscription a threat creates is taken back after it,
 * so the test accounts stay usable for the threats that follow.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LocalAccounts } from '../../auth/providers/local.js';
import { SqliteLocalAccountRepository } from '../../auth/providers/local-store.js';
import { Frames } from '../../client/protocol.js';
import { randomBytes } from '../../crypto/index.js';
import { ImppError, isImppError } from '../../errors.js';
import { readEnvelopeHeader } from '../../seal/header.js';
import { sealMessage } from '../../seal/message.js';
import { PresencePublisher } from '../../seal/presence.js';
import { SealDevice } from '../../seal/session.js';
import { parseAddress } from '../../trust/address.js';
import { decodeDeviceList, type DeviceEntry } from '../../trust/device-list.js';
import { RawDevice, sleep, textOf, type RawAnswer, type RawBody } from '../attackers/watchers.js';
import type { TestAccount, Threat, ThreatContext, ThreatOutcome } from '../types.js';
import { MITIGATED, NOT_TESTED, VULNERABLE } from './outcome.js';

/** How long "nothing arrives" is watched for, in ms. */
const QUIET_MS = 300;
/** The longest a revoked session may survive before the threat calls it a survivor, in ms. */
const SESSION_END_MS = 3_000;

function pair(ctx: ThreatContext): { p: TestAccount; w: TestAccount } {
  const [p, w] = ctx.accounts;
  if (p === undefined || w === undefined) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'two test accounts are needed');
  }
  return { p, w };
}

/**
 * A registered raw device of each of the first two accounts, their subscription cleared after
 * the threat ({@link forgetLater}).
 */
async function registeredPair(
  ctx: ThreatContext,
): Promise<{ p: TestAccount; w: TestAccount; first: RawDevice; second: RawDevice }> {
  const { p, w } = pair(ctx);
  const first = await RawDevice.registered(ctx, p);
  const second = await RawDevice.registered(ctx, w);
  forgetLater(ctx, first, second);
  return { p, w, first, second };
}

/** One line for an answer, without payloads. */
function show(a: RawAnswer): string {
  if (!a.ok) return `${a.code}: ${a.message}`;
  return JSON.stringify(a.body, (_k, v: unknown) =>
    v instanceof Uint8Array ? `<${v.length} bytes>` : v,
  );
}

function stateOf(a: RawAnswer): string {
  return a.ok ? textOf(a.body.state) : a.code;
}

/**
 * Takes the subscription of the watcher's account to the presentity's back to nothing after the
 * threat, whatever its state (a denial is lifted by approving, then the watcher withdraws), so
 * the threats that follow start clean. Call it once both devices are made: clean-ups run in
 * reverse order, so this one runs while they are still open.
 */
function forgetLater(ctx: ThreatContext, presentity: RawDevice, watcher: RawDevice): void {
  ctx.defer(async () => {
    if (presentity.conn.state !== 'open' || watcher.conn.state !== 'open') return;
    const list = await presentity.request(Frames.LIST_WATCHERS, {});
    const mine = list.ok
      ? (list.body.watchers as RawBody[]).find((x) => x.watcher === watcher.address)
      : undefined;
    if (mine?.state === 'denied') {
      await presentity.request(Frames.DECIDE, { watcher: watcher.address, action: 'approve' });
    }
    await watcher.request(Frames.UNSUBSCRIBE, { presentity: presentity.address });
  });
}

// ── T11 ──────────────────────────────────────────────────────────────────────────────────────

const unauthorizedWatcher: Threat = {
  id: 'T11',
  name: 'unauthorized-watcher',
  class: 'presence-and-access',
  title: 'subscribe, log in again (probe) or wait for fan-out without the presentity approving',
  async run(ctx): Promise<ThreatOutcome> {
    const { p, w } = pair(ctx);
    const presentity = await RawDevice.rejoined(ctx, p);
    const own = await RawDevice.registered(ctx, p);
    const watcher = await RawDevice.registered(ctx, w);
    forgetLater(ctx, presentity, watcher);
    await ctx.control('the presentity publishes and its own other device receives it', async () => {
      const r = await presentity.publishPresence(ctx.canary());
      if (!r.ok) throw new ImppError('ERR_PROTOCOL', `publish refused: ${r.code}`);
      await sleep(QUIET_MS);
      if (own.count(Frames.PRESENCE) === 0) {
        throw new ImppError('ERR_TIMEOUT', 'fan-out reaches no device at all');
      }
    });
    const evidence: string[] = [];
    const asked = await watcher.request(Frames.SUBSCRIBE, { presentity: p.address });
    evidence.push(`subscribe answered ${stateOf(asked)}`);
    await presentity.publishPresence(ctx.canary());
    await sleep(QUIET_MS);
    const pending = watcher.count(Frames.PRESENCE);
    evidence.push(`pending watcher received ${pending} presence object(s)`);
    await presentity.request(Frames.DECIDE, { watcher: w.address, action: 'deny' });
    await presentity.publishPresence(ctx.canary());
    await sleep(QUIET_MS);
    const denied = watcher.count(Frames.PRESENCE) - pending;
    evidence.push(`denied watcher received ${denied} presence object(s)`);
    // The probe impp has: a device of the watcher logs in and is given stored presence.
    const probe = await RawDevice.rejoined(ctx, w);
    await sleep(QUIET_MS);
    const probed = probe.frames.filter(
      (f) => f.type === Frames.PRESENCE && !isOwnPresence(f.body, w.address),
    ).length;
    evidence.push(`a new device of the watcher was given ${probed} stored presence object(s)`);
    if (pending + denied + probed > 0) {
      return VULNERABLE('presence reached a watcher the presentity never approved', evidence);
    }
    return MITIGATED(
      'a pending, then denied watcher got no presence object, live or at login',
      evidence,
    );
  },
};

function isOwnPresence(body: unknown, address: string): boolean {
  try {
    const object = (body as RawBody).object as Uint8Array;
    // The presentity field is the header's; the watcher's own updates are not a leak.
    return Buffer.from(object).includes(Buffer.from(address));
  } catch {
    return false;
  }
}

// ── T12 ──────────────────────────────────────────────────────────────────────────────────────

const revokedWatcher: Threat = {
  id: 'T12',
  name: 'revoked-watcher',
  class: 'presence-and-access',
  title: 'an approved watcher, revoked, keeps receiving presence with the server’s help',
  async run(ctx): Promise<ThreatOutcome> {
    const { p, w } = pair(ctx);
    const presentity = await RawDevice.rejoined(ctx, p);
    const watcher = await RawDevice.registered(ctx, w);
    forgetLater(ctx, presentity, watcher);
    await ctx.control('an approved watcher receives the presentity’s update', async () => {
      await watcher.request(Frames.SUBSCRIBE, { presentity: p.address });
      const ok = await presentity.request(Frames.DECIDE, { watcher: w.address, action: 'approve' });
      if (stateOf(ok) !== 'approved') throw new ImppError('ERR_PROTOCOL', `approve: ${show(ok)}`);
      await presentity.publishPresence(ctx.canary());
      await sleep(QUIET_MS);
      if (watcher.count(Frames.PRESENCE) === 0) {
        throw new ImppError('ERR_TIMEOUT', 'the approved watcher got nothing');
      }
    });
    const before = watcher.count(Frames.PRESENCE);
    const revoked = await presentity.request(Frames.DECIDE, {
      watcher: w.address,
      action: 'revoke',
    });
    await presentity.publishPresence(ctx.canary());
    await sleep(QUIET_MS);
    const live = watcher.count(Frames.PRESENCE) - before;
    const later = await RawDevice.rejoined(ctx, w);
    await sleep(QUIET_MS);
    const atLogin = later.frames.filter(
      (f) => f.type === Frames.PRESENCE && !isOwnPresence(f.body, w.address),
    ).length;
    const evidence = [
      `revoke answered ${stateOf(revoked)}`,
      `after the revocation: ${live} presence object(s) live, ${atLogin} at login`,
      'the presence key rotation (the revoked watcher cannot open later updates) is the SDK’s: test/seal/presence.test.ts, test/client/presence.test.ts',
    ];
    if (live + atLogin > 0) {
      return VULNERABLE(
        'the server kept sending presence to a revoked watcher (only the key rotation stands)',
        evidence,
      );
    }
    return MITIGATED(
      'the revoked watcher got nothing after the revocation, live or at login',
      evidence,
    );
  },
};

// ── T13 ──────────────────────────────────────────────────────────────────────────────────────

/** A sealed message addressed to `device` (its sender a throwaway device: only the header counts). */
function sealedFor(device: string): Uint8Array {
  const at = device.indexOf('@');
  const domain = device.slice(at + 1, device.lastIndexOf('/'));
  const sender = SealDevice.create(`x${Buffer.from(randomBytes(4)).toString('hex')}@${domain}/x`, {
    oneTimePrekeys: 0,
  });
  const to = SealDevice.create(device, { oneTimePrekeys: 1 });
  return sealMessage(
    sender,
    { to: to.device, bundle: to.bundle() },
    'text/plain',
    new Uint8Array([1]),
  ).bytes;
}

const blockingLeak: Threat = {
  id: 'T13',
  name: 'blocking-leak',
  class: 'presence-and-access',
  title: 'tell a user who denied you from a user who does not exist, by their answers',
  async run(ctx): Promise<ThreatOutcome> {
    const { p, w, first: denier, second: asker } = await registeredPair(ctx);
    const nobody = `nobody-${ctx.canary().slice(6, 18)}@${ctx.target.domain}`;
    ctx.defer(() =>
      asker.request(Frames.UNSUBSCRIBE, { presentity: nobody }).then(() => undefined),
    );
    await ctx.control(
      'before the denial, the directory shows the presentity’s devices',
      async () => {
        const r = await asker.request(Frames.GET_DEVICES, { address: p.address });
        if (!r.ok || !Array.isArray(r.body.devices) || r.body.devices.length === 0) {
          throw new ImppError('ERR_NOT_FOUND', `no devices listed: ${show(r)}`);
        }
        await asker.request(Frames.SUBSCRIBE, { presentity: p.address });
        const d = await denier.request(Frames.DECIDE, { watcher: w.address, action: 'deny' });
        if (stateOf(d) !== 'denied') throw new ImppError('ERR_PROTOCOL', `deny: ${show(d)}`);
      },
    );
    const requests: [string, (who: string) => Promise<RawAnswer>][] = [
      ['SUBSCRIBE', (who) => asker.request(Frames.SUBSCRIBE, { presentity: who })],
      ['GET_DEVICES', (who) => asker.request(Frames.GET_DEVICES, { address: who })],
      ['GET_BUNDLES', (who) => asker.request(Frames.GET_BUNDLES, { address: who })],
      [
        'SEND',
        (who) => asker.request(Frames.SEND, { object: sealedFor(`${who}/${denier.deviceId}`) }),
      ],
      [
        'LIST_WATCHERS',
        async (who) => {
          const r = await asker.request(Frames.LIST_WATCHERS, {});
          if (!r.ok) return r;
          const mine = (r.body.subscriptions as RawBody[]).find((s) => s.presentity === who);
          return { ok: true, body: { state: mine?.state ?? 'none' } };
        },
      ],
      ['UNSUBSCRIBE', (who) => asker.request(Frames.UNSUBSCRIBE, { presentity: who })],
    ];
    const differing: string[] = [];
    const evidence: string[] = [];
    for (const [name, ask] of requests) {
      const denied = show(await ask(p.address)).replaceAll(p.address, '<target>');
      const missing = show(await ask(nobody)).replaceAll(nobody, '<target>');
      evidence.push(`${name}: denied ${denied} | nonexistent ${missing}`);
      if (denied !== missing) differing.push(name);
    }
    const pushes = asker.count(Frames.SUBSCRIPTION);
    if (pushes > 0) {
      differing.push('SUBSCRIPTION push');
      evidence.push(`the asker was sent ${pushes} subscription event(s) about the denial`);
    }
    if (differing.length > 0) {
      return VULNERABLE(`a denial shows in: ${differing.join(', ')}`, evidence);
    }
    return MITIGATED(
      `${requests.length} requests answer a denier exactly like a nonexistent user (code, fields, sizes); no event told of the denial`,
      evidence,
    );
  },
};

// ── T21 / T42: ending sessions and devices ──────────────────────────────────────────────────

/** Resolves with the close code once `device` is closed, or `undefined` after `ms`. */
async function closedWithin(device: RawDevice, ms: number): Promise<string | undefined> {
  const info = await Promise.race([device.closed, sleep(ms).then(() => undefined)]);
  if (info === undefined) return undefined;
  return info.error?.code ?? 'closed';
}

/** Whether `account` can still open a session with `password`. */
async function canLogIn(
  ctx: ThreatContext,
  account: TestAccount,
  password: string,
): Promise<boolean> {
  const d = await RawDevice.open(ctx);
  try {
    await d.authenticate(account, password);
    return true;
  } catch {
    return false;
  } finally {
    d.close();
  }
}

interface Part {
  readonly verdict: ThreatOutcome['verdict'];
  readonly line: string;
}

/**
 * With the accounts file of the local provider in the data folder (`--spawn`, or `--data-dir` on
 * a server with local accounts), the suite changes a password and disables the account the way
 * `impp user passwd|disable` does, from outside the server, then puts both back.
 */
async function accountChanges(ctx: ThreatContext, account: TestAccount): Promise<Part[]> {
  const file = ctx.storage === undefined ? undefined : join(ctx.storage.dataDir, 'accounts.db');
  if (file === undefined || !existsSync(file)) {
    const why =
      ctx.storage === undefined
        ? 'needs storage (--spawn or --data-dir)'
        : 'no local accounts file (accounts.db) in the data folder';
    return [{ verdict: 'NOT-TESTED', line: `password change and disable: ${why}` }];
  }
  const user = parseAddress(account.address).user;
  const parts: Part[] = [];
  const edit = (change: (accounts: LocalAccounts) => void): void => {
    const repo = new SqliteLocalAccountRepository(file);
    try {
      const iterations = repo.get(user)?.credential.iterations ?? 4096;
      change(new LocalAccounts(repo, ctx.target.domain, iterations));
    } finally {
      repo.close();
    }
  };
  ctx.defer(() => {
    edit((a) => {
      a.enable(user);
      a.changePassword(user, account.password);
    });
  });
  // A password change ends the session; the old password no longer opens one.
  const live = await RawDevice.registered(ctx, account);
  const changedAt = Date.now();
  const fresh = `pw-${ctx.canary()}`;
  edit((a) => {
    a.changePassword(user, fresh);
  });
  const code = await closedWithin(live, SESSION_END_MS);
  const ms = Date.now() - changedAt;
  const oldWorks = await canLogIn(ctx, account, account.password);
  parts.push(
    code === undefined
      ? {
          verdict: 'VULNERABLE',
          line: `password change: the session was still open after ${SESSION_END_MS} ms`,
        }
      : oldWorks
        ? { verdict: 'VULNERABLE', line: 'password change: the old password still logs in' }
        : {
            verdict: 'MITIGATED',
            line: `password change: session closed after ${ms} ms (${code}); the old password is refused`,
          },
  );
  if (parts.some((x) => x.verdict === 'VULNERABLE')) return parts;
  // Disabling ends the session; nobody logs in.
  const withFresh = { address: account.address, password: fresh };
  const second = await RawDevice.registered(ctx, withFresh);
  const disabledAt = Date.now();
  edit((a) => {
    a.disable(user);
  });
  const code2 = await closedWithin(second, SESSION_END_MS);
  const ms2 = Date.now() - disabledAt;
  const stillIn = await canLogIn(ctx, account, fresh);
  parts.push(
    code2 === undefined
      ? {
          verdict: 'VULNERABLE',
          line: `disable: the session was still open after ${SESSION_END_MS} ms`,
        }
      : stillIn
        ? { verdict: 'VULNERABLE', line: 'disable: the disabled account still logs in' }
        : {
            verdict: 'MITIGATED',
            line: `disable: session closed after ${ms2} ms (${code2}); logins refused`,
          },
  );
  edit((a) => {
    a.enable(user);
    a.changePassword(user, account.password);
  });
  return parts;
}

/** Two devices of one account, the first signing the account's device list, the second on it. */
interface Revocable {
  readonly account: TestAccount;
  readonly owner: RawDevice;
  readonly victim: RawDevice;
  /** The list's devices besides the victim: what the owner signs to remove it. */
  readonly keep: readonly DeviceEntry[];
}

/**
 * A device that signs its account's list and a second device it has listed: the run's steward
 * of an account (../steward.ts), or else a device that made the genesis list of an account that
 * had none (a list is signed by one of the account's own devices, which the suite does not
 * otherwise hold). Says why not when there is neither.
 */
async function revocablePair(ctx: ThreatContext): Promise<Revocable | string> {
  for (const account of [...ctx.accounts].reverse()) {
    const signer = ctx.listSigner(account.address);
    if (signer === undefined) continue;
    const owner = await RawDevice.open(ctx);
    await owner.authenticate(account);
    await owner.bind(signer.deviceId, signer.identity);
    const current = await owner.request(Frames.GET_DEVICES, { address: account.address });
    const bytes = current.ok ? current.body.deviceList : undefined;
    if (!(bytes instanceof Uint8Array)) throw new ImppError('ERR_PROTOCOL', 'no device list');
    const list = decodeDeviceList(bytes);
    owner.listCounter = list.counter;
    return addVictim(ctx, account, owner, list.devices);
  }
  for (const account of [...ctx.accounts].reverse()) {
    const owner = await RawDevice.registered(ctx, account);
    if (owner.listCounter === undefined) {
      owner.close();
      continue;
    }
    return addVictim(ctx, account, owner, [
      { deviceId: owner.deviceId, identityKey: owner.identityKey },
    ]);
  }
  return 'every test account already has a signed device list, signed by a device this run does not hold (give a fresh account)';
}

async function addVictim(
  ctx: ThreatContext,
  account: TestAccount,
  owner: RawDevice,
  keep: readonly DeviceEntry[],
): Promise<Revocable> {
  const victim = await RawDevice.registered(ctx, account);
  const put = await owner.putDeviceList([
    ...keep,
    { deviceId: victim.deviceId, identityKey: victim.identityKey },
  ]);
  if (!put.ok) throw new ImppError('ERR_PROTOCOL', `adding a device: ${show(put)}`);
  return { account, owner, victim, keep };
}

/** The owner signs a list without the victim: the victim is revoked. */
async function removeVictim(r: Revocable): Promise<void> {
  const put = await r.owner.putDeviceList(r.keep);
  if (!put.ok) throw new ImppError('ERR_PROTOCOL', `removing a device: ${show(put)}`);
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isImppError(e) ? e.code : 'refused';
  }
}

const sessionSurvivesRevocation: Threat = {
  id: 'T21',
  name: 'session-survives-revocation',
  class: 'authentication',
  title:
    'keep a live session, or reconnect, after logout, password change, disable or device revocation',
  deadlineMs: 30_000,
  async run(ctx): Promise<ThreatOutcome> {
    const { w } = pair(ctx);
    await ctx.control('a device logs in and out', async () => {
      const d = await RawDevice.registered(ctx, w);
      d.close();
      await d.closed;
    });
    const parts: Part[] = [];
    // Device revocation (any target): the removed device's live session ends.
    const made = await revocablePair(ctx);
    if (typeof made === 'string') {
      parts.push({ verdict: 'NOT-TESTED', line: `device revocation: ${made}` });
    } else {
      const at = Date.now();
      await removeVictim(made);
      const code = await closedWithin(made.victim, SESSION_END_MS);
      parts.push(
        code === undefined
          ? {
              verdict: 'VULNERABLE',
              line: 'device revocation: the removed device’s session stayed open',
            }
          : {
              verdict: 'MITIGATED',
              line: `device revocation: its session closed after ${Date.now() - at} ms (${code})`,
            },
      );
    }
    // One surviving session is the verdict; the account changes are not also waited out.
    if (!parts.some((x) => x.verdict === 'VULNERABLE'))
      parts.push(...(await accountChanges(ctx, w)));
    return combine(
      parts,
      'every revocation ended the live session and kept the old credential out',
    );
  },
};

function combine(parts: readonly Part[], mitigated: string): ThreatOutcome {
  const evidence = parts.map((x) => `${x.verdict}: ${x.line}`);
  const bad = parts.filter((x) => x.verdict === 'VULNERABLE');
  if (bad.length > 0) {
    return VULNERABLE(bad.map((x) => x.line).join('; '), evidence);
  }
  const tested = parts.filter((x) => x.verdict === 'MITIGATED');
  if (tested.length === 0) {
    return NOT_TESTED(parts.map((x) => x.line).join('; '), evidence);
  }
  const skipped = parts.length - tested.length;
  return MITIGATED(
    skipped === 0 ? mitigated : `${mitigated} (${skipped} part(s) not tested, see evidence)`,
    evidence,
  );
}

const revokedDevice: Threat = {
  id: 'T42',
  name: 'revoked-device',
  class: 'keys-and-trust',
  title: 'a device removed from the signed list binds again or keeps receiving messages',
  deadlineMs: 20_000,
  async run(ctx): Promise<ThreatOutcome> {
    const made = await ctx.control('an account’s signing device lists a second device', () =>
      revocablePair(ctx),
    );
    if (typeof made === 'string') return { verdict: 'NOT-TESTED', summary: made };
    await removeVictim(made);
    await sleep(QUIET_MS);
    const evidence: string[] = [];
    const rebind = await refusal(made.victim.rejoin(ctx, made.account));
    evidence.push(`binding the removed device again: ${rebind}`);
    const { w } = pair(ctx);
    const sender = await RawDevice.registered(ctx, w);
    const owner = made.account.address;
    const send = await sender.request(Frames.SEND, {
      object: sealedFor(`${owner}/${made.victim.deviceId}`),
    });
    evidence.push(`a message for the removed device: ${show(send)}`);
    const listed = await sender.request(Frames.GET_DEVICES, { address: owner });
    const stillListed =
      listed.ok &&
      (listed.body.devices as RawBody[]).some((d) => d.deviceId === made.victim.deviceId);
    evidence.push(`the directory ${stillListed ? 'still lists' : 'no longer lists'} it`);
    if (rebind === 'accepted' || send.ok || stillListed) {
      return VULNERABLE(
        'the removed device is still served (binding, queue or directory)',
        evidence,
      );
    }
    return MITIGATED(
      'the removed device cannot bind, gets no queue, and is gone from the directory',
      evidence,
    );
  },
};

// ── T43 ──────────────────────────────────────────────────────────────────────────────────────

const crossAccountAccess: Threat = {
  id: 'T43',
  name: 'cross-account-access',
  class: 'presence-and-access',
  title: 'read or acknowledge another device’s queue, upload its prekeys, decide its subscriptions',
  async run(ctx): Promise<ThreatOutcome> {
    const { p, w, first: victim, second: attacker } = await registeredPair(ctx);
    // The planted message is acknowledged by its owner afterwards, whatever happened.
    ctx.defer(async () => {
      if (victim.conn.state !== 'open') return;
      const own = await victim.request(Frames.FETCH, {});
      const ids = own.ok
        ? (own.body.objects as RawBody[]).map((o) => headerId(o.object as Uint8Array))
        : [];
      if (ids.length > 0) await victim.request(Frames.ACK, { ids });
    });
    const victimDevice = `${p.address}/${victim.deviceId}`;
    const queued = sealedFor(victimDevice);
    await ctx.control('a message waits in the victim device’s queue', async () => {
      const r = await attacker.request(Frames.SEND, { object: queued });
      if (!r.ok) throw new ImppError('ERR_PROTOCOL', `send: ${show(r)}`);
      const own = await victim.request(Frames.FETCH, {});
      if (!own.ok || (own.body.objects as unknown[]).length === 0) {
        throw new ImppError('ERR_NOT_FOUND', 'the victim does not see its own message');
      }
    });
    const broken: string[] = [];
    const evidence: string[] = [];
    const fetch = await attacker.request(Frames.FETCH, { device: victimDevice });
    evidence.push(
      `FETCH of the victim's queue: ${fetch.ok ? 'answered with its objects' : fetch.code}`,
    );
    if (fetch.ok && (fetch.body.objects as unknown[]).length > 0) broken.push('FETCH');
    const own = await victim.request(Frames.FETCH, {});
    const ids = own.ok
      ? (own.body.objects as RawBody[]).map((o) => headerId(o.object as Uint8Array))
      : [];
    const ack = await attacker.request(Frames.ACK, { device: victimDevice, ids });
    const after = await victim.request(Frames.FETCH, {});
    const gone = after.ok && (after.body.objects as unknown[]).length === 0;
    evidence.push(
      `ACK of the victim's message: ${ack.ok ? 'answered' : ack.code}; ${gone ? 'the message is gone' : 'the message is still queued'}`,
    );
    if (gone) broken.push('ACK');
    // Prekeys for the victim's device: its bundle must not carry the attacker's key.
    const planted = SealDevice.create(`${w.address}/planted`, {
      oneTimePrekeys: 1,
    }).publicPrekeys();
    const add = await attacker.request(Frames.ADD_PREKEYS, {
      device: victimDevice,
      oneTimePrekeys: planted.oneTimePrekeys,
      signedPrekey: planted.signedPrekey,
    });
    const bundles = await attacker.request(Frames.GET_BUNDLES, { address: p.address });
    const plantedKey = Buffer.from(planted.signedPrekey.publicKey);
    const landed =
      bundles.ok &&
      (bundles.body.bundles as RawBody[]).some(
        (b) =>
          b.device === victimDevice &&
          Buffer.from((b.signedPrekey as RawBody).publicKey as Uint8Array).equals(plantedKey),
      );
    evidence.push(
      `ADD_PREKEYS for the victim: ${add.ok ? 'answered' : add.code}; ${landed ? 'the victim’s bundle carries the planted key' : 'the victim’s bundle is untouched'}`,
    );
    if (landed) broken.push('ADD_PREKEYS');
    // Deciding the victim's subscriptions: the attacker asks to watch the victim, then approves
    // itself "as" the victim.
    await attacker.request(Frames.SUBSCRIBE, { presentity: p.address });
    const decide = await attacker.request(Frames.DECIDE, {
      presentity: p.address,
      watcher: w.address,
      action: 'approve',
    });
    const list = await victim.request(Frames.LIST_WATCHERS, {});
    const state = list.ok
      ? (list.body.watchers as RawBody[]).find((x) => x.watcher === w.address)?.state
      : undefined;
    evidence.push(
      `DECIDE on the victim's subscription: ${decide.ok ? 'answered' : decide.code}; it is ${textOf(state) || 'absent'}`,
    );
    if (state === 'approved') broken.push('DECIDE');
    // Presence for the victim, from the attacker's session.
    const forged = new PresencePublisher(
      SealDevice.create(`${p.address}/${attacker.deviceId}`, { oneTimePrekeys: 0 }),
      undefined,
      2 ** 40,
    ).publish(new TextEncoder().encode('<presence/>'));
    const publish = await attacker.request(Frames.PUBLISH, { object: forged });
    evidence.push(`PUBLISH of presence as the victim: ${publish.ok ? 'accepted' : publish.code}`);
    if (publish.ok) broken.push('PUBLISH');
    if (broken.length > 0) {
      return VULNERABLE(`another account's objects were reached: ${broken.join(', ')}`, evidence);
    }
    return MITIGATED(
      'FETCH, ACK, ADD_PREKEYS, DECIDE and PUBLISH on another account’s objects changed nothing',
      evidence,
    );
  },
};

/** The message id of a queued sealed object. */
function headerId(object: Uint8Array): Uint8Array {
  const h = readEnvelopeHeader(object);
  if (h.kind === 'presence') throw new ImppError('ERR_PROTOCOL', 'a presence object in a queue');
  return h.messageId;
}

// ── T54 ──────────────────────────────────────────────────────────────────────────────────────

/** Spellings of `address` that a sloppy server might take for another principal, or the same. */
export function spellings(address: string): string[] {
  const at = address.lastIndexOf('@');
  const user = address.slice(0, at);
  const domain = address.slice(at + 1);
  const fullwidth = domain.replace(/[a-z]/g, (c) =>
    String.fromCharCode(c.charCodeAt(0) - 0x61 + 0xff41),
  );
  return [
    `${user.toUpperCase()}@${domain}`,
    `${user}@${domain.toUpperCase()}`,
    `im:${address}`,
    `pres:${address}`,
    `IM:${address}`,
    `${user}@${domain}.`,
    `${user}@${fullwidth}`,
    ` ${address}`,
    `${address}\u0000`,
    `${user}\u200b@${domain}`,
    `${user}@${domain}/device`,
  ];
}

const addressConfusion: Threat = {
  id: 'T54',
  name: 'address-confusion',
  class: 'keys-and-trust',
  title: 'other spellings of a user who denied you (case, Unicode, im:/pres:) slip past the denial',
  async run(ctx): Promise<ThreatOutcome> {
    const { p, w, first: denier, second: asker } = await registeredPair(ctx);
    await ctx.control('the asker is denied', async () => {
      await asker.request(Frames.SUBSCRIBE, { presentity: p.address });
      const d = await denier.request(Frames.DECIDE, { watcher: w.address, action: 'deny' });
      if (stateOf(d) !== 'denied') throw new ImppError('ERR_PROTOCOL', `deny: ${show(d)}`);
    });
    const canonical = show(await asker.request(Frames.GET_DEVICES, { address: p.address }));
    const evidence: string[] = [];
    const slipped: string[] = [];
    for (const s of spellings(p.address)) {
      const devices = await asker.request(Frames.GET_DEVICES, { address: s });
      const leaked =
        devices.ok && Array.isArray(devices.body.devices) && devices.body.devices.length > 0;
      const sub = await asker.request(Frames.SUBSCRIBE, { presentity: s });
      const approved = stateOf(sub) === 'approved';
      evidence.push(
        `${JSON.stringify(s)}: devices ${devices.ok ? (leaked ? 'listed' : 'none') : devices.code}, subscribe ${stateOf(sub)}`,
      );
      if (leaked || approved) slipped.push(JSON.stringify(s));
      if (sub.ok) await asker.request(Frames.UNSUBSCRIBE, { presentity: s });
    }
    evidence.push(`canonical spelling answers ${canonical}`);
    if (slipped.length > 0) {
      return VULNERABLE(`spellings that slip past the denial: ${slipped.join(', ')}`, evidence);
    }
    return MITIGATED(
      `${spellings(p.address).length} spellings are refused or resolve to the same denied principal`,
      evidence,
    );
  },
};

export const accessThreats: readonly Threat[] = [
  unauthorizedWatcher,
  revokedWatcher,
  blockingLeak,
  sessionSurvivesRevocation,
  revokedDevice,
  crossAccountAccess,
  addressConfusion,
];
