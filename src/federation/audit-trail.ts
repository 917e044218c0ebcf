/**
 * Writes federation audit records to the store's audit trail with a budget per source, so that
 * a peer (or anyone who can reach the federation port) cannot flood the trail: at most
 * `perSource` records per window; further ones are counted, and the count (`suppressed`) goes
 * with that source's next record.
 *
 * Sources are authenticated peer domains (bounded by the federation configuration) or the one
 * shared key {@link UNAUTHENTICATED} for events before a peer proved anything: a name a caller
 * only claimed must not create budget entries, or the map itself would be the flood.
 */
import type { AuditDetailValue, AuditOutcome, AuditRepository } from '../service/store/types.js';
import { positiveInteger } from './options.js';

/** The budget key of events whose peer is only claimed. */
export const UNAUTHENTICATED = '(unauthenticated)';

/** A record to write (the trail adds the time and `suppressed`). */
export interface FederationAuditEntry {
  readonly kind: string;
  /** The budget key: an authenticated peer domain or {@link UNAUTHENTICATED}. */
  readonly budgetKey: string;
  readonly source: string | null;
  readonly outcome: AuditOutcome;
  readonly details: Readonly<Record<string, AuditDetailValue>>;
}

/** Records per source and window. */
export interface AuditLimit {
  readonly perPeer: number;
  readonly windowMs: number;
}

/** The default budget: 60 records per source a minute. */
export const DEFAULT_AUDIT_LIMIT: AuditLimit = Object.freeze({ perPeer: 60, windowMs: 60_000 });

/** See the module comment. */
export class FederationAuditTrail {
  readonly #log: Pick<AuditRepository, 'append'>;
  readonly #limit: AuditLimit;
  readonly #clock: () => number;
  readonly #budget = new Map<string, { start: number; used: number; suppressed: number }>();

  constructor(
    log: Pick<AuditRepository, 'append'>,
    limit: AuditLimit = DEFAULT_AUDIT_LIMIT,
    clock: () => number = Date.now,
  ) {
    // perPeer 0 would switch the trail off, NaN would leave it unbounded.
    positiveInteger('auditLimit.perPeer', limit.perPeer);
    positiveInteger('auditLimit.windowMs', limit.windowMs);
    this.#log = log;
    this.#limit = limit;
    this.#clock = clock;
  }

  /** Writes `entry` unless its source spent its budget. Never throws. */
  async record(entry: FederationAuditEntry): Promise<void> {
    const now = this.#clock();
    let budget = this.#budget.get(entry.budgetKey);
    if (budget === undefined || now - budget.start >= this.#limit.windowMs) {
      budget = { start: now, used: 0, suppressed: budget?.suppressed ?? 0 };
      this.#budget.set(entry.budgetKey, budget);
    }
    if (budget.used >= this.#limit.perPeer) {
      budget.suppressed += 1;
      return;
    }
    budget.used += 1;
    const suppressed = budget.suppressed;
    budget.suppressed = 0;
    try {
      await this.#log.append({
        at: now,
        kind: entry.kind,
        principal: null,
        source: entry.source,
        outcome: entry.outcome,
        details: { ...entry.details, ...(suppressed === 0 ? {} : { suppressed }) },
      });
    } catch {
      // What was refused stays refused whether or not its audit line could be written.
    }
  }
}
