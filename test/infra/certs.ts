/**
 * A throwaway PKI for tests, built with @peculiar/x509 on Node's WebCrypto: a CA, leaf
 * certificates with chosen SANs / key usages / validity, and CRLs. ECDSA P-256 throughout (fast).
 *
 * Only for generating test material: nothing here validates anything (Node's TLS layer does).
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface Issued {
  readonly cert: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly certPem: string;
  readonly keyPem: string;
  readonly serial: string;
}

let serialCounter = 0x1000;
function nextSerial(): string {
  serialCounter += 1;
  return `01${serialCounter.toString(16).padStart(8, '0')}`;
}

async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

const DAY = 86_400_000;

/** A self-signed CA certificate (basicConstraints CA, keyCertSign + cRLSign). */
export async function createCa(name = 'CN=impp test CA,O=impp tests'): Promise<Issued> {
  const keys = await newKeys();
  const serial = nextSerial();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign |
          x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, certPem: cert.toString('pem'), keyPem: await keyPem(keys), serial };
}

export interface LeafOptions {
  readonly subject: string;
  readonly sans?: readonly x509.JsonGeneralName[];
  /** Extended key usages; `null` leaves the extension out. Default: clientAuth. */
  readonly eku?: readonly string[] | null;
  /** Key usage flags; default digitalSignature. */
  readonly keyUsage?: x509.KeyUsageFlags;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/** A leaf certificate issued by `ca` (or self-signed when `ca` is `null`). */
export async function issue(ca: Issued | null, options: LeafOptions): Promise<Issued> {
  const keys = await newKeys();
  const serial = nextSerial();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(options.keyUsage ?? x509.KeyUsageFlags.digitalSignature, true),
  ];
  const eku = options.eku === undefined ? [x509.ExtendedKeyUsage.clientAuth] : options.eku;
  if (eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension([...eku], false));
  if (options.sans !== undefined && options.sans.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension([...options.sans], false));
  }
  if (ca !== null) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false));
  }
  const common = {
    serialNumber: serial,
    subject: options.subject,
    notBefore: options.notBefore ?? new Date(Date.now() - DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + 7 * DAY),
    signingAlgorithm: ALG,
    extensions,
  };
  const cert =
    ca === null
      ? await x509.X509CertificateGenerator.createSelfSigned({
          ...common,
          name: options.subject,
          keys,
        })
      : await x509.X509CertificateGenerator.create({
          ...common,
          issuer: ca.cert.subject,
          publicKey: keys.publicKey,
          signingKey: ca.keys.privateKey,
        });
  return { cert, keys, certPem: cert.toString('pem'), keyPem: await keyPem(keys), serial };
}

/** A CRL signed by `ca` that revokes the given serial numbers (hex). */
export async function createCrl(ca: Issued, revokedSerials: readonly string[]): Promise<string> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + 7 * DAY),
    signingAlgorithm: ALG,
    signingKey: ca.keys.privateKey,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false)],
    entries: revokedSerials.map((serialNumber) => ({
      serialNumber,
      revocationDate: new Date(Date.now() - 30_000),
      reason: x509.X509CrlReason.keyCompromise,
    })),
  });
  // OpenSSL (and so Node's `crl` option) wants the "X509 CRL" PEM label, not "CRL".
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL');
}

/** A server certificate for 127.0.0.1 / localhost (serverAuth). */
export async function issueServer(ca: Issued): Promise<Issued> {
  return issue(ca, {
    subject: 'CN=localhost',
    sans: [
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
    ],
    eku: [x509.ExtendedKeyUsage.serverAuth],
    keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
  });
}
