/**
 * Throwaway PKI for tests: a CA and certificates it issues, as PEM, made with @peculiar/x509 on
 * WebCrypto (ECDSA P-256). Generic on purpose: transport, auth (EXTERNAL) and trust tests can all
 * use it.
 *
 * @example
 * ```ts
 * const ca = await createTestCa();
 * const server = await issueCert(ca, { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
 * // server.certPem, server.keyPem, ca.certPem
 * ```
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A certificate with its private key, as PEM. */
export interface TestCert {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
}

/** A CA is a certificate that can issue others. */
export type TestCa = TestCert;

async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

/** Creates a self-signed CA valid from one hour ago for `days` days. */
export async function createTestCa(
  options: { commonName?: string; days?: number } = {},
): Promise<TestCa> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const notBefore = new Date(Date.now() - 3600_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${options.commonName ?? 'impp test CA'}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.days ?? 2) * 86_400_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await keyPem(keys), cert, keys };
}

/** What to put in an issued certificate. */
export interface IssueOptions {
  readonly commonName?: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** rfc822Name SANs (e.g. for client certificates naming a user). */
  readonly emails?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** 'server' (default), 'client' or both. */
  readonly usage?: 'server' | 'client' | 'both';
}

/** Issues an end-entity certificate signed by `ca`. */
export async function issueCert(ca: TestCa, options: IssueOptions = {}): Promise<TestCert> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const names: x509.JsonGeneralName[] = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(options.emails ?? []).map((value) => ({ type: 'email' as const, value })),
  ];
  const usage = options.usage ?? 'server';
  const eku = [
    ...(usage === 'client' ? [] : [x509.ExtendedKeyUsage.serverAuth]),
    ...(usage === 'server' ? [] : [x509.ExtendedKeyUsage.clientAuth]),
  ];
  const notBefore = options.notBefore ?? new Date(Date.now() - 3600_000);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${options.commonName ?? options.dnsNames?.[0] ?? 'impp test'}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter: options.notAfter ?? new Date(notBefore.getTime() + 2 * 86_400_000),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await keyPem(keys), cert, keys };
}

/** A CA plus a server certificate for localhost / 127.0.0.1, the usual loopback fixture. */
export async function createLoopbackPki(): Promise<{ ca: TestCa; server: TestCert }> {
  const ca = await createTestCa();
  const server = await issueCert(ca, {
    commonName: 'localhost',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  return { ca, server };
}
