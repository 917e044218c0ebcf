/**
 * Adversarial review of src/seal/payload: regression tests for the defects found, XML-DSIG
 * wrapping variants, and fast-check fuzzing asserting that only the documented ImppError codes
 * escape and that whatever verifies is exactly what was signed.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { isImppError, type ImppErrorCode } from '../../../src/errors.js';
import {
  cpimTextMessage,
  decodeCpim,
  encodeCpim,
  type CpimMessage,
} from '../../../src/seal/payload/cpim.js';
import { buildPidf, parsePidf, type PidfDocument } from '../../../src/seal/payload/pidf.js';
import { signPidf, verifySignedPidf } from '../../../src/seal/payload/xmldsig.js';
import { parseAddress } from '../../../src/trust/address.js';
import { makeCa, makeLeaf, type Issued } from './pki.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isImppError(e) ? e.code : `non-ImppError: ${String(e)}`;
  }
  return undefined;
}

function expectCode(fn: () => unknown, code: ImppErrorCode): void {
  expect(codeOf(fn)).toBe(code);
}

const PIDF = 'urn:ietf:params:xml:ns:pidf';
const DSIG = 'http://www.w3.org/2000/09/xmldsig#';

describe('review: PIDF mustUnderstand (RFC 3863 §4.3)', () => {
  const withMarker = (value: string): string =>
    `<presence xmlns="${PIDF}" xmlns:p="${PIDF}" xmlns:x="urn:x" entity="pres:a@example.com">` +
    `<x:e p:mustUnderstand="${value}"/></presence>`;

  it('every lexical form of xs:boolean true is honoured, not only the two bare spellings', () => {
    // xs:boolean collapses white space, so " true" and "1\t" mean true; an attacker must not be
    // able to slip a mandatory extension past a reader by padding the attribute.
    for (const v of ['true', '1', ' true', 'true ', '&#9;true', '&#10;1&#13;', '  1  ']) {
      expectCode(() => parsePidf(withMarker(v)), 'ERR_PAYLOAD_INVALID');
      expect(parsePidf(withMarker(v), { understoodNamespaces: ['urn:x'] }).extensions).toHaveLength(
        1,
      );
    }
  });

  it('a value that is not an xs:boolean is refused rather than read as false', () => {
    for (const v of ['TRUE', 'yes', 'tru e', '']) {
      expectCode(() => parsePidf(withMarker(v)), 'ERR_PAYLOAD_INVALID');
    }
    for (const v of ['false', '0', ' false ']) {
      expect(parsePidf(withMarker(v)).extensions).toHaveLength(1);
    }
  });
});

describe('review: XML characters (XML 1.0 §2.2 Char, WFC: Legal Character)', () => {
  const withNote = (inner: string): string =>
    `<presence xmlns="${PIDF}" entity="pres:a@example.com"><note>${inner}</note></presence>`;

  it('character references to characters XML cannot carry are refused, not decoded', () => {
    // xmldom decodes these (&#x110000; even into two lone surrogates); libxml2 refuses them, and
    // buildPidf could not write the result back.
    for (const ref of [
      '&#0;',
      '&#x1;',
      '&#x1F;',
      '&#xFFFE;',
      '&#xFFFF;',
      '&#xD800;',
      '&#xDFFF;',
      '&#x110000;',
      '&#xFFFD;',
      '&#x85;',
      '&#x2028;',
    ]) {
      expectCode(() => parsePidf(withNote(ref)), 'ERR_PAYLOAD_INVALID');
      expectCode(
        () =>
          parsePidf(
            `<presence xmlns="${PIDF}" entity="pres:a@example.com"><x:e xmlns:x="urn:x" a="${ref}"/></presence>`,
          ),
        'ERR_PAYLOAD_INVALID',
      );
    }
    expect(parsePidf(withNote('&#65;&#x1F600;&#9;')).notes[0]?.text).toBe('A\u{1F600}\t');
  });

  it('raw characters outside Char are refused as well', () => {
    for (const ch of ['\u0001', '\u001f', '\uFFFE', '\uFFFF']) {
      expectCode(() => parsePidf(withNote(`a${ch}b`)), 'ERR_PAYLOAD_INVALID');
      expectCode(() => parsePidf(withNote(`<!--${ch}-->`)), 'ERR_PAYLOAD_INVALID');
    }
  });

  it('whatever parses can be built again (parse never yields what build refuses)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 6 }),
        fc.nat({ max: 0x10ffff + 2 }),
        (s, cp) => {
          const body = `${s.replace(/[<&]/g, '')}&#${cp};`;
          let d: PidfDocument;
          try {
            d = parsePidf(withNote(body));
          } catch (e) {
            expect(isImppError(e, 'ERR_PAYLOAD_INVALID'), String(e)).toBe(true);
            return;
          }
          expect(parsePidf(buildPidf(d))).toEqual(d);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('review: PIDF size amplification', () => {
  it('extensions whose serialisation would repeat a long namespace URI are refused', () => {
    // 62 KB in; each of 2000 extensions is serialised with its 50 KB namespace declaration:
    // 100 million characters in the returned model.
    const uri = `urn:${'a'.repeat(50_000)}`;
    const bomb = `<presence xmlns="${PIDF}" xmlns:x="${uri}" entity="pres:a@example.com">${'<x:a/>'.repeat(2000)}</presence>`;
    expect(bomb.length).toBeLessThan(64 * 1024);
    expectCode(() => parsePidf(bomb), 'ERR_PAYLOAD_INVALID');
  });

  it('a large document with ordinary namespaces still parses', () => {
    const RPID = 'urn:ietf:params:xml:ns:pidf:rpid';
    const tuples = Array.from(
      { length: 64 },
      (_, i) =>
        `<tuple id="t${i}"><status><basic>open</basic></status><r:activities xmlns:r="${RPID}"><r:away/></r:activities><note>n</note></tuple>`,
    ).join('');
    const xml = `<presence xmlns="${PIDF}" entity="pres:a@example.com">${tuples}</presence>`;
    expect(parsePidf(xml).tuples).toHaveLength(64);
  });
});

describe('review: Message/CPIM encode produces only what decode accepts', () => {
  const base = cpimTextMessage({
    from: { address: parseAddress('alice@example.com') },
    to: [{ address: parseAddress('bob@example.com') }],
    text: 'hi',
  });

  it('a MIME header value or Content-Type with a tab or control character is refused on encode', () => {
    const bad: CpimMessage[] = [
      { ...base, content: { ...base.content, headers: [{ name: 'Content-ID', value: 'a\tb' }] } },
      { ...base, content: { ...base.content, contentType: 'text/plain;\tcharset=utf-8' } },
      { ...base, content: { ...base.content, contentType: 'text/plain; x="\u0001"' } },
      { ...base, content: { ...base.content, contentType: 'text/plain; x="\u007f"' } },
    ];
    for (const m of bad) expectCode(() => encodeCpim(m), 'ERR_PAYLOAD_INVALID');
  });

  it('arbitrary strings in every field: encode refuses, or decode gives the same model back', () => {
    const str = fc.string({ unit: 'binary', maxLength: 24 });
    fc.assert(
      fc.property(
        fc.record({
          formalName: fc.option(str, { nil: undefined }),
          subject: str,
          paramValue: str,
          value: str,
          mimeName: str,
          mimeValue: str,
          contentType: fc.oneof(
            str,
            str.map((s) => `text/plain; x="${s}"`),
          ),
        }),
        (f) => {
          const m: CpimMessage = {
            ...base,
            from:
              f.formalName === undefined
                ? base.from
                : { formalName: f.formalName, address: base.from.address },
            subject: [{ value: f.subject }],
            ns: [{ prefix: 'X', uri: 'urn:example:x' }],
            headers: [
              {
                prefix: 'X',
                name: 'H',
                params: [{ name: 'p', value: f.paramValue }],
                value: f.value,
              },
            ],
            content: {
              contentType: f.contentType,
              headers: [{ name: f.mimeName, value: f.mimeValue }],
              body: new Uint8Array(0),
            },
          };
          let bytes: Uint8Array;
          try {
            bytes = encodeCpim(m);
          } catch (e) {
            expect(isImppError(e, 'ERR_PAYLOAD_INVALID'), String(e)).toBe(true);
            return;
          }
          const back = decodeCpim(bytes);
          expect(back.from).toEqual(m.from);
          expect(back.subject).toEqual(m.subject);
          expect(back.headers).toEqual(m.headers);
          expect(back.content.contentType).toBe(m.content.contentType);
          expect(back.content.headers).toEqual(m.content.headers);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('review: XML-DSIG wrapping variants', () => {
  let ca: Issued;
  let leaf: Issued;
  let pidfXml: string;
  let expected: PidfDocument;
  let signed: string;
  let canonical: string;

  beforeAll(async () => {
    ca = await makeCa();
    leaf = await makeLeaf(ca, { kind: 'ec' });
    pidfXml = buildPidf(
      parsePidf(
        readFileSync(new URL('../../vectors/rfc3863/full-example.xml', import.meta.url), 'utf8'),
      ),
    );
    expected = parsePidf(pidfXml);
    signed = signPidf(pidfXml, {
      privateKeyPem: leaf.privateKeyPem,
      certificatePem: leaf.certificatePem,
      algorithm: 'ecdsa-sha256',
    });
    canonical = verifySignedPidf(signed, { caCertificatePem: ca.certificatePem }).canonicalXml;
  });

  const DOCUMENTED: readonly string[] = [
    'ERR_PAYLOAD_INVALID',
    'ERR_IDENTITY_UNTRUSTED',
    'ERR_CRYPTO_VERIFY_FAILED',
  ];

  /** Either refused with a documented code, or verified with exactly the signed content. */
  function refusedOrSame(xml: string | Uint8Array): 'refused' | 'same' {
    let v: ReturnType<typeof verifySignedPidf>;
    try {
      v = verifySignedPidf(xml, { caCertificatePem: ca.certificatePem });
    } catch (e) {
      expect(isImppError(e) ? e.code : String(e)).toSatisfy((c: string) => DOCUMENTED.includes(c));
      return 'refused';
    }
    expect(v.canonicalXml).toBe(canonical);
    expect(v.document).toEqual(expected);
    return 'same';
  }

  const sigXml = (): string => /<Signature[\s\S]*<\/Signature>/.exec(signed)?.[0] ?? '';

  it('a second Signature nested in an extension element, under any prefix, is refused', () => {
    const copy = sigXml();
    const prefixed = copy
      .replace(/<(\/?)([A-Za-z])/g, '<$1ds:$2')
      .replace(`<ds:Signature xmlns="${DSIG}"`, `<ds:Signature xmlns:ds="${DSIG}"`);
    for (const nested of [copy, prefixed]) {
      const xml = signed.replace('</tuple>', `<x:ext xmlns:x="urn:x">${nested}</x:ext></tuple>`);
      expectCode(
        () => verifySignedPidf(xml, { caCertificatePem: ca.certificatePem }),
        'ERR_PAYLOAD_INVALID',
      );
    }
    // The real signature wrapped into an extension of a fresh presence, with forged content.
    const forged = `<presence xmlns="${PIDF}" entity="pres:someone@example.com"><x:w xmlns:x="urn:x">${signed.replace(/^<\?xml[^>]*>\s*/, '')}</x:w></presence>`;
    expectCode(
      () => verifySignedPidf(forged, { caCertificatePem: ca.certificatePem }),
      'ERR_PAYLOAD_INVALID',
    );
  });

  it('look-alike signatures: another namespace, a redeclared default namespace, no namespace', () => {
    for (const ns of [
      'http://www.w3.org/2000/09/xmldsig',
      'http://www.w3.org/2000/09/xmldsig# ',
      '',
    ]) {
      const fake = sigXml().replace(`xmlns="${DSIG}"`, `xmlns="${ns}"`);
      const xml = signed.replace(sigXml(), fake);
      expect(refusedOrSame(xml)).toBe('refused');
    }
  });

  it('Reference URI variants and Id attributes are refused before any digest is computed', () => {
    for (const uri of [
      '#xpointer(/)',
      "#xpointer(id('x'))",
      '#x',
      '#',
      ' ',
      'file:///etc/passwd',
    ]) {
      const xml = signed
        .replace('<Reference URI="">', `<Reference URI="${uri}">`)
        .replace(`entity="pres:`, `Id="x" ID="x" id="x" entity="pres:`);
      expectCode(
        () => verifySignedPidf(xml, { caCertificatePem: ca.certificatePem }),
        'ERR_PAYLOAD_INVALID',
      );
    }
  });

  it('comments inside signed content, SignedInfo, DigestValue and SignatureValue never change what is returned', () => {
    const variants = [
      signed.replace('<tuple', '<!-- c --><tuple'),
      signed.replace('<SignedInfo>', '<SignedInfo><!-- c -->'),
      signed.replace(/<DigestValue>(.{10})/, '<DigestValue>$1<!-- c -->'),
      signed.replace(/<SignatureValue>(.{10})/, '<SignatureValue>$1<!-- c -->'),
      signed.replace(/<X509Certificate>(.{10})/, '<X509Certificate>$1<!-- c -->'),
      signed.replace(/<DigestValue>(.{10})/, '<DigestValue>$1<![CDATA[]]>'),
    ];
    for (const xml of variants) refusedOrSame(xml);
    expect(refusedOrSame(variants[0] ?? '')).toBe('same');
  });

  it('signPidf never signs content other than what it was given (xmldom 0.8 inside xml-crypto reads some names differently)', () => {
    for (const ext of [
      '<x:e xmlns:x="urn:x"><x:f \u{10000}a="1"/><x:g>kept?</x:g></x:e>',
      '<x:e xmlns:x="urn:x"><x:\u{10000}/></x:e>',
      '<x:e xmlns:x="urn:x" xmlns:\u{10000}="urn:y"/>',
      '<x:e xmlns:x="urn:x"><x:\u037E/><x:g>kept?</x:g></x:e>',
      '<x:e xmlns:x="urn:x"><x:f a\u037E="1"/></x:e>',
    ]) {
      const input = `<presence xmlns="${PIDF}" entity="pres:someone@example.com"><tuple id="t"><status><basic>closed</basic></status></tuple>${ext}</presence>`;
      let out: string;
      try {
        out = signPidf(input, {
          privateKeyPem: leaf.privateKeyPem,
          certificatePem: leaf.certificatePem,
          algorithm: 'ecdsa-sha256',
        });
      } catch (e) {
        expect(isImppError(e, 'ERR_PAYLOAD_INVALID'), String(e)).toBe(true);
        continue;
      }
      const v = verifySignedPidf(out, { caCertificatePem: ca.certificatePem });
      expect(v.document).toEqual(parsePidf(input));
    }
  });

  it('namespace amplification: a long URI used by many elements is refused before canonicalization', () => {
    // 61 KB in; exclusive c14n would write the 49 KB URI on each of 1800 siblings (~90 MB, several
    // hundred MB of heap) before the digest check fails. A public signature and certificate are
    // all an attacker needs to get that far.
    const uri = `urn:${'a'.repeat(49_000)}`;
    const bomb = `<presence xmlns="${PIDF}" xmlns:x="${uri}" entity="pres:someone@example.com">${'<x:a/>'.repeat(1800)}${sigXml()}</presence>`;
    expect(bomb.length).toBeLessThan(64 * 1024);
    expectCode(
      () => verifySignedPidf(bomb, { caCertificatePem: ca.certificatePem }),
      'ERR_PAYLOAD_INVALID',
    );
  });

  it('fuzz: mutations and insertions are refused with a documented code or verify to the signed content', () => {
    const snippets = [
      '<!-- x -->',
      `<Signature xmlns="${DSIG}"/>`,
      '<x:e xmlns:x="urn:x"/>',
      ' xmlns:ds="http://www.w3.org/2000/09/xmldsig#"',
      '<![CDATA[<Signature/>]]>',
      '&#x2028;',
      '\r\n',
      '<!DOCTYPE presence [<!ATTLIST presence Id ID #IMPLIED>]>',
      `<presence xmlns="${PIDF}" entity="pres:evil@example.com">`,
      '</presence>',
    ];
    fc.assert(
      fc.property(
        fc.nat(),
        fc.oneof(fc.constantFrom(...snippets), fc.string({ unit: 'binary', maxLength: 3 })),
        fc.nat({ max: 3 }),
        (at, insert, cut) => {
          const i = at % signed.length;
          refusedOrSame(signed.slice(0, i) + insert + signed.slice(i + cut));
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        refusedOrSame(b);
      }),
      { numRuns: 200 },
    );
  });
});
