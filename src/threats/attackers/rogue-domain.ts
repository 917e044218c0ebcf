/**
 * The federation attackers (T27, T28, T45–T47): a peer domain the suite controls, played honestly
 * (the control steps) and dishonestly (the attacks), against the target's federation endpoint.
 *
 * - {@link RawLink}: a hand-driven link (docs/protocol.md, "Server-to-server protocol"): TLS 1.3
 *   with ALPN `impp-s2s/1` and whatever certificate the attack needs, then link frames written
 *   and read one at a time, so it can send what an honest endpoint never would (another domain's
 *   origin, a replayed sequence number, a proof made for another connection).
 * - {@link RogueListener}: a TLS listener on loopback where a spoofed resolution sends the
 *   target (T47); it counts what reaches it and never proves anything.
 * - Envelopes with the right header and random ciphertext: the target's server reads only the
 *   header, so these are what a peer's server can route (it cannot make real ciphertext either).
 */
import {
  type AddressInfo,
  type Server as NetServer,
  type Socket,
  connect as netConnect,
  createServer as createNetServer,
} from 'node:net';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { type SigningKeyPair, randomBytes, sign } from '../../crypto/index.js';
import { ImppError } from '../../errors.js';
import { encodeCbor } from '../../seal/cbor.js';
import { SealKind } from '../../seal/constants.js';
import { presenceHeaderMap, sessionHeaderMap } from '../../seal/header.js';
import { tlsExporter } from '../../transport/carrier.js';
import { type CborValue, encodeStrictCbor } from '../../transport/cbor-strict.js';
import { type Frame, FrameDecoder, encodeFrame } from '../../transport/frame-codec.js';
import type { FederationAccess, ThreatContext } from '../types.js';

/** ALPN of the link (src/federation/wire.ts; the suite speaks the wire, it does not import it). */
export const LINK_ALPN = 'impp-s2s/1';

/** Link frame types (docs/protocol.md, Server-to-server §2). */
export const LinkFrame = Object.freeze({
  OPEN: 0,
  ACCEPT: 1,
  PROOF: 2,
  READY: 3,
  CLOSE: 4,
  DATA: 16,
  ACK: 17,
  REJECT: 18,
} as const);

/** DATA kinds (Server-to-server §5.1). */
export const LinkKind = Object.freeze({ sealed: 1, presence: 2, subscription: 3 } as const);

/** A domain nobody federates with: what a forged sender claims (T45). */
export const THIRD_DOMAIN = 'third.threats.example';

/** The name a redirecting SRV answer points at (T47): a host, not the domain asked for. */
export const ROGUE_HOST_NAME = 'rogue.threats.example';

/** The label of the domain-key proof (src/federation/proof.ts; docs/protocol.md, "Proofs"). */
const PROOF_LABEL = 'impp-s2s/1 domain-key proof';

/** How long a link frame is waited for, in ms. */
const LINK_WAIT_MS = 5_000;

/**
 * The domain-key proof of `role` on one connection, signed with `key`: the strict CBOR array
 * [label, role, initiator, responder, exporter] (docs/protocol.md, "Proofs").
 */
export function domainProof(
  key: SigningKeyPair,
  role: 'initiator' | 'responder',
  initiator: string,
  responder: string,
  exporter: Uint8Array,
): Uint8Array {
  return sign(key.secretKey, encodeStrictCbor([PROOF_LABEL, role, initiator, responder, exporter]));
}

/** A well-formed message envelope for `recipientDevice` (random ciphertext), `id` its message id. */
export function sealedFor(recipientDevice: string, id: Uint8Array): Uint8Array {
  const map = sessionHeaderMap(SealKind.message, 1, recipientDevice, id, randomBytes(32));
  map.set(6, randomBytes(120));
  return encodeCbor(map);
}

/** A well-formed presence envelope of `presentity` (random ciphertext and signature). */
export function presenceOf(presentity: string): Uint8Array {
  const map = presenceHeaderMap({
    suite: 1,
    presentity,
    epoch: 1,
    presenceVersion: 1,
    timestamp: Date.now(),
    deviceId: 'rogue',
    nonce: randomBytes(24),
  });
  map.set(9, randomBytes(120));
  map.set(10, randomBytes(64));
  return encodeCbor(map);
}

/** A certificate and key in PEM. */
export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/** What a link answered to one DATA frame. */
export type DataAnswer =
  | { readonly type: 'ack' }
  | { readonly type: 'reject'; readonly code: string }
  | { readonly type: 'closed'; readonly code: string | null };

/** How the target answered an opening. */
export type OpenOutcome =
  | { readonly open: true }
  | { readonly open: false; readonly code: string | null; readonly stage: string };

/**
 * A hand-driven link to the target's federation endpoint.
 *
 * @example
 * ```ts
 * const link = await RawLink.connect(ctx, fed, cert);
 * const r = await link.openAs('peer.threats.example', { key });
 * if (r.open) await link.data(id, LinkKind.sealed, envelope);
 * ```
 */
export class RawLink {
  readonly socket: TLSSocket;
  readonly #decoder = new FrameDecoder({ maxFrameBytes: 1024 * 1024 });
  readonly #frames: Frame[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  #seq = 0;
  /** The domain the opening claimed. */
  claimed = '';

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#decoder.push(chunk);
        for (let f = this.#decoder.next(); f !== undefined; f = this.#decoder.next()) {
          this.#frames.push(f);
        }
      } catch {
        socket.destroy();
      }
      this.#wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /**
   * TLS 1.3 to the federation endpoint with `cert` as client certificate (none if undefined);
   * the target's own certificate is not checked: this is the attacker's side. Closed after the
   * threat.
   */
  static connect(
    ctx: ThreatContext,
    fed: FederationAccess,
    cert: PemPair | undefined,
  ): Promise<RawLink> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: fed.host,
        port: fed.port,
        servername: fed.domain,
        ALPNProtocols: [LINK_ALPN],
        minVersion: 'TLSv1.3',
        rejectUnauthorized: false,
        ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }),
      });
      ctx.defer(() => {
        socket.destroy();
      });
      socket.once('secureConnect', () => {
        resolve(new RawLink(socket));
      });
      socket.once('error', reject);
      socket.once('close', () => {
        reject(new ImppError('ERR_CONNECTION_CLOSED', 'closed before TLS completed'));
      });
    });
  }

  /** This connection's tls-exporter value (RFC 9266). */
  exporter(): Uint8Array {
    return tlsExporter(this.socket);
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(type: number, body: CborValue): void {
    if (!this.#closed) this.socket.write(encodeFrame({ type, body }).bytes);
  }

  /** The next frame, or null when the link closed first. */
  async next(ms = LINK_WAIT_MS): Promise<Frame | null> {
    const end = Date.now() + ms;
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) return f;
      if (this.#closed) return null;
      if (Date.now() > end) throw new ImppError('ERR_TIMEOUT', 'no link frame in time');
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 50).unref();
      });
    }
  }

  /**
   * The opening as initiator claiming `from` (OPEN, ACCEPT, PROOF when asked, READY). With `key`
   * the proof is signed by it over this connection, unless `proof` gives the bytes to send.
   */
  async openAs(
    from: string,
    to: string,
    options: { readonly key?: SigningKeyPair; readonly proof?: Uint8Array } = {},
  ): Promise<OpenOutcome> {
    this.claimed = from;
    this.send(LinkFrame.OPEN, {
      versions: [1],
      from,
      to,
      want: 'certificate',
      window: 64,
      maxFrameBytes: 262_144 + 1024,
    });
    const accept = await this.next();
    if (accept?.type !== LinkFrame.ACCEPT) return this.#refused(accept, 'OPEN');
    const want = (accept.body as { want?: unknown }).want;
    if (want === 'key') {
      const proof =
        options.proof ??
        (options.key === undefined
          ? randomBytes(64)
          : domainProof(options.key, 'initiator', from, to, this.exporter()));
      this.send(LinkFrame.PROOF, { proof });
    }
    const ready = await this.next();
    if (ready?.type !== LinkFrame.READY) return this.#refused(ready, 'PROOF');
    return { open: true };
  }

  #refused(frame: Frame | null, stage: string): OpenOutcome {
    const code =
      frame?.type === LinkFrame.CLOSE
        ? ((frame.body as { code: string | null }).code ?? null)
        : null;
    return { open: false, code, stage };
  }

  /**
   * One DATA frame (`origin` the claimed domain unless given, `seq` the next unless given) and
   * the target's answer to it.
   */
  async data(
    id: Uint8Array,
    kind: number,
    body: CborValue,
    options: { readonly origin?: string; readonly seq?: number } = {},
  ): Promise<DataAnswer> {
    const seq = options.seq ?? ++this.#seq;
    this.send(LinkFrame.DATA, { seq, id, origin: options.origin ?? this.claimed, kind, body });
    for (;;) {
      const f = await this.next();
      if (f === null) return { type: 'closed', code: null };
      if (f.type === LinkFrame.CLOSE) {
        return { type: 'closed', code: (f.body as { code: string | null }).code ?? null };
      }
      const b = f.body as { seq?: unknown; code?: unknown };
      if (b.seq !== seq) continue;
      if (f.type === LinkFrame.ACK) return { type: 'ack' };
      if (f.type === LinkFrame.REJECT) return { type: 'reject', code: String(b.code) };
    }
  }

  /** Reads until CLOSE or the end; the CLOSE code, or null. */
  async closeCode(ms = LINK_WAIT_MS): Promise<string | null> {
    for (;;) {
      const f = await this.next(ms);
      if (f === null) return null;
      if (f.type === LinkFrame.CLOSE) return (f.body as { code: string | null }).code ?? null;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** What reached a {@link RogueListener}. */
export interface RogueTally {
  /** TCP connections accepted. */
  connections: number;
  /** TLS handshakes that completed. */
  handshakes: number;
  /** Link frames received (an OPEN means the target kept talking after TLS). */
  frames: number;
  /** DATA frames among them: objects the target handed to the rogue. */
  data: number;
}

/**
 * A rogue host for a redirected domain (T47): TLS 1.3 with ALPN `impp-s2s/1` and the certificate
 * it is given, answering nothing but reading every frame it is sent.
 */
export class RogueListener {
  readonly tally: RogueTally = { connections: 0, handshakes: 0, frames: 0, data: 0 };
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Starts on 127.0.0.1 with `cert`; stopped after the threat. */
  static async start(ctx: ThreatContext, cert: PemPair): Promise<RogueListener> {
    const server = createServer({
      cert: cert.certPem,
      key: cert.keyPem,
      minVersion: 'TLSv1.3',
      ALPNProtocols: [LINK_ALPN],
      requestCert: false,
    });
    const rogue = new RogueListener(server);
    server.on('connection', (socket: Socket) => {
      rogue.tally.connections += 1;
      rogue.#sockets.add(socket);
      socket.on('close', () => rogue.#sockets.delete(socket));
    });
    server.on('tlsClientError', () => undefined);
    server.on('secureConnection', (socket: TLSSocket) => {
      rogue.tally.handshakes += 1;
      const decoder = new FrameDecoder({ maxFrameBytes: 1024 * 1024 });
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
          for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
            rogue.tally.frames += 1;
            if (f.type === LinkFrame.DATA) rogue.tally.data += 1;
          }
        } catch {
          socket.destroy();
        }
      });
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ctx.defer(() => rogue.close());
    return rogue;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }
}

/**
 * A fixed address the target's static route for a peer domain points at, forwarding each new
 * connection to wherever the suite says now (T47): the honest peer, then a rogue. To the target
 * it is the peer's address answering with another host behind it, as after a spoofed DNS or
 * SRV answer.
 */
export class SwitchableRoute {
  readonly #server: NetServer;
  readonly #sockets = new Set<Socket>();
  #to: { host: string; port: number } | undefined;

  private constructor() {
    this.#server = createNetServer((socket) => {
      this.#forward(socket);
    });
    this.#server.on('error', () => undefined);
  }

  /** Starts on 127.0.0.1 (port 0), forwarding nowhere (connections are closed) until pointed. */
  static async start(): Promise<SwitchableRoute> {
    const route = new SwitchableRoute();
    await new Promise<void>((resolve) => route.#server.listen(0, '127.0.0.1', resolve));
    return route;
  }

  #forward(socket: Socket): void {
    const to = this.#to;
    if (to === undefined) {
      socket.destroy();
      return;
    }
    const upstream = netConnect(to.port, to.host);
    for (const s of [socket, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {
        socket.destroy();
        upstream.destroy();
      });
    }
    socket.pipe(upstream);
    upstream.pipe(socket);
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** New connections go to `to` from now on; open ones are cut (a new answer, a new host). */
  point(to: { readonly host: string; readonly port: number }): void {
    this.#to = { host: to.host, port: to.port };
    for (const s of this.#sockets) s.destroy();
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }
}
