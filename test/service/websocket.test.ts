/**
 * The service over WebSocket-on-TLS: the same protocol and authentication as over TLS, with
 * SCRAM-SHA-256-PLUS and device binding bound to the TLS connection under the WebSocket
 * (tls-exporter, RFC 9266). A hand-written client logs in, binds, registers and exchanges a sealed
 * message with a device on the TLS listener; a signature bound to another connection is refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthRegistry,
  Authenticator,
  DEFAULT_EXCHANGE_LIMITS,
  LocalAccounts,
  MemoryAuditSink,
  SqliteLocalAccountRepository,
  localProvider,
  makeAuthPolicy,
  scramServer,
} from '../../src/auth/index.js';
import { SecretBytes, generateSigningKeyPair, randomBytes, sign } from '../../src/crypto/index.js';
import { openMessage, sealMessage } from '../../src/seal/message.js';
import { SealDevice } from '../../src/seal/session.js';
import { bindingTranscript } from '../../src/service/binding.js';
import type { ServiceLog } from '../../src/service/logging.js';
import { ClientFrame } from '../../src/service/protocol.js';
import { ImppServer } from '../../src/service/server.js';
import { openSqliteServiceStore, type SqliteServiceStore } from '../../src/service/store/index.js';
import type { Connection } from '../../src/transport/connection.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { connectWebSocket } from '../../src/transport/ws-client.js';
import { parseAddress } from '../../src/trust/address.js';
import { createDeviceList } from '../../src/trust/device-list.js';
import { createLoopbackPki } from '../helpers/tls-fixtures.js';
import { DOMAIN, PASSWORD } from './harness.js';
import { RawClient } from './raw.js';

/** A log that keeps every line (fields and message) for assertions. */
class MemoryLog implements ServiceLog {
  readonly lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  error(fields: Readonly<Record<string, unknown>>, msg: string): void {
    this.lines.push({ level: 'error', msg, fields: { ...fields } });
  }
  warn(fields: Readonly<Record<string, unknown>>, msg: string): void {
    this.lines.push({ level: 'warn', msg, fields: { ...fields } });
  }
  info(fields: Readonly<Record<string, unknown>>, msg: string): void {
    this.lines.push({ level: 'info', msg, fields: { ...fields } });
  }
  debug(fields: Readonly<Record<string, unknown>>, msg: string): void {
    this.lines.push({ level: 'debug', msg, fields: { ...fields } });
  }
}

let dir: string;
let ca: string;
let tlsPort: number;
let wsPort: number;
let server: ImppServer;
let store: SqliteServiceStore;
let registry: AuthRegistry;
const audit = new MemoryAuditSink();
const log = new MemoryLog();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'impp-ws-'));
  const pki = await createLoopbackPki();
  ca = pki.ca.certPem;
  registry = new AuthRegistry({ domain: DOMAIN, serverSecret: new SecretBytes(randomBytes(32)) });
  registry.registerMechanism(scramServer({ plus: true }));
  registry.registerMechanism(scramServer({ plus: false }));
  const repository = new SqliteLocalAccountRepository(':memory:');
  await registry.registerProvider(localProvider({ repository, iterations: 4096 }));
  const accounts = new LocalAccounts(repository, DOMAIN, 4096);
  for (const u of ['alice', 'bob']) accounts.create(u, PASSWORD);
  const policy = makeAuthPolicy(
    DOMAIN,
    [
      { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
      { mechanism: 'SCRAM-SHA-256', provider: 'local' },
    ],
    { limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 } },
  );
  store = openSqliteServiceStore({ path: join(dir, 'service.db') });
  server = new ImppServer({
    domain: DOMAIN,
    tls: { key: pki.server.keyPem, cert: pki.server.certPem },
    store,
    authenticator: new Authenticator(registry, policy, { audit }),
    domainKey: generateSigningKeyPair(),
    log,
  });
  tlsPort = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  wsPort = (await server.listenWebSocket({ host: '127.0.0.1', port: 0 })).port;
});

afterAll(async () => {
  await server.close();
  await store.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

function overWebSocket(): Promise<Connection> {
  return connectWebSocket({
    url: `wss://127.0.0.1:${wsPort}/impp`,
    ca,
    servername: 'localhost',
  });
}

function overTls(): Promise<Connection> {
  return connectTls({ host: '127.0.0.1', port: tlsPort, ca, servername: 'localhost' });
}

/** Logs in as `user`, binds `deviceId` (signing this connection's exporter) and registers. */
async function registered(conn: Connection, user: string, deviceId: string) {
  const raw = new RawClient(conn);
  await raw.auth(user);
  const identity = generateSigningKeyPair();
  const address = `${user}@${DOMAIN}`;
  const signature = sign(
    identity.secretKey,
    bindingTranscript({
      exporter: conn.channelBinding(),
      nonce: raw.nonce as Uint8Array,
      address,
      deviceId,
      identityKey: identity.publicKey,
    }),
  );
  raw.conn.send(ClientFrame.BIND, { deviceId, identityKey: identity.publicKey, signature });
  expect(await raw.take(ClientFrame.BOUND)).toMatchObject({ address, deviceId });
  const seal = SealDevice.create(`${address}/${deviceId}`, { identity, oneTimePrekeys: 2 });
  const pub = seal.publicPrekeys();
  const keys = { signedPrekey: pub.signedPrekey, oneTimePrekeys: pub.oneTimePrekeys };
  const list = createDeviceList({
    address: parseAddress(address),
    counter: 1,
    devices: [{ deviceId, identityKey: identity.publicKey }],
    signer: { deviceId, secretKey: identity.secretKey },
  });
  const r = await raw.request(ClientFrame.REGISTER, { ...keys, deviceList: list.bytes });
  expect(r.error).toBeUndefined();
  return { raw, seal };
}

describe('the service over WebSocket', () => {
  it('offers SCRAM-SHA-256-PLUS first and authenticates with channel binding', async () => {
    audit.clear();
    const raw = new RawClient(await overWebSocket());
    expect(raw.conn.transport).toBe('websocket');
    await raw.auth('alice');
    const event = audit.events.at(-1);
    expect(event).toMatchObject({
      type: 'auth.success',
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBound: true,
      principal: `alice@${DOMAIN}`,
    });
    raw.conn.close();
    await raw.closed;
  });

  it('carries a full login and a sealed message exchange, to and from a TLS device', async () => {
    const alice = await registered(await overWebSocket(), 'alice', 'browser');
    const bob = await registered(await overTls(), 'bob', 'phone');
    const text = new TextEncoder().encode('over the websocket and back');
    const sealed = sealMessage(
      alice.seal,
      { to: bob.seal.device, bundle: bob.seal.bundle() },
      'text/plain',
      text,
    );
    expect(await alice.raw.request(ClientFrame.SEND, { object: sealed.bytes })).toMatchObject({
      duplicate: false,
    });
    const delivered = await bob.raw.take(ClientFrame.DELIVER);
    const opened = openMessage(bob.seal, delivered.object as Uint8Array);
    expect(new TextDecoder().decode(opened.payload)).toBe('over the websocket and back');
    expect(opened.senderDevice).toBe(`alice@${DOMAIN}/browser`);
    expect(
      await bob.raw.request(ClientFrame.ACK, {
        device: bob.seal.device,
        ids: [opened.messageId],
      }),
    ).toMatchObject({ removed: 1 });

    // And back: TLS to WebSocket, a reply in the session alice's message started.
    const reply = sealMessage(
      bob.seal,
      { to: alice.seal.device },
      'text/plain',
      new TextEncoder().encode('received, over TLS'),
    );
    await bob.raw.request(ClientFrame.SEND, { object: reply.bytes });
    const back = await alice.raw.take(ClientFrame.DELIVER);
    const openedBack = openMessage(alice.seal, back.object as Uint8Array);
    expect(new TextDecoder().decode(openedBack.payload)).toBe('received, over TLS');
    expect((await store.queue.usage(bob.seal.device)).count).toBe(0);

    // The log names the transport and the devices, never the content.
    const opens = log.lines.filter((l) => l.msg === 'connection.open');
    expect(opens.map((l) => l.fields.transport)).toEqual(
      expect.arrayContaining(['websocket', 'tls']),
    );
    expect(
      log.lines.filter((l) => l.msg === 'device.registered').map((l) => l.fields.device),
    ).toEqual(expect.arrayContaining([alice.seal.device, bob.seal.device]));
    const dump = JSON.stringify(log.lines);
    expect(dump).not.toContain('over the websocket');
    expect(dump).not.toContain('received, over TLS');
    expect(dump).not.toContain(PASSWORD);
    alice.raw.conn.close();
    bob.raw.conn.close();
  });

  it('refuses a device binding signed for another connection (TLS exporter of a TLS session)', async () => {
    const ws = new RawClient(await overWebSocket());
    await ws.auth('alice');
    const tls = new RawClient(await overTls());
    await tls.auth('alice');
    const identity = generateSigningKeyPair();
    const signature = sign(
      identity.secretKey,
      bindingTranscript({
        exporter: tls.conn.channelBinding(), // the wrong connection's exporter
        nonce: ws.nonce as Uint8Array,
        address: `alice@${DOMAIN}`,
        deviceId: 'replayed',
        identityKey: identity.publicKey,
      }),
    );
    ws.conn.send(ClientFrame.BIND, {
      deviceId: 'replayed',
      identityKey: identity.publicKey,
      signature,
    });
    expect((await ws.closed).error?.code).toBe('ERR_NOT_AUTHORIZED');
    // The other session carries on.
    expect(tls.conn.state).toBe('open');
    tls.conn.close();
  });

  it('refuses a request before authentication over WebSocket and closes only that one', async () => {
    const raw = new RawClient(await overWebSocket());
    await raw.take(ClientFrame.AUTH_OFFER);
    raw.conn.send(ClientFrame.GET_DEVICES, { id: 1, address: `alice@${DOMAIN}` });
    expect((await raw.closed).error?.code).toBe('ERR_NOT_AUTHORIZED');
    const closed = log.lines.filter((l) => l.msg === 'connection.closed').at(-1);
    expect(closed?.fields.code).toBe('ERR_NOT_AUTHORIZED');
  });

  it('closes WebSocket sessions with a CLOSE frame when the server stops', async () => {
    // A second server on the same store, so the shared one stays up for the other tests.
    const pki = await createLoopbackPki();
    const other = new ImppServer({
      domain: DOMAIN,
      tls: { key: pki.server.keyPem, cert: pki.server.certPem },
      store,
      authenticator: new Authenticator(
        registry,
        makeAuthPolicy(DOMAIN, [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }]),
        { audit: new MemoryAuditSink() },
      ),
      domainKey: generateSigningKeyPair(),
    });
    const { port } = await other.listenWebSocket({ host: '127.0.0.1', port: 0 });
    const raw = new RawClient(
      await connectWebSocket({
        url: `wss://127.0.0.1:${port}/impp`,
        ca: pki.ca.certPem,
        servername: 'localhost',
      }),
    );
    await raw.take(ClientFrame.AUTH_OFFER);
    await other.close();
    const info = await raw.closed;
    expect(info.error?.code).toBe('ERR_CONNECTION_CLOSED');
    expect(info.initiator).toBe('remote');
  });
});
