/**
 * Hardened XML parsing for untrusted payloads (PIDF documents and their XML-DSIG signatures).
 *
 * Internal to `src/seal/payload/`. @xmldom/xmldom does the parsing; this module decides what is
 * allowed to reach it and what it may return:
 *
 * - a size limit checked on the UTF-8 bytes before anything is parsed, and strict UTF-8 (a byte
 *   sequence that is not UTF-8 is refused, never replaced with U+FFFD);
 * - no document type declaration at all: `<!DOCTYPE` and `<!ENTITY` are refused lexically before
 *   parsing, so there is nothing to expand (billion laughs) and nothing to fetch (external
 *   entities), and the parsed tree is checked again for a DocumentType node;
 * - no processing instruction except the XML declaration at offset 0, which must declare
 *   version 1.0 and, if it names an encoding, UTF-8;
 * - every warning, error and fatal error xmldom reports stops the parse (its `onError` option,
 *   0.9 API): a malformed document never comes back half parsed;
 * - depth and node-count limits, checked by an iterative walk (no recursion on attacker data).
 *
 * @example
 * ```ts
 * const doc = parseUntrustedXml(bytes, { maxBytes: 65_536, maxDepth: 32, maxNodes: 4096 });
 * doc.documentElement; // safe to walk
 * ```
 */
import { DOMParser, type Document, type Element, type Node } from '@xmldom/xmldom';
import { ImppError } from '../../errors.js';
import { isWellFormed, utf8DecodeStrict, utf8Encode } from './text.js';

/** Limits applied by {@link parseUntrustedXml}. */
export interface XmlLimits {
  /** Maximum size of the document in UTF-8 bytes. */
  readonly maxBytes: number;
  /** Maximum element nesting depth; the document element is depth 1. */
  readonly maxDepth: number;
  /** Maximum number of nodes of any kind (elements, attributes, text, comments). */
  readonly maxNodes: number;
}

/** Node type numbers from the DOM specification (xmldom exposes them on Node, not as an enum). */
export const NODE = {
  ELEMENT: 1,
  ATTRIBUTE: 2,
  TEXT: 3,
  CDATA: 4,
  ENTITY_REFERENCE: 5,
  ENTITY: 6,
  PROCESSING_INSTRUCTION: 7,
  COMMENT: 8,
  DOCUMENT: 9,
  DOCUMENT_TYPE: 10,
  DOCUMENT_FRAGMENT: 11,
  NOTATION: 12,
} as const;

/** The namespace of namespace declarations (`xmlns`, `xmlns:p`), XML Namespaces 1.0 §3. */
const XMLNS_NAMESPACE = 'http://www.w3.org/2000/xmlns/';

/** Namespace URI characters the element uses, counted at each use, at most this times maxBytes. */
const NAMESPACE_AMPLIFICATION = 4;

/** The namespace of `xml:` attributes (`xml:lang`), bound by definition in XML Namespaces 1.0. */
export const XML_NAMESPACE = 'http://www.w3.org/XML/1998/namespace';

function invalid(what: string, cause?: unknown): ImppError {
  return new ImppError(
    'ERR_PAYLOAD_INVALID',
    `XML payload refused: ${what}`,
    cause === undefined ? undefined : { cause },
  );
}

/** `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`, the only processing instruction allowed. */
const XML_DECLARATION =
  /^<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])1\.0\1(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\2)?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(["'])(?:yes|no)\4)?[ \t\r\n]*\?>/;

/**
 * Decodes bytes as strict UTF-8 (no BOM stripping, no replacement characters) or checks that a
 * string is well formed (no lone surrogates), and enforces the byte limit.
 */
export function toCheckedXmlText(input: string | Uint8Array, maxBytes: number): string {
  if (typeof input === 'string') {
    if (!isWellFormed(input)) throw invalid('text contains a lone surrogate');
    // A UTF-16 code unit is at most 3 UTF-8 bytes: only encode when the bound is not obvious.
    if (input.length * 3 > maxBytes && utf8Encode(input).length > maxBytes) {
      throw invalid(`document larger than ${maxBytes} bytes`);
    }
    return input;
  }
  if (input.length > maxBytes) throw invalid(`document larger than ${maxBytes} bytes`);
  const text = utf8DecodeStrict(input);
  if (text === undefined) throw invalid('document is not valid UTF-8');
  return text;
}

/**
 * Lexical checks that run before the parser sees the text: no DTD, no entity declarations, no
 * processing instruction other than a leading XML declaration, no byte-order mark.
 */
function precheck(text: string): void {
  if (text.startsWith('\uFEFF')) throw invalid('byte-order mark is not allowed');
  // The DTD is refused outright, whatever it contains: no entity expansion, no external fetches.
  if (/<!DOCTYPE/i.test(text)) throw invalid('DOCTYPE is not allowed');
  // NEL and the Unicode line/paragraph separators are line ends in XML 1.1 but not in XML 1.0;
  // xmldom (both the copy here and the one inside xml-crypto) turns them into LF, libxml2 does
  // not. Refused, so that every parser and every signature verifier reads the same characters.
  if (/[\u0085\u2028\u2029]/.test(text)) throw invalid('NEL, U+2028 and U+2029 are not allowed');
  if (/<!ENTITY/i.test(text)) throw invalid('ENTITY declarations are not allowed');
  // XML 1.0 §2.2: a document holds only Char; xmldom does not check (a raw U+0001 or U+FFFE
  // passes). Character references are checked on the parsed tree (checkTree).
  if (!isXmlChars(text)) throw invalid('document contains a character that XML 1.0 does not allow');
  let from = 0;
  if (/^<\?xml[ \t\r\n]/.test(text)) {
    const decl = XML_DECLARATION.exec(text);
    if (decl === null) throw invalid('malformed XML declaration');
    const encoding = decl[3];
    if (encoding !== undefined && encoding.toLowerCase() !== 'utf-8') {
      throw invalid('XML declaration must declare UTF-8');
    }
    from = decl[0].length;
  }
  if (text.indexOf('<?', from) !== -1) throw invalid('processing instructions are not allowed');
}

/**
 * Parses untrusted XML into a DOM document, or throws `ERR_PAYLOAD_INVALID` saying why.
 *
 * @example
 * ```ts
 * const doc = parseUntrustedXml('<a xmlns="urn:x"/>', { maxBytes: 1024, maxDepth: 4, maxNodes: 16 });
 * ```
 */
export function parseUntrustedXml(input: string | Uint8Array, limits: XmlLimits): Document {
  const text = toCheckedXmlText(input, limits.maxBytes);
  precheck(text);
  let doc: Document;
  try {
    doc = new DOMParser({
      locator: false,
      // XML 1.0 §2.11 end-of-line handling only (xmldom's default adds XML 1.1's).
      normalizeLineEndings: (source) => source.replace(/\r\n?/g, '\n'),
      // Every level stops the parse: xmldom would otherwise log and continue on "error" and
      // "warning" and hand back a partial document.
      onError: (level, message) => {
        throw new Error(`${level}: ${message}`);
      },
    }).parseFromString(text, 'text/xml');
  } catch (e) {
    throw invalid('document is not well-formed XML', e);
  }
  checkTree(doc, limits);
  return doc;
}

/** Walks the whole tree iteratively: node types, depth and node count. */
function checkTree(doc: Document, limits: XmlLimits): void {
  const root = doc.documentElement;
  if (root === null) throw invalid('document has no root element');
  let nodes = 0;
  // The document's own children: the XML declaration (a PI named "xml"), comments, whitespace.
  for (let n: Node | null = doc.firstChild; n !== null; n = n.nextSibling) {
    if (n.nodeType === NODE.DOCUMENT_TYPE) throw invalid('DOCTYPE is not allowed');
    if (n.nodeType === NODE.PROCESSING_INSTRUCTION && n.nodeName !== 'xml') {
      throw invalid('processing instructions are not allowed');
    }
  }
  // Serialisers and exclusive c14n write a namespace declaration on each element that uses a
  // namespace its output ancestors did not declare, so one long URI used by many siblings
  // multiplies (60 KB in, 100 MB out). Bounded by the namespace URIs the elements use, counted at
  // every use (an upper bound on what any serialisation of the tree can add).
  let namespaceBytes = 0;
  const maxNamespaceBytes = NAMESPACE_AMPLIFICATION * limits.maxBytes;
  const stack: { node: Element; depth: number }[] = [{ node: root, depth: 1 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { node, depth } = item;
    if (depth > limits.maxDepth) throw invalid(`elements nested deeper than ${limits.maxDepth}`);
    nodes += 1 + node.attributes.length;
    namespaceBytes += node.namespaceURI?.length ?? 0;
    checkName(node.nodeName);
    for (let i = 0; i < node.attributes.length; i += 1) {
      const a = node.attributes.item(i);
      checkName(a?.name);
      checkChars(a?.value);
      if (a?.namespaceURI != null && a.namespaceURI !== XMLNS_NAMESPACE) {
        namespaceBytes += a.namespaceURI.length;
      }
    }
    if (namespaceBytes > maxNamespaceBytes) {
      throw invalid('namespace URIs are used so often that serialising them would be too large');
    }
    for (let c: Node | null = node.firstChild; c !== null; c = c.nextSibling) {
      nodes += 1;
      if (nodes > limits.maxNodes) throw invalid(`more than ${limits.maxNodes} nodes`);
      switch (c.nodeType) {
        case NODE.ELEMENT:
          stack.push({ node: c as Element, depth: depth + 1 });
          break;
        case NODE.TEXT:
        case NODE.CDATA:
        case NODE.COMMENT:
          checkChars(c.nodeValue);
          break;
        default:
          throw invalid(`node type ${c.nodeType} is not allowed`);
      }
    }
    if (nodes > limits.maxNodes) throw invalid(`more than ${limits.maxNodes} nodes`);
  }
}

/**
 * WFC: Legal Character (XML 1.0 §4.1): a character reference must name a Char. xmldom decodes
 * `&#0;`, `&#xFFFE;` and `&#xD800;` (and `&#x110000;` into two lone surrogates) without complaint,
 * so the decoded values are checked against what this module lets through.
 */
function checkChars(value: string | null | undefined): void {
  if (value != null && !isXmlChars(value)) {
    throw invalid('a character reference names a character that XML 1.0 does not allow');
  }
}

/** XML 1.0 (5th edition) §2.3 NameStartChar, without ":" and without U+10000..U+EFFFF. */
const NAME_START =
  'A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D' +
  '\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD';
/** §2.3 NameChar, likewise. */
const NAME_CHAR = `${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040`;
// eslint-disable-next-line no-misleading-character-class -- U+0300-U+036F is a range of NameChar
const QNAME = new RegExp(`^[${NAME_START}][${NAME_CHAR}]*(?::[${NAME_START}][${NAME_CHAR}]*)?$`);

/**
 * Element and attribute names must be QNames of the BMP. The xmldom here accepts more (U+037E,
 * U+10000..U+EFFFF), the older xmldom inside xml-crypto does not: it turns such an element into
 * character data and reads on, so the bytes it signs or verifies would not be the document checked
 * here.
 */
function checkName(name: string | undefined): void {
  if (name !== undefined && !QNAME.test(name)) {
    throw invalid(
      'element or attribute name is not an XML 1.0 QName of the Basic Multilingual Plane',
    );
  }
}

/** Child elements of `el`, in document order. */
export function childElements(el: Element): Element[] {
  const out: Element[] = [];
  for (let c: Node | null = el.firstChild; c !== null; c = c.nextSibling) {
    if (c.nodeType === NODE.ELEMENT) out.push(c as Element);
  }
  return out;
}

/**
 * Concatenated text of `el`'s text and CDATA children; refuses child elements (the element must
 * be a simple-content element).
 */
export function simpleText(el: Element, what: string): string {
  let text = '';
  for (let c: Node | null = el.firstChild; c !== null; c = c.nextSibling) {
    if (c.nodeType === NODE.TEXT || c.nodeType === NODE.CDATA) text += c.nodeValue ?? '';
    else if (c.nodeType === NODE.ELEMENT) throw invalid(`${what} must contain text only`);
  }
  return text;
}

/**
 * Refuses non-whitespace text directly inside a structural element (one whose content model is
 * elements only), so that no character data is silently dropped.
 */
export function requireElementOnly(el: Element, what: string): void {
  for (let c: Node | null = el.firstChild; c !== null; c = c.nextSibling) {
    if (
      (c.nodeType === NODE.TEXT || c.nodeType === NODE.CDATA) &&
      !/^[ \t\r\n]*$/.test(c.nodeValue ?? '')
    ) {
      throw invalid(`${what} must not contain character data`);
    }
  }
}

/**
 * `true` when `s` only has characters this module lets through: the XML 1.0 `Char` production
 * less U+FFFD, NEL, U+2028 and U+2029.
 */
export function isXmlChars(s: string): boolean {
  // Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF], less U+FFFD
  // (xmldom reports it as an encoding problem) and NEL, U+2028, U+2029 (see precheck).
  return (
    !/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFC\u{10000}-\u{10FFFF}]/u.test(s) &&
    !/[\u0085\u2028\u2029]/.test(s)
  );
}
