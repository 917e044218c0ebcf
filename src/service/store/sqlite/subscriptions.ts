/**
 * Subscriptions on SQLite, enforcing the state machine of `../subscription-state.ts`.
 */
import { ImppError } from '../../../errors.js';
import {
  SUBSCRIPTION_ACTIONS,
  SUBSCRIPTION_STATES,
  actionRole,
  isActiveSubscription,
  nextSubscriptionState,
  type SubscriptionAction,
  type SubscriptionState,
} from '../subscription-state.js';
import type { SubscriptionRecord, SubscriptionRepository } from '../types.js';
import { assertAddress, assertTime } from '../validate.js';
import { checked, read, type SqliteContext } from './context.js';

interface Row {
  presentity: string;
  watcher: string;
  state: string;
  created_at: number;
  updated_at: number;
}

function toRecord(row: Row): SubscriptionRecord {
  const state = row.state as SubscriptionState;
  if (!SUBSCRIPTION_STATES.includes(state)) {
    throw new ImppError('ERR_STORAGE', 'stored subscription has an unknown state');
  }
  return {
    presentity: row.presentity,
    watcher: row.watcher,
    state,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * {@link SubscriptionRepository} on SQLite. The read of the current state, the transition and
 * the write happen inside one transaction, so concurrent decisions cannot interleave.
 *
 * @example
 * ```ts
 * await store.subscriptions.transition({ presentity: 'alice@example.org',
 *   watcher: 'bob@example.org', actor: 'bob@example.org', action: 'request', at: Date.now() });
 * ```
 */
export class SqliteSubscriptionRepository implements SubscriptionRepository {
  readonly #ctx: SqliteContext;
  readonly #get;
  readonly #upsert;
  readonly #delete;
  readonly #activeOfWatcher;
  readonly #byPresentity;
  readonly #byPresentityState;
  readonly #byWatcher;
  readonly #approved;

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    const db = ctx.db;
    this.#get = db.prepare<[string, string], Row>(
      'SELECT * FROM subscriptions WHERE presentity = ? AND watcher = ?',
    );
    this.#upsert = db.prepare<[string, string, string, number, number]>(
      `INSERT INTO subscriptions (presentity, watcher, state, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (presentity, watcher) DO UPDATE SET state = excluded.state,
         updated_at = excluded.updated_at`,
    );
    this.#delete = db.prepare<[string, string]>(
      'DELETE FROM subscriptions WHERE presentity = ? AND watcher = ?',
    );
    this.#activeOfWatcher = db.prepare<[string], { n: number }>(
      `SELECT count(*) AS n FROM subscriptions WHERE watcher = ? AND state IN ('pending', 'approved')`,
    );
    this.#byPresentity = db.prepare<[string], Row>(
      'SELECT * FROM subscriptions WHERE presentity = ? ORDER BY watcher',
    );
    this.#byPresentityState = db.prepare<[string, string], Row>(
      'SELECT * FROM subscriptions WHERE presentity = ? AND state = ? ORDER BY watcher',
    );
    this.#byWatcher = db.prepare<[string], Row>(
      'SELECT * FROM subscriptions WHERE watcher = ? ORDER BY presentity',
    );
    this.#approved = db
      .prepare<[string], string>(
        `SELECT watcher FROM subscriptions WHERE presentity = ? AND state = 'approved' ORDER BY watcher`,
      )
      .pluck();
  }

  get(presentity: string, watcher: string): Promise<SubscriptionRecord | undefined> {
    return read(() => {
      const row = this.#get.get(presentity, watcher);
      return row === undefined ? undefined : toRecord(row);
    });
  }

  transition(input: {
    presentity: string;
    watcher: string;
    actor: string;
    action: SubscriptionAction;
    at: number;
  }): Promise<SubscriptionRecord | undefined> {
    return checked(() => {
      const presentity = assertAddress('presentity', input.presentity);
      const watcher = assertAddress('watcher', input.watcher);
      const actor = assertAddress('actor', input.actor);
      const at = assertTime('at', input.at);
      const action = input.action;
      if (!SUBSCRIPTION_ACTIONS.includes(action)) {
        throw new ImppError('ERR_INVALID_ARGUMENT', 'action: unknown');
      }
      if (presentity === watcher) {
        throw new ImppError('ERR_INVALID_ARGUMENT', 'a presentity does not subscribe to itself');
      }
      // Only the presentity decides; only the watcher asks or withdraws.
      if (actor !== (actionRole(action) === 'watcher' ? watcher : presentity)) {
        throw new ImppError('ERR_NOT_AUTHORIZED', `only the ${actionRole(action)} may ${action}`);
      }
      return this.#ctx.batcher.run(() => {
        const row = this.#get.get(presentity, watcher);
        const current = row === undefined ? undefined : toRecord(row);
        const next = nextSubscriptionState(current?.state, action);
        if (!next.changed) return current;
        if (next.state === undefined) {
          this.#delete.run(presentity, watcher);
          return undefined;
        }
        // The quota binds what the watcher starts; a presentity's approval of a denied request
        // is the presentity's decision and is not refused for the watcher's count.
        if (action === 'request' && !isActiveSubscription(current?.state)) {
          const n = this.#activeOfWatcher.get(watcher)?.n ?? 0;
          if (n >= this.#ctx.quotas.subscriptionsPerWatcher) {
            throw new ImppError('ERR_QUOTA_EXCEEDED', 'too many subscriptions for this watcher');
          }
        }
        this.#upsert.run(presentity, watcher, next.state, current?.createdAt ?? at, at);
        return {
          presentity,
          watcher,
          state: next.state,
          createdAt: current?.createdAt ?? at,
          updatedAt: at,
        };
      });
    });
  }

  approvedWatchers(presentity: string): Promise<string[]> {
    return read(() => this.#approved.all(presentity));
  }

  listForPresentity(presentity: string, state?: SubscriptionState): Promise<SubscriptionRecord[]> {
    return read(() =>
      (state === undefined
        ? this.#byPresentity.all(presentity)
        : this.#byPresentityState.all(presentity, state)
      ).map(toRecord),
    );
  }

  listForWatcher(watcher: string): Promise<SubscriptionRecord[]> {
    return read(() => this.#byWatcher.all(watcher).map(toRecord));
  }
}
