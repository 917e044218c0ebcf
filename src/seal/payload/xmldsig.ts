/**
 * XML-DSIG interop signatures on PIDF documents (xml-crypto 6), verifiable by standard tools such
 * as `xmlsec1 --verify`.
 *
 * This is the *interop* signature of the architecture brief: a domain (or user) X.509 key signs a
 * PIDF document so that systems outside impp can check who published it. impp's own presence
 * updates are sealed and signed by device keys elsewhere; this module never sees those keys.
 *
 * Profile (fixed here, never taken from the wire):
 * - one enveloped `<Signature>` as the last child of `<presence>`, one `<Reference URI="">` (the
 *   whole document), transforms exactly enveloped-signature then exclusive c14n
 *   (`http://www.w3.org/2001/10/xml-exc-c14n#`), SignedInfo canonicalised with exclusive c14n,
 *   digest SHA-256;
 * - signature RSA-SHA256 (RSA ≥ 2048 bits) or ECDSA-SHA256 on P-256
 *   (`http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256`, value r‖s as XML-DSIG 1.1 and
 *   RFC 4050 specify). xml-crypto has no ECDSA; {@link EcdsaSha256} adds it over node:crypto;
 * - the signer's certificate, alone, in `KeyInfo/X509Data/X509Certificate`.
 *
 * Verification is written against signature wrapping: the document is parsed once with the
 * hardened parser, the signature's whole structure is checked before xml-crypto runs (exactly one
 * Signature, a child of the document element; exactly one Reference, with URI=""; the algorithms
 * of the allow list; no Object, no extra transforms), the certificate must be issued by the given
 * CA, be within its validity period, fit the algorithm and name the document's entity; and what
 * the caller gets is parsed from the canonical bytes xml-crypto verified
 * (`getSignedReferences()`), never from the original string.
 *
 * Error codes: a malformed document or a signature outside the profile is `ERR_PAYLOAD_INVALID`; a
 * certificate that does not chain to the CA, is out of date, does not fit the key rules or does
 * not name the entity is `ERR_IDENTITY_UNTRUSTED`; a digest or signature that does not verify is
 * `ERR_CRYPTO_VERIFY_FAILED`.
 *
 * @example
 * ```ts
 * const signed = signPidf(buildPidf(doc), { privateKeyPem, certificatePem, algorithm: 'ecdsa-sha256' });
 * const { document } = verifySignedPidf(signed, { caCertificatePem });
 * ```
 */
import {
  createPrivateKey,
  createPublicKey,
  sign as nodeSign,
  verify as nodeVerify,
  X509Certificate,
  type BinaryLike,
  type KeyLike,
  type KeyObject,
} from 'node:crypto';
import type { Element } from '@xmldom/xmldom';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  X509Certificate as PeculiarCertificate,
} from '@peculiar/x509';
import {
  createOptionalCallbackFunction,
  SignedXml,
  type CanonicalizationOrTransformationAlgorithm,
  type HashAlgorithm,
  type SignatureAlgorithm,
} from 'xml-crypto';
import { ImppError, type ImppErrorCode } from '../../errors.js';
import { formatAddress } from '../../trust/address.js';
import {
  DEFAULT_PIDF_LIMITS,
  parsePidf,
  PIDF_NAMESPACE,
  type PidfDocument,
  type PidfLimits,
} from './pidf.js';
import {
  childElements,
  parseUntrustedXml,
  requireElementOnly,
  simpleText,
  toCheckedXmlText,
} from './xml.js';

/** The XML-DSIG namespace. */
export const DSIG_NAMESPACE = 'http://www.w3.org/2000/09/xmldsig#';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
const SHA256 = 'http://www.w3.org/2001/04/xmlenc#sha256';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const ECDSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256';

/** The signature algorithms impp signs and accepts; nothing else is ever registered. */
export const XMLDSIG_SIGNATURE_ALGORITHMS = Object.freeze({
  'rsa-sha256': Object.freeze({ uri: RSA_SHA256, keyType: 'rsa', minModulusBits: 2048 }),
  'ecdsa-sha256': Object.freeze({ uri: ECDSA_SHA256, keyType: 'ec', namedCurve: 'prime256v1' }),
} as const);

/** A name from {@link XMLDSIG_SIGNATURE_ALGORITHMS}. */
export type XmlDsigAlgorithm = keyof typeof XMLDSIG_SIGNATURE_ALGORITHMS;

/** The canonicalisation, transform and digest URIs of the profile (the whole allow list). */
export const XMLDSIG_PROFILE = Object.freeze({
  canonicalization: EXC_C14N,
  transforms: Object.freeze([ENVELOPED, EXC_C14N]),
  digest: SHA256,
});

/**
 * ECDSA-SHA256 for xml-crypto over node:crypto. The signature value is the fixed-size
 * concatenation r‖s (IEEE P1363), as XML-DSIG 1.1 §6.4.3 and RFC 4050 §3.3 require, not DER.
 */
export class EcdsaSha256 implements SignatureAlgorithm {
  getSignature = createOptionalCallbackFunction(
    (signedInfo: BinaryLike, privateKey: KeyLike): string => {
      const data = typeof signedInfo === 'string' ? Buffer.from(signedInfo, 'utf8') : signedInfo;
      const key =
        typeof privateKey === 'string' || Buffer.isBuffer(privateKey)
          ? createPrivateKey(privateKey)
          : privateKey;
      return nodeSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }).toString('base64');
    },
  );

  verifySignature = createOptionalCallbackFunction(
    (material: string, publicKey: KeyLike, signatureValue: string): boolean => {
      const key =
        typeof publicKey === 'string' || Buffer.isBuffer(publicKey)
          ? createPublicKey(publicKey)
          : publicKey;
      return nodeVerify(
        'sha256',
        Buffer.from(material, 'utf8'),
        { key, dsaEncoding: 'ieee-p1363' },
        Buffer.from(signatureValue, 'base64'),
      );
    },
  );

  getAlgorithmName = (): string => ECDSA_SHA256;
}

function fail(code: ImppErrorCode, what: string, cause?: unknown): ImppError {
  return new ImppError(code, `XML-DSIG: ${what}`, cause === undefined ? undefined : { cause });
}
const malformed = (what: string, cause?: unknown): ImppError =>
  fail('ERR_PAYLOAD_INVALID', what, cause);
const untrusted = (what: string, cause?: unknown): ImppError =>
  fail('ERR_IDENTITY_UNTRUSTED', what, cause);

type Ctor<T> = new () => T;

/** A SignedXml whose algorithm tables hold exactly the profile's entries. */
function restrictedSignedXml(
  algorithm: XmlDsigAlgorithm,
  init: ConstructorParameters<typeof SignedXml>[0],
): SignedXml {
  const sig = new SignedXml(init);
  const builtins = new SignedXml();
  const canon = builtins.CanonicalizationAlgorithms;
  const excC14n = canon[EXC_C14N];
  const enveloped = canon[ENVELOPED];
  const sha256 = builtins.HashAlgorithms[SHA256];
  const rsa = builtins.SignatureAlgorithms[RSA_SHA256];
  if (
    excC14n === undefined ||
    enveloped === undefined ||
    sha256 === undefined ||
    rsa === undefined
  ) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      'xml-crypto lacks a built-in algorithm of the profile',
    );
  }
  const canonTable: Record<string, Ctor<CanonicalizationOrTransformationAlgorithm>> = {
    [EXC_C14N]: excC14n,
    [ENVELOPED]: enveloped,
  };
  const hashTable: Record<string, Ctor<HashAlgorithm>> = { [SHA256]: sha256 };
  const signer: Ctor<SignatureAlgorithm> = algorithm === 'rsa-sha256' ? rsa : EcdsaSha256;
  sig.CanonicalizationAlgorithms = canonTable;
  sig.HashAlgorithms = hashTable;
  sig.SignatureAlgorithms = { [XMLDSIG_SIGNATURE_ALGORITHMS[algorithm].uri]: signer };
  return sig;
}

/** Checks that `key` fits the algorithm's key rules (type, curve, size). */
function checkKeyFits(key: KeyObject, algorithm: XmlDsigAlgorithm, what: string): void {
  const rule = XMLDSIG_SIGNATURE_ALGORITHMS[algorithm];
  if (key.asymmetricKeyType !== rule.keyType)
    throw untrusted(`${what} key type does not fit ${algorithm}`);
  const details = key.asymmetricKeyDetails ?? {};
  if ('namedCurve' in rule && details.namedCurve !== rule.namedCurve) {
    throw untrusted(`${what} key is not on P-256`);
  }
  if ('minModulusBits' in rule && (details.modulusLength ?? 0) < rule.minModulusBits) {
    throw untrusted(`${what} RSA key is shorter than ${rule.minModulusBits} bits`);
  }
}

// ---------------------------------------------------------------------------------------------
// Signing

/** The signer of {@link signPidf}: its key, its certificate, and the algorithm. */
export interface XmlDsigSigner {
  /** PKCS#8 (or traditional) PEM private key. */
  readonly privateKeyPem: string;
  /** The PEM certificate for that key, published in KeyInfo. */
  readonly certificatePem: string;
  readonly algorithm: XmlDsigAlgorithm;
  /**
   * Extension namespaces the signer understands: a document with a mustUnderstand extension in
   * any other namespace is refused, as {@link parsePidf} refuses it (one does not vouch for what
   * one cannot read).
   */
  readonly understoodNamespaces?: readonly string[];
}

/**
 * Signs a PIDF document with an enveloped XML-DSIG signature (see the module comment for the
 * profile) and returns the signed document.
 *
 * @example
 * ```ts
 * const signed = signPidf(buildPidf(doc), { privateKeyPem, certificatePem, algorithm: 'rsa-sha256' });
 * ```
 */
export function signPidf(pidfXml: string, signer: XmlDsigSigner): string {
  // The input must be a PIDF document this library accepts, and not already signed.
  parsePidf(
    pidfXml,
    signer.understoodNamespaces === undefined
      ? {}
      : { understoodNamespaces: signer.understoodNamespaces },
  );
  const doc = parseUntrustedXml(pidfXml, DEFAULT_PIDF_LIMITS);
  if (findDsigElements(doc.documentElement as Element).length > 0)
    throw malformed('document is already signed');
  if (!Object.hasOwn(XMLDSIG_SIGNATURE_ALGORITHMS, signer.algorithm))
    throw malformed('unknown algorithm');
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(signer.certificatePem);
    key = createPrivateKey(signer.privateKeyPem);
  } catch (e) {
    throw new ImppError(
      'ERR_CRYPTO_INVALID_KEY',
      'XML-DSIG: signer key or certificate cannot be read',
      { cause: e },
    );
  }
  checkKeyFits(cert.publicKey, signer.algorithm, 'signer');
  const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) {
    throw new ImppError(
      'ERR_CRYPTO_INVALID_KEY',
      'XML-DSIG: private key does not match the certificate',
    );
  }
  const sig = restrictedSignedXml(signer.algorithm, {
    privateKey: signer.privateKeyPem,
    publicCert: signer.certificatePem,
    canonicalizationAlgorithm: EXC_C14N,
    signatureAlgorithm: XMLDSIG_SIGNATURE_ALGORITHMS[signer.algorithm].uri,
  });
  sig.addReference({
    xpath: '/*',
    isEmptyUri: true,
    transforms: [ENVELOPED, EXC_C14N],
    digestAlgorithm: SHA256,
  });
  sig.computeSignature(pidfXml, { location: { reference: '/*', action: 'append' } });
  return sig.getSignedXml();
}

// ---------------------------------------------------------------------------------------------
// Verification

/** Options of {@link verifySignedPidf}. */
export interface XmlDsigVerifyOptions {
  /** The CA that must have issued the signer's certificate (PEM). */
  readonly caCertificatePem: string;
  /** Algorithms accepted, a subset of {@link XMLDSIG_SIGNATURE_ALGORITHMS}; default both. */
  readonly algorithms?: readonly XmlDsigAlgorithm[];
  /** The time at which certificates must be valid; default now. */
  readonly now?: Date;
  readonly limits?: PidfLimits;
  /** Passed to {@link parsePidf} for the signed content. */
  readonly understoodNamespaces?: readonly string[];
}

/** A name from the signer's subjectAltName extension. */
export interface XmlDsigSignerName {
  readonly type: string;
  readonly value: string;
}

/** What {@link verifySignedPidf} returns: only what the signature covers. */
export interface VerifiedPidf {
  /** The PIDF document parsed from the verified canonical bytes. */
  readonly document: PidfDocument;
  /** The exclusive-canonical form of the signed document (signature removed), as verified. */
  readonly canonicalXml: string;
  readonly algorithm: XmlDsigAlgorithm;
  readonly signer: {
    readonly certificatePem: string;
    readonly subject: string;
    readonly subjectAltNames: readonly XmlDsigSignerName[];
  };
}

/**
 * Verifies an XML-DSIG signed PIDF document against a CA certificate and returns the document
 * parsed from the bytes that were verified. The signer's certificate must name the document's
 * entity in its subjectAltName: as a dNSName equal to the entity's domain (a domain key), or as
 * the entity's address in a `pres:`/`im:` URI or an rfc822Name (a user key).
 *
 * @example
 * ```ts
 * const { document, signer } = verifySignedPidf(xml, { caCertificatePem: caPem });
 * ```
 */
export function verifySignedPidf(
  input: string | Uint8Array,
  options: XmlDsigVerifyOptions,
): VerifiedPidf {
  const limits = options.limits ?? DEFAULT_PIDF_LIMITS;
  const text = toCheckedXmlText(input, limits.maxBytes);
  const doc = parseUntrustedXml(text, limits);
  const root = doc.documentElement;
  if (root?.namespaceURI !== PIDF_NAMESPACE || root.localName !== 'presence') {
    throw malformed('document element must be PIDF presence');
  }

  // 1. Structure: exactly one Signature, the last element child of the document element.
  const signatures = findDsigElements(root);
  if (signatures.length !== 1)
    throw malformed('document must carry exactly one dsig element, the Signature');
  const signature = signatures[0] as Element;
  if (signature.localName !== 'Signature' || signature.parentNode !== root) {
    throw malformed('Signature must be a child of presence');
  }
  if (childElements(root).at(-1) !== signature)
    throw malformed('Signature must be the last child of presence');
  const profile = checkSignatureStructure(
    signature,
    options.algorithms ?? ['rsa-sha256', 'ecdsa-sha256'],
  );

  // 2. Certificate: issued by the CA, in date, fit for the algorithm.
  const now = options.now ?? new Date();
  const { leaf, leafPem } = checkCertificate(
    profile.certificateBase64,
    options.caCertificatePem,
    now,
    profile.algorithm,
  );

  // 3. Signature and digest, by xml-crypto restricted to the profile, with the checked key.
  const sig = restrictedSignedXml(profile.algorithm, {
    publicCert: leaf.publicKey,
    getCertFromKeyInfo: () => null,
  });
  let ok: boolean;
  try {
    // xml-crypto reads the SignedInfo from this node: the one checked above, in the parsed text.
    sig.loadSignature(signature);
    ok = sig.checkSignature(text);
  } catch (e) {
    throw fail('ERR_CRYPTO_VERIFY_FAILED', 'signature does not verify', e);
  }
  if (!ok) throw fail('ERR_CRYPTO_VERIFY_FAILED', 'signature does not verify');
  const signed = sig.getSignedReferences();
  if (signed.length !== 1 || signed[0] === undefined)
    throw fail('ERR_CRYPTO_VERIFY_FAILED', 'expected one signed reference');
  const canonicalXml = signed[0];

  // 4. What the caller reads is parsed from the verified canonical bytes.
  const document =
    options.understoodNamespaces === undefined
      ? parsePidf(canonicalXml, { limits })
      : parsePidf(canonicalXml, { limits, understoodNamespaces: options.understoodNamespaces });
  const subjectAltNames = readSubjectAltNames(leafPem);
  checkSignerNamesEntity(subjectAltNames, document);
  return {
    document,
    canonicalXml,
    algorithm: profile.algorithm,
    signer: { certificatePem: leafPem, subject: leaf.subject, subjectAltNames },
  };
}

/** Every element in the XML-DSIG namespace that is not inside another one (document order). */
function findDsigElements(root: Element): Element[] {
  const found: Element[] = [];
  const stack: Element[] = [root];
  for (let e = stack.pop(); e !== undefined; e = stack.pop()) {
    if (e.namespaceURI === DSIG_NAMESPACE) {
      found.push(e);
      continue;
    }
    // Elements that only look like signature parts, whatever their namespace, are refused too:
    // some verifiers (xml-crypto among them) find parts by local name.
    if (
      /^(?:Signature|SignedInfo|SignatureValue|Reference|KeyInfo|CanonicalizationMethod|SignatureMethod|Transforms?|DigestMethod|DigestValue|X509Data|X509Certificate|Object|Manifest)$/.test(
        e.localName ?? '',
      )
    ) {
      throw malformed('element with an XML-DSIG local name outside the dsig namespace');
    }
    stack.push(...childElements(e).reverse());
  }
  return found;
}

interface Profile {
  readonly algorithm: XmlDsigAlgorithm;
  readonly certificateBase64: string;
}

/** Checks the Signature element against the profile, child by child and attribute by attribute. */
function checkSignatureStructure(
  signature: Element,
  allowed: readonly XmlDsigAlgorithm[],
): Profile {
  noAttributes(signature, 'Signature');
  const [signedInfo, signatureValue, keyInfo, ...more] = dsigChildren(signature, 'Signature');
  expectName(signedInfo, 'SignedInfo');
  expectName(signatureValue, 'SignatureValue');
  expectName(keyInfo, 'KeyInfo');
  if (more.length > 0)
    throw malformed('Signature has elements beyond SignedInfo, SignatureValue and KeyInfo');
  noAttributes(signatureValue, 'SignatureValue');
  if (!/^[A-Za-z0-9+/=\s]+$/.test(simpleText(signatureValue, 'SignatureValue'))) {
    throw malformed('SignatureValue is not base64');
  }

  noAttributes(signedInfo, 'SignedInfo');
  const [c14n, method, reference, ...extraRefs] = dsigChildren(signedInfo, 'SignedInfo');
  expectName(c14n, 'CanonicalizationMethod');
  expectName(method, 'SignatureMethod');
  expectName(reference, 'Reference');
  if (extraRefs.length > 0) throw malformed('SignedInfo must hold exactly one Reference');
  expectAlgorithm(c14n, EXC_C14N, 'CanonicalizationMethod');
  const methodUri = algorithmOf(method, 'SignatureMethod');
  // Names the caller passes are looked up in the table, so that a list can only narrow it.
  const algorithm = allowed.find(
    (a) =>
      Object.hasOwn(XMLDSIG_SIGNATURE_ALGORITHMS, a) &&
      XMLDSIG_SIGNATURE_ALGORITHMS[a].uri === methodUri,
  );
  if (algorithm === undefined) {
    throw malformed('SignatureMethod is not in the allow list');
  }

  // The Reference must be URI="" (the whole document, which is the presence element).
  checkAttributes(reference, ['URI'], 'Reference');
  if (reference.getAttribute('URI') !== '' || !reference.hasAttribute('URI')) {
    throw malformed('Reference must have URI="" (the enveloping document)');
  }
  const [transforms, digestMethod, digestValue, ...extra] = dsigChildren(reference, 'Reference');
  expectName(transforms, 'Transforms');
  expectName(digestMethod, 'DigestMethod');
  expectName(digestValue, 'DigestValue');
  if (extra.length > 0) throw malformed('Reference has unexpected elements');
  noAttributes(transforms, 'Transforms');
  const list = dsigChildren(transforms, 'Transforms');
  if (list.length !== XMLDSIG_PROFILE.transforms.length)
    throw malformed('Transforms must be enveloped-signature then exclusive c14n');
  list.forEach((t, i) => {
    expectName(t, 'Transform');
    expectAlgorithm(t, XMLDSIG_PROFILE.transforms[i] ?? '', 'Transform');
  });
  expectAlgorithm(digestMethod, SHA256, 'DigestMethod');
  noAttributes(digestValue, 'DigestValue');
  if (!/^\s*[A-Za-z0-9+/]{43}=\s*$/.test(simpleText(digestValue, 'DigestValue'))) {
    throw malformed('DigestValue is not a base64 SHA-256 digest');
  }

  noAttributes(keyInfo, 'KeyInfo');
  const [x509Data, ...otherKeyInfo] = dsigChildren(keyInfo, 'KeyInfo');
  expectName(x509Data, 'X509Data');
  if (otherKeyInfo.length > 0) throw malformed('KeyInfo must hold exactly one X509Data');
  noAttributes(x509Data, 'X509Data');
  const [x509Certificate, ...otherCerts] = dsigChildren(x509Data, 'X509Data');
  expectName(x509Certificate, 'X509Certificate');
  if (otherCerts.length > 0) throw malformed('X509Data must hold exactly one X509Certificate');
  noAttributes(x509Certificate, 'X509Certificate');
  const certificateBase64 = simpleText(x509Certificate, 'X509Certificate').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(certificateBase64))
    throw malformed('X509Certificate is not base64');
  return { algorithm, certificateBase64 };
}

function dsigChildren(el: Element, what: string): Element[] {
  requireElementOnly(el, what);
  const children = childElements(el);
  for (const c of children) {
    if (c.namespaceURI !== DSIG_NAMESPACE)
      throw malformed(`${what} holds an element of another namespace`);
  }
  return children;
}

function expectName(el: Element | undefined, name: string): asserts el is Element {
  if (el?.localName !== name) throw malformed(`expected ${name}`);
}

function checkAttributes(el: Element, allowed: readonly string[], what: string): void {
  for (let i = 0; i < el.attributes.length; i += 1) {
    const a = el.attributes.item(i);
    if (a === null || a.namespaceURI === 'http://www.w3.org/2000/xmlns/') continue;
    if (
      (a.namespaceURI !== null && a.namespaceURI !== '') ||
      !allowed.includes(a.localName ?? a.name)
    ) {
      throw malformed(`unexpected attribute on ${what}`);
    }
  }
}

function noAttributes(el: Element, what: string): void {
  checkAttributes(el, [], what);
}

function algorithmOf(el: Element, what: string): string {
  checkAttributes(el, ['Algorithm'], what);
  // Algorithm elements are empty in the profile (no HMACOutputLength, no InclusiveNamespaces).
  if (
    el.firstChild !== null &&
    (childElements(el).length > 0 || simpleText(el, what).trim() !== '')
  ) {
    throw malformed(`${what} must be empty`);
  }
  const uri = el.getAttribute('Algorithm');
  if (uri === null) throw malformed(`${what} has no Algorithm`);
  return uri;
}

function expectAlgorithm(el: Element, uri: string, what: string): void {
  if (algorithmOf(el, what) !== uri) throw malformed(`${what} algorithm is not in the allow list`);
}

/** Leaf must be issued and signed by the CA, both in date, leaf not a CA, key fit. */
function checkCertificate(
  base64: string,
  caPem: string,
  now: Date,
  algorithm: XmlDsigAlgorithm,
): { leaf: X509Certificate; leafPem: string } {
  let leaf: X509Certificate;
  let ca: X509Certificate;
  try {
    leaf = new X509Certificate(Buffer.from(base64, 'base64'));
  } catch (e) {
    throw malformed('X509Certificate cannot be read', e);
  }
  try {
    ca = new X509Certificate(caPem);
  } catch (e) {
    throw new ImppError('ERR_CONFIG_INVALID', 'XML-DSIG: CA certificate cannot be read', {
      cause: e,
    });
  }
  if (!ca.ca)
    throw new ImppError('ERR_CONFIG_INVALID', 'XML-DSIG: the trust anchor is not a CA certificate');
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey))
    throw untrusted('certificate is not issued by the CA');
  const leafPem = leaf.toString();
  const peculiarLeaf = new PeculiarCertificate(leafPem);
  const peculiarCa = new PeculiarCertificate(caPem);
  for (const [c, what] of [
    [peculiarLeaf, 'certificate'],
    [peculiarCa, 'CA certificate'],
  ] as const) {
    if (now < c.notBefore || now > c.notAfter) throw untrusted(`${what} is not valid at this time`);
  }
  const bc = peculiarLeaf.getExtension(BasicConstraintsExtension);
  if (bc?.ca === true || leaf.ca) throw untrusted('signer certificate is a CA certificate');
  const ku = peculiarLeaf.getExtension(KeyUsagesExtension);
  if (ku !== null && (ku.usages & KeyUsageFlags.digitalSignature) === 0) {
    throw untrusted('signer certificate key usage excludes digitalSignature');
  }
  checkKeyFits(leaf.publicKey, algorithm, 'signer certificate');
  return { leaf, leafPem };
}

function readSubjectAltNames(pem: string): XmlDsigSignerName[] {
  const san = new PeculiarCertificate(pem).getExtension(SubjectAlternativeNameExtension);
  return san === null ? [] : san.names.items.map((n) => ({ type: n.type, value: n.value }));
}

/** The certificate must speak for the entity: its domain (dNSName) or its address. */
function checkSignerNamesEntity(names: readonly XmlDsigSignerName[], doc: PidfDocument): void {
  const domain = doc.entity.domain.toLowerCase();
  const address = formatAddress(doc.entity);
  const ok = names.some(
    (n) =>
      (n.type === 'dns' && n.value.toLowerCase() === domain) ||
      (n.type === 'email' && n.value === address) ||
      (n.type === 'url' && (n.value === `pres:${address}` || n.value === `im:${address}`)),
  );
  if (!ok) throw untrusted('signer certificate does not name the presentity or its domain');
}
