/**
 * Certificates the suite makes for its own attackers: the relay's certificate authority (the CA a
 * test client may be told to trust, modelling "a proxy with a certificate the client trusts"), and
 * the deliberately bad server certificates of T29 (expired, self-signed, wrong name, another CA).
 *
 * ECDSA P-256 keys from Node's WebCrypto; certificates built with @peculiar/x509 (loaded only
 * through src/auth/pki/x509.ts). These keys protect nothing: they exist for one suite run.
 */
import type { webcrypto } from 'node:crypto';
import { x509 } from '../../auth/pki/x509.js';
import {
  EC_SIGN,
  caExtensions,
  endEntityExtensions,
  exportKeyPem,
  generateEcKeyPair,
  randomSerial,
} from '../../service/config/x509-issue.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A certificate and its private key, as PEM. */
export interface SuiteCert {
  readonly certPem: string;
  readonly keyPem: string;
  /** @internal for issuing */
  readonly cert: x509.X509Certificate;
  /** @internal for issuing */
  readonly keys: webcrypto.CryptoKeyPair;
}

/** What to put in an end-entity certificate. */
export interface SuiteCertOptions {
  /** DNS names and IP literals for the subjectAltName; the first is also the CN by default. */
  readonly names: readonly string[];
  /** Default: the first name. */
  readonly commonName?: string;
  /** rfc822Name entries for the subjectAltName (client certificates naming a user). */
  readonly emails?: readonly string[];
  /** Default `'server'`. */
  readonly usage?: 'server' | 'client' | 'both';
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

async function finish(
  cert: x509.X509Certificate,
  keys: webcrypto.CryptoKeyPair,
): Promise<SuiteCert> {
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: await exportKeyPem(keys.privateKey),
    cert,
    keys,
  };
}

/**
 * A fresh certificate authority, valid from an hour ago for `days` days.
 *
 * @example
 * ```ts
 * const ca = await createSuiteCa('impp threat suite relay CA');
 * const leaf = await issueServerCert(ca, { names: ['localhost', '127.0.0.1'] });
 * ```
 */
export async function createSuiteCa(commonName: string, days = 2): Promise<SuiteCert> {
  const keys = await generateEcKeyPair();
  const notBefore = new Date(Date.now() - HOUR_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${commonName}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * DAY_MS),
    signingAlgorithm: EC_SIGN,
    keys,
    extensions: await caExtensions(keys.publicKey),
  });
  return finish(cert, keys);
}

/**
 * A TLS certificate issued by `ca` (a server's unless `usage` says otherwise; valid from an
 * hour ago for a day unless told).
 *
 * @example
 * ```ts
 * const expired = await issueServerCert(ca, { names: ['localhost'], notAfter: new Date(Date.now() - 60_000) });
 * ```
 */
export async function issueServerCert(
  ca: SuiteCert,
  options: SuiteCertOptions,
): Promise<SuiteCert> {
  const keys = await generateEcKeyPair();
  const notBefore = options.notBefore ?? new Date(Date.now() - HOUR_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${options.commonName ?? options.names[0] ?? 'impp threat suite'}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter: options.notAfter ?? new Date(notBefore.getTime() + DAY_MS),
    signingAlgorithm: EC_SIGN,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: await endEntityExtensions({
      names: options.names,
      emails: options.emails ?? [],
      usage: options.usage ?? 'server',
      publicKey: keys.publicKey,
      issuer: ca.keys.publicKey,
    }),
  });
  return finish(cert, keys);
}

/**
 * A self-signed end-entity server certificate (no CA vouches for it).
 *
 * @example
 * ```ts
 * const self = await selfSignedServerCert({ names: ['localhost'] });
 * ```
 */
export async function selfSignedServerCert(options: SuiteCertOptions): Promise<SuiteCert> {
  const keys = await generateEcKeyPair();
  const notBefore = options.notBefore ?? new Date(Date.now() - HOUR_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${options.names[0] ?? 'impp threat suite'}`,
    notBefore,
    notAfter: options.notAfter ?? new Date(notBefore.getTime() + DAY_MS),
    signingAlgorithm: EC_SIGN,
    keys,
    extensions: await endEntityExtensions({ names: options.names, publicKey: keys.publicKey }),
  });
  return finish(cert, keys);
}
