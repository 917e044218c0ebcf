/**
 * Escaping of untrusted values placed into LDAP filters (RFC 4515) and DNs (RFC 4514).
 *
 * A user name comes from the SASL exchange: attacker-controlled. Without escaping, the name
 * `*)(uid=*` turns `(uid={user})` into a filter that matches every entry (LDAP injection).
 */

/**
 * Escapes a value for use inside an LDAP filter assertion (RFC 4515 §3): `*`, `(`, `)`, `\` and
 * NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`. Every other character, including non-ASCII UTF-8,
 * is allowed verbatim by the grammar (`valueencoding`).
 *
 * @example
 * ```ts
 * escapeFilterValue('*)(uid=*'); // '\\2a\\29\\28uid=\\2a'
 * ```
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Escapes a value for use as an attribute value in a DN (RFC 4514 §2.4): `"+,;<>\` and `=` are
 * backslash-escaped, a leading `#` or space and a trailing space too, NUL becomes `\00`.
 *
 * @example
 * ```ts
 * escapeDnValue('a,b=c'); // 'a\\,b\\=c'
 * ```
 */
export function escapeDnValue(value: string): string {
  let out = value.replace(/["+,;<>\\=]/g, (c) => `\\${c}`).replace(/\0/g, '\\00');
  if (out.startsWith('#') || out.startsWith(' ')) out = `\\${out}`;
  if (out.endsWith(' ') && out.length > 1) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/**
 * Fills `{user}` / `{dn}` placeholders in a configured filter template, escaping each value
 * (RFC 4515). The template itself comes from configuration and is trusted.
 *
 * @example
 * ```ts
 * fillFilter('(&(objectClass=person)(uid={user}))', { user: 'alice' });
 * ```
 */
export function fillFilter(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{(user|dn)\}/g, (whole, key: string) => {
    const value = values[key];
    return value === undefined ? whole : escapeFilterValue(value);
  });
}
