/**
 * The audit trail on SQLite: append-only, details stored as JSON of checked scalars.
 */
import { ImppError } from '../../../errors.js';
import type {
  AuditDetailValue,
  AuditEventRecord,
  AuditOutcome,
  AuditRepository,
  StoredAuditEvent,
} from '../types.js';
import { assertAuditEvent, assertUint } from '../validate.js';
import { checked, read, type SqliteContext } from './context.js';

interface Row {
  seq: number;
  at: number;
  kind: string;
  principal: string | null;
  source: string | null;
  outcome: string;
  details: string;
}

function toEvent(row: Row): StoredAuditEvent {
  const details: unknown = JSON.parse(row.details);
  if (typeof details !== 'object' || details === null || Array.isArray(details)) {
    throw new ImppError('ERR_STORAGE', 'stored audit event is malformed');
  }
  return {
    seq: row.seq,
    at: row.at,
    kind: row.kind,
    principal: row.principal,
    source: row.source,
    outcome: row.outcome as AuditOutcome,
    details: details as Record<string, AuditDetailValue>,
  };
}

const MAX_PAGE = 1000;

/**
 * {@link AuditRepository} on SQLite. Events go through the commit batcher like every write.
 *
 * @example
 * ```ts
 * await store.audit.append({ at: Date.now(), kind: 'device.register', principal: 'alice@example.org',
 *   source: '192.0.2.7', outcome: 'success', details: { deviceId: 'phone' } });
 * ```
 */
export class SqliteAuditRepository implements AuditRepository {
  readonly #ctx: SqliteContext;
  readonly #insert;

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    this.#insert = ctx.db.prepare<[number, string, string | null, string | null, string, string]>(
      'INSERT INTO audit (at, kind, principal, source, outcome, details) VALUES (?, ?, ?, ?, ?, ?)',
    );
  }

  append(event: AuditEventRecord): Promise<void> {
    return checked(() => {
      const e = assertAuditEvent(event);
      const details = JSON.stringify(e.details);
      return this.#ctx.batcher.run(() => {
        this.#insert.run(e.at, e.kind, e.principal, e.source, e.outcome, details);
      });
    });
  }

  list(
    options: { after?: number; limit?: number; kind?: string; principal?: string } = {},
  ): Promise<StoredAuditEvent[]> {
    return checked(() => {
      const after = assertUint('after', options.after ?? 0);
      const limit = assertUint('limit', options.limit ?? 100, MAX_PAGE);
      const where = ['seq > ?'];
      const params: (string | number)[] = [after];
      if (options.kind !== undefined) {
        where.push('kind = ?');
        params.push(options.kind);
      }
      if (options.principal !== undefined) {
        where.push('principal = ?');
        params.push(options.principal);
      }
      params.push(limit);
      return read(() =>
        this.#ctx.db
          .prepare<(string | number)[], Row>(
            `SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`,
          )
          .all(...params)
          .map(toEvent),
      );
    });
  }
}
