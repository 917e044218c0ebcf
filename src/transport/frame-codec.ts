/**
 * Frames: the unit of the impp transport (docs/protocol.md, "Framing").
 *
 * On a byte stream (TLS over TCP) a frame is a 4-byte big-endian unsigned length L followed by
 * L bytes of payload. Over WebSocket the payload is one binary message and the length is the
 * message's. The payload is exactly one strict CBOR item (see cbor-strict.ts): the array
 * `[type, body]`, where `type` is an unsigned integer below 2^16 and `body` any value of the
 * data model.
 *
 * There is no version or type byte in the prefix: the protocol version is negotiated once in
 * the HELLO/WELCOME exchange and the type lives in the CBOR array, so the prefix stays a plain
 * length. A peer that speaks something else (an HTTP request inside TLS, say) is caught at
 * once, because "GET " read as a length is ~1.2 GB, far above any limit.
 */
import { ImppError } from '../errors.js';
import {
  type CborValue,
  DEFAULT_MAX_CBOR_DEPTH,
  decodeStrictCbor,
  encodeStrictCbor,
} from './cbor-strict.js';

/** Bytes of the length prefix on byte streams. */
export const FRAME_HEADER_BYTES = 4;
/** Largest frame type (types are unsigned 16-bit). */
export const MAX_FRAME_TYPE = 0xffff;
/** No configuration may raise a frame limit above this (16 MiB). */
export const HARD_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** One decoded frame. `type` selects the meaning of `body`. */
export interface Frame {
  readonly type: number;
  readonly body: CborValue;
}

/**
 * An encoded frame: the length prefix and payload in one buffer, ready for a byte stream.
 * `payload` is a view of the same memory without the prefix, for message-based carriers.
 */
export interface EncodedFrame {
  readonly bytes: Buffer;
  readonly payload: Buffer;
}

function isFrameType(value: unknown): value is number {
  return (
    typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_FRAME_TYPE
  );
}

/**
 * Encodes a frame with its length prefix.
 *
 * @example
 * ```ts
 * const { bytes } = encodeFrame({ type: 16, body: { to: 'bob' } }, 65_536);
 * socket.write(bytes);
 * ```
 */
export function encodeFrame(
  frame: Frame,
  maxFrameBytes: number = HARD_MAX_FRAME_BYTES,
): EncodedFrame {
  if (!isFrameType(frame.type)) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'frame.type must be an integer in 0..65535');
  }
  const payload = encodeStrictCbor([frame.type, frame.body], DEFAULT_MAX_CBOR_DEPTH);
  if (payload.length > maxFrameBytes) {
    throw new ImppError(
      'ERR_FRAME_TOO_LARGE',
      `frame payload of ${payload.length} bytes exceeds the limit of ${maxFrameBytes}`,
    );
  }
  const bytes = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  bytes.writeUInt32BE(payload.length, 0);
  bytes.set(payload, FRAME_HEADER_BYTES);
  return { bytes, payload: bytes.subarray(FRAME_HEADER_BYTES) };
}

/**
 * Decodes one frame payload (no length prefix): size bounded first, then strict CBOR, then the
 * `[type, body]` shape. Throws `ERR_FRAME_TOO_LARGE` or `ERR_FRAME_MALFORMED`.
 *
 * @example
 * ```ts
 * ws.on('message', (data) => handle(decodeFramePayload(data as Buffer, 65_536)));
 * ```
 */
export function decodeFramePayload(
  payload: Uint8Array,
  maxFrameBytes: number,
  maxDepth: number = DEFAULT_MAX_CBOR_DEPTH,
): Frame {
  if (payload.length > maxFrameBytes) {
    throw new ImppError(
      'ERR_FRAME_TOO_LARGE',
      `frame of ${payload.length} bytes exceeds the limit of ${maxFrameBytes}`,
    );
  }
  if (payload.length === 0) throw new ImppError('ERR_FRAME_MALFORMED', 'empty frame');
  const value = decodeStrictCbor(payload, maxDepth);
  if (!Array.isArray(value) || value.length !== 2) {
    throw new ImppError('ERR_FRAME_MALFORMED', 'frame must be a CBOR array [type, body]');
  }
  const type: unknown = value[0];
  const body = value[1] as CborValue;
  if (!isFrameType(type)) {
    throw new ImppError('ERR_FRAME_MALFORMED', 'frame type must be an integer in 0..65535');
  }
  return { type, body };
}

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest payload accepted (bytes, without the prefix). Can be raised later. */
  readonly maxFrameBytes: number;
  /** Largest array/map nesting. Default 32. */
  readonly maxDepth?: number;
}

/**
 * Incremental decoder for length-prefixed frames on a byte stream. Accepts chunks cut anywhere;
 * refuses an oversized length as soon as the 4 prefix bytes are in, without waiting for (or
 * keeping) the body. After any error the decoder is poisoned: the stream has lost sync, so
 * every later call throws the same error.
 *
 * Memory: once {@link next} has returned `undefined`, {@link retainedBytes} is at most
 * `4 + maxFrameBytes`. A body that arrives in pieces is copied into one buffer of exactly its
 * announced length, so small leftovers never pin the (larger) buffers they arrived in, and a
 * frame arriving in n pieces costs O(length) copying, not O(n × length).
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder({ maxFrameBytes: 65_536 });
 * socket.on('data', (chunk) => {
 *   decoder.push(chunk);
 *   for (let f = decoder.next(); f !== undefined; f = decoder.next()) handle(f);
 * });
 * ```
 */
export class FrameDecoder {
  /** Received bytes not yet parsed (prefixes, or bodies that arrived whole). */
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The body being assembled, once its prefix is parsed and it did not arrive whole. */
  #body: Buffer | null = null;
  #filled = 0;
  #maxFrameBytes: number;
  readonly #maxDepth: number;
  #failure: ImppError | null = null;

  constructor(options: FrameDecoderOptions) {
    this.#maxFrameBytes = checkMaxFrameBytes(options.maxFrameBytes);
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_CBOR_DEPTH;
  }

  /** Bytes received but not yet returned as frames (a consumed prefix counts). */
  get bufferedBytes(): number {
    return this.#buffered + (this.#body === null ? 0 : FRAME_HEADER_BYTES + this.#filled);
  }

  /** Bytes of memory this decoder holds on to (buffers it keeps, at their full length). */
  get retainedBytes(): number {
    let held = this.#body?.length ?? 0;
    for (const chunk of this.#chunks) held += chunk.buffer.byteLength;
    return held;
  }

  /** Current payload limit. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** Changes the limit for frames whose prefix has not been read yet. */
  set maxFrameBytes(value: number) {
    this.#maxFrameBytes = checkMaxFrameBytes(value);
  }

  /** The error that poisoned this decoder, if any. */
  get failure(): ImppError | null {
    return this.#failure;
  }

  /** Appends received bytes. The chunk must not be modified afterwards. */
  push(chunk: Uint8Array): void {
    if (this.#failure !== null) throw this.#failure;
    let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const body = this.#body;
    if (body !== null) {
      const n = Math.min(rest.length, body.length - this.#filled);
      rest.copy(body, this.#filled, 0, n);
      this.#filled += n;
      rest = rest.subarray(n);
    }
    if (rest.length === 0) return;
    this.#chunks.push(rest);
    this.#buffered += rest.length;
  }

  /** Returns the next complete frame, `undefined` if more bytes are needed, or throws. */
  next(): Frame | undefined {
    if (this.#failure !== null) throw this.#failure;
    const body = this.#body;
    if (body !== null) {
      if (this.#filled < body.length) return undefined;
      this.#body = null;
      this.#filled = 0;
      return this.#decode(body);
    }
    if (this.#buffered < FRAME_HEADER_BYTES) {
      this.#compact();
      return undefined;
    }
    const length = this.#take(FRAME_HEADER_BYTES).readUInt32BE(0);
    if (length > this.#maxFrameBytes) {
      this.#fail(
        new ImppError(
          'ERR_FRAME_TOO_LARGE',
          `frame length ${length} exceeds the limit of ${this.#maxFrameBytes}`,
        ),
      );
    }
    if (length === 0) this.#fail(new ImppError('ERR_FRAME_MALFORMED', 'empty frame'));
    if (this.#buffered >= length) return this.#decode(this.#take(length));
    // The body is incomplete: gather it in one buffer of its exact length.
    // Not from the shared pool: this buffer may live as long as a slow peer wants.
    const assembled = Buffer.allocUnsafeSlow(length);
    this.#filled = this.#buffered;
    this.#take(this.#buffered).copy(assembled, 0);
    this.#body = assembled;
    return undefined;
  }

  #decode(payload: Buffer): Frame {
    try {
      return decodeFramePayload(payload, Number.MAX_SAFE_INTEGER, this.#maxDepth);
    } catch (error) {
      return this.#fail(
        error instanceof ImppError
          ? error
          : new ImppError('ERR_FRAME_MALFORMED', 'frame could not be decoded', { cause: error }),
      );
    }
  }

  /** Copies a leftover partial prefix so it does not pin the chunk it arrived in. */
  #compact(): void {
    if (this.#chunks.length === 0) return;
    const first = this.#chunks[0];
    if (this.#chunks.length === 1 && first !== undefined && first.buffer.byteLength <= 64) return;
    const copy = Buffer.allocUnsafeSlow(this.#buffered);
    this.#take(this.#buffered).copy(copy, 0);
    this.#chunks = [copy];
    this.#buffered = copy.length;
  }

  #fail(error: ImppError): never {
    this.#failure = error;
    this.#chunks = [];
    this.#buffered = 0;
    this.#body = null;
    this.#filled = 0;
    throw error;
  }

  /** Removes and returns the first `n` buffered bytes (`n <= #buffered`). */
  #take(n: number): Buffer {
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) throw new Error('FrameDecoder invariant: buffered count is wrong');
      const part = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, part);
      filled += part;
      if (part === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(part);
    }
    this.#buffered -= n;
    return out;
  }
}

function checkMaxFrameBytes(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > HARD_MAX_FRAME_BYTES) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `maxFrameBytes must be an integer in 1..${HARD_MAX_FRAME_BYTES}`,
    );
  }
  return value;
}
