/** Shared helpers for the auth tests: an in-process SASL transport and a local-provider server. */
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import type { ClientSaslTransport, ServerReply } from '../../src/auth/client.js';
import { makeAuthPolicy, DEFAULT_EXCHANGE_LIMITS } from '../../src/auth/policy.js';
import { LocalAccounts, localProvider } from '../../src/auth/providers/local.js';
import { SqliteLocalAccountRepository } from '../../src/auth/providers/local-store.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { scramServer } from '../../src/auth/scram/server.js';
import { Authenticator, type AuthSession, type SessionOutcome } from '../../src/auth/server.js';
import type { ChannelInfo, MechanismBinding, RateLimitPolicy } from '../../src/auth/types.js';
import { DEFAULT_RATE_LIMIT } from '../../src/auth/rate-limit.js';

export const DOMAIN = 'example.com';

/** A TLS-like channel with a fixed exporter (for in-process tests; real TLS is in tls.test.ts). */
export function tlsChannel(
  exporter: Uint8Array = randomBytes(32),
  remoteAddress = '192.0.2.10',
): ChannelInfo {
  return { secure: true, tlsVersion: 'TLSv1.3', tlsExporter: exporter, remoteAddress };
}

export const PLAINTEXT_CHANNEL: ChannelInfo = { secure: false, remoteAddress: '192.0.2.20' };

/** Turns a server session outcome into what a client transport sees (drops the server-only result). */
export function toReply(out: SessionOutcome): ServerReply {
  if (out.type === 'success') return { type: 'success', additionalData: out.additionalData };
  return out;
}

/** In-process transport that also keeps the last outcome (for the server-side result) and all wire bytes. */
export class SessionTransport implements ClientSaslTransport {
  last: SessionOutcome | null = null;
  readonly wire: { dir: 'c2s' | 's2c'; data: string }[] = [];

  constructor(readonly session: AuthSession) {}

  async start(mechanism: string, initial: Uint8Array | null): Promise<ServerReply> {
    this.wire.push({
      dir: 'c2s',
      data: `${mechanism} ${initial === null ? '=' : Buffer.from(initial).toString('base64')}`,
    });
    return this.#record(await this.session.start(mechanism, initial));
  }

  async respond(data: Uint8Array): Promise<ServerReply> {
    this.wire.push({ dir: 'c2s', data: Buffer.from(data).toString('base64') });
    return this.#record(await this.session.respond(data));
  }

  #record(out: SessionOutcome): ServerReply {
    this.last = out;
    const reply = toReply(out);
    this.wire.push({
      dir: 's2c',
      data: JSON.stringify(reply, (_k, v: unknown) =>
        v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v,
      ),
    });
    return reply;
  }
}

export interface LocalEnv {
  readonly registry: AuthRegistry;
  readonly accounts: LocalAccounts;
  readonly audit: MemoryAuditSink;
  readonly authenticator: Authenticator;
  close(): Promise<void>;
}

/** A domain with the local provider on an in-memory SQLite database and SCRAM(-PLUS). */
export async function localEnv(
  options: {
    mechanisms?: MechanismBinding[];
    rateLimit?: Partial<RateLimitPolicy>;
    minFailureMs?: number;
    now?: () => number;
    iterations?: number;
  } = {},
): Promise<LocalEnv> {
  const now = options.now ?? Date.now;
  const registry = new AuthRegistry({
    domain: DOMAIN,
    serverSecret: new SecretBytes(randomBytes(32)),
    now,
  });
  registry.registerMechanism(scramServer({ plus: true }));
  registry.registerMechanism(scramServer({ plus: false }));
  const repository = new SqliteLocalAccountRepository(':memory:');
  await registry.registerProvider(
    localProvider({ repository, iterations: options.iterations ?? 4096 }),
  );
  const accounts = new LocalAccounts(repository, DOMAIN, options.iterations ?? 4096, now);
  const audit = new MemoryAuditSink();
  const policy = makeAuthPolicy(
    DOMAIN,
    options.mechanisms ?? [
      { mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' },
      { mechanism: 'SCRAM-SHA-256', provider: 'local' },
    ],
    {
      rateLimit: { ...DEFAULT_RATE_LIMIT, ...options.rateLimit },
      limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: options.minFailureMs ?? 0 },
    },
  );
  const authenticator = new Authenticator(registry, policy, { audit, now });
  return { registry, accounts, audit, authenticator, close: () => registry.close() };
}
