/**
 * Message/CPIM (RFC 3862) codec: the payload format of every impp message.
 *
 * What is encoded here is the *body* of a Message/CPIM MIME entity (RFC 3862 §2): the message
 * metadata headers, a blank line, then the encapsulated MIME entity (its headers, a blank line, and
 * its content bytes). The outer `Content-Type: Message/CPIM` belongs to whoever carries the bytes;
 * in impp it is implied by the sealed envelope.
 *
 * Decoding is strict, because the bytes come from the network (after the seal is opened, but from
 * a sender who may be hostile):
 * - size limits (total bytes, header count per section, bytes per header line) from
 *   {@link CpimLimits}, checked before any per-header work (RFC 3862 §3.1 asks processors not to
 *   limit line length; a bounded limit is a deliberate deviation, documented in docs/formats.md);
 * - header lines end in CRLF; a bare CR or LF, folding, leading white space, or a control
 *   character in a header line is refused (§3.1: one header per line, no folding, CRLF, escapes
 *   instead of control characters);
 * - header sections are strict UTF-8 (§3.1); a text/* body declared `charset=utf-8` must be too;
 * - header names are case sensitive (§3.1); a header whose name differs from a core header only by
 *   case (`from:`) is refused rather than ignored, because lenient readers would take it for the
 *   real one;
 * - core headers follow their own grammar (§4): From, To and cc carry `[Formal-name] "<" URI ">"`
 *   with an `im:` URI, DateTime an RFC 3339 date-time, Subject an optional `;lang=` parameter, NS a
 *   prefix and a URI, Require a list of header names; From exactly once, To at least once, DateTime
 *   and Require at most once, Subject at most once per language;
 * - extension headers must use a prefix declared by an earlier NS header (§3.3).
 *
 * Every failure is `ImppError('ERR_PAYLOAD_INVALID')` naming the rule, never the content.
 *
 * @example
 * ```ts
 * const bytes = encodeCpim(cpimTextMessage({
 *   from: { address: parseAddress('alice@example.com') },
 *   to: [{ formalName: 'Bob', address: parseAddress('bob@example.org') }],
 *   dateTime: '2026-01-02T03:04:05Z',
 *   text: 'hello',
 * }));
 * const msg = decodeCpim(bytes);
 * cpimText(msg); // 'hello'
 * ```
 */
import { ImppError, isImppError } from '../../errors.js';
import { formatAddress, parseAddress, type Address } from '../../trust/address.js';
import { isRfc3339DateTime, isWellFormed, utf8DecodeStrict, utf8Encode } from './text.js';

/** A party in From, To or cc: an optional display name and an `im:` address (RFC 3862 §4.1). */
export interface CpimParty {
  /** RFC 3862 `Formal-name`: a display name, never used for identity decisions. */
  readonly formalName?: string;
  /** The principal, written on the wire as `<im:user@domain>`. */
  readonly address: Address;
}

/** A Subject header (RFC 3862 §4.5): text with an optional RFC 3066 language tag. */
export interface CpimSubject {
  readonly lang?: string;
  readonly value: string;
}

/** An NS header (RFC 3862 §4.6): binds a header-name prefix to a namespace URI. */
export interface CpimNamespace {
  readonly prefix: string;
  readonly uri: string;
}

/** A header parameter (`;name=value`, RFC 3862 §3.1). `value` is the decoded text. */
export interface CpimParam {
  readonly name: string;
  readonly value: string;
}

/**
 * An extension header: `Prefix.Name` with `Prefix` declared by an NS header, or an unprefixed name
 * in the default namespace that is not a core header. `value` is the decoded (unescaped) text.
 */
export interface CpimHeader {
  readonly prefix?: string;
  readonly name: string;
  readonly params: readonly CpimParam[];
  readonly value: string;
}

/** A MIME header of the encapsulated content, other than Content-Type. */
export interface CpimMimeHeader {
  readonly name: string;
  readonly value: string;
}

/** The encapsulated MIME entity (RFC 3862 §2.3). */
export interface CpimContent {
  /** The Content-Type value, e.g. `text/plain; charset=utf-8`. */
  readonly contentType: string;
  /** Other MIME headers (Content-ID, Content-Disposition, ...), in order. */
  readonly headers: readonly CpimMimeHeader[];
  /** The content bytes, carried as they are. */
  readonly body: Uint8Array;
}

/** A decoded Message/CPIM document. */
export interface CpimMessage {
  readonly from: CpimParty;
  readonly to: readonly CpimParty[];
  readonly cc: readonly CpimParty[];
  /** RFC 3339 date-time, kept as written so that its offset survives. */
  readonly dateTime?: string;
  readonly subject: readonly CpimSubject[];
  readonly ns: readonly CpimNamespace[];
  /**
   * Header names listed in Require (RFC 3862 §4.7). A recipient that does not understand one of
   * them must not process the message: this codec reports them, the application decides.
   */
  readonly require: readonly string[];
  readonly headers: readonly CpimHeader[];
  readonly content: CpimContent;
}

/** Size limits for {@link decodeCpim} and {@link encodeCpim}. */
export interface CpimLimits {
  /** Maximum size of the whole document in bytes. */
  readonly maxBytes: number;
  /** Maximum number of header lines in each of the two header sections. */
  readonly maxHeaders: number;
  /** Maximum bytes of one header line, CRLF excluded. */
  readonly maxLineBytes: number;
}

/** Default limits: 1 MiB documents, 64 headers per section, 4 KiB per header line. */
export const DEFAULT_CPIM_LIMITS: CpimLimits = Object.freeze({
  maxBytes: 1 << 20,
  maxHeaders: 64,
  maxLineBytes: 4096,
});

/** The default header namespace (RFC 3862 §3.3); no prefix may be bound to it. */
export const CPIM_HEADERS_NAMESPACE = 'urn:ietf:params:cpim-headers:';

const CORE_HEADERS = ['From', 'To', 'cc', 'DateTime', 'Subject', 'NS', 'Require'] as const;
const CORE_LOWER = new Set(CORE_HEADERS.map((h) => h.toLowerCase()));

// RFC 3862 §3.1 character classes.
// NAMECHAR = %x21 / %x23-27 / %x2a-2b / %x2d / %x5e-60 / %x7c / %x7e / ALPHA / DIGIT
const NAMECHAR = "[!#$%&'*+\\-^_`|~A-Za-z0-9]";
// TOKENCHAR = NAMECHAR / "." / UCS-high
const TOKENCHAR = "[!#$%&'*+\\-.^_`|~A-Za-z0-9\\u0080-\\u{10FFFF}]";
const NAME_RE = new RegExp(`^${NAMECHAR}+$`, 'u');
const TOKEN_RE = new RegExp(`^${TOKENCHAR}+$`, 'u');
const HEADER_NAME_RE = new RegExp(`^(?:(${NAMECHAR}+)\\.)?(${NAMECHAR}+):`, 'u');
const FORMAL_TOKENS_RE = new RegExp(`^(?:${TOKENCHAR}+ )+$`, 'u');
// Language-tag (RFC 3066) = Primary-subtag *( "-" Subtag ); Primary-subtag = 1*8ALPHA;
// Subtag = 1*8(ALPHA / DIGIT)
const LANG_RE = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;
// A URI (RFC 3986) without its full grammar: a scheme, a colon, and URI characters only. Enough to
// keep delimiters ("<", ">", '"', spaces, controls) out of the angle brackets.
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
// RFC 5322 field-name = 1*ftext; ftext = %d33-57 / %d59-126
const MIME_NAME_RE = /^[!-9;-~]+$/;
// RFC 2045 Content-Type: type "/" subtype *(";" parameter), with token or quoted-string values.
const MIME_TOKEN = "[!#$%&'*+\\-.^_`{|}~A-Za-z0-9]+";
const CONTENT_TYPE_RE = new RegExp(
  `^${MIME_TOKEN}/${MIME_TOKEN}(?:[ \\t]*;[ \\t]*${MIME_TOKEN}=(?:${MIME_TOKEN}|"(?:[^"\\\\\\r\\n]|\\\\[^\\r\\n])*"))*$`,
);
/** `true` when `s` has an ASCII control character (CTL: %x00-1F / %x7F), HTAB excepted if asked. */
function hasControl(s: string, allowTab = false): boolean {
  for (let i = 0; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 || c === 0x7f) && !(allowTab && c === 0x09)) return true;
  }
  return false;
}

function invalid(what: string, cause?: unknown): ImppError {
  return new ImppError(
    'ERR_PAYLOAD_INVALID',
    `Message/CPIM refused: ${what}`,
    cause === undefined ? undefined : { cause },
  );
}

// ---------------------------------------------------------------------------------------------
// Escaping (RFC 3862 §3.1: Escape = "\" ( "u" 4(HEXDIG) / "b" / "t" / "n" / "r" / DQUOTE / "'" / "\" ))

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  b: '\b',
  t: '\t',
  n: '\n',
  r: '\r',
  '"': '"',
  "'": "'",
  '\\': '\\',
};

/** Escapes text for a Header-value, or for a quoted String when `quoted` is set. */
function escapeText(s: string, quoted: boolean): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (quoted && ch === '"') out += '\\"';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

/**
 * Decodes escapes in `s` from `start`. In a quoted String, stops at the first unescaped DQUOTE and
 * returns its index in `end`; otherwise runs to the end of `s`.
 */
function unescapeText(s: string, start: number, quoted: boolean): { text: string; end: number } {
  let out = '';
  let i = start;
  while (i < s.length) {
    const ch = s[i] ?? '';
    if (quoted && ch === '"') return { text: out, end: i };
    if (ch !== '\\') {
      out += ch;
      i += 1;
      continue;
    }
    const kind = s[i + 1];
    if (kind === undefined) throw invalid('escape at end of value');
    const simple = SIMPLE_ESCAPES[kind];
    if (simple !== undefined) {
      out += simple;
      i += 2;
      continue;
    }
    if (kind !== 'u') throw invalid('unknown escape sequence');
    const unit = readHex4(s, i + 2);
    i += 6;
    if (unit >= 0xdc00 && unit <= 0xdfff) throw invalid('escaped lone low surrogate');
    if (unit >= 0xd800 && unit <= 0xdbff) {
      // A character outside the BMP may be escaped as a UTF-16 surrogate pair.
      if (s[i] !== '\\' || s[i + 1] !== 'u') throw invalid('escaped lone high surrogate');
      const low = readHex4(s, i + 2);
      if (low < 0xdc00 || low > 0xdfff) throw invalid('escaped lone high surrogate');
      out += String.fromCharCode(unit, low);
      i += 6;
      continue;
    }
    out += String.fromCharCode(unit);
  }
  if (quoted) throw invalid('unterminated quoted string');
  return { text: out, end: i };
}

function readHex4(s: string, at: number): number {
  const hex = s.slice(at, at + 4);
  if (!/^[0-9A-Fa-f]{4}$/.test(hex)) throw invalid('\\u escape needs four hex digits');
  return parseInt(hex, 16);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes a {@link CpimMessage} as the body of a Message/CPIM entity. Validates the model against
 * the same rules as {@link decodeCpim}, so that whatever is encoded decodes to an equal model.
 *
 * @example
 * ```ts
 * const bytes = encodeCpim(msg); // 'From: <im:alice@example.com>\r\nTo: ...\r\n\r\nContent-Type: ...'
 * ```
 */
export function encodeCpim(msg: CpimMessage, limits: CpimLimits = DEFAULT_CPIM_LIMITS): Uint8Array {
  const lines: string[] = [];
  lines.push(`From: ${encodeParty(msg.from, 'From')}`);
  if (msg.to.length === 0) throw invalid('To is required');
  for (const p of msg.to) lines.push(`To: ${encodeParty(p, 'To')}`);
  for (const p of msg.cc) lines.push(`cc: ${encodeParty(p, 'cc')}`);
  if (msg.dateTime !== undefined) {
    if (!isRfc3339DateTime(msg.dateTime)) throw invalid('DateTime is not an RFC 3339 date-time');
    lines.push(`DateTime: ${msg.dateTime}`);
  }
  const subjectLangs = new Set<string>();
  for (const s of msg.subject) {
    const langKey = s.lang?.toLowerCase() ?? '';
    if (s.lang !== undefined && !LANG_RE.test(s.lang))
      throw invalid('Subject lang is not a language tag');
    if (subjectLangs.has(langKey)) throw invalid('two Subject headers with the same language');
    subjectLangs.add(langKey);
    checkText(s.value, 'Subject');
    lines.push(
      `Subject:${s.lang === undefined ? '' : `;lang=${s.lang}`} ${escapeText(s.value, false)}`,
    );
  }
  const declared = new Set<string>();
  for (const n of msg.ns) {
    checkNamespace(n, declared);
    declared.add(n.prefix);
    lines.push(`NS: ${n.prefix} <${n.uri}>`);
  }
  if (msg.require.length > 0) {
    for (const r of msg.require) checkRequiredName(r, declared);
    lines.push(`Require: ${msg.require.join(',')}`);
  }
  for (const h of msg.headers) {
    checkHeaderName(h.prefix, h.name, declared);
    let line = h.prefix === undefined ? h.name : `${h.prefix}.${h.name}`;
    line += ':';
    for (const p of h.params) line += `;${encodeParam(p)}`;
    checkText(h.value, 'header value');
    lines.push(`${line} ${escapeText(h.value, false)}`);
  }
  if (lines.length > limits.maxHeaders) throw invalid(`more than ${limits.maxHeaders} headers`);

  const c = msg.content;
  // The grammar lets HTAB and controls into parameters; decodeCpim refuses them in any header line.
  if (!CONTENT_TYPE_RE.test(c.contentType) || hasControl(c.contentType)) {
    throw invalid('Content-Type is malformed');
  }
  const mime = [`Content-Type: ${c.contentType}`];
  for (const h of c.headers) {
    if (!MIME_NAME_RE.test(h.name)) throw invalid('MIME header name is malformed');
    if (h.name.toLowerCase() === 'content-type') throw invalid('Content-Type given twice');
    checkMimeValue(h.value);
    mime.push(`${h.name}: ${h.value}`);
  }
  if (mime.length > limits.maxHeaders) throw invalid(`more than ${limits.maxHeaders} MIME headers`);
  checkBodyCharset(c.contentType, c.body);

  const head: Uint8Array[] = [];
  for (const l of [...lines, '', ...mime, '']) {
    const bytes = utf8Encode(`${l}\r\n`);
    if (bytes.length - 2 > limits.maxLineBytes)
      throw invalid(`header line longer than ${limits.maxLineBytes} bytes`);
    head.push(bytes);
  }
  const total = head.reduce((n, b) => n + b.length, 0) + c.body.length;
  if (total > limits.maxBytes) throw invalid(`document larger than ${limits.maxBytes} bytes`);
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of head) {
    out.set(b, at);
    at += b.length;
  }
  out.set(c.body, at);
  return out;
}

function checkText(s: string, what: string): void {
  if (!isWellFormed(s)) throw invalid(`${what} contains a lone surrogate`);
}

function encodeParty(p: CpimParty, what: string): string {
  let uri: string;
  try {
    uri = `im:${formatAddress(parseAddress(formatAddress(p.address)))}`;
  } catch (e) {
    throw invalid(`${what} address is not valid`, e);
  }
  if (!URI_RE.test(uri)) throw invalid(`${what} address cannot be written as a URI`);
  if (p.formalName === undefined) return `<${uri}>`;
  checkText(p.formalName, `${what} formal name`);
  if (p.formalName.length === 0) throw invalid(`${what} formal name is empty`);
  // Formal-name = 1*( Token SP ) / String: the token form when it is exact, else a quoted string.
  const tokenForm = `${p.formalName} `;
  if (FORMAL_TOKENS_RE.test(tokenForm)) return `${tokenForm}<${uri}>`;
  return `"${escapeText(p.formalName, true)}"<${uri}>`;
}

function encodeParam(p: CpimParam): string {
  if (!NAME_RE.test(p.name)) throw invalid('parameter name is malformed');
  if (p.name === 'lang' && !LANG_RE.test(p.value)) throw invalid('lang is not a language tag');
  checkText(p.value, 'parameter value');
  // Param-value = Token / Number / String (Number is a Token).
  return TOKEN_RE.test(p.value)
    ? `${p.name}=${p.value}`
    : `${p.name}="${escapeText(p.value, true)}"`;
}

function checkNamespace(n: CpimNamespace, declared: ReadonlySet<string>): void {
  if (!NAME_RE.test(n.prefix)) throw invalid('NS prefix is malformed');
  if (declared.has(n.prefix)) throw invalid('NS prefix declared twice');
  if (!URI_RE.test(n.uri)) throw invalid('NS URI is malformed');
  // Binding a prefix to the default namespace would give core headers a second spelling.
  if (n.uri.toLowerCase() === CPIM_HEADERS_NAMESPACE)
    throw invalid('NS prefix bound to the default namespace');
}

function checkHeaderName(
  prefix: string | undefined,
  name: string,
  declared: ReadonlySet<string>,
): void {
  if (!NAME_RE.test(name)) throw invalid('header name is malformed');
  if (prefix === undefined) {
    if (CORE_LOWER.has(name.toLowerCase()))
      throw invalid('extension header uses a core header name');
    return;
  }
  if (!NAME_RE.test(prefix)) throw invalid('header prefix is malformed');
  if (!declared.has(prefix)) throw invalid('header prefix not declared by an earlier NS header');
}

function checkRequiredName(r: string, declared: ReadonlySet<string>): void {
  const dot = r.indexOf('.');
  if (dot === -1) {
    if (!NAME_RE.test(r)) throw invalid('Require lists a malformed header name');
    return;
  }
  const prefix = r.slice(0, dot);
  const name = r.slice(dot + 1);
  if (!NAME_RE.test(prefix) || !NAME_RE.test(name))
    throw invalid('Require lists a malformed header name');
  if (!declared.has(prefix)) throw invalid('Require uses an undeclared prefix');
}

function checkMimeValue(v: string): void {
  checkText(v, 'MIME header value');
  // No folding, no controls (not even HTAB: decodeCpim refuses every control character in a header
  // line), no leading white space (it would not survive decoding).
  if (hasControl(v) || /^[ \t]/.test(v)) {
    throw invalid('MIME header value contains control characters or leading white space');
  }
}

/** text/* declared as UTF-8 must be UTF-8; other bodies are opaque bytes. */
function checkBodyCharset(contentType: string, body: Uint8Array): void {
  const lower = contentType.toLowerCase();
  if (!lower.startsWith('text/')) return;
  const charset = /;[ \t]*charset=(?:"([^"]*)"|([^; \t]+))/.exec(lower);
  const value = charset?.[1] ?? charset?.[2];
  if (value === 'utf-8' && utf8DecodeStrict(body) === undefined) {
    throw invalid('text body declared UTF-8 is not valid UTF-8');
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes the body of a Message/CPIM entity, or throws `ERR_PAYLOAD_INVALID` saying which rule
 * failed. The returned model owns its body bytes (a copy, not a view of `bytes`).
 *
 * @example
 * ```ts
 * const msg = decodeCpim(bytes);
 * msg.from.address; // { user: 'alice', domain: 'example.com' }
 * ```
 */
export function decodeCpim(
  bytes: Uint8Array,
  limits: CpimLimits = DEFAULT_CPIM_LIMITS,
): CpimMessage {
  if (!(bytes instanceof Uint8Array)) throw invalid('input must be bytes');
  if (bytes.length > limits.maxBytes)
    throw invalid(`document larger than ${limits.maxBytes} bytes`);
  const reader = { at: 0 };
  const messageLines = readHeaderSection(bytes, reader, limits, 'message');
  const mimeLines = readHeaderSection(bytes, reader, limits, 'MIME');
  const body = bytes.slice(reader.at);

  let from: CpimParty | undefined;
  const to: CpimParty[] = [];
  const cc: CpimParty[] = [];
  let dateTime: string | undefined;
  const subject: CpimSubject[] = [];
  const subjectLangs = new Set<string>();
  const ns: CpimNamespace[] = [];
  const declared = new Set<string>();
  let require: string[] | undefined;
  const headers: CpimHeader[] = [];

  for (const line of messageLines) {
    const h = parseHeaderLine(line);
    if (h.prefix === undefined && CORE_LOWER.has(h.name.toLowerCase())) {
      const params = h.params;
      switch (h.name) {
        case 'From':
          noParams(params, 'From');
          if (from !== undefined) throw invalid('From appears more than once');
          from = decodeParty(h.rawValue, 'From');
          break;
        case 'To':
          noParams(params, 'To');
          to.push(decodeParty(h.rawValue, 'To'));
          break;
        case 'cc':
          noParams(params, 'cc');
          cc.push(decodeParty(h.rawValue, 'cc'));
          break;
        case 'DateTime':
          noParams(params, 'DateTime');
          if (dateTime !== undefined) throw invalid('DateTime appears more than once');
          if (!isRfc3339DateTime(h.rawValue))
            throw invalid('DateTime is not an RFC 3339 date-time');
          dateTime = h.rawValue;
          break;
        case 'Subject': {
          const lang = subjectLang(params);
          const key = lang?.toLowerCase() ?? '';
          if (subjectLangs.has(key)) throw invalid('two Subject headers with the same language');
          subjectLangs.add(key);
          const value = unescapeText(h.rawValue, 0, false).text;
          subject.push(lang === undefined ? { value } : { lang, value });
          break;
        }
        case 'NS': {
          noParams(params, 'NS');
          const m = /^([^ <]+) <([^<>]*)>$/.exec(h.rawValue);
          if (m === null)
            throw invalid(
              'NS must be "Prefix <URI>" (redefining the default namespace is refused)',
            );
          const n = { prefix: m[1] ?? '', uri: m[2] ?? '' };
          checkNamespace(n, declared);
          declared.add(n.prefix);
          ns.push(n);
          break;
        }
        case 'Require':
          noParams(params, 'Require');
          if (require !== undefined) throw invalid('Require appears more than once');
          require = h.rawValue.split(',');
          for (const r of require) checkRequiredName(r, declared);
          break;
        default:
          // Same letters as a core header in another case: refused, see the module comment.
          throw invalid('header name differs from a core header only by case');
      }
      continue;
    }
    checkHeaderName(h.prefix, h.name, declared);
    const value = unescapeText(h.rawValue, 0, false).text;
    headers.push(
      h.prefix === undefined
        ? { name: h.name, params: h.params, value }
        : { prefix: h.prefix, name: h.name, params: h.params, value },
    );
  }
  if (from === undefined) throw invalid('From is required');
  if (to.length === 0) throw invalid('To is required');

  let contentType: string | undefined;
  const mimeHeaders: CpimMimeHeader[] = [];
  for (const line of mimeLines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw invalid('MIME header line has no name');
    const name = line.slice(0, colon);
    if (!MIME_NAME_RE.test(name)) throw invalid('MIME header name is malformed');
    const value = line.slice(colon + 1).replace(/^[ \t]+/, '');
    if (hasControl(value, true)) throw invalid('MIME header value contains control characters');
    if (name.toLowerCase() === 'content-type') {
      if (contentType !== undefined) throw invalid('Content-Type appears more than once');
      if (!CONTENT_TYPE_RE.test(value)) throw invalid('Content-Type is malformed');
      contentType = value;
    } else {
      mimeHeaders.push({ name, value });
    }
  }
  if (contentType === undefined)
    throw invalid('Content-Type is required in the encapsulated entity');
  checkBodyCharset(contentType, body);

  const msg: CpimMessage = {
    from,
    to,
    cc,
    subject,
    ns,
    require: require ?? [],
    headers,
    content: { contentType, headers: mimeHeaders, body },
  };
  return dateTime === undefined ? msg : { ...msg, dateTime };
}

/**
 * Reads CRLF-terminated header lines up to and including the blank line that ends the section.
 * Works on bytes so that a bare CR or LF is seen before any decoding.
 */
function readHeaderSection(
  bytes: Uint8Array,
  reader: { at: number },
  limits: CpimLimits,
  what: string,
): string[] {
  const lines: string[] = [];
  for (;;) {
    const start = reader.at;
    let i = start;
    // Bounded by the line limit: a line longer than that is refused before it is scanned further.
    const stop = Math.min(bytes.length, start + limits.maxLineBytes + 2);
    while (i < stop && bytes[i] !== 0x0d && bytes[i] !== 0x0a) i += 1;
    if (i >= bytes.length) throw invalid(`${what} headers are not terminated by a blank line`);
    if (i - start > limits.maxLineBytes)
      throw invalid(`header line longer than ${limits.maxLineBytes} bytes`);
    if (bytes[i] !== 0x0d || bytes[i + 1] !== 0x0a) throw invalid('header lines must end in CRLF');
    reader.at = i + 2;
    if (i === start) {
      if (lines.length === 0) throw invalid(`${what} header section is empty`);
      return lines;
    }
    if (lines.length >= limits.maxHeaders)
      throw invalid(`more than ${limits.maxHeaders} ${what} headers`);
    const line = utf8DecodeStrict(bytes.subarray(start, i));
    if (line === undefined) throw invalid('header line is not valid UTF-8');
    if (hasControl(line)) throw invalid('header line contains a control character');
    if (/^[ \t]/.test(line))
      throw invalid('header line starts with white space (folding is not allowed)');
    lines.push(line);
  }
}

interface RawHeader {
  readonly prefix: string | undefined;
  readonly name: string;
  readonly params: CpimParam[];
  readonly rawValue: string;
}

/** Header = Header-name ":" *( ";" Parameter ) SP Header-value (RFC 3862 §3.1). */
function parseHeaderLine(line: string): RawHeader {
  const m = HEADER_NAME_RE.exec(line);
  if (m === null) throw invalid('header line does not start with Name or Prefix.Name and a colon');
  const prefix = m[1];
  const name = m[2] ?? '';
  let i = m[0].length;
  const params: CpimParam[] = [];
  while (line[i] === ';') {
    const eq = line.indexOf('=', i + 1);
    if (eq === -1) throw invalid('header parameter has no value');
    const pname = line.slice(i + 1, eq);
    if (!NAME_RE.test(pname)) throw invalid('header parameter name is malformed');
    i = eq + 1;
    let value: string;
    if (line[i] === '"') {
      const s = unescapeText(line, i + 1, true);
      value = s.text;
      i = s.end + 1;
    } else {
      let j = i;
      while (j < line.length && line[j] !== ' ' && line[j] !== ';') j += 1;
      value = line.slice(i, j);
      if (!TOKEN_RE.test(value)) throw invalid('header parameter value is malformed');
      i = j;
    }
    if (pname === 'lang' && !LANG_RE.test(value)) throw invalid('lang is not a language tag');
    params.push({ name: pname, value });
  }
  // Exactly one SP separates the name (and parameters) from the value (§3.1).
  if (line[i] !== ' ') throw invalid('header name must be followed by exactly one space');
  return { prefix, name, params, rawValue: line.slice(i + 1) };
}

function noParams(params: readonly CpimParam[], what: string): void {
  if (params.length > 0) throw invalid(`${what} takes no parameters`);
}

function subjectLang(params: readonly CpimParam[]): string | undefined {
  if (params.length === 0) return undefined;
  const p = params[0];
  if (params.length > 1 || p?.name !== 'lang') throw invalid('Subject takes only a lang parameter');
  return p.value;
}

/** From/To/cc value = [ Formal-name ] "<" URI ">" (RFC 3862 §4.1-§4.3) with an `im:` URI. */
function decodeParty(raw: string, what: string): CpimParty {
  let formalName: string | undefined;
  let rest: string;
  if (raw.startsWith('"')) {
    const s = unescapeText(raw, 1, true);
    formalName = s.text;
    // Grammar: String "<"; one SP before "<" is tolerated, as many writers put one there.
    rest = raw.slice(raw[s.end + 1] === ' ' ? s.end + 2 : s.end + 1);
  } else {
    const lt = raw.indexOf('<');
    if (lt === -1) throw invalid(`${what} needs "<URI>"`);
    if (lt > 0) {
      const tokens = raw.slice(0, lt);
      if (!FORMAL_TOKENS_RE.test(tokens)) throw invalid(`${what} formal name is malformed`);
      formalName = tokens.slice(0, -1);
    }
    rest = raw.slice(lt);
  }
  if (formalName?.length === 0) throw invalid(`${what} formal name is empty`);
  const m = /^<([^<>]*)>$/.exec(rest);
  if (m === null) throw invalid(`${what} needs exactly one "<URI>" at the end`);
  const uri = m[1] ?? '';
  if (!URI_RE.test(uri)) throw invalid(`${what} URI is malformed`);
  if (!/^im:/i.test(uri)) throw invalid(`${what} URI must use the im: scheme`);
  let address: Address;
  try {
    address = parseAddress(`im:${uri.slice(3)}`);
  } catch (e) {
    if (isImppError(e)) throw invalid(`${what} im: address is not valid`, e);
    throw e;
  }
  return formalName === undefined ? { address } : { formalName, address };
}

// ---------------------------------------------------------------------------------------------
// Convenience for the common case: a text/plain message.

/** Arguments of {@link cpimTextMessage}. */
export interface CpimTextMessageInit {
  readonly from: CpimParty;
  readonly to: readonly CpimParty[];
  readonly cc?: readonly CpimParty[];
  readonly dateTime?: string;
  readonly subject?: readonly CpimSubject[];
  readonly text: string;
}

/**
 * Builds a {@link CpimMessage} carrying `text/plain; charset=utf-8`.
 *
 * @example
 * ```ts
 * const msg = cpimTextMessage({ from, to: [bob], text: 'hi' });
 * ```
 */
export function cpimTextMessage(init: CpimTextMessageInit): CpimMessage {
  checkText(init.text, 'text');
  const msg: CpimMessage = {
    from: init.from,
    to: init.to,
    cc: init.cc ?? [],
    subject: init.subject ?? [],
    ns: [],
    require: [],
    headers: [],
    content: { contentType: 'text/plain; charset=utf-8', headers: [], body: utf8Encode(init.text) },
  };
  return init.dateTime === undefined ? msg : { ...msg, dateTime: init.dateTime };
}

/**
 * Returns the text of a `text/plain` message whose charset is UTF-8 (or absent: RFC 3862 messages
 * are UTF-8 by default in impp), or throws `ERR_PAYLOAD_INVALID`.
 *
 * @example
 * ```ts
 * cpimText(decodeCpim(bytes)); // 'hi'
 * ```
 */
export function cpimText(msg: CpimMessage): string {
  const ct = msg.content.contentType.toLowerCase();
  if (!/^text\/plain(?:[ \t]*;|$)/.test(ct)) throw invalid('content is not text/plain');
  const charset = /;[ \t]*charset=(?:"([^"]*)"|([^; \t]+))/.exec(ct);
  const value = charset?.[1] ?? charset?.[2] ?? 'utf-8';
  if (value !== 'utf-8') throw invalid('text/plain content is not UTF-8');
  const text = utf8DecodeStrict(msg.content.body);
  if (text === undefined) throw invalid('text body is not valid UTF-8');
  return text;
}
