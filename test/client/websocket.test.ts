/**
 * The SDK over WebSocket on TLS 1.3 (`transport: 'websocket'`): a full login with
 * SCRAM-SHA-256-PLUS bound to the exporter of the TLS connection under the WebSocket, device
 * binding and registration, and a message exchange with a TLS client, against the real server
 * on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedMessage } from '../../src/client/client.js';
import { isImppError } from '../../src/errors.js';
import { DOMAIN, startEnv, type Env } from '../service/harness.js';

let env: Env;
let wsPort: number;

beforeAll(async () => {
  env = await startEnv();
  wsPort = (await env.server.listenWebSocket({ host: '127.0.0.1', port: 0 })).port;
}, 20_000);

afterAll(async () => {
  await env.close();
});

function next(client: { once(e: 'message', f: (m: ReceivedMessage) => void): unknown }) {
  return new Promise<ReceivedMessage>((resolve) => {
    client.once('message', resolve);
  });
}

describe('ImppClient over wss', () => {
  it('logs in with SCRAM-SHA-256-PLUS over WebSocket and exchanges messages with a TLS client', async () => {
    const alice = env.client('alice', 'browser', { transport: 'websocket', port: wsPort });
    const bob = env.client('bob', 'laptop');
    await alice.connect();
    await bob.connect();
    const toBob = next(bob);
    await alice.sendMessage(`bob@${DOMAIN}`, 'hello from a browser tab');
    expect((await toBob).text).toBe('hello from a browser tab');
    const toAlice = next(alice);
    await bob.sendMessage(`alice@${DOMAIN}`, 'hello from a terminal');
    const got = await toAlice;
    expect(got.text).toBe('hello from a terminal');
    expect(got.from).toBe(`bob@${DOMAIN}`);

    const login = env.audit.events.find(
      (e) => e.type === 'auth.success' && e.principal === `alice@${DOMAIN}`,
    );
    expect(login).toMatchObject({ mechanism: 'SCRAM-SHA-256-PLUS', channelBound: true });
    await alice.close();
    // The WebSocket device reconnects (bind only) and gets what was sent while it was away.
    const later = next(alice);
    await bob.sendMessage(`alice@${DOMAIN}`, 'while you were away');
    await alice.connect();
    expect((await later).text).toBe('while you were away');
  });

  it('refuses a wrong password over WebSocket like over TLS', async () => {
    const mallory = env.client('carol', 'ws', {
      transport: 'websocket',
      port: wsPort,
      password: 'not carols password',
    });
    const err: unknown = await mallory.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImppError(err, 'ERR_AUTH_FAILED')).toBe(true);
  });

  it('reaches the endpoint only at its path (a wrong websocketPath fails to connect)', async () => {
    const lost = env.client('dave', 'ws', {
      transport: 'websocket',
      port: wsPort,
      websocketPath: '/elsewhere',
    });
    const err: unknown = await lost.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImppError(err, 'ERR_CONNECTION_CLOSED')).toBe(true);
  });
});
