/**
 * Parser threats (T35 PIDF/XML, T36 XML-DSIG wrapping, T37 CBOR, T58 CPIM). Their hostile input
 * comes from a contact, inside a sealed object: the server never parses it and cannot be asked to
 * deliver a chosen plaintext to another user's device, so the payload checks run here, locally,
 * against the parsers that ship in this build (the ones every impp client uses). Each hostile
 * input must be refused with the parser's one typed error, and the parser must keep working.
 * T37 additionally sends hostile sealed envelopes through the target to a real SDK recipient,
 * which must refuse them with typed errors and keep working.
 */
import { Frames } from '../../client/protocol.js';
import { ImppError, isImppError } from '../../errors.js';
import { decodeCborStrict, encodeCbor } from '../../seal/cbor.js';
import { MAX_SEALED_BYTES } from '../../seal/constants.js';
import { sealMessage } from '../../seal/message.js';
import { cpimTextMessage, decodeCpim, encodeCpim } from '../../seal/payload/cpim.js';
import { buildPidf, parsePidf } from '../../seal/payload/pidf.js';
import { signPidf, verifySignedPidf } from '../../seal/payload/xmldsig.js';
import { SealDevice } from '../../seal/session.js';
import { parseAddress } from '../../trust/address.js';
import { createSuiteCa, issueServerCert } from '../attackers/certs.js';
import { RawDevice, sleep } from '../attackers/watchers.js';
import type { Threat, ThreatOutcome } from '../types.js';
import { MITIGATED, VULNERABLE } from './outcome.js';

/** One hostile input: a name and the call that must throw `code`. */
type Case = readonly [name: string, attempt: () => unknown];

/**
 * Runs each case; each must throw an ImppError with `code` (any typed one when `null`). Returns
 * the cases that were accepted or refused the wrong way (exported for the suite's own tests).
 */
export function expectRefusals(
  code: string | null,
  cases: readonly Case[],
): { accepted: string[]; evidence: string[] } {
  const accepted: string[] = [];
  const evidence: string[] = [];
  for (const [name, attempt] of cases) {
    try {
      attempt();
      accepted.push(name);
      evidence.push(`${name}: ACCEPTED`);
    } catch (e) {
      const got = isImppError(e) ? e.code : `untyped ${e instanceof Error ? e.name : typeof e}`;
      evidence.push(`${name}: refused (${got})`);
      const typed = isImppError(e);
      if (code === null ? !typed : got !== code) {
        accepted.push(`${name} (${got}, not ${code ?? 'a typed error'})`);
      }
    }
  }
  return { accepted, evidence };
}

function outcome(
  what: string,
  code: string,
  cases: readonly Case[],
  result: { accepted: string[]; evidence: string[] },
  extra: readonly string[] = [],
  how = 'shipped parser, run locally: the payload is sealed end to end',
): ThreatOutcome {
  if (result.accepted.length > 0) {
    return VULNERABLE(`${what}: ${result.accepted.join('; ')}`, [...result.evidence, ...extra]);
  }
  return MITIGATED(
    `${cases.length} hostile ${what} refused with ${code}; the parser keeps working (${how})`,
    [...result.evidence, ...extra],
  );
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function pidfDocument(entity: string, note: string): string {
  return buildPidf({
    entity: parseAddress(entity),
    tuples: [{ id: 't1', status: { basic: 'open', extensions: [] }, extensions: [], notes: [] }],
    notes: [{ text: note }],
    extensions: [],
  });
}

const PIDF_HEAD = '<?xml version="1.0" encoding="UTF-8"?>';
const PRESENCE_OPEN = '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@example.org">';

const pidfXmlAttacks: Threat = {
  id: 'T35',
  name: 'pidf-xml-attacks',
  class: 'parsing',
  title: 'PIDF with a DOCTYPE, entity expansion, external entities, extreme depth or size',
  async run(ctx): Promise<ThreatOutcome> {
    const good = pidfDocument('a@example.org', ctx.canary());
    await ctx.control('the shipped PIDF parser reads a valid document', () =>
      Promise.resolve(parsePidf(good)),
    );
    const laughs =
      `${PIDF_HEAD}<!DOCTYPE presence [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">` +
      `<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>` +
      `${PRESENCE_OPEN}<note>&d;</note></presence>`;
    const external =
      `${PIDF_HEAD}<!DOCTYPE presence [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
      `${PRESENCE_OPEN}<note>&x;</note></presence>`;
    const externalDtd = `${PIDF_HEAD}<!DOCTYPE presence SYSTEM "http://127.0.0.1:9/x.dtd">${PRESENCE_OPEN}</presence>`;
    const depth = `${PIDF_HEAD}${PRESENCE_OPEN}<tuple id="t">${'<x>'.repeat(5000)}${'</x>'.repeat(5000)}</tuple></presence>`;
    const huge = `${PIDF_HEAD}${PRESENCE_OPEN}<note>${'a'.repeat(4 << 20)}</note></presence>`;
    const cases: Case[] = [
      ['internal entity expansion (billion laughs)', () => parsePidf(laughs)],
      ['external entity (file:///etc/passwd)', () => parsePidf(external)],
      ['external DTD', () => parsePidf(externalDtd)],
      ['5000-deep nesting', () => parsePidf(depth)],
      ['a 4 MiB document', () => parsePidf(huge)],
      ['invalid UTF-8', () => parsePidf(new Uint8Array([...utf8(PRESENCE_OPEN), 0xc0, 0xaf]))],
      ['unclosed markup', () => parsePidf(`${PIDF_HEAD}${PRESENCE_OPEN}<tuple id="t">`)],
      [
        'processing instruction smuggling',
        () =>
          parsePidf(
            `${PIDF_HEAD}<?xml-stylesheet href="http://x"?>${good.slice(PIDF_HEAD.length)}`,
          ),
      ],
    ];
    const result = expectRefusals('ERR_PAYLOAD_INVALID', cases);
    let after = 'the parser still reads a valid document afterwards';
    try {
      parsePidf(good);
    } catch {
      after = 'the parser FAILS on a valid document afterwards';
      result.accepted.push(after);
    }
    return outcome('PIDF documents', 'ERR_PAYLOAD_INVALID', cases, result, [after]);
  },
};

const xmldsigWrapping: Threat = {
  id: 'T36',
  name: 'xmldsig-wrapping',
  class: 'parsing',
  title: 'XML-DSIG wrapping, extra signatures, weak algorithms, a signer from another CA',
  async run(ctx): Promise<ThreatOutcome> {
    const ca = await createSuiteCa('impp threat suite xmldsig CA');
    const other = await createSuiteCa('another CA');
    const leaf = await issueServerCert(ca, { names: ['example.org'] });
    const foreign = await issueServerCert(other, { names: ['example.org'] });
    const doc = pidfDocument('alice@example.org', ctx.canary());
    const sign = (l: typeof leaf): string =>
      signPidf(doc, {
        privateKeyPem: l.keyPem,
        certificatePem: l.certPem,
        algorithm: 'ecdsa-sha256',
      });
    const verify = (xml: string): unknown =>
      verifySignedPidf(xml, { caCertificatePem: ca.certPem });
    const signed = await ctx.control('a document signed under the configured CA verifies', () =>
      Promise.resolve(sign(leaf)),
    );
    verify(signed);
    const body = signed.slice(signed.indexOf('<presence'));
    const sigStart =
      body.indexOf('<ds:Signature') >= 0
        ? body.indexOf('<ds:Signature')
        : body.indexOf('<Signature');
    const signature = body.slice(sigStart, body.lastIndexOf('</presence>'));
    const cases: Case[] = [
      [
        'the signed presence wrapped inside another presence',
        () =>
          verify(
            `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:mallory@example.org">${body}</presence>`,
          ),
      ],
      [
        'an unsigned tuple added next to the signed content',
        () =>
          verify(
            signed.replace(
              '<tuple',
              '<tuple id="forged"><status><basic>closed</basic></status></tuple><tuple',
            ),
          ),
      ],
      [
        'another entity put where the application reads',
        () => verify(signed.replace('pres:alice@example.org', 'pres:mallory@example.org')),
      ],
      [
        'a second Signature',
        () => verify(signed.replace('</presence>', `${signature}</presence>`)),
      ],
      ['a signer from another CA', () => verify(sign(foreign))],
      [
        'the signature algorithm swapped for RSA-SHA1',
        () =>
          verify(
            signed.replace(
              /Algorithm="[^"]*ecdsa-sha256"/,
              'Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"',
            ),
          ),
      ],
      [
        'the digest swapped for SHA-1',
        () =>
          verify(
            signed.replace(
              /Algorithm="[^"]*#sha256"/,
              'Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"',
            ),
          ),
      ],
      ['no signature at all', () => verify(doc)],
    ];
    const result = expectRefusals(null, cases);
    return outcome('signed PIDF documents', 'a typed error', cases, result);
  },
};

/** Hostile CBOR for the strict decoder every sealed object goes through. */
const CBOR_CASES: readonly [string, Uint8Array][] = [
  ['10000-deep nesting', new Uint8Array([...new Array<number>(10_000).fill(0x81), 0x00])],
  [
    'a byte string claiming 2^64-1 bytes',
    new Uint8Array([0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
  ],
  ['an array claiming 2^32 items', new Uint8Array([0x9b, 0, 0, 0, 1, 0, 0, 0, 0])],
  ['an indefinite-length byte string', new Uint8Array([0x5f, 0x41, 0x00, 0xff])],
  ['an indefinite-length map', new Uint8Array([0xbf, 0x01, 0x02, 0xff])],
  ['an unknown tag', new Uint8Array([0xd9, 0xd9, 0xf7, 0x00])],
  ['a value-sharing tag (28)', new Uint8Array([0xd8, 0x1c, 0x81, 0xd8, 0x1d, 0x00])],
  ['duplicate map keys', new Uint8Array([0xa2, 0x01, 0x01, 0x01, 0x02])],
  ['a __proto__ key', new Uint8Array([0xa1, 0x69, ...new TextEncoder().encode('__proto__'), 0x01])],
  ['a non-canonical integer (1 in two bytes)', new Uint8Array([0x18, 0x01])],
  ['map keys out of canonical order', new Uint8Array([0xa2, 0x02, 0x00, 0x01, 0x00])],
  ['trailing bytes', new Uint8Array([0x00, 0x00])],
  ['a half float', new Uint8Array([0xf9, 0x3c, 0x00])],
  ['truncated input', new Uint8Array([0x82, 0x01])],
];

/** A sealed message for `device` that `device` cannot open (its bundle is not the device's). */
function unopenableFor(device: string): Uint8Array {
  const at = device.indexOf('@');
  const domain = device.slice(at + 1, device.lastIndexOf('/'));
  const sender = SealDevice.create(`hostile@${domain}/x`, { oneTimePrekeys: 0 });
  const fake = SealDevice.create(device, { oneTimePrekeys: 1 });
  return sealMessage(sender, { to: fake.device, bundle: fake.bundle() }, 'message/cpim', utf8('x'))
    .bytes;
}

const cborDecoderAbuse: Threat = {
  id: 'T37',
  name: 'cbor-decoder-abuse',
  class: 'parsing',
  title: 'deep nesting, huge lengths, indefinite lengths, tags, duplicate keys, non-canonical CBOR',
  async run(ctx): Promise<ThreatOutcome> {
    const [p, w] = ctx.accounts;
    if (p === undefined || w === undefined) {
      throw new ImppError('ERR_INVALID_ARGUMENT', 'two test accounts are needed');
    }
    await ctx.control('the strict decoder reads a canonical map', () =>
      Promise.resolve(decodeCborStrict(encodeCbor(new Map([[1, 'x']])), MAX_SEALED_BYTES)),
    );
    const cases: Case[] = CBOR_CASES.map(([name, bytes]) => [
      name,
      () => decodeCborStrict(bytes, MAX_SEALED_BYTES),
    ]);
    const local = expectRefusals('ERR_SEAL_MALFORMED', cases);
    // Through the target: hostile sealed objects to a real SDK device.
    const recipient = ctx.client(p);
    const seen: { messages: number; codes: string[] } = { messages: 0, codes: [] };
    recipient.on('message', () => {
      seen.messages++;
    });
    recipient.on('undeliverable', (u: { code: string }) => seen.codes.push(u.code));
    await ctx.control('a recipient SDK device is online', () => recipient.connect());
    const sender = await RawDevice.registered(ctx, w);
    const valid = unopenableFor(recipient.device);
    const envelopes: [string, Uint8Array][] = [
      ['an envelope the recipient cannot open', valid],
      ['a flipped ciphertext byte', flipLast(valid)],
      ['an envelope with a trailing byte', new Uint8Array([...valid, 0x00])],
      ['an envelope with an extra field', withExtraField(valid)],
    ];
    const evidence: string[] = [];
    let sent = 0;
    for (const [name, object] of envelopes) {
      const r = await sender.request(Frames.SEND, { object });
      evidence.push(`${name}: the server ${r.ok ? 'delivered it' : `refused it (${r.code})`}`);
      if (r.ok) sent++;
    }
    await sleep(500);
    const stillWorks = await recipient.subscriptions().then(
      () => true,
      () => false,
    );
    evidence.push(
      `the recipient saw ${seen.messages} message(s), ${seen.codes.length} typed refusal(s) (${[...new Set(seen.codes)].join(', ')}), and ${stillWorks ? 'still answers' : 'NO LONGER answers'}`,
    );
    const untyped = seen.codes.filter((c) => !c.startsWith('ERR_'));
    if (seen.messages > 0 || !stillWorks || untyped.length > 0) {
      local.accepted.push('a hostile envelope reached the recipient’s application or broke it');
    }
    if (sent > 0 && seen.codes.length === 0) {
      evidence.push('(the recipient raised no event for the delivered objects)');
    }
    return outcome(
      'CBOR inputs',
      'ERR_SEAL_MALFORMED',
      cases,
      local,
      evidence,
      `locally; and ${envelopes.length} hostile envelopes through the target: the SDK recipient refused those delivered and still answers`,
    );
  },
};

function flipLast(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[out.length - 1] = (out[out.length - 1] as number) ^ 1;
  return out;
}

function withExtraField(bytes: Uint8Array): Uint8Array {
  const m = decodeCborStrict(bytes, MAX_SEALED_BYTES);
  if (!(m instanceof Map)) return bytes;
  const copy = new Map(m);
  copy.set(23, 'extra'); // an unknown key (keys are 0..23)
  return encodeCbor(copy);
}

const payloadParserAbuse: Threat = {
  id: 'T58',
  name: 'payload-parser-abuse',
  class: 'parsing',
  title: 'CPIM with invalid UTF-8, lone surrogates, thousands of headers, huge lines or bodies',
  async run(ctx): Promise<ThreatOutcome> {
    const good = encodeCpim(
      cpimTextMessage({
        from: { address: parseAddress('a@example.org') },
        to: [{ address: parseAddress('b@example.org') }],
        text: ctx.canary(),
      }),
    );
    await ctx.control('the shipped CPIM codec reads a valid message', () =>
      Promise.resolve(decodeCpim(good)),
    );
    const text = new TextDecoder().decode(good);
    const split = text.indexOf('\r\n');
    const withHeader = (h: string): Uint8Array =>
      utf8(`${text.slice(0, split + 2)}${h}\r\n${text.slice(split + 2)}`);
    const cases: Case[] = [
      [
        'invalid UTF-8 in a header',
        () =>
          decodeCpim(
            new Uint8Array([...good.subarray(0, split), 0xc0, 0xaf, ...good.subarray(split)]),
          ),
      ],
      [
        'an overlong encoding',
        () =>
          decodeCpim(
            new Uint8Array([...good.subarray(0, split), 0xe0, 0x80, 0xaf, ...good.subarray(split)]),
          ),
      ],
      ['a lone surrogate escape', () => decodeCpim(withHeader('Subject: \\uD800'))],
      ['a repeated From header', () => decodeCpim(withHeader('From: <im:mallory@example.org>'))],
      [
        '5000 headers',
        () =>
          decodeCpim(
            withHeader(Array.from({ length: 5000 }, (_, i) => `NS.X${i}: y`).join('\r\n')),
          ),
      ],
      ['a 200 KB header line', () => decodeCpim(withHeader(`Subject: ${'a'.repeat(200_000)}`))],
      [
        'a 2 MiB message',
        () => decodeCpim(new Uint8Array([...good, ...new Uint8Array(2 << 20).fill(0x61)])),
      ],
      ['no blank line', () => decodeCpim(utf8('From: <im:a@example.org>\r\n'))],
      ['random bytes', () => decodeCpim(new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x80]))],
    ];
    const result = expectRefusals('ERR_PAYLOAD_INVALID', cases);
    return outcome('CPIM messages', 'ERR_PAYLOAD_INVALID', cases, result);
  },
};

export const parsingThreats: readonly Threat[] = [
  pidfXmlAttacks,
  xmldsigWrapping,
  cborDecoderAbuse,
  payloadParserAbuse,
];
