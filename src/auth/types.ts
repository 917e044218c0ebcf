/**
 * The contracts of impp's authentication framework (SASL-shaped, RFC 4422).
 *
 * Three kinds of plug-in meet here:
 *
 * - a **mechanism** ({@link ServerMechanismFactory} / {@link ClientMechanismFactory}) is a small
 *   step machine that speaks one SASL mechanism (SCRAM-SHA-256-PLUS, PLAIN, GS2-KRB5, EXTERNAL…);
 * - a **credential provider** ({@link CredentialProvider}) answers the mechanism's questions
 *   ("what is the SCRAM verifier of `alice`?", "is this password right?", "which address is this
 *   Kerberos principal?") from a store, a directory, a KDC or a CA;
 * - an **audit sink** ({@link AuditSink}) receives one event per success and per failure.
 *
 * The core (`registry.ts`, `server.ts`, `client.ts`) never imports a concrete mechanism or
 * provider: they are registered as factories `(deps) => plugin` with declared metadata, and the
 * registry checks the metadata (fastify's `register`, xmpp.js's mechanism objects).
 *
 * STABILITY: other modules (the enterprise providers: LDAP, Kerberos, PKI) build on these types.
 * Changes are additive only: new optional members, new union members.
 *
 * @example
 * ```ts
import type { CredentialProvider } from './types.js';
 * const provider: CredentialProvider = {
 *   name: 'example', kind: 'custom', capabilities: ['verify-password'],
 *   async verifyPassword(username, password) { return { status: 'unknown' }; },
 * };
 * ```
 */
import type { SecretBytes } from '../crypto/index.js';
import type { AuthChecks } from './checks.js';
import { ImppError, type ImppErrorCode } from '../errors.js';
import type { Address } from '../trust/address.js';
import type { PrincipalKind } from '../trust/principal.js';

// ────────────────────────────────────────────────────────────────────────────────────────────
// Channel
// ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * What the transport knows about the connection an exchange runs on. Filled in by the transport
 * from the *established* TLS socket, never from anything the peer sent inside the SASL exchange.
 *
 * @example
 * ```ts
 * const channel: ChannelInfo = {
 *   secure: true,
 *   tlsVersion: socket.getProtocol() ?? undefined,
 *   tlsExporter: new Uint8Array(socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding')),
 *   remoteAddress: socket.remoteAddress,
 * };
 * ```
 */
export interface ChannelInfo {
  /** `true` when the exchange runs inside TLS (TLS 1.3 in impp; see {@link tlsVersion}). */
  readonly secure: boolean;
  /** The negotiated protocol as Node reports it, e.g. `'TLSv1.3'`. */
  readonly tlsVersion?: string;
  /**
   * The RFC 9266 `tls-exporter` channel-binding value: 32 bytes from
   * `TLSSocket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding')` with an empty context
   * (RFC 9266 §2, RFC 8446 §7.5). Absent when the channel cannot provide it (no TLS, or TLS
   * below 1.3, for which RFC 9266 §3 says the exporter must not be used without extended
   * master secret); mechanisms that need binding are then not offered.
   */
  readonly tlsExporter?: Uint8Array;
  /** DER of the peer's leaf certificate, when the peer presented one. */
  readonly peerCertificate?: Uint8Array;
  /** DER of the rest of the chain the peer presented (leaf excluded), closest issuer first. */
  readonly peerCertificateChain?: readonly Uint8Array[];
  /**
   * `true` when Node's TLS layer validated the peer certificate chain against the configured
   * trust anchors (`socket.authorized`). Meaningless when {@link peerCertificate} is absent.
   */
  readonly peerCertificateVerified?: boolean;
  /** The peer's IP address as seen by the server (used for rate limits and audit). */
  readonly remoteAddress?: string;
}

/** The channel-binding types a mechanism can use. Only RFC 9266 `tls-exporter` is supported. */
export type ChannelBindingType = 'none' | 'tls-exporter';

// ────────────────────────────────────────────────────────────────────────────────────────────
// Identities and results
// ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Kind of principal (`'person'`, `'service'`, `'device-entity'`), as the trust module defines it
 * and the principal's home domain asserts it (never inferred from the name).
 */
export type { PrincipalKind } from '../trust/principal.js';

/**
 * Facts a provider knows about an identity beyond its address (e.g. directory groups). Values are
 * plain data, never secrets.
 */
export interface AuthAttributes {
  /** Group names (directory groups, Kerberos realm groups…), as the provider reports them. */
  readonly groups?: readonly string[];
  /** A display name, if the provider has one. */
  readonly displayName?: string;
  /** Further provider-specific plain values. */
  readonly [key: string]: string | number | boolean | readonly string[] | undefined;
}

/**
 * An identity as a provider answers it: who the credential belongs to.
 *
 * @example
 * ```ts
 * const id: ProviderIdentity = { principal: parseAddress('alice@example.com'), kind: 'person' };
 * ```
 */
export interface ProviderIdentity {
  readonly principal: Address;
  readonly kind: PrincipalKind;
  readonly attributes?: AuthAttributes;
}

/**
 * The result of a successful exchange: who, and how, for the session and for the audit trail.
 *
 * @example
 * ```ts
 * if (result.channelBound) session.markBound();
 * log.info({ who: formatAddress(result.principal), how: result.mechanism });
 * ```
 */
export interface AuthResult {
  readonly principal: Address;
  readonly kind: PrincipalKind;
  /** SASL mechanism name, e.g. `'SCRAM-SHA-256-PLUS'`. */
  readonly mechanism: string;
  /** Name of the provider that vouched for the credential. */
  readonly provider: string;
  /** `true` when the exchange was cryptographically bound to this TLS channel (RFC 9266). */
  readonly channelBound: boolean;
  /** Milliseconds since the epoch when the exchange succeeded. */
  readonly authenticatedAt: number;
  readonly attributes: AuthAttributes;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Failures
// ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Why an exchange failed, for the audit trail ONLY. The wire never sees this: see
 * {@link AuthWireFailure} and `server.ts`, which collapse all credential reasons into one answer.
 */
export type AuthFailureReason =
  /** The authentication identity is not known to the provider. */
  | 'unknown-user'
  /** Password, proof, ticket or certificate did not verify. */
  | 'bad-credential'
  /** The account exists and is disabled. */
  | 'disabled'
  /** The client message broke the mechanism's syntax or size limits. */
  | 'malformed'
  /** The channel-binding data did not match this channel (e.g. a re-terminating proxy). */
  | 'channel-binding-mismatch'
  /** A downgrade was detected (GS2 `y` flag while -PLUS was offered; stripped mechanism list). */
  | 'downgrade'
  /** A proof, nonce or ticket was replayed. */
  | 'replay'
  /** An authorization identity different from the authentication identity was requested. */
  | 'authzid-refused'
  /** Per-account, per-source or global rate limit. */
  | 'rate-limited'
  /** The mechanism is not offered on this channel, or unknown. */
  | 'mechanism-unavailable'
  /** The mechanism requires TLS and the channel is not secure. */
  | 'insecure-channel'
  /** The provider (directory, KDC…) could not be reached or answered an error. */
  | 'provider-unavailable'
  /** The client aborted, the exchange timed out, or it took too many steps. */
  | 'aborted'
  /** A bug: an unexpected exception inside a mechanism or provider. */
  | 'internal';

/**
 * What a failed exchange looks like on the wire (names follow RFC 6120 §6.5 SASL errors).
 * Unknown user, wrong secret, disabled account, replay and channel-binding mismatch are ALL
 * `'not-authorized'` with the same bytes: no user enumeration.
 */
export type AuthWireFailure =
  | 'not-authorized'
  | 'malformed-request'
  | 'invalid-mechanism'
  | 'encryption-required'
  | 'temporary-auth-failure'
  | 'aborted';

/**
 * The error a mechanism or provider throws to end an exchange. It is an {@link ImppError} (so
 * `isImppError` works) that additionally carries the audit-only {@link AuthFailureReason}. Its
 * message is for server logs; it never contains passwords, proofs, tickets or keys.
 *
 * @example
 * ```ts
 * throw new AuthError('malformed', 'client-first-message: missing nonce attribute');
 * ```
 */
export class AuthError extends ImppError {
  readonly reason: AuthFailureReason;

  constructor(reason: AuthFailureReason, message: string, options?: { cause?: unknown }) {
    super(authErrorCode(reason), message, options);
    this.reason = reason;
    this.name = 'AuthError';
  }
}

/** The error code an {@link AuthFailureReason} is reported under. */
export function authErrorCode(reason: AuthFailureReason): ImppErrorCode {
  switch (reason) {
    case 'malformed':
      return 'ERR_AUTH_MALFORMED';
    case 'downgrade':
      return 'ERR_AUTH_DOWNGRADE';
    case 'rate-limited':
      return 'ERR_AUTH_RATE_LIMITED';
    case 'mechanism-unavailable':
      return 'ERR_AUTH_MECHANISM_UNAVAILABLE';
    case 'insecure-channel':
      return 'ERR_AUTH_INSECURE_CHANNEL';
    case 'provider-unavailable':
      return 'ERR_AUTH_PROVIDER_UNAVAILABLE';
    default:
      return 'ERR_AUTH_FAILED';
  }
}

/** `true` when `value` is an {@link AuthError}. */
export function isAuthError(value: unknown): value is AuthError {
  return value instanceof AuthError;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Mechanisms
// ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * What a credential provider can answer. A mechanism declares the one capability it needs
 * ({@link MechanismMetadata.providerCapability}) and can only be paired with providers that have it.
 *
 * - `'scram-sha-256'`: {@link CredentialProvider.getScramCredential} (stored verifiers);
 * - `'verify-password'`: {@link CredentialProvider.verifyPassword} (cleartext, e.g. LDAP bind);
 * - `'kerberos'`: {@link CredentialProvider.mapKerberosPrincipal};
 * - `'certificate'`: {@link CredentialProvider.mapCertificate}.
 */
export type ProviderCapability = 'scram-sha-256' | 'verify-password' | 'kerberos' | 'certificate';

/**
 * Declared metadata of a mechanism, checked at registration (`registry.ts`):
 * the name must be a valid SASL name (RFC 4422 §3.1), a mechanism that needs the cleartext
 * password must need a secure channel, a mechanism with channel binding must need a secure
 * channel, and `-PLUS` names (RFC 5802 §4) must use channel binding and vice versa.
 *
 * @example
 * ```ts
 * const plain: MechanismMetadata = { name: 'PLAIN', needsSecureChannel: true,
 *   channelBinding: 'none', needsCleartextPassword: true, providerCapability: 'verify-password' };
 * ```
 */
export interface MechanismMetadata {
  /** SASL mechanism name: 1..20 characters of `[A-Z0-9-_]` (RFC 4422 §3.1). */
  readonly name: string;
  /** The mechanism is offered only inside TLS. */
  readonly needsSecureChannel: boolean;
  /** The channel binding the mechanism requires; `'tls-exporter'` needs {@link ChannelInfo.tlsExporter}. */
  readonly channelBinding: ChannelBindingType;
  /** The client sends the cleartext password to the server (PLAIN). */
  readonly needsCleartextPassword: boolean;
  /** The provider capability the mechanism calls. */
  readonly providerCapability: ProviderCapability;
}

/**
 * One step of a server-side exchange.
 *
 * - `challenge`: send these bytes to the client and wait for its response;
 * - `success`: the exchange is over; `additionalData` (e.g. SCRAM's server-final-message
 *   `v=…`) goes with the success outcome (RFC 4422 §3.6).
 *
 * Failure is never a value: the mechanism throws an {@link AuthError}.
 */
export type ServerStep =
  | { readonly type: 'challenge'; readonly challenge: Uint8Array }
  | {
      readonly type: 'success';
      readonly additionalData?: Uint8Array;
      /** Who authenticated, as the provider answered. */
      readonly identity: ProviderIdentity;
      /** `true` when the client proved knowledge of this channel's binding data. */
      readonly channelBound: boolean;
    };

/**
 * Server side of one exchange. Created fresh for every exchange; never reused.
 *
 * `step(null)` starts an exchange without an initial response (RFC 4422 §3.3); `step(bytes)`
 * processes the client's next message. After a `success` step or a throw, the mechanism is done
 * and further calls throw.
 *
 * @example
 * ```ts
 * let out = await mech.step(initialResponse);
 * while (out.type === 'challenge') out = await mech.step(await send(out.challenge));
 * ```
 */
export interface ServerMechanism {
  readonly name: string;
  step(input: Uint8Array | null): Promise<ServerStep>;
  /** Wipes per-exchange secrets. Called by the session in every outcome. */
  dispose?(): void;
}

/**
 * What the server session gives a mechanism for one exchange.
 *
 * NOT VERIFIED when a mechanism is created: anything about the client. The channel facts come from
 * the transport's TLS socket and are trustworthy; everything the mechanism reads from `step`
 * input is attacker-controlled.
 */
export interface ServerMechanismContext {
  /** The domain this server authenticates for. */
  readonly domain: string;
  readonly channel: ChannelInfo;
  /** The provider this mechanism is paired with by policy. */
  readonly provider: CredentialProvider;
  /** The mechanism names this server offered on this channel, in order (for downgrade checks). */
  readonly offeredMechanisms: readonly string[];
  /**
   * A mechanism MUST call this as soon as it has parsed the claimed authentication identity and
   * BEFORE it asks the provider anything about it. The session applies the per-account rate limit
   * here (throws an {@link AuthError} `'rate-limited'`) and records the name for the audit event.
   * Nothing about `authcid` is verified yet: it is what the client typed.
   */
  claimIdentity(authcid: string): Promise<void>;
  /**
   * Checks in force for this exchange; absent means every check is on. Only the threat suite's
   * own tests switch one off (through the server's test-only defences), to show that the suite
   * notices.
   */
  readonly checks?: AuthChecks;
}

/**
 * Dependencies a mechanism plug-in receives at registration.
 */
export interface MechanismDeps {
  /**
   * A per-server secret (≥ 32 bytes) for derivations that must be stable across restarts and
   * unpredictable to clients, e.g. SCRAM's fake salt for unknown users.
   */
  readonly serverSecret: SecretBytes;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly now: () => number;
}

/**
 * A server mechanism factory: metadata plus a constructor for one exchange.
 *
 * @example
 * ```ts
 * const factory = registry.mechanism('SCRAM-SHA-256-PLUS');
 * const mech = factory.create(ctx);
 * ```
 */
export interface ServerMechanismFactory {
  readonly metadata: MechanismMetadata;
  create(ctx: ServerMechanismContext): ServerMechanism;
}

/** A mechanism plug-in as registered: `(deps) => factory` (xmpp.js / fastify style). */
export type MechanismPlugin = (deps: MechanismDeps) => ServerMechanismFactory;

/**
 * Client side of one exchange.
 *
 * `start()` returns the initial response (or `null` when the mechanism has none); `step` answers
 * each server challenge; `finish` checks the server's additional data on success (SCRAM's `v=`,
 * compared in constant time) and throws when the server did not prove itself.
 */
export interface ClientMechanism {
  readonly name: string;
  start(): Promise<Uint8Array | null>;
  step(challenge: Uint8Array): Promise<Uint8Array>;
  finish(additionalData: Uint8Array | null): Promise<void>;
  /** `true` once the exchange used channel binding. */
  readonly channelBound: boolean;
  dispose?(): void;
}

/**
 * What the client gives a mechanism. NOT VERIFIED: `offeredMechanisms` comes from the server over
 * the channel and may have been altered by an attacker before TLS (never, inside TLS 1.3) or by a
 * re-terminating proxy; mechanisms use it only for RFC 5802 §6 downgrade signalling.
 */
export interface ClientMechanismContext {
  readonly channel: ChannelInfo;
  readonly offeredMechanisms: readonly string[];
}

/**
 * A client mechanism factory. Credentials are bound when the factory is made (e.g.
 * `scramClient({ username, password })`), so one factory = one set of credentials.
 */
export interface ClientMechanismFactory {
  readonly metadata: MechanismMetadata;
  create(ctx: ClientMechanismContext): ClientMechanism;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Credential providers
// ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A SCRAM stored verifier (RFC 5802 §3): never the password.
 * `storedKey = H(ClientKey)`, `serverKey = HMAC(SaltedPassword, "Server Key")`.
 */
export interface ScramCredential {
  readonly salt: Uint8Array;
  readonly iterations: number;
  readonly storedKey: Uint8Array;
  readonly serverKey: Uint8Array;
}

/** Identity lookup answer. `'disabled'` still names the identity (for audit). */
export type IdentityLookup =
  | { readonly status: 'ok'; readonly identity: ProviderIdentity }
  | { readonly status: 'disabled'; readonly identity: ProviderIdentity }
  | { readonly status: 'unknown' };

/**
 * SCRAM verifier lookup. A disabled account still returns its verifier so that the exchange
 * looks the same as for an active one until the final uniform failure.
 */
export type ScramCredentialLookup =
  | {
      readonly status: 'ok' | 'disabled';
      readonly identity: ProviderIdentity;
      readonly credential: ScramCredential;
    }
  | {
      readonly status: 'unknown';
      /**
       * The iteration count this provider uses for new verifiers, so that the fake challenge for an
       * unknown user looks like a real one (the mechanism falls back to its own default).
       */
      readonly iterationsHint?: number;
    };

/** Cleartext password check answer. */
export type PasswordVerdict = IdentityLookup | { readonly status: 'bad-password' };

/**
 * Certificate evidence passed to {@link CredentialProvider.mapCertificate}.
 */
export interface CertificateEvidence {
  /** DER of the leaf certificate. */
  readonly der: Uint8Array;
  /** DER of the presented chain, leaf excluded. */
  readonly chain: readonly Uint8Array[];
  /** `true` when Node's TLS layer validated the chain against the configured trust anchors. */
  readonly chainVerified: boolean;
  /** Checks in force (absent: all); only the threat suite's own tests switch one off. */
  readonly checks?: AuthChecks;
}

/**
 * A credential provider: the small async interface a company implements to plug its own user
 * store in. Every method is optional except the metadata; the declared `capabilities` must match
 * the methods present (checked at registration).
 *
 * Provider methods MUST NOT throw for "no such user", "wrong password" or "disabled": they answer
 * with a status. They throw an {@link AuthError} `'provider-unavailable'` when the backing service
 * cannot answer. They never log secrets.
 *
 * @example
 * ```ts
 * const p: CredentialProvider = {
 *   name: 'corp-ldap', kind: 'ldap', capabilities: ['verify-password'],
 *   async verifyPassword(user, password) { return ldapBind(user, password); },
 * };
 * ```
 */
export interface CredentialProvider {
  /** Unique name under which policy refers to this provider, e.g. `'local'`, `'corp-ldap'`. */
  readonly name: string;
  /** What kind of backend, e.g. `'local'`, `'ldap'`, `'kerberos'`, `'pki'`, or a custom kind. */
  readonly kind: string;
  readonly capabilities: readonly ProviderCapability[];

  /**
   * SCRAM stored verifier for `username`.
   *
   * NOT VERIFIED when called: the caller has proven nothing yet. `username` is the client's
   * claim after SASLprep (RFC 4013) and SCRAM name unescaping; it has passed the rate limit.
   */
  getScramCredential?(username: string): Promise<ScramCredentialLookup>;

  /**
   * Checks a cleartext password (e.g. an LDAP simple bind as the user).
   *
   * NOT VERIFIED when called: both `username` and `password` are the client's claims. The
   * password is non-empty (the PLAIN mechanism refuses empty passwords before calling, because
   * Active Directory treats an empty-password bind as an anonymous bind that succeeds). The
   * channel is TLS. The provider must not log, store or echo the password.
   */
  verifyPassword?(username: string, password: string): Promise<PasswordVerdict>;

  /**
   * Maps a Kerberos principal name (`user@REALM`) to an impp identity.
   *
   * VERIFIED when called: the GSS-API context was established with the service keytab, so the
   * KDC vouches for `principal`. NOT VERIFIED: that the principal is allowed to use this domain —
   * the mapping rules decide that.
   */
  mapKerberosPrincipal?(principal: string): Promise<IdentityLookup>;

  /**
   * Maps a TLS client certificate to an impp identity.
   *
   * VERIFIED when called (only if `evidence.chainVerified`): Node's TLS layer built and checked the
   * chain to a configured trust anchor. NOT VERIFIED: revocation (unless the provider checks its
   * CRL), key usage, and the subject alternative name → address mapping — the provider does those.
   */
  mapCertificate?(evidence: CertificateEvidence): Promise<IdentityLookup>;

  /**
   * Accounts whose credential or state (password, disabled) changed at or after `since`
   * (milliseconds since the epoch), possibly written by another process (`impp user passwd`).
   * The server polls this to end the sessions that authenticated before the change (T21).
   * Providers that cannot tell (a directory) leave it out.
   */
  changedAccounts?(since: number): Promise<readonly AccountChange[]>;

  /** Releases connections and handles. */
  close?(): Promise<void>;
}

/** One changed account, as {@link CredentialProvider.changedAccounts} reports it. */
export interface AccountChange {
  /** `user@domain`, canonical. */
  readonly address: string;
  /** When the credential or state last changed (milliseconds since the epoch). */
  readonly changedAt: number;
}

/** Dependencies a provider plug-in receives at registration. */
export interface ProviderDeps {
  /** The domain the provider authenticates for (addresses it returns must be in it). */
  readonly domain: string;
  readonly now: () => number;
}

/** A provider plug-in as registered: `(deps) => provider`, possibly asynchronous. */
export type ProviderPlugin = (
  deps: ProviderDeps,
) => CredentialProvider | Promise<CredentialProvider>;

// ────────────────────────────────────────────────────────────────────────────────────────────
// Audit
// ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * One authentication event. Contains NO secrets: no password, proof, nonce, salt, ticket, key or
 * certificate bytes. `claimedIdentity` is the name the client typed (it may be a mistyped
 * password in rare cases; sinks that ship to third parties may choose to hash it).
 */
export interface AuditEvent {
  readonly type: 'auth.success' | 'auth.failure';
  /** Milliseconds since the epoch. */
  readonly at: number;
  /** Random id of the exchange, for correlation with transport logs. */
  readonly exchangeId: string;
  readonly domain: string;
  readonly mechanism: string | null;
  readonly provider: string | null;
  /** The authentication identity the client claimed, if the mechanism got that far. */
  readonly claimedIdentity: string | null;
  /** The authenticated principal (`user@domain`) on success. */
  readonly principal: string | null;
  /** The failure reason; `null` on success. */
  readonly reason: AuthFailureReason | null;
  /** What the wire saw on failure; `null` on success. */
  readonly wire: AuthWireFailure | null;
  readonly secureChannel: boolean;
  readonly channelBound: boolean;
  readonly remoteAddress: string | null;
  /** Duration of the exchange in milliseconds. */
  readonly durationMs: number;
}

/**
 * Where audit events go. `record` must not throw for ordinary input; if it returns a promise, the
 * session awaits it before answering the client so that no outcome escapes the trail.
 */
export interface AuditSink {
  record(event: AuditEvent): void | Promise<void>;
}

// ────────────────────────────────────────────────────────────────────────────────────────────
// Policy
// ────────────────────────────────────────────────────────────────────────────────────────────

/** Pairs a mechanism with the provider that answers it. */
export interface MechanismBinding {
  readonly mechanism: string;
  readonly provider: string;
}

/**
 * Rate-limit parameters (see `rate-limit.ts` for the algorithm and why it is not a lockout).
 */
export interface RateLimitPolicy {
  /** Failures allowed per account before back-off starts. */
  readonly accountBurst: number;
  /** Failures allowed per source address before back-off starts. */
  readonly sourceBurst: number;
  /** First back-off delay in milliseconds; doubles per further failure. */
  readonly baseDelayMs: number;
  /** Upper bound of the back-off delay: a penalty never grows beyond this (no hard lockout). */
  readonly maxDelayMs: number;
  /** A penalty decays fully after this long without failures. */
  readonly forgetAfterMs: number;
  /** Global cap: exchanges started per second across all clients. */
  readonly globalPerSecond: number;
}

/**
 * Authentication policy of one domain. Allowed mechanisms and their order come from here, never
 * from the wire.
 *
 * @example
 * ```ts
 * const policy: AuthPolicy = {
 *   domain: 'example.com',
 *   mechanisms: [
 *     { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
 *     { mechanism: 'SCRAM-SHA-256', provider: 'local' },
 *   ],
 *   rateLimit: DEFAULT_RATE_LIMIT, limits: DEFAULT_EXCHANGE_LIMITS,
 * };
 * ```
 */
export interface AuthPolicy {
  readonly domain: string;
  /** Mechanisms in order of preference, each with its provider. */
  readonly mechanisms: readonly MechanismBinding[];
  readonly rateLimit: RateLimitPolicy;
  readonly limits: ExchangeLimits;
}

/** Bounds on one exchange: a slow or hostile client costs little. */
export interface ExchangeLimits {
  /** Maximum size of any single client message, in bytes. */
  readonly maxMessageBytes: number;
  /** Maximum number of client messages in one exchange. */
  readonly maxSteps: number;
  /** Time-out for the whole exchange, in milliseconds. */
  readonly timeoutMs: number;
  /**
   * Minimum time from start to a failure answer, in milliseconds, so that failures from different
   * paths (unknown user, wrong password, directory round-trip) take similar time on the wire.
   */
  readonly minFailureMs: number;
}
