/**
 * EXTERNAL (RFC 4422 appendix A) with the PKI provider, over real TLS 1.3 on loopback: Node's TLS
 * layer validates the client certificate chain (CA bundle, CRL), the provider reads the verified
 * leaf with @peculiar/x509 and maps its SAN. Refused: expired, self-signed, issued by a rogue CA
 * with the same name as the real one, revoked, wrong SAN, missing clientAuth EKU, CA certificates,
 * ambiguous SANs, authzid for someone else — and an unverified chain even if the transport were
 * misconfigured not to reject it.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { x509 } from '../../src/auth/pki/x509.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import { authenticate } from '../../src/auth/client.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy } from '../../src/auth/policy.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { Authenticator } from '../../src/auth/server.js';
import type { ChannelInfo, IdentityLookup } from '../../src/auth/types.js';
import { EXTERNAL, externalClient, externalServer } from '../../src/auth/pki/external.js';
import {
  pkiProvider,
  type PkiCredentialProvider,
  type PkiProviderConfig,
} from '../../src/auth/pki/provider.js';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { parseAddress } from '../../src/trust/address.js';
import { createCa, createCrl, issue, issueServer, type Issued } from '../infra/certs.js';
import { SessionTransport } from './helpers.js';
import { runProviderContract } from './provider-contract.js';

const DOMAIN = 'example.test';
const CA_NAME = 'CN=impp client CA,O=Example Test';
let ca: Issued;
let serverCert: Issued;
const certs: Record<string, Issued> = {};
let crlPem: string;

const im = (a: string): x509.JsonGeneralName => ({ type: 'url', value: `im:${a}` });
const email = (a: string): x509.JsonGeneralName => ({ type: 'email', value: a });

beforeAll(async () => {
  ca = await createCa(CA_NAME);
  serverCert = await issueServer(ca);
  const rogue = await createCa(CA_NAME); // same subject name, different key
  const day = 86_400_000;
  certs.alice = await issue(ca, {
    subject: 'CN=Alice',
    sans: [im('alice@example.test'), email('alice@example.test')],
  });
  certs.bobEmail = await issue(ca, { subject: 'CN=Bob', sans: [email('bob@example.test')] });
  certs.expired = await issue(ca, {
    subject: 'CN=Alice',
    sans: [im('alice@example.test')],
    notBefore: new Date(Date.now() - 10 * day),
    notAfter: new Date(Date.now() - day),
  });
  certs.selfSigned = await issue(null, { subject: 'CN=Alice', sans: [im('alice@example.test')] });
  certs.rogue = await issue(rogue, { subject: 'CN=Alice', sans: [im('alice@example.test')] });
  certs.otherDomain = await issue(ca, {
    subject: 'CN=Alice',
    sans: [im('alice@other.test'), email('alice@other.test')],
  });
  certs.noSan = await issue(ca, { subject: 'CN=alice@example.test' });
  certs.noEku = await issue(ca, {
    subject: 'CN=Alice',
    sans: [im('alice@example.test')],
    eku: null,
  });
  certs.emailEku = await issue(ca, {
    subject: 'CN=Alice',
    sans: [im('alice@example.test')],
    eku: [x509.ExtendedKeyUsage.emailProtection],
  });
  certs.noDigitalSignature = await issue(ca, {
    subject: 'CN=Alice',
    sans: [im('alice@example.test')],
    keyUsage: x509.KeyUsageFlags.keyEncipherment,
  });
  certs.ambiguous = await issue(ca, {
    subject: 'CN=Two',
    sans: [im('alice@example.test'), email('bob@example.test')],
  });
  certs.revoked = await issue(ca, { subject: 'CN=Alice', sans: [im('alice@example.test')] });
  certs.erin = await issue(ca, { subject: 'CN=Erin', sans: [im('erin@example.test')] });
  certs.nobody = await issue(ca, { subject: 'CN=Nobody', sans: [im('nobody@example.test')] });
  crlPem = await createCrl(ca, [certs.revoked.serial]);
});

interface Domain {
  authenticator: Authenticator;
  audit: MemoryAuditSink;
  provider: PkiCredentialProvider;
}

async function domain(overrides: Partial<PkiProviderConfig> = {}): Promise<Domain> {
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(externalServer());
  const provider = (await registry.registerProvider(
    pkiProvider({ caPem: ca.certPem, crlPem, ...overrides }),
  )) as PkiCredentialProvider;
  const audit = new MemoryAuditSink();
  const policy = makeAuthPolicy(DOMAIN, [{ mechanism: EXTERNAL, provider: 'pki' }], {
    limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
  });
  return { authenticator: new Authenticator(registry, policy, { audit }), audit, provider };
}

/** What a transport fills in from an established server-side TLS socket. */
function channelOf(socket: TLSSocket): ChannelInfo {
  const peer = socket.getPeerX509Certificate();
  return {
    secure: true,
    tlsVersion: socket.getProtocol() ?? 'unknown',
    tlsExporter: new Uint8Array(
      socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)),
    ),
    ...(peer === undefined ? {} : { peerCertificate: new Uint8Array(peer.raw) }),
    peerCertificateVerified: socket.authorized,
    remoteAddress: socket.remoteAddress ?? '127.0.0.1',
  };
}

/** A TLS 1.3 server on 127.0.0.1 with the provider's client-certificate settings. */
async function tlsServer(d: Domain, rejectUnauthorized = true): Promise<Server> {
  const server = createServer({
    key: serverCert.keyPem,
    cert: serverCert.certPem,
    minVersion: 'TLSv1.3',
    ...d.provider.tlsServerOptions(),
    rejectUnauthorized,
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

type Handshake = { ok: true; socket: TLSSocket } | { ok: false; error: string };

/** Connects with `client` certificate; the SERVER's view decides (TLS 1.3 client auth is post-handshake for the client). */
async function handshake(
  server: Server,
  client: Issued | null,
): Promise<{ result: Handshake; close: () => void }> {
  const port = (server.address() as { port: number }).port;
  const serverSide = new Promise<Handshake>((resolve) => {
    const onSecure = (socket: TLSSocket): void => {
      cleanup();
      resolve({ ok: true, socket });
    };
    const onError = (error: Error): void => {
      cleanup();
      resolve({ ok: false, error: error.message });
    };
    const cleanup = (): void => {
      server.off('secureConnection', onSecure);
      server.off('tlsClientError', onError);
    };
    server.on('secureConnection', onSecure);
    server.on('tlsClientError', onError);
  });
  const socket = connect({
    host: '127.0.0.1',
    port,
    ca: ca.certPem,
    servername: 'localhost',
    ...(client === null ? {} : { key: client.keyPem, cert: client.certPem }),
  });
  socket.on('error', () => undefined);
  const result = await serverSide;
  return {
    result,
    close: () => {
      socket.destroy();
      if (result.ok) result.socket.destroy();
    },
  };
}

async function externalLogin(d: Domain, socket: TLSSocket, authzid?: string) {
  const channel = channelOf(socket);
  const session = d.authenticator.begin(channel);
  const transport = new SessionTransport(session);
  const outcome = await authenticate(
    transport,
    [externalClient(authzid === undefined ? {} : { authzid })],
    session.offered,
    { secure: true },
  ).catch((e: unknown) => e);
  return { outcome, last: transport.last, reason: d.audit.events.at(-1)?.reason ?? null };
}

describe('EXTERNAL over real TLS with the PKI provider', () => {
  let d: Domain;
  let server: Server;
  beforeAll(async () => {
    d = await domain();
    server = await tlsServer(d);
  });
  afterAll(() => {
    server.close();
  });

  it('a valid certificate logs in as the SAN address, bound to the channel, audited', async () => {
    const { result, close } = await handshake(server, certs.alice!);
    try {
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      const { outcome, last } = await externalLogin(d, result.socket);
      expect(outcome).toMatchObject({ mechanism: EXTERNAL, channelBound: true });
      expect(last?.type === 'success' && last.result.principal).toEqual(
        parseAddress('alice@example.test'),
      );
      expect(d.audit.events.at(-1)).toMatchObject({
        type: 'auth.success',
        principal: 'alice@example.test',
        channelBound: true,
      });
      expect(d.audit.events.at(-1)?.claimedIdentity).toMatch(/^cert:sha256:[0-9a-f]{32}$/);
    } finally {
      close();
    }
  });

  it('an rfc822Name SAN maps too; an authzid equal to the identity is accepted, another refused', async () => {
    const { result, close } = await handshake(server, certs.bobEmail!);
    try {
      if (!result.ok) throw new Error(result.error);
      expect((await externalLogin(d, result.socket, 'bob@example.test')).last?.type).toBe(
        'success',
      );
      const other = await externalLogin(d, result.socket, 'alice@example.test');
      expect(other.last).toEqual({ type: 'failure', failure: 'not-authorized' });
      expect(other.reason).toBe('authzid-refused');
    } finally {
      close();
    }
  });

  for (const [label, name] of [
    ['expired', 'expired'],
    ['self-signed', 'selfSigned'],
    ['issued by a rogue CA with the same name', 'rogue'],
    ['revoked (CRL)', 'revoked'],
    ['without clientAuth in its EKU (emailProtection only)', 'emailEku'],
    ['whose key usage forbids signing (no digitalSignature)', 'noDigitalSignature'],
  ] as const) {
    it(`the TLS layer refuses a certificate ${label}`, async () => {
      const { result, close } = await handshake(server, certs[name]!);
      close();
      expect(result.ok).toBe(false);
    });
  }

  it('a connection without a client certificate is refused by TLS', async () => {
    const { result, close } = await handshake(server, null);
    close();
    expect(result.ok).toBe(false);
  });

  for (const [label, name, reason] of [
    ['a SAN in another domain', 'otherDomain', 'unknown-user'],
    ['no SAN (a CN is never used)', 'noSan', 'unknown-user'],
    ['no extended key usage at all (OpenSSL accepts it, we do not)', 'noEku', 'bad-credential'],
    ['SANs for two different addresses', 'ambiguous', 'unknown-user'],
  ] as const) {
    it(`the provider refuses a chain-valid certificate with ${label}`, async () => {
      const { result, close } = await handshake(server, certs[name]!);
      try {
        if (!result.ok) throw new Error(`handshake failed: ${result.error}`);
        const { last, reason: why } = await externalLogin(d, result.socket);
        expect(last).toEqual({ type: 'failure', failure: 'not-authorized' });
        expect(why).toBe(reason);
      } finally {
        close();
      }
    });
  }
});

describe('defence in depth behind a misconfigured transport (rejectUnauthorized: false)', () => {
  it('EXTERNAL refuses unverified chains; the provider still checks expiry and the CRL', async () => {
    const d = await domain();
    const server = await tlsServer(d, false);
    try {
      for (const name of ['rogue', 'selfSigned', 'expired', 'revoked'] as const) {
        const { result, close } = await handshake(server, certs[name]!);
        try {
          if (!result.ok) throw new Error(result.error);
          expect(result.socket.authorized).toBe(false);
          const { last, reason } = await externalLogin(d, result.socket);
          expect(last, name).toEqual({ type: 'failure', failure: 'not-authorized' });
          expect(reason).toBe('bad-credential');
        } finally {
          close();
        }
      }
      // Even if a caller claimed the chain was verified, expiry, revocation and usage are re-checked.
      for (const name of ['expired', 'revoked', 'noDigitalSignature', 'emailEku'] as const) {
        const der = new Uint8Array(certs[name]!.cert.rawData);
        await expect(
          d.provider.mapCertificate!({ der, chain: [], chainVerified: true }),
        ).rejects.toSatisfy((e) => isImppError(e, 'ERR_AUTH_FAILED'));
      }
    } finally {
      server.close();
    }
  });
});

describe('PKI provider configuration and directory veto', () => {
  it('honours a directory that says disabled or unknown', async () => {
    const der = new Uint8Array(certs.alice!.cert.rawData);
    const disabled = (a: string): Promise<IdentityLookup> =>
      Promise.resolve({
        status: 'disabled',
        identity: { principal: parseAddress(a), kind: 'person' },
      });
    const d1 = await domain({ accountLookup: disabled });
    expect(
      (await d1.provider.mapCertificate!({ der, chain: [], chainVerified: true })).status,
    ).toBe('disabled');
    const d2 = await domain({ accountLookup: () => Promise.resolve({ status: 'unknown' }) });
    expect(
      (await d2.provider.mapCertificate!({ der, chain: [], chainVerified: true })).status,
    ).toBe('unknown');
    // A directory answering for ANOTHER address is ignored.
    const swap = (): Promise<IdentityLookup> =>
      Promise.resolve({
        status: 'ok',
        identity: { principal: parseAddress('root@example.test'), kind: 'person' },
      });
    const d3 = await domain({ accountLookup: swap });
    expect(
      (await d3.provider.mapCertificate!({ der, chain: [], chainVerified: true })).status,
    ).toBe('unknown');
  });

  it('refuses a CRL not signed by a configured CA, and empty CA bundles', async () => {
    const rogue = await createCa(CA_NAME);
    const forged = await createCrl(rogue, []);
    await expect(domain({ crlPem: forged })).rejects.toSatisfy((e) =>
      isImppError(e, 'ERR_CONFIG_INVALID'),
    );
    expect(() => pkiProvider({ caPem: [] })).toThrow();
    expect(() =>
      pkiProvider({ caPem: ca.certPem, sanRules: [{ type: 'uri', prefix: 'bad prefix' }] }),
    ).toThrow();
  });

  it('refuses garbage certificate bytes and is not offered outside TLS', async () => {
    const d = await domain();
    await expect(
      d.provider.mapCertificate!({ der: randomBytes(64), chain: [], chainVerified: true }),
    ).rejects.toSatisfy((e) => isImppError(e, 'ERR_AUTH_MALFORMED'));
    expect(d.authenticator.offer({ secure: false })).toEqual([]);
    const out = await d.authenticator.begin({ secure: true }).start(EXTERNAL, new Uint8Array(0));
    expect(out).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(d.audit.events.at(-1)?.reason).toBe('bad-credential');
    const long = await d.authenticator
      .begin({
        secure: true,
        peerCertificate: new Uint8Array(certs.alice!.cert.rawData),
        peerCertificateVerified: true,
      })
      .start(EXTERNAL, new Uint8Array(2000).fill(0x61));
    expect(long.type).toBe('failure');
    expect(d.audit.events.at(-1)?.reason).toBe('malformed');
  });
});

// ── The provider contract suite, every credential presented over a real TLS handshake ─────────
// The directory behind the provider knows alice (active) and erin (disabled); nobody's certificate
// is valid but maps to no account. The wrong secret is a certificate for alice from a rogue CA
// with the real CA's name: a strict transport refuses it in the handshake (tested above), so the
// contract presents it through a lenient one, where EXTERNAL must refuse the unverified chain.

runProviderContract('PKI over EXTERNAL (real TLS 1.3 client certificates)', async () => {
  const directory: Record<string, 'ok' | 'disabled'> = {
    'alice@example.test': 'ok',
    'erin@example.test': 'disabled',
  };
  const accountLookup = (address: string): Promise<IdentityLookup> => {
    const status = directory[address];
    return Promise.resolve(
      status === undefined
        ? { status: 'unknown' }
        : { status, identity: { principal: parseAddress(address), kind: 'person' } },
    );
  };
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
  });
  registry.registerMechanism(externalServer());
  const provider = (await registry.registerProvider(
    pkiProvider({ caPem: ca.certPem, crlPem, accountLookup }),
  )) as PkiCredentialProvider;
  const d: Domain = {
    authenticator: null as unknown as Authenticator,
    audit: new MemoryAuditSink(),
    provider,
  };
  const strict = await tlsServer(d);
  const lenient = await tlsServer(d, false);
  const viaTls = (server: Server, cert: Issued) => ({
    mechanisms: [externalClient()],
    channel: async (remoteAddress: string): Promise<ChannelInfo> => {
      const { result, close } = await handshake(server, cert);
      try {
        if (!result.ok) throw new Error(`handshake failed: ${result.error}`);
        return { ...channelOf(result.socket), remoteAddress };
      } finally {
        close();
      }
    },
  });
  return {
    registry,
    domain: DOMAIN,
    mechanisms: [{ mechanism: EXTERNAL, provider: 'pki' }],
    providerName: 'pki',
    good: viaTls(strict, certs.alice!),
    wrongSecret: viaTls(lenient, certs.rogue!),
    unknownUser: viaTls(strict, certs.nobody!),
    disabledUser: viaTls(strict, certs.erin!),
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets: [certs.alice!.keyPem.split('\n')[1]!, certs.rogue!.keyPem.split('\n')[1]!],
    close: () => {
      strict.close();
      lenient.close();
      return Promise.resolve();
    },
  };
});
