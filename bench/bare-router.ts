/**
 * Baseline for bench/transport.ts: a bare Node TLS 1.3 router with no protocol at all. Frames
 * are `[u32 length][u32 to][u32 from][f64 sentAt][payload]`; the router reads `to` and forwards
 * the bytes unchanged. Its figures show what this machine and Node's TLS give before impp adds
 * CBOR, strict decoding, limits and the connection state machine.
 */
import { performance } from 'node:perf_hooks';
import { type TLSSocket, connect, createServer } from 'node:tls';

/** Starts the bare router; returns its port and a close function. */
export async function startBareRouter(
  key: string,
  cert: string,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Map<number, TLSSocket>();
  const server = createServer({ key, cert, minVersion: 'TLSv1.3' }, (socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      while (pending.length - at >= 4) {
        const len = pending.readUInt32BE(at);
        if (pending.length - at < 4 + len) break;
        const to = pending.readUInt32BE(at + 4);
        if (to === 0xffffffff) sockets.set(pending.readUInt32BE(at + 8), socket);
        else sockets.get(to)?.write(pending.subarray(at, at + 4 + len));
        at += 4 + len;
      }
      pending = pending.subarray(at);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets.values()) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A bare client: register as `index`, send routed frames, get a callback per received frame. */
export class BareClient {
  readonly socket: TLSSocket;
  #pending: Buffer = Buffer.alloc(0);

  private constructor(socket: TLSSocket, onFrame: (from: number, sentAt: number) => void) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
      let at = 0;
      while (this.#pending.length - at >= 4) {
        const len = this.#pending.readUInt32BE(at);
        if (this.#pending.length - at < 4 + len) break;
        onFrame(this.#pending.readUInt32BE(at + 8), this.#pending.readDoubleBE(at + 12));
        at += 4 + len;
      }
      this.#pending = this.#pending.subarray(at);
    });
  }

  static connect(
    port: number,
    ca: string,
    index: number,
    onFrame: (from: number, sentAt: number) => void,
  ): Promise<BareClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: 'TLSv1.3' },
        () => {
          const client = new BareClient(socket, onFrame);
          client.send(0xffffffff, index, 0);
          resolve(client);
        },
      );
      socket.once('error', reject);
    });
  }

  send(to: number, from: number, payloadBytes = 100): void {
    const frame = Buffer.allocUnsafe(4 + 16 + payloadBytes);
    frame.writeUInt32BE(16 + payloadBytes, 0);
    frame.writeUInt32BE(to, 4);
    frame.writeUInt32BE(from, 8);
    frame.writeDoubleBE(performance.now(), 12);
    frame.fill(0x61, 20);
    this.socket.write(frame);
  }
}
