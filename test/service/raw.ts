/**
 * The threat suite's protocol-level client (src/threats/raw.ts) for the service tests, in the
 * shape those tests read best: opens on the harness's server, logs in with the harness's password
 * by default, and answers a request with its RESULT body or `{ error: code }`.
 */
import type { SigningKeyPair } from '../../src/crypto/index.js';
import { RawClient as ThreatRawClient, type RawBody } from '../../src/threats/raw.js';
import type { Connection, ConnectionCloseInfo } from '../../src/transport/connection.js';
import type { Frame } from '../../src/transport/frame-codec.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { PASSWORD, type Env } from './harness.js';

export type Body = RawBody;

export class RawClient {
  readonly #raw: ThreatRawClient;

  constructor(conn: Connection) {
    this.#raw = new ThreatRawClient(conn);
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

  get conn(): Connection {
    return this.#raw.conn;
  }

  get frames(): Frame[] {
    return this.#raw.frames;
  }

  get closed(): Promise<ConnectionCloseInfo> {
    return this.#raw.closed;
  }

  /** The server's binding nonce, from AUTH_SUCCESS. */
  get nonce(): Uint8Array | undefined {
    return this.#raw.nonce;
  }

  set nonce(value: Uint8Array | undefined) {
    this.#raw.nonce = value;
  }

  /** SCRAM-SHA-256-PLUS as `user`; leaves the session at the binding step. */
  auth(user: string, password = PASSWORD): Promise<void> {
    return this.#raw.auth(user, password);
  }

  /** Binds `deviceId` with `identity` (a fresh key unless given). */
  bind(deviceId: string, identity?: SigningKeyPair): Promise<Body> {
    return this.#raw.bind(deviceId, identity);
  }

  take(type: number, ms?: number): Promise<Body> {
    return this.#raw.take(type, ms);
  }

  wait(ms?: number): Promise<void> {
    return this.#raw.wait(ms);
  }

  /** Sends a request and returns its RESULT body, or `{ error: code }` for an ERROR answer. */
  async request(type: number, body: Body, ms?: number): Promise<Body> {
    const answer = await this.#raw.request(type, body, ms);
    return answer.ok ? answer.body : { error: answer.code };
  }

  /** Closes the connection (idempotent) and waits until it is. */
  async close(): Promise<void> {
    this.#raw.close();
    await this.#raw.closed;
  }
}
