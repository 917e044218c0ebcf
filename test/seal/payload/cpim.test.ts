import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isImppError } from '../../../src/errors.js';
import {
  cpimText,
  cpimTextMessage,
  decodeCpim,
  DEFAULT_CPIM_LIMITS,
  encodeCpim,
  type CpimHeader,
  type CpimMessage,
  type CpimParty,
} from '../../../src/seal/payload/cpim.js';
import { parseAddress } from '../../../src/trust/address.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/**
 * RFC 3862 §6 prints its example with line markers ("m:" MIME header of the outer entity, "s:"
 * separator, "h:" message header, "e:" encapsulated MIME entity). The codec handles the body of
 * the Message/CPIM entity: everything after the "m:" line and the first blank line, with CRLF.
 */
function rfc3862ExampleBytes(): Uint8Array {
  const lines = readFileSync(new URL('../../vectors/rfc3862/example.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
  expect(lines[0]).toBe('m: Content-type: Message/CPIM');
  expect(lines[1]).toBe('s:');
  const body = lines.slice(2).map((l) => {
    const m = /^([hse]):(?: (.*))?$/.exec(l);
    if (m === null) throw new Error(`unexpected vector line ${l}`);
    return m[2] ?? '';
  });
  return enc(body.join('\r\n'));
}

function expectRefused(input: Uint8Array | string, pattern?: RegExp): void {
  const bytes = typeof input === 'string' ? enc(input) : input;
  let caught: unknown;
  try {
    decodeCpim(bytes);
  } catch (e) {
    caught = e;
  }
  expect(isImppError(caught, 'ERR_PAYLOAD_INVALID'), String(caught)).toBe(true);
  if (pattern !== undefined) expect((caught as Error).message).toMatch(pattern);
}

const MINIMAL_HEAD = 'From: <im:alice@example.com>\r\nTo: <im:bob@example.org>\r\n';
const MINIMAL_TAIL = '\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi';
const minimal = (extra = ''): string => `${MINIMAL_HEAD}${extra}${MINIMAL_TAIL}`;

describe('RFC 3862 §6 example (test/vectors/rfc3862)', () => {
  it('decodes every field of the example', () => {
    const msg = decodeCpim(rfc3862ExampleBytes());
    expect(msg.from).toEqual({
      formalName: 'MR SANDERS',
      address: { user: 'piglet', domain: '100akerwood.com' },
    });
    expect(msg.to).toEqual([
      { formalName: 'Depressed Donkey', address: { user: 'eeyore', domain: '100akerwood.com' } },
    ]);
    expect(msg.cc).toEqual([]);
    expect(msg.dateTime).toBe('2000-12-13T13:40:00-08:00');
    expect(msg.subject).toEqual([
      { value: 'the weather will be fine today' },
      { lang: 'fr', value: "beau temps prevu pour aujourd'hui" },
    ]);
    expect(msg.ns).toEqual([{ prefix: 'MyFeatures', uri: 'mid:MessageFeatures@id.foo.com' }]);
    expect(msg.require).toEqual(['MyFeatures.VitalMessageOption']);
    expect(msg.headers).toEqual([
      {
        prefix: 'MyFeatures',
        name: 'VitalMessageOption',
        params: [],
        value: 'Confirmation-requested',
      },
      { prefix: 'MyFeatures', name: 'WackyMessageOption', params: [], value: 'Use-silly-font' },
    ]);
    expect(msg.content.contentType).toBe('text/xml; charset=utf-8');
    expect(msg.content.headers).toEqual([{ name: 'Content-ID', value: '<1234567890@foo.com>' }]);
    expect(dec(msg.content.body)).toBe('<body>\r\nHere is the text of my message.\r\n</body>');
  });

  it('re-encodes to the same bytes, except for the spelling of Content-Type', () => {
    const original = rfc3862ExampleBytes();
    const again = encodeCpim(decodeCpim(original));
    expect(dec(again)).toBe(dec(original).replace('Content-type:', 'Content-Type:'));
  });
});

describe('header syntax (RFC 3862 §3.1)', () => {
  it('escapes and unescapes header values', () => {
    const msg: CpimMessage = {
      ...cpimTextMessage({
        from: { formalName: 'Back\\slash "quoted" name', address: parseAddress('a@example.com') },
        to: [{ formalName: 'two  spaces', address: parseAddress('b@example.com') }],
        text: 'x',
      }),
      subject: [{ value: 'line1\nline2\ttab \\ \u0001 \u007f é 😀' }],
    };
    const wire = dec(encodeCpim(msg));
    expect(wire).toContain('From: "Back\\\\slash \\"quoted\\" name"<im:a@example.com>\r\n');
    expect(wire).toContain('To: "two  spaces"<im:b@example.com>\r\n');
    expect(wire).toContain('Subject: line1\\nline2\\ttab \\\\ \\u0001 \\u007f é 😀\r\n');
    expect(decodeCpim(enc(wire))).toEqual(msg);
  });

  it('decodes \\u escapes, including a surrogate pair, and refuses lone surrogates', () => {
    const ok = decodeCpim(enc(minimal('Subject: \\u0041\\uD83D\\uDE00\\b\\r\\\'\\"\r\n')));
    expect(ok.subject).toEqual([{ value: 'A😀\b\r\'"' }]);
    expectRefused(minimal('Subject: \\uD83D\r\n'), /surrogate/);
    expectRefused(minimal('Subject: \\uDE00\r\n'), /surrogate/);
    expectRefused(minimal('Subject: \\u12\r\n'), /hex/);
    expectRefused(minimal('Subject: \\x41\r\n'), /escape/);
    expectRefused(minimal('Subject: trailing\\\r\n'), /escape/);
  });

  it('accepts one space between a quoted formal name and "<" and reads the token form', () => {
    const m = decodeCpim(
      enc(
        minimal(
          'cc: "Pooh Bear" <im:pooh@100akerwood.com>\r\ncc: Tigger T <im:tigger@100akerwood.com>\r\n',
        ),
      ),
    );
    expect(m.cc).toEqual([
      { formalName: 'Pooh Bear', address: { user: 'pooh', domain: '100akerwood.com' } },
      { formalName: 'Tigger T', address: { user: 'tigger', domain: '100akerwood.com' } },
    ]);
  });

  it('keeps extension header parameters (token and quoted string forms)', () => {
    const m = decodeCpim(
      enc(minimal('NS: X <urn:example:x>\r\nX.Opt:;a=1;b="two words";lang=en-GB value here\r\n')),
    );
    expect(m.headers).toEqual([
      {
        prefix: 'X',
        name: 'Opt',
        params: [
          { name: 'a', value: '1' },
          { name: 'b', value: 'two words' },
          { name: 'lang', value: 'en-GB' },
        ],
        value: 'value here',
      },
    ]);
    expect(decodeCpim(encodeCpim(m))).toEqual(m);
  });

  const refusals: [string, string, RegExp][] = [
    [
      'bare LF line end',
      'From: <im:alice@example.com>\nTo: <im:bob@example.org>\r\n' + MINIMAL_TAIL,
      /CRLF/,
    ],
    ['bare CR', minimal('Subject: a\rb\r\n'), /CRLF/],
    ['folded header', minimal('Subject: a\r\n b\r\n'), /white space/],
    ['missing blank line', MINIMAL_HEAD, /blank line/],
    ['missing MIME section end', `${MINIMAL_HEAD}\r\nContent-Type: text/plain`, /blank line/],
    ['no space after colon', minimal('Subject:x\r\n'), /one space/],
    ['tab in a header', minimal('Subject: a\tb\r\n'), /control/],
    ['NUL in a header', minimal('Subject: a\u0000b\r\n'), /control/],
    ['lower-case from (spoofing)', 'from: <im:mallory@evil.example>\r\n' + minimal(), /case/],
    ['FROM upper case', minimal('FROM: <im:mallory@evil.example>\r\n'), /case/],
    ['two From', minimal('From: <im:mallory@evil.example>\r\n'), /more than once/],
    ['no From', 'To: <im:bob@example.org>\r\n' + MINIMAL_TAIL, /From is required/],
    ['no To', 'From: <im:alice@example.com>\r\n' + MINIMAL_TAIL, /To is required/],
    [
      'parameter on From',
      'From:;x=1 <im:alice@example.com>\r\nTo: <im:bob@example.org>\r\n' + MINIMAL_TAIL,
      /no parameters/,
    ],
    [
      'non-im URI',
      'From: <sip:alice@example.com>\r\nTo: <im:bob@example.org>\r\n' + MINIMAL_TAIL,
      /im: scheme/,
    ],
    [
      'two URIs',
      'From: <im:a@example.com><im:b@example.com>\r\nTo: <im:bob@example.org>\r\n' + MINIMAL_TAIL,
      /exactly one/,
    ],
    [
      'unterminated formal name',
      'From: "Alice <im:a@example.com>\r\nTo: <im:bob@example.org>\r\n' + MINIMAL_TAIL,
      /unterminated/,
    ],
    [
      'formal name with a bad token char',
      'From: Al"ce <im:a@example.com>\r\nTo: <im:bob@example.org>\r\n' + MINIMAL_TAIL,
      /formal name/,
    ],
    ['impossible date', minimal('DateTime: 2000-02-30T00:00:00Z\r\n'), /RFC 3339/],
    ['date without offset', minimal('DateTime: 2000-02-03T00:00:00\r\n'), /RFC 3339/],
    [
      'two DateTime',
      minimal('DateTime: 2000-02-03T00:00:00Z\r\nDateTime: 2000-02-03T00:00:00Z\r\n'),
      /more than once/,
    ],
    [
      'two Subjects in one language',
      minimal('Subject:;lang=fr a\r\nSubject:;lang=FR b\r\n'),
      /same language/,
    ],
    ['Subject with a non-lang parameter', minimal('Subject:;x=1 a\r\n'), /only a lang/],
    ['bad language tag', minimal('Subject:;lang=toolonglanguage a\r\n'), /language tag/],
    ['undeclared prefix', minimal('X.Opt: 1\r\n'), /not declared/],
    ['prefix used before NS', minimal('X.Opt: 1\r\nNS: X <urn:example:x>\r\n'), /not declared/],
    [
      'NS redefining the default namespace',
      minimal('NS: <urn:example:x>\r\n'),
      /default namespace/,
    ],
    [
      'NS binding the CPIM namespace',
      minimal('NS: P <urn:ietf:params:cpim-headers:>\r\n'),
      /default namespace/,
    ],
    ['NS prefix declared twice', minimal('NS: X <urn:a:a>\r\nNS: X <urn:b:b>\r\n'), /twice/],
    ['Require with an undeclared prefix', minimal('Require: X.Opt\r\n'), /undeclared/],
    [
      'no Content-Type',
      `${MINIMAL_HEAD}\r\nContent-ID: <x@y>\r\n\r\nhi`,
      /Content-Type is required/,
    ],
    [
      'two Content-Types',
      `${MINIMAL_HEAD}\r\nContent-Type: text/plain\r\ncontent-type: text/html\r\n\r\nhi`,
      /more than once/,
    ],
    ['malformed Content-Type', `${MINIMAL_HEAD}\r\nContent-Type: text\r\n\r\nhi`, /malformed/],
    ['empty message header section', `\r\nContent-Type: text/plain\r\n\r\nhi`, /empty/],
    ['empty MIME header section', `${MINIMAL_HEAD}\r\n\r\nhi`, /empty/],
    ['BOM before the first header', `\uFEFF${minimal()}`, /does not start/],
  ];
  for (const [name, input, pattern] of refusals) {
    it(`refuses: ${name}`, () => {
      expectRefused(input, pattern);
    });
  }

  it('refuses invalid UTF-8 in headers: overlong, surrogate, truncated', () => {
    for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff]]) {
      const head = enc('From: <im:alice@example.com>\r\nTo: <im:bob@example.org>\r\nSubject: ');
      const tail = enc(`\r\n${MINIMAL_TAIL}`);
      expectRefused(new Uint8Array([...head, ...bad, ...tail]), /UTF-8/);
    }
  });

  it('refuses a text body declared UTF-8 that is not, and carries other bodies as bytes', () => {
    const head = enc(`${MINIMAL_HEAD}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n`);
    expectRefused(new Uint8Array([...head, 0xc0, 0xaf]), /not valid UTF-8/);
    const binary = new Uint8Array([0, 1, 2, 0x0d, 0x0a, 0x0d, 0x0a, 0xff, 0xfe]);
    const bin = enc(`${MINIMAL_HEAD}\r\nContent-Type: application/octet-stream\r\n\r\n`);
    const m = decodeCpim(new Uint8Array([...bin, ...binary]));
    expect(m.content.body).toEqual(binary);
  });
});

describe('limits', () => {
  it('refuses a document over maxBytes before parsing', () => {
    const big = new Uint8Array(DEFAULT_CPIM_LIMITS.maxBytes + 1);
    expectRefused(big, /larger than/);
  });

  it('refuses too many headers and too long a line', () => {
    expectRefused(minimal('X-A: 1\r\n'.repeat(DEFAULT_CPIM_LIMITS.maxHeaders)), /more than 64/);
    expectRefused(
      minimal(`Subject: ${'a'.repeat(DEFAULT_CPIM_LIMITS.maxLineBytes)}\r\n`),
      /longer than/,
    );
    // A line with no end at all is refused at the line limit, not scanned to the end of the input.
    expectRefused(`From: ${'a'.repeat(100_000)}`, /longer than/);
  });

  it('honours caller limits, and encode enforces them too', () => {
    const limits = { maxBytes: 200, maxHeaders: 3, maxLineBytes: 60 };
    expect(() => decodeCpim(enc(minimal('Subject: a\r\nSubject:;lang=en b\r\n')), limits)).toThrow(
      /more than 3/,
    );
    const msg = cpimTextMessage({
      from: { address: parseAddress('alice@example.com') },
      to: [{ address: parseAddress('bob@example.org') }],
      text: 'x'.repeat(300),
    });
    expect(() => encodeCpim(msg, limits)).toThrow(/larger than 200/);
  });
});

describe('encode validates the model', () => {
  const base = cpimTextMessage({
    from: { address: parseAddress('alice@example.com') },
    to: [{ address: parseAddress('bob@example.org') }],
    text: 'hi',
  });
  const bad: [string, CpimMessage][] = [
    ['no To', { ...base, to: [] }],
    ['empty formal name', { ...base, from: { formalName: '', address: base.from.address } }],
    ['lone surrogate', { ...base, subject: [{ value: '\uD800' }] }],
    ['bad date', { ...base, dateTime: 'yesterday' }],
    ['core name as extension', { ...base, headers: [{ name: 'from', params: [], value: 'x' }] }],
    [
      'undeclared prefix',
      { ...base, headers: [{ prefix: 'P', name: 'X', params: [], value: 'x' }] },
    ],
    [
      'Content-Type twice',
      { ...base, content: { ...base.content, headers: [{ name: 'content-type', value: 'a/b' }] } },
    ],
    [
      'folded MIME value',
      { ...base, content: { ...base.content, headers: [{ name: 'X-A', value: 'a\r\n b' }] } },
    ],
    ['bad body', { ...base, content: { ...base.content, body: new Uint8Array([0xff]) } }],
  ];
  for (const [name, msg] of bad) {
    it(`refuses: ${name}`, () => {
      expect(() => encodeCpim(msg)).toThrow(
        expect.objectContaining({ code: 'ERR_PAYLOAD_INVALID' }),
      );
    });
  }

  it('cpimText returns the text of a text/plain message and refuses others', () => {
    expect(cpimText(decodeCpim(encodeCpim(base)))).toBe('hi');
    expect(() =>
      cpimText({ ...base, content: { ...base.content, contentType: 'text/html' } }),
    ).toThrow(/not text\/plain/);
    expect(() =>
      cpimText({
        ...base,
        content: { ...base.content, contentType: 'text/plain; charset=latin1' },
      }),
    ).toThrow(/not UTF-8/);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests

const CORE = new Set(['from', 'to', 'cc', 'datetime', 'subject', 'ns', 'require']);
const arbAddress = fc.record({
  user: fc.stringMatching(/^[a-z][a-z0-9]{0,11}$/),
  domain: fc.stringMatching(/^[a-z][a-z0-9]{0,9}\.(?:com|org|example)$/),
});
const arbText = (max: number): fc.Arbitrary<string> =>
  fc.string({ unit: 'binary', maxLength: max });
const arbParty: fc.Arbitrary<CpimParty> = fc
  .tuple(
    fc.option(
      arbText(16).filter((s) => s.length > 0),
      { nil: undefined },
    ),
    arbAddress,
  )
  .map(([formalName, address]) =>
    formalName === undefined ? { address } : { formalName, address },
  );
const arbName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,11}$/);
const arbLang = fc.stringMatching(/^[a-z]{2}(?:-[A-Z]{2})?$/);
const arbDateTime = fc
  .date({
    min: new Date('1900-01-01T00:00:00Z'),
    max: new Date('2999-12-31T23:59:59Z'),
    noInvalidDate: true,
  })
  .map((d) => d.toISOString().replace(/\.000Z$/, 'Z'));

const arbMessage: fc.Arbitrary<CpimMessage> = fc
  .record({
    from: arbParty,
    to: fc.array(arbParty, { minLength: 1, maxLength: 3 }),
    cc: fc.array(arbParty, { maxLength: 2 }),
    dateTime: fc.option(arbDateTime, { nil: undefined }),
    subject: fc.uniqueArray(
      fc.record({ lang: fc.option(arbLang, { nil: undefined }), value: arbText(30) }),
      { maxLength: 3, selector: (s) => s.lang?.toLowerCase() ?? '' },
    ),
    ns: fc.uniqueArray(
      fc.record({ prefix: arbName, uri: fc.stringMatching(/^urn:[a-z]{1,8}:[a-z0-9.]{1,10}$/) }),
      { maxLength: 3, selector: (n) => n.prefix },
    ),
    extension: fc.array(
      fc.record({
        usePrefix: fc.nat(3),
        name: arbName,
        params: fc.array(
          fc.record({ name: arbName.filter((n) => n !== 'lang'), value: arbText(10) }),
          { maxLength: 2 },
        ),
        value: arbText(30),
      }),
      { maxLength: 4 },
    ),
    contentType: fc.constantFrom(
      'text/plain; charset=utf-8',
      'application/octet-stream',
      'text/xml; charset="utf-8"',
      'image/png',
    ),
    mime: fc.array(
      fc.record({
        name: fc.stringMatching(/^X-[A-Za-z0-9-]{1,10}$/),
        value: fc.stringMatching(/^[!-~](?:[ -~]{0,20})$/),
      }),
      { maxLength: 3 },
    ),
    text: arbText(50),
    bytes: fc.uint8Array({ maxLength: 64 }),
  })
  .map((r) => {
    const headers: CpimHeader[] = r.extension
      .map((h) => {
        const ns = r.ns[h.usePrefix];
        return ns === undefined
          ? { name: h.name, params: h.params, value: h.value }
          : { prefix: ns.prefix, name: h.name, params: h.params, value: h.value };
      })
      .filter((h) => h.prefix !== undefined || !CORE.has(h.name.toLowerCase()));
    const isText = r.contentType.startsWith('text/');
    const msg: CpimMessage = {
      from: r.from,
      to: r.to,
      cc: r.cc,
      subject: r.subject.map((s) =>
        s.lang === undefined ? { value: s.value } : { lang: s.lang, value: s.value },
      ),
      ns: r.ns,
      require: headers
        .slice(0, 2)
        .map((h) => (h.prefix === undefined ? h.name : `${h.prefix}.${h.name}`)),
      headers,
      content: {
        contentType: r.contentType,
        headers: r.mime,
        body: isText ? new TextEncoder().encode(r.text) : r.bytes,
      },
    };
    return r.dateTime === undefined ? msg : { ...msg, dateTime: r.dateTime };
  });

function decodeOrPayloadError(bytes: Uint8Array): void {
  try {
    decodeCpim(bytes);
  } catch (e) {
    if (!isImppError(e, 'ERR_PAYLOAD_INVALID')) throw e;
  }
}

describe('properties', () => {
  it('any valid model survives encode → decode unchanged', () => {
    fc.assert(
      fc.property(arbMessage, (msg) => {
        expect(decodeCpim(encodeCpim(msg))).toEqual(msg);
      }),
      { numRuns: 300 },
    );
  });

  it('decode throws nothing but ERR_PAYLOAD_INVALID on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), decodeOrPayloadError), {
      numRuns: 500,
    });
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
        decodeOrPayloadError(enc(s));
      }),
      { numRuns: 300 },
    );
  });

  it('decode of a mutated valid message either succeeds or throws ERR_PAYLOAD_INVALID', () => {
    fc.assert(
      fc.property(
        arbMessage,
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.nat(),
        (msg, at, byte, cut) => {
          const bytes = encodeCpim(msg);
          const flipped = bytes.slice();
          flipped[at % flipped.length] = byte;
          decodeOrPayloadError(flipped);
          decodeOrPayloadError(bytes.subarray(0, cut % (bytes.length + 1)));
        },
      ),
      { numRuns: 200 },
    );
  });
});
