/**
 * The SQLite service store: one database file, every repository, one commit batcher.
 */
import type Database from 'better-sqlite3';
import { ImppError } from '../../../errors.js';
import {
  DEFAULT_FEDERATION_QUEUE_QUOTAS,
  DEFAULT_STORE_QUOTAS,
  type FederationQueueQuotas,
  type FederationQueueRepository,
  type FederationSeenRepository,
  type ServiceStore,
  type StoreQuotas,
} from '../types.js';
import { SqliteAuditRepository } from './audit.js';
import { CommitBatcher, type BatchOptions } from './batcher.js';
import type { SqliteContext } from './context.js';
import { SqliteDeviceListRepository, SqliteDeviceRepository } from './devices.js';
import { SqliteFederationQueueRepository, SqliteFederationSeenRepository } from './federation.js';
import { SqliteKeyLogStorage } from './keylog.js';
import { SERVICE_MIGRATIONS, migrate, type Migration } from './migrations.js';
import { openSqliteDatabase, type SqliteSynchronous } from './open.js';
import { SqlitePrekeyRepository } from './prekeys.js';
import { SqlitePresenceRepository } from './presence.js';
import { SqliteMessageQueueRepository } from './queue.js';
import { SqliteSubscriptionRepository } from './subscriptions.js';
import { WalSync } from './wal-sync.js';

/** Options of {@link openSqliteServiceStore}. */
export interface SqliteServiceStoreOptions {
  /** Database file (created with mode 0600), or `':memory:'` for tests. */
  readonly path: string;
  /** Default `full`: see docs/storage.md, "Durability". */
  readonly synchronous?: SqliteSynchronous;
  /** Group commit of writes; default on, flushed on the next event-loop turn. */
  readonly batch?: BatchOptions;
  /** Overrides of {@link DEFAULT_STORE_QUOTAS}. */
  readonly quotas?: Partial<StoreQuotas>;
  /** Overrides of {@link DEFAULT_FEDERATION_QUEUE_QUOTAS} (bounds of each peer's queue). */
  readonly federationQuotas?: Partial<FederationQueueQuotas>;
  /**
   * Parse the envelope header of every message and presence object before storing it, and
   * refuse anything that is not a sealed object or whose header disagrees with the fields it is
   * filed under (recipient, id, presentity, version). Default `true`; turn off only where the
   * caller has just parsed the same bytes and the cost matters.
   */
  readonly verifyEnvelopes?: boolean;
  /** Name of the key log within the database (default: `default`). */
  readonly keyLogName?: string;
  /** @internal Migration list (tests of the migration runner). */
  readonly migrations?: readonly Migration[];
}

/** The SQLite store, with access to its batcher statistics and schema version. */
export interface SqliteServiceStore extends ServiceStore {
  readonly schemaVersion: number;
  /** Outbound queue of each peer domain (federation, issue 7). */
  readonly federationQueue: FederationQueueRepository;
  /** Object ids received from each origin domain (federation duplicate suppression). */
  readonly federationSeen: FederationSeenRepository;
  /** Batches committed and operations run so far. */
  readonly batchStats: { readonly batches: number; readonly operations: number };
  /**
   * WAL syncs made off the event loop (./wal-sync.ts); stays 0 at `synchronous: 'normal'` and
   * for `':memory:'`, where no sync is made.
   */
  readonly syncStats: { readonly syncs: number };
  /** The underlying connection, for diagnostics and tests only. */
  readonly db: Database.Database;
}

/**
 * Opens (creating and migrating as needed) the service store.
 * Throws `ERR_STORAGE` if the file cannot be opened or its schema is newer than this code.
 *
 * @example
 * ```ts
 * const store = openSqliteServiceStore({ path: join(dataDir, 'store.db') });
 * const outcome = await store.queue.enqueue({ id, recipientDevice, kind: 'message', bytes,
 *   receivedAt: Date.now() });
 * // outcome resolved: the object is durable; acknowledge it to the sender now.
 * await store.close();
 * ```
 */
export function openSqliteServiceStore(options: SqliteServiceStoreOptions): SqliteServiceStore {
  const quotas: StoreQuotas = { ...DEFAULT_STORE_QUOTAS, ...options.quotas };
  const federationQuotas: FederationQueueQuotas = {
    ...DEFAULT_FEDERATION_QUEUE_QUOTAS,
    ...options.federationQuotas,
  };
  for (const [name, value] of [
    ...Object.entries(quotas),
    ...Object.entries(federationQuotas).map(([k, v]) => [`federation.${k}`, v] as const),
  ]) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `quotas.${name}: expected a positive integer`);
    }
  }
  const db = openSqliteDatabase(options.path, {
    ...(options.synchronous === undefined ? {} : { synchronous: options.synchronous }),
  });
  let wal: WalSync | undefined;
  try {
    const schemaVersion = migrate(db, options.migrations ?? SERVICE_MIGRATIONS);
    if (options.path !== ':memory:' && (options.synchronous ?? 'full') === 'full') {
      // FULL durability, with the fsync moved off the event loop (./wal-sync.ts): migrations
      // above committed at FULL; from here on COMMIT writes and WalSync syncs.
      wal = WalSync.open(`${options.path}-wal`);
      db.pragma('synchronous = NORMAL');
    }
    const durableNow = wal === undefined ? undefined : wal.durableNow.bind(wal);
    const batcher = new CommitBatcher(db, options.batch, wal);
    const ctx: SqliteContext = {
      db,
      batcher,
      quotas,
      verifyEnvelopes: options.verifyEnvelopes ?? true,
    };
    let closed = false;
    return {
      devices: new SqliteDeviceRepository(ctx),
      deviceLists: new SqliteDeviceListRepository(ctx),
      prekeys: new SqlitePrekeyRepository(ctx),
      queue: new SqliteMessageQueueRepository(ctx),
      subscriptions: new SqliteSubscriptionRepository(ctx),
      presence: new SqlitePresenceRepository(ctx),
      audit: new SqliteAuditRepository(ctx),
      federationQueue: new SqliteFederationQueueRepository(ctx, federationQuotas),
      federationSeen: new SqliteFederationSeenRepository(ctx),
      keyLog: new SqliteKeyLogStorage(db, options.keyLogName, durableNow),
      quotas,
      schemaVersion,
      batchStats: batcher.stats,
      syncStats: wal?.stats ?? { syncs: 0 },
      db,
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        try {
          batcher.close();
          // The last batch's promises settle once its sync is done; the connection stays open
          // until then, so the WAL file the descriptor names is still the live one.
          await wal?.close();
          db.close();
        } catch (cause) {
          throw new ImppError('ERR_STORAGE', 'cannot close the store', { cause });
        }
      },
    };
  } catch (cause) {
    void wal?.close();
    db.close();
    if (cause instanceof ImppError) throw cause;
    throw new ImppError('ERR_STORAGE', 'cannot open the service store', { cause });
  }
}
