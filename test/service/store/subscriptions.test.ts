/**
 * Subscriptions: the state machine (whole table, and fast-check runs against the SQLite
 * repository), who may act, the approved-watcher set, and the per-watcher quota.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isImppError, type ImppErrorCode } from '../../../src/errors.js';
import {
  SUBSCRIPTION_ACTIONS,
  actionRole,
  nextSubscriptionState,
  type SubscriptionAction,
  type SubscriptionState,
} from '../../../src/service/store/index.js';
import { freshStore, tempDir } from './helpers.js';

const dir = tempDir();
const ALICE = 'alice@example.org';
const BOB = 'bob@example.org';
const EVE = 'eve@example.org';

async function rejectsWith(promise: Promise<unknown>, code: ImppErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isImppError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

type Cell = SubscriptionState | 'absent' | 'not-found' | 'conflict';

/** The documented table, written out again independently of the implementation. */
const EXPECTED: Record<SubscriptionState | 'absent', Record<SubscriptionAction, Cell>> = {
  absent: {
    request: 'pending',
    cancel: 'not-found',
    approve: 'not-found',
    deny: 'not-found',
    revoke: 'not-found',
  },
  pending: {
    request: 'pending',
    cancel: 'absent',
    approve: 'approved',
    deny: 'denied',
    revoke: 'conflict',
  },
  approved: {
    request: 'approved',
    cancel: 'absent',
    approve: 'approved',
    deny: 'conflict',
    revoke: 'revoked',
  },
  denied: {
    request: 'denied',
    cancel: 'denied',
    approve: 'approved',
    deny: 'denied',
    revoke: 'conflict',
  },
  revoked: {
    request: 'pending',
    cancel: 'absent',
    approve: 'conflict',
    deny: 'denied',
    revoke: 'revoked',
  },
};

function apply(from: SubscriptionState | undefined, action: SubscriptionAction): Cell {
  try {
    return nextSubscriptionState(from, action).state ?? 'absent';
  } catch (e) {
    if (isImppError(e, 'ERR_NOT_FOUND')) return 'not-found';
    if (isImppError(e, 'ERR_CONFLICT')) return 'conflict';
    throw e;
  }
}

describe('subscription state machine', () => {
  it('matches the documented table in every cell', () => {
    for (const [from, row] of Object.entries(EXPECTED)) {
      for (const action of SUBSCRIPTION_ACTIONS) {
        const state = from === 'absent' ? undefined : (from as SubscriptionState);
        expect(apply(state, action), `${from} + ${action}`).toBe(row[action]);
      }
    }
  });

  it('lets only the presentity grant, refuse or take away, and only the watcher ask', () => {
    expect(SUBSCRIPTION_ACTIONS.map(actionRole)).toEqual([
      'watcher',
      'watcher',
      'presentity',
      'presentity',
      'presentity',
    ]);
    // No watcher action ever leads into approved from a state that was not approved.
    for (const from of [undefined, 'pending', 'denied', 'revoked'] as const) {
      for (const action of ['request', 'cancel'] as const) {
        expect(apply(from, action)).not.toBe('approved');
      }
    }
    // A denied watcher cannot get out of denied by its own actions.
    for (const action of ['request', 'cancel'] as const)
      expect(apply('denied', action)).toBe('denied');
  });
});

describe('subscription repository', () => {
  it('runs a whole life cycle and keeps the approved set exact', async () => {
    const store = freshStore(dir);
    const t = (actor: string, action: SubscriptionAction, watcher = BOB, at = 1) =>
      store.subscriptions.transition({ presentity: ALICE, watcher, actor, action, at });
    expect(await t(BOB, 'request', BOB, 10)).toMatchObject({ state: 'pending', createdAt: 10 });
    expect(await store.subscriptions.approvedWatchers(ALICE)).toEqual([]);
    expect(
      (await store.subscriptions.listForPresentity(ALICE, 'pending')).map((s) => s.watcher),
    ).toEqual([BOB]);
    expect(await t(ALICE, 'approve', BOB, 20)).toMatchObject({
      state: 'approved',
      createdAt: 10,
      updatedAt: 20,
    });
    await t(EVE, 'request', EVE);
    expect(await store.subscriptions.approvedWatchers(ALICE)).toEqual([BOB]);
    await t(ALICE, 'approve', EVE);
    expect(await store.subscriptions.approvedWatchers(ALICE)).toEqual([BOB, EVE]);
    expect(await t(ALICE, 'revoke', BOB)).toMatchObject({ state: 'revoked' });
    expect(await store.subscriptions.approvedWatchers(ALICE)).toEqual([EVE]);
    // A revoked watcher asks again: pending, not approved.
    expect(await t(BOB, 'request')).toMatchObject({ state: 'pending' });
    expect(await store.subscriptions.approvedWatchers(ALICE)).toEqual([EVE]);
    expect(await t(ALICE, 'deny')).toMatchObject({ state: 'denied' });
    expect(await t(BOB, 'request')).toMatchObject({ state: 'denied' });
    expect(await t(BOB, 'cancel')).toMatchObject({ state: 'denied' });
    expect(await t(EVE, 'cancel', EVE)).toBeUndefined();
    expect(await store.subscriptions.get(ALICE, EVE)).toBeUndefined();
    expect(await store.subscriptions.approvedWatchers(ALICE)).toEqual([]);
    expect((await store.subscriptions.listForWatcher(BOB)).map((s) => s.state)).toEqual(['denied']);
    expect((await store.subscriptions.listForPresentity(ALICE)).map((s) => s.watcher)).toEqual([
      BOB,
    ]);
    await store.close();
  });

  it('refuses the wrong actor, self-subscription and transitions the table forbids', async () => {
    const store = freshStore(dir);
    const t = (actor: string, action: SubscriptionAction, presentity = ALICE, watcher = BOB) =>
      store.subscriptions.transition({ presentity, watcher, actor, action, at: 1 });
    await rejectsWith(t(ALICE, 'request'), 'ERR_NOT_AUTHORIZED'); // presentity cannot subscribe others
    await rejectsWith(t(EVE, 'request'), 'ERR_NOT_AUTHORIZED');
    await t(BOB, 'request');
    await rejectsWith(t(BOB, 'approve'), 'ERR_NOT_AUTHORIZED'); // the watcher cannot approve itself
    await rejectsWith(t(EVE, 'approve'), 'ERR_NOT_AUTHORIZED');
    await rejectsWith(t(ALICE, 'revoke'), 'ERR_CONFLICT');
    await rejectsWith(t(ALICE, 'approve', ALICE, EVE), 'ERR_NOT_FOUND');
    await rejectsWith(t(ALICE, 'request', ALICE, ALICE), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(t(BOB, 'request', 'Alice@example.org'), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(t(BOB, 'nonsense' as SubscriptionAction), 'ERR_INVALID_ARGUMENT');
    expect((await store.subscriptions.get(ALICE, BOB))?.state).toBe('pending');
    await store.close();
  });

  it('limits active subscriptions per watcher; denied and revoked ones do not count', async () => {
    const store = freshStore(dir, { quotas: { subscriptionsPerWatcher: 2 } });
    const req = (presentity: string) =>
      store.subscriptions.transition({
        presentity,
        watcher: BOB,
        actor: BOB,
        action: 'request',
        at: 1,
      });
    const decide = (presentity: string, action: SubscriptionAction) =>
      store.subscriptions.transition({
        presentity,
        watcher: BOB,
        actor: presentity,
        action,
        at: 1,
      });
    await req('p1@example.org');
    await req('p2@example.org');
    await rejectsWith(req('p3@example.org'), 'ERR_QUOTA_EXCEEDED');
    // Repeating a request already counted is fine.
    expect((await req('p1@example.org'))?.state).toBe('pending');
    await decide('p1@example.org', 'deny');
    expect((await req('p3@example.org'))?.state).toBe('pending');
    await decide('p3@example.org', 'approve');
    await decide('p3@example.org', 'revoke');
    expect((await req('p4@example.org'))?.state).toBe('pending');
    await rejectsWith(req('p3@example.org'), 'ERR_QUOTA_EXCEEDED');
    // Another watcher has its own quota.
    expect(
      (
        await store.subscriptions.transition({
          presentity: 'p1@example.org',
          watcher: EVE,
          actor: EVE,
          action: 'request',
          at: 1,
        })
      )?.state,
    ).toBe('pending');
    await store.close();
  });

  it('agrees with the pure state machine on random action sequences (fast-check)', async () => {
    const store = freshStore(dir, { synchronous: 'normal' });
    const watchers = [BOB, EVE];
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            w: fc.nat(1),
            action: fc.constantFrom(...SUBSCRIPTION_ACTIONS),
            wrongActor: fc.boolean(),
          }),
          { maxLength: 25 },
        ),
        async (steps) => {
          round++;
          const presentity = `p${round}@example.org`;
          const model = new Map<string, SubscriptionState | undefined>();
          for (const step of steps) {
            const watcher = watchers[step.w]!;
            const rightActor = actionRole(step.action) === 'watcher' ? watcher : presentity;
            const actor = step.wrongActor ? 'mallory@example.org' : rightActor;
            const got = await store.subscriptions
              .transition({ presentity, watcher, actor, action: step.action, at: 1 })
              .then(
                (r) => r?.state ?? 'absent',
                (e: unknown) =>
                  isImppError(e, 'ERR_NOT_AUTHORIZED')
                    ? 'unauthorized'
                    : isImppError(e, 'ERR_NOT_FOUND')
                      ? 'not-found'
                      : isImppError(e, 'ERR_CONFLICT')
                        ? 'conflict'
                        : 'other',
              );
            if (step.wrongActor) {
              expect(got).toBe('unauthorized');
              continue;
            }
            const expected = apply(model.get(watcher), step.action);
            expect(got).toBe(expected);
            if (expected !== 'not-found' && expected !== 'conflict') {
              model.set(watcher, expected === 'absent' ? undefined : expected);
            }
          }
          const approved = watchers.filter((w) => model.get(w) === 'approved');
          expect(await store.subscriptions.approvedWatchers(presentity)).toEqual(approved);
        },
      ),
      { numRuns: 80, endOnFailure: true },
    );
    await store.close();
  });
});
