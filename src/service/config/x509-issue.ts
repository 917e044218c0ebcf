/**
 * The pieces every certificate impp makes is built from: ECDSA P-256 keys from Node's WebCrypto
 * (FIPS 186-5; the curve every TLS 1.3 stack has), positive random serials, and the extension
 * sets of a CA and of an end entity. Used by the local CA (./local-ca.ts), the threat suite's
 * attackers and the tests' throw-away PKI, so all three issue the same shape of certificate.
 */
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { x509 } from '../../auth/pki/x509.js';
import { randomBytes, toHex } from '../../crypto/index.js';

/** Key generation parameters: ECDSA on P-256. */
export const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
/** Signature parameters: ECDSA with SHA-256. */
export const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * A serial number: positive (leading 01, RFC 5280 §4.1.2.2) with 128 random bits (the CA/B
 * Forum asks for at least 64).
 */
export function randomSerial(): string {
  return `01${toHex(randomBytes(16))}`;
}

/** A fresh extractable P-256 key pair. */
export async function generateEcKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
}

/** A private key as PKCS #8 PEM. */
export async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return (
    x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY') + '\n'
  );
}

/** The extensions of a certificate authority that issues end-entity certificates only. */
export async function caExtensions(publicKey: webcrypto.CryptoKey): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
}

/** What an end-entity certificate is for and whom it names. */
export interface EndEntityOptions {
  /** DNS names and IP literals (told apart by their spelling). */
  readonly names?: readonly string[];
  /** rfc822Name entries (client certificates naming a user). */
  readonly emails?: readonly string[];
  /** Default `'server'`. */
  readonly usage?: 'server' | 'client' | 'both';
  readonly publicKey: webcrypto.CryptoKey;
  /** The issuing CA's certificate or public key; none for a self-signed certificate. */
  readonly issuer?: x509.X509Certificate | webcrypto.CryptoKey;
}

/**
 * The extensions of an end-entity certificate. RFC 6125 §6.4.4: clients match the
 * subjectAltName, not the CN, so every name goes there.
 */
export async function endEntityExtensions(options: EndEntityOptions): Promise<x509.Extension[]> {
  const usage = options.usage ?? 'server';
  const names: x509.JsonGeneralName[] = [
    ...(options.names ?? []).map((value): x509.JsonGeneralName => ({
      type: isIP(value) === 0 ? 'dns' : 'ip',
      value,
    })),
    ...(options.emails ?? []).map((value): x509.JsonGeneralName => ({ type: 'email', value })),
  ];
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [
        ...(usage === 'client' ? [] : [x509.ExtendedKeyUsage.serverAuth]),
        ...(usage === 'server' ? [] : [x509.ExtendedKeyUsage.clientAuth]),
      ],
      false,
    ),
    ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
    await x509.SubjectKeyIdentifierExtension.create(options.publicKey),
    ...(options.issuer === undefined
      ? []
      : [await x509.AuthorityKeyIdentifierExtension.create(options.issuer)]),
  ];
}
