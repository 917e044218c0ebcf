import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { SignedXml } from 'xml-crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isImppError, type ImppErrorCode } from '../../../src/errors.js';
import { buildPidf, parsePidf } from '../../../src/seal/payload/pidf.js';
import {
  EcdsaSha256,
  signPidf,
  verifySignedPidf,
  type XmlDsigAlgorithm,
} from '../../../src/seal/payload/xmldsig.js';
import { makeCa, makeLeaf, type Issued } from './pki.js';

const DAY = 86_400_000;
const EXC = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const ENV = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';

let ca: Issued;
let otherCa: Issued;
let ecLeaf: Issued;
let rsaLeaf: Issued;
let expiredLeaf: Issued;
let foreignLeaf: Issued;
let smallRsaLeaf: Issued;
let wrongNameLeaf: Issued;
let userLeaf: Issued;
let encipherOnlyLeaf: Issued;
let caLikeLeaf: Issued;
let pidfXml: string;
let tmp: string;

beforeAll(async () => {
  ca = await makeCa();
  otherCa = await makeCa('some other CA');
  [
    ecLeaf,
    rsaLeaf,
    expiredLeaf,
    foreignLeaf,
    smallRsaLeaf,
    wrongNameLeaf,
    userLeaf,
    encipherOnlyLeaf,
    caLikeLeaf,
  ] = await Promise.all([
    makeLeaf(ca, { kind: 'ec' }),
    makeLeaf(ca, { kind: 'rsa' }),
    makeLeaf(ca, {
      kind: 'ec',
      from: new Date(Date.now() - 10 * DAY),
      to: new Date(Date.now() - DAY),
    }),
    makeLeaf(otherCa, { kind: 'ec' }),
    makeLeaf(ca, { kind: 'rsa1024' }),
    makeLeaf(ca, { kind: 'ec', names: [{ type: 'dns', value: 'example.org' }] }),
    makeLeaf(ca, { kind: 'ec', names: [{ type: 'url', value: 'pres:someone@example.com' }] }),
    makeLeaf(ca, { kind: 'ec', keyUsage: x509.KeyUsageFlags.keyEncipherment }),
    makeLeaf(ca, { kind: 'ec', isCa: true }),
  ]);
  pidfXml = buildPidf(
    parsePidf(
      readFileSync(new URL('../../vectors/rfc3863/full-example.xml', import.meta.url), 'utf8'),
    ),
  );
  tmp = mkdtempSync(join(tmpdir(), 'impp-xmldsig-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const sign = (leaf: Issued, algorithm: XmlDsigAlgorithm, xml = pidfXml): string =>
  signPidf(xml, {
    privateKeyPem: leaf.privateKeyPem,
    certificatePem: leaf.certificatePem,
    algorithm,
  });

function expectCode(fn: () => unknown, code: ImppErrorCode, pattern?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isImppError(caught, code), String(caught)).toBe(true);
  if (pattern !== undefined) expect((caught as Error).message).toMatch(pattern);
}

const verify = (xml: string, caPem = ca.certificatePem): ReturnType<typeof verifySignedPidf> =>
  verifySignedPidf(xml, { caCertificatePem: caPem });

/** Signs with xml-crypto directly, outside the profile, as an attacker or a sloppy peer would. */
function craft(
  xml: string,
  leaf: Issued,
  o: {
    signatureAlgorithm: string;
    digest: string;
    xpath?: string;
    emptyUri?: boolean;
    transforms?: string[];
  },
): string {
  const sig = new SignedXml({
    privateKey: leaf.privateKeyPem,
    publicCert: leaf.certificatePem,
    canonicalizationAlgorithm: EXC,
    signatureAlgorithm: o.signatureAlgorithm,
  });
  sig.SignatureAlgorithms['http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256'] = EcdsaSha256;
  sig.addReference({
    xpath: o.xpath ?? '/*',
    isEmptyUri: o.emptyUri ?? true,
    transforms: o.transforms ?? [ENV, EXC],
    digestAlgorithm: o.digest,
  });
  sig.computeSignature(xml, { location: { reference: '/*', action: 'append' } });
  return sig.getSignedXml();
}

describe('sign and verify', () => {
  for (const [name, algorithm] of [
    ['ECDSA-SHA256 (P-256)', 'ecdsa-sha256'],
    ['RSA-SHA256', 'rsa-sha256'],
  ] as const) {
    it(`${name}: verifies and returns the signed document`, () => {
      const leaf = algorithm === 'rsa-sha256' ? rsaLeaf : ecLeaf;
      const signed = sign(leaf, algorithm);
      expect(signed).toContain('<Reference URI="">');
      const v = verify(signed);
      expect(v.algorithm).toBe(algorithm);
      expect(v.document).toEqual(parsePidf(pidfXml));
      expect(v.canonicalXml).not.toContain('Signature');
      expect(v.signer.subjectAltNames).toEqual([{ type: 'dns', value: 'example.com' }]);
      expect(v.signer.certificatePem).toContain('BEGIN CERTIFICATE');
    });
  }

  it('a user certificate naming pres:someone@example.com may sign for that presentity', () => {
    expect(verify(sign(userLeaf, 'ecdsa-sha256')).document.entity).toEqual({
      user: 'someone',
      domain: 'example.com',
    });
  });

  it('a user certificate naming the address as rfc822Name may sign; understood namespaces pass through', async () => {
    const emailLeaf = await makeLeaf(ca, {
      kind: 'ec',
      names: [{ type: 'email', value: 'someone@example.com' }],
    });
    const mu = readFileSync(
      new URL('../../vectors/rfc3863/must-understand.xml', import.meta.url),
      'utf8',
    );
    expectCode(
      () => sign(emailLeaf, 'ecdsa-sha256', mu),
      'ERR_PAYLOAD_INVALID',
      /must be understood/,
    );
    const signed = signPidf(mu, {
      privateKeyPem: emailLeaf.privateKeyPem,
      certificatePem: emailLeaf.certificatePem,
      algorithm: 'ecdsa-sha256',
      understoodNamespaces: ['http://id.mycompany.com/presence/'],
    });
    expectCode(() => verify(signed), 'ERR_PAYLOAD_INVALID', /must be understood/);
    const v = verifySignedPidf(signed, {
      caCertificatePem: ca.certificatePem,
      understoodNamespaces: ['http://id.mycompany.com/presence/'],
    });
    expect(v.signer.subjectAltNames).toEqual([{ type: 'email', value: 'someone@example.com' }]);
  });

  it('what the caller reads comes from the verified canonical bytes (comments are not signed)', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    const withComment = signed.replace("I'll be in Tokyo", "I'll be in<!-- not signed --> Tokyo");
    const v = verify(withComment);
    expect(v.document.notes).toEqual([{ text: "I'll be in Tokyo next week" }]);
  });

  it('signPidf refuses a key that does not match the certificate, a weak key, and a signed input', () => {
    expectCode(
      () =>
        signPidf(pidfXml, {
          privateKeyPem: rsaLeaf.privateKeyPem,
          certificatePem: ecLeaf.certificatePem,
          algorithm: 'ecdsa-sha256',
        }),
      'ERR_CRYPTO_INVALID_KEY',
    );
    expectCode(() => sign(smallRsaLeaf, 'rsa-sha256'), 'ERR_IDENTITY_UNTRUSTED', /2048/);
    expectCode(() => sign(ecLeaf, 'rsa-sha256'), 'ERR_IDENTITY_UNTRUSTED', /key type/);
    expectCode(
      () => sign(ecLeaf, 'ecdsa-sha256', sign(ecLeaf, 'ecdsa-sha256')),
      'ERR_PAYLOAD_INVALID',
      /already signed/,
    );
  });
});

describe('tampering', () => {
  it('a changed note is refused', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    expectCode(() => verify(signed.replace('Tokyo', 'Paris')), 'ERR_CRYPTO_VERIFY_FAILED');
  });

  it('a changed basic status, entity or signature value is refused', () => {
    const signed = sign(rsaLeaf, 'rsa-sha256');
    expectCode(
      () => verify(signed.replace('<basic>open</basic>', '<basic>closed</basic>')),
      'ERR_CRYPTO_VERIFY_FAILED',
    );
    expectCode(
      () => verify(signed.replace('pres:someone@example.com', 'pres:ceo@example.com')),
      'ERR_CRYPTO_VERIFY_FAILED',
    );
    const sv = /<SignatureValue>([^<]+)<\/SignatureValue>/.exec(signed)?.[1] ?? '';
    const flipped = (sv.startsWith('A') ? 'B' : 'A') + sv.slice(1);
    expectCode(() => verify(signed.replace(sv, flipped)), 'ERR_CRYPTO_VERIFY_FAILED');
  });
});

describe('signature wrapping', () => {
  it('moving the signed element inside a new presence is refused', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    const inner = signed.replace(/^<\?xml[^>]*\?>\n?/, '');
    // The original (signed) presence becomes an extension of the attacker's document.
    const wrapped = `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:mallory@example.com"><tuple id="evil"><status><basic>open</basic></status></tuple><w:wrap xmlns:w="urn:evil">${inner}</w:wrap></presence>`;
    expectCode(
      () => verify(wrapped),
      'ERR_PAYLOAD_INVALID',
      /exactly one dsig element|child of presence/,
    );
    // Same, with the Signature moved up to the new document element.
    const sigXml = /<Signature[\s\S]*<\/Signature>/.exec(inner)?.[0] ?? '';
    const moved = `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:mallory@example.com"><w:wrap xmlns:w="urn:evil">${inner.replace(sigXml, '')}</w:wrap>${sigXml}</presence>`;
    expectCode(() => verify(moved), 'ERR_CRYPTO_VERIFY_FAILED');
  });

  it('a second presence element smuggled into the signed document is refused', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    const smuggled = signed.replace(
      '<Signature',
      '<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" entity="pres:mallory@example.com"/><Signature',
    );
    expectCode(() => verify(smuggled), 'ERR_CRYPTO_VERIFY_FAILED');
  });

  it('a validly signed Reference to an Id elsewhere is refused', () => {
    const xml = pidfXml.replace('<tuple id="eg92n8">', '<tuple id="eg92n8" Id="t2">');
    const bySubtree = craft(xml, ecLeaf, {
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
      digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
      xpath: "//*[@Id='t2']",
      emptyUri: false,
      transforms: [EXC],
    });
    expect(bySubtree).toContain('URI="#t2"');
    expectCode(() => verify(bySubtree), 'ERR_PAYLOAD_INVALID', /URI=""/);
  });

  it('two signatures, a signature that is not last, or one with an Object are refused', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    const sigXml = /<Signature[\s\S]*<\/Signature>/.exec(signed)?.[0] ?? '';
    expectCode(
      () => verify(signed.replace('</presence>', `${sigXml}</presence>`)),
      'ERR_PAYLOAD_INVALID',
      /exactly one/,
    );
    expectCode(
      () => verify(signed.replace('</Signature>', '</Signature><x:e xmlns:x="urn:x">1</x:e>')),
      'ERR_PAYLOAD_INVALID',
      /last child/,
    );
    expectCode(
      () => verify(signed.replace('</KeyInfo>', '</KeyInfo><Object>x</Object>')),
      'ERR_PAYLOAD_INVALID',
      /beyond/,
    );
    expectCode(
      () => verify(signed.replace('<SignedInfo>', '<SignedInfo Id="x">')),
      'ERR_PAYLOAD_INVALID',
      /unexpected attribute/,
    );
    expectCode(
      () =>
        verify(
          signed.replace(
            '<Transforms>',
            '<Transforms><Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>',
          ),
        ),
      'ERR_PAYLOAD_INVALID',
      /Transforms/,
    );
    // Look-alike signature parts in another namespace, which name-based lookups could pick up.
    expectCode(
      () => verify(signed.replace('<Signature', '<x:SignedInfo xmlns:x="urn:x"/><Signature')),
      'ERR_PAYLOAD_INVALID',
      /local name/,
    );
  });

  it('every part of the Signature is checked against the profile', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    const reference = /<Reference[\s\S]*<\/Reference>/.exec(signed)?.[0] ?? '';
    const x509Data = /<X509Data>[\s\S]*<\/X509Data>/.exec(signed)?.[0] ?? '';
    const cert = /<X509Certificate>[\s\S]*<\/X509Certificate>/.exec(signed)?.[0] ?? '';
    const cases: [string, string, RegExp][] = [
      ['two References', signed.replace(reference, reference + reference), /exactly one Reference/],
      [
        'an element inside Reference',
        signed.replace('</DigestValue>', '</DigestValue><Foo/>'),
        /unexpected elements/,
      ],
      [
        'transforms in the other order',
        signed.replace(
          `<Transform Algorithm="${ENV}"/><Transform Algorithm="${EXC}"/>`,
          `<Transform Algorithm="${EXC}"/><Transform Algorithm="${ENV}"/>`,
        ),
        /Transform algorithm/,
      ],
      [
        'a DigestValue that is not a digest',
        signed.replace(/<DigestValue>[^<]+/, '<DigestValue>AAAA'),
        /DigestValue/,
      ],
      ['two X509Data', signed.replace(x509Data, x509Data + x509Data), /exactly one X509Data/],
      ['two certificates', signed.replace(cert, cert + cert), /exactly one X509Certificate/],
      [
        'a certificate that is not base64',
        signed.replace(cert, '<X509Certificate>!!</X509Certificate>'),
        /not base64/,
      ],
      [
        'a certificate that is not X.509',
        signed.replace(cert, '<X509Certificate>AAAA</X509Certificate>'),
        /cannot be read/,
      ],
      [
        'a foreign element in SignedInfo',
        signed.replace('<SignedInfo>', '<SignedInfo><x:a xmlns:x="urn:x"/>'),
        /another namespace/,
      ],
      [
        'a parameter inside SignatureMethod',
        signed.replace(
          /<SignatureMethod Algorithm="([^"]+)"\/>/,
          '<SignatureMethod Algorithm="$1"><HMACOutputLength>8</HMACOutputLength></SignatureMethod>',
        ),
        /must be empty/,
      ],
      [
        'a SignatureValue that is not base64',
        signed.replace(/<SignatureValue>[^<]+/, '<SignatureValue>!!'),
        /not base64/,
      ],
      [
        'a document element that is not presence',
        signed.replace(/presence/g, 'presencia'),
        /PIDF presence/,
      ],
    ];
    for (const [name, xml, pattern] of cases) {
      expect(xml, name).not.toBe(signed);
      expectCode(() => verify(xml), 'ERR_PAYLOAD_INVALID', pattern);
    }
  });

  it('a trust anchor that cannot be read or is not a CA is a configuration error', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    expectCode(() => verify(signed, 'not a certificate'), 'ERR_CONFIG_INVALID');
    expectCode(() => verify(signed, ecLeaf.certificatePem), 'ERR_CONFIG_INVALID', /not a CA/);
    expectCode(
      () =>
        signPidf(pidfXml, {
          privateKeyPem: ecLeaf.privateKeyPem,
          certificatePem: ecLeaf.certificatePem,
          algorithm: 'dsa-sha1' as XmlDsigAlgorithm,
        }),
      'ERR_PAYLOAD_INVALID',
      /unknown algorithm/,
    );
  });

  it('an unsigned document is refused', () => {
    expectCode(() => verify(pidfXml), 'ERR_PAYLOAD_INVALID', /exactly one/);
  });
});

describe('certificates', () => {
  it('a certificate from another CA is refused', () => {
    expectCode(
      () => verify(sign(foreignLeaf, 'ecdsa-sha256')),
      'ERR_IDENTITY_UNTRUSTED',
      /not issued by the CA/,
    );
    // And the right signature checked against the wrong trust anchor.
    expectCode(
      () => verify(sign(ecLeaf, 'ecdsa-sha256'), otherCa.certificatePem),
      'ERR_IDENTITY_UNTRUSTED',
    );
  });

  it('an expired certificate is refused, and a valid one outside its dates too', () => {
    expectCode(
      () => verify(sign(expiredLeaf, 'ecdsa-sha256')),
      'ERR_IDENTITY_UNTRUSTED',
      /not valid at this time/,
    );
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    expectCode(
      () =>
        verifySignedPidf(signed, {
          caCertificatePem: ca.certificatePem,
          now: new Date(Date.now() + 365 * DAY),
        }),
      'ERR_IDENTITY_UNTRUSTED',
      /not valid at this time/,
    );
  });

  it('a certificate that names another domain, lacks digitalSignature, or is a CA is refused', () => {
    expectCode(
      () => verify(sign(wrongNameLeaf, 'ecdsa-sha256')),
      'ERR_IDENTITY_UNTRUSTED',
      /does not name/,
    );
    expectCode(
      () => verify(sign(encipherOnlyLeaf, 'ecdsa-sha256')),
      'ERR_IDENTITY_UNTRUSTED',
      /digitalSignature/,
    );
    expectCode(
      () => verify(sign(caLikeLeaf, 'ecdsa-sha256')),
      'ERR_IDENTITY_UNTRUSTED',
      /CA certificate/,
    );
  });

  it('a certificate swapped in KeyInfo does not verify', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    const b64 = (pem: string): string => pem.replace(/-----[^-]+-----|\s/g, '');
    const swapped = signed.replace(b64(ecLeaf.certificatePem), b64(userLeaf.certificatePem));
    expectCode(() => verify(swapped), 'ERR_CRYPTO_VERIFY_FAILED');
  });

  it('an RSA key under 2048 bits is refused', () => {
    const weak = craft(pidfXml, smallRsaLeaf, {
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
      digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
    });
    expectCode(() => verify(weak), 'ERR_IDENTITY_UNTRUSTED', /2048/);
  });
});

describe('algorithm allow list', () => {
  it('SHA-1 signatures and digests are refused', () => {
    const rsaSha1 = craft(pidfXml, rsaLeaf, {
      signatureAlgorithm: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
      digest: 'http://www.w3.org/2000/09/xmldsig#sha1',
    });
    expectCode(() => verify(rsaSha1), 'ERR_PAYLOAD_INVALID', /allow list/);
    const sha1Digest = craft(pidfXml, rsaLeaf, {
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
      digest: 'http://www.w3.org/2000/09/xmldsig#sha1',
    });
    expectCode(() => verify(sha1Digest), 'ERR_PAYLOAD_INVALID', /DigestMethod/);
  });

  it('RSA-SHA512, inclusive c14n and HMAC are refused', () => {
    const sha512 = craft(pidfXml, rsaLeaf, {
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
      digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
    });
    expectCode(() => verify(sha512), 'ERR_PAYLOAD_INVALID', /allow list/);
    const inclusive = craft(pidfXml, rsaLeaf, {
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
      digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
      transforms: [ENV, 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315'],
    });
    expectCode(() => verify(inclusive), 'ERR_PAYLOAD_INVALID', /Transform/);
    const hmac = sign(ecLeaf, 'ecdsa-sha256').replace(
      'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
      'http://www.w3.org/2000/09/xmldsig#hmac-sha1',
    );
    expectCode(() => verify(hmac), 'ERR_PAYLOAD_INVALID', /allow list/);
  });

  it('the caller can narrow the allow list, never widen it', () => {
    const rsa = sign(rsaLeaf, 'rsa-sha256');
    expectCode(
      () =>
        verifySignedPidf(rsa, {
          caCertificatePem: ca.certificatePem,
          algorithms: ['ecdsa-sha256'],
        }),
      'ERR_PAYLOAD_INVALID',
      /allow list/,
    );
    expectCode(
      () =>
        verifySignedPidf(rsa, {
          caCertificatePem: ca.certificatePem,
          algorithms: ['rsa-sha1' as XmlDsigAlgorithm],
        }),
      'ERR_PAYLOAD_INVALID',
      /allow list/,
    );
  });

  it('an RSA signature claimed as ECDSA (algorithm confusion) is refused', () => {
    const rsa = sign(rsaLeaf, 'rsa-sha256').replace(
      'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
      'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
    );
    expectCode(() => verify(rsa), 'ERR_IDENTITY_UNTRUSTED', /key type/);
  });
});

describe('interop: xmlsec1 --verify', () => {
  /** Missing xmlsec1 fails the test (never skips it): CI must install it. */
  function requireXmlsec1(): void {
    const probe = spawnSync('xmlsec1', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined || probe.status !== 0) {
      throw new Error(
        'xmlsec1 is not installed: the XML-DSIG interop test needs it (Debian/Ubuntu: apt-get install xmlsec1)',
      );
    }
  }

  function xmlsec1(xml: string, caPem: string): { status: number | null; output: string } {
    requireXmlsec1();
    const file = join(tmp, `signed-${Math.random().toString(36).slice(2)}.xml`);
    const caFile = join(tmp, `ca-${Math.random().toString(36).slice(2)}.pem`);
    writeFileSync(file, xml);
    writeFileSync(caFile, caPem);
    // Enveloped signature with URI="": no --id-attr needed. The signer's certificate comes from
    // KeyInfo/X509Data and must chain to the trusted CA.
    const r = spawnSync('xmlsec1', ['--verify', '--trusted-pem', caFile, file], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  }

  for (const [name, algorithm] of [
    ['ECDSA-SHA256', 'ecdsa-sha256'],
    ['RSA-SHA256', 'rsa-sha256'],
  ] as const) {
    it(`xmlsec1 accepts the ${name} signed PIDF`, () => {
      const signed = sign(algorithm === 'rsa-sha256' ? rsaLeaf : ecLeaf, algorithm);
      const r = xmlsec1(signed, ca.certificatePem);
      expect(r.status, r.output).toBe(0);
      expect(r.output).toMatch(/OK/);
    });
  }

  for (const [name, algorithm, uri] of [
    ['ECDSA-SHA256', 'ecdsa-sha256', 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256'],
    ['RSA-SHA256', 'rsa-sha256', 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256'],
  ] as const) {
    it(`verifySignedPidf accepts a PIDF that xmlsec1 --sign signed with ${name}`, () => {
      requireXmlsec1();
      const leaf = algorithm === 'rsa-sha256' ? rsaLeaf : ecLeaf;
      const id = Math.random().toString(36).slice(2);
      const keyFile = join(tmp, `key-${id}.pem`);
      const certFile = join(tmp, `cert-${id}.pem`);
      const template = join(tmp, `template-${id}.xml`);
      const out = join(tmp, `out-${id}.xml`);
      writeFileSync(keyFile, leaf.privateKeyPem);
      writeFileSync(certFile, leaf.certificatePem);
      // An xmlsec1 signature template: ds: prefix, line breaks, empty values that --sign fills.
      const signatureTemplate = [
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">',
        '<ds:SignedInfo>',
        `<ds:CanonicalizationMethod Algorithm="${EXC}"/>`,
        `<ds:SignatureMethod Algorithm="${uri}"/>`,
        '<ds:Reference URI="">',
        `<ds:Transforms><ds:Transform Algorithm="${ENV}"/><ds:Transform Algorithm="${EXC}"/></ds:Transforms>`,
        '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>',
        '<ds:DigestValue/>',
        '</ds:Reference>',
        '</ds:SignedInfo>',
        '<ds:SignatureValue/>',
        '<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>',
        '</ds:Signature>',
      ].join('\n');
      writeFileSync(template, pidfXml.replace('</presence>', `${signatureTemplate}</presence>`));
      const r = spawnSync(
        'xmlsec1',
        ['--sign', '--privkey-pem', `${keyFile},${certFile}`, '--output', out, template],
        {
          encoding: 'utf8',
          timeout: 15_000,
        },
      );
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      const signed = readFileSync(out, 'utf8');
      const v = verify(signed);
      expect(v.algorithm).toBe(algorithm);
      expect(v.document).toEqual(parsePidf(pidfXml));
    });
  }

  it('xmlsec1 rejects a tampered document and a certificate from another CA (the check can fail)', () => {
    const signed = sign(ecLeaf, 'ecdsa-sha256');
    expect(xmlsec1(signed.replace('Tokyo', 'Paris'), ca.certificatePem).status).not.toBe(0);
    expect(xmlsec1(sign(foreignLeaf, 'ecdsa-sha256'), ca.certificatePem).status).not.toBe(0);
  });
});
