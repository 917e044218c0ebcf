/**
 * The subscription state machine (RFC 2779 §5.1: the presentity authorizes its watchers).
 *
 * A pure function, shared by every storage backend, so SQLite and a later PostgreSQL
 * implementation enforce the same rules. `absent` means there is no record.
 *
 * | from \ action | request (watcher) | cancel (watcher) | approve (presentity) | deny (presentity) | revoke (presentity) |
 * |---|---|---|---|---|---|
 * | absent   | pending  | ERR_NOT_FOUND | ERR_NOT_FOUND | ERR_NOT_FOUND | ERR_NOT_FOUND |
 * | pending  | pending  | absent        | approved      | denied        | ERR_CONFLICT  |
 * | approved | approved | absent        | approved      | ERR_CONFLICT  | revoked       |
 * | denied   | denied   | denied        | approved      | denied        | ERR_CONFLICT  |
 * | revoked  | pending  | absent        | ERR_CONFLICT  | denied        | revoked       |
 *
 * Why:
 * - only the presentity moves a subscription into `approved`, `denied` or `revoked`;
 * - a denial stands: a denied watcher's new request or cancel changes nothing (and the service
 *   does not tell the watcher it was denied), so cancelling cannot be used to ask again; the
 *   presentity can still change its mind and approve;
 * - a revoked watcher may ask again (→ `pending`); re-approval needs that new request, so a
 *   presentity never starts sending to a watcher that walked away; denying a revoked watcher
 *   blocks its future requests;
 * - `approved → denied` is refused: the way out of approved is `revoke` (which the service
 *   pairs with a presence-key rotation, docs/formats.md §5);
 * - same-state actions are no-ops (`changed: false`), so retries are harmless.
 */
import { ImppError } from '../../errors.js';

/** Stored states. */
export type SubscriptionState = 'pending' | 'approved' | 'denied' | 'revoked';

/** What a party can do. */
export type SubscriptionAction = 'request' | 'cancel' | 'approve' | 'deny' | 'revoke';

/** Every state, for validation of stored values. */
export const SUBSCRIPTION_STATES: readonly SubscriptionState[] = [
  'pending',
  'approved',
  'denied',
  'revoked',
];

/** Every action. */
export const SUBSCRIPTION_ACTIONS: readonly SubscriptionAction[] = [
  'request',
  'cancel',
  'approve',
  'deny',
  'revoke',
];

/**
 * Who may take an action: the watcher or the presentity.
 *
 * @example
 * ```ts
 * actionRole('approve'); // 'presentity'
 * ```
 */
export function actionRole(action: SubscriptionAction): 'watcher' | 'presentity' {
  return action === 'request' || action === 'cancel' ? 'watcher' : 'presentity';
}

/**
 * States that count against a watcher's subscription quota.
 *
 * @example
 * ```ts
 * isActiveSubscription('denied'); // false
 * ```
 */
export function isActiveSubscription(state: SubscriptionState | undefined): boolean {
  return state === 'pending' || state === 'approved';
}

/** Result of a transition: the new state (`undefined` = record removed) and whether it changed. */
export interface SubscriptionTransition {
  readonly state: SubscriptionState | undefined;
  readonly changed: boolean;
}

type Table = Record<
  SubscriptionState | 'absent',
  Record<SubscriptionAction, SubscriptionState | 'absent' | 'not-found' | 'conflict'>
>;

const TABLE: Table = {
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

/**
 * Applies `action` to `current` (`undefined` = no record). Throws `ERR_NOT_FOUND` or
 * `ERR_CONFLICT` as in the table above; never checks who acts (see {@link actionRole}).
 *
 * @example
 * ```ts
 * nextSubscriptionState(undefined, 'request'); // { state: 'pending', changed: true }
 * nextSubscriptionState('pending', 'approve'); // { state: 'approved', changed: true }
 * ```
 */
export function nextSubscriptionState(
  current: SubscriptionState | undefined,
  action: SubscriptionAction,
): SubscriptionTransition {
  const to = TABLE[current ?? 'absent'][action];
  if (to === 'not-found') {
    throw new ImppError('ERR_NOT_FOUND', `no subscription to ${action}`);
  }
  if (to === 'conflict') {
    throw new ImppError(
      'ERR_CONFLICT',
      `cannot ${action} a subscription that is ${current ?? 'absent'}`,
    );
  }
  const state = to === 'absent' ? undefined : to;
  return { state, changed: state !== current };
}
