/**
 * impp's authentication framework (public entry point `impp/auth`): the contracts, the registry,
 * the server session and the client side, SCRAM-SHA-256(-PLUS), PLAIN, the local provider, policy,
 * rate limits and audit sinks. The enterprise providers (LDAP, Kerberos, PKI) have their own
 * modules under `src/auth/ldap`, `src/auth/kerberos` and `src/auth/pki`, so that a deployment that
 * does not use them never loads their dependencies.
 *
 * @example
 * ```ts
 * import { AuthRegistry, Authenticator, makeAuthPolicy, scramServer, localProvider } from 'impp/auth';
 * ```
 */
export * from './types.js';
export * from './registry.js';
export * from './server.js';
export * from './client.js';
export * from './policy.js';
export * from './rate-limit.js';
export * from './audit.js';
export * from './channel.js';
export * from './plain.js';
export { scramServer, scramMetadata, SCRAM_SHA_256, SCRAM_SHA_256_PLUS } from './scram/server.js';
export type { ScramServerOptions } from './scram/server.js';
export { scramClient, scramServerErrorReason } from './scram/client.js';
export type { ChannelBindingPolicy, ScramClientOptions } from './scram/client.js';
export {
  makeScramCredential,
  SCRAM_MIN_ITERATIONS,
  SCRAM_MAX_ITERATIONS,
  prepareUsername,
  preparePassword,
} from './scram/keys.js';
export { localProvider, LocalAccounts } from './providers/local.js';
export type { LocalProviderOptions } from './providers/local.js';
export {
  SqliteLocalAccountRepository,
  LOCAL_STORE_SCHEMA_VERSION,
} from './providers/local-store.js';
export type {
  LocalAccountRecord,
  LocalAccountRepository,
  LocalAccountSummary,
} from './providers/local-store.js';
