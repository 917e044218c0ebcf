/** GS2 framing (RFC 5801 §4) and the RFC 2743 §3.1 token header: codecs, property tests, bad input. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addTokenHeader,
  formatGs2Header,
  parseGs2Message,
  stripTokenHeader,
} from '../../src/auth/kerberos/gs2.js';
import { mapPrincipal } from '../../src/auth/kerberos/provider.js';
import { isAuthError } from '../../src/auth/types.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const malformed = (f: () => unknown): void => {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(isAuthError(caught) && caught.reason).toBe('malformed');
};

describe('GS2 header', () => {
  it('parses n, y, p= and authzid with saslname escaping', () => {
    expect(parseGs2Message(enc('n,,T')).header).toEqual({ cbFlag: 'n', authzid: null, raw: 'n,,' });
    expect(parseGs2Message(enc('y,,T')).header.cbFlag).toBe('y');
    expect(formatGs2Header('p=tls-exporter', 'a,b')).toBe('p=tls-exporter,a=a=2Cb,');
    expect(parseGs2Message(enc('p=tls-exporter,,T')).header).toMatchObject({
      cbFlag: 'p',
      cbName: 'tls-exporter',
    });
    const { header, token } = parseGs2Message(enc('n,a=we=2Cird=3Dname@example.test,TOKEN'));
    expect(header.authzid).toBe('we,ird=name@example.test');
    expect(Buffer.from(token).toString()).toBe('TOKEN');
  });

  it('round-trips any authzid through format and parse', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 60 }),
        fc.uint8Array({ maxLength: 50 }),
        (authzid, token) => {
          const header = enc(formatGs2Header('n', authzid));
          const parsed = parseGs2Message(Uint8Array.from([...header, ...token]));
          expect(parsed.header.authzid).toBe(authzid);
          expect(Array.from(parsed.token)).toEqual(Array.from(token));
        },
      ),
    );
  });

  it('refuses malformed headers', () => {
    for (const bad of [
      '',
      'n',
      'n,',
      'x,,',
      'F,n,,',
      'p=,,',
      'p=bad name,,',
      'n,b=x,',
      'n,a=,',
      'n,a=bad=2Xx,',
      'yy,,',
    ]) {
      malformed(() => parseGs2Message(enc(bad)));
    }
  });

  it('never throws anything but an AuthError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          parseGs2Message(bytes);
        } catch (e) {
          expect(isAuthError(e)).toBe(true);
        }
      }),
    );
  });
});

describe('RFC 2743 §3.1 token header', () => {
  it('round-trips inner tokens of any size (short and long DER lengths)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000 }), (inner) => {
        expect(Array.from(stripTokenHeader(addTokenHeader(inner)))).toEqual(Array.from(inner));
      }),
      { numRuns: 30 },
    );
  });

  it('refuses other mechanisms, bad lengths and non-minimal DER', () => {
    const framed = addTokenHeader(enc('inner-token'));
    const otherOid = Uint8Array.from(framed);
    otherOid[framed.length - 'inner-token'.length - 1] = 0x03; // 1.2.840.113554.1.2.3
    malformed(() => stripTokenHeader(otherOid));
    malformed(() => stripTokenHeader(framed.subarray(0, framed.length - 1)));
    malformed(() => stripTokenHeader(Uint8Array.from([0x61, ...framed.subarray(1)])));
    malformed(() => stripTokenHeader(Uint8Array.from([0x60, 0x81, 0x05, 1, 2, 3, 4, 5])));
    malformed(() => stripTokenHeader(Uint8Array.from([0x60, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff])));
    malformed(() => stripTokenHeader(new Uint8Array(0)));
  });
});

describe('principal → address mapping', () => {
  const rules = [{ realm: 'EXAMPLE.TEST', pattern: /^[A-Za-z0-9._-]{1,64}$/u, lowercase: true }];
  it('maps the realm to the domain and lower-cases', () => {
    expect(mapPrincipal('alice@EXAMPLE.TEST', rules, 'example.test')).toBe('alice@example.test');
    expect(mapPrincipal('Alice.Smith@EXAMPLE.TEST', rules, 'example.test')).toBe(
      'alice.smith@example.test',
    );
  });
  it('refuses other realms, realm case changes, instances, escapes and odd names', () => {
    for (const p of [
      'alice@OTHER.TEST',
      'alice@example.test',
      'alice@EXAMPLE.TEST.EVIL',
      'carol/admin@EXAMPLE.TEST',
      'host/server@EXAMPLE.TEST',
      'al\\@ice@EXAMPLE.TEST',
      'a@b@EXAMPLE.TEST',
      '@EXAMPLE.TEST',
      'alice',
      'al ice@EXAMPLE.TEST',
      `${'a'.repeat(600)}@EXAMPLE.TEST`,
    ]) {
      expect(mapPrincipal(p, rules, 'example.test'), p).toBeNull();
    }
  });
});
