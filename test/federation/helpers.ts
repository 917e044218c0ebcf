/**
 * Test domains for federation: each with a real TLS certificate from its own test CA, a domain
 * key, a trust configuration, and an endpoint listening on loopback; plus a raw link peer that
 * speaks the wire protocol by hand, for the adversarial cases an honest endpoint never produces.
 */
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  type SigningKeyPair,
  generateSigningKeyPair,
  randomBytes,
  toBase64Url,
} from '../../src/crypto/index.js';
import {
  FEDERATION_ALPN,
  FederationEndpoint,
  type FederationAuditEvent,
  type InboundObject,
  type LinkLimits,
  LinkFrameType,
  type SrvResolver,
} from '../../src/federation/index.js';
import { type CborValue } from '../../src/transport/cbor-strict.js';
import { FrameDecoder, type Frame, encodeFrame } from '../../src/transport/frame-codec.js';
import { tlsExporter } from '../../src/transport/carrier.js';
import { type DomainTrustConfig, parseDomainTrustConfig } from '../../src/trust/config.js';
import { type TestCa, type TestCert, createTestCa, issueCert } from '../helpers/tls-fixtures.js';

/** A domain's credentials: its CA, its link certificate, its domain key. */
export interface TestDomain {
  readonly domain: string;
  readonly ca: TestCa;
  readonly cert: TestCert;
  readonly key: SigningKeyPair;
}

/** Makes a domain with its own CA and a link certificate naming it (server and client usage). */
export async function makeDomain(domain: string): Promise<TestDomain> {
  const ca = await createTestCa({ commonName: `${domain} CA` });
  const cert = await issueCert(ca, { dnsNames: [domain], usage: 'both' });
  return { domain, ca, cert, key: generateSigningKeyPair() };
}

/** How `self` accepts one peer. */
export type PeerRule =
  | { readonly domain: string; readonly proof: 'x509'; readonly caPem: string }
  | { readonly domain: string; readonly proof: 'key'; readonly publicKey: Uint8Array }
  | { readonly domain: string; readonly proof: 'deny' };

/** A trust configuration for `domain` federating with `peers`. */
export function trustFor(
  domain: string,
  peers: readonly PeerRule[],
  unlisted: 'deny' | 'webpki' = 'deny',
): DomainTrustConfig {
  return parseDomainTrustConfig({
    version: 1,
    domain,
    authentication: {
      mechanisms: ['SCRAM-SHA-256-PLUS'],
      providers: [{ type: 'local', id: 'local' }],
    },
    federation: {
      unlisted,
      peers: peers.map((p) =>
        p.proof === 'deny'
          ? { domain: p.domain, mode: 'deny' }
          : p.proof === 'x509'
            ? {
                domain: p.domain,
                mode: 'allow',
                proof: { type: 'x509', trustAnchors: { pem: p.caPem } },
              }
            : {
                domain: p.domain,
                mode: 'allow',
                proof: { type: 'pinned-key', publicKey: toBase64Url(p.publicKey) },
              },
      ),
    },
  });
}

/** A running endpoint with what it delivered and audited. */
export interface RunningEndpoint {
  readonly endpoint: FederationEndpoint;
  readonly port: number;
  readonly delivered: InboundObject[];
  readonly audit: FederationAuditEvent[];
  /** Where each peer domain listens (static overrides, RFC 3861 resolution skipped). */
  readonly routes: Map<string, { host: string; port: number }[]>;
}

/** Starts an endpoint for `d` on loopback. */
export async function startEndpoint(
  d: TestDomain,
  peers: readonly PeerRule[],
  options: {
    cert?: TestCert;
    withKey?: boolean;
    limits?: Partial<LinkLimits>;
    deliver?: (o: InboundObject) => Promise<void> | void;
    resolver?: SrvResolver;
    unlisted?: 'deny' | 'webpki';
  } = {},
): Promise<RunningEndpoint> {
  const delivered: InboundObject[] = [];
  const audit: FederationAuditEvent[] = [];
  const routes = new Map<string, { host: string; port: number }[]>();
  const cert = options.cert ?? d.cert;
  const endpoint = new FederationEndpoint({
    local: {
      domain: d.domain,
      tls: { certPem: cert.certPem, keyPem: cert.keyPem },
      ...(options.withKey === false ? {} : { domainKey: d.key.secretKey }),
    },
    trust: trustFor(d.domain, peers, options.unlisted),
    deliver: async (o) => {
      await options.deliver?.(o);
      delivered.push(o);
    },
    limits: { preAuthTimeoutMs: 3000, ...options.limits },
    resolve: {
      overrides: routes,
      ...(options.resolver === undefined ? {} : { resolver: options.resolver }),
    },
  });
  endpoint.on('audit', (e) => audit.push(e));
  const port = await endpoint.listen({ port: 0, host: '127.0.0.1' });
  return { endpoint, port, delivered, audit, routes };
}

/** Tells `from` where `to` listens. */
export function route(from: RunningEndpoint, domain: string, to: RunningEndpoint): void {
  from.routes.set(domain, [{ host: '127.0.0.1', port: to.port }]);
}

/** A fresh 16-byte object id. */
export function newId(): Uint8Array {
  return randomBytes(16);
}

/** Waits until `check` is true (polling), or fails after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A hand-driven link peer: TLS with whatever certificate the test gives it, then frames written
 * and read one by one. Used to play the rogue or buggy server.
 */
export class RawPeer {
  readonly socket: TLSSocket;
  readonly #decoder = new FrameDecoder({ maxFrameBytes: 1024 * 1024 });
  readonly #frames: Frame[] = [];
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk);
      for (let f = this.#decoder.next(); f !== undefined; f = this.#decoder.next()) {
        this.#frames.push(f);
      }
      this.#wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Connects to `port` on loopback, presenting `cert` (if any), asking for `servername`. */
  static connect(
    port: number,
    servername: string,
    cert: TestCert | undefined,
    extra: ConnectionOptions = {},
  ): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        servername,
        ALPNProtocols: [FEDERATION_ALPN],
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
        ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }),
        ...extra,
      });
      socket.once('secureConnect', () => {
        resolve(new RawPeer(socket));
      });
      socket.once('error', reject);
      socket.once('close', () => {
        reject(new Error('closed before TLS completed'));
      });
    });
  }

  /** This connection's tls-exporter value. */
  exporter(): Uint8Array {
    return tlsExporter(this.socket);
  }

  send(type: number, body: CborValue): void {
    this.socket.write(encodeFrame({ type, body }).bytes);
  }

  /** The next frame, or null if the link closed first. */
  async next(ms = 3000): Promise<Frame | null> {
    const end = Date.now() + ms;
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) return f;
      if (this.closed) return null;
      if (Date.now() > end) throw new Error('no frame in time');
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Reads frames until CLOSE (or the end); returns the CLOSE body's code, or null. */
  async closeCode(ms = 3000): Promise<string | null> {
    for (;;) {
      const f = await this.next(ms);
      if (f === null) return null;
      if (f.type === LinkFrameType.CLOSE) {
        return (f.body as { code: string | null }).code;
      }
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A self-signed leaf certificate naming `domain` (no CA involved). */
export async function selfSignedFor(domain: string): Promise<TestCert> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  x509.cryptoProvider.set(webcrypto);
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${domain}`,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: domain }], false),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    cert,
    keys,
  };
}
