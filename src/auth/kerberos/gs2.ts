/**
 * GS2 framing (RFC 5801) for the Kerberos V5 mechanism: the GS2 header and the removal / re-adding
 * of the RFC 2743 §3.1 generic token header.
 *
 * RFC 5801 §4: the client's first message is `gs2-header || initial-context-token`, where the
 * context token has its "mechanism-independent" header (0x60, DER length, mechanism OID) removed
 * ("non-standard" tokens, flag `F`, are not supported: the krb5 mechanism's tokens are standard).
 * The server re-adds the header with the Kerberos V5 OID before calling gss_accept_sec_context,
 * so the client cannot choose another GSS mechanism (e.g. SPNEGO → NTLM) through this name.
 */
import { AuthError } from '../types.js';

/** OID 1.2.840.113554.1.2.2 (Kerberos V5 GSS-API mechanism, RFC 1964), DER-encoded with tag. */
const KRB5_OID_DER = Uint8Array.from([
  0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
]);

/** Parsed GS2 header (RFC 5801 §4). */
export interface Gs2Header {
  /** `n`: client does not support channel binding; `y`: it does but thinks the server does not; `p`: it uses it. */
  readonly cbFlag: 'n' | 'y' | 'p';
  /** Channel-binding type name for `p=…`. */
  readonly cbName?: string;
  /** The authorization identity (decoded from `a=`), or `null`. */
  readonly authzid: string | null;
  /** The exact header bytes as sent (they feed channel-binding application data, RFC 5801 §5). */
  readonly raw: string;
}

/** Decodes the RFC 5801 / RFC 5802 saslname escaping (`=2C` → `,`, `=3D` → `=`). */
function decodeSaslName(text: string): string | null {
  if (!/^(?:[^=,]|=2C|=3D)*$/.test(text)) return null;
  return text.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

function encodeSaslName(text: string): string {
  return text.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/**
 * Splits the client's first message into GS2 header and (header-less) context token.
 * Throws an AuthError `'malformed'` for anything that is not `[n|y|p=name],[a=authzid],`.
 *
 * @example
 * ```ts
 * const { header, token } = parseGs2Message(bytes);
 * ```
 */
export function parseGs2Message(message: Uint8Array): { header: Gs2Header; token: Uint8Array } {
  // The header is ASCII/UTF-8 up to the second comma; limit the search so huge input costs little.
  const limit = Math.min(message.length, 1100);
  const first = message.subarray(0, limit).indexOf(0x2c);
  const second = first < 0 ? -1 : message.subarray(0, limit).indexOf(0x2c, first + 1);
  if (first < 0 || second < 0) throw new AuthError('malformed', 'GS2: no GS2 header');
  const raw = Buffer.from(message.subarray(0, second + 1)).toString('utf8');
  const flag = raw.slice(0, first);
  const authzPart = raw.slice(first + 1, second);
  if (flag === 'F' || flag.startsWith('F,'))
    throw new AuthError('malformed', 'GS2: non-standard tokens are not supported');
  let cbFlag: Gs2Header['cbFlag'];
  let cbName: string | undefined;
  if (flag === 'n' || flag === 'y') cbFlag = flag;
  else if (/^p=[A-Za-z0-9.-]{1,40}$/.test(flag)) {
    cbFlag = 'p';
    cbName = flag.slice(2);
  } else throw new AuthError('malformed', 'GS2: bad channel-binding flag');
  let authzid: string | null = null;
  if (authzPart.length > 0) {
    if (!authzPart.startsWith('a=')) throw new AuthError('malformed', 'GS2: bad authzid field');
    authzid = decodeSaslName(authzPart.slice(2));
    if (authzid === null || authzid.length === 0)
      throw new AuthError('malformed', 'GS2: bad authzid encoding');
  }
  const header: Gs2Header =
    cbName === undefined ? { cbFlag, authzid, raw } : { cbFlag, cbName, authzid, raw };
  return { header, token: message.subarray(second + 1) };
}

/**
 * Formats a GS2 header.
 *
 * @example
 * ```ts
 * formatGs2Header('n', null); // 'n,,'
 * ```
 */
export function formatGs2Header(
  cbFlag: 'n' | 'y' | 'p=tls-exporter',
  authzid: string | null,
): string {
  return `${cbFlag},${authzid === null ? '' : `a=${encodeSaslName(authzid)}`},`;
}

function readDerLength(bytes: Uint8Array, offset: number): { length: number; next: number } | null {
  const first = bytes[offset];
  if (first === undefined) return null;
  if (first < 0x80) return { length: first, next: offset + 1 };
  const count = first & 0x7f;
  // Up to 4 length octets (tokens here are far below 4 GiB); no indefinite form in DER.
  if (count === 0 || count > 4 || offset + 1 + count > bytes.length) return null;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + (bytes[offset + 1 + i] ?? 0);
  if (length < 0x80 || (count > 1 && bytes[offset + 1] === 0)) return null; // non-minimal DER
  return { length, next: offset + 1 + count };
}

function derLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const out: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) out.unshift(n % 256);
  return Uint8Array.from([0x80 | out.length, ...out]);
}

/**
 * Removes the RFC 2743 §3.1 header from a krb5 initial context token (client side). Throws when
 * the token is not a framed Kerberos V5 token.
 *
 * @example
 * ```ts
 * const inner = stripTokenHeader(gssToken);
 * ```
 */
export function stripTokenHeader(token: Uint8Array): Uint8Array {
  if (token[0] !== 0x60) throw new AuthError('malformed', 'GSS token lacks the RFC 2743 header');
  const len = readDerLength(token, 1);
  if (len === null || len.next + len.length !== token.length) {
    throw new AuthError('malformed', 'GSS token has a bad length');
  }
  const oid = token.subarray(len.next, len.next + KRB5_OID_DER.length);
  if (oid.length !== KRB5_OID_DER.length || !oid.every((b, i) => b === KRB5_OID_DER[i])) {
    throw new AuthError('malformed', 'GSS token is not a Kerberos V5 token');
  }
  return token.subarray(len.next + KRB5_OID_DER.length);
}

/**
 * Re-adds the RFC 2743 §3.1 header with the Kerberos V5 OID (server side).
 *
 * @example
 * ```ts
 * const framed = addTokenHeader(inner);
 * ```
 */
export function addTokenHeader(inner: Uint8Array): Uint8Array {
  const body = new Uint8Array(KRB5_OID_DER.length + inner.length);
  body.set(KRB5_OID_DER, 0);
  body.set(inner, KRB5_OID_DER.length);
  const len = derLength(body.length);
  const out = new Uint8Array(1 + len.length + body.length);
  out[0] = 0x60;
  out.set(len, 1);
  out.set(body, 1 + len.length);
  return out;
}
