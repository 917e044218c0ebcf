/**
 * Addresses of principals and devices: parse, normalize and format.
 *
 * An address names a principal (a person, a service, a device-like entity — see
 * `principal.ts`) as `user@domain`. It appears in three spellings, all of which parse to the same
 * canonical {@link Address}:
 *
 * - bare: `alice@example.com`
 * - instant-inbox URI (RFC 3860 §3): `im:alice@example.com`
 * - presentity URI (RFC 3859 §3): `pres:alice@example.com`
 *
 * RFC 3861 resolves both URI kinds through the *domain* part only, so the domain is what decides
 * where traffic goes, and the parser is strictest there. The rules, and why:
 *
 * - **Domain** (RFC 1035 §2.3.1 host names, RFC 5890/5891 IDNA): internationalized input is
 *   converted to lower-case A-labels with UTS #46 (Node's `url.domainToASCII`, non-transitional).
 *   ASCII input must already be letters, digits, `-` and `.`; every character that the WHATWG URL
 *   host parser would quietly percent-decode, truncate at (`/`, `?`, `#`, `\`) or turn into an IPv4
 *   address (`0x7f.1`) is refused *before* IDNA runs, and the result is re-checked as LDH labels
 *   of 1..63 octets, 253 octets in all, no label starting or ending with `-`, no reserved `??--`
 *   label unless it is a canonical `xn--` A-label. IP literals are refused: federation proves a
 *   *domain name* (X.509 or a pinned key) and RFC 3861 resolves names, so an IP address cannot be a
 *   trust domain. Single-label domains are refused (they resolve through search lists, a spoofing
 *   vector), except `localhost` (RFC 6761) for development. A trailing `.` is refused so that each
 *   domain has exactly one spelling.
 * - **Local part** (RFC 3860 §3 takes RFC 2822 `dot-atom`): ASCII only, 1..64 octets (RFC 5321
 *   §4.5.3.1.1), `atext` restricted to the characters that RFC 3986 allows unencoded in a URI:
 *   letters, digits and `! $ & ' * + - = _ ~`, with single interior dots. Quoted strings, `%`,
 *   `/`, `?`, `#`, `@`, whitespace and controls are refused, so a canonical address is also a
 *   valid `im:` URI and nothing is ever percent-decoded (no `%40` smuggling an `@`, no double
 *   decoding). Non-ASCII local parts are refused rather than NFC-normalized: NFC does not remove
 *   confusables (Cyrillic `а` vs Latin `a` stay distinct), so two visually identical addresses
 *   could name two principals; a PRECIS profile (RFC 8265) would be the right tool and is future
 *   work. The local part is case-folded to lower case for the same reason: `Alice` and `alice`
 *   must not be two principals.
 * - **URI query and fragment**: RFC 3860 allows `?header=value` on `im:` URIs. They are refused,
 *   not dropped: an address names a principal, and silently discarding part of what the user
 *   typed would make two different inputs look like the same request.
 * - **Device ids**: 1..64 characters of `[A-Za-z0-9_-]`, case-sensitive (they are random tokens).
 *
 * Every failure is an `ImppError` with code `ERR_ADDRESS_INVALID` whose message says what is
 * wrong and which form is expected. Messages name offending characters by code point, never echo
 * the whole input.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { ImppError } from '../errors.js';

/** A principal's address `user@domain` in canonical form (lower-case local part, lower-case A-label domain). */
export interface Address {
  readonly user: string;
  readonly domain: string;
}

/** One device of a principal: the address plus a device id (1..64 chars of [A-Za-z0-9_-]). */
export interface DeviceAddress {
  readonly address: Address;
  readonly deviceId: string;
}

/** The two URI schemes that name an address: instant inbox (RFC 3860) and presentity (RFC 3859). */
export type AddressScheme = 'im' | 'pres';

/** Longest local part, in octets (RFC 5321 §4.5.3.1.1). */
export const MAX_LOCAL_PART_LENGTH = 64;
/** Longest domain name in A-label form, without a trailing dot (RFC 1035 §2.3.4). */
export const MAX_DOMAIN_LENGTH = 253;
/** Longest DNS label (RFC 1035 §2.3.4). */
export const MAX_LABEL_LENGTH = 63;
/** Longest device id. */
export const MAX_DEVICE_ID_LENGTH = 64;
/**
 * Longest input the parsers look at. Anything longer cannot be a valid address (64 + 1 + 253 plus a
 * scheme and a device id) and is refused before any Unicode processing runs.
 */
export const MAX_ADDRESS_INPUT_LENGTH = 512;

const EXPECTED = 'expected user@domain, im:user@domain or pres:user@domain';
const LOCAL_ATEXT = /^[a-z0-9!$&'*+=_~-]$/;
const LDH_ASCII = /^[a-z0-9.-]$/i;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

function invalid(message: string): never {
  throw new ImppError('ERR_ADDRESS_INVALID', message);
}

/** `U+0041 'A'` for printable characters, `U+0000` for controls and whitespace. */
function describeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(ch) ? `${hex} '${ch}'` : hex;
}

function isControlOrSpace(ch: string): boolean {
  return /^[\p{Cc}\p{Cf}\p{Z}\s]$/u.test(ch);
}

function assertInputString(input: unknown, what: string): string {
  if (typeof input !== 'string') invalid(`${what} must be a string`);
  if (input.length > MAX_ADDRESS_INPUT_LENGTH) {
    invalid(`${what} is longer than ${MAX_ADDRESS_INPUT_LENGTH} characters; no valid address is`);
  }
  return input;
}

/**
 * Normalizes a local part (the `user` of `user@domain`) to its canonical lower-case form.
 *
 * @throws ImppError `ERR_ADDRESS_INVALID` naming the rule that failed.
 * @example
 * ```ts
 * normalizeLocalPart('Alice.Smith'); // 'alice.smith'
 * ```
 */
export function normalizeLocalPart(input: string): string {
  const raw = assertInputString(input, 'local part');
  if (raw.length === 0) invalid(`local part (before "@") is empty: ${EXPECTED}`);
  if (raw.startsWith('"')) {
    invalid("quoted local parts are not supported: use letters, digits and ! $ & ' * + - = _ ~ .");
  }
  // Check the raw characters before case folding: toLowerCase maps some non-ASCII characters to
  // ASCII (U+212A KELVIN SIGN becomes "k"), which would let a look-alike through.
  for (const ch of raw) {
    if (ch === '.' || LOCAL_ATEXT.test((ch.codePointAt(0) ?? 0) <= 0x7f ? ch.toLowerCase() : ch))
      continue;
    if (ch === '%') {
      invalid(
        'local part contains "%": percent-encoding is not accepted, write the character itself',
      );
    }
    if ((ch.codePointAt(0) ?? 0) > 0x7f && !isControlOrSpace(ch)) {
      invalid(
        `local part contains non-ASCII ${describeChar(ch)}: only ASCII letters, digits and ` +
          `! $ & ' * + - = _ ~ . are accepted (Unicode user names are refused to prevent look-alike spoofing)`,
      );
    }
    invalid(
      `local part contains ${describeChar(ch)}, which is not allowed: ` +
        `expected ASCII letters, digits and ! $ & ' * + - = _ ~ . (RFC 3860 §3 dot-atom)`,
    );
  }
  const lower = raw.toLowerCase();
  if (lower.length > MAX_LOCAL_PART_LENGTH) {
    invalid(
      `local part is ${lower.length} characters long; at most ${MAX_LOCAL_PART_LENGTH} are allowed`,
    );
  }
  if (lower.startsWith('.') || lower.endsWith('.')) {
    invalid('local part starts or ends with ".": dots are allowed only between other characters');
  }
  if (lower.includes('..')) invalid('local part contains "..": dots must not be consecutive');
  return lower;
}

/** Checks one A-label form label; `index` is used only in messages. */
function checkLabel(label: string, index: number): void {
  const where = `domain label ${index + 1}`;
  if (label.length === 0) {
    invalid(
      `${where} is empty ("." at the start or end, or ".." in the domain): expected labels like example.com`,
    );
  }
  if (label.length > MAX_LABEL_LENGTH) {
    invalid(
      `${where} is ${label.length} octets long in A-label form; at most ${MAX_LABEL_LENGTH} are allowed`,
    );
  }
  if (!LDH_LABEL.test(label)) {
    invalid(
      `${where} is not a host name label: it must be letters, digits and "-", ` +
        'and must not start or end with "-" (RFC 1035 §2.3.1, RFC 5891 §4.2.3.1)',
    );
  }
  if (label.slice(2, 4) === '--') {
    if (!label.startsWith('xn--')) {
      invalid(
        `${where} has "--" in positions 3 and 4, which is reserved for A-labels (RFC 5890 §2.3.1)`,
      );
    }
    // An A-label must be the canonical encoding of a real U-label: decoding and re-encoding must
    // give the same label (e.g. "xn--ab-" encodes plain "ab"). Node's IDNA and the LDH check
    // already refuse the cases we know of; this stays as defence in depth against a change there.
    const unicode = domainToUnicode(label);
    if (unicode === label || domainToASCII(unicode) !== label) {
      invalid(`${where} is not a canonical A-label (its xn-- encoding does not round-trip)`);
    }
  }
}

/**
 * Domains already normalized, input → canonical form. The server re-reads the same few domains
 * in every frame (its own, above all), and UTS #46 processing dominated address parsing there.
 * Only successful results are kept, and the function is pure, so a hit answers exactly what the
 * full check would.
 */
const canonicalDomains = new Map<string, string>();
const DOMAIN_CACHE_SIZE = 1024;

/**
 * Normalizes a domain name to its canonical form: lower-case A-labels (IDNA via UTS #46),
 * no trailing dot. Accepts U-labels (`bücher.example`) and A-labels (`xn--bcher-kva.example`).
 *
 * @throws ImppError `ERR_ADDRESS_INVALID` naming the rule that failed.
 * @example
 * ```ts
 * normalizeDomain('Bücher.Example'); // 'xn--bcher-kva.example'
 * ```
 */
export function normalizeDomain(input: string): string {
  const cached = typeof input === 'string' ? canonicalDomains.get(input) : undefined;
  if (cached !== undefined) return cached;
  const ascii = normalizeDomainUncached(input);
  // Bounded: a flood of distinct names only ever costs DOMAIN_CACHE_SIZE entries.
  if (canonicalDomains.size >= DOMAIN_CACHE_SIZE) canonicalDomains.clear();
  canonicalDomains.set(input, ascii);
  return ascii;
}

function normalizeDomainUncached(input: string): string {
  const raw = assertInputString(input, 'domain');
  if (raw.length === 0) invalid(`domain (after "@") is empty: ${EXPECTED}`);
  if (raw.startsWith('[')) {
    invalid(
      'IP literals are not accepted: an address names a DNS domain (RFC 3861 resolves names)',
    );
  }
  for (const ch of raw) {
    if ((ch.codePointAt(0) ?? 0) <= 0x7f) {
      if (LDH_ASCII.test(ch)) continue;
      if (ch === '%') invalid('domain contains "%": percent-encoding is not accepted');
      invalid(
        `domain contains ${describeChar(ch)}, which is not allowed in a host name: ` +
          'expected letters, digits, "-" and "." (or Unicode letters of an internationalized domain)',
      );
    }
    if (isControlOrSpace(ch)) {
      invalid(
        `domain contains ${describeChar(ch)} (a control, format or space character), which is not allowed`,
      );
    }
  }
  if (raw.endsWith('.')) invalid('domain ends with ".": write it without the trailing dot');

  // UTS #46 processing. domainToASCII returns '' on any failure instead of throwing.
  const ascii = domainToASCII(raw);
  if (ascii === '') {
    invalid(
      'domain is not a valid internationalized domain name (IDNA / UTS #46 processing refused it)',
    );
  }
  if (ascii.length > MAX_DOMAIN_LENGTH) {
    invalid(
      `domain is ${ascii.length} octets long in A-label form; at most ${MAX_DOMAIN_LENGTH} are allowed`,
    );
  }
  const labels = ascii.split('.');
  labels.forEach(checkLabel);
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    invalid(
      'domain looks like an IP address (its last label is numeric): IP addresses are not accepted',
    );
  }
  if (labels.length < 2 && ascii !== 'localhost') {
    invalid(
      'domain has a single label: expected a fully qualified name like example.com (only "localhost" is accepted alone)',
    );
  }
  // Defensive: the canonical form must be a fixed point of the normalization.
  if (domainToASCII(ascii) !== ascii) invalid('domain does not have a stable canonical form');
  return ascii;
}

/** Splits `user@domain` (no scheme) and normalizes both halves. */
function parseBare(bare: string): Address {
  const at = bare.indexOf('@');
  if (at < 0) invalid(`address has no "@": ${EXPECTED}`);
  if (bare.indexOf('@', at + 1) >= 0) {
    invalid(`address has more than one "@": ${EXPECTED} (quoted local parts are not supported)`);
  }
  return {
    user: normalizeLocalPart(bare.slice(0, at)),
    domain: normalizeDomain(bare.slice(at + 1)),
  };
}

/** Removes an `im:` / `pres:` scheme, refusing other schemes, authorities, queries and fragments. */
function stripScheme(input: string, allowed: readonly AddressScheme[]): string {
  const match = SCHEME.exec(input);
  let rest = input;
  if (match !== null) {
    const scheme = (match[1] ?? '').toLowerCase();
    if (!(allowed as readonly string[]).includes(scheme)) {
      const expected = allowed.map((s) => `${s}:user@domain`).join(' or ');
      invalid(`URI scheme is not accepted here: expected ${expected}`);
    }
    rest = input.slice(match[0].length);
    if (rest.startsWith('//')) {
      invalid(
        `"${scheme}:" URIs have no "//" authority (RFC 3860 §3, RFC 3859 §3): write ${scheme}:user@domain`,
      );
    }
  } else if (allowed.length === 1) {
    invalid(`missing "${allowed.join('')}:" scheme: expected ${allowed.join('')}:user@domain`);
  }
  if (rest.includes('?')) {
    invalid(
      'URI query ("?...") is not accepted: an address names a principal, and headers are refused rather than dropped',
    );
  }
  if (rest.includes('#')) invalid('URI fragment ("#...") is not accepted in an address');
  return rest;
}

/**
 * Parses `user@domain`, `im:user@domain` (RFC 3860 §3) or `pres:user@domain` (RFC 3859 §3) into a
 * canonical {@link Address}. The scheme is case-insensitive (RFC 3986 §3.1).
 *
 * @throws ImppError `ERR_ADDRESS_INVALID` saying what is wrong and what form is expected.
 * @example
 * ```ts
 * parseAddress('im:Alice@Bücher.Example'); // { user: 'alice', domain: 'xn--bcher-kva.example' }
 * ```
 */
export function parseAddress(input: string): Address {
  const raw = assertInputString(input, 'address');
  return parseBare(stripScheme(raw, ['im', 'pres']));
}

/**
 * Parses an instant-inbox URI `im:user@domain` (RFC 3860 §3); the scheme is required.
 *
 * @example
 * ```ts
 * parseImUri('im:bob@example.com'); // { user: 'bob', domain: 'example.com' }
 * ```
 */
export function parseImUri(input: string): Address {
  const raw = assertInputString(input, 'im: URI');
  return parseBare(stripScheme(raw, ['im']));
}

/**
 * Parses a presentity URI `pres:user@domain` (RFC 3859 §3); the scheme is required.
 *
 * @example
 * ```ts
 * parsePresUri('pres:bob@example.com'); // { user: 'bob', domain: 'example.com' }
 * ```
 */
export function parsePresUri(input: string): Address {
  const raw = assertInputString(input, 'pres: URI');
  return parseBare(stripScheme(raw, ['pres']));
}

/**
 * Validates an {@link Address} built by hand and returns its canonical form.
 *
 * @example
 * ```ts
 * normalizeAddress({ user: 'Bob', domain: 'EXAMPLE.com' }); // { user: 'bob', domain: 'example.com' }
 * ```
 */
export function normalizeAddress(address: Address): Address {
  if (typeof address !== 'object' || (address as unknown) === null)
    invalid('address must be an object { user, domain }');
  return { user: normalizeLocalPart(address.user), domain: normalizeDomain(address.domain) };
}

/**
 * Canonical string form `user@domain`. The address is validated and normalized first, so the
 * output always parses back to the same value.
 *
 * @example
 * ```ts
 * formatAddress({ user: 'alice', domain: 'example.com' }); // 'alice@example.com'
 * ```
 */
export function formatAddress(address: Address): string {
  const a = normalizeAddress(address);
  return `${a.user}@${a.domain}`;
}

/**
 * `im:user@domain` (RFC 3860 §3).
 *
 * @example
 * ```ts
 * formatImUri({ user: 'alice', domain: 'example.com' }); // 'im:alice@example.com'
 * ```
 */
export function formatImUri(address: Address): string {
  return `im:${formatAddress(address)}`;
}

/**
 * `pres:user@domain` (RFC 3859 §3).
 *
 * @example
 * ```ts
 * formatPresUri({ user: 'alice', domain: 'example.com' }); // 'pres:alice@example.com'
 * ```
 */
export function formatPresUri(address: Address): string {
  return `pres:${formatAddress(address)}`;
}

/**
 * `true` when `value` is a syntactically valid device id (1..64 of `[A-Za-z0-9_-]`).
 *
 * @example
 * ```ts
 * isValidDeviceId('laptop-1'); // true
 * isValidDeviceId('a/b');      // false
 * ```
 */
export function isValidDeviceId(value: unknown): value is string {
  return typeof value === 'string' && DEVICE_ID.test(value);
}

/**
 * Returns `deviceId` unchanged if valid; throws `ERR_ADDRESS_INVALID` otherwise.
 *
 * @example
 * ```ts
 * assertDeviceId('phone_2'); // 'phone_2'
 * ```
 */
export function assertDeviceId(deviceId: unknown): string {
  if (isValidDeviceId(deviceId)) return deviceId;
  if (typeof deviceId !== 'string') invalid('device id must be a string');
  if (deviceId.length === 0)
    invalid('device id is empty: expected 1..64 characters of A-Z a-z 0-9 _ -');
  if (deviceId.length > MAX_DEVICE_ID_LENGTH) {
    invalid(
      `device id is ${deviceId.length} characters long; at most ${MAX_DEVICE_ID_LENGTH} are allowed`,
    );
  }
  invalid('device id contains a character outside A-Z a-z 0-9 _ -');
}

/**
 * Canonical string form of a device: `user@domain/deviceId`.
 *
 * @example
 * ```ts
 * formatDeviceAddress({ address: { user: 'alice', domain: 'example.com' }, deviceId: 'laptop' });
 * // 'alice@example.com/laptop'
 * ```
 */
export function formatDeviceAddress(device: DeviceAddress): string {
  if (typeof device !== 'object' || (device as unknown) === null)
    invalid('device address must be an object');
  return `${formatAddress(device.address)}/${assertDeviceId(device.deviceId)}`;
}

/**
 * Parses `user@domain/deviceId` (bare form only: device addresses are not URIs).
 *
 * @example
 * ```ts
 * parseDeviceAddress('Alice@example.com/laptop');
 * // { address: { user: 'alice', domain: 'example.com' }, deviceId: 'laptop' }
 * ```
 */
export function parseDeviceAddress(input: string): DeviceAddress {
  const raw = assertInputString(input, 'device address');
  const slash = raw.indexOf('/');
  if (slash < 0) invalid('device address has no "/": expected user@domain/deviceId');
  if (raw.slice(0, slash).includes(':')) {
    invalid('device address must not carry a URI scheme: expected user@domain/deviceId');
  }
  const address = parseBare(raw.slice(0, slash));
  return { address, deviceId: assertDeviceId(raw.slice(slash + 1)) };
}

/**
 * `true` when both addresses name the same principal. Both are normalized first, so a hand-built
 * `{ user: 'Alice', domain: 'EXAMPLE.com' }` equals the canonical form; an invalid address throws
 * rather than comparing unequal (an access check must not be bypassed by a non-canonical spelling).
 *
 * @example
 * ```ts
 * sameAddress(parseAddress('alice@example.com'), { user: 'ALICE', domain: 'Example.com' }); // true
 * ```
 */
export function sameAddress(a: Address, b: Address): boolean {
  const x = normalizeAddress(a);
  const y = normalizeAddress(b);
  return x.user === y.user && x.domain === y.domain;
}

/**
 * `true` when both device addresses name the same device of the same principal. Device ids are
 * case-sensitive.
 *
 * @example
 * ```ts
 * sameDeviceAddress(parseDeviceAddress('a@example.com/d1'), parseDeviceAddress('A@example.com/d1')); // true
 * ```
 */
export function sameDeviceAddress(a: DeviceAddress, b: DeviceAddress): boolean {
  return (
    sameAddress(a.address, b.address) && assertDeviceId(a.deviceId) === assertDeviceId(b.deviceId)
  );
}
