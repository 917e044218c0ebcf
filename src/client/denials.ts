/**
 * The users this account denied, as its devices agree on them, so that the client can drop what
 * they send (docs/protocol.md, Server-to-server §5.1). The home server blocks a denied user of its
 * own domain (T13), but cannot block one of another domain: message headers name no sender. The
 * client opens the sealed sender and is therefore the one place that can drop those; it drops
 * local ones too, in case the server's block fails.
 *
 * One record per user, last writer wins: a decision carries a stamp, the later stamp wins, and on
 * a tie the denial wins (the failure that keeps the protection). An approval after a denial is a
 * record too (`denied: false`), so it travels to the other devices and lifts the denial there.
 * Stamps follow the presence version rule (src/seal/presence.ts): never below the caller's clock
 * in milliseconds, nor below any stamp this device has seen, so a later decision on any device
 * gets a larger stamp without coordination.
 *
 * The records travel only inside the sealed presence state among this user's own listed devices
 * (format 1, {@link DenialRecord}). The server's subscription list (LIST_WATCHERS) is deliberately
 * not a source: taking a `denied` from it would let the server make this client drop the messages
 * of a sender of its choosing, one whose messages sealed sender otherwise hides from it; and
 * lifting a denial because the server no longer lists it would let the server unblock a sender.
 */
import { ImppError } from '../errors.js';
import { MAX_SYNC_DENIALS, type DenialRecord } from '../seal/presence.js';
import { formatAddress, parseAddress } from '../trust/address.js';

export type { DenialRecord };

/**
 * The denial records of one account.
 *
 * @example
 * ```ts
 * const denials = new Denials();
 * denials.decide('bob@example.org', true, Date.now());
 * denials.isDenied('bob@example.org'); // true
 * ```
 */
export class Denials {
  readonly #records = new Map<string, DenialRecord>();
  /** The largest stamp seen: the next decision goes above it. */
  #last = 0;

  constructor(records: Iterable<DenialRecord> = []) {
    this.merge(records);
  }

  /** Whether `user` (`user@domain`, canonical) is denied. */
  isDenied(user: string): boolean {
    return this.#records.get(user)?.denied === true;
  }

  /** The records, for the state file and the presence state shared with own devices. */
  records(): DenialRecord[] {
    return [...this.#records.values()];
  }

  /**
   * Records a decision on `user` (any spelling; stored canonical), stamped after every stamp seen
   * and not below `now`. Returns the previous record, to undo a decision the server refused.
   */
  decide(user: string, denied: boolean, now: number): DenialRecord | undefined {
    const canonical = formatAddress(parseAddress(user));
    const previous = this.#records.get(canonical);
    if (previous === undefined && this.#records.size >= MAX_SYNC_DENIALS) {
      throw new ImppError('ERR_QUOTA_EXCEEDED', 'too many denial records');
    }
    const stamp = Math.max(this.#last + 1, Math.trunc(now));
    this.#records.set(canonical, { user: canonical, denied, stamp });
    this.#last = stamp;
    return previous;
  }

  /**
   * Takes the records that win over this device's (a later stamp; the denial on a tie). Returns
   * whether anything changed. Records are expected canonical (the seal layer checks them).
   */
  merge(records: Iterable<DenialRecord>): boolean {
    let changed = false;
    for (const r of records) {
      this.#last = Math.max(this.#last, r.stamp);
      const mine = this.#records.get(r.user);
      if (!wins(r, mine)) continue;
      if (mine === undefined && this.#records.size >= MAX_SYNC_DENIALS) continue;
      this.#records.set(r.user, { user: r.user, denied: r.denied, stamp: r.stamp });
      changed = true;
    }
    return changed;
  }

  /** Whether this device holds a record that `records` lacks or would lose to: the sender is behind. */
  aheadOf(records: readonly DenialRecord[]): boolean {
    const theirs = new Map(records.map((r) => [r.user, r]));
    for (const mine of this.#records.values()) {
      if (wins(mine, theirs.get(mine.user))) return true;
    }
    return false;
  }
}

/** Whether record `a` replaces `b`: a later stamp, or a denial against an approval on a tie. */
function wins(a: DenialRecord, b: DenialRecord | undefined): boolean {
  if (b === undefined) return true;
  if (a.stamp !== b.stamp) return a.stamp > b.stamp;
  return a.denied && !b.denied;
}
