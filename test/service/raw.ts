/**
 * A minimal hand-written client of the client protocol for adversarial tests: it speaks the
 * frames directly (docs/protocol.md, "Client protocol"), so tests can send what the SDK never
 * would.
 */
import { authenticate, type ClientSaslTransport, type ServerReply } from '../../src/auth/client.js';
import { scramClient } from '../../src/auth/scram/client.js';
import type { AuthWireFailure } from '../../src/auth/types.js';
import type { CborValue } from '../../src/transport/cbor-strict.js';
import type { Connection, ConnectionCloseInfo } from '../../src/transport/connection.js';
import type { Frame } from '../../src/transport/frame-codec.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { ClientFrame } from '../../src/service/protocol.js';
import { PASSWORD, type Env } from './harness.js';

type Body = { readonly [key: string]: CborValue };

export class RawClient {
  readonly frames: Frame[] = [];
  #waiters: (() => void)[] = [];
  readonly closed: Promise<ConnectionCloseInfo>;
  nonce: Uint8Array | undefined;
  #id = 1;

  constructor(readonly conn: Connection) {
    conn.on('frame', (f) => {
      this.frames.push(f);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => {
      conn.on('close', (info) => {
        resolve(info);
        for (const w of this.#waiters.splice(0)) w();
      });
    });
  }

  static async open(env: Env): Promise<RawClient> {
    const conn = await connectTls({
      host: '127.0.0.1',
      port: env.port,
      ca: env.ca,
      servername: 'localhost',
    });
    return new RawClient(conn);
  }

  /** The next frame of `type` (earlier frames of other types are skipped), within 5 s. */
  async take(type: number): Promise<Body> {
    for (let i = 0; i < 1000; i++) {
      const idx = this.frames.findIndex((f) => f.type === type);
      if (idx >= 0) return this.frames.splice(idx, 1)[0]?.body as Body;
      await this.wait();
    }
    throw new Error('too many frames');
  }

  /** Resolves at the next frame (or close); rejects after 5 s. */
  wait(): Promise<void> {
    if (this.conn.state === 'closed') return Promise.reject(new Error('connection closed'));
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        reject(new Error('no frame within 5 s'));
      }, 5000);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** SCRAM-SHA-256-PLUS as `user`; leaves the session at the binding step. */
  async auth(user: string, password = PASSWORD): Promise<void> {
    const offer = await this.take(ClientFrame.AUTH_OFFER);
    const reply = async (): Promise<ServerReply> => {
      for (;;) {
        const f = await this.#nextAuth();
        const b = f.body as Body;
        if (f.type === ClientFrame.AUTH_CHALLENGE)
          return { type: 'challenge', challenge: b.data as Uint8Array };
        if (f.type === ClientFrame.AUTH_SUCCESS) {
          this.nonce = b.nonce as Uint8Array;
          return {
            type: 'success',
            additionalData: (b.additionalData as Uint8Array | null) ?? null,
          };
        }
        if (f.type === ClientFrame.AUTH_FAILURE)
          return { type: 'failure', failure: b.failure as AuthWireFailure };
      }
    };
    const transport: ClientSaslTransport = {
      start: (mechanism, initial) => {
        this.conn.send(ClientFrame.AUTH_START, { mechanism, initial });
        return reply();
      },
      respond: (data) => {
        this.conn.send(ClientFrame.AUTH_RESPONSE, { data });
        return reply();
      },
    };
    await authenticate(
      transport,
      scramClient({ username: user, password, channelBinding: 'require' }),
      offer.mechanisms as string[],
      { secure: true, tlsVersion: 'TLSv1.3', tlsExporter: this.conn.channelBinding() },
      { requireChannelBinding: true },
    );
  }

  async #nextAuth(): Promise<Frame> {
    for (let i = 0; i < 100; i++) {
      const f = this.frames.find((x) =>
        [ClientFrame.AUTH_CHALLENGE, ClientFrame.AUTH_SUCCESS, ClientFrame.AUTH_FAILURE].includes(
          x.type as 19 | 20 | 21,
        ),
      );
      if (f !== undefined) {
        this.frames.splice(this.frames.indexOf(f), 1);
        return f;
      }
      await this.wait();
    }
    throw new Error('no auth frame');
  }

  /** Sends a request and returns RESULT or ERROR (as `{ error: code }`). */
  async request(type: number, body: Body): Promise<Body> {
    const id = this.#id++;
    this.conn.send(type, { ...body, id });
    for (let i = 0; i < 100; i++) {
      const idx = this.frames.findIndex(
        (f) =>
          (f.type === ClientFrame.RESULT || f.type === ClientFrame.ERROR) &&
          (f.body as Body).id === id,
      );
      if (idx >= 0) {
        const f = this.frames.splice(idx, 1)[0] as Frame;
        const b = f.body as Body;
        return f.type === ClientFrame.ERROR ? { error: b.code as string } : b;
      }
      await this.wait();
    }
    throw new Error('no answer');
  }
}
