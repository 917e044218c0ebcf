/**
 * The registry of mechanisms and providers: plug-ins are registered as factories `(deps) =>
 * plugin`, and their declared metadata is checked here, once, before anything is offered.
 *
 * Checks (each refusal is `ERR_AUTH_REGISTRATION` naming the rule):
 * - mechanism names are SASL names (RFC 4422 §3.1) and unique;
 * - a mechanism that needs the cleartext password needs a secure channel, and uses exactly the
 *   `verify-password` provider capability (and only such mechanisms do);
 * - channel binding needs a secure channel; `-PLUS` names bind and binding mechanisms are `-PLUS`
 *   (RFC 5802 §4 naming);
 * - a provider declares capabilities that match the methods it implements;
 * - a policy pairs each mechanism with a provider that has the capability it needs: PLAIN cannot
 *   pair with the local provider (which stores verifiers, not passwords).
 */
import type { SecretBytes } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import type {
  AuthPolicy,
  CredentialProvider,
  MechanismMetadata,
  MechanismPlugin,
  ProviderCapability,
  ProviderPlugin,
  ServerMechanismFactory,
} from './types.js';

const CAPABILITY_METHOD: Readonly<Record<ProviderCapability, keyof CredentialProvider>> = {
  'scram-sha-256': 'getScramCredential',
  'verify-password': 'verifyPassword',
  kerberos: 'mapKerberosPrincipal',
  certificate: 'mapCertificate',
};

const SASL_NAME = /^[A-Z0-9_-]{1,20}$/;
const PROVIDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function refuse(message: string): never {
  throw new ImppError('ERR_AUTH_REGISTRATION', message);
}

/** Checks mechanism metadata against the rules above; throws `ERR_AUTH_REGISTRATION`. */
export function checkMechanismMetadata(m: MechanismMetadata): void {
  if (!SASL_NAME.test(m.name))
    refuse(`mechanism name ${JSON.stringify(m.name)} is not a SASL name`);
  if (!(m.providerCapability in CAPABILITY_METHOD))
    refuse(`${m.name}: unknown provider capability`);
  if (m.needsCleartextPassword && !m.needsSecureChannel) {
    refuse(`${m.name}: a mechanism that sends the cleartext password must need a secure channel`);
  }
  if (m.needsCleartextPassword !== (m.providerCapability === 'verify-password')) {
    refuse(`${m.name}: cleartext mechanisms, and only they, use the verify-password capability`);
  }
  if (!['none', 'tls-exporter'].includes(m.channelBinding)) {
    refuse(`${m.name}: unknown channel-binding type`);
  }
  if (m.channelBinding !== 'none' && !m.needsSecureChannel) {
    refuse(`${m.name}: channel binding needs a secure channel`);
  }
  if (m.name.endsWith('-PLUS') !== (m.channelBinding !== 'none')) {
    refuse(`${m.name}: -PLUS mechanisms, and only they, use channel binding`);
  }
}

/** Checks a provider's declared capabilities against its methods; throws `ERR_AUTH_REGISTRATION`. */
export function checkProvider(p: CredentialProvider): void {
  if (!PROVIDER_NAME.test(p.name)) refuse(`provider name ${JSON.stringify(p.name)} is invalid`);
  if (typeof p.kind !== 'string' || p.kind.length === 0)
    refuse(`${p.name}: provider kind is empty`);
  if (p.capabilities.length === 0) refuse(`${p.name}: provider declares no capability`);
  for (const [capability, method] of Object.entries(CAPABILITY_METHOD)) {
    const declared = (p.capabilities as readonly string[]).includes(capability);
    const present = typeof p[method] === 'function';
    if (declared !== present) {
      refuse(
        `${p.name}: capability ${capability} ${declared ? 'declared without' : 'missing for'} ${method}()`,
      );
    }
  }
  for (const c of p.capabilities)
    if (!(c in CAPABILITY_METHOD)) refuse(`${p.name}: unknown capability ${c}`);
}

/** What the registry passes to plug-ins. */
export interface RegistryDeps {
  readonly domain: string;
  /** ≥ 32 bytes, stable across restarts (e.g. from the server's key store). */
  readonly serverSecret: SecretBytes;
  readonly now?: () => number;
}

/** A mechanism paired with its provider, as a checked policy yields them. */
export interface ResolvedBinding {
  readonly factory: ServerMechanismFactory;
  readonly provider: CredentialProvider;
}

/**
 * Registry of one domain's mechanisms and providers.
 *
 * @example
 * ```ts
 * const registry = new AuthRegistry({ domain: 'example.com', serverSecret });
 * registry.registerMechanism(scramServer({ plus: true }));
 * await registry.registerProvider(localProvider({ repository }));
 * const bindings = registry.resolve(policy);
 * ```
 */
export class AuthRegistry {
  readonly #mechanisms = new Map<string, ServerMechanismFactory>();
  readonly #providers = new Map<string, CredentialProvider>();

  constructor(private readonly deps: RegistryDeps) {
    if (deps.serverSecret.length < 32) refuse('server secret must be at least 32 bytes');
  }

  /** Instantiates and registers a mechanism plug-in after checking its metadata. */
  registerMechanism(plugin: MechanismPlugin): ServerMechanismFactory {
    const factory = plugin({
      serverSecret: this.deps.serverSecret,
      now: this.deps.now ?? Date.now,
    });
    checkMechanismMetadata(factory.metadata);
    if (this.#mechanisms.has(factory.metadata.name))
      refuse(`mechanism ${factory.metadata.name} registered twice`);
    this.#mechanisms.set(factory.metadata.name, factory);
    return factory;
  }

  /** Instantiates and registers a provider plug-in after checking its capabilities. */
  async registerProvider(plugin: ProviderPlugin): Promise<CredentialProvider> {
    const provider = await plugin({ domain: this.deps.domain, now: this.deps.now ?? Date.now });
    checkProvider(provider);
    if (this.#providers.has(provider.name)) refuse(`provider ${provider.name} registered twice`);
    this.#providers.set(provider.name, provider);
    return provider;
  }

  mechanism(name: string): ServerMechanismFactory | undefined {
    return this.#mechanisms.get(name);
  }

  provider(name: string): CredentialProvider | undefined {
    return this.#providers.get(name);
  }

  /**
   * Checks a policy against the registrations and returns its bindings in policy order.
   * Throws `ERR_AUTH_REGISTRATION` for an unknown mechanism or provider, a provider without the
   * needed capability, or a domain mismatch.
   */
  resolve(policy: AuthPolicy): ResolvedBinding[] {
    if (policy.domain !== this.deps.domain)
      refuse('policy domain differs from the registry domain');
    return policy.mechanisms.map((binding) => {
      const factory = this.#mechanisms.get(binding.mechanism);
      if (factory === undefined) refuse(`policy names unregistered mechanism ${binding.mechanism}`);
      const provider = this.#providers.get(binding.provider);
      if (provider === undefined) refuse(`policy names unregistered provider ${binding.provider}`);
      const need = factory.metadata.providerCapability;
      if (!provider.capabilities.includes(need)) {
        refuse(
          `${binding.mechanism} needs a provider with ${need}; ${provider.name} does not have it`,
        );
      }
      return { factory, provider };
    });
  }

  /** Closes every provider. */
  async close(): Promise<void> {
    for (const p of this.#providers.values()) await p.close?.();
  }
}
