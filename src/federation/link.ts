/**
 * One link: the TLS 1.3 connection between two domains, used in both directions
 * (docs/protocol.md, "Server-to-server protocol").
 *
 * Life of a link:
 * 1. TLS 1.3 with ALPN `impp-s2s/1` (peer-tls.ts).
 * 2. Opening: OPEN (initiator) → ACCEPT (responder) → PROOF (initiator, only if the responder
 *    wants the domain key) → READY (responder). Each side proves its domain the way the other
 *    side's trust configuration says (peerTrustFor): the TLS certificate, or a domain-key
 *    signature over this connection's exporter (proof.ts). Before READY, any other frame, a
 *    proof nobody asked for, or a second OPEN closes the link.
 * 3. Open: DATA frames in both directions, each answered by ACK or REJECT (hop by hop). A
 *    sender has at most `window` frames and `maxInFlightBytes` bytes unanswered, so a peer that
 *    stops reading costs a bounded amount of memory, and it is closed after `ackTimeoutMs`
 *    without an answer.
 *
 * The receiver checks each DATA frame: its sequence number is exactly the next one, its origin is
 * the authenticated peer (else REJECT and an audit event naming the peer), and its id has not been
 * delivered before (else ACK without delivering). Delivered objects are stamped with the domain
 * they arrived from.
 */
import type { TLSSocket } from 'node:tls';
import type { SecretBytes } from '../crypto/index.js';
import { type ImppErrorCode, ImppError, isImppError } from '../errors.js';
import type { DomainTrustConfig, PeerProof } from '../trust/config.js';
import { peerTrustFor } from '../trust/config.js';
import { type Carrier, TlsSocketCarrier, tlsExporter } from '../transport/carrier.js';
import type { CborValue } from '../transport/cbor-strict.js';
import { Emitter } from '../transport/emitter.js';
import { type Frame, encodeFrame } from '../transport/frame-codec.js';
import type { InboundDedup } from './dedup.js';
import { ALL_FEDERATION_DEFENCES, type FederationDefences } from './defences.js';
import { type LinkTlsCredentials, checkPeerCertificate } from './peer-tls.js';
import { type ProofContext, signDomainProof, verifyDomainProof } from './proof.js';
import {
  type DataBody,
  LINK_VERSIONS,
  LinkFrameType,
  OBJECT_ID_BYTES,
  MAX_OBJECT_KIND,
  MAX_LINK_MESSAGE,
  type ProofMethod,
  parseAccept,
  parseAck,
  parseData,
  parseEmpty,
  parseLinkClose,
  parseOpen,
  parseProof,
  parseReject,
} from './wire.js';

/** Limits of one link. Sizes in bytes, durations in milliseconds. */
export interface LinkLimits {
  /** From TCP accept (or connect) until READY. */
  readonly preAuthTimeoutMs: number;
  /** Largest frame accepted before READY (OPEN, ACCEPT and PROOF are small). */
  readonly preAuthMaxFrameBytes: number;
  /** Largest frame accepted once open; announced to the peer. */
  readonly maxFrameBytes: number;
  /** DATA frames the peer may have unanswered towards us; announced to the peer. */
  readonly window: number;
  /** Bytes of our own DATA frames unanswered by the peer. */
  readonly maxInFlightBytes: number;
  /** Time without any ACK/REJECT while DATA is unanswered, after which the link is closed. */
  readonly ackTimeoutMs: number;
  /** Bytes queued in this process for the socket above which the peer is a slow consumer. */
  readonly maxOutboundBytes: number;
  /** Silence after which we PING. */
  readonly pingIntervalMs: number;
  /** Silence after which the link is closed. */
  readonly idleTimeoutMs: number;
  /**
   * Received objects whose delivery may run at once. `deliver` is always called in sequence
   * order, each call after the previous one returned (its synchronous part ran) and, with the
   * default 1, after it resolved. More than 1 lets a store group-commit the deliveries of one
   * window (one sync for many objects); use it only with a `deliver` that submits its writes
   * synchronously, in call order (e.g. StoreDedup.atomicDeliver, the SQLite repositories).
   */
  readonly deliverPipeline: number;
}

/**
 * Defaults. A frame of 256 KiB + 1 KiB fits the largest sealed object the service accepts
 * (256 KiB) with the DATA fields around it (seq, id, origin, kind: well under 1 KiB).
 */
export const DEFAULT_LINK_LIMITS: LinkLimits = Object.freeze({
  preAuthTimeoutMs: 10_000,
  preAuthMaxFrameBytes: 4096,
  maxFrameBytes: 257 * 1024,
  window: 256,
  maxInFlightBytes: 2 * 1024 * 1024,
  ackTimeoutMs: 30_000,
  maxOutboundBytes: 4 * 1024 * 1024,
  pingIntervalMs: 30_000,
  idleTimeoutMs: 90_000,
  deliverPipeline: 1,
});

/** Who this domain is on its links. */
export interface LocalDomain {
  /** Our domain, normalized. */
  readonly domain: string;
  /** Presented on every link, as server and as client. */
  readonly tls: LinkTlsCredentials;
  /** The domain key (Ed25519), for peers that pinned its public half. */
  readonly domainKey?: SecretBytes;
}

/** An object that arrived over a link. */
export interface InboundObject {
  /** The authenticated peer domain the object arrived from (the stamp). */
  readonly arrivedFrom: string;
  readonly id: Uint8Array;
  readonly kind: number;
  readonly body: CborValue;
}

/** An object to send; its origin is always our own domain. */
export interface OutboundObject {
  /** 16 bytes, unique among the objects this domain sends. */
  readonly id: Uint8Array;
  readonly kind: number;
  readonly body: CborValue;
}

/** Security-relevant events of a link, for the audit log. Never holds key material. */
export interface FederationAuditEvent {
  readonly type:
    | 'federation.link-open'
    | 'federation.peer-refused'
    | 'federation.proof-failed'
    | 'federation.origin-refused'
    | 'federation.protocol-violation';
  /** The peer's domain as authenticated, or as claimed before authentication (then `claimed`). */
  readonly peer: string | null;
  /** True when `peer` is only what the other side claimed. */
  readonly claimed: boolean;
  /** For `origin-refused`: the origin the frame claimed. */
  readonly claimedOrigin?: string;
  readonly reason: string;
  readonly remoteAddress: string | null;
}

/** Why a link closed. */
export interface LinkCloseInfo {
  readonly code: ImppErrorCode | null;
  readonly message: string;
  readonly by: 'local' | 'peer' | 'network';
}

/** Events of a link. */
export interface LinkEvents {
  [event: string]: (...args: never[]) => void;
  /** Both sides are authenticated. */
  open: () => void;
  /** There is room again in the send window. */
  drain: () => void;
  closed: (info: LinkCloseInfo) => void;
  audit: (event: FederationAuditEvent) => void;
}

/** Everything a link needs from its endpoint. */
export interface LinkSetup {
  readonly socket: TLSSocket;
  readonly role: 'initiator' | 'responder';
  /** The domain the initiator calls (initiator only). */
  readonly peerDomain?: string;
  readonly local: LocalDomain;
  readonly trust: DomainTrustConfig;
  readonly limits: LinkLimits;
  readonly dedup: InboundDedup;
  /**
   * DATA kinds delivered without the duplicate filter (neither claimed nor recorded): objects
   * that are answered rather than stored, whose repeat is harmless. Default none.
   */
  readonly volatileKinds?: ReadonlySet<number>;
  /** Test-only: defences switched off (./defences.ts); default all on. */
  readonly defences?: FederationDefences;
  /**
   * Receives each new object. The link answers ACK when the returned promise resolves and REJECT
   * (and forgets the id, so a retry is delivered) when it rejects.
   */
  readonly deliver: (object: InboundObject) => Promise<void> | void;
}

/** The filter of volatile kinds: every object is new, nothing is remembered. */
const NO_FILTER: InboundDedup = {
  claim: () => true,
  release: () => undefined,
};

type State = 'await-open' | 'await-accept' | 'await-proof' | 'await-ready' | 'open' | 'closed';

interface InFlight {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: ImppError) => void;
}

function methodOf(proof: PeerProof): ProofMethod {
  return proof.type === 'pinned-key' ? 'key' : 'certificate';
}

/**
 * A link between this domain and one peer domain. Created by the endpoint (endpoint.ts).
 *
 * @example
 * ```ts
 * link.on('open', () => void link.send({ id, kind: 1, body: sealedBytes }));
 * ```
 */
export class Link extends Emitter<LinkEvents> {
  readonly role: 'initiator' | 'responder';
  readonly #setup: LinkSetup;
  readonly #carrier: Carrier;
  #state: State;
  #peer: string | null;
  #peerProof: PeerProof | null = null;
  #version = 0;
  #exporter: Uint8Array | null = null;
  // Sending.
  #peerWindow = 1;
  #peerMaxFrameBytes = 4096;
  #nextSeq = 1;
  readonly #inFlight = new Map<number, InFlight>();
  #inFlightBytes = 0;
  #ackTimer: NodeJS.Timeout | undefined;
  // Receiving.
  #expectSeq = 1;
  #unanswered = 0;
  /** Resolves when the previous object's delivery has started (or finished, see below). */
  #turn: Promise<void> = Promise.resolve();
  #delivering = 0;
  /** The one object (the next in turn) waiting for a free delivery slot. */
  #slotFree: (() => void) | undefined;
  // Timers.
  readonly #preAuthTimer: NodeJS.Timeout;
  #pingTimer: NodeJS.Timeout | undefined;
  #lastHeard = Date.now();
  #lastPing = 0;
  #closeInfo: LinkCloseInfo | null = null;

  get #defences(): FederationDefences {
    return this.#setup.defences ?? ALL_FEDERATION_DEFENCES;
  }

  constructor(setup: LinkSetup) {
    super();
    this.#setup = setup;
    this.role = setup.role;
    this.#peer = setup.peerDomain ?? null;
    this.#state = setup.role === 'initiator' ? 'await-accept' : 'await-open';
    this.#carrier = new TlsSocketCarrier(setup.socket, setup.limits.preAuthMaxFrameBytes);
    this.#preAuthTimer = setTimeout(() => {
      this.close('ERR_TIMEOUT', 'link not authenticated in time');
    }, setup.limits.preAuthTimeoutMs);
    this.#carrier.start({
      frame: (frame) => {
        this.#onFrame(frame);
      },
      protocolError: (error) => {
        this.#violation(error.message);
        this.close(error.code, error.message);
      },
      drain: () => undefined,
      closed: () => {
        this.#finish({ code: 'ERR_CONNECTION_CLOSED', message: 'connection lost', by: 'network' });
      },
    });
    // On the next microtask, so that whoever created the link has attached its listeners and
    // sees every audit event and the close, should the opening fail at once.
    if (setup.role === 'initiator') {
      queueMicrotask(() => {
        if (this.#state !== 'closed') this.#sendOpen();
      });
    }
  }

  /** The peer domain: authenticated once open; before that, the one called or claimed. */
  get peer(): string | null {
    return this.#peer;
  }

  /** True once both sides are authenticated, until closed. */
  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /** The negotiated link version (0 before open). */
  get version(): number {
    return this.#version;
  }

  /** True if {@link send} would accept an object now (the window has room). */
  get writable(): boolean {
    return this.#hasRoom();
  }

  #hasRoom(): boolean {
    return (
      this.#state === 'open' &&
      this.#inFlight.size < this.#peerWindow &&
      this.#inFlightBytes < this.#setup.limits.maxInFlightBytes
    );
  }

  /** Own DATA unanswered by the peer: frames and bytes. */
  get inFlight(): { readonly frames: number; readonly bytes: number } {
    return { frames: this.#inFlight.size, bytes: this.#inFlightBytes };
  }

  /** Bytes queued in this process for the socket. */
  get queuedBytes(): number {
    return this.#carrier.queuedBytes();
  }

  /** Why the link closed, once it has. */
  get closeInfo(): LinkCloseInfo | null {
    return this.#closeInfo;
  }

  /**
   * Sends one object; resolves when the peer acknowledged it (stored or already had it), rejects
   * with the peer's REJECT code, `ERR_CONNECTION_CLOSED` if the link went down first, or at once
   * with `ERR_SLOW_CONSUMER` when the window is full (wait for `drain`): the link never queues.
   */
  send(object: OutboundObject): Promise<void> {
    if (this.#state !== 'open') {
      return Promise.reject(new ImppError('ERR_CONNECTION_CLOSED', 'link is not open'));
    }
    if (!(object.id instanceof Uint8Array) || object.id.length !== OBJECT_ID_BYTES) {
      return Promise.reject(
        new ImppError('ERR_INVALID_ARGUMENT', `object.id must be ${OBJECT_ID_BYTES} bytes`),
      );
    }
    if (!Number.isInteger(object.kind) || object.kind < 0 || object.kind > MAX_OBJECT_KIND) {
      return Promise.reject(
        new ImppError('ERR_INVALID_ARGUMENT', `object.kind must be in 0..${MAX_OBJECT_KIND}`),
      );
    }
    if (!this.writable) {
      return Promise.reject(
        new ImppError('ERR_SLOW_CONSUMER', 'the link window is full; wait for "drain"'),
      );
    }
    const seq = this.#nextSeq;
    const body: DataBody = {
      seq,
      id: object.id,
      origin: this.#setup.local.domain,
      kind: object.kind,
      body: object.body,
    };
    let encoded;
    try {
      encoded = encodeFrame(
        { type: LinkFrameType.DATA, body: body as unknown as CborValue },
        this.#peerMaxFrameBytes,
      );
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    this.#nextSeq += 1;
    return new Promise<void>((resolve, reject) => {
      this.#inFlight.set(seq, { bytes: encoded.bytes.length, resolve, reject });
      this.#inFlightBytes += encoded.bytes.length;
      if (this.#ackTimer === undefined) this.#armAckTimer();
      this.#carrier.write(encoded);
      this.#checkOutbound();
    });
  }

  /** Closes the link, telling the peer why (`code` null for an ordinary goodbye). */
  close(code: ImppErrorCode | null = null, message = ''): void {
    if (this.#state === 'closed') return;
    const text = message.slice(0, MAX_LINK_MESSAGE);
    try {
      this.#carrier.write(
        encodeFrame({ type: LinkFrameType.CLOSE, body: { code, message: text } }),
      );
    } catch {
      // The socket may already be gone; closing anyway.
    }
    this.#carrier.end(undefined);
    const destroy = setTimeout(() => {
      this.#carrier.destroy();
    }, 2000);
    destroy.unref();
    this.#finish({ code, message: text, by: 'local' });
  }

  // -- frames -----------------------------------------------------------------------------

  #write(type: number, body: CborValue): void {
    this.#carrier.write(encodeFrame({ type, body }));
    this.#checkOutbound();
  }

  #checkOutbound(): void {
    if (
      this.#state !== 'closed' &&
      this.#carrier.queuedBytes() > this.#setup.limits.maxOutboundBytes
    ) {
      this.close('ERR_SLOW_CONSUMER', 'peer does not read');
    }
  }

  #onFrame(frame: Frame): void {
    if (this.#state === 'closed') return;
    this.#lastHeard = Date.now();
    try {
      if (frame.type === LinkFrameType.CLOSE) {
        const info = parseLinkClose(frame.body);
        this.#carrier.end(undefined);
        this.#finish({ ...info, by: 'peer' });
        return;
      }
      switch (this.#state) {
        case 'await-open':
          this.#expect(frame, LinkFrameType.OPEN);
          this.#onOpen(frame.body);
          return;
        case 'await-accept':
          this.#expect(frame, LinkFrameType.ACCEPT);
          this.#onAccept(frame.body);
          return;
        case 'await-proof':
          this.#expect(frame, LinkFrameType.PROOF);
          this.#onProof(frame.body);
          return;
        case 'await-ready':
          this.#expect(frame, LinkFrameType.READY);
          parseEmpty(frame.body, 'READY');
          this.#becomeOpen();
          return;
        case 'open':
          this.#onOpenFrame(frame);
          return;
      }
    } catch (error) {
      const e = isImppError(error)
        ? error
        : new ImppError('ERR_PROTOCOL', 'link frame could not be handled', { cause: error });
      if (e.code === 'ERR_PROTOCOL') this.#violation(e.message);
      this.close(e.code, e.message);
    }
  }

  #expect(frame: Frame, type: number): void {
    if (frame.type !== type) {
      // Before READY only the opening exchange is accepted: a proof nobody asked for, DATA,
      // PING or a repeated OPEN all end the link here.
      throw new ImppError('ERR_PROTOCOL', `unexpected frame type ${frame.type} while opening`);
    }
  }

  #context(): ProofContext {
    const exporter = (this.#exporter ??= tlsExporter(this.#setup.socket));
    const us = this.#setup.local.domain;
    const peer = this.#peer ?? '';
    return this.role === 'initiator'
      ? { initiator: us, responder: peer, exporter }
      : { initiator: peer, responder: us, exporter };
  }

  #ourProof(role: 'initiator' | 'responder'): Uint8Array {
    const key = this.#setup.local.domainKey;
    if (key === undefined) {
      throw new ImppError(
        'ERR_AUTH_MECHANISM_UNAVAILABLE',
        'peer wants a domain key we do not have',
      );
    }
    return signDomainProof(key, role, this.#context());
  }

  // Initiator --------------------------------------------------------------------------------

  #sendOpen(): void {
    const peer = this.#peer;
    if (peer === null) {
      this.close('ERR_INVALID_ARGUMENT', 'initiator needs a peer domain');
      return;
    }
    const trust = peerTrustFor(this.#setup.trust, peer);
    if (!trust.federated) {
      this.close('ERR_NOT_AUTHORIZED', `not federated with ${peer} (${trust.reason})`);
      return;
    }
    this.#peerProof = trust.proof;
    if (trust.proof.type !== 'pinned-key') {
      // The handshake already checked the chain against this peer's anchors; this re-checks
      // name and anchors with the same code the responder uses.
      const verdict = checkPeerCertificate(
        this.#setup.socket,
        peer,
        trust.proof,
        this.#defences.nameCheck,
      );
      if (!verdict.ok) {
        this.#refuse('federation.proof-failed', peer, false, verdict.reason, 'ERR_AUTH_FAILED');
        return;
      }
    }
    this.#write(LinkFrameType.OPEN, {
      versions: [...LINK_VERSIONS],
      from: this.#setup.local.domain,
      to: peer,
      want: methodOf(trust.proof),
      window: this.#setup.limits.window,
      maxFrameBytes: this.#setup.limits.maxFrameBytes,
    });
  }

  #onAccept(body: CborValue): void {
    const accept = parseAccept(body);
    const peer = this.#peer ?? '';
    if (!LINK_VERSIONS.includes(accept.version)) {
      throw new ImppError('ERR_VERSION_UNSUPPORTED', 'peer chose a link version we did not offer');
    }
    const proof = this.#peerProof;
    if (proof?.type === 'pinned-key') {
      if (
        accept.proof === null ||
        (this.#defences.proofCheck &&
          !verifyDomainProof(proof.publicKey, 'responder', this.#context(), accept.proof))
      ) {
        this.#refuse(
          'federation.proof-failed',
          peer,
          false,
          'domain-key proof does not verify',
          'ERR_AUTH_FAILED',
        );
        return;
      }
    } else if (accept.proof !== null) {
      throw new ImppError('ERR_PROTOCOL', 'ACCEPT carries a proof that was not asked for');
    }
    this.#version = accept.version;
    this.#peerWindow = accept.window;
    this.#peerMaxFrameBytes = accept.maxFrameBytes;
    if (accept.want === 'key')
      this.#write(LinkFrameType.PROOF, { proof: this.#ourProof('initiator') });
    this.#state = 'await-ready';
  }

  // Responder --------------------------------------------------------------------------------

  #onOpen(body: CborValue): void {
    const open = parseOpen(body);
    this.#peer = open.from;
    const local = this.#setup.local.domain;
    if (open.to !== local) {
      this.#refuse(
        'federation.peer-refused',
        open.from,
        true,
        'asked for a domain not served here',
        'ERR_DOMAIN_NOT_SERVED',
      );
      return;
    }
    let version = 0;
    for (const v of open.versions) if (LINK_VERSIONS.includes(v) && v > version) version = v;
    if (version === 0) {
      throw new ImppError(
        'ERR_VERSION_UNSUPPORTED',
        `link versions supported: ${LINK_VERSIONS.join(', ')}`,
      );
    }
    const trust = peerTrustFor(this.#setup.trust, open.from);
    if (!trust.federated) {
      this.#refuse(
        'federation.peer-refused',
        open.from,
        true,
        `not federated (${trust.reason})`,
        'ERR_NOT_AUTHORIZED',
      );
      return;
    }
    this.#peerProof = trust.proof;
    if (trust.proof.type !== 'pinned-key') {
      const verdict = checkPeerCertificate(
        this.#setup.socket,
        open.from,
        trust.proof,
        this.#defences.nameCheck,
      );
      if (!verdict.ok) {
        this.#refuse('federation.proof-failed', open.from, true, verdict.reason, 'ERR_AUTH_FAILED');
        return;
      }
    }
    this.#version = version;
    this.#peerWindow = open.window;
    this.#peerMaxFrameBytes = open.maxFrameBytes;
    const want = methodOf(trust.proof);
    this.#write(LinkFrameType.ACCEPT, {
      version,
      want,
      window: this.#setup.limits.window,
      maxFrameBytes: this.#setup.limits.maxFrameBytes,
      ...(open.want === 'key' ? { proof: this.#ourProof('responder') } : {}),
    });
    if (want === 'key') {
      this.#state = 'await-proof';
      return;
    }
    this.#write(LinkFrameType.READY, {});
    this.#becomeOpen();
  }

  #onProof(body: CborValue): void {
    const { proof } = parseProof(body);
    const pinned = this.#peerProof;
    const peer = this.#peer ?? '';
    if (
      pinned?.type !== 'pinned-key' ||
      (this.#defences.proofCheck &&
        !verifyDomainProof(pinned.publicKey, 'initiator', this.#context(), proof))
    ) {
      this.#refuse(
        'federation.proof-failed',
        peer,
        true,
        'domain-key proof does not verify',
        'ERR_AUTH_FAILED',
      );
      return;
    }
    this.#write(LinkFrameType.READY, {});
    this.#becomeOpen();
  }

  #refuse(
    type: FederationAuditEvent['type'],
    peer: string,
    claimed: boolean,
    reason: string,
    code: ImppErrorCode,
  ): void {
    this.#audit({ type, peer, claimed, reason });
    this.close(code, reason);
  }

  #audit(event: Omit<FederationAuditEvent, 'remoteAddress'>): void {
    this.emit('audit', { ...event, remoteAddress: this.#setup.socket.remoteAddress ?? null });
  }

  #violation(reason: string): void {
    this.#audit({
      type: 'federation.protocol-violation',
      peer: this.#peer,
      claimed: this.#state !== 'open',
      reason,
    });
  }

  #becomeOpen(): void {
    clearTimeout(this.#preAuthTimer);
    this.#state = 'open';
    this.#carrier.setMaxInboundFrameBytes(this.#setup.limits.maxFrameBytes);
    this.#pingTimer = setInterval(
      () => {
        this.#tick();
      },
      Math.max(50, Math.floor(this.#setup.limits.pingIntervalMs / 2)),
    );
    this.#pingTimer.unref();
    this.#audit({
      type: 'federation.link-open',
      peer: this.#peer,
      claimed: false,
      reason: `proved by ${this.#peerProof === null ? 'unknown' : methodOf(this.#peerProof)}`,
    });
    this.emit('open');
  }

  #tick(): void {
    const silent = Date.now() - this.#lastHeard;
    if (silent >= this.#setup.limits.idleTimeoutMs) this.close('ERR_TIMEOUT', 'link idle');
    else if (
      silent >= this.#setup.limits.pingIntervalMs &&
      Date.now() - this.#lastPing >= this.#setup.limits.pingIntervalMs
    ) {
      // One PING per interval of silence, not one per tick.
      this.#lastPing = Date.now();
      this.#write(LinkFrameType.PING, {});
    }
  }

  // Open -------------------------------------------------------------------------------------

  #onOpenFrame(frame: Frame): void {
    switch (frame.type) {
      case LinkFrameType.DATA:
        this.#onData(parseData(frame.body));
        return;
      case LinkFrameType.ACK:
        this.#answered(parseAck(frame.body).seq, null);
        return;
      case LinkFrameType.REJECT: {
        const r = parseReject(frame.body);
        this.#answered(r.seq, new ImppError(r.code, `peer refused the object: ${r.message}`));
        return;
      }
      case LinkFrameType.PING:
        parseEmpty(frame.body, 'PING');
        this.#write(LinkFrameType.PONG, {});
        return;
      case LinkFrameType.PONG:
        parseEmpty(frame.body, 'PONG');
        return;
      default:
        throw new ImppError('ERR_PROTOCOL', `unknown link frame type ${frame.type}`);
    }
  }

  #armAckTimer(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = setTimeout(() => {
      this.close('ERR_TIMEOUT', 'peer stopped answering DATA');
    }, this.#setup.limits.ackTimeoutMs);
    this.#ackTimer.unref();
  }

  #answered(seq: number, error: ImppError | null): void {
    const entry = this.#inFlight.get(seq);
    if (entry === undefined)
      throw new ImppError('ERR_PROTOCOL', 'answer for a frame not in flight');
    const wasFull = !this.#hasRoom();
    this.#inFlight.delete(seq);
    this.#inFlightBytes -= entry.bytes;
    if (this.#inFlight.size === 0) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = undefined;
    } else {
      this.#armAckTimer();
    }
    if (error === null) entry.resolve();
    else entry.reject(error);
    if (wasFull && this.#hasRoom()) this.emit('drain');
  }

  #onData(data: DataBody): void {
    if (data.seq !== this.#expectSeq) {
      throw new ImppError('ERR_PROTOCOL', `DATA out of sequence (expected ${this.#expectSeq})`);
    }
    this.#expectSeq += 1;
    if (this.#unanswered >= this.#setup.limits.window) {
      throw new ImppError('ERR_PROTOCOL', 'peer exceeded the announced window');
    }
    this.#unanswered += 1;
    // Objects are handled in sequence order: each waits for its turn, which the previous one
    // passes on when its delivery has started (deliverPipeline > 1) or finished (1). The window
    // bounds how many wait here.
    const turn = this.#turn;
    let pass!: () => void;
    this.#turn = new Promise<void>((resolve) => {
      pass = resolve;
    });
    this.#handleData(data, turn, pass).catch((error: unknown) => {
      // Never an unhandled rejection (that would end the process): a bug here ends this link.
      this.close('ERR_PROTOCOL', error instanceof Error ? error.message : 'link failure');
    });
  }

  async #handleData(data: DataBody, turn: Promise<void>, pass: () => void): Promise<void> {
    await turn;
    const asked = this.#setup.limits.deliverPipeline;
    const limit = Number.isSafeInteger(asked) && asked > 1 ? asked : 1;
    while (this.#delivering >= limit) {
      await new Promise<void>((resolve) => {
        this.#slotFree = resolve;
      });
    }
    this.#delivering += 1;
    try {
      await this.#handleOne(data, pass);
    } finally {
      pass();
      this.#delivering -= 1;
      const free = this.#slotFree;
      this.#slotFree = undefined;
      free?.();
    }
  }

  async #handleOne(data: DataBody, started: () => void): Promise<void> {
    const peer = this.#peer ?? '';
    let answer: { type: number; body: CborValue };
    if (this.#defences.originCheck && data.origin !== peer) {
      // A server speaks only for its own domain (T45).
      this.#audit({
        type: 'federation.origin-refused',
        peer,
        claimed: false,
        claimedOrigin: data.origin,
        reason: 'DATA claims an origin other than the authenticated peer',
      });
      started();
      answer = {
        type: LinkFrameType.REJECT,
        body: {
          seq: data.seq,
          code: 'ERR_NOT_AUTHORIZED',
          message: 'origin is not the authenticated peer',
        },
      };
    } else {
      answer = await this.#deliver(peer, data, started);
    }
    this.#unanswered -= 1;
    if (this.#state === 'open') this.#write(answer.type, answer.body);
  }

  async #deliver(
    peer: string,
    data: DataBody,
    started: () => void,
  ): Promise<{ type: number; body: CborValue }> {
    const { deliver } = this.#setup;
    const dedup =
      this.#setup.volatileKinds?.has(data.kind) === true || !this.#defences.duplicateFilter
        ? NO_FILTER
        : this.#setup.dedup;
    try {
      if (!(await dedup.claim(peer, data.id))) {
        started();
        return { type: LinkFrameType.ACK, body: { seq: data.seq } };
      }
    } catch (error) {
      started();
      return this.#rejectFor(data.seq, error);
    }
    try {
      let delivery: Promise<void> | void;
      try {
        delivery = deliver({ arrivedFrom: peer, id: data.id, kind: data.kind, body: data.body });
      } finally {
        started();
      }
      await delivery;
    } catch (error) {
      try {
        await dedup.release(peer, data.id);
      } catch {
        // The id stays claimed; the object is then lost only if the sender's retry is refused,
        // which the store-backed dedup (same transaction as delivery) will make impossible.
      }
      return this.#rejectFor(data.seq, error);
    }
    try {
      // Recorded only now that delivery is durable: a crash before this line makes the peer's
      // retry deliver again (at least once) instead of dropping an object never delivered.
      await dedup.confirm?.(peer, data.id);
    } catch {
      // Delivered: ACK all the same. The cost of a failed record is a possible duplicate later.
    }
    return { type: LinkFrameType.ACK, body: { seq: data.seq } };
  }

  #rejectFor(seq: number, error: unknown): { type: number; body: CborValue } {
    const code: ImppErrorCode = isImppError(error) ? error.code : 'ERR_STORAGE';
    return { type: LinkFrameType.REJECT, body: { seq, code, message: 'not delivered' } };
  }

  #finish(info: LinkCloseInfo): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeInfo = info;
    clearTimeout(this.#preAuthTimer);
    clearTimeout(this.#ackTimer);
    clearInterval(this.#pingTimer);
    const error = new ImppError('ERR_CONNECTION_CLOSED', 'link closed before the peer answered');
    for (const entry of this.#inFlight.values()) entry.reject(error);
    this.#inFlight.clear();
    this.#inFlightBytes = 0;
    this.emit('closed', info);
  }
}
