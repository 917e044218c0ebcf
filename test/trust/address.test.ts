/**
 * Addresses: canonical forms, every rejection class, im:/pres: URIs (RFC 3859 §3, RFC 3860 §3),
 * device addresses, and property tests on the parser.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isImppError } from '../../src/errors.js';
import {
  MAX_ADDRESS_INPUT_LENGTH,
  assertDeviceId,
  formatAddress,
  formatDeviceAddress,
  formatImUri,
  formatPresUri,
  isValidDeviceId,
  normalizeAddress,
  normalizeDomain,
  normalizeLocalPart,
  parseAddress,
  parseDeviceAddress,
  parseImUri,
  parsePresUri,
  sameAddress,
  sameDeviceAddress,
  type Address,
} from '../../src/trust/address.js';
import { PRINCIPAL_KINDS, isPrincipalKind, makePrincipal } from '../../src/trust/principal.js';

/** Asserts that `fn` throws ERR_ADDRESS_INVALID and the message matches `pattern`. */
function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isImppError(caught, 'ERR_ADDRESS_INVALID'), `expected ERR_ADDRESS_INVALID`).toBe(true);
  expect((caught as Error).message).toMatch(pattern);
}

describe('parseAddress: accepted forms and normalization', () => {
  it.each<[string, Address]>([
    ['alice@example.com', { user: 'alice', domain: 'example.com' }],
    ['im:alice@example.com', { user: 'alice', domain: 'example.com' }],
    ['pres:alice@example.com', { user: 'alice', domain: 'example.com' }],
    ['IM:alice@example.com', { user: 'alice', domain: 'example.com' }],
    ['Pres:alice@example.com', { user: 'alice', domain: 'example.com' }],
    ['Alice.Smith@Example.COM', { user: 'alice.smith', domain: 'example.com' }],
    ["o'brien+tag@mail.example.org", { user: "o'brien+tag", domain: 'mail.example.org' }],
    ['a!$&*=_~-z@example.com', { user: 'a!$&*=_~-z', domain: 'example.com' }],
    ['dev@localhost', { user: 'dev', domain: 'localhost' }],
    ['x@a-b.example', { user: 'x', domain: 'a-b.example' }],
    ['x@1a.example', { user: 'x', domain: '1a.example' }],
  ])('%s', (input, expected) => {
    expect(parseAddress(input)).toEqual(expected);
  });

  it.each<[string, string]>([
    ['bücher.example', 'xn--bcher-kva.example'],
    ['Bücher.Example', 'xn--bcher-kva.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['XN--BCHER-KVA.example', 'xn--bcher-kva.example'],
    ['例え.テスト', 'xn--r8jz45g.xn--zckzah'],
    ['пример.рф', 'xn--e1afmkfd.xn--p1ai'],
    ['faß.de', 'xn--fa-hia.de'], // UTS #46 non-transitional: ß is kept, not mapped to ss
    ['ＥＸＡＭＰＬＥ.com', 'example.com'], // full-width letters map to ASCII
    ['a\u3002example.com', 'a.example.com'], // ideographic full stop is a label separator
  ])('IDN %s → %s', (domain, aLabel) => {
    expect(parseAddress(`bob@${domain}`).domain).toBe(aLabel);
    expect(normalizeDomain(domain)).toBe(aLabel);
  });

  it('folds the local part to lower case', () => {
    expect(normalizeLocalPart('ALICE')).toBe('alice');
    expect(sameAddress(parseAddress('ALICE@EXAMPLE.COM'), parseAddress('alice@example.com'))).toBe(
      true,
    );
  });

  it('accepts the length limits exactly and no more', () => {
    const local64 = 'a'.repeat(64);
    expect(parseAddress(`${local64}@example.com`).user).toBe(local64);
    expectInvalid(() => parseAddress(`${'a'.repeat(65)}@example.com`), /at most 64/);

    const label63 = 'b'.repeat(63);
    expect(parseAddress(`x@${label63}.example`).domain).toBe(`${label63}.example`);
    expectInvalid(() => parseAddress(`x@${'b'.repeat(64)}.example`), /at most 63/);

    // 4 labels of 63 + 3 dots = 255 > 253; 61 + 3*63 + 3 = 253 exactly.
    const d253 = ['c'.repeat(61), 'c'.repeat(63), 'c'.repeat(63), 'c'.repeat(63)].join('.');
    expect(d253.length).toBe(253);
    expect(normalizeDomain(d253)).toBe(d253);
    expectInvalid(() => normalizeDomain(`c${d253}c`), /at most 253/);
    // An IDN label whose A-label form is too long, although its Unicode form is short.
    expectInvalid(() => normalizeDomain(`${'ü'.repeat(60)}.example`), /at most 63/);
  });
});

describe('parseAddress: every rejection class', () => {
  it.each<[string, string, RegExp]>([
    ['not a string', 42 as unknown as string, /must be a string/],
    ['empty', '', /no "@"/],
    ['no @', 'alice.example.com', /no "@"/],
    ['two @', 'a@b@example.com', /more than one "@"/],
    ['empty local part', '@example.com', /local part .* is empty/],
    ['empty domain', 'alice@', /domain .* is empty/],
    ['quoted local part', '"a b"@example.com', /quoted local parts/],
    ['space in local part', 'a b@example.com', /U\+0020/],
    ['tab', 'a\tb@example.com', /U\+0009/],
    ['NUL', 'a\u0000b@example.com', /U\+0000/],
    ['DEL', 'a\u007fb@example.com', /U\+007F/],
    ['leading whitespace', ' alice@example.com', /U\+0020/],
    ['slash in local part', 'a/b@example.com', /U\+002F '\/'/],
    ['percent-encoding', 'a%40b@example.com', /percent-encoding/],
    ['percent in domain', 'a@exa%6dple.com', /percent-encoding/],
    ['leading dot', '.alice@example.com', /starts or ends with "."/],
    ['trailing dot', 'alice.@example.com', /starts or ends with "."/],
    ['double dot', 'al..ice@example.com', /consecutive/],
    ['non-ASCII local part', 'jörg@example.com', /non-ASCII U\+00F6/],
    ['Cyrillic look-alike', '\u0430lice@example.com', /non-ASCII U\+0430/],
    ['Kelvin sign (lower-cases to ASCII k)', '\u212Aate@example.com', /non-ASCII U\+212A/],
    ['zero-width space in local part', 'al\u200bice@example.com', /U\+200B/],
    ['braces (need URI encoding)', 'a{b}@example.com', /U\+007B/],
    ['single-label domain', 'alice@intranet', /single label/],
    ['trailing dot in domain', 'alice@example.com.', /trailing dot/],
    ['empty label', 'alice@example..com', /label 2 is empty/],
    ['leading dot in domain', 'alice@.example.com', /label 1 is empty/],
    ['underscore in domain', 'alice@ex_ample.com', /U\+005F/],
    ['leading hyphen label', 'alice@-example.com', /must not start or end with "-"/],
    ['trailing hyphen label', 'alice@example-.com', /must not start or end with "-"/],
    ['reserved ?? -- label', 'alice@ab--cd.example', /reserved for A-labels/],
    ['non-canonical A-label', 'alice@xn--ab-.example', /not a host name label|canonical A-label/],
    ['invalid punycode', 'alice@xn--zz.example', /IDNA/],
    ['IPv4 literal', 'alice@192.0.2.1', /IP address/],
    ['WHATWG numeric IPv4 (0x7f.1)', 'alice@0x7f.1', /IP address/],
    ['short IPv4 form', 'alice@1.2.3', /IP address/],
    ['IPv6 literal', 'alice@[2001:db8::1]', /IP literals/],
    ['colon in domain', 'alice@example.com:5222', /U\+003A/],
    ['slash truncation trick', 'alice@example.com/evil.org', /U\+002F/],
    ['backslash', 'alice@example.com\\evil.org', /U\+005C/],
    ['zero-width space in domain', 'alice@exa\u200bmple.com', /U\+200B/],
    ['no-break space in domain', 'alice@exa\u00a0mple.com', /U\+00A0/],
    ['right-to-left override', 'alice@\u202eexample.com', /U\+202E/],
    ['C1 control in domain', 'alice@exa\u0085mple.com', /U\+0085/],
    ['bidi rule violation', 'alice@\u05d0a.example', /IDNA/],
    ['numeric TLD', 'alice@example.123', /IP address|IDNA/],
    ['other scheme', 'sip:alice@example.com', /scheme is not accepted/],
    ['mailto scheme', 'mailto:alice@example.com', /scheme is not accepted/],
    ['authority form', 'im://alice@example.com', /no "\/\/" authority/],
    ['query refused', 'im:alice@example.com?subject=hi', /query/],
    ['fragment refused', 'pres:alice@example.com#x', /fragment/],
    ['scheme only', 'im:', /no "@"/],
    ['oversized input', `${'a'.repeat(MAX_ADDRESS_INPUT_LENGTH)}@example.com`, /longer than/],
  ])('%s', (_name, input, pattern) => {
    expectInvalid(() => parseAddress(input), pattern);
  });

  it('never echoes the whole input in messages', () => {
    try {
      parseAddress('secret-user-name@exa mple.com');
    } catch (e) {
      expect((e as Error).message).not.toContain('secret-user-name');
    }
  });
});

describe('im: and pres: URIs', () => {
  const alice: Address = { user: 'alice', domain: 'example.com' };

  it('formats and parses each scheme', () => {
    expect(formatImUri(alice)).toBe('im:alice@example.com');
    expect(formatPresUri(alice)).toBe('pres:alice@example.com');
    expect(parseImUri('im:alice@example.com')).toEqual(alice);
    expect(parseImUri('IM:Alice@Example.com')).toEqual(alice);
    expect(parsePresUri('pres:alice@example.com')).toEqual(alice);
    expect(parseAddress(formatImUri(alice))).toEqual(alice);
    expect(parseAddress(formatPresUri(alice))).toEqual(alice);
  });

  it('formats IDN domains as A-labels', () => {
    expect(formatImUri({ user: 'Bob', domain: 'Bücher.example' })).toBe(
      'im:bob@xn--bcher-kva.example',
    );
  });

  it('requires the right scheme in the strict parsers', () => {
    expectInvalid(() => parseImUri('alice@example.com'), /missing "im:" scheme/);
    expectInvalid(() => parseImUri('pres:alice@example.com'), /expected im:user@domain/);
    expectInvalid(() => parsePresUri('im:alice@example.com'), /expected pres:user@domain/);
    expectInvalid(() => parsePresUri('alice@example.com'), /missing "pres:" scheme/);
    expectInvalid(() => parseImUri('im:alice@example.com?body=x'), /query/);
  });
});

describe('device addresses', () => {
  it('parses, normalizes and formats', () => {
    const d = parseDeviceAddress('Alice@Example.com/laptop_1-A');
    expect(d).toEqual({
      address: { user: 'alice', domain: 'example.com' },
      deviceId: 'laptop_1-A',
    });
    expect(formatDeviceAddress(d)).toBe('alice@example.com/laptop_1-A');
  });

  it('device ids are case-sensitive', () => {
    const a = parseDeviceAddress('a@example.com/Phone');
    const b = parseDeviceAddress('A@example.com/phone');
    expect(sameDeviceAddress(a, b)).toBe(false);
    expect(sameDeviceAddress(a, parseDeviceAddress('A@EXAMPLE.com/Phone'))).toBe(true);
  });

  it.each<[string, RegExp]>([
    ['alice@example.com', /no "\/"/],
    ['alice@example.com/', /device id is empty/],
    ['alice@example.com/a/b', /outside A-Z/],
    ['alice@example.com/dev ice', /outside A-Z/],
    ['alice@example.com/dév', /outside A-Z/],
    [`alice@example.com/${'d'.repeat(65)}`, /at most 64/],
    ['im:alice@example.com/dev', /URI scheme/],
    ['alice@/dev', /domain .* is empty/],
  ])('refuses %s', (input, pattern) => {
    expectInvalid(() => parseDeviceAddress(input), pattern);
  });

  it('validates device ids', () => {
    expect(isValidDeviceId('d'.repeat(64))).toBe(true);
    expect(isValidDeviceId('')).toBe(false);
    expect(isValidDeviceId(7)).toBe(false);
    expect(assertDeviceId('ok-1')).toBe('ok-1');
    expectInvalid(() => assertDeviceId(undefined), /must be a string/);
    expectInvalid(
      () =>
        formatDeviceAddress({
          address: { user: 'a', domain: 'example.com' },
          deviceId: 'bad/id',
        }),
      /outside A-Z/,
    );
  });
});

describe('hand-built addresses', () => {
  it('formatAddress and sameAddress normalize first', () => {
    const hand = { user: 'Alice', domain: 'BÜCHER.example' };
    expect(formatAddress(hand)).toBe('alice@xn--bcher-kva.example');
    expect(normalizeAddress(hand)).toEqual({ user: 'alice', domain: 'xn--bcher-kva.example' });
    expect(sameAddress(hand, parseAddress('alice@xn--bcher-kva.example'))).toBe(true);
    expect(sameAddress(hand, parseAddress('bob@xn--bcher-kva.example'))).toBe(false);
  });

  it('an invalid hand-built address throws rather than comparing unequal', () => {
    expectInvalid(
      () =>
        sameAddress({ user: 'a b', domain: 'example.com' }, { user: 'x', domain: 'example.com' }),
      /U\+0020/,
    );
    expectInvalid(() => formatAddress({ user: 'a', domain: 'exa mple.com' }), /U\+0020/);
    expectInvalid(() => normalizeAddress(null as unknown as Address), /must be an object/);
  });
});

describe('principals', () => {
  it('non-human entities share the address syntax; the kind is an attribute', () => {
    expect(PRINCIPAL_KINDS).toEqual(['person', 'service', 'device-entity']);
    expect(makePrincipal('im:Printer-3@Example.com', 'device-entity')).toEqual({
      address: { user: 'printer-3', domain: 'example.com' },
      kind: 'device-entity',
    });
    expect(makePrincipal({ user: 'Bot', domain: 'example.com' }, 'service').address.user).toBe(
      'bot',
    );
    expect(isPrincipalKind('robot')).toBe(false);
    expect(() => makePrincipal('a@example.com', 'robot' as 'service')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    expectInvalid(() => makePrincipal('not-an-address', 'person'), /no "@"/);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

const ATEXT = "abcdefghijklmnopqrstuvwxyz0123456789!$&'*+=_~-".split('');
const atom = fc.string({ unit: fc.constantFrom(...ATEXT), minLength: 1, maxLength: 12 });
const canonicalLocal = fc
  .array(atom, { minLength: 1, maxLength: 4 })
  .map((atoms) => atoms.join('.'))
  .filter((s) => s.length <= 64);
const ldh = 'abcdefghijklmnopqrstuvwxyz0123456789'.split('');
const label = fc
  .tuple(
    fc.constantFrom(...ldh),
    fc.string({ unit: fc.constantFrom(...ldh, '-'), maxLength: 20 }),
    fc.constantFrom(...ldh),
  )
  .map(([a, mid, z]) => `${a}${mid}${z}`)
  .filter((l) => l.slice(2, 4) !== '--');
const unicodeLabel = fc
  .constantFrom('bücher', '例え', 'пример', 'café', 'δοκιμή', 'münchen', 'faß', 'ü')
  .map((u) => normalizeDomain(`${u}.example`).split('.')[0]!);
const tld = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'.split('')),
  minLength: 2,
  maxLength: 8,
});
const canonicalDomain = fc
  .tuple(fc.array(fc.oneof(label, unicodeLabel), { minLength: 1, maxLength: 4 }), tld)
  .map(([labels, t]) => [...labels, t].join('.'));
const canonicalAddress = fc.record({ user: canonicalLocal, domain: canonicalDomain });

/** Fragments that exercise the parser's edge cases when glued together at random. */
const tricky = fc.constantFrom(
  '@',
  '.',
  '..',
  '-',
  '--',
  'xn--',
  'im:',
  'pres:',
  'IM:',
  '//',
  '/',
  '?',
  '#',
  '%',
  '%40',
  ':',
  '[',
  ']',
  ' ',
  '\t',
  '\u0000',
  '\u200b',
  '\u00ad',
  '\u3002',
  'ß',
  'ü',
  'İ',
  '\u212a',
  '\ud800',
  'a',
  'Z',
  '0',
  '1',
  'example',
  'com',
  'localhost',
  '0x7f',
  '\u0430',
  '例',
  '\u202e',
  '"',
);
const trickyString = fc.array(tricky, { maxLength: 12 }).map((parts) => parts.join(''));

/** Parses, returning the result or `'invalid'`; any other error fails the property. */
function parseOrInvalid(input: string): Address | 'invalid' {
  try {
    return parseAddress(input);
  } catch (e) {
    if (isImppError(e, 'ERR_ADDRESS_INVALID')) return 'invalid';
    throw e;
  }
}

describe('property tests', () => {
  it('parse∘format is the identity on canonical addresses', () => {
    fc.assert(
      fc.property(canonicalAddress, (a) => {
        const text = formatAddress(a);
        expect(text).toBe(`${a.user}@${a.domain}`);
        expect(parseAddress(text)).toEqual(a);
        expect(parseImUri(formatImUri(a))).toEqual(a);
        expect(parsePresUri(formatPresUri(a))).toEqual(a);
      }),
      { numRuns: 500 },
    );
  });

  it('device addresses round-trip', () => {
    const deviceId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
    fc.assert(
      fc.property(canonicalAddress, deviceId, (address, id) => {
        const d = { address, deviceId: id };
        expect(parseDeviceAddress(formatDeviceAddress(d))).toEqual(d);
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['fc.string', fc.string({ maxLength: 80 })],
    ['full Unicode (binary)', fc.string({ unit: 'binary', maxLength: 80 })],
    [
      'UTF-16 units incl. lone surrogates',
      fc.string({
        unit: fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n)),
        maxLength: 40,
      }),
    ],
    ['glued tricky fragments', trickyString],
    [
      'mutated valid address',
      fc.tuple(canonicalAddress, trickyString, fc.nat(40)).map(([a, junk, at]) => {
        const s = formatImUri(a);
        const i = at % (s.length + 1);
        return s.slice(0, i) + junk + s.slice(i);
      }),
    ],
  ])(
    'parse never throws anything but ERR_ADDRESS_INVALID, and normalization is idempotent (%s)',
    (_name, arb) => {
      fc.assert(
        fc.property(arb, (input) => {
          const once = parseOrInvalid(input);
          if (once === 'invalid') return;
          // What was accepted is canonical: formatting and re-parsing changes nothing.
          const text = formatAddress(once);
          expect(parseAddress(text)).toEqual(once);
          expect(formatAddress(parseAddress(text))).toBe(text);
          expect(normalizeDomain(once.domain)).toBe(once.domain);
        }),
        { numRuns: 1000 },
      );
    },
  );

  it('device-address parsing never throws anything but ERR_ADDRESS_INVALID', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), trickyString), (input) => {
        try {
          const d = parseDeviceAddress(input);
          expect(parseDeviceAddress(formatDeviceAddress(d))).toEqual(d);
        } catch (e) {
          if (!isImppError(e, 'ERR_ADDRESS_INVALID')) throw e;
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('accepted domains are always LDH A-labels within the length limits', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), trickyString), (input) => {
        let d: string;
        try {
          d = normalizeDomain(input);
        } catch (e) {
          if (isImppError(e, 'ERR_ADDRESS_INVALID')) return;
          throw e;
        }
        expect(d.length).toBeLessThanOrEqual(253);
        for (const l of d.split('.')) expect(l).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
      }),
      { numRuns: 1000 },
    );
  });
});
