/**
 * SCRAM message syntax (RFC 5802 §7), parsed strictly.
 *
 * Every parser reads untrusted bytes once into a typed snapshot and throws only
 * {@link AuthError} `'malformed'` (or `'authzid-refused'` is decided later by the mechanism). What
 * is refused, and why:
 *
 * - attributes in the wrong order, missing or repeated (the grammar fixes the order);
 * - the reserved mandatory-extension attribute `m=` (RFC 5802 §5.1: "the server MUST fail" when it
 *   does not support the extension — we support none);
 * - saslnames with a `=` not followed by `2C` or `3D` (RFC 5802 §5.1), or with `,`;
 * - nonces outside `printable` (%x21-2B / %x2D-7E), base64 that is not canonical padded base64;
 * - messages longer than {@link SCRAM_MAX_MESSAGE_BYTES} or not valid UTF-8.
 */
import { fromUtf8, utf8 } from '../../crypto/index.js';
import { AuthError } from '../types.js';

/** Largest SCRAM message either side accepts. Real messages are well under 1 KiB. */
export const SCRAM_MAX_MESSAGE_BYTES = 4096;
/** Shortest client or server nonce part accepted (in characters). */
export const SCRAM_MIN_NONCE_CHARS = 8;
/** Longest nonce accepted (in characters). */
export const SCRAM_MAX_NONCE_CHARS = 512;
/** Longest username accepted, in characters, after unescaping. */
export const SCRAM_MAX_USERNAME_CHARS = 255;

/** The channel-binding flag of the GS2 header (RFC 5802 §7 `gs2-cbind-flag`). */
export type Gs2Flag =
  { readonly type: 'n' } | { readonly type: 'y' } | { readonly type: 'p'; readonly cbName: string };

/** Parsed `client-first-message`. */
export interface ClientFirst {
  readonly gs2: Gs2Flag;
  /** Unescaped authzid, or `null` when absent. */
  readonly authzid: string | null;
  /** The exact GS2 header text (`"n,,"`, `"p=tls-exporter,,"`…), echoed in `c=`. */
  readonly gs2Header: string;
  /** Unescaped username (not yet SASLprep'd). */
  readonly username: string;
  readonly clientNonce: string;
  /** `client-first-message-bare`, verbatim, for the AuthMessage. */
  readonly bare: string;
}

/** Parsed `server-first-message`. */
export interface ServerFirst {
  readonly nonce: string;
  readonly salt: Uint8Array;
  readonly iterations: number;
  readonly text: string;
}

/** Parsed `client-final-message`. */
export interface ClientFinal {
  readonly channelBinding: Uint8Array;
  readonly nonce: string;
  readonly proof: Uint8Array;
  /** `client-final-message-without-proof`, verbatim, for the AuthMessage. */
  readonly withoutProof: string;
}

/** Parsed `server-final-message`. */
export type ServerFinal =
  | { readonly type: 'verifier'; readonly verifier: Uint8Array }
  | { readonly type: 'error'; readonly error: string };

function malformed(what: string): AuthError {
  return new AuthError('malformed', `SCRAM ${what}`);
}

/** Decodes a SCRAM message: size limit first, then strict UTF-8. */
export function decodeScramMessage(bytes: Uint8Array, name: string): string {
  if (bytes.length === 0) throw malformed(`${name} is empty`);
  if (bytes.length > SCRAM_MAX_MESSAGE_BYTES) throw malformed(`${name} is too long`);
  let text: string;
  try {
    text = fromUtf8(bytes, name);
  } catch (cause) {
    throw new AuthError('malformed', `SCRAM ${name} is not valid UTF-8`, { cause });
  }
  // RFC 5802 §7: no attribute value may contain NUL (value-safe-char starts at %x01).
  if (text.includes('\u0000')) throw malformed(`${name} contains NUL`);
  return text;
}

/** Encodes a SCRAM message as UTF-8. */
export function encodeScramMessage(text: string): Uint8Array {
  return utf8(text);
}

/**
 * Unescapes a `saslname` (RFC 5802 §5.1: `=2C` → `,`, `=3D` → `=`; any other `=` is an error).
 */
export function decodeSaslName(value: string, field: string): string {
  if (value.length === 0) throw malformed(`${field} is empty`);
  if (value.includes(',')) throw malformed(`${field} contains ','`);
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '=') {
      const code = value.slice(i + 1, i + 3);
      if (code === '2C') out += ',';
      else if (code === '3D') out += '=';
      else throw malformed(`${field} has a bad '=' escape`);
      i += 2;
    } else {
      out += ch ?? '';
    }
  }
  if (Array.from(out).length > SCRAM_MAX_USERNAME_CHARS) throw malformed(`${field} is too long`);
  return out;
}

/** Escapes a name for a `saslname` (RFC 5802 §5.1). */
export function encodeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ATTR_VAL = /^[A-Za-z]=/;

/** Checks a nonce against RFC 5802 `printable` and length bounds. */
export function checkNonce(nonce: string, field: string): string {
  if (nonce.length < SCRAM_MIN_NONCE_CHARS) throw malformed(`${field} is too short`);
  if (nonce.length > SCRAM_MAX_NONCE_CHARS) throw malformed(`${field} is too long`);
  if (!PRINTABLE.test(nonce)) throw malformed(`${field} has characters outside 'printable'`);
  return nonce;
}

/** Strict base64 (RFC 4648 §4, padded, canonical: re-encoding gives the same text). */
export function decodeBase64(value: string, field: string): Uint8Array {
  if (!BASE64.test(value)) throw malformed(`${field} is not base64`);
  const bytes = new Uint8Array(Buffer.from(value, 'base64'));
  if (Buffer.from(bytes).toString('base64') !== value)
    throw malformed(`${field} is not canonical base64`);
  return bytes;
}

/** Standard padded base64. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Splits `text` into its comma-separated attributes and checks the leading ones against
 * `expected` (in order). Remaining attributes are optional extensions (RFC 5802 §7 `extensions`):
 * each must be `ALPHA "=" value`, must not reuse a name from the grammar, and is ignored.
 */
function attributes(
  parts: readonly string[],
  expected: readonly string[],
  reserved: string,
  where: string,
): string[] {
  if (parts.length < expected.length) throw malformed(`${where} is missing attributes`);
  const values: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const part = parts[i] ?? '';
    const name = expected[i] ?? '';
    if (!part.startsWith(`${name}=`)) {
      if (part.startsWith('m=')) throw malformed(`${where} has an unsupported mandatory extension`);
      throw malformed(`${where}: expected attribute '${name}' at position ${i + 1}`);
    }
    values.push(part.slice(2));
  }
  const extensions = parts.slice(expected.length);
  if (extensions.length > 8) throw malformed(`${where} has too many extensions`);
  for (const ext of extensions) {
    if (!ATTR_VAL.test(ext) || ext.length < 3)
      throw malformed(`${where} has a malformed extension`);
    if (reserved.includes(ext[0] ?? ''))
      throw malformed(`${where} repeats or misplaces an attribute`);
  }
  return values;
}

/**
 * Parses a GS2 header prefix of `text` (RFC 5802 §7 `gs2-header`, RFC 5801 §4).
 * Returns the flag, the authzid and the rest of the message.
 */
function parseGs2(text: string): {
  gs2: Gs2Flag;
  authzid: string | null;
  header: string;
  rest: string;
} {
  const first = text.indexOf(',');
  if (first < 0) throw malformed('GS2 header is missing');
  const second = text.indexOf(',', first + 1);
  if (second < 0) throw malformed('GS2 header is incomplete');
  const flag = text.slice(0, first);
  const authz = text.slice(first + 1, second);
  let gs2: Gs2Flag;
  if (flag === 'n') gs2 = { type: 'n' };
  else if (flag === 'y') gs2 = { type: 'y' };
  else if (flag.startsWith('p=')) {
    const cbName = flag.slice(2);
    if (!/^[A-Za-z0-9.-]{1,64}$/.test(cbName))
      throw malformed('GS2 channel-binding name is invalid');
    gs2 = { type: 'p', cbName };
  } else throw malformed('GS2 channel-binding flag is invalid');
  let authzid: string | null = null;
  if (authz !== '') {
    if (!authz.startsWith('a=')) throw malformed('GS2 authzid is invalid');
    authzid = decodeSaslName(authz.slice(2), 'authzid');
  }
  return { gs2, authzid, header: text.slice(0, second + 1), rest: text.slice(second + 1) };
}

/** Parses `client-first-message` (RFC 5802 §7). */
export function parseClientFirst(bytes: Uint8Array): ClientFirst {
  const text = decodeScramMessage(bytes, 'client-first-message');
  const { gs2, authzid, header, rest } = parseGs2(text);
  const [user = '', nonce = ''] = attributes(
    rest.split(','),
    ['n', 'r'],
    'nrm',
    'client-first-message',
  );
  return {
    gs2,
    authzid,
    gs2Header: header,
    username: decodeSaslName(user, 'username'),
    clientNonce: checkNonce(nonce, 'client nonce'),
    bare: rest,
  };
}

/** Formats `client-first-message-bare` (without the GS2 header). */
export function formatClientFirstBare(username: string, clientNonce: string): string {
  return `n=${encodeSaslName(username)},r=${clientNonce}`;
}

/** Formats a GS2 header. */
export function formatGs2Header(flag: Gs2Flag, authzid: string | null): string {
  const f = flag.type === 'p' ? `p=${flag.cbName}` : flag.type;
  return `${f},${authzid === null ? '' : `a=${encodeSaslName(authzid)}`},`;
}

/** Parses `server-first-message` (RFC 5802 §7). */
export function parseServerFirst(bytes: Uint8Array): ServerFirst {
  const text = decodeScramMessage(bytes, 'server-first-message');
  const [nonce = '', salt = '', iter = ''] = attributes(
    text.split(','),
    ['r', 's', 'i'],
    'rsim',
    'server-first-message',
  );
  if (!/^[1-9][0-9]{0,9}$/.test(iter)) throw malformed('iteration count is not a positive integer');
  const iterations = Number(iter);
  const saltBytes = decodeBase64(salt, 'salt');
  if (saltBytes.length === 0) throw malformed('salt is empty');
  return { nonce: checkNonce(nonce, 'nonce'), salt: saltBytes, iterations, text };
}

/** Formats `server-first-message`. */
export function formatServerFirst(nonce: string, salt: Uint8Array, iterations: number): string {
  return `r=${nonce},s=${encodeBase64(salt)},i=${iterations}`;
}

/** Parses `client-final-message` (RFC 5802 §7): `c=…,r=…[,ext…],p=…`, proof last. */
export function parseClientFinal(bytes: Uint8Array): ClientFinal {
  const text = decodeScramMessage(bytes, 'client-final-message');
  const lastComma = text.lastIndexOf(',');
  if (lastComma < 0) throw malformed('client-final-message is missing attributes');
  const proofPart = text.slice(lastComma + 1);
  if (!proofPart.startsWith('p=')) throw malformed('client-final-message: proof must come last');
  const withoutProof = text.slice(0, lastComma);
  const [cb = '', nonce = ''] = attributes(
    withoutProof.split(','),
    ['c', 'r'],
    'crpm',
    'client-final-message',
  );
  const proof = decodeBase64(proofPart.slice(2), 'proof');
  if (proof.length !== 32) throw malformed('proof has the wrong length');
  return {
    channelBinding: decodeBase64(cb, 'channel binding'),
    nonce: checkNonce(nonce, 'nonce'),
    proof,
    withoutProof,
  };
}

/** Formats `client-final-message-without-proof`. */
export function formatClientFinalWithoutProof(channelBinding: Uint8Array, nonce: string): string {
  return `c=${encodeBase64(channelBinding)},r=${nonce}`;
}

/** Parses `server-final-message` (RFC 5802 §7): `v=…` or `e=…`. */
export function parseServerFinal(bytes: Uint8Array): ServerFinal {
  const text = decodeScramMessage(bytes, 'server-final-message');
  const parts = text.split(',');
  const first = parts[0] ?? '';
  if (first.startsWith('e=')) {
    const error = first.slice(2);
    if (!/^[\x21-\x2b\x2d-\x3c\x3e-\x7e]{1,64}$/.test(error))
      throw malformed('server error value is invalid');
    return { type: 'error', error };
  }
  const [v = ''] = attributes(parts, ['v'], 've', 'server-final-message');
  const verifier = decodeBase64(v, 'verifier');
  if (verifier.length !== 32) throw malformed('verifier has the wrong length');
  return { type: 'verifier', verifier };
}
