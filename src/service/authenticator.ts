/**
 * The server's {@link Authenticator} from its configuration's trust section: the accepted SASL
 * mechanisms in the configured order, each answered by a configured provider, the rate limits of
 * the policy, and audit events to the given sink.
 *
 * `impp serve` wires the local provider (SCRAM-SHA-256-PLUS and SCRAM-SHA-256 over the
 * accounts file). The other provider types (LDAP, Kerberos, PKI, custom) exist as libraries in
 * src/auth but are not wired here yet: a configuration that needs them is refused at start with
 * a clear message rather than started without the mechanisms it asks for.
 */
import {
  AuthRegistry,
  Authenticator,
  DEFAULT_RATE_LIMIT,
  SqliteLocalAccountRepository,
  localProvider,
  makeAuthPolicy,
  scramServer,
  type AuditSink,
  type MechanismBinding,
} from '../auth/index.js';
import { SecretBytes, hkdfSha256, type SigningKeyPair } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import { providersForMechanism, type DomainTrustConfig } from '../trust/config.js';

/** What {@link authenticatorFromConfig} returns. */
export interface ConfiguredAuthenticator {
  readonly authenticator: Authenticator;
  /** Closes the providers (the accounts database). */
  close(): Promise<void>;
}

/** HKDF info of the SASL server secret (RFC 5869 §3.2: a context string per derived key). */
const SERVER_SECRET_INFO = new TextEncoder().encode('impp sasl server secret v1');

/**
 * The secret the SASL mechanisms use for answers about unknown users (so that "no such user"
 * looks like a wrong password, with the same fake salt every time). It must be stable across
 * restarts, or an attacker could tell unknown users by their changing salt; deriving it from the
 * domain key (HKDF-SHA-256, its own info string) gives that without another key file.
 */
function serverSecret(domainKey: SigningKeyPair): SecretBytes {
  return new SecretBytes(
    hkdfSha256(domainKey.secretKey.expose(), new Uint8Array(0), SERVER_SECRET_INFO, 32),
  );
}

/**
 * Builds the authenticator for `trust` with the local accounts in `accountsDbPath`.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` when a mechanism needs a provider type that the server
 *   cannot run yet.
 * @example
 * ```ts
 * const { authenticator, close } = await authenticatorFromConfig({
 *   trust: config.trust, accountsDbPath: files.accountsDbPath, domainKey: files.domainKey,
 *   audit: new PinoAuditSink(log),
 * });
 * ```
 */
export async function authenticatorFromConfig(options: {
  readonly trust: DomainTrustConfig;
  readonly accountsDbPath: string;
  readonly domainKey: SigningKeyPair;
  readonly audit: AuditSink;
}): Promise<ConfiguredAuthenticator> {
  const { trust } = options;
  const bindings: MechanismBinding[] = [];
  for (const mechanism of trust.authentication.mechanisms) {
    const provider = providersForMechanism(trust, mechanism).find((p) => p.type === 'local');
    if (
      provider === undefined ||
      (mechanism !== 'SCRAM-SHA-256-PLUS' && mechanism !== 'SCRAM-SHA-256')
    ) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `trust.authentication.mechanisms: ${mechanism} needs a provider that impp serve cannot run yet ` +
          '(only the local provider with SCRAM-SHA-256-PLUS and SCRAM-SHA-256 is wired)',
      );
    }
    bindings.push({ mechanism, provider: provider.id });
  }
  const registry = new AuthRegistry({
    domain: trust.domain,
    serverSecret: serverSecret(options.domainKey),
  });
  try {
    for (const { mechanism } of bindings) {
      registry.registerMechanism(scramServer({ plus: mechanism === 'SCRAM-SHA-256-PLUS' }));
    }
    const localIds = new Set(bindings.map((b) => b.provider));
    for (const id of localIds) {
      await registry.registerProvider(
        localProvider({
          repository: new SqliteLocalAccountRepository(options.accountsDbPath),
          name: id,
          iterations: trust.policy.scram.iterations,
        }),
      );
    }
    const limits = trust.policy.rateLimits;
    const policy = makeAuthPolicy(trust.domain, bindings, {
      rateLimit: {
        ...DEFAULT_RATE_LIMIT,
        accountBurst: limits.perAccount.attempts,
        sourceBurst: limits.perSource.attempts,
        forgetAfterMs: limits.perAccount.windowSeconds * 1000,
        ...(limits.lockoutSeconds > 0 ? { maxDelayMs: limits.lockoutSeconds * 1000 } : {}),
      },
    });
    const authenticator = new Authenticator(registry, policy, { audit: options.audit });
    return { authenticator, close: () => registry.close() };
  } catch (error) {
    await registry.close();
    throw error;
  }
}
