import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isImppError } from '../../../src/errors.js';
import {
  buildPidf,
  DEFAULT_PIDF_LIMITS,
  parsePidf,
  type PidfDocument,
  type PidfNote,
  type PidfTuple,
} from '../../../src/seal/payload/pidf.js';

const vector = (name: string): string =>
  readFileSync(new URL(`../../vectors/rfc3863/${name}`, import.meta.url), 'utf8');

function expectRefused(input: string | Uint8Array, pattern?: RegExp): void {
  let caught: unknown;
  try {
    parsePidf(input);
  } catch (e) {
    caught = e;
  }
  expect(isImppError(caught, 'ERR_PAYLOAD_INVALID'), String(caught)).toBe(true);
  if (pattern !== undefined) expect((caught as Error).message).toMatch(pattern);
}

const PIDF = 'urn:ietf:params:xml:ns:pidf';
const doc = (inner: string, attrs = ''): string =>
  `<?xml version="1.0" encoding="UTF-8"?><presence xmlns="${PIDF}" entity="pres:someone@example.com"${attrs}>${inner}</presence>`;
const TUPLE = '<tuple id="t1"><status><basic>open</basic></status></tuple>';

describe('RFC 3863 examples (test/vectors/rfc3863)', () => {
  it('full example: two tuples, status extensions, notes in two languages, timestamp', () => {
    const d = parsePidf(vector('full-example.xml'));
    expect(d.entity).toEqual({ user: 'someone', domain: 'example.com' });
    expect(d.tuples).toHaveLength(2);
    const [a, b] = d.tuples as [PidfTuple, PidfTuple];
    expect(a.id).toBe('bs35r9');
    expect(a.status.basic).toBe('open');
    expect(a.status.extensions).toEqual([
      '<im:im xmlns:im="urn:ietf:params:xml:ns:pidf:im">busy</im:im>',
      '<myex:location xmlns:myex="http://id.example.com/presence/">home</myex:location>',
    ]);
    expect(a.contact).toEqual({ uri: 'im:someone@mobilecarrier.net', priority: '0.8' });
    expect(a.notes).toEqual([
      { text: "Don't Disturb Please!", lang: 'en' },
      { text: "Ne derangez pas, s'il vous plait", lang: 'fr' },
    ]);
    expect(a.timestamp).toBe('2001-10-27T16:49:29Z');
    expect(b).toEqual({
      id: 'eg92n8',
      status: { basic: 'open', extensions: [] },
      extensions: [],
      notes: [],
      contact: { uri: 'mailto:someone@example.com', priority: '1.0' },
    });
    expect(d.notes).toEqual([{ text: "I'll be in Tokyo next week" }]);
    expect(d.extensions).toEqual([]);
  });

  it('the namespace-prefixed and default-namespace forms parse to the same document', () => {
    const prefixed = parsePidf(vector('namespace-prefix.xml'));
    expect(parsePidf(vector('default-namespace.xml'))).toEqual(prefixed);
    expect(prefixed.tuples).toEqual([
      {
        id: 'sg89ae',
        status: { basic: 'open', extensions: [] },
        extensions: [],
        notes: [],
        contact: { uri: 'tel:+09012345678', priority: '0.8' },
      },
    ]);
  });

  it('status extension', () => {
    const d = parsePidf(vector('status-extension.xml'));
    expect(d.tuples[0]?.status).toEqual({
      basic: 'open',
      extensions: [
        '<local:location xmlns:local="urn:example-com:pidf-status-type">home</local:location>',
      ],
    });
    expect(d.tuples[0]?.contact).toEqual({ uri: 'im:someone@example.com' });
  });

  it('tuple and presence extensions; contact white space collapsed', () => {
    const d = parsePidf(vector('tuple-and-presence-extensions.xml'));
    expect(d.tuples[0]?.extensions).toEqual([
      '<myex:mytupletag xmlns:myex="http://id.example.com/presence/">Extended value in tuple</myex:mytupletag>',
    ]);
    expect(d.tuples[0]?.contact).toEqual({ uri: 'tel:+09012345678', priority: '0.65' });
    expect(d.tuples[1]?.contact).toEqual({ uri: 'im:someone@mobilecarrier.net', priority: '1.0' });
    expect(d.extensions).toEqual([
      '<myex:mytag xmlns:myex="http://id.example.com/presence/">My extended presentity information</myex:mytag>',
    ]);
  });

  it('mustUnderstand: refused unless the namespace is understood (RFC 3863 mandatory extensions)', () => {
    expectRefused(vector('must-understand.xml'), /must be understood/);
    const d = parsePidf(vector('must-understand.xml'), {
      understoodNamespaces: ['http://id.mycompany.com/presence/'],
    });
    expect(d.tuples[0]?.contact).toEqual({ uri: 'tel:+09012345678', priority: '0.725' });
    expect(d.tuples[0]?.extensions[0]).toContain('impp:mustUnderstand="1"');
  });

  it('every example survives build → parse unchanged, extensions written back', () => {
    for (const name of [
      'full-example.xml',
      'namespace-prefix.xml',
      'default-namespace.xml',
      'status-extension.xml',
      'tuple-and-presence-extensions.xml',
    ]) {
      const d = parsePidf(vector(name));
      const rebuilt = buildPidf(d);
      expect(parsePidf(rebuilt)).toEqual(d);
    }
    const mu = parsePidf(vector('must-understand.xml'), {
      understoodNamespaces: ['http://id.mycompany.com/presence/'],
    });
    expect(buildPidf(mu)).toContain(
      '<myex:ex1 xmlns:impp="urn:ietf:params:xml:ns:pidf" impp:mustUnderstand="1">val1</myex:ex1>',
    );
  });
});

describe('XML attacks are refused with ERR_PAYLOAD_INVALID', () => {
  it('billion laughs (internal entity expansion)', () => {
    const lol = `<?xml version="1.0"?>
<!DOCTYPE presence [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<presence xmlns="${PIDF}" entity="pres:a@example.com"><note>&lol9;</note></presence>`;
    expectRefused(lol, /DOCTYPE/);
  });

  it('external entity (file:///etc/passwd) and external DTD', () => {
    expectRefused(
      `<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><presence xmlns="${PIDF}" entity="pres:a@example.com"><note>&xxe;</note></presence>`,
      /DOCTYPE/,
    );
    expectRefused(
      `<!DOCTYPE presence SYSTEM "http://127.0.0.1:1/evil.dtd"><presence xmlns="${PIDF}" entity="pres:a@example.com"/>`,
      /DOCTYPE/,
    );
    expectRefused(
      `<!doctype presence><presence xmlns="${PIDF}" entity="pres:a@example.com"/>`,
      /DOCTYPE/,
    );
    // An ENTITY declaration anywhere, even without a DOCTYPE keyword the parser would see.
    expectRefused(doc('<!-- <!ENTITY x "y"> -->'), /ENTITY/);
  });

  it('an entity reference without a declaration', () => {
    expectRefused(doc('<note>&xxe;</note>'), /well-formed/);
  });

  it('depth bomb (5000 levels inside the size limit)', () => {
    const depth = 5000;
    const bomb = doc(`${'<x:a>'.repeat(depth)}${'</x:a>'.repeat(depth)}`, ' xmlns:x="urn:x"');
    expect(new TextEncoder().encode(bomb).length).toBeLessThan(DEFAULT_PIDF_LIMITS.maxBytes);
    expectRefused(bomb, /deeper than 32/);
    const small = doc(`${'<x:a>'.repeat(40)}${'</x:a>'.repeat(40)}`, ' xmlns:x="urn:x"');
    expectRefused(small, /deeper than 32/);
  });

  it('oversize documents, before parsing', () => {
    const big = doc(`<note>${'a'.repeat(DEFAULT_PIDF_LIMITS.maxBytes)}</note>`);
    const started = performance.now();
    expectRefused(big, /larger than 65536/);
    expectRefused(new TextEncoder().encode(big), /larger than 65536/);
    expect(performance.now() - started).toBeLessThan(200);
  });

  it('wrong or missing namespace', () => {
    expectRefused(`<presence entity="pres:a@example.com">${TUPLE}</presence>`, /presence in urn/);
    expectRefused(
      `<presence xmlns="urn:ietf:params:xml:ns:pidf:im" entity="pres:a@example.com"/>`,
      /presence in urn/,
    );
    expectRefused(
      `<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf2" entity="pres:a@example.com"/>`,
      /presence in urn/,
    );
    expectRefused(`<presenceX xmlns="${PIDF}" entity="pres:a@example.com"/>`, /presence in urn/);
  });

  it('processing instructions and foreign encodings', () => {
    expectRefused(`<?xml-stylesheet href="x"?>${doc('')}`, /processing instructions/);
    expectRefused(doc('<?php x ?>'), /processing instructions/);
    expectRefused(
      `<?xml version="1.0" encoding="ISO-8859-1"?><presence xmlns="${PIDF}" entity="pres:a@example.com"/>`,
      /UTF-8/,
    );
    expectRefused(
      `<?xml version="1.1"?><presence xmlns="${PIDF}" entity="pres:a@example.com"/>`,
      /declaration/,
    );
    expectRefused(
      new Uint8Array([
        ...new TextEncoder().encode(doc('<note>')),
        0xc0,
        0xaf,
        ...new TextEncoder().encode('</note>'),
      ]),
      /UTF-8/,
    );
    expectRefused(`\uFEFF${doc('')}`, /byte-order mark/);
  });

  it('XML 1.1 line ends (NEL, U+2028, U+2029), on which parsers disagree', () => {
    for (const ch of ['\u0085', '\u2028', '\u2029']) {
      expectRefused(doc(`<note>a${ch}b</note>`), /U\+2028/);
      expect(() =>
        buildPidf({
          entity: { user: 'a', domain: 'example.com' },
          tuples: [],
          notes: [{ text: ch }],
          extensions: [],
        }),
      ).toThrow(/characters XML cannot carry/);
    }
  });

  it('malformed XML never comes back half parsed', () => {
    for (const bad of [
      doc('<tuple id="t1">'),
      `${doc(TUPLE)}<junk/>`,
      `${doc(TUPLE)}trailing`,
      doc('<note>a &amp b</note>'),
      doc('<note a="1" a="2">x</note>'),
      doc('<u:x/>'),
      '',
      '<',
    ]) {
      expectRefused(bad);
    }
  });
});

describe('PIDF structure is checked strictly', () => {
  const refusals: [string, string, RegExp][] = [
    [
      'tuple without status',
      doc('<tuple id="t1"><contact>im:a@b.c</contact></tuple>'),
      /start with status/,
    ],
    [
      'basic not open/closed',
      doc('<tuple id="t1"><status><basic>busy</basic></status></tuple>'),
      /open or closed/,
    ],
    ['duplicate tuple id', doc(TUPLE + TUPLE), /duplicate/],
    ['tuple id not an NCName', doc('<tuple id="1t"><status/></tuple>'), /NCName/],
    ['tuple after note', doc(`<note>n</note>${TUPLE}`), /tuple after/],
    ['note after extension', doc('<x:e xmlns:x="urn:x">1</x:e><note>n</note>'), /note after/],
    ['text in presence', doc(`hello${TUPLE}`), /character data/],
    ['unknown PIDF element', doc('<tuple id="t1"><status/><bogus/></tuple>'), /unknown PIDF/],
    ['extension without a namespace', doc('<x xmlns="">1</x>'), /another namespace/],
    [
      'priority above 1',
      doc('<tuple id="t1"><status/><contact priority="1.5">im:a@b.c</contact></tuple>'),
      /qvalue/,
    ],
    [
      'bad timestamp',
      doc('<tuple id="t1"><status/><timestamp>2001-13-01T00:00:00Z</timestamp></tuple>'),
      /RFC 3339/,
    ],
    [
      'two contacts',
      doc('<tuple id="t1"><status/><contact>im:a@b.c</contact><contact>im:a@b.c</contact></tuple>'),
      /more than one contact/,
    ],
    [
      'contact not a URI',
      doc('<tuple id="t1"><status/><contact>not a uri</contact></tuple>'),
      /not a URI/,
    ],
    ['element inside a note', doc('<note><b>x</b></note>'), /text only/],
    ['unknown attribute', doc(TUPLE, ' version="2"'), /unknown attribute/],
    ['entity not pres:', `<presence xmlns="${PIDF}" entity="sip:a@example.com"/>`, /pres: URI/],
    ['no entity', `<presence xmlns="${PIDF}"/>`, /entity/],
    [
      'extension before basic',
      doc('<tuple id="t1"><status><x:e xmlns:x="urn:x"/><basic>open</basic></status></tuple>'),
      /basic must come first/,
    ],
    ['bad xml:lang', doc('<note xml:lang="not a tag">x</note>'), /language tag/],
  ];
  for (const [name, input, pattern] of refusals) {
    it(`refuses: ${name}`, () => {
      expectRefused(input, pattern);
    });
  }

  it('limits: tuples and nodes', () => {
    const tuples = Array.from({ length: 65 }, (_, i) => `<tuple id="t${i}"><status/></tuple>`).join(
      '',
    );
    expectRefused(doc(tuples), /more than 64 tuples/);
    const notes = '<note>n</note>'.repeat(2100);
    expectRefused(doc(notes), /more than 4096 nodes/);
  });

  it('drops foreign attributes such as xsi:schemaLocation, keeps comments out of the model', () => {
    const d = parsePidf(
      doc(
        `<!-- c -->${TUPLE}`,
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:ietf:params:xml:ns:pidf pidf.xsd"',
      ),
    );
    expect(d.tuples).toHaveLength(1);
  });
});

describe('build validates the model', () => {
  const base: PidfDocument = {
    entity: { user: 'alice', domain: 'example.com' },
    tuples: [{ id: 't1', status: { basic: 'open', extensions: [] }, extensions: [], notes: [] }],
    notes: [],
    extensions: [],
  };
  const bad: [string, PidfDocument][] = [
    ['note with a NUL', { ...base, notes: [{ text: 'a\u0000b' }] }],
    ['duplicate ids', { ...base, tuples: [...base.tuples, ...base.tuples] }],
    [
      'extension in the PIDF namespace',
      { ...base, extensions: [`<note xmlns="${PIDF}">x</note>`] },
    ],
    ['extension that is not XML', { ...base, extensions: ['<x:a xmlns:x="urn:x">'] }],
    ['extension with a DOCTYPE', { ...base, extensions: ['<!DOCTYPE a><x:a xmlns:x="urn:x"/>'] }],
    [
      'bad priority',
      { ...base, tuples: [{ ...base.tuples[0]!, contact: { uri: 'im:a@b.c', priority: '2' } }] },
    ],
  ];
  for (const [name, model] of bad) {
    it(`refuses: ${name}`, () => {
      expect(() => buildPidf(model)).toThrow(
        expect.objectContaining({ code: 'ERR_PAYLOAD_INVALID' }),
      );
    });
  }

  it('keeps carriage returns and markup characters in notes', () => {
    const model: PidfDocument = { ...base, notes: [{ text: 'a\r\nb\rc <&> "q" \'a\' ]]>' }] };
    expect(parsePidf(buildPidf(model))).toEqual(model);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests

// Characters XML 1.0 can carry (its Char production), with CR, LF and TAB among them.
const arbXmlChar = fc.oneof(
  fc.constantFrom('\t', '\n', '\r', '<', '&', '>', '"', "'"),
  fc
    .integer({ min: 0x20, max: 0xd7ff })
    .filter((c) => c !== 0x85 && c !== 0x2028 && c !== 0x2029)
    .map((c) => String.fromCodePoint(c)),
  fc.integer({ min: 0xe000, max: 0xfffc }).map((c) => String.fromCodePoint(c)),
  fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
);
const arbNote: fc.Arbitrary<PidfNote> = fc
  .tuple(
    fc.string({ unit: arbXmlChar, maxLength: 40 }),
    fc.option(fc.stringMatching(/^[a-z]{2}(?:-[A-Z]{2})?$/), { nil: undefined }),
  )
  .map(([text, lang]) => (lang === undefined ? { text } : { text, lang }));
const arbExtension = fc
  .tuple(
    fc.constantFrom(
      'urn:example:a',
      'http://id.example.com/presence/',
      'urn:ietf:params:xml:ns:pidf:rpid',
    ),
    fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,8}$/),
    fc.stringMatching(/^[A-Za-z0-9 ]{1,20}$/),
  )
  .map(([ns, name, text]) => `<x:${name} xmlns:x="${ns}">${text}</x:${name}>`);
// Built once: arbitraries made inside a chain() are rebuilt for every sample, which is slow.
const arbTupleBody: fc.Arbitrary<Omit<PidfTuple, 'id'>> = fc
  .record({
    basic: fc.option(fc.constantFrom('open' as const, 'closed' as const), { nil: undefined }),
    statusExt: fc.array(arbExtension, { maxLength: 2 }),
    ext: fc.array(arbExtension, { maxLength: 2 }),
    contact: fc.option(
      fc.record({
        uri: fc.stringMatching(/^(?:im|mailto|tel|sip):[a-z0-9@.+]{1,20}$/),
        priority: fc.option(fc.stringMatching(/^(?:0(?:\.\d{1,3})?|1(?:\.0{1,3})?)$/), {
          nil: undefined,
        }),
      }),
      { nil: undefined },
    ),
    notes: fc.array(arbNote, { maxLength: 3 }),
    timestamp: fc.option(
      fc
        .date({
          min: new Date('1900-01-01T00:00:00Z'),
          max: new Date('2999-12-31T00:00:00Z'),
          noInvalidDate: true,
        })
        .map((d) => d.toISOString()),
      { nil: undefined },
    ),
  })
  .map((r) => {
    let t: Omit<PidfTuple, 'id'> = {
      status:
        r.basic === undefined
          ? { extensions: r.statusExt }
          : { basic: r.basic, extensions: r.statusExt },
      extensions: r.ext,
      notes: r.notes,
    };
    if (r.contact !== undefined) {
      t = {
        ...t,
        contact:
          r.contact.priority === undefined
            ? { uri: r.contact.uri }
            : { uri: r.contact.uri, priority: r.contact.priority },
      };
    }
    if (r.timestamp !== undefined) t = { ...t, timestamp: r.timestamp };
    return t;
  });
const arbDocument: fc.Arbitrary<PidfDocument> = fc
  .record({
    entity: fc.record({
      user: fc.stringMatching(/^[a-z][a-z0-9]{0,11}$/),
      domain: fc.stringMatching(/^[a-z][a-z0-9]{0,9}\.(?:com|org|example)$/),
    }),
    ids: fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/), { maxLength: 4 }),
    bodies: fc.array(arbTupleBody, { minLength: 4, maxLength: 4 }),
    notes: fc.array(arbNote, { maxLength: 3 }),
    extensions: fc.array(arbExtension, { maxLength: 3 }),
  })
  .map(({ entity, ids, bodies, notes, extensions }) => ({
    entity,
    tuples: ids.map((id, i) => ({ id, ...(bodies[i] as Omit<PidfTuple, 'id'>) })),
    notes,
    extensions,
  }));

function parseOrPayloadError(input: string | Uint8Array): void {
  try {
    parsePidf(input);
  } catch (e) {
    if (!isImppError(e, 'ERR_PAYLOAD_INVALID')) throw e;
  }
}

describe('properties', () => {
  it('any valid model survives build → parse unchanged', () => {
    fc.assert(
      fc.property(arbDocument, (d) => {
        expect(parsePidf(buildPidf(d))).toEqual(d);
      }),
      { numRuns: 200 },
    );
  });

  it('parse throws nothing but ERR_PAYLOAD_INVALID on arbitrary input', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), parseOrPayloadError), {
      numRuns: 300,
    });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), parseOrPayloadError), {
      numRuns: 300,
    });
  });

  it('parse of a mutated valid document either succeeds or throws ERR_PAYLOAD_INVALID', () => {
    fc.assert(
      fc.property(
        arbDocument,
        fc.nat(),
        fc.integer({ min: 0, max: 127 }),
        fc.nat(),
        (d, at, code, cut) => {
          const xml = buildPidf(d);
          const i = at % xml.length;
          parseOrPayloadError(xml.slice(0, i) + String.fromCharCode(code) + xml.slice(i + 1));
          parseOrPayloadError(xml.slice(0, cut % (xml.length + 1)));
        },
      ),
      { numRuns: 200 },
    );
  });
});
