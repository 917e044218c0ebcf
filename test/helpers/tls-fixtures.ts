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
import type { webcrypto } from 'node:crypto';
import type * as x509 from '@peculiar/x509';
import { createSuiteCa, issueServerCert } from '../../src/threats/attackers/certs.js';

const DAY_MS = 86_400_000;

/** A certificate with its private key, as PEM. */
export interface TestCert {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

/** A CA is a certificate that can issue others. */
export type TestCa = TestCert;

/** Creates a self-signed CA valid from one hour ago for `days` days. */
export function createTestCa(
  options: { commonName?: string; days?: number } = {},
): Promise<TestCa> {
  return createSuiteCa(options.commonName ?? 'impp test CA', options.days ?? 2);
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

/** Issues an end-entity certificate signed by `ca` (valid for two days unless told). */
export function issueCert(ca: TestCa, options: IssueOptions = {}): Promise<TestCert> {
  const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
  return issueServerCert(ca, {
    names: [...(options.dnsNames ?? []), ...(options.ipAddresses ?? [])],
    commonName: options.commonName ?? options.dnsNames?.[0] ?? 'impp test',
    emails: options.emails ?? [],
    usage: options.usage ?? 'server',
    notBefore,
    notAfter: options.notAfter ?? new Date(notBefore.getTime() + 2 * DAY_MS),
  });
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
