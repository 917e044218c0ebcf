/**
 * The service's storage: repository interfaces, the subscription state machine, and the SQLite
 * implementation (the embedded default). See docs/storage.md.
 */
export * from './types.js';
export {
  SUBSCRIPTION_ACTIONS,
  SUBSCRIPTION_STATES,
  actionRole,
  isActiveSubscription,
  nextSubscriptionState,
  type SubscriptionTransition,
} from './subscription-state.js';
export { AUDIT_LIMITS } from './validate.js';
export { CommitBatcher, type BatchOptions } from './sqlite/batcher.js';
export { SqliteKeyLogStorage } from './sqlite/keylog.js';
export {
  SqliteFederationQueueRepository,
  SqliteFederationSeenRepository,
} from './sqlite/federation.js';
export {
  SERVICE_MIGRATIONS,
  SERVICE_SCHEMA_VERSION,
  migrate,
  schemaVersion,
  type Migration,
} from './sqlite/migrations.js';
export {
  openSqliteDatabase,
  type OpenSqliteOptions,
  type SqliteSynchronous,
} from './sqlite/open.js';
export {
  openSqliteServiceStore,
  type SqliteServiceStore,
  type SqliteServiceStoreOptions,
} from './sqlite/store.js';
