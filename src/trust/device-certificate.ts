/**
 * PKI mode: the domain's enterprise CA certifies a device's Ed25519 identity key directly, in an
 * X.509 certificate (RFC 5280) whose subjectAltName carries the principal's `im:` URI (RFC 3860)
 * and whose subject CN names the device (`user@domain/deviceId`).
 *
 * Certificates are built and read with @peculiar/x509 (on Node's WebCrypto, which supports
 * Ed25519); the CA signature and issuer/subject chaining are checked by the platform
 * (`node:crypto` `X509Certificate.checkIssued` and `verify`). Only certificates issued directly by
 * one of the given trust anchors are accepted: no intermediates, no revocation checking here
 * (the PKI provider of src/auth owns CRLs); both are stated limits, not oversights.
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { ImppError } from '../errors.js';
import {
  formatAddress,
  formatDeviceAddress,
  parseAddress,
  sameAddress,
  type Address,
  type DeviceAddress,
} from './address.js';
import { sameKey } from './identity.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ED25519 = { name: 'Ed25519' } as const;
const IM_URI_PREFIX = 'im:';

/** Options of {@link issueDeviceCertificate} (the CA side, e.g. enterprise tooling and tests). */
export interface IssueDeviceCertificateOptions {
  /** DER of the issuing CA's certificate. */
  readonly caCertificate: Uint8Array;
  /** The CA's private signing key (WebCrypto). Its algorithm must match `signingAlgorithm`. */
  readonly caPrivateKey: webcrypto.CryptoKey;
  /** WebCrypto algorithm of the CA key; Ed25519 by default. */
  readonly signingAlgorithm?: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams;
  readonly device: DeviceAddress;
  /** The device's Ed25519 identity public key (32 bytes). */
  readonly identityKey: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Hex serial number; random if absent. */
  readonly serialNumber?: string;
}

/**
 * Issues an X.509 certificate over a device's Ed25519 identity key. Returns the DER bytes.
 *
 * @example
 * ```ts
 * const der = await issueDeviceCertificate({
 *   caCertificate: caDer, caPrivateKey: ca.privateKey,
 *   device, identityKey, notBefore: new Date(), notAfter: new Date(Date.now() + 365 * 86_400_000),
 * });
 * ```
 */
export async function issueDeviceCertificate(
  options: IssueDeviceCertificateOptions,
): Promise<Uint8Array> {
  if (!(options.identityKey instanceof Uint8Array) || options.identityKey.length !== 32) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'identityKey must be 32 bytes');
  }
  const ca = new x509.X509Certificate(options.caCertificate);
  const publicKey = await webcrypto.subtle.importKey('raw', options.identityKey, ED25519, true, [
    'verify',
  ]);
  const serial =
    options.serialNumber ??
    `01${Buffer.from(webcrypto.getRandomValues(new Uint8Array(15))).toString('hex')}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: [{ CN: [formatDeviceAddress(options.device)] }],
    issuer: ca.subject,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    publicKey,
    signingKey: options.caPrivateKey,
    signingAlgorithm: options.signingAlgorithm ?? ED25519,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: `${IM_URI_PREFIX}${formatAddress(options.device.address)}` },
      ]),
    ],
  });
  return new Uint8Array(cert.rawData);
}

/** What a verified device certificate says. */
export interface VerifiedDeviceCertificate {
  readonly address: Address;
  readonly identityKey: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Hex serial number, for revocation lookups by the caller. */
  readonly serialNumber: string;
}

/** Options of {@link verifyDeviceCertificate}. */
export interface VerifyDeviceCertificateOptions {
  /** DER certificates of the CAs trusted to certify device keys for this domain. */
  readonly trustAnchors: readonly Uint8Array[];
  /** The address the certificate must name. */
  readonly address: Address;
  /** The identity key the certificate must certify. */
  readonly identityKey: Uint8Array;
  /** Time of the check, ms since the epoch (default now). */
  readonly now?: number;
}

function refuse(message: string, cause?: unknown): never {
  throw new ImppError(
    'ERR_ENROLMENT_INVALID',
    `device certificate: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Verifies a device certificate: issued and signed by one of the trust anchors (checked by
 * `node:crypto`), valid at `now`, not a CA, over exactly `identityKey` (Ed25519), and naming
 * exactly one `im:` address in its subjectAltName, equal to `address`. Throws
 * `ERR_ENROLMENT_INVALID` otherwise.
 *
 * @example
 * ```ts
 * verifyDeviceCertificate(der, { trustAnchors: [caDer], address, identityKey });
 * ```
 */
export function verifyDeviceCertificate(
  der: Uint8Array,
  options: VerifyDeviceCertificateOptions,
): VerifiedDeviceCertificate {
  let platform: NodeX509Certificate;
  let parsed: x509.X509Certificate;
  try {
    platform = new NodeX509Certificate(der);
    parsed = new x509.X509Certificate(der);
  } catch (cause) {
    refuse('not a well-formed X.509 certificate', cause);
  }
  const issuedByAnchor = options.trustAnchors.some((anchorDer) => {
    try {
      const anchor = new NodeX509Certificate(anchorDer);
      return anchor.ca && platform.checkIssued(anchor) && platform.verify(anchor.publicKey);
    } catch {
      return false;
    }
  });
  if (!issuedByAnchor) refuse('not issued by a trusted CA');
  if (platform.ca) refuse('is a CA certificate');
  const now = options.now ?? Date.now();
  if (now < parsed.notBefore.getTime() || now > parsed.notAfter.getTime()) {
    refuse('not valid at this time');
  }
  if (platform.publicKey.asymmetricKeyType !== 'ed25519') refuse('key is not Ed25519');
  const spki = new Uint8Array(parsed.publicKey.rawData);
  // An Ed25519 SubjectPublicKeyInfo (RFC 8410 §4) is a 12-byte prefix and the 32-byte key.
  const key = spki.subarray(spki.length - 32);
  if (spki.length !== 44 || !sameKey(key, options.identityKey)) {
    refuse('does not certify this identity key');
  }
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  const imNames = (san?.names.toJSON() ?? []).filter(
    (n) => n.type === 'url' && n.value.toLowerCase().startsWith(IM_URI_PREFIX),
  );
  if (imNames.length !== 1) refuse('must name exactly one im: address');
  let named: Address;
  try {
    named = parseAddress((imNames[0] as { value: string }).value);
  } catch (cause) {
    refuse('names a malformed address', cause);
  }
  if (!sameAddress(named, options.address)) refuse('names another address');
  return {
    address: named,
    identityKey: Uint8Array.from(key),
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    serialNumber: parsed.serialNumber,
  };
}
