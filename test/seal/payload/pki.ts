/**
 * Test PKI for the XML-DSIG tests: a CA and leaf certificates made with @peculiar/x509 over
 * node's WebCrypto. Real keys and real certificates, generated per test run.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

const RSA: webcrypto.RsaHashedKeyGenParams = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};
const EC: webcrypto.EcKeyGenParams & { hash: string } = {
  name: 'ECDSA',
  namedCurve: 'P-256',
  hash: 'SHA-256',
};

export type KeyKind = 'rsa' | 'ec' | 'rsa1024';

export interface Issued {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly keys: CryptoKeyPair;
  readonly cert: x509.X509Certificate;
}

async function keyPair(kind: KeyKind): Promise<CryptoKeyPair> {
  const params = kind === 'ec' ? EC : kind === 'rsa' ? RSA : { ...RSA, modulusLength: 1024 };
  return webcrypto.subtle.generateKey(params, true, ['sign', 'verify']);
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

const DAY = 86_400_000;
let serial = 1;

/** A self-signed CA (ECDSA P-256). */
export async function makeCa(
  name = 'impp test CA',
  validity?: { from: Date; to: Date },
): Promise<Issued> {
  const keys = await keyPair('ec');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    name: `CN=${name}`,
    notBefore: validity?.from ?? new Date(Date.now() - DAY),
    notAfter: validity?.to ?? new Date(Date.now() + 30 * DAY),
    signingAlgorithm: EC,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  return {
    certificatePem: cert.toString('pem'),
    privateKeyPem: await pkcs8Pem(keys.privateKey),
    keys,
    cert,
  };
}

export interface LeafOptions {
  readonly kind: KeyKind;
  readonly names?: x509.JsonGeneralNames;
  readonly from?: Date;
  readonly to?: Date;
  readonly keyUsage?: x509.KeyUsageFlags;
  readonly isCa?: boolean;
}

/** A leaf certificate issued by `ca`. */
export async function makeLeaf(ca: Issued, options: LeafOptions): Promise<Issued> {
  const keys = await keyPair(options.kind);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    subject: 'CN=example.com presence signer',
    issuer: ca.cert.subject,
    notBefore: options.from ?? new Date(Date.now() - DAY),
    notAfter: options.to ?? new Date(Date.now() + 7 * DAY),
    signingAlgorithm: EC,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(options.isCa ?? false, undefined, true),
      new x509.KeyUsagesExtension(options.keyUsage ?? x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension(
        options.names ?? [{ type: 'dns', value: 'example.com' }],
      ),
    ],
  });
  return {
    certificatePem: cert.toString('pem'),
    privateKeyPem: await pkcs8Pem(keys.privateKey),
    keys,
    cert,
  };
}
