/**
 * The open link over real TLS on loopback: origin checks and stamping (T45), duplicate
 * suppression (T46), hop-by-hop answers, and bounded memory when a peer stops reading.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isImppError } from '../../src/errors.js';
import { LinkFrameType, signDomainProof } from '../../src/federation/index.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import {
  RawPeer,
  type RunningEndpoint,
  type TestDomain,
  makeDomain,
  newId,
  route,
  startEndpoint,
  until,
} from './helpers.js';

let a: TestDomain;
let b: TestDomain;
const running: RunningEndpoint[] = [];
const raws: RawPeer[] = [];

beforeAll(async () => {
  [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
});

afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(running.splice(0).map((r) => r.endpoint.close()));
});

/** B, pinning A's key. */
async function startB(options: Parameters<typeof startEndpoint>[2] = {}): Promise<RunningEndpoint> {
  const B = await startEndpoint(
    b,
    [{ domain: 'a.example', proof: 'key', publicKey: a.key.publicKey }],
    options,
  );
  running.push(B);
  return B;
}

/** A hand-driven a.example, authenticated to B with A's real key. */
async function rawA(B: RunningEndpoint, window = 64): Promise<RawPeer> {
  const raw = await RawPeer.connect(B.port, 'b.example', undefined);
  raws.push(raw);
  raw.send(LinkFrameType.OPEN, {
    versions: [1],
    from: 'a.example',
    to: 'b.example',
    want: 'certificate',
    window,
    maxFrameBytes: 1024 * 1024,
  });
  expect((await raw.next())?.type).toBe(LinkFrameType.ACCEPT);
  raw.send(LinkFrameType.PROOF, {
    proof: signDomainProof(a.key.secretKey, 'initiator', {
      initiator: 'a.example',
      responder: 'b.example',
      exporter: raw.exporter(),
    }),
  });
  expect((await raw.next())?.type).toBe(LinkFrameType.READY);
  return raw;
}

function data(seq: number, id: Uint8Array, origin = 'a.example', body: CborValue = 'x'): CborValue {
  return { seq, id, origin, kind: 1, body };
}

async function answer(raw: RawPeer): Promise<{ type: number; body: Record<string, unknown> }> {
  for (;;) {
    const f = await raw.next();
    if (f === null) throw new Error('link closed');
    if (f.type === LinkFrameType.PING) continue;
    return { type: f.type, body: f.body as Record<string, unknown> };
  }
}

describe('federation link', () => {
  it('a frame claiming a third domain is refused, audited, and not delivered', async () => {
    const B = await startB();
    const raw = await rawA(B);
    raw.send(LinkFrameType.DATA, data(1, newId(), 'c.example'));
    const refused = await answer(raw);
    expect(refused.type).toBe(LinkFrameType.REJECT);
    expect(refused.body).toMatchObject({ seq: 1, code: 'ERR_NOT_AUTHORIZED' });
    expect(B.delivered).toHaveLength(0);
    const event = B.audit.find((e) => e.type === 'federation.origin-refused');
    expect(event).toMatchObject({ peer: 'a.example', claimed: false, claimedOrigin: 'c.example' });
    // The link stays usable for the peer's own objects, stamped with the peer.
    raw.send(LinkFrameType.DATA, data(2, newId()));
    expect(await answer(raw)).toMatchObject({ type: LinkFrameType.ACK, body: { seq: 2 } });
    expect(B.delivered.map((o) => o.arrivedFrom)).toEqual(['a.example']);
  });

  describe('a replayed link frame is delivered once', () => {
    it('the same object id twice on one link: both acknowledged, one delivery', async () => {
      const B = await startB();
      const raw = await rawA(B);
      const id = newId();
      raw.send(LinkFrameType.DATA, data(1, id));
      raw.send(LinkFrameType.DATA, data(2, id));
      expect(await answer(raw)).toMatchObject({ type: LinkFrameType.ACK, body: { seq: 1 } });
      expect(await answer(raw)).toMatchObject({ type: LinkFrameType.ACK, body: { seq: 2 } });
      expect(B.delivered).toHaveLength(1);
    });

    it('the same frame resent verbatim (old sequence number) closes the link', async () => {
      const B = await startB();
      const raw = await rawA(B);
      const id = newId();
      raw.send(LinkFrameType.DATA, data(1, id));
      raw.send(LinkFrameType.DATA, data(1, id));
      expect(await raw.closeCode()).toBe('ERR_PROTOCOL');
      expect(B.delivered).toHaveLength(1);
    });

    it('the same object id on a later link (after a reconnect) is not delivered again', async () => {
      const B = await startB();
      const id = newId();
      const first = await rawA(B);
      first.send(LinkFrameType.DATA, data(1, id));
      await answer(first);
      first.destroy();
      const second = await rawA(B);
      second.send(LinkFrameType.DATA, data(1, id));
      expect(await answer(second)).toMatchObject({ type: LinkFrameType.ACK });
      expect(B.delivered).toHaveLength(1);
    });

    it('between two endpoints: a resend of an acknowledged object resolves and is dropped', async () => {
      const B = await startB();
      const A = await startEndpoint(a, [
        { domain: 'b.example', proof: 'x509', caPem: b.ca.certPem },
      ]);
      running.push(A);
      route(A, 'b.example', B);
      const link = await A.endpoint.connect('b.example');
      const object = { id: newId(), kind: 3, body: { n: 1 } };
      await link.send(object);
      await link.send(object);
      expect(B.delivered).toHaveLength(1);
      expect(B.delivered[0]).toMatchObject({ arrivedFrom: 'a.example', kind: 3, body: { n: 1 } });
    });
  });

  it('a delivery that fails is refused hop by hop, and the retry is delivered', async () => {
    let fail = true;
    const B = await startB({
      deliver: () => {
        if (fail) throw new Error('disk full (simulated: a fault the test cannot cause for real)');
      },
    });
    const raw = await rawA(B);
    const id = newId();
    raw.send(LinkFrameType.DATA, data(1, id));
    expect(await answer(raw)).toMatchObject({
      type: LinkFrameType.REJECT,
      body: { code: 'ERR_STORAGE' },
    });
    fail = false;
    raw.send(LinkFrameType.DATA, data(2, id));
    expect(await answer(raw)).toMatchObject({ type: LinkFrameType.ACK, body: { seq: 2 } });
    expect(B.delivered).toHaveLength(1);
  });

  it('a peer sending beyond the window it was given is cut off', async () => {
    const B = await startB({
      limits: { window: 4 },
      // Slow deliveries keep the first frames unanswered.
      deliver: () => new Promise((r) => setTimeout(r, 200)),
    });
    const raw = await rawA(B);
    for (let seq = 1; seq <= 6; seq++) raw.send(LinkFrameType.DATA, data(seq, newId()));
    expect(await raw.closeCode()).toBe('ERR_PROTOCOL');
  });

  it('a peer that stops reading does not grow memory without bound', async () => {
    const maxInFlightBytes = 256 * 1024;
    const B = await startB({ limits: { maxInFlightBytes, ackTimeoutMs: 600 } });
    const raw = await rawA(B, 65_536);
    // The peer reads nothing from now on and never acknowledges.
    raw.socket.pause();
    const link = B.endpoint.linkTo('a.example');
    if (link === undefined) throw new Error('no link');
    const body = new Uint8Array(8192);
    const before = process.memoryUsage().arrayBuffers;
    const accepted: Promise<void>[] = [];
    let refused = 0;
    // 20,000 × 8 KiB = 160 MiB if the link buffered everything it was given.
    for (let i = 0; i < 20_000; i++) {
      const p = link.send({ id: newId(), kind: 1, body });
      if (link.inFlight.frames > accepted.length) accepted.push(p);
      else {
        refused += 1;
        await p.catch((e: unknown) => {
          expect(isImppError(e, 'ERR_SLOW_CONSUMER')).toBe(true);
        });
      }
    }
    const sent = accepted.length;
    expect(sent).toBeGreaterThan(0);
    expect(refused).toBe(20_000 - sent);
    expect(link.inFlight.bytes).toBeLessThanOrEqual(maxInFlightBytes + 8192 + 256);
    expect(link.queuedBytes).toBeLessThanOrEqual(maxInFlightBytes + 8192 + 256);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
    // Without answers the link is closed, and everything in flight fails (for the queue above
    // the link to retry), rather than waiting forever.
    const outcomes = await Promise.allSettled(accepted);
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect(link.closeInfo).toMatchObject({ code: 'ERR_TIMEOUT', by: 'local' });
  });

  it('two domains dialling each other at once end up with one link, used both ways', async () => {
    const B = await startEndpoint(b, [{ domain: 'a.example', proof: 'x509', caPem: a.ca.certPem }]);
    const A = await startEndpoint(a, [{ domain: 'b.example', proof: 'x509', caPem: b.ca.certPem }]);
    running.push(A, B);
    route(A, 'b.example', B);
    route(B, 'a.example', A);
    const [fromA, fromB] = await Promise.all([
      A.endpoint.connect('b.example'),
      B.endpoint.connect('a.example'),
    ]);
    expect(fromA.peer).toBe('b.example');
    expect(fromB.peer).toBe('a.example');
    await until(
      () =>
        A.endpoint.links.length === 1 &&
        B.endpoint.links.length === 1 &&
        A.endpoint.links[0]?.role === 'initiator' &&
        B.endpoint.links[0]?.role === 'responder',
    );
    await A.endpoint.links[0]?.send({ id: newId(), kind: 1, body: 1 });
    await B.endpoint.links[0]?.send({ id: newId(), kind: 1, body: 2 });
    expect(B.delivered).toHaveLength(1);
    expect(A.delivered).toHaveLength(1);
  });

  it('a link cut while frames are in flight fails them, so that nothing is silently lost', async () => {
    const B = await startB({ deliver: () => new Promise(() => undefined) });
    const A = await startEndpoint(a, [{ domain: 'b.example', proof: 'x509', caPem: b.ca.certPem }]);
    running.push(A);
    route(A, 'b.example', B);
    const link = await A.endpoint.connect('b.example');
    const pending = [1, 2, 3].map(() => link.send({ id: newId(), kind: 1, body: null }));
    await until(() => B.endpoint.links.length === 1);
    await B.endpoint.close();
    const outcomes = await Promise.allSettled(pending);
    expect(
      outcomes.map(
        (o) => o.status === 'rejected' && isImppError(o.reason, 'ERR_CONNECTION_CLOSED'),
      ),
    ).toEqual([true, true, true]);
    expect(A.endpoint.links).toHaveLength(0);
  });

  it('a connection that never authenticates is closed after the pre-auth time-out', async () => {
    const B = await startB({ limits: { preAuthTimeoutMs: 200 } });
    const raw = await RawPeer.connect(B.port, 'b.example', undefined);
    raws.push(raw);
    expect(await raw.closeCode()).toBe('ERR_TIMEOUT');
  });

  it('a large frame before authentication is refused without being read', async () => {
    const B = await startB();
    const raw = await RawPeer.connect(B.port, 'b.example', undefined);
    raws.push(raw);
    raw.send(LinkFrameType.OPEN, { padding: new Uint8Array(64 * 1024) });
    expect(await raw.closeCode()).toBe('ERR_FRAME_TOO_LARGE');
  });

  it('pings a silent peer and closes the link when it stays silent', async () => {
    const B = await startB({ limits: { pingIntervalMs: 100, idleTimeoutMs: 400 } });
    const raw = await rawA(B);
    const first = await raw.next();
    expect(first?.type).toBe(LinkFrameType.PING);
    // A peer that answers stays connected past the idle time-out.
    raw.send(LinkFrameType.PONG, {});
    await new Promise((r) => setTimeout(r, 300));
    raw.send(LinkFrameType.PONG, {});
    await new Promise((r) => setTimeout(r, 300));
    expect(B.endpoint.linkTo('a.example')).toBeDefined();
    // Then silence.
    expect(await raw.closeCode()).toBe('ERR_TIMEOUT');
  });
});
