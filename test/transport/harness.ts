/**
 * Test harness for the transport: a PKI per file, servers on 127.0.0.1 with chosen limits, and a
 * raw TLS client that can send any bytes and read the server's frames.
 */
import { type TLSSocket, connect } from 'node:tls';
import { type TestCert, type TestCa, createLoopbackPki } from '../helpers/tls-fixtures.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import { type CloseBody, FrameType, parseClose } from '../../src/transport/control.js';
import {
  type Frame,
  FrameDecoder,
  HARD_MAX_FRAME_BYTES,
  encodeFrame,
} from '../../src/transport/frame-codec.js';
import type { TransportLimits } from '../../src/transport/limits.js';
import { IMPP_ALPN } from '../../src/transport/carrier.js';
import { TlsTransportServer } from '../../src/transport/tls-server.js';

export interface Pki {
  readonly ca: TestCa;
  readonly server: TestCert;
}

let pki: Promise<Pki> | undefined;
/** One loopback PKI per test file (generated lazily). */
export function loopbackPki(): Promise<Pki> {
  pki ??= createLoopbackPki();
  return pki;
}

/** Starts a TLS transport server on 127.0.0.1:0. */
export async function startTlsServer(
  limits: Partial<TransportLimits> = {},
  extra: { requestClientCert?: boolean } = {},
): Promise<{ server: TlsTransportServer; port: number; ca: string }> {
  const { ca, server: cert } = await loopbackPki();
  const server = new TlsTransportServer({
    key: cert.keyPem,
    cert: cert.certPem,
    limits,
    ...(extra.requestClientCert === undefined
      ? {}
      : { requestClientCert: extra.requestClientCert, ca: ca.certPem }),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port, ca: ca.certPem };
}

/** Resolves with the first value `check` returns that is not undefined, polling events. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** A TLS client that speaks raw bytes, for adversarial tests. */
export class RawTlsClient {
  readonly socket: TLSSocket;
  readonly closed: Promise<void>;
  readonly #decoder = new FrameDecoder({ maxFrameBytes: HARD_MAX_FRAME_BYTES });
  readonly #frames: Frame[] = [];
  #wake: (() => void) | undefined;
  #ended = false;

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.#ended = true;
        this.#wake?.();
        resolve();
      });
    });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#decoder.push(chunk);
        for (let f = this.#decoder.next(); f !== undefined; f = this.#decoder.next()) {
          this.#frames.push(f);
        }
      } catch {
        socket.destroy();
      }
      this.#wake?.();
    });
  }

  static connect(
    port: number,
    ca: string,
    options: { alpn?: string[]; maxVersion?: 'TLSv1.2' | 'TLSv1.3' } = {},
  ): Promise<RawTlsClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        ca,
        servername: 'localhost',
        ALPNProtocols: options.alpn ?? [IMPP_ALPN],
        ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
      });
      socket.once('secureConnect', () => {
        resolve(new RawTlsClient(socket));
      });
      socket.once('error', reject);
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  send(type: number, body: CborValue): void {
    this.write(encodeFrame({ type, body }).bytes);
  }

  /** Sends HELLO and returns the WELCOME body. */
  async hello(versions: number[] = [1], maxFrameBytes = 1024 * 1024): Promise<Frame> {
    this.send(FrameType.HELLO, { versions, maxFrameBytes });
    return this.next();
  }

  /** The next frame from the server; rejects if the connection closes first. */
  async next(timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.#frames.shift();
      if (frame !== undefined) return frame;
      if (this.#ended) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Reads frames until CLOSE (skipping PINGs etc.) and waits for the socket to close. */
  async closeFrame(timeoutMs = 5000): Promise<CloseBody> {
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (frame.type === FrameType.CLOSE) {
        await within(timeoutMs, 'socket close', this.closed);
        return parseClose(frame.body);
      }
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A length prefix for `length` followed by `payload`. */
export function rawFrame(payload: Uint8Array, length = payload.length): Buffer {
  const out = Buffer.alloc(4 + payload.length);
  out.writeUInt32BE(length, 0);
  out.set(payload, 4);
  return out;
}
