/**
 * Device enrolment statements: where authentication feeds sealing. When a user has authenticated
 * (by whatever SASL mechanism and credential provider), the home domain signs, with its Ed25519
 * domain key, a statement binding the new device's identity key to the user's address and
 * recording how the user authenticated. The statement goes into the domain's key log, and a
 * client applies its own policy ("only devices enrolled with Kerberos or a client certificate").
 *
 * Wire form (deterministic CBOR):
 * `[1, "user@domain", deviceId, identityKey, mechanism, provider, channelBound, authenticatedAt,
 *   issuedAt, certificate / null, signature]`; the signature covers
 * `["impp/enrolment/v1", 1, …every field before the signature…]`.
 *
 * What a statement proves: that the *domain* vouches for the binding. A domain that lies is caught
 * by the key log (the lie is public and permanent) and by safety numbers, or, in PKI mode, cannot
 * forge the enterprise CA's certificate over the device key.
 */
import {
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SIGNATURE_BYTES,
  assertSigningPublicKey,
  sign,
  verify,
  type SecretBytes,
} from '../crypto/index.js';
import { ImppError, isImppError } from '../errors.js';
import { formatAddress, parseAddress, parseDeviceAddress, type Address } from './address.js';
import {
  FieldReader,
  decodeCanonical,
  encodeCanonical,
  signingInput,
  type CanonicalValue,
} from './canonical.js';
import { verifyDeviceCertificate, type VerifiedDeviceCertificate } from './device-certificate.js';
import { assertTimestamp } from './identity.js';

/** Format version of an enrolment statement. */
export const ENROLMENT_VERSION = 1;
/** Domain-separation label of enrolment signatures. */
export const ENROLMENT_LABEL = 'impp/enrolment/v1';
/** Version of the key-log entry that wraps a statement. */
export const ENROLMENT_LOG_ENTRY_VERSION = 1;
/** Largest DER certificate a statement may carry. */
export const ENROLMENT_MAX_CERTIFICATE_BYTES = 16 * 1024;

/** SASL mechanism names, RFC 4422 §3.1: 1–20 of upper-case letters, digits, hyphen, underscore. */
const MECHANISM = /^[A-Z0-9_-]{1,20}$/;
/** Provider names: a short identifier from the domain's configuration. */
const PROVIDER = /^[A-Za-z0-9._:-]{1,64}$/;

/** The content of an enrolment statement. */
export interface EnrolmentStatementFields {
  readonly address: Address;
  readonly deviceId: string;
  /** The device's Ed25519 identity public key. */
  readonly identityKey: Uint8Array;
  /** SASL mechanism the user authenticated with, e.g. `'SCRAM-SHA-256-PLUS'`, `'GS2-KRB5'`. */
  readonly mechanism: string;
  /** Name of the credential provider that answered, e.g. `'ldap-corp'`. */
  readonly provider: string;
  /** `true` when the authentication was bound to the TLS channel (RFC 9266 tls-exporter). */
  readonly channelBound: boolean;
  /** When the user authenticated, ms since the epoch. */
  readonly authenticatedAt: number;
  /** When the domain signed the statement, ms since the epoch. */
  readonly issuedAt: number;
  /** Optional DER X.509 certificate from the enterprise CA over the identity key (PKI mode). */
  readonly certificate: Uint8Array | null;
}

/** A signed statement and its exact bytes. */
export interface EnrolmentStatement extends EnrolmentStatementFields {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
}

function invalid(message: string, cause?: unknown): never {
  throw new ImppError(
    'ERR_ENROLMENT_INVALID',
    `enrolment statement: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

function checkDeviceId(address: Address, deviceId: string): void {
  // Only the address module decides what a device id may be: parse the device address and
  // insist that it gives back exactly the id we were handed.
  let parsed: string;
  try {
    parsed = parseDeviceAddress(`${formatAddress(address)}/${deviceId}`).deviceId;
  } catch (cause) {
    if (isImppError(cause)) invalid('device id is malformed', cause);
    throw cause;
  }
  if (parsed !== deviceId) invalid('device id is malformed');
}

function fieldsOf(s: EnrolmentStatementFields): CanonicalValue[] {
  return [
    ENROLMENT_VERSION,
    formatAddress(s.address),
    s.deviceId,
    s.identityKey,
    s.mechanism,
    s.provider,
    s.channelBound,
    s.authenticatedAt,
    s.issuedAt,
    s.certificate,
  ];
}

function checkFields(s: EnrolmentStatementFields): void {
  checkDeviceId(s.address, s.deviceId);
  if (!MECHANISM.test(s.mechanism)) invalid('mechanism is not a SASL mechanism name');
  if (!PROVIDER.test(s.provider)) invalid('provider name is malformed');
  if (s.certificate !== null && s.certificate.length > ENROLMENT_MAX_CERTIFICATE_BYTES) {
    invalid('certificate is too large');
  }
}

/**
 * The domain signs an enrolment statement (server side, after authentication succeeded).
 *
 * @example
 * ```ts
 * const statement = issueEnrolmentStatement({
 *   address, deviceId: 'laptop', identityKey, mechanism: 'GS2-KRB5', provider: 'corp-kdc',
 *   channelBound: true, authenticatedAt: Date.now(), issuedAt: Date.now(), certificate: null,
 * }, domainKey.secretKey);
 * keyLog.append(enrolmentLogEntry(statement));
 * ```
 */
export function issueEnrolmentStatement(
  fields: EnrolmentStatementFields,
  domainKey: SecretBytes,
): EnrolmentStatement {
  const s: EnrolmentStatementFields = {
    address: parseAddress(formatAddress(fields.address)),
    deviceId: fields.deviceId,
    identityKey: Uint8Array.from(assertSigningPublicKey(fields.identityKey, 'identityKey')),
    mechanism: fields.mechanism,
    provider: fields.provider,
    channelBound: fields.channelBound,
    authenticatedAt: assertTimestamp(fields.authenticatedAt, 'authenticatedAt'),
    issuedAt: assertTimestamp(fields.issuedAt, 'issuedAt'),
    certificate: fields.certificate === null ? null : Uint8Array.from(fields.certificate),
  };
  if (typeof s.channelBound !== 'boolean') {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'channelBound must be a boolean');
  }
  checkFields(s);
  const fieldValues = fieldsOf(s);
  const signature = sign(domainKey, signingInput(ENROLMENT_LABEL, fieldValues));
  return { ...s, signature, bytes: encodeCanonical([...fieldValues, signature]) };
}

function decode(bytes: Uint8Array): EnrolmentStatement {
  const code = 'ERR_ENROLMENT_INVALID';
  const what = 'enrolment statement';
  const r = FieldReader.of(decodeCanonical(bytes, code, what), 11, code, what);
  const version = r.uint('version');
  if (version !== ENROLMENT_VERSION) invalid(`unsupported version ${version}`);
  const addressText = r.text('address');
  let address: Address;
  try {
    address = parseAddress(addressText);
  } catch (cause) {
    invalid('address is malformed', cause);
  }
  if (formatAddress(address) !== addressText) invalid('address is not in canonical form');
  const s: EnrolmentStatementFields = {
    address,
    deviceId: r.text('deviceId', 64),
    identityKey: r.bytes('identityKey', ED25519_PUBLIC_KEY_BYTES),
    mechanism: r.text('mechanism', 20),
    provider: r.text('provider', 64),
    channelBound: r.bool('channelBound'),
    authenticatedAt: r.uint('authenticatedAt'),
    issuedAt: r.uint('issuedAt'),
    certificate: r.optionalBytes('certificate'),
  };
  const signature = r.bytes('signature', ED25519_SIGNATURE_BYTES);
  checkFields(s);
  return { ...s, signature, bytes: Uint8Array.from(bytes) };
}

/** Options of {@link verifyEnrolmentStatement}. */
export interface VerifyEnrolmentOptions {
  /** The Ed25519 domain key of the address's home domain, obtained out of band (pinned). */
  readonly domainKey: Uint8Array;
  /** When given, the statement must be for this address. */
  readonly address?: Address;
  /** DER CA certificates trusted to certify device keys; when absent certificates are not checked. */
  readonly certificateAnchors?: readonly Uint8Array[];
  /** Time used to check the certificate's validity (default now). */
  readonly now?: number;
}

/** A statement whose domain signature verified, with the state of its certificate. */
export interface VerifiedEnrolment {
  readonly statement: EnrolmentStatement;
  /**
   * `'absent'`: no certificate; `'verified'`: checked against `certificateAnchors`;
   * `'unchecked'`: present but no anchors were given, so it proves nothing.
   */
  readonly certificateStatus: 'absent' | 'verified' | 'unchecked';
  readonly certificate?: VerifiedDeviceCertificate;
}

/**
 * Parses and verifies an enrolment statement under the domain key. Throws
 * `ERR_ENROLMENT_INVALID` on any failure: malformed or non-canonical bytes, unknown version,
 * wrong address, bad signature, or a certificate that does not verify against the anchors.
 *
 * @example
 * ```ts
 * const { statement } = verifyEnrolmentStatement(bytes, { domainKey, address: bob });
 * ```
 */
export function verifyEnrolmentStatement(
  bytes: Uint8Array,
  options: VerifyEnrolmentOptions,
): VerifiedEnrolment {
  const domainKey = assertSigningPublicKey(options.domainKey, 'domainKey');
  const statement = decode(bytes);
  if (
    options.address !== undefined &&
    formatAddress(options.address) !== formatAddress(statement.address)
  ) {
    invalid('statement is for another address');
  }
  if (!verify(domainKey, signingInput(ENROLMENT_LABEL, fieldsOf(statement)), statement.signature)) {
    invalid('signature does not verify under the domain key');
  }
  if (statement.certificate === null) return { statement, certificateStatus: 'absent' };
  if (options.certificateAnchors === undefined)
    return { statement, certificateStatus: 'unchecked' };
  const certificate = verifyDeviceCertificate(statement.certificate, {
    trustAnchors: options.certificateAnchors,
    address: statement.address,
    identityKey: statement.identityKey,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return { statement, certificateStatus: 'verified', certificate };
}

/**
 * The key-log entry for a statement: `[1, "enrolment", statementBytes]` in deterministic CBOR.
 * The tag leaves room for other entry kinds (e.g. revocations) without ambiguity.
 *
 * @example
 * ```ts
 * const { index } = keyLog.append(enrolmentLogEntry(statement));
 * ```
 */
export function enrolmentLogEntry(statement: EnrolmentStatement): Uint8Array {
  return encodeCanonical([ENROLMENT_LOG_ENTRY_VERSION, 'enrolment', statement.bytes]);
}

/**
 * Extracts the statement bytes from a key-log entry (not yet verified: pass them to
 * {@link verifyEnrolmentStatement}).
 *
 * @example
 * ```ts
 * const verified = verifyEnrolmentStatement(statementFromLogEntry(entry), { domainKey });
 * ```
 */
export function statementFromLogEntry(entry: Uint8Array): Uint8Array {
  const code = 'ERR_ENROLMENT_INVALID';
  const what = 'key log entry';
  const r = FieldReader.of(decodeCanonical(entry, code, what), 3, code, what);
  const version = r.uint('version');
  if (version !== ENROLMENT_LOG_ENTRY_VERSION) invalid(`unsupported log entry version ${version}`);
  if (r.text('kind', 32) !== 'enrolment') invalid('log entry is not an enrolment');
  return r.bytes('statement');
}

/** A client's rule for which enrolments it accepts. Every field is optional; absent means "any". */
export interface EnrolmentPolicy {
  /** Accept only these SASL mechanisms, e.g. `['GS2-KRB5', 'EXTERNAL']`. */
  readonly requireMechanisms?: readonly string[];
  /** Accept only these provider names. */
  readonly requireProviders?: readonly string[];
  /** Require the authentication to have been channel-bound. */
  readonly requireChannelBinding?: boolean;
  /** Require a certificate that verified against the anchors. */
  readonly requireCertificate?: boolean;
  /** Maximum age of the authentication in ms at evaluation time. */
  readonly maxAge?: number;
  /** Tolerated clock skew for timestamps in the future, ms (default 5 minutes). */
  readonly maxClockSkew?: number;
}

/** Why a policy refused an enrolment. */
export type EnrolmentRefusal =
  'mechanism' | 'provider' | 'channel-binding' | 'certificate' | 'too-old' | 'from-the-future';

/** The outcome of {@link evaluateEnrolmentPolicy}. */
export type EnrolmentDecision =
  | { readonly accept: true }
  | { readonly accept: false; readonly reason: EnrolmentRefusal; readonly message: string };

/**
 * Applies a client policy to a verified enrolment.
 *
 * @example
 * ```ts
 * const decision = evaluateEnrolmentPolicy(verified, {
 *   requireMechanisms: ['GS2-KRB5', 'EXTERNAL'], requireChannelBinding: true, maxAge: 90 * 86_400_000,
 * });
 * if (!decision.accept) warn(decision.message);
 * ```
 */
export function evaluateEnrolmentPolicy(
  verified: VerifiedEnrolment,
  policy: EnrolmentPolicy,
  now = Date.now(),
): EnrolmentDecision {
  const s = verified.statement;
  const skew = policy.maxClockSkew ?? 5 * 60_000;
  // A NaN, negative or infinite limit would make the comparisons below silently pass (NaN
  // compares false), turning a typo into "no limit": refuse it instead. Absent means no limit.
  for (const [name, value] of [
    ['maxAge', policy.maxAge],
    ['maxClockSkew', skew],
    ['now', now],
  ] as const) {
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `${name} must be a finite, non-negative number`);
    }
  }
  if (policy.requireMechanisms !== undefined && !policy.requireMechanisms.includes(s.mechanism)) {
    return {
      accept: false,
      reason: 'mechanism',
      message: `enrolled with ${s.mechanism}, which the policy does not accept`,
    };
  }
  if (policy.requireProviders !== undefined && !policy.requireProviders.includes(s.provider)) {
    return {
      accept: false,
      reason: 'provider',
      message: 'enrolled through a provider the policy does not accept',
    };
  }
  if (policy.requireChannelBinding === true && !s.channelBound) {
    return {
      accept: false,
      reason: 'channel-binding',
      message: 'authentication was not channel-bound',
    };
  }
  if (policy.requireCertificate === true && verified.certificateStatus !== 'verified') {
    return { accept: false, reason: 'certificate', message: 'no verified device certificate' };
  }
  if (s.authenticatedAt > now + skew || s.issuedAt > now + skew) {
    return {
      accept: false,
      reason: 'from-the-future',
      message: 'statement is dated in the future',
    };
  }
  if (policy.maxAge !== undefined && now - s.authenticatedAt > policy.maxAge) {
    return {
      accept: false,
      reason: 'too-old',
      message: 'authentication is older than the policy allows',
    };
  }
  return { accept: true };
}
