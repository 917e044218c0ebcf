/** LDAP escaping (RFC 4515 filters, RFC 4514 DNs) and RFC 5803 authPassword verifiers: codecs and properties. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatScramAuthPassword,
  parseScramAuthPassword,
} from '../../src/auth/ldap/authpassword.js';
import { escapeDnValue, escapeFilterValue, fillFilter } from '../../src/auth/ldap/escape.js';

describe('RFC 4515 filter value escaping', () => {
  it('escapes the five special characters', () => {
    expect(escapeFilterValue('*)(uid=*')).toBe('\\2a\\29\\28uid=\\2a');
    expect(escapeFilterValue('a\\b\u0000')).toBe('a\\5cb\\00');
    expect(escapeFilterValue('Zoë Ünïcode')).toBe('Zoë Ünïcode');
  });

  it('never leaves an unescaped special character, and unescaping gives the input back', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (value) => {
        const escaped = escapeFilterValue(value);
        expect(/[*()]/.test(escaped) || escaped.includes('\u0000')).toBe(false);
        // every backslash starts a two-hex-digit escape
        expect(/\\(?![0-9a-f]{2})/.test(escaped)).toBe(false);
        const back = escaped.replace(/\\([0-9a-f]{2})/g, (_m, h: string) =>
          String.fromCharCode(parseInt(h, 16)),
        );
        expect(back).toBe(value);
      }),
    );
  });

  it('fills only {user} and {dn} placeholders, escaped', () => {
    expect(fillFilter('(&(uid={user})(x={other}))', { user: 'a*' })).toBe(
      '(&(uid=a\\2a)(x={other}))',
    );
    expect(fillFilter('(member={dn})', { dn: 'uid=a,ou=p' })).toBe('(member=uid=a,ou=p)');
  });
});

describe('RFC 4514 DN value escaping', () => {
  it('escapes specials, leading # and space, trailing space', () => {
    expect(escapeDnValue('a,b=c+d')).toBe('a\\,b\\=c\\+d');
    expect(escapeDnValue('#x')).toBe('\\#x');
    expect(escapeDnValue(' x ')).toBe('\\ x\\ ');
    expect(escapeDnValue('"<>;\\')).toBe('\\"\\<\\>\\;\\\\');
  });

  it('an escaped value never contains an unescaped separator', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (value) => {
        const escaped = escapeDnValue(value).replace(/\\./g, '');
        expect(/[,+"\\<>;=]/.test(escaped) || escaped.includes('\u0000')).toBe(false);
      }),
    );
  });
});

describe('RFC 5803 authPassword SCRAM-SHA-256 verifiers', () => {
  const key = (n: number) => new Uint8Array(32).fill(n);
  it('round-trips any valid verifier', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 64 }),
        fc.integer({ min: 4096, max: 10_000_000 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (salt, iterations, storedKey, serverKey) => {
          const text = formatScramAuthPassword({ salt, iterations, storedKey, serverKey });
          expect(parseScramAuthPassword(text)).toEqual({ salt, iterations, storedKey, serverKey });
        },
      ),
    );
  });

  it('refuses other schemes, weak iteration counts and malformed fields', () => {
    const good = formatScramAuthPassword({
      salt: new Uint8Array(16),
      iterations: 4096,
      storedKey: key(1),
      serverKey: key(2),
    });
    expect(parseScramAuthPassword(good)).not.toBeNull();
    const bad = [
      good.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
      good.replace('$4096:', '$4095:'),
      good.replace('$4096:', '$04096:'),
      good.replace('$4096:', '$99999999999:'),
      `${good}$extra`,
      good.replace(':', '::'),
      good.slice(0, -4),
      good.replace('$4096:AAAAAAAAAAAAAAAAAAAAAA==', '$4096:AAAA'),
      'SCRAM-SHA-256$4096:!!!!$AAAA:AAAA',
      '',
    ];
    for (const b of bad) expect(parseScramAuthPassword(b), b).toBeNull();
  });

  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const parsed = parseScramAuthPassword(`SCRAM-SHA-256$${s}`);
        expect(parsed === null || parsed.iterations >= 4096).toBe(true);
      }),
    );
  });
});
