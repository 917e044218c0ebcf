/**
 * A malicious relay the suite controls: a TCP proxy in front of the target.
 *
 * Two modes:
 * - `pass`: bytes go through untouched (TLS end to end between client and target); a tap sees
 *   how many bytes flowed. This is the network attacker who cannot read TLS.
 * - `terminate`: the relay is a TLS 1.3 server towards the client with a certificate of the
 *   suite's choosing (a CA the test client may be told to trust: "a proxy with a certificate
 *   the client trusts") and opens its own TLS 1.3 connection to the target. It then sees the
 *   length-prefixed frames (src/transport/frame-codec.ts) in both directions and hands each to a
 *   hook that may pass, drop, replace (bit flips, rewrites such as stripping `-PLUS` from the
 *   mechanism list), hold back (reorder) or inject (replay) frames.
 *
 * The relay never validates what it forwards beyond splitting frames: a length above
 * {@link HARD_MAX_FRAME_BYTES} makes that direction fall back to passing raw bytes, since frame
 * boundaries are lost (the target closes such a connection anyway).
 */
import {
  type AddressInfo,
  type Server,
  type Socket,
  connect as netConnect,
  createServer,
} from 'node:net';
import { type TLSSocket, connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { ImppError } from '../../errors.js';
import type { CborValue } from '../../transport/cbor-strict.js';
import {
  FRAME_HEADER_BYTES,
  HARD_MAX_FRAME_BYTES,
  type Frame,
  decodeFramePayload,
  encodeFrame,
} from '../../transport/frame-codec.js';

/** The ALPN protocol of the client port (src/transport/carrier.ts). */
const IMPP_ALPN = 'impp/1';

/** Which way a frame travels. */
export type RelayDirection = 'to-server' | 'to-client';

/** One frame as the relay saw it. */
export interface RelayFrame {
  readonly direction: RelayDirection;
  /** Index of this frame in its direction on its connection, from 0. */
  readonly index: number;
  /** The payload without the length prefix. */
  readonly payload: Buffer;
  /** The decoded frame, when the payload is one (`undefined` for garbage). */
  readonly frame: Frame | undefined;
}

/**
 * What a hook returns for a frame: `undefined` passes it on unchanged; an array replaces it with
 * zero or more outputs (empty: drop; several: reorder or duplicate). An output is a payload (the
 * relay writes its length prefix) or `{ raw }` bytes written exactly as given (wrong prefixes).
 */
export type RelayOutput = Uint8Array | { readonly raw: Uint8Array };
export type RelayVerdict = undefined | readonly RelayOutput[];
export type RelayHook = (
  frame: RelayFrame,
  connection: RelayConnection,
) => RelayVerdict | Promise<RelayVerdict>;

/** Where the relay connects to. */
export interface RelayUpstream {
  readonly host: string;
  readonly port: number;
  /** CA certificates (PEM) the relay trusts for the target (terminate mode). */
  readonly ca?: string;
  /** TLS server name asked of the target (terminate mode). */
  readonly servername?: string;
}

/** Options of {@link startRelay}. */
export interface RelayOptions {
  readonly upstream: RelayUpstream;
  readonly mode: 'pass' | 'terminate';
  /** The certificate the relay shows the client (terminate mode). */
  readonly identity?: { readonly certPem: string; readonly keyPem: string };
  /** Frame hook for each direction (terminate mode). */
  readonly onFrame?: RelayHook;
  /** Listen address; default 127.0.0.1 and a free port. */
  readonly listenHost?: string;
}

/** One client connection through the relay. */
export class RelayConnection {
  /** Every frame seen, in arrival order (both directions), before any hook changed it. */
  readonly frames: RelayFrame[] = [];
  /** Bytes seen in each direction (pass mode counts too). */
  readonly bytes = { 'to-server': 0, 'to-client': 0 };
  #closed = false;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(
    readonly id: number,
    private readonly client: Socket,
    private readonly server: Socket,
  ) {
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Writes a payload (with its length prefix) or raw bytes in one direction: replay, injection. */
  inject(direction: RelayDirection, output: RelayOutput): void {
    const socket = direction === 'to-server' ? this.server : this.client;
    if (this.#closed || socket.destroyed) return;
    socket.write(encodeOutput(output));
  }

  /** The frames seen in one direction. */
  seen(direction: RelayDirection): RelayFrame[] {
    return this.frames.filter((f) => f.direction === direction);
  }

  /** Tears both sides down. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.client.destroy();
    this.server.destroy();
    this.#resolveClosed();
  }

  get isClosed(): boolean {
    return this.#closed;
  }
}

/** A running relay. */
export interface Relay {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far, in order. */
  readonly connections: readonly RelayConnection[];
  /** Resolves with the next connection accepted (or an already accepted one not yet taken). */
  nextConnection(timeoutMs?: number): Promise<RelayConnection>;
  close(): Promise<void>;
}

function encodeOutput(output: RelayOutput): Buffer {
  if (output instanceof Uint8Array) {
    const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + output.length);
    out.writeUInt32BE(output.length, 0);
    out.set(output, FRAME_HEADER_BYTES);
    return out;
  }
  return Buffer.from(output.raw);
}

/**
 * Splits a byte stream into frames and runs the hook on each, in order (a hook may be async;
 * later frames wait for it so that order is only changed on purpose).
 */
class FramePump {
  #buffer: Buffer = Buffer.alloc(0);
  #raw = false;
  #index = 0;
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly direction: RelayDirection,
    private readonly connection: RelayConnection,
    private readonly out: Socket,
    private readonly hook: RelayHook | undefined,
  ) {}

  push(chunk: Buffer): void {
    if (this.#raw) {
      this.#enqueue(() => {
        this.#write(chunk);
        return Promise.resolve();
      });
      return;
    }
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (this.#buffer.length < FRAME_HEADER_BYTES) return;
      const length = this.#buffer.readUInt32BE(0);
      if (length > HARD_MAX_FRAME_BYTES) {
        // Frame boundaries are lost: forward the rest as it comes.
        this.#raw = true;
        const rest = this.#buffer;
        this.#buffer = Buffer.alloc(0);
        this.#enqueue(() => {
          this.#write(rest);
          return Promise.resolve();
        });
        return;
      }
      if (this.#buffer.length < FRAME_HEADER_BYTES + length) return;
      const payload = Buffer.from(
        this.#buffer.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length),
      );
      this.#buffer = this.#buffer.subarray(FRAME_HEADER_BYTES + length);
      this.#handle(payload);
    }
  }

  #handle(payload: Buffer): void {
    let frame: Frame | undefined;
    try {
      frame = decodeFramePayload(payload, HARD_MAX_FRAME_BYTES);
    } catch {
      frame = undefined;
    }
    const seen: RelayFrame = { direction: this.direction, index: this.#index++, payload, frame };
    this.connection.frames.push(seen);
    this.#enqueue(async () => {
      const verdict = this.hook === undefined ? undefined : await this.hook(seen, this.connection);
      if (verdict === undefined) this.#write(encodeOutput(payload));
      else for (const output of verdict) this.#write(encodeOutput(output));
    });
  }

  #enqueue(step: () => Promise<void>): void {
    this.#chain = this.#chain.then(step).catch(() => {
      // A failing hook is a bug in the threat: end the connection rather than forward blindly.
      this.connection.destroy();
    });
  }

  #write(bytes: Buffer): void {
    if (!this.out.destroyed) this.out.write(bytes);
  }
}

/**
 * Starts a relay; close it after the threat.
 *
 * @example
 * ```ts
 * const relay = await startRelay({
 *   upstream: { host: target.host, port: target.port, ca: target.ca, servername: target.domain },
 *   mode: 'terminate',
 *   identity: await issueServerCert(relayCa, { names: ['localhost', '127.0.0.1'] }),
 *   onFrame: (f) => (f.direction === 'to-client' && f.frame?.type === 16 ? [stripPlus(f.frame)] : undefined),
 * });
 * ```
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  if (options.mode === 'terminate' && options.identity === undefined) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'a terminating relay needs an identity');
  }
  const connections: RelayConnection[] = [];
  const taken = new Set<RelayConnection>();
  const waiters: ((c: RelayConnection) => void)[] = [];
  const sockets = new Set<Socket>();
  let nextId = 0;

  const accepted = (connection: RelayConnection): void => {
    connections.push(connection);
    const waiter = waiters.shift();
    if (waiter !== undefined) {
      taken.add(connection);
      waiter(connection);
    }
  };

  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  };

  const wire = (client: Socket, upstream: Socket, framed: boolean): void => {
    const connection = new RelayConnection(nextId++, client, upstream);
    const toServer = new FramePump('to-server', connection, upstream, options.onFrame);
    const toClient = new FramePump('to-client', connection, client, options.onFrame);
    client.on('data', (chunk: Buffer) => {
      connection.bytes['to-server'] += chunk.length;
      if (framed) toServer.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      connection.bytes['to-client'] += chunk.length;
      if (framed) toClient.push(chunk);
      else client.write(chunk);
    });
    const end = (): void => {
      connection.destroy();
    };
    client.once('close', end);
    upstream.once('close', end);
    accepted(connection);
  };

  let server: Server;
  if (options.mode === 'pass') {
    server = createServer((client) => {
      track(client);
      const upstream = netConnect({ host: options.upstream.host, port: options.upstream.port });
      track(upstream);
      wire(client, upstream, false);
    });
  } else {
    const identity = options.identity as { certPem: string; keyPem: string };
    server = createTlsServer(
      {
        key: identity.keyPem,
        cert: identity.certPem,
        minVersion: 'TLSv1.3',
        ALPNProtocols: [IMPP_ALPN],
      },
      (client: TLSSocket) => {
        track(client);
        client.pause();
        const upstream = tlsConnect({
          host: options.upstream.host,
          port: options.upstream.port,
          ...(options.upstream.ca === undefined ? {} : { ca: options.upstream.ca }),
          ...(options.upstream.servername === undefined
            ? {}
            : { servername: options.upstream.servername }),
          minVersion: 'TLSv1.3',
          ALPNProtocols: [IMPP_ALPN],
        });
        track(upstream);
        upstream.once('secureConnect', () => {
          wire(client, upstream, true);
          client.resume();
        });
        upstream.once('error', () => client.destroy());
        upstream.once('close', () => client.destroy());
      },
    );
    server.on('tlsClientError', () => undefined);
    server.on('connection', (socket: Socket) => {
      track(socket);
    });
  }
  server.on('error', () => undefined);
  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.listenHost ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });

  return {
    host: address.address,
    port: address.port,
    connections,
    nextConnection(timeoutMs = 5_000) {
      const ready = connections.find((c) => !taken.has(c));
      if (ready !== undefined) {
        taken.add(ready);
        return Promise.resolve(ready);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(
            new ImppError('ERR_TIMEOUT', `no connection through the relay in ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const waiter = (c: RelayConnection): void => {
          clearTimeout(timer);
          resolve(c);
        };
        waiters.push(waiter);
      });
    },
    async close() {
      const closing = new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      for (const c of connections) c.destroy();
      for (const s of sockets) s.destroy();
      await closing;
    },
  };
}

// ── Frame surgery helpers for hooks ─────────────────────────────────────────────────────────

/**
 * The payload with one bit flipped (bit `bit` counted from the first payload byte).
 *
 * @example
 * ```ts
 * onFrame: (f) => (f.index === 3 ? [flipBit(f.payload, 17)] : undefined)
 * ```
 */
export function flipBit(payload: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(payload);
  const i = Math.floor(bit / 8) % Math.max(1, out.length);
  if (out.length > 0) out[i] = (out[i] as number) ^ (1 << (bit % 8));
  return out;
}

/**
 * Re-encodes a decoded frame (after changing it) as a payload.
 *
 * @example
 * ```ts
 * const payload = framePayload({ type: 16, body: { mechanisms: ['SCRAM-SHA-256'] } });
 * ```
 */
export function framePayload(frame: Frame): Uint8Array {
  return encodeFrame(frame).payload;
}

/**
 * If `frame` is an AUTH_OFFER (type 16) listing `-PLUS` mechanisms, the same offer without them;
 * otherwise `undefined`. The downgrade of T15.
 *
 * @example
 * ```ts
 * onFrame: (f) => { const s = f.frame && stripPlusFromOffer(f.frame); return s ? [framePayload(s)] : undefined; }
 * ```
 */
export function stripPlusFromOffer(frame: Frame): Frame | undefined {
  if (frame.type !== AUTH_OFFER_TYPE) return undefined;
  const body = frame.body;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  if (body instanceof Uint8Array) return undefined;
  const map = body as { readonly [key: string]: CborValue };
  const mechanisms = map.mechanisms;
  if (!Array.isArray(mechanisms)) return undefined;
  const kept = (mechanisms as readonly CborValue[]).filter(
    (m) => typeof m !== 'string' || !m.endsWith('-PLUS'),
  );
  if (kept.length === mechanisms.length) return undefined;
  return { type: frame.type, body: { ...map, mechanisms: kept } };
}

/** Frame type of AUTH_OFFER (docs/protocol.md, "Client protocol"). */
const AUTH_OFFER_TYPE = 16;
