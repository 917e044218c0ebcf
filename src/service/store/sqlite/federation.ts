/**
 * Federation durability on SQLite (issue 7, item 5): the outbound queue of each peer domain, the
 * retry state of each peer, and the ids received from each origin domain. Every write goes
 * through the commit batcher, so its promise resolves only once durable.
 */
import { ImppError } from '../../../errors.js';
import type {
  EnqueueOutcome,
  FederationPeerState,
  FederationQueueEntry,
  FederationQueueQuotas,
  FederationQueueRepository,
  FederationSeenRepository,
  NewFederationQueueEntry,
  QueueUsage,
} from '../types.js';
import { MAX_FEDERATION_BODY_BYTES } from '../types.js';
import { assertBytes, assertTime, assertUint } from '../validate.js';
import { blob, checked, read, toBuffer, type SqliteContext } from './context.js';

/** Object ids on a link are 16 bytes (src/federation/wire.ts, OBJECT_ID_BYTES). */
const ID_BYTES = 16;
const MAX_PAGE = 4096;
const MAX_IDS = 4096;
/** A DNS name is at most 253 characters. */
const MAX_DOMAIN = 253;
const MAX_SENDER = 512;
const MAX_ERROR = 64;

function assertName(field: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${field}: expected 1..${max} characters`);
  }
  return value;
}

function assertIds(ids: readonly Uint8Array[]): Buffer[] {
  const input: unknown = ids;
  if (!Array.isArray(input) || ids.length > MAX_IDS) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `ids: expected at most ${MAX_IDS} ids`);
  }
  return ids.map((id) => toBuffer(assertBytes('id', id, ID_BYTES)));
}

interface EntryRow {
  seq: number;
  peer: string;
  sender: string;
  id: Buffer;
  kind: number;
  enqueued_at: number;
  attempts: number;
  body: Buffer;
}

function entry(row: EntryRow): FederationQueueEntry {
  return {
    seq: row.seq,
    peer: row.peer,
    sender: row.sender,
    id: blob(row.id),
    kind: row.kind,
    body: blob(row.body),
    enqueuedAt: row.enqueued_at,
    attempts: row.attempts,
  };
}

const COLUMNS = 'seq, peer, sender, id, kind, enqueued_at, attempts, body';

/**
 * {@link FederationQueueRepository} on SQLite.
 *
 * @example
 * ```ts
 * await store.federationQueue.enqueue({ peer: 'b.example', sender, id, kind: 1, body,
 *   enqueuedAt: Date.now() }); // durable: acknowledge to the sender now
 * ```
 */
export class SqliteFederationQueueRepository implements FederationQueueRepository {
  readonly #ctx: SqliteContext;
  readonly #quotas: FederationQueueQuotas;
  readonly #usage;
  readonly #existing;
  readonly #insert;
  readonly #peek;
  readonly #delete;
  readonly #attempt;
  readonly #expired;
  readonly #expiredPeer;
  readonly #peers;
  readonly #state;
  readonly #setState;

  constructor(ctx: SqliteContext, quotas: FederationQueueQuotas) {
    this.#ctx = ctx;
    this.#quotas = quotas;
    const db = ctx.db;
    this.#usage = db.prepare<[string], { count: number; bytes: number }>(
      'SELECT count, bytes FROM fed_outbound_usage WHERE peer = ?',
    );
    this.#existing = db.prepare<[string, Buffer], { seq: number }>(
      'SELECT seq FROM fed_outbound WHERE peer = ? AND id = ?',
    );
    this.#insert = db.prepare<[string, string, Buffer, number, number, number, Buffer]>(
      `INSERT INTO fed_outbound (peer, sender, id, kind, enqueued_at, size, body)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (peer, id) DO NOTHING`,
    );
    this.#peek = db.prepare<[string, number, number], EntryRow>(
      `SELECT ${COLUMNS} FROM fed_outbound WHERE peer = ? AND seq > ? ORDER BY seq LIMIT ?`,
    );
    this.#delete = db.prepare<[string, Buffer]>(
      'DELETE FROM fed_outbound WHERE peer = ? AND id = ?',
    );
    this.#attempt = db.prepare<[string, Buffer]>(
      'UPDATE fed_outbound SET attempts = attempts + 1 WHERE peer = ? AND id = ?',
    );
    this.#expired = db.prepare<[number, number], EntryRow>(
      `SELECT ${COLUMNS} FROM fed_outbound WHERE enqueued_at < ? ORDER BY enqueued_at, seq
       LIMIT ?`,
    );
    this.#expiredPeer = db.prepare<[string, number, number], EntryRow>(
      `SELECT ${COLUMNS} FROM fed_outbound WHERE peer = ? AND enqueued_at < ?
       ORDER BY enqueued_at, seq LIMIT ?`,
    );
    this.#peers = db.prepare<[], { peer: string }>(
      'SELECT peer FROM fed_outbound_usage WHERE count > 0 ORDER BY peer',
    );
    this.#state = db.prepare<
      [string],
      { attempts: number; next_attempt_at: number; last_error: string | null }
    >('SELECT attempts, next_attempt_at, last_error FROM fed_peers WHERE peer = ?');
    this.#setState = db.prepare<[string, number, number, string | null]>(
      `INSERT INTO fed_peers (peer, attempts, next_attempt_at, last_error) VALUES (?, ?, ?, ?)
       ON CONFLICT (peer) DO UPDATE SET attempts = excluded.attempts,
         next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error`,
    );
  }

  enqueue(input: NewFederationQueueEntry): Promise<EnqueueOutcome> {
    return checked(() => {
      const peer = assertName('peer', input.peer, MAX_DOMAIN);
      const sender = assertName('sender', input.sender, MAX_SENDER);
      const id = toBuffer(assertBytes('id', input.id, ID_BYTES));
      const kind = assertUint('kind', input.kind, 0xffff);
      const body = toBuffer(assertBytes('body', input.body, 0, MAX_FEDERATION_BODY_BYTES));
      const at = assertTime('enqueuedAt', input.enqueuedAt);
      const { maxCount, maxBytes } = this.#quotas;
      // One write statement, every throw before it: no savepoint needed (batcher.ts, `atomic`).
      return this.#ctx.batcher.run(
        (): EnqueueOutcome => {
          const usage = this.#usage.get(peer) ?? { count: 0, bytes: 0 };
          if (usage.count + 1 > maxCount || usage.bytes + body.length > maxBytes) {
            // Full, but a retry of an object already queued still succeeds (idempotent).
            const existing = this.#existing.get(peer, id);
            if (existing !== undefined) return { status: 'duplicate', seq: existing.seq };
            throw new ImppError(
              'ERR_QUOTA_EXCEEDED',
              `the outbound queue for ${peer} is full (${usage.count} objects, ${usage.bytes} bytes)`,
            );
          }
          const r = this.#insert.run(peer, sender, id, kind, at, body.length, body);
          if (r.changes === 0) {
            const existing = this.#existing.get(peer, id);
            if (existing === undefined) throw new ImppError('ERR_STORAGE', 'queue insert ignored');
            return { status: 'duplicate', seq: existing.seq };
          }
          return { status: 'stored', seq: Number(r.lastInsertRowid) };
        },
        { atomic: true },
      );
    });
  }

  peek(
    peer: string,
    options: { readonly after?: number; readonly limit?: number } = {},
  ): Promise<FederationQueueEntry[]> {
    return checked(() => {
      const after = assertUint('after', options.after ?? 0);
      const limit = assertUint('limit', options.limit ?? 256, MAX_PAGE);
      return read(() => this.#peek.all(peer, after, limit).map(entry));
    });
  }

  remove(peer: string, ids: readonly Uint8Array[]): Promise<number> {
    return checked(() => {
      const keys = assertIds(ids);
      if (keys.length === 0) return Promise.resolve(0);
      return this.#ctx.batcher.run(() => {
        let deleted = 0;
        for (const key of keys) deleted += this.#delete.run(peer, key).changes;
        return deleted;
      });
    });
  }

  noteAttempt(peer: string, ids: readonly Uint8Array[]): Promise<void> {
    return checked(() => {
      const keys = assertIds(ids);
      if (keys.length === 0) return Promise.resolve();
      return this.#ctx.batcher.run(() => {
        for (const key of keys) this.#attempt.run(peer, key);
      });
    });
  }

  expired(
    before: number,
    options: { readonly peer?: string; readonly limit?: number } = {},
  ): Promise<FederationQueueEntry[]> {
    return checked(() => {
      const at = assertTime('before', before);
      const limit = assertUint('limit', options.limit ?? 256, MAX_PAGE);
      const peer = options.peer;
      return read(() =>
        (peer === undefined
          ? this.#expired.all(at, limit)
          : this.#expiredPeer.all(peer, at, limit)
        ).map(entry),
      );
    });
  }

  peers(): Promise<string[]> {
    return read(() => this.#peers.all().map((r) => r.peer));
  }

  usage(peer: string): Promise<QueueUsage> {
    return read(() => {
      const row = this.#usage.get(peer);
      return { count: row?.count ?? 0, bytes: row?.bytes ?? 0 };
    });
  }

  peerState(peer: string): Promise<FederationPeerState> {
    return read(() => {
      const row = this.#state.get(peer);
      return {
        attempts: row?.attempts ?? 0,
        nextAttemptAt: row?.next_attempt_at ?? 0,
        lastError: row?.last_error ?? null,
      };
    });
  }

  setPeerState(peer: string, state: FederationPeerState): Promise<void> {
    return checked(() => {
      const name = assertName('peer', peer, MAX_DOMAIN);
      const attempts = assertUint('attempts', state.attempts);
      const next = assertTime('nextAttemptAt', state.nextAttemptAt);
      const error = state.lastError === null ? null : state.lastError.slice(0, MAX_ERROR);
      return this.#ctx.batcher.run(
        () => {
          this.#setState.run(name, attempts, next, error);
        },
        { atomic: true },
      );
    });
  }
}

/**
 * {@link FederationSeenRepository} on SQLite.
 *
 * @example
 * ```ts
 * if (!(await store.federationSeen.has(origin, id))) { deliver(); await store.federationSeen.record(origin, id, Date.now()); }
 * ```
 */
export class SqliteFederationSeenRepository implements FederationSeenRepository {
  readonly #ctx: SqliteContext;
  readonly #has;
  readonly #record;
  readonly #forget;
  readonly #prune;
  readonly #count;

  constructor(ctx: SqliteContext) {
    this.#ctx = ctx;
    const db = ctx.db;
    this.#has = db.prepare<[string, Buffer], { ok: number }>(
      'SELECT 1 AS ok FROM fed_inbound_seen WHERE origin = ? AND id = ?',
    );
    this.#record = db.prepare<[string, Buffer, number]>(
      `INSERT INTO fed_inbound_seen (origin, id, seen_at) VALUES (?, ?, ?)
       ON CONFLICT (origin, id) DO NOTHING`,
    );
    this.#forget = db.prepare<[string, Buffer]>(
      'DELETE FROM fed_inbound_seen WHERE origin = ? AND id = ?',
    );
    this.#prune = db.prepare<[number, number]>(
      `DELETE FROM fed_inbound_seen WHERE (origin, id) IN (
         SELECT origin, id FROM fed_inbound_seen WHERE seen_at < ? LIMIT ?)`,
    );
    this.#count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM fed_inbound_seen');
  }

  has(origin: string, id: Uint8Array): Promise<boolean> {
    return checked(() => {
      const key = toBuffer(assertBytes('id', id, ID_BYTES));
      return read(() => this.#has.get(origin, key) !== undefined);
    });
  }

  record(origin: string, id: Uint8Array, at: number, within?: () => void): Promise<void> {
    return checked(() => {
      const name = assertName('origin', origin, MAX_DOMAIN);
      const key = toBuffer(assertBytes('id', id, ID_BYTES));
      const time = assertTime('at', at);
      // With `within`, two writers: it needs the savepoint so that a throw undoes both.
      return this.#ctx.batcher.run(
        () => {
          within?.();
          this.#record.run(name, key, time);
        },
        { atomic: within === undefined },
      );
    });
  }

  forget(origin: string, id: Uint8Array): Promise<void> {
    return checked(() => {
      const key = toBuffer(assertBytes('id', id, ID_BYTES));
      return this.#ctx.batcher.run(
        () => {
          this.#forget.run(origin, key);
        },
        { atomic: true },
      );
    });
  }

  prune(before: number, limit = 10_000): Promise<number> {
    return checked(() => {
      const at = assertTime('before', before);
      const n = assertUint('limit', limit, 1_000_000);
      return this.#ctx.batcher.run(() => this.#prune.run(at, n).changes, { atomic: true });
    });
  }

  count(): Promise<number> {
    return read(() => this.#count.get()?.n ?? 0);
  }
}
