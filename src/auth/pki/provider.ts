/**
 * PKI credential provider: maps a TLS client certificate — already validated by Node's TLS layer
 * against the domain's CA bundle (and CRL) — to an impp address.
 *
 * Division of labour (each layer fails closed on its own):
 * 1. Node's TLS (`requestCert`, `rejectUnauthorized`, `ca`, `crl`: see {@link PkiCredentialProvider.tlsServerOptions})
 *    builds and verifies the chain: signatures, validity, CA flags, revocation, and OpenSSL's
 *    "ssl_client" purpose (an extended key usage, if present, must allow clientAuth).
 * 2. This provider, with @peculiar/x509 reading the verified leaf:
 *    - refuses when the TLS layer did not verify the chain (`chainVerified`);
 *    - refuses CA certificates, a key usage without digitalSignature, and a missing or
 *      non-clientAuth extended key usage (stricter than OpenSSL, which accepts "no EKU");
 *    - re-checks the validity period and the configured CRLs (signature-checked against the CA
 *      bundle at start-up; a stale CRL makes the provider unavailable rather than permissive);
 *    - maps the subject alternative name to the address with the configured rules: an
 *      `rfc822Name` (`alice@example.com`) or a URI (`im:alice@example.com`), in the provider's
 *      domain only. Subject CNs are never used (RFC 6125 §6.4.4 deprecates that for servers; the
 *      same reasoning applies). Two SANs mapping to different addresses are refused.
 */
import { ImppError } from '../../errors.js';
import { formatAddress, parseAddress, type Address } from '../../trust/address.js';
import {
  AuthError,
  type CertificateEvidence,
  type CredentialProvider,
  type IdentityLookup,
  type ProviderDeps,
  type ProviderPlugin,
} from '../types.js';
import type { PrincipalKind } from '../../trust/principal.js';
import { x509 } from './x509.js';

/** A SAN → address rule. */
export type SanRule =
  /** An rfc822Name SAN `user@domain`. */
  | { readonly type: 'email' }
  /** A uniformResourceIdentifier SAN with this scheme prefix, e.g. `im:` → `im:user@domain`. */
  | { readonly type: 'uri'; readonly prefix: string };

/** Configuration of {@link pkiProvider}. */
export interface PkiProviderConfig {
  readonly name?: string;
  /** PEM trust anchors of the domain (one or more CA certificates). */
  readonly caPem: string | readonly string[];
  /** PEM CRLs issued by those CAs. */
  readonly crlPem?: string | readonly string[];
  /** Rules in order; default `[{ type: 'uri', prefix: 'im:' }, { type: 'email' }]`. */
  readonly sanRules?: readonly SanRule[];
  readonly kind?: PrincipalKind;
  /** Directory check for disabled accounts and groups, by `user@domain`. */
  readonly accountLookup?: (address: string) => Promise<IdentityLookup>;
}

/** The provider plus the TLS settings the transport must use so that layer 1 above happens. */
export interface PkiCredentialProvider extends CredentialProvider {
  /**
   * Options for `tls.createServer` / `createSecureContext`: client certificates requested and
   * verified against the CA bundle and CRLs. Merge into the server's own TLS options.
   */
  tlsServerOptions(): { requestCert: true; rejectUnauthorized: true; ca: string[]; crl?: string[] };
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const MAX_SANS = 64;

function toList(value: string | readonly string[] | undefined): string[] {
  if (value === undefined) return [];
  return typeof value === 'string' ? [value] : [...value];
}

/**
 * Creates the PKI provider plug-in (asynchronous: it checks the CRLs' signatures at start-up).
 *
 * @example
 * ```ts
 * const pki = await registry.registerProvider(pkiProvider({
 *   caPem: readFileSync('corp-ca.pem', 'utf8'), crlPem: readFileSync('corp.crl.pem', 'utf8'),
 *   sanRules: [{ type: 'uri', prefix: 'im:' }],
 * }));
 * tls.createServer({ key, cert, ...(pki as PkiCredentialProvider).tlsServerOptions() });
 * ```
 */
export function pkiProvider(config: PkiProviderConfig): ProviderPlugin {
  const caPems = toList(config.caPem);
  const crlPems = toList(config.crlPem);
  if (caPems.length === 0)
    throw new ImppError('ERR_CONFIG_INVALID', 'pki provider: caPem is empty');
  const rules = config.sanRules ?? [{ type: 'uri', prefix: 'im:' }, { type: 'email' }];
  if (rules.length === 0) throw new ImppError('ERR_CONFIG_INVALID', 'pki provider: no SAN rules');
  for (const r of rules) {
    if (r.type === 'uri' && !/^[a-z][a-z0-9+.-]*:$/.test(r.prefix)) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        'pki provider: a uri rule prefix must look like "im:"',
      );
    }
  }
  return async (deps: ProviderDeps): Promise<CredentialProvider> => {
    let cas: x509.X509Certificate[];
    let crls: x509.X509Crl[];
    try {
      cas = caPems.flatMap((pem) =>
        x509.PemConverter.decode(pem).map((der) => new x509.X509Certificate(der)),
      );
      crls = crlPems.flatMap((pem) =>
        x509.PemConverter.decode(pem).map((der) => new x509.X509Crl(der)),
      );
    } catch (e) {
      throw new ImppError('ERR_CONFIG_INVALID', 'pki provider: cannot parse the CA or CRL PEM', {
        cause: e,
      });
    }
    for (const crl of crls) {
      const issuer = cas.find((ca) => ca.subject === crl.issuer);
      if (issuer === undefined || !(await crl.verify({ publicKey: issuer }))) {
        throw new ImppError(
          'ERR_CONFIG_INVALID',
          'pki provider: a CRL is not signed by a configured CA',
        );
      }
    }
    const provider: PkiCredentialProvider = {
      name: config.name ?? 'pki',
      kind: 'pki',
      capabilities: ['certificate'],
      tlsServerOptions: () => ({
        requestCert: true,
        rejectUnauthorized: true,
        ca: [...caPems],
        ...(crlPems.length === 0 ? {} : { crl: [...crlPems] }),
      }),
      mapCertificate: async (evidence: CertificateEvidence): Promise<IdentityLookup> => {
        if (!evidence.chainVerified)
          throw new AuthError('bad-credential', 'pki: chain not verified by TLS');
        const cert = parseLeaf(evidence.der);
        checkUsage(cert, deps.now());
        checkRevocation(cert, crls, deps.now());
        const address = mapSan(
          cert,
          rules,
          deps.domain,
          evidence.checks?.certificateSingleIdentity !== false,
        );
        if (address === null) return { status: 'unknown' };
        const formatted = formatAddress(address);
        if (config.accountLookup !== undefined) {
          const answer = await config.accountLookup(formatted);
          if (
            answer.status !== 'unknown' &&
            formatAddress(answer.identity.principal) !== formatted
          ) {
            return { status: 'unknown' };
          }
          return answer;
        }
        return {
          status: 'ok',
          identity: {
            principal: address,
            kind: config.kind ?? 'person',
            attributes: { certificateSerial: cert.serialNumber, certificateIssuer: cert.issuer },
          },
        };
      },
    };
    return provider;
  };
}

function parseLeaf(der: Uint8Array): x509.X509Certificate {
  try {
    return new x509.X509Certificate(Uint8Array.from(der));
  } catch (e) {
    throw new AuthError('malformed', 'pki: client certificate does not parse', { cause: e });
  }
}

function checkUsage(cert: x509.X509Certificate, now: number): void {
  if (now < cert.notBefore.getTime() || now > cert.notAfter.getTime()) {
    throw new AuthError('bad-credential', 'pki: certificate outside its validity period');
  }
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (basic?.ca === true)
    throw new AuthError('bad-credential', 'pki: a CA certificate is not a client identity');
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku !== null && (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    throw new AuthError('bad-credential', 'pki: key usage lacks digitalSignature');
  }
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku === null || !eku.usages.map(String).includes(CLIENT_AUTH)) {
    throw new AuthError('bad-credential', 'pki: extended key usage lacks clientAuth');
  }
}

function checkRevocation(
  cert: x509.X509Certificate,
  crls: readonly x509.X509Crl[],
  now: number,
): void {
  for (const crl of crls) {
    if (crl.issuer !== cert.issuer) continue;
    if (crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now) {
      throw new AuthError('provider-unavailable', 'pki: the configured CRL is out of date');
    }
    const serial = cert.serialNumber.toLowerCase().replace(/^0+/, '');
    if (crl.entries.some((e) => e.serialNumber.toLowerCase().replace(/^0+/, '') === serial)) {
      throw new AuthError('bad-credential', 'pki: certificate is revoked');
    }
  }
}

function mapSan(
  cert: x509.X509Certificate,
  rules: readonly SanRule[],
  domain: string,
  singleIdentity: boolean,
): Address | null {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.items ?? [];
  if (names.length > MAX_SANS) return null;
  const found = new Set<string>();
  let first: Address | null = null;
  for (const rule of rules) {
    for (const name of names) {
      let candidate: string | null = null;
      if (rule.type === 'email' && name.type === 'email') candidate = name.value;
      if (
        rule.type === 'uri' &&
        name.type === 'url' &&
        name.value.toLowerCase().startsWith(rule.prefix)
      ) {
        candidate = name.value.slice(rule.prefix.length);
      }
      if (candidate === null) continue;
      let address: Address;
      try {
        address = parseAddress(candidate);
      } catch {
        continue;
      }
      if (address.domain !== domain.toLowerCase()) continue;
      found.add(formatAddress(address));
      first ??= address;
    }
  }
  // One certificate, one identity: several different in-domain addresses is ambiguous.
  return found.size === 1 || !singleIdentity ? first : null;
}
