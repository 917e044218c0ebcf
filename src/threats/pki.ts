/**
 * Client certificates for the EXTERNAL threats (T52, T53): a {@link ClientPki} that mints
 * certificates under a CA the deployment trusts for client certificates — the suite's own CA
 * with `--spawn`, or a test CA the operator names with `--client-ca-cert`/`--client-ca-key` —
 * and, on request, under a rogue CA with the same name but another key.
 *
 * Leaf keys are fresh ECDSA P-256 keys from Node's WebCrypto (src/service/config/x509-issue.ts);
 * certificates are built with @peculiar/x509 (loaded only through src/auth/pki/x509.ts). These
 * keys protect nothing: they exist for one suite run.
 */
import { webcrypto } from 'node:crypto';
import { x509 } from '../auth/pki/x509.js';
import { ImppError } from '../errors.js';
import {
  EC_SIGN,
  caExtensions,
  exportKeyPem,
  generateEcKeyPair,
  randomSerial,
} from '../service/config/x509-issue.js';
import type { ClientCertRequest, ClientPki, IssuedClientCert } from './types.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The subject of the CA `--spawn` makes and trusts for client certificates. */
export const SUITE_CLIENT_CA_SUBJECT = 'CN=impp threat suite users CA,O=impp threats';

/** A CA that can sign: its certificate, its private key and the signature algorithm. */
interface Signer {
  readonly cert: x509.X509Certificate;
  readonly key: webcrypto.CryptoKey;
  readonly algorithm: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams;
}

/** A self-signed CA named `subject` (a distinguished name), valid from an hour ago for two days. */
async function selfSignedCa(subject: string): Promise<Signer> {
  const keys = await generateEcKeyPair();
  const notBefore = new Date(Date.now() - HOUR_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + 2 * DAY_MS),
    signingAlgorithm: EC_SIGN,
    keys,
    extensions: await caExtensions(keys.publicKey),
  });
  return { cert, key: keys.privateKey, algorithm: EC_SIGN };
}

async function issueUnder(signer: Signer, request: ClientCertRequest): Promise<IssuedClientCert> {
  const keys = await generateEcKeyPair();
  const notBefore = request.notBefore ?? new Date(Date.now() - HOUR_MS);
  const usage = request.usage ?? 'client';
  // Every name twice: as an rfc822Name and as an `im:` URI, so that the certificate maps under
  // either `addressFrom` rule of a pki provider (san-email, san-uri) to the same address. Both
  // are IA5Strings, which the library writes one byte per character: a non-ASCII name goes in as
  // its UTF-8 bytes (what a careless CA emits), not silently cut down to ASCII.
  const names = request.names.flatMap((name): x509.JsonGeneralName[] => {
    const value = Buffer.from(name, 'utf8').toString('latin1');
    return [
      { type: 'email', value },
      { type: 'url', value: `im:${value}` },
    ];
  });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: 'CN=impp threat suite client,O=impp threats',
    issuer: signer.cert.subject,
    notBefore,
    notAfter: request.notAfter ?? new Date(notBefore.getTime() + DAY_MS),
    signingAlgorithm: signer.algorithm,
    publicKey: keys.publicKey,
    signingKey: signer.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...(usage === 'none'
        ? []
        : [
            new x509.ExtendedKeyUsageExtension(
              [
                usage === 'client'
                  ? x509.ExtendedKeyUsage.clientAuth
                  : x509.ExtendedKeyUsage.serverAuth,
              ],
              false,
            ),
          ]),
      ...(names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names, false)]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(signer.cert),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

function clientPki(trusted: Signer): ClientPki {
  let rogue: Promise<Signer> | undefined;
  return {
    caPem: trusted.cert.toString('pem') + '\n',
    async issue(request) {
      // Same distinguished name, another key: only a chain check tells the two apart.
      const signer =
        request.rogue === true ? await (rogue ??= selfSignedCa(trusted.cert.subject)) : trusted;
      return issueUnder(signer, request);
    },
  };
}

/**
 * A fresh CA for `--spawn` (the spawned server trusts it for EXTERNAL) and the {@link ClientPki}
 * over it.
 *
 * @example
 * ```ts
 * const pki = await createSuiteClientPki();
 * writeFileSync(caPath, pki.caPem);
 * const alice = await pki.issue({ names: ['alice@localhost'] });
 * ```
 */
export async function createSuiteClientPki(subject = SUITE_CLIENT_CA_SUBJECT): Promise<ClientPki> {
  return clientPki(await selfSignedCa(subject));
}

/**
 * The {@link ClientPki} over an operator's test CA (`--client-ca-cert`, `--client-ca-key`): the CA
 * certificate in PEM and its private key as unencrypted PKCS #8 PEM (`BEGIN PRIVATE KEY`; convert
 * with `openssl pkcs8 -topk8 -nocrypt`). ECDSA P-256/P-384 and RSA keys are supported. The key
 * is checked against the certificate by issuing one certificate and verifying it.
 *
 * @throws ImppError `ERR_INVALID_ARGUMENT` when the files do not parse or do not belong together.
 */
export async function clientPkiFromPem(caCertPem: string, caKeyPem: string): Promise<ClientPki> {
  let cert: x509.X509Certificate;
  let keyDer: ArrayBuffer;
  try {
    cert = new x509.X509Certificate(caCertPem);
    const blocks = x509.PemConverter.decodeWithHeaders(caKeyPem);
    const block = blocks.find((b) => b.type === 'PRIVATE KEY');
    if (block === undefined) throw new Error('no PRIVATE KEY block');
    keyDer = block.rawData;
  } catch (e) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--client-ca-cert must be a PEM certificate and --client-ca-key an unencrypted PKCS #8 PEM key (BEGIN PRIVATE KEY)',
      { cause: e },
    );
  }
  const publicAlgorithm = cert.publicKey.algorithm as
    webcrypto.EcKeyAlgorithm | webcrypto.KeyAlgorithm;
  let importAlgorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  let algorithm: webcrypto.EcdsaParams | webcrypto.AlgorithmIdentifier;
  if (publicAlgorithm.name === 'ECDSA' && 'namedCurve' in publicAlgorithm) {
    const curve = publicAlgorithm.namedCurve;
    if (curve !== 'P-256' && curve !== 'P-384') {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        `--client-ca-key: curve ${curve} is not supported`,
      );
    }
    importAlgorithm = { name: 'ECDSA', namedCurve: curve };
    algorithm = { name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
  } else if (publicAlgorithm.name.startsWith('RSA')) {
    importAlgorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `--client-ca-cert: ${publicAlgorithm.name} keys are not supported (ECDSA or RSA)`,
    );
  }
  let key: webcrypto.CryptoKey;
  try {
    key = await webcrypto.subtle.importKey('pkcs8', keyDer, importAlgorithm, false, ['sign']);
  } catch (e) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--client-ca-key does not match the CA certificate',
      {
        cause: e,
      },
    );
  }
  const pki = clientPki({ cert, key, algorithm });
  const probe = new x509.X509Certificate((await pki.issue({ names: [] })).certPem);
  if (!(await probe.verify({ publicKey: cert, signatureOnly: true }))) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--client-ca-key does not belong to --client-ca-cert',
    );
  }
  return pki;
}
