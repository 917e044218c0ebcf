/**
 * The credential-provider contract suite: every provider (local, LDAP, Kerberos, PKI, a company's
 * own) must pass it.
 *
 * Usage, in `test/auth/<provider>.test.ts`:
 *
 * ```ts
 * runProviderContract('local', async () => ({
 *   registry,                      // an AuthRegistry with the provider and its mechanism(s) registered
 *   domain: 'example.com',
 *   mechanisms: [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'local' }],
 *   providerName: 'local',
 *   good:     { mechanisms: scramClient({ username: 'alice', password: 'pw' }), channel },
 *   wrongSecret: { … same user, wrong password / another CA's certificate / a ticket for another service },
 *   unknownUser: { … },
 *   disabledUser: { … } | null,   // null when the backend cannot express "disabled"
 *   expectedPrincipal: { user: 'alice', domain: 'example.com' },
 *   secrets: ['pw', 'wrong-pw'],    // strings that must never appear in an audit event
 *   close: async () => { … },
 * }));
 * ```
 *
 * A credential is described by its SHAPE-INDEPENDENT parts only: the client mechanism factories
 * that present it (password-based SCRAM/PLAIN, a Kerberos token, a certificate-based EXTERNAL…)
 * and a function returning the channel it is presented on (for EXTERNAL the channel carries the
 * client certificate; for -PLUS it carries the tls-exporter value). The suite picks the remote
 * address itself, so it can test per-source rate limits. Factories are called once per exchange
 * (`create`), so single-use credentials (Kerberos tickets) can mint a fresh token each time.
 *
 * `setup` is called once (start slapd / the KDC there); the suite builds a fresh
 * {@link Authenticator} with its own audit sink and rate-limit policy for each test.
 *
 * What every provider must show:
 * - success: the expected principal, the provider's name in the result and in the audit event;
 * - wrong secret, unknown user, disabled user: failures whose WIRE bytes are identical (no
 *   enumeration), with the real reason in the audit event only;
 * - rate limit: after the burst of failures from one source, even a good credential from that
 *   source is answered `temporary-auth-failure` without consulting the provider, while a source that
 *   has logged in before still gets in (no lockout);
 * - audit: exactly one event per exchange, and no secret in any event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/auth/audit.js';
import { authenticate } from '../../src/auth/client.js';
import { DEFAULT_EXCHANGE_LIMITS, makeAuthPolicy } from '../../src/auth/policy.js';
import { DEFAULT_RATE_LIMIT } from '../../src/auth/rate-limit.js';
import type { AuthRegistry } from '../../src/auth/registry.js';
import { Authenticator } from '../../src/auth/server.js';
import {
  AuthError,
  type AuditEvent,
  type ChannelInfo,
  type ClientMechanismFactory,
  type MechanismBinding,
  type RateLimitPolicy,
} from '../../src/auth/types.js';
import type { Address } from '../../src/trust/address.js';
import { SessionTransport } from './helpers.js';

/** One credential as the contract suite presents it. */
export interface ContractCredential {
  /** Client mechanism factories that present this credential, in preference order. */
  readonly mechanisms: readonly ClientMechanismFactory[];
  /** The channel the credential is presented on; `remoteAddress` is chosen by the suite. */
  channel(remoteAddress: string): ChannelInfo | Promise<ChannelInfo>;
}

/** What a provider's test gives the contract suite. */
export interface ProviderContractFixture {
  /** A registry with the provider under test and the mechanisms it answers registered. */
  readonly registry: AuthRegistry;
  readonly domain: string;
  /** Policy mechanisms (all bound to the provider under test), in preference order. */
  readonly mechanisms: readonly MechanismBinding[];
  /** Name of the provider under test, as results and audit events must report it. */
  readonly providerName: string;
  readonly good: ContractCredential;
  /** The same account as `good`, with a wrong secret. */
  readonly wrongSecret: ContractCredential;
  readonly unknownUser: ContractCredential;
  /** A disabled account with its correct secret, or `null` when the backend has no such state. */
  readonly disabledUser: ContractCredential | null;
  readonly expectedPrincipal: Address;
  /** Strings (passwords, tokens as base64…) that must never appear in an audit event. */
  readonly secrets: readonly string[];
  close(): Promise<void>;
}

/** Every key an audit event may carry: a new key must be reviewed for secrets first. */
const AUDIT_KEYS = [
  'at',
  'channelBound',
  'claimedIdentity',
  'domain',
  'durationMs',
  'exchangeId',
  'mechanism',
  'principal',
  'provider',
  'reason',
  'remoteAddress',
  'secureChannel',
  'type',
  'wire',
].sort();

interface Attempt {
  readonly ok: boolean;
  readonly error: unknown;
  /** What the server sent after the first message, as bytes (for uniformity checks). */
  readonly finalWire: string;
  readonly event: AuditEvent | undefined;
}

/**
 * Registers the contract tests for one provider.
 *
 * @param name label in the test report
 * @param setup builds the fixture once (start external servers here)
 */
export function runProviderContract(
  name: string,
  setup: () => Promise<ProviderContractFixture>,
): void {
  describe(`credential provider contract: ${name}`, () => {
    let fx: ProviderContractFixture;
    let sourceCounter = 0;
    const freshSource = (): string =>
      `198.18.${(sourceCounter >> 8) & 255}.${sourceCounter++ & 255}`;

    beforeAll(async () => {
      fx = await setup();
    });
    afterAll(async () => {
      await fx.close();
    });

    const server = (rateLimit: Partial<RateLimitPolicy> = {}) => {
      const audit = new MemoryAuditSink();
      const policy = makeAuthPolicy(fx.domain, fx.mechanisms, {
        rateLimit: { ...DEFAULT_RATE_LIMIT, ...rateLimit },
        limits: { ...DEFAULT_EXCHANGE_LIMITS, minFailureMs: 0 },
      });
      return { audit, authenticator: new Authenticator(fx.registry, policy, { audit }) };
    };

    const attempt = async (
      s: ReturnType<typeof server>,
      credential: ContractCredential,
      source: string,
    ): Promise<Attempt> => {
      const channel = await credential.channel(source);
      const session = s.authenticator.begin(channel);
      const transport = new SessionTransport(session);
      const before = s.audit.events.length;
      let ok = false;
      let error: unknown = null;
      try {
        await authenticate(transport, credential.mechanisms, session.offered, channel);
        ok = true;
      } catch (e) {
        error = e;
      }
      expect(s.audit.events.length - before, 'exactly one audit event per exchange').toBe(1);
      const last = transport.wire.filter((w) => w.dir === 's2c').at(-1);
      return { ok, error, finalWire: last?.data ?? '', event: s.audit.events.at(-1) };
    };

    it('success: authenticates the expected principal, reported with the provider name', async () => {
      const s = server();
      const a = await attempt(s, fx.good, freshSource());
      expect(a.error).toBeNull();
      expect(a.ok).toBe(true);
      expect(a.event).toMatchObject({
        type: 'auth.success',
        provider: fx.providerName,
        principal: `${fx.expectedPrincipal.user}@${fx.expectedPrincipal.domain}`,
        reason: null,
      });
    });

    it('wrong secret, unknown user and disabled user fail with identical wire bytes', async () => {
      const s = server();
      const wrong = await attempt(s, fx.wrongSecret, freshSource());
      const unknown = await attempt(s, fx.unknownUser, freshSource());
      const cases: [string, Attempt, string][] = [
        ['wrong secret', wrong, 'bad-credential'],
        ['unknown user', unknown, 'unknown-user'],
      ];
      if (fx.disabledUser !== null) {
        cases.push(['disabled user', await attempt(s, fx.disabledUser, freshSource()), 'disabled']);
      }
      for (const [label, a, reason] of cases) {
        expect(a.ok, label).toBe(false);
        expect(a.error, label).toBeInstanceOf(AuthError);
        expect(a.finalWire, label).toBe(wrong.finalWire);
        expect(a.event, label).toMatchObject({
          type: 'auth.failure',
          reason,
          wire: 'not-authorized',
          principal: null,
        });
      }
      expect(wrong.finalWire).toBe('{"type":"failure","failure":"not-authorized"}');
    });

    it('rate limit: a source backs off after its burst, a known-good source still gets in', async () => {
      const s = server({
        sourceBurst: 2,
        accountBurst: 2,
        baseDelayMs: 60_000,
        maxDelayMs: 60_000,
      });
      const home = freshSource();
      expect((await attempt(s, fx.good, home)).ok).toBe(true);
      const attacker = freshSource();
      for (let i = 0; i < 3; i++)
        expect((await attempt(s, fx.wrongSecret, attacker)).ok).toBe(false);
      const blocked = await attempt(s, fx.good, attacker);
      expect(blocked.ok).toBe(false);
      expect(blocked.event).toMatchObject({
        reason: 'rate-limited',
        wire: 'temporary-auth-failure',
      });
      expect((await attempt(s, fx.good, home)).ok, 'no lockout from a known-good source').toBe(
        true,
      );
    });

    it('audit: every event has only reviewed fields and contains no secret', async () => {
      const s = server();
      await attempt(s, fx.good, freshSource());
      await attempt(s, fx.wrongSecret, freshSource());
      await attempt(s, fx.unknownUser, freshSource());
      if (fx.disabledUser !== null) await attempt(s, fx.disabledUser, freshSource());
      expect(s.audit.events.length).toBeGreaterThanOrEqual(3);
      const dump = JSON.stringify(s.audit.events);
      for (const e of s.audit.events) expect(Object.keys(e).sort()).toEqual(AUDIT_KEYS);
      for (const secret of fx.secrets) {
        expect(secret.length).toBeGreaterThan(0);
        expect(dump.includes(secret), 'secret in audit events').toBe(false);
        expect(
          dump.includes(Buffer.from(secret).toString('base64')),
          'base64 secret in audit events',
        ).toBe(false);
      }
    });
  });
}
