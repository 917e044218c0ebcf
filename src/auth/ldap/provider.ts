/**
 * LDAP / Active Directory credential provider (ldapts 8).
 *
 * - `verifyPassword` (used by PLAIN, RFC 4616): find the user's entry, refuse a disabled account,
 *   then a simple bind AS THE USER on a fresh connection verifies the password. The directory
 *   checks the password; impp never sees a hash.
 * - `getScramCredential` (used by SCRAM-SHA-256[-PLUS]): read an RFC 5803 `authPassword` verifier
 *   from a configured attribute, so SCRAM works against the directory too.
 *
 * Two ways to search:
 * - a service account (`serviceAccount`) binds for every search (needed for SCRAM verifiers);
 * - without one, "search after bind": the user's own bind DN comes from `userBindTemplate` (a DN
 *   such as `uid={user},ou=people,dc=example,dc=com`, or an Active Directory UPN such as
 *   `{user}@corp.example.com`), and the search runs on the user's connection.
 *
 * Security properties, each with a test in test/auth/ldap.test.ts:
 * - an empty password never reaches the directory (RFC 4513 §5.1.2 "unauthenticated bind";
 *   Active Directory answers it with success);
 * - user names are escaped in filters (RFC 4515) and DNs (RFC 4514): no LDAP injection;
 * - ldap:// is refused unless StartTLS is on; TLS verifies the directory's certificate against the
 *   configured CA (never `rejectUnauthorized: false`);
 * - more than one entry for a name is refused, never guessed between.
 */
import type { ConnectionOptions } from 'node:tls';
import { Client, InvalidCredentialsError, type Entry } from 'ldapts';
import { z } from 'zod';
import { ImppError } from '../../errors.js';
import { parseAddress, type Address } from '../../trust/address.js';
import { PRINCIPAL_KINDS } from '../../trust/principal.js';
import {
  AuthError,
  type CredentialProvider,
  type IdentityLookup,
  type PasswordVerdict,
  type ProviderCapability,
  type ProviderDeps,
  type ProviderIdentity,
  type ProviderPlugin,
  type ScramCredentialLookup,
} from '../types.js';
import { parseScramAuthPassword } from './authpassword.js';
import { escapeDnValue, fillFilter } from './escape.js';

const ldapConfigSchema = z
  .object({
    /** Name under which policy refers to this provider. */
    name: z.string().min(1).max(64).default('ldap'),
    /** `ldaps://host:636` or `ldap://host:389` (then `startTls` must be true). */
    url: z
      .string()
      .regex(/^ldaps?:\/\/[^/]+\/?$/, 'url must be ldap://host[:port] or ldaps://host[:port]'),
    startTls: z.boolean().default(false),
    /** PEM trust anchors for the directory's certificate. Without it, the system store is used. */
    caPem: z.union([z.string(), z.array(z.string())]).optional(),
    /** TLS server name to verify, when it differs from the URL's host. */
    tlsServerName: z.string().optional(),
    /** Tests and lab set-ups only: allow ldap:// without StartTLS (passwords in clear!). */
    allowInsecureTransport: z.boolean().default(false),
    timeoutMs: z.number().int().positive().max(60_000).default(5_000),
    serviceAccount: z.object({ dn: z.string().min(1), password: z.string().min(1) }).optional(),
    /** Bind DN (or AD UPN) of a user for search-after-bind, with `{user}`. */
    userBindTemplate: z.string().includes('{user}').optional(),
    userBase: z.string().min(1),
    /** Filter with `{user}`, e.g. `(&(objectClass=inetOrgPerson)(uid={user}))`. */
    userFilter: z.string().includes('{user}'),
    /** Attribute whose value becomes the address's user part (`uid`, `sAMAccountName`). */
    usernameAttribute: z.string().min(1).default('uid'),
    displayNameAttribute: z.string().min(1).default('cn'),
    /**
     * Filter that matches DISABLED entries, evaluated on the user's entry, e.g.
     * `(pwdAccountLockedTime=*)` (OpenLDAP ppolicy) or
     * `(userAccountControl:1.2.840.113556.1.4.803:=2)` (Active Directory).
     */
    disabledFilter: z.string().optional(),
    groups: z
      .object({
        base: z.string().min(1),
        /** With `{dn}` (the user's DN), e.g. `(&(objectClass=groupOfNames)(member={dn}))`. */
        filter: z.string().includes('{dn}'),
        nameAttribute: z.string().min(1).default('cn'),
      })
      .optional(),
    /** Attribute holding RFC 5803 SCRAM-SHA-256 verifiers, e.g. `authPassword`. */
    scramAttribute: z.string().min(1).optional(),
    /** Principal kind reported for directory users. */
    kind: z.enum(PRINCIPAL_KINDS).default('person'),
  })
  .strict();

/** Configuration of {@link ldapProvider}; see the field comments in the schema. */
export type LdapProviderConfig = z.input<typeof ldapConfigSchema>;
type Config = z.output<typeof ldapConfigSchema>;

const MAX_USERNAME = 256;

/**
 * Creates the LDAP / Active Directory provider plug-in.
 *
 * @example
 * ```ts
 * registry.registerProvider(ldapProvider({
 *   url: 'ldaps://ldap.example.com', caPem: readFileSync('corp-ca.pem', 'utf8'),
 *   serviceAccount: { dn: 'cn=impp,ou=services,dc=example,dc=com', password: secret },
 *   userBase: 'ou=people,dc=example,dc=com', userFilter: '(&(objectClass=person)(uid={user}))',
 *   disabledFilter: '(pwdAccountLockedTime=*)', scramAttribute: 'authPassword',
 * }));
 * ```
 */
export function ldapProvider(config: LdapProviderConfig): ProviderPlugin {
  const parsed = ldapConfigSchema.safeParse(config);
  if (!parsed.success) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `ldap provider: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    );
  }
  const cfg = parsed.data;
  if (cfg.url.startsWith('ldap://') && !cfg.startTls && !cfg.allowInsecureTransport) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      'ldap provider: ldap:// needs startTls: true (or use ldaps://)',
    );
  }
  if (cfg.serviceAccount === undefined && cfg.userBindTemplate === undefined) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      'ldap provider: set serviceAccount or userBindTemplate',
    );
  }
  if (cfg.scramAttribute !== undefined && cfg.serviceAccount === undefined) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      'ldap provider: scramAttribute needs a serviceAccount to read it',
    );
  }
  return (deps) => new LdapProvider(cfg, deps);
}

/**
 * The LDAP provider's extra method, for other providers that want the directory's word on an
 * account (e.g. the Kerberos and PKI providers' `accountLookup`).
 *
 * @example
 * ```ts
 * const ldap = (await registry.registerProvider(ldapProvider(cfg))) as LdapCredentialProvider;
 * kerberosProvider({ …, accountLookup: (address) => ldap.lookup(address) });
 * ```
 */
export interface LdapCredentialProvider extends CredentialProvider {
  /** Identity, groups and disabled state of `user` or `user@domain`, without a credential. */
  lookup(username: string): Promise<IdentityLookup>;
}

class LdapProvider implements LdapCredentialProvider {
  readonly name: string;
  readonly kind = 'ldap';
  readonly capabilities: readonly ProviderCapability[];

  constructor(
    private readonly cfg: Config,
    private readonly deps: ProviderDeps,
  ) {
    this.name = cfg.name;
    this.capabilities =
      cfg.scramAttribute === undefined ? ['verify-password'] : ['verify-password', 'scram-sha-256'];
    if (cfg.scramAttribute === undefined) {
      // The capability list must match the methods present (checked at registration).
      Object.defineProperty(this, 'getScramCredential', { value: undefined });
    }
  }

  async verifyPassword(username: string, password: string): Promise<PasswordVerdict> {
    const user = this.localPart(username);
    // Refused BEFORE any directory traffic: an empty password is an RFC 4513 §5.1.2
    // unauthenticated bind, which Active Directory (and slapd with `allow bind_anon_dn`) accepts.
    if (user === null || password.length === 0)
      return user === null ? { status: 'unknown' } : { status: 'bad-password' };
    if (this.cfg.serviceAccount !== undefined) {
      return this.withClient(async (search) => {
        await search.bind(
          this.cfg.serviceAccount?.dn ?? '',
          this.cfg.serviceAccount?.password ?? '',
        );
        const entry = await this.findUser(search, user, []);
        if (entry === null) return { status: 'unknown' };
        const identity = await this.identityOf(search, entry);
        if (await this.isDisabled(search, entry.dn)) return { status: 'disabled', identity };
        const ok = await this.withClient(async (userClient) =>
          this.bindAs(userClient, entry.dn, password),
        );
        return ok ? { status: 'ok', identity } : { status: 'bad-password' };
      });
    }
    // Search after bind: the user's own connection does the search.
    const template = this.cfg.userBindTemplate ?? '';
    const bindName = template.includes('=')
      ? template.replace('{user}', escapeDnValue(user))
      : /^[^\s@,;"\\<>+=]+$/.test(user)
        ? template.replace('{user}', user)
        : null;
    if (bindName === null) return { status: 'unknown' };
    return this.withClient(async (client) => {
      if (!(await this.bindAs(client, bindName, password))) return { status: 'bad-password' };
      const entry = await this.findUser(client, user, []);
      if (entry === null) return { status: 'unknown' };
      const identity = await this.identityOf(client, entry);
      if (await this.isDisabled(client, entry.dn)) return { status: 'disabled', identity };
      return { status: 'ok', identity };
    });
  }

  async getScramCredential(username: string): Promise<ScramCredentialLookup> {
    const attribute = this.cfg.scramAttribute;
    const account = this.cfg.serviceAccount;
    const user = this.localPart(username);
    if (attribute === undefined || account === undefined || user === null)
      return { status: 'unknown' };
    return this.withClient(async (client) => {
      await client.bind(account.dn, account.password);
      const entry = await this.findUser(client, user, [attribute]);
      if (entry === null) return { status: 'unknown' };
      const credential = values(entry, attribute)
        .map(parseScramAuthPassword)
        .find((c) => c !== null);
      // No (well-formed) verifier: the exchange continues with the core's fake salt and fails
      // like an unknown user, so the answer does not reveal which accounts have verifiers.
      if (credential === undefined) return { status: 'unknown' };
      const identity = await this.identityOf(client, entry);
      const status = (await this.isDisabled(client, entry.dn)) ? 'disabled' : 'ok';
      return { status, identity, credential };
    });
  }

  /** Lookup without a credential (e.g. to seed rosters); same rules as the login paths. */
  async lookup(username: string): Promise<IdentityLookup> {
    const account = this.cfg.serviceAccount;
    const user = this.localPart(username);
    if (account === undefined || user === null) return { status: 'unknown' };
    return this.withClient(async (client) => {
      await client.bind(account.dn, account.password);
      const entry = await this.findUser(client, user, []);
      if (entry === null) return { status: 'unknown' };
      const identity = await this.identityOf(client, entry);
      return (await this.isDisabled(client, entry.dn))
        ? { status: 'disabled', identity }
        : { status: 'ok', identity };
    });
  }

  /** `alice` or `alice@<our domain>` → `alice`; anything else (other domain, control chars) → null. */
  private localPart(username: string): string | null {
    if (username.length === 0 || username.length > MAX_USERNAME) return null;
    // Control characters never belong in a directory name and have confused LDAP servers before.
    if (/[\p{Cc}]/u.test(username)) return null;
    const at = username.lastIndexOf('@');
    if (at < 0) return username;
    if (username.slice(at + 1).toLowerCase() !== this.deps.domain.toLowerCase()) return null;
    const local = username.slice(0, at);
    return local.length === 0 ? null : local;
  }

  private async findUser(
    client: Client,
    user: string,
    extra: readonly string[],
  ): Promise<Entry | null> {
    const { searchEntries } = await client.search(this.cfg.userBase, {
      scope: 'sub',
      filter: fillFilter(this.cfg.userFilter, { user }),
      attributes: [this.cfg.usernameAttribute, this.cfg.displayNameAttribute, ...extra],
      sizeLimit: 2,
    });
    // Exactly one entry, or nothing: two entries for one name is a directory problem that must
    // not be resolved by picking one.
    return searchEntries.length === 1 ? (searchEntries[0] ?? null) : null;
  }

  private async isDisabled(client: Client, dn: string): Promise<boolean> {
    if (this.cfg.disabledFilter === undefined) return false;
    const { searchEntries } = await client.search(dn, {
      scope: 'base',
      filter: this.cfg.disabledFilter,
      attributes: ['1.1'],
    });
    return searchEntries.length > 0;
  }

  private async identityOf(client: Client, entry: Entry): Promise<ProviderIdentity> {
    const name = values(entry, this.cfg.usernameAttribute)[0];
    if (name === undefined)
      throw new AuthError('provider-unavailable', 'ldap: user entry lacks the username attribute');
    let principal: Address;
    try {
      principal = parseAddress(`${name}@${this.deps.domain}`);
    } catch (e) {
      throw new AuthError('provider-unavailable', 'ldap: directory name is not a valid address', {
        cause: e,
      });
    }
    const attributes: { groups?: readonly string[]; displayName?: string; dn: string } = {
      dn: entry.dn,
    };
    const displayName = values(entry, this.cfg.displayNameAttribute)[0];
    if (displayName !== undefined) attributes.displayName = displayName;
    if (this.cfg.groups !== undefined) {
      const g = this.cfg.groups;
      const { searchEntries } = await client.search(g.base, {
        scope: 'sub',
        filter: fillFilter(g.filter, { dn: entry.dn }),
        attributes: [g.nameAttribute],
        sizeLimit: 1000,
      });
      attributes.groups = searchEntries.flatMap((e) => values(e, g.nameAttribute)).sort();
    }
    return { principal, kind: this.cfg.kind, attributes };
  }

  /** Simple bind; `false` for invalid credentials (LDAP result 49), throws for anything else. */
  private async bindAs(client: Client, dn: string, password: string): Promise<boolean> {
    try {
      await client.bind(dn, password);
      return true;
    } catch (e) {
      if (e instanceof InvalidCredentialsError) return false;
      throw e;
    }
  }

  private tlsOptions(): ConnectionOptions {
    const options: ConnectionOptions = { minVersion: 'TLSv1.2', rejectUnauthorized: true };
    if (this.cfg.caPem !== undefined) options.ca = this.cfg.caPem;
    if (this.cfg.tlsServerName !== undefined) options.servername = this.cfg.tlsServerName;
    return options;
  }

  /** One connection per operation (TLS set up, always unbound); directory errors → provider-unavailable. */
  private async withClient<T>(body: (client: Client) => Promise<T>): Promise<T> {
    // ldapts switches to implicit TLS whenever `tlsOptions` is present, even for ldap:// — so
    // pass it only for ldaps:// and give StartTLS its options separately.
    const client = new Client({
      url: this.cfg.url,
      timeout: this.cfg.timeoutMs,
      connectTimeout: this.cfg.timeoutMs,
      ...(this.cfg.url.startsWith('ldaps://') ? { tlsOptions: this.tlsOptions() } : {}),
    });
    try {
      if (this.cfg.startTls) await client.startTLS(this.tlsOptions());
      return await body(client);
    } catch (e) {
      if (e instanceof AuthError) throw e;
      // The message names the failure class only: directory errors can echo the bind DN.
      throw new AuthError(
        'provider-unavailable',
        `ldap: directory operation failed (${errorName(e)})`,
        { cause: e },
      );
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }
}

function values(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const raw = key === undefined ? undefined : entry[key];
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((v) => (typeof v === 'string' ? v : Buffer.from(v).toString('utf8')));
}

function errorName(e: unknown): string {
  if (e instanceof Error) return e.name;
  return 'unknown error';
}
