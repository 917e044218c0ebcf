/**
 * Link authentication over real TLS 1.3 on loopback (T27, T28, T29): good peers proving with a
 * certificate or a pinned domain key connect; every way of claiming a domain without proving it
 * is refused, with an audit event.
 */
import { connect } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { FEDERATION_ALPN, LinkFrameType, signDomainProof } from '../../src/federation/index.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import { createTestCa, issueCert } from '../helpers/tls-fixtures.js';
import {
  type PeerRule,
  RawPeer,
  type RunningEndpoint,
  type TestDomain,
  makeDomain,
  newId,
  route,
  selfSignedFor,
  startEndpoint,
  until,
} from './helpers.js';

let a: TestDomain;
let b: TestDomain;
let c: TestDomain;
const running: RunningEndpoint[] = [];

beforeAll(async () => {
  [a, b, c] = await Promise.all([
    makeDomain('a.example'),
    makeDomain('b.example'),
    makeDomain('c.example'),
  ]);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.endpoint.close()));
});

async function start(...args: Parameters<typeof startEndpoint>): Promise<RunningEndpoint> {
  const r = await startEndpoint(...args);
  running.push(r);
  return r;
}

const byCert = (d: TestDomain): PeerRule => ({
  domain: d.domain,
  proof: 'x509',
  caPem: d.ca.certPem,
});
const byKey = (d: TestDomain): PeerRule => ({
  domain: d.domain,
  proof: 'key',
  publicKey: d.key.publicKey,
});

/** B's endpoint, federating with A (as `rule`) and with C by certificate. */
async function bAccepting(rule: PeerRule): Promise<RunningEndpoint> {
  return start(b, [rule, byCert(c)]);
}

/** The body of an OPEN from a.example to b.example wanting a certificate, with `changes`. */
function openFromA(changes: Record<string, CborValue> = {}): CborValue {
  return {
    versions: [1],
    from: 'a.example',
    to: 'b.example',
    want: 'certificate',
    window: 16,
    maxFrameBytes: 65_536,
    ...changes,
  };
}

async function expectRefused(p: Promise<unknown>, code?: string): Promise<void> {
  const error = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isImppError(error), String(error)).toBe(true);
  if (code !== undefined && isImppError(error)) expect(error.code).toBe(code);
}

describe('federation link authentication', () => {
  it('a good x509 peer connects, and the link carries objects both ways stamped with the peer', async () => {
    const A = await start(a, [byCert(b)]);
    const B = await start(b, [byCert(a)]);
    route(A, 'b.example', B);
    const link = await A.endpoint.connect('b.example');
    expect(link.isOpen).toBe(true);
    expect(link.peer).toBe('b.example');
    await until(() => B.endpoint.linkTo('a.example') !== undefined);
    await link.send({ id: newId(), kind: 1, body: { hello: 'b' } });
    const back = B.endpoint.linkTo('a.example');
    await back?.send({ id: newId(), kind: 2, body: new Uint8Array([1, 2, 3]) });
    await until(() => A.delivered.length === 1);
    expect(B.delivered.map((o) => [o.arrivedFrom, o.kind])).toEqual([['a.example', 1]]);
    expect(A.delivered.map((o) => [o.arrivedFrom, o.kind])).toEqual([['b.example', 2]]);
    // One link, used in both directions: B did not dial A.
    expect(B.endpoint.links).toHaveLength(1);
    expect(B.audit.some((e) => e.type === 'federation.link-open' && e.peer === 'a.example')).toBe(
      true,
    );
  });

  it('a good pinned-key peer connects (no CA involved on either side)', async () => {
    const A = await start(a, [byKey(b)], { cert: await selfSignedFor('whatever.invalid') });
    const B = await start(b, [byKey(a)], { cert: await selfSignedFor('other.invalid') });
    route(A, 'b.example', B);
    const link = await A.endpoint.connect('b.example');
    await link.send({ id: newId(), kind: 1, body: null });
    expect(B.delivered).toHaveLength(1);
    expect(B.delivered[0]?.arrivedFrom).toBe('a.example');
  });

  it('mixed: the initiator proves with its key, the responder with its certificate', async () => {
    const A = await start(a, [byCert(b)]);
    const B = await start(b, [byKey(a)]);
    route(A, 'b.example', B);
    const link = await A.endpoint.connect('b.example');
    expect(link.isOpen).toBe(true);
  });

  describe('wrong certificate, wrong pinned key and a valid certificate for another name are refused', () => {
    const rogueCases: [string, () => Promise<{ certPem: string; keyPem: string }>][] = [
      [
        'a certificate for a.example from another CA',
        async () => {
          const other = await createTestCa({ commonName: 'other CA' });
          return issueCert(other, { dnsNames: ['a.example'], usage: 'both' });
        },
      ],
      [
        'a valid certificate (right CA) for another name',
        () => issueCert(a.ca, { dnsNames: ['mallory.example'], usage: 'both' }),
      ],
      [
        'a certificate for a.example from the CA configured for another peer (c.example)',
        () => issueCert(c.ca, { dnsNames: ['a.example'], usage: 'both' }),
      ],
      [
        "a rogue CA that copies the name of a.example's CA",
        async () => {
          const rogue = await createTestCa({ commonName: 'a.example CA' });
          return issueCert(rogue, { dnsNames: ['a.example'], usage: 'both' });
        },
      ],
      [
        'an expired certificate from the right CA',
        () =>
          issueCert(a.ca, {
            dnsNames: ['a.example'],
            usage: 'both',
            notBefore: new Date(Date.now() - 10 * 86_400_000),
            notAfter: new Date(Date.now() - 86_400_000),
          }),
      ],
      ['a self-signed certificate for a.example', () => selfSignedFor('a.example')],
      [
        'a certificate with only a common name (no subjectAltName)',
        () => issueCert(a.ca, { commonName: 'a.example', usage: 'both' }),
      ],
    ];

    for (const [name, make] of rogueCases) {
      it(`responder refuses ${name}`, async () => {
        const B = await bAccepting(byCert(a));
        const rogueCert = await make();
        const rogue = await start(a, [byCert(b)], { cert: { ...a.cert, ...rogueCert } });
        route(rogue, 'b.example', B);
        await expectRefused(rogue.endpoint.connect('b.example'), 'ERR_AUTH_FAILED');
        expect(B.endpoint.links).toHaveLength(0);
        await until(() => B.audit.some((e) => e.type === 'federation.proof-failed'));
        const event = B.audit.find((e) => e.type === 'federation.proof-failed');
        expect(event?.peer).toBe('a.example');
        expect(event?.claimed).toBe(true);
      });

      it(`initiator refuses a responder with ${name}`, async () => {
        const rogueCert = await make();
        const rogue = await start(a, [byCert(b)], { cert: { ...a.cert, ...rogueCert } });
        const B = await start(b, [byCert(a)]);
        route(B, 'a.example', rogue);
        await expectRefused(B.endpoint.connect('a.example'));
        expect(B.endpoint.links).toHaveLength(0);
        expect(rogue.delivered).toHaveLength(0);
        expect(B.audit.find((e) => e.type === 'federation.proof-failed')?.peer).toBe('a.example');
      });
    }

    it('a peer holding the wrong domain key is refused, in both roles', async () => {
      const impostor: TestDomain = { ...a, key: generateSigningKeyPair() };
      const B = await bAccepting(byKey(a));
      const rogue = await start(impostor, [byKey(b)]);
      route(rogue, 'b.example', B);
      await expectRefused(rogue.endpoint.connect('b.example'), 'ERR_AUTH_FAILED');
      await until(() => B.audit.some((e) => e.type === 'federation.proof-failed'));

      const B2 = await start(b, [byKey(a)]);
      route(B2, 'a.example', rogue);
      await expectRefused(B2.endpoint.connect('a.example'), 'ERR_AUTH_FAILED');
      expect(B2.endpoint.links).toHaveLength(0);
    });

    it('a certificate does not stand in for a pinned key, nor a key for a certificate', async () => {
      // B pins A's key; the rogue has A's valid certificate but not the key.
      const B = await bAccepting(byKey(a));
      const rogue = await start(a, [byCert(b)], { withKey: false });
      route(rogue, 'b.example', B);
      await expectRefused(rogue.endpoint.connect('b.example'));
      // B wants A's certificate; the rogue has A's key but a certificate from nowhere.
      const B2 = await bAccepting(byCert(a));
      const rogue2 = await start(a, [byCert(b)], { cert: await selfSignedFor('a.example') });
      route(rogue2, 'b.example', B2);
      await expectRefused(rogue2.endpoint.connect('b.example'), 'ERR_AUTH_FAILED');
    });
  });

  it('refuses denied, unlisted and self domains, with an audit event', async () => {
    const B = await start(b, [{ domain: 'a.example', proof: 'deny' }]);
    const A = await start(a, [byCert(b)]);
    route(A, 'b.example', B);
    await expectRefused(A.endpoint.connect('b.example'), 'ERR_NOT_AUTHORIZED');
    const C = await start(c, [byCert(b)]);
    route(C, 'b.example', B);
    await expectRefused(C.endpoint.connect('b.example'), 'ERR_NOT_AUTHORIZED');
    await until(() => B.audit.filter((e) => e.type === 'federation.peer-refused').length === 2);
    expect(B.audit.filter((e) => e.type === 'federation.peer-refused').map((e) => e.peer)).toEqual([
      'a.example',
      'c.example',
    ]);
    await expectRefused(B.endpoint.connect('b.example'), 'ERR_NOT_AUTHORIZED');
  });

  describe('a proof from another connection or domain pair is refused', () => {
    /** Opens a raw link to B as a.example wanting a certificate from B; returns ACCEPT. */
    async function openAsA(B: RunningEndpoint): Promise<RawPeer> {
      const raw = await RawPeer.connect(B.port, 'b.example', undefined);
      raw.send(LinkFrameType.OPEN, openFromA());
      const accept = await raw.next();
      expect(accept?.type).toBe(LinkFrameType.ACCEPT);
      expect((accept?.body as { want: string }).want).toBe('key');
      return raw;
    }

    const cases: [string, (raw: RawPeer, other: RawPeer) => Uint8Array][] = [
      [
        'made on another connection',
        (_raw, other) =>
          signDomainProof(a.key.secretKey, 'initiator', {
            initiator: 'a.example',
            responder: 'b.example',
            exporter: other.exporter(),
          }),
      ],
      [
        'made for another pair of domains',
        (raw) =>
          signDomainProof(a.key.secretKey, 'initiator', {
            initiator: 'a.example',
            responder: 'c.example',
            exporter: raw.exporter(),
          }),
      ],
      [
        'with the domains in the other order',
        (raw) =>
          signDomainProof(a.key.secretKey, 'initiator', {
            initiator: 'b.example',
            responder: 'a.example',
            exporter: raw.exporter(),
          }),
      ],
      [
        'made in the other role (a reflected responder proof)',
        (raw) =>
          signDomainProof(a.key.secretKey, 'responder', {
            initiator: 'a.example',
            responder: 'b.example',
            exporter: raw.exporter(),
          }),
      ],
    ];

    for (const [name, make] of cases) {
      it(`refuses a proof ${name}`, async () => {
        const B = await bAccepting(byKey(a));
        const other = await RawPeer.connect(B.port, 'b.example', undefined);
        const raw = await openAsA(B);
        raw.send(LinkFrameType.PROOF, { proof: make(raw, other) });
        expect(await raw.closeCode()).toBe('ERR_AUTH_FAILED');
        expect(B.endpoint.links).toHaveLength(0);
        other.destroy();
      });
    }

    it('accepts the right proof on the same raw connection (the cases above can pass)', async () => {
      const B = await bAccepting(byKey(a));
      const raw = await openAsA(B);
      raw.send(LinkFrameType.PROOF, {
        proof: signDomainProof(a.key.secretKey, 'initiator', {
          initiator: 'a.example',
          responder: 'b.example',
          exporter: raw.exporter(),
        }),
      });
      expect((await raw.next())?.type).toBe(LinkFrameType.READY);
      await until(() => B.endpoint.linkTo('a.example') !== undefined);
      raw.destroy();
    });

    it('nothing but the opening exchange is accepted before authentication', async () => {
      const B = await bAccepting(byKey(a));
      // DATA instead of the PROOF B asked for.
      const raw = await openAsA(B);
      raw.send(LinkFrameType.DATA, { seq: 1, id: newId(), origin: 'a.example', kind: 1, body: 1 });
      expect(await raw.closeCode()).toBe('ERR_PROTOCOL');
      // A PROOF nobody asked for, before OPEN.
      const early = await RawPeer.connect(B.port, 'b.example', undefined);
      early.send(LinkFrameType.PROOF, { proof: new Uint8Array(64) });
      expect(await early.closeCode()).toBe('ERR_PROTOCOL');
      // A PROOF when B wanted a certificate (B verified it in TLS and is already open).
      const B2 = await bAccepting(byCert(a));
      const certRaw = await RawPeer.connect(B2.port, 'b.example', a.cert);
      certRaw.send(LinkFrameType.OPEN, openFromA());
      expect((await certRaw.next())?.type).toBe(LinkFrameType.ACCEPT);
      expect((await certRaw.next())?.type).toBe(LinkFrameType.READY);
      certRaw.send(LinkFrameType.PROOF, { proof: new Uint8Array(64) });
      expect(await certRaw.closeCode()).toBe('ERR_PROTOCOL');
      expect(B.delivered).toHaveLength(0);
      expect(B.audit.some((e) => e.type === 'federation.protocol-violation')).toBe(true);
    });
  });

  describe('version negotiation', () => {
    it('refuses an OPEN offering only versions it does not speak', async () => {
      const B = await bAccepting(byKey(a));
      const raw = await RawPeer.connect(B.port, 'b.example', undefined);
      raw.send(LinkFrameType.OPEN, openFromA({ versions: [2, 7] }));
      expect(await raw.closeCode()).toBe('ERR_VERSION_UNSUPPORTED');
    });

    it('refuses an OPEN with a field it does not understand', async () => {
      const B = await bAccepting(byKey(a));
      const raw = await RawPeer.connect(B.port, 'b.example', undefined);
      raw.send(LinkFrameType.OPEN, openFromA({ extension: true }));
      expect(await raw.closeCode()).toBe('ERR_PROTOCOL');
    });

    it('refuses an OPEN for a domain this server does not serve', async () => {
      const B = await bAccepting(byKey(a));
      const raw = await RawPeer.connect(B.port, 'b.example', undefined);
      raw.send(LinkFrameType.OPEN, openFromA({ to: 'c.example' }));
      expect(await raw.closeCode()).toBe('ERR_DOMAIN_NOT_SERVED');
    });
  });

  it('TLS 1.2 is refused on the link, and so is another ALPN', async () => {
    const B = await bAccepting(byCert(a));
    const attempt = (options: Record<string, unknown>): Promise<string> =>
      new Promise((resolve) => {
        const s = connect({
          host: '127.0.0.1',
          port: B.port,
          servername: 'b.example',
          rejectUnauthorized: false,
          cert: a.cert.certPem,
          key: a.cert.keyPem,
          ...options,
        });
        s.on('secureConnect', () => {
          resolve(`connected ${String(s.getProtocol())} ${String(s.alpnProtocol)}`);
          s.destroy();
        });
        s.on('error', (e: Error) => {
          resolve(`error ${e.message}`);
        });
      });
    expect(
      await attempt({
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.2',
        ALPNProtocols: [FEDERATION_ALPN],
      }),
    ).toMatch(/^error/);
    expect(await attempt({ ALPNProtocols: ['impp/1'] })).toMatch(/^error/);
    expect(await attempt({ ALPNProtocols: [FEDERATION_ALPN] })).toBe(
      `connected TLSv1.3 ${FEDERATION_ALPN}`,
    );
  });

  it('an unlisted domain under webpki must chain to a public root, not to a configured private CA', async () => {
    // B accepts unlisted domains by Web PKI and trusts C's private CA for c.example only.
    const B = await start(b, [byCert(c)], { unlisted: 'webpki' });
    const viaPrivate = await issueCert(c.ca, { dnsNames: ['a.example'], usage: 'both' });
    const A = await start(a, [byCert(b)], { cert: { ...a.cert, ...viaPrivate } });
    route(A, 'b.example', B);
    await expectRefused(A.endpoint.connect('b.example'), 'ERR_AUTH_FAILED');
    await until(() => B.audit.some((e) => e.type === 'federation.proof-failed'));
    expect(B.audit.find((e) => e.type === 'federation.proof-failed')?.reason).toMatch(/anchors/);
  });
});
