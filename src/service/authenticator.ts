/**
 * The server's {@link Authenticator} from its configuration's trust section: the accepted SASL
 * mechanisms in the configured order, each answered by a configured provider, the rate limits of
 * the policy, and audit events to the given sink.
 *
 * `impp serve` wires:
 * - the local provider (SCRAM-SHA-256-PLUS and SCRAM-SHA-256 over the accounts file);
 * - the LDAP provider (PLAIN, RFC 4616, checked by binding to the directory as the user over
 *   LDAPS or StartTLS), with its service-account password read from the `{ file }` or `{ env }`
 *   reference the trust configuration allows (never inline); with `scramAttribute` also
 *   SCRAM-SHA-256(-PLUS) over RFC 5803 verifiers read from the directory (the directory holds
 *   verifiers, so the server never sees a password);
 * - the Kerberos provider (GS2-KRB5, RFC 5801; GS2-KRB5-PLUS with tls-exporter channel binding
 *   when impp's native GSS addon is built) with the service keytab and realm of the configuration;
 * - the PKI provider (EXTERNAL, RFC 4422 appendix A) over TLS client certificates: the
 *   configuration's trust anchors (and CRLs) go to Node's TLS layer, which validates the chain
 *   ({@link ConfiguredAuthenticator.clientCertificates}); the provider then maps the verified
 *   certificate's subject alternative name to an address of the domain.
 *
 * Custom providers exist as a library interface in src/auth but are not loaded here yet: a
 * configuration that needs them is refused at start with a clear message rather than started
 * without the mechanisms it asks for.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import {
  AuthRegistry,
  Authenticator,
  DEFAULT_RATE_LIMIT,
  SqliteLocalAccountRepository,
  localProvider,
  makeAuthPolicy,
  plainServer,
  scramServer,
  type AuditSink,
  type MechanismBinding,
  type MechanismPlugin,
  type ProviderPlugin,
} from '../auth/index.js';
import { gs2Krb5Server } from '../auth/kerberos/gs2-krb5.js';
import { kerberosProvider, type KerberosProviderConfig } from '../auth/kerberos/provider.js';
import { ldapProvider, type LdapProviderConfig } from '../auth/ldap/provider.js';
import { externalServer } from '../auth/pki/external.js';
import { pkiProvider, type PkiProviderConfig } from '../auth/pki/provider.js';
import { SecretBytes, hkdfSha256, type SigningKeyPair } from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import {
  providersForMechanism,
  type AuthMechanismName,
  type DomainTrustConfig,
  type ProviderConfig,
  type TrustAnchorsConfig,
} from '../trust/config.js';

/** What {@link authenticatorFromConfig} returns. */
export interface ConfiguredAuthenticator {
  readonly authenticator: Authenticator;
  /**
   * Set when a PKI provider is wired (EXTERNAL): the TLS listeners must ask clients for a
   * certificate and validate its chain against these anchors (PEM) and CRLs. Pass it to
   * `ImppServer` as `clientCertificates`.
   */
  readonly clientCertificates?: ClientCertificateTrust;
  /** Closes the providers (the accounts database). */
  close(): Promise<void>;
}

/** The trust anchors (and CRLs) Node's TLS validates client certificate chains against. */
export interface ClientCertificateTrust {
  /** PEM CA certificates: the accepted issuers of client certificates. */
  readonly ca: readonly string[];
  /** PEM CRLs of those CAs, when revocation is by CRL. */
  readonly crl?: readonly string[];
}

/** Where secret references of the configuration are looked up. */
export type SecretEnvironment = Readonly<Record<string, string | undefined>>;

/** Where a provider's secrets and files are found. */
interface Sources {
  readonly env: SecretEnvironment;
  /** Folder relative paths are resolved against; without it they are refused. */
  readonly baseDir: string | undefined;
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

/** The provider types `impp serve` can run, and the mechanisms each answers here. */
const WIRED: Readonly<Partial<Record<ProviderConfig['type'], readonly AuthMechanismName[]>>> = {
  local: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
  // SCRAM only with scramAttribute: the trust configuration does not pair it otherwise.
  ldap: ['PLAIN', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
  kerberos: ['GS2-KRB5-PLUS', 'GS2-KRB5'],
  pki: ['EXTERNAL'],
};

function configError(message: string): ImppError {
  return new ImppError('ERR_CONFIG_INVALID', message);
}

/**
 * The one provider that answers `mechanism`. More than one candidate is refused: the
 * authenticator pairs each mechanism with exactly one provider, and silently ignoring the
 * second one would leave its users unable to log in without saying why.
 */
function providerFor(trust: DomainTrustConfig, mechanism: AuthMechanismName): ProviderConfig {
  const candidates = providersForMechanism(trust, mechanism);
  const where = `trust.authentication.mechanisms: ${mechanism}`;
  if (candidates.length > 1) {
    throw configError(
      `${where} is answered by ${candidates.length} providers (${candidates.map((p) => p.id).join(', ')}); ` +
        'impp serve pairs each mechanism with exactly one provider',
    );
  }
  const provider = candidates[0];
  if (provider === undefined || !(WIRED[provider.type] ?? []).includes(mechanism)) {
    const why = `a ${provider?.type ?? 'matching'} provider is not wired into impp serve yet`;
    throw configError(
      `${where} needs a provider that impp serve cannot run yet: ${why} ` +
        '(wired: local for SCRAM-SHA-256-PLUS and SCRAM-SHA-256, ldap for PLAIN and, with ' +
        'scramAttribute, SCRAM, kerberos for GS2-KRB5-PLUS and GS2-KRB5, pki for EXTERNAL)',
    );
  }
  return provider;
}

/**
 * `path` made absolute against the configuration file's folder (docs/operations.md: relative
 * paths in the file mean paths next to it). Without that folder a relative path is refused
 * rather than read from whatever the working folder happens to be.
 */
function pathOf(path: string, sources: Sources, where: string): string {
  if (isAbsolute(path)) return path;
  if (sources.baseDir === undefined)
    throw configError(`${where}: must be an absolute path here (no configuration file folder)`);
  return resolve(sources.baseDir, path);
}

/**
 * Reads a secret reference: the file's content without its final line break, or the
 * environment variable. Messages name where the secret was looked for, never its value.
 */
function readSecret(
  ref: { readonly file?: string | undefined; readonly env?: string | undefined },
  sources: Sources,
  where: string,
): string {
  let value: string | undefined;
  if (ref.file !== undefined) {
    const path = pathOf(ref.file, sources, where);
    try {
      value = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ImppError('ERR_CONFIG_INVALID', `${where}: cannot read the secret file`, {
        cause: e,
      });
    }
  } else if (ref.env !== undefined) {
    value = sources.env[ref.env];
    if (value === undefined)
      throw configError(`${where}: environment variable ${ref.env} is not set`);
  }
  if (value === undefined || value.length === 0) throw configError(`${where}: the secret is empty`);
  return value;
}

/** The PEM text of trust anchors given by path or inline. */
function readAnchors(anchors: TrustAnchorsConfig, sources: Sources, where: string): string {
  if (anchors.pem !== undefined) return anchors.pem;
  const path = pathOf(anchors.path ?? '', sources, where);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ImppError('ERR_CONFIG_INVALID', `${where}: cannot read the CA bundle file`, {
      cause: e,
    });
  }
}

/**
 * The LDAP provider options for a trust configuration entry (docs/trust.md): the service
 * account's password is resolved from its reference here, at start, so a missing secret stops
 * the server instead of failing every login later.
 */
function ldapOptions(
  p: Extract<ProviderConfig, { type: 'ldap' }>,
  sources: Sources,
): LdapProviderConfig {
  const where = `trust.authentication.providers[${p.id}]`;
  if (p.bind === undefined) {
    // Without a service account the library would need a bind-DN template, which the trust
    // configuration has no field for: refuse rather than guess one.
    throw configError(
      `${where}.bind: impp serve needs a service account (bind.dn and bind.password) to search the directory`,
    );
  }
  if (p.userSearch.scope !== 'sub') {
    throw configError(`${where}.userSearch.scope: impp serve supports only "sub"`);
  }
  return {
    name: p.id,
    url: p.url,
    startTls: p.startTls,
    timeoutMs: p.timeoutMs,
    serviceAccount: {
      dn: p.bind.dn,
      password: readSecret(p.bind.password, sources, `${where}.bind.password`),
    },
    userBase: p.userSearch.base,
    userFilter: p.userSearch.filter,
    ...(p.groupSearch === undefined
      ? {}
      : { groups: { base: p.groupSearch.base, filter: p.groupSearch.filter } }),
    ...(p.caBundle === undefined
      ? {}
      : { caPem: readAnchors(p.caBundle, sources, `${where}.caBundle`) }),
    ...(p.scramAttribute === undefined ? {} : { scramAttribute: p.scramAttribute }),
    ...(p.disabledFilter === undefined ? {} : { disabledFilter: p.disabledFilter }),
  };
}

/** Reads one file of the configuration (a CRL), naming only where it was looked for. */
function readConfigFile(path: string, sources: Sources, where: string): string {
  try {
    return readFileSync(pathOf(path, sources, where), 'utf8');
  } catch (e) {
    if (isImppError(e)) throw e;
    throw new ImppError('ERR_CONFIG_INVALID', `${where}: cannot read the file`, { cause: e });
  }
}

/**
 * The PKI provider options and the TLS trust for a trust configuration entry. Revocation must be
 * something the server really does: `crl` needs the CRL files (they go both to Node's TLS and to
 * the provider, which refuses logins once a CRL is past its nextUpdate); `ocsp` is not
 * implemented and is refused rather than ignored.
 */
function pkiOptions(
  p: Extract<ProviderConfig, { type: 'pki' }>,
  sources: Sources,
): { readonly config: PkiProviderConfig; readonly trust: ClientCertificateTrust } {
  const where = `trust.authentication.providers[${p.id}]`;
  const crlPaths = p.crlPaths ?? [];
  if (p.revocation === 'ocsp') {
    throw configError(
      `${where}.revocation: ocsp is not supported by impp serve; use crl with crlPaths, or none`,
    );
  }
  if (p.revocation === 'crl' && crlPaths.length === 0) {
    throw configError(
      `${where}.crlPaths: revocation is crl (the default) but no CRL file is listed; ` +
        'list the CA’s CRL files, or set revocation: none',
    );
  }
  if (p.revocation === 'none' && crlPaths.length > 0) {
    throw configError(`${where}.crlPaths: set revocation: crl to use them`);
  }
  const ca = readAnchors(p.trustAnchors, sources, `${where}.trustAnchors`);
  const crl = crlPaths.map((path, i) => readConfigFile(path, sources, `${where}.crlPaths[${i}]`));
  return {
    config: {
      name: p.id,
      caPem: ca,
      ...(crl.length === 0 ? {} : { crlPem: crl }),
      sanRules:
        p.addressFrom === 'san-uri' ? [{ type: 'uri', prefix: 'im:' }] : [{ type: 'email' }],
    },
    trust: { ca: [ca], ...(crl.length === 0 ? {} : { crl }) },
  };
}

/** The Kerberos clock-skew default of MIT krb5 (krb5.conf `clockskew`), in seconds. */
const KRB5_DEFAULT_CLOCK_SKEW_SECONDS = 300;

/**
 * The Kerberos provider options for a trust configuration entry. The service principal
 * `service/host[@REALM]` becomes the GSS host-based name `service@host` (RFC 2743 §4.1) the
 * acceptor looks up in the keytab; users of `realm` map to `user@<domain>` (instance principals
 * and other realms are refused by the provider).
 */
function kerberosOptions(
  p: Extract<ProviderConfig, { type: 'kerberos' }>,
  sources: Sources,
): KerberosProviderConfig {
  const where = `trust.authentication.providers[${p.id}]`;
  if (p.maxClockSkewSeconds !== KRB5_DEFAULT_CLOCK_SKEW_SECONDS) {
    // The GSS-API library takes the allowed skew from krb5.conf only; accepting another value
    // here without applying it would be a setting that silently does nothing.
    throw configError(
      `${where}.maxClockSkewSeconds: impp serve cannot apply it per provider; set clockskew in krb5.conf instead`,
    );
  }
  const principal = p.servicePrincipal.split('@')[0] ?? '';
  const slash = principal.indexOf('/');
  return {
    name: p.id,
    service: `${principal.slice(0, slash)}@${principal.slice(slash + 1)}`,
    keytab: pathOf(p.keytab, sources, `${where}.keytab`),
    realms: [{ realm: p.realm }],
  };
}

/**
 * The provider plug-in for a wired provider entry, as a function that opens it: everything that
 * can fail on configuration (secrets, CA bundles, the library's own checks) fails here, before
 * any database or connection is opened.
 */
function providerPlugin(
  p: ProviderConfig,
  options: {
    readonly accountsDbPath: string;
    readonly iterations: number;
    readonly sources: Sources;
    /** Receives the TLS trust of a PKI provider. */
    readonly onClientCertificates: (trust: ClientCertificateTrust) => void;
  },
): () => ProviderPlugin {
  switch (p.type) {
    case 'local':
      return () =>
        localProvider({
          repository: new SqliteLocalAccountRepository(options.accountsDbPath),
          name: p.id,
          iterations: options.iterations,
        });
    case 'ldap': {
      const plugin = ldapProvider(ldapOptions(p, options.sources));
      return () => plugin;
    }
    case 'kerberos': {
      const plugin = kerberosProvider(kerberosOptions(p, options.sources));
      return () => plugin;
    }
    case 'pki': {
      const { config, trust } = pkiOptions(p, options.sources);
      const plugin = pkiProvider(config);
      options.onClientCertificates(trust);
      return () => plugin;
    }
    default:
      // providerFor only lets wired types through.
      throw configError(`trust.authentication.providers[${p.id}]: ${p.type} is not wired`);
  }
}

function mechanismPlugin(mechanism: AuthMechanismName): MechanismPlugin {
  switch (mechanism) {
    case 'SCRAM-SHA-256-PLUS':
      return scramServer({ plus: true });
    case 'SCRAM-SHA-256':
      return scramServer({ plus: false });
    case 'PLAIN':
      return plainServer();
    case 'GS2-KRB5-PLUS':
      // RFC 5801 §5 with tls-exporter (RFC 9266); registration fails without the native addon.
      return gs2Krb5Server({ plus: true });
    case 'GS2-KRB5':
      return gs2Krb5Server();
    case 'EXTERNAL':
      return externalServer();
  }
}

/**
 * Builds the authenticator for `trust` with the local accounts in `accountsDbPath`.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` when a mechanism needs a provider type that the server
 *   cannot run yet, when two providers answer one mechanism, or when a provider's secret or CA
 *   bundle cannot be read.
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
  /** Where `{ env }` secret references are read; `process.env` when absent. */
  readonly env?: SecretEnvironment;
  /**
   * The configuration file's folder, against which relative provider paths (secret files, CA
   * bundles, keytabs) are resolved; without it such paths must be absolute.
   */
  readonly baseDir?: string;
}): Promise<ConfiguredAuthenticator> {
  const { trust } = options;
  const sources: Sources = { env: options.env ?? process.env, baseDir: options.baseDir };
  const chosen = trust.authentication.mechanisms.map((mechanism) => ({
    mechanism,
    provider: providerFor(trust, mechanism),
  }));
  // Providers are built (and their secrets read) before anything is opened.
  const providers = new Map<string, () => ProviderPlugin>();
  let clientCertificates: ClientCertificateTrust | undefined;
  const onClientCertificates = (trust: ClientCertificateTrust): void => {
    // Several PKI providers would each need their own mechanism, which the config cannot
    // express (one provider per mechanism); merging anchors here keeps that rule simple.
    clientCertificates = {
      ca: [...(clientCertificates?.ca ?? []), ...trust.ca],
      ...(trust.crl === undefined && clientCertificates?.crl === undefined
        ? {}
        : { crl: [...(clientCertificates?.crl ?? []), ...(trust.crl ?? [])] }),
    };
  };
  for (const { provider } of chosen) {
    if (!providers.has(provider.id)) {
      providers.set(
        provider.id,
        providerPlugin(provider, {
          accountsDbPath: options.accountsDbPath,
          iterations: trust.policy.scram.iterations,
          sources,
          onClientCertificates,
        }),
      );
    }
  }
  const bindings: MechanismBinding[] = chosen.map((c) => ({
    mechanism: c.mechanism,
    provider: c.provider.id,
  }));
  const registry = new AuthRegistry({
    domain: trust.domain,
    serverSecret: serverSecret(options.domainKey),
  });
  try {
    for (const { mechanism } of chosen) {
      try {
        registry.registerMechanism(mechanismPlugin(mechanism));
      } catch (e) {
        // GS2-KRB5-PLUS without the native addon: a start-up error that says what to install.
        if (!isImppError(e, 'ERR_AUTH_PROVIDER_UNAVAILABLE')) throw e;
        throw new ImppError(
          'ERR_CONFIG_INVALID',
          `trust.authentication.mechanisms: ${mechanism}: ${e.message}`,
          { cause: e },
        );
      }
    }
    for (const open of providers.values()) await registry.registerProvider(open());
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
    return {
      authenticator,
      ...(clientCertificates === undefined ? {} : { clientCertificates }),
      close: () => registry.close(),
    };
  } catch (error) {
    await registry.close();
    throw error;
  }
}
