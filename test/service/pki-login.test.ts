/**
 * TLS client certificates and SASL EXTERNAL (RFC 4422 appendix A) through the whole server, as
 * `impp serve` builds it: the authenticator and the listeners' client-certificate trust come from
 * a configuration naming a PKI provider (CA file and CRL file), the SDK presents a certificate
 * over real TLS on loopback (and over WebSocket on TLS), logs in with EXTERNAL, binds and
 * registers its device, and exchanges a message with a SCRAM user on the same port.
 *
 * Refusals: a certificate from another CA, an expired one, one revoked by the CRL, one without an
 * extended key usage (Node's TLS accepts it; the provider does not), one for serverAuth only, one
 * naming an address outside the domain, and none at all. Each is refused with a typed error (and
 * an audit reason), and SCRAM on the same port keeps working after each.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { x509 } from '../../src/auth/pki/x509.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryAuditSink } from '../../src/auth/index.js';
import { ImppClient, type ImppClientOptions } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { isImppError } from '../../src/errors.js';
import type { ConfiguredAuthenticator } from '../../src/service/authenticator.js';
import type { ImppServer } from '../../src/service/server.js';
import type { SqliteServiceStore } from '../../src/service/store/index.js';
import { ClientFrame } from '../../src/service/protocol.js';
import { connectTls } from '../../src/transport/tls-client.js';
import { TlsTransportServer } from '../../src/transport/tls-server.js';
import { type ConfiguredServer, startConfiguredServer } from '../helpers/configured-server.js';
import { createCa, createCrl, issue, issueServer, type Issued } from '../infra/certs.js';
import { RawClient } from './raw.js';

const DOMAIN = 'example.org';
const PASSWORD = 'bob-local-password';
const DAY = 86_400_000;

let dir: string;
let ca: Issued;
let serverCert: Issued;
let started: ConfiguredServer;
let server: ImppServer;
let store: SqliteServiceStore;
let configured: ConfiguredAuthenticator;
let audit: MemoryAuditSink;
let port: number;
let wsPort: number;
const certs: Record<string, Issued> = {};
const clients: ImppClient[] = [];
let clientCounter = 0;

const email = (value: string): x509.JsonGeneralName => ({ type: 'email', value });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'impp-pki-login-'));
  ca = await createCa('CN=Example Corp Issuing CA,O=example');
  const rogue = await createCa('CN=Example Corp Issuing CA,O=example'); // same name, other key
  serverCert = await issueServer(ca);
  certs.alice = await issue(ca, { subject: 'CN=alice', sans: [email(`alice@${DOMAIN}`)] });
  certs.carol = await issue(ca, { subject: 'CN=carol', sans: [email(`carol@${DOMAIN}`)] });
  certs.rogue = await issue(rogue, { subject: 'CN=alice', sans: [email(`alice@${DOMAIN}`)] });
  certs.expired = await issue(ca, {
    subject: 'CN=alice',
    sans: [email(`alice@${DOMAIN}`)],
    notBefore: new Date(Date.now() - 10 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  certs.revoked = await issue(ca, { subject: 'CN=alice', sans: [email(`alice@${DOMAIN}`)] });
  certs.noEku = await issue(ca, {
    subject: 'CN=alice',
    sans: [email(`alice@${DOMAIN}`)],
    eku: null,
  });
  certs.serverOnly = await issue(ca, {
    subject: 'CN=alice',
    sans: [email(`alice@${DOMAIN}`)],
    eku: [x509.ExtendedKeyUsage.serverAuth],
  });
  certs.outside = await issue(ca, { subject: 'CN=alice', sans: [email('alice@evil.example')] });
  writeFileSync(join(dir, 'corp-ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'corp.crl.pem'), await createCrl(ca, [certs.revoked.serial]));

  started = await startConfiguredServer({
    dir,
    domain: DOMAIN,
    tls: { key: serverCert.keyPem, cert: serverCert.certPem },
    users: ['bob'],
    password: PASSWORD,
    trust: {
      authentication: {
        mechanisms: ['SCRAM-SHA-256-PLUS', 'EXTERNAL', 'SCRAM-SHA-256'],
        providers: [
          { type: 'local', id: 'local' },
          {
            type: 'pki',
            id: 'corp-pki',
            trustAnchors: { path: 'corp-ca.pem' },
            revocation: 'crl',
            crlPaths: ['corp.crl.pem'],
            addressFrom: 'san-email',
          },
        ],
      },
    },
  });
  ({ server, store, configured, audit, port } = started);
  expect(configured.clientCertificates?.ca).toEqual([ca.certPem]);
  wsPort = (await server.listenWebSocket({ host: '127.0.0.1', port: 0 })).port;
}, 30_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await started.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(
  user: string,
  deviceId: string,
  extra: Partial<ImppClientOptions> = {},
): ImppClient {
  clientCounter++;
  const c = new ImppClient({
    host: '127.0.0.1',
    port,
    ca: ca.certPem,
    servername: 'localhost',
    address: `${user}@${DOMAIN}`,
    deviceId,
    state: new FileStateStore(join(dir, `${user}-${deviceId}-${clientCounter}.state`)),
    ...extra,
  });
  clients.push(c);
  return c;
}

/** An EXTERNAL client presenting `cert`, on a fresh device state. */
function externalClient(cert: Issued, user = 'alice', deviceId = 'laptop'): ImppClient {
  return client(user, deviceId, {
    mechanism: 'external',
    clientCertificate: { cert: cert.certPem, key: cert.keyPem },
  });
}

/** The error `promise` rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
}

/** Bob logs in with SCRAM-SHA-256-PLUS on the same port (and leaves). */
async function scramStillWorks(): Promise<void> {
  const bob = client('bob', `phone${clientCounter}`, { password: PASSWORD });
  await bob.connect();
  await bob.close();
}

describe('EXTERNAL with a client certificate from the configured CA (impp serve wiring)', () => {
  it('logs alice in with EXTERNAL, binds and registers her device, and she messages bob', async () => {
    const bob = client('bob', 'desk', { password: PASSWORD });
    await bob.connect();
    const received = new Promise<string>((resolve) => {
      bob.on('message', (m) => {
        resolve(`${m.from}: ${m.text}`);
      });
    });
    const alice = externalClient(certs.alice!);
    await alice.connect();
    await alice.sendMessage(`bob@${DOMAIN}`, 'signed in with my smart card');
    expect(await received).toBe(`alice@${DOMAIN}: signed in with my smart card`);

    const success = audit.events.find(
      (e) => e.type === 'auth.success' && e.principal === `alice@${DOMAIN}`,
    );
    expect(success).toMatchObject({ mechanism: 'EXTERNAL', provider: 'corp-pki' });
    // The enrolment statement records how the device was enrolled.
    const devices = await store.devices.list(`alice@${DOMAIN}`);
    expect(devices.map((d) => d.deviceId)).toEqual(['laptop']);
    await alice.close();
  });

  it('the same device reconnects with its certificate, and binding still proves its key', async () => {
    const alice = client('alice', 'tablet', {
      mechanism: 'external',
      clientCertificate: { cert: certs.alice!.certPem, key: certs.alice!.keyPem },
    });
    await alice.connect();
    await alice.close();
    await alice.connect(); // registered device: bind only, with a fresh nonce and exporter
    await alice.close();
    // The tablet's identity key is held by the server; another key under the same id is refused.
    const impostor = client('alice', 'tablet', {
      mechanism: 'external',
      clientCertificate: { cert: certs.alice!.certPem, key: certs.alice!.keyPem },
    });
    const err = await rejection(impostor.connect());
    expect(isImppError(err, 'ERR_NOT_AUTHORIZED')).toBe(true);
  });

  it('works over WebSocket on TLS too (the certificate is asked for by the wss listener)', async () => {
    const alice = client('alice', 'browser', {
      transport: 'websocket',
      port: wsPort,
      mechanism: 'external',
      clientCertificate: { cert: certs.alice!.certPem, key: certs.alice!.keyPem },
    });
    await alice.connect();
    await alice.close();
  });

  it('the CertificateRequest names the configured CA as the accepted issuer (openssl s_client)', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('openssl', [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-servername',
        'localhost',
        '-tls1_3',
        '-alpn',
        'impp/1',
        '-CAfile',
        join(dir, 'corp-ca.pem'),
      ]);
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString('latin1')));
      child.on('error', reject);
      child.on('close', () => {
        resolve(text);
      });
      setTimeout(() => child.stdin.end(), 500);
    });
    // The lines between this header and the signature algorithms are the accepted issuers:
    // exactly the configured CA (RFC 8446 §4.3.2 certificate_authorities), nothing else.
    const block = (out.split('Acceptable client certificate CA names\n')[1] ?? '').split(
      'Requested Signature Algorithms',
    )[0];
    expect(block?.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^(CN = Example Corp Issuing CA, O = example|O = example, CN = Example Corp Issuing CA)$/,
      ),
    ]);
  });

  it('a certificate for carol cannot be used to log in as alice (authzid refused)', async () => {
    const err = await rejection(
      client('alice', 'stolen', {
        mechanism: 'external',
        clientCertificate: { cert: certs.carol!.certPem, key: certs.carol!.keyPem },
      }).connect(),
    );
    expect(isImppError(err, 'ERR_AUTH_FAILED')).toBe(true);
    expect(audit.events.at(-1)).toMatchObject({ type: 'auth.failure', reason: 'authzid-refused' });
  });
});

describe('refused certificates: typed errors, and SCRAM on the same port keeps working', () => {
  const cases: readonly (readonly [string, string, string])[] = [
    ['a certificate from another CA with the same name', 'rogue', 'bad-credential'],
    ['an expired certificate', 'expired', 'bad-credential'],
    ['a certificate revoked by the configured CRL', 'revoked', 'bad-credential'],
    ['a certificate for serverAuth only', 'serverOnly', 'bad-credential'],
    ['a certificate without any extended key usage', 'noEku', 'bad-credential'],
    ['a certificate naming an address outside the domain', 'outside', 'unknown-user'],
  ];
  for (const [what, key, reason] of cases) {
    it(`refuses ${what}`, async () => {
      const before = audit.events.length;
      const err = await rejection(externalClient(certs[key]!, 'alice', `d-${key}`).connect());
      expect(isImppError(err, 'ERR_AUTH_FAILED')).toBe(true);
      const failure = audit.events.slice(before).find((e) => e.type === 'auth.failure');
      expect(failure).toMatchObject({ mechanism: 'EXTERNAL', reason });
      // Nothing was registered for the refused login.
      expect((await store.devices.list(`alice@${DOMAIN}`)).map((d) => d.deviceId)).not.toContain(
        `d-${key}`,
      );
      await scramStillWorks();
    });
  }

  it('Node TLS decides the chain: rogue, expired, revoked and serverAuth-only are not authorized; the EKU-less one is, and only the provider refuses it', async () => {
    const seen: boolean[] = [];
    const listener = new TlsTransportServer({
      key: serverCert.keyPem,
      cert: serverCert.certPem,
      requestClientCert: true,
      ...(configured.clientCertificates === undefined
        ? {}
        : {
            ca: configured.clientCertificates.ca,
            crl: configured.clientCertificates.crl ?? [],
          }),
    });
    listener.on('connection', (conn) => {
      seen.push(conn.peerCertificateAuthorized);
      conn.close();
    });
    const { port: probe } = await listener.listen({ host: '127.0.0.1', port: 0 });
    try {
      for (const key of ['alice', 'rogue', 'expired', 'revoked', 'serverOnly', 'noEku']) {
        const conn = await connectTls({
          host: '127.0.0.1',
          port: probe,
          ca: ca.certPem,
          servername: 'localhost',
          cert: certs[key]!.certPem,
          key: certs[key]!.keyPem,
        });
        await conn.closed;
      }
    } finally {
      await listener.close();
    }
    expect(seen).toEqual([true, false, false, false, false, true]);
  });

  it('refuses EXTERNAL without a certificate, while SCRAM keeps working on that port', async () => {
    const before = audit.events.length;
    const raw = new RawClient(
      await connectTls({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost' }),
    );
    const offer = await raw.take(ClientFrame.AUTH_OFFER);
    expect(offer.mechanisms).toEqual(['SCRAM-SHA-256-PLUS', 'EXTERNAL', 'SCRAM-SHA-256']);
    raw.conn.send(ClientFrame.AUTH_START, { mechanism: 'EXTERNAL', initial: new Uint8Array(0) });
    const answer = await raw.take(ClientFrame.AUTH_FAILURE);
    expect(answer.failure).toBe('not-authorized');
    expect((await raw.closed).error?.code).toBe('ERR_AUTH_FAILED');
    const failure = audit.events.slice(before).find((e) => e.type === 'auth.failure');
    expect(failure).toMatchObject({ mechanism: 'EXTERNAL', reason: 'bad-credential' });
    await scramStillWorks();
  });

  it('the SDK refuses to try EXTERNAL without a certificate of its own', () => {
    expect(() => client('alice', 'nocert', { mechanism: 'external' })).toThrow(
      /needs a clientCertificate/,
    );
  });
});
