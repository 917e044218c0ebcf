/**
 * PIDF (RFC 3863) build and parse: the payload format of every impp presence document.
 *
 * Parsing goes through {@link parseUntrustedXml} (no DOCTYPE, no entities, no processing
 * instructions, size/depth/node limits, every xmldom error fatal) and then checks the PIDF
 * structure strictly against the RFC 3863 §4.4 schema:
 *
 * - the document element is `presence` in `urn:ietf:params:xml:ns:pidf` with an `entity`
 *   attribute holding a `pres:` URI (§4.1.2);
 * - `presence` = tuple*, note*, extension* (in that order); `tuple` = status, extension*,
 *   contact?, note*, timestamp? (§4.1.3); `status` = basic?, extension* (§4.1.4); `basic` is
 *   `open` or `closed`; `contact` carries an optional `priority` qvalue (§4.1.5); `note` an
 *   optional `xml:lang` (§4.1.6); `timestamp` an RFC 3339 date-time (§4.1.7);
 * - tuple ids are unique NCNames (xs:ID); the number of tuples is limited;
 * - extension elements (§4.2) are elements of another, non-empty namespace; they are kept as
 *   serialised XML (with the namespace declarations they need) and written back on build. An
 *   extension that carries `mustUnderstand="true"` (§4.3) in a namespace the caller has not said it
 *   understands makes the whole document invalid, as §4.3 requires;
 * - character data where the schema has none, unknown PIDF elements or unqualified attributes are
 *   refused. Attributes of other namespaces on PIDF elements (such as `xsi:schemaLocation`) are
 *   dropped.
 *
 * Every failure is `ImppError('ERR_PAYLOAD_INVALID')`.
 *
 * @example
 * ```ts
 * const xml = buildPidf({
 *   entity: parseAddress('alice@example.com'),
 *   tuples: [{ id: 't1', status: { basic: 'open', extensions: [] }, extensions: [], notes: [] }],
 *   notes: [],
 *   extensions: [],
 * });
 * parsePidf(xml).tuples[0]?.status.basic; // 'open'
 * ```
 */
import { DOMImplementation, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
import { ImppError, isImppError } from '../../errors.js';
import { formatAddress, parseAddress, type Address } from '../../trust/address.js';
import { isRfc3339DateTime, utf8Encode } from './text.js';
import {
  childElements,
  isXmlChars,
  parseUntrustedXml,
  requireElementOnly,
  simpleText,
  XML_NAMESPACE,
  type XmlLimits,
} from './xml.js';

/** The PIDF namespace (RFC 3863 §4.1.1). */
export const PIDF_NAMESPACE = 'urn:ietf:params:xml:ns:pidf';

/** A `<note>`: human-readable text with an optional language (RFC 3863 §4.1.6). */
export interface PidfNote {
  readonly text: string;
  readonly lang?: string;
}

/** A `<contact>`: a URI with an optional priority qvalue kept as written, e.g. `"0.8"`. */
export interface PidfContact {
  readonly uri: string;
  readonly priority?: string;
}

/** A `<status>`: the basic status and any extension status elements. */
export interface PidfStatus {
  readonly basic?: 'open' | 'closed';
  /** Extension elements, each serialised XML of one element in another namespace. */
  readonly extensions: readonly string[];
}

/** A `<tuple>` (RFC 3863 §4.1.3). */
export interface PidfTuple {
  readonly id: string;
  readonly status: PidfStatus;
  /** Extension elements of the tuple, between status and contact in the document. */
  readonly extensions: readonly string[];
  readonly contact?: PidfContact;
  readonly notes: readonly PidfNote[];
  /** RFC 3339 date-time, kept as written. */
  readonly timestamp?: string;
}

/** A PIDF document (RFC 3863 §4.1.2). */
export interface PidfDocument {
  /** The presentity, written as `pres:user@domain`. */
  readonly entity: Address;
  readonly tuples: readonly PidfTuple[];
  readonly notes: readonly PidfNote[];
  /** Presence-level extension elements, after the notes. */
  readonly extensions: readonly string[];
}

/** Limits for {@link parsePidf}. */
export interface PidfLimits extends XmlLimits {
  /** Maximum number of tuples. */
  readonly maxTuples: number;
}

/** Default limits: 64 KiB, depth 32, 4096 nodes, 64 tuples. */
export const DEFAULT_PIDF_LIMITS: PidfLimits = Object.freeze({
  maxBytes: 64 * 1024,
  maxDepth: 32,
  maxNodes: 4096,
  maxTuples: 64,
});

/** Options of {@link parsePidf}. */
export interface PidfParseOptions {
  readonly limits?: PidfLimits;
  /**
   * Extension namespaces the caller understands. An element marked `mustUnderstand` in any other
   * namespace makes the document invalid (RFC 3863 §4.3). Defaults to none.
   */
  readonly understoodNamespaces?: readonly string[];
}

function invalid(what: string, cause?: unknown): ImppError {
  return new ImppError(
    'ERR_PAYLOAD_INVALID',
    `PIDF refused: ${what}`,
    cause === undefined ? undefined : { cause },
  );
}

// xs:NCName, restricted to the characters a tuple id needs in practice (letters, digits, . _ -).
const NCNAME_RE = /^[\p{L}_][\p{L}\p{N}._-]*$/u;
// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )   (RFC 3863 §4.1.5, from RFC 3261)
const QVALUE_RE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;
const LANG_RE = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;
// A URI (RFC 3986): scheme ":" and URI characters. xs:anyURI collapses surrounding white space.
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
const XMLNS_NAMESPACE = 'http://www.w3.org/2000/xmlns/';

// ---------------------------------------------------------------------------------------------
// Parse

/**
 * Parses an untrusted PIDF document.
 *
 * @example
 * ```ts
 * const doc = parsePidf(xmlBytes);
 * doc.entity; // { user: 'someone', domain: 'example.com' }
 * ```
 */
export function parsePidf(
  input: string | Uint8Array,
  options: PidfParseOptions = {},
): PidfDocument {
  const limits = options.limits ?? DEFAULT_PIDF_LIMITS;
  const doc = parseUntrustedXml(input, limits);
  const root = doc.documentElement;
  if (root === null) throw invalid('document has no root element');
  return readPresence(root, limits, new Set(options.understoodNamespaces ?? []));
}

/** Reads a `<presence>` element against the RFC 3863 §4.4 structure. */
function readPresence(
  root: Element,
  limits: PidfLimits,
  understood: ReadonlySet<string>,
): PidfDocument {
  if (root.namespaceURI !== PIDF_NAMESPACE || root.localName !== 'presence') {
    throw invalid('document element must be presence in urn:ietf:params:xml:ns:pidf');
  }
  checkAttributes(root, ['entity'], 'presence');
  const entity = readEntity(root.getAttribute('entity'));
  requireElementOnly(root, 'presence');

  const tuples: PidfTuple[] = [];
  const notes: PidfNote[] = [];
  const extensions: string[] = [];
  const ids = new Set<string>();
  // Schema order: tuple*, note*, ##other* (RFC 3863 §4.4).
  let phase = 0;
  for (const el of childElements(root)) {
    if (el.namespaceURI === PIDF_NAMESPACE && el.localName === 'tuple') {
      if (phase > 0) throw invalid('tuple after note or extension');
      if (tuples.length >= limits.maxTuples) throw invalid(`more than ${limits.maxTuples} tuples`);
      const t = readTuple(el, understood);
      if (ids.has(t.id)) throw invalid('duplicate tuple id');
      ids.add(t.id);
      tuples.push(t);
    } else if (el.namespaceURI === PIDF_NAMESPACE && el.localName === 'note') {
      if (phase > 1) throw invalid('note after extension');
      phase = 1;
      notes.push(readNote(el));
    } else {
      phase = 2;
      extensions.push(readExtension(el, understood));
    }
  }
  return { entity, tuples, notes, extensions };
}

function readEntity(value: string | null): Address {
  if (value === null) throw invalid('presence needs an entity attribute');
  if (!/^pres:/i.test(value) || !URI_RE.test(value)) throw invalid('entity must be a pres: URI');
  try {
    return parseAddress(`pres:${value.slice(5)}`);
  } catch (e) {
    if (isImppError(e)) throw invalid('entity is not a valid pres: address', e);
    throw e;
  }
}

function readTuple(el: Element, understood: ReadonlySet<string>): PidfTuple {
  checkAttributes(el, ['id'], 'tuple');
  const id = el.getAttribute('id');
  if (id === null || !NCNAME_RE.test(id)) throw invalid('tuple id must be an NCName');
  requireElementOnly(el, 'tuple');
  const children = childElements(el);
  const first = children[0];
  if (first === undefined || !isPidf(first, 'status'))
    throw invalid('tuple must start with status');
  const status = readStatus(first, understood);
  const extensions: string[] = [];
  let contact: PidfContact | undefined;
  const notes: PidfNote[] = [];
  let timestamp: string | undefined;
  // Schema order after status: ##other*, contact?, note*, timestamp?
  let phase = 0;
  for (const c of children.slice(1)) {
    if (c.namespaceURI !== PIDF_NAMESPACE) {
      if (phase > 0) throw invalid('tuple extension after contact, note or timestamp');
      extensions.push(readExtension(c, understood));
    } else if (c.localName === 'contact') {
      if (phase > 0) throw invalid('tuple has more than one contact or it is out of order');
      phase = 1;
      contact = readContact(c);
    } else if (c.localName === 'note') {
      if (phase > 2) throw invalid('note after timestamp');
      phase = 2;
      notes.push(readNote(c));
    } else if (c.localName === 'timestamp') {
      if (phase > 2) throw invalid('tuple has more than one timestamp');
      phase = 3;
      checkAttributes(c, [], 'timestamp');
      const ts = simpleText(c, 'timestamp').trim();
      if (!isRfc3339DateTime(ts)) throw invalid('timestamp is not an RFC 3339 date-time');
      timestamp = ts;
    } else {
      throw invalid('unknown PIDF element in tuple');
    }
  }
  let tuple: PidfTuple = { id, status, extensions, notes };
  if (contact !== undefined) tuple = { ...tuple, contact };
  if (timestamp !== undefined) tuple = { ...tuple, timestamp };
  return tuple;
}

function readStatus(el: Element, understood: ReadonlySet<string>): PidfStatus {
  checkAttributes(el, [], 'status');
  requireElementOnly(el, 'status');
  let basic: 'open' | 'closed' | undefined;
  const extensions: string[] = [];
  for (const c of childElements(el)) {
    if (isPidf(c, 'basic')) {
      if (basic !== undefined || extensions.length > 0)
        throw invalid('basic must come first, once');
      checkAttributes(c, [], 'basic');
      const v = simpleText(c, 'basic').trim();
      if (v !== 'open' && v !== 'closed') throw invalid('basic must be open or closed');
      basic = v;
    } else if (c.namespaceURI === PIDF_NAMESPACE) {
      throw invalid('unknown PIDF element in status');
    } else {
      extensions.push(readExtension(c, understood));
    }
  }
  return basic === undefined ? { extensions } : { basic, extensions };
}

function readContact(el: Element): PidfContact {
  checkAttributes(el, ['priority'], 'contact');
  const uri = simpleText(el, 'contact').trim();
  if (!URI_RE.test(uri)) throw invalid('contact is not a URI');
  const priority = el.getAttribute('priority');
  if (priority === null) return { uri };
  if (!QVALUE_RE.test(priority)) throw invalid('contact priority is not a qvalue between 0 and 1');
  return { uri, priority };
}

function readNote(el: Element): PidfNote {
  checkAttributes(el, [], 'note', true);
  const text = simpleText(el, 'note');
  const lang = el.getAttributeNS(XML_NAMESPACE, 'lang');
  if (lang === null || lang === '') return { text };
  if (!LANG_RE.test(lang)) throw invalid('note xml:lang is not a language tag');
  return { text, lang };
}

function isPidf(el: Element, localName: string): boolean {
  return el.namespaceURI === PIDF_NAMESPACE && el.localName === localName;
}

/** Allows the listed unqualified attributes, namespace declarations, and (dropped) foreign ones. */
function checkAttributes(
  el: Element,
  allowed: readonly string[],
  what: string,
  xmlLang = false,
): void {
  for (let i = 0; i < el.attributes.length; i += 1) {
    const a = el.attributes.item(i);
    if (a === null) continue;
    const ns = a.namespaceURI;
    if (ns === XMLNS_NAMESPACE) continue;
    if (ns === null || ns === '') {
      if (!allowed.includes(a.localName ?? a.name)) throw invalid(`unknown attribute on ${what}`);
    } else if (ns === XML_NAMESPACE) {
      if (!(xmlLang && a.localName === 'lang'))
        throw invalid(`unexpected xml: attribute on ${what}`);
    } else if (ns === PIDF_NAMESPACE) {
      throw invalid(`PIDF-namespace attribute on ${what}`);
    }
  }
}

/**
 * Serialises an extension element after checking its namespace and, when `understood` is given,
 * its mustUnderstand markers.
 */
function readExtension(el: Element, understood: ReadonlySet<string> | undefined): string {
  const ns = el.namespaceURI;
  // xs:any namespace="##other": another namespace, and not "no namespace" either.
  if (ns === null || ns === '' || ns === PIDF_NAMESPACE) {
    throw invalid('unknown element (extensions must be in another namespace)');
  }
  const stack: Element[] = [el];
  for (let e = stack.pop(); e !== undefined; e = stack.pop()) {
    // The attribute is an xs:boolean (RFC 3863 §4.3, §4.4), whose white space collapses: " true"
    // and "1\t" mean true too. Only its four lexical values are accepted, so that no spelling of
    // "true" can slip a mandatory extension past a reader as "not marked".
    const raw = e.hasAttributeNS(PIDF_NAMESPACE, 'mustUnderstand')
      ? e.getAttributeNS(PIDF_NAMESPACE, 'mustUnderstand')
      : null;
    if (raw !== null) {
      const mu = raw.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
      if (mu !== 'true' && mu !== '1' && mu !== 'false' && mu !== '0') {
        throw invalid('mustUnderstand must be true, false, 1 or 0');
      }
      if (understood !== undefined && (mu === 'true' || mu === '1')) {
        if (!understood.has(e.namespaceURI ?? '')) {
          throw invalid('an extension that must be understood is not understood');
        }
      }
    }
    stack.push(...childElements(e));
  }
  return new XMLSerializer().serializeToString(el);
}

// ---------------------------------------------------------------------------------------------
// Build

/**
 * Builds a PIDF document (UTF-8 XML text with an XML declaration). Validates the model with the
 * rules {@link parsePidf} applies, so that what is built parses back to an equal model.
 *
 * @example
 * ```ts
 * const xml = buildPidf(doc);
 * ```
 */
export function buildPidf(model: PidfDocument, limits: PidfLimits = DEFAULT_PIDF_LIMITS): string {
  const doc = new DOMImplementation().createDocument(PIDF_NAMESPACE, 'presence', null);
  const root = doc.documentElement;
  if (root === null) throw invalid('could not create the document element');
  let entity: string;
  try {
    entity = `pres:${formatAddress(parseAddress(formatAddress(model.entity)))}`;
  } catch (e) {
    throw invalid('entity is not a valid address', e);
  }
  if (!URI_RE.test(entity)) throw invalid('entity cannot be written as a pres: URI');
  root.setAttribute('entity', entity);
  if (model.tuples.length > limits.maxTuples) throw invalid(`more than ${limits.maxTuples} tuples`);
  const ids = new Set<string>();
  for (const t of model.tuples) {
    if (!NCNAME_RE.test(t.id)) throw invalid('tuple id must be an NCName');
    if (ids.has(t.id)) throw invalid('duplicate tuple id');
    ids.add(t.id);
    const tuple = pidfElement(doc, 'tuple');
    tuple.setAttribute('id', t.id);
    const status = pidfElement(doc, 'status');
    // Widened to string: the model may come from untyped code.
    const basic: string | undefined = t.status.basic;
    if (basic !== undefined) {
      if (basic !== 'open' && basic !== 'closed') throw invalid('basic must be open or closed');
      status.appendChild(textElement(doc, 'basic', basic));
    }
    appendExtensions(doc, status, t.status.extensions, limits);
    tuple.appendChild(status);
    appendExtensions(doc, tuple, t.extensions, limits);
    if (t.contact !== undefined) {
      if (!URI_RE.test(t.contact.uri)) throw invalid('contact is not a URI');
      const contact = textElement(doc, 'contact', t.contact.uri);
      if (t.contact.priority !== undefined) {
        if (!QVALUE_RE.test(t.contact.priority)) throw invalid('contact priority is not a qvalue');
        contact.setAttribute('priority', t.contact.priority);
      }
      tuple.appendChild(contact);
    }
    for (const n of t.notes) tuple.appendChild(noteElement(doc, n));
    if (t.timestamp !== undefined) {
      if (!isRfc3339DateTime(t.timestamp)) throw invalid('timestamp is not an RFC 3339 date-time');
      tuple.appendChild(textElement(doc, 'timestamp', t.timestamp));
    }
    root.appendChild(tuple);
  }
  for (const n of model.notes) root.appendChild(noteElement(doc, n));
  appendExtensions(doc, root, model.extensions, limits);
  // xmldom writes a carriage return in text raw, which a parser would read back as a line feed
  // (XML 1.0 §2.11): write it as a character reference instead. Attributes are already escaped.
  const xml = new XMLSerializer().serializeToString(doc).replace(/\r/g, '&#xD;');
  const out = `<?xml version="1.0" encoding="UTF-8"?>\n${xml}`;
  if (utf8Encode(out).length > limits.maxBytes)
    throw invalid(`document larger than ${limits.maxBytes} bytes`);
  return out;
}

function pidfElement(doc: Document, name: string): Element {
  return doc.createElementNS(PIDF_NAMESPACE, name);
}

function textElement(doc: Document, name: string, text: string): Element {
  const el = pidfElement(doc, name);
  el.appendChild(doc.createTextNode(text));
  return el;
}

function noteElement(doc: Document, n: PidfNote): Element {
  if (!isXmlChars(n.text)) throw invalid('note contains characters XML cannot carry');
  const el = textElement(doc, 'note', n.text);
  if (n.lang !== undefined) {
    if (!LANG_RE.test(n.lang)) throw invalid('note lang is not a language tag');
    el.setAttributeNS(XML_NAMESPACE, 'xml:lang', n.lang);
  }
  return el;
}

function appendExtensions(
  doc: Document,
  parent: Element,
  exts: readonly string[],
  limits: PidfLimits,
): void {
  for (const x of exts) {
    const parsed = parseUntrustedXml(x, limits).documentElement;
    if (parsed === null) throw invalid('extension has no element');
    // The namespace check of parse; mustUnderstand is the reader's business.
    readExtension(parsed, undefined);
    parent.appendChild(doc.importNode(parsed, true));
  }
}
