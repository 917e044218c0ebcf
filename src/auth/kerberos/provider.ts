/**
 * Kerberos credential provider: where the service key is (keytab), which service principal
 * impp accepts for, and the rules that map an authenticated Kerberos principal to an impp address.
 *
 * Mapping rules (checked in order, first realm match wins; no match → unknown):
 * - the realm must be one of `realms` (exact, case-sensitive: Kerberos realms are);
 * - principals with an instance (`alice/admin@REALM`, `host/x@REALM`) are refused: they are
 *   administrative or machine identities, not people;
 * - the name part must match `userPattern` (default: lower/upper letters, digits, `.`, `_`, `-`),
 *   and is lower-cased unless `lowercase: false`;
 * - the address domain is the provider's domain: a provider never vouches for another domain.
 *
 * An optional `accountLookup` (e.g. the LDAP provider's `lookup`) lets the directory say whether
 * the account is disabled and which groups it has; without it, every mapped principal is active
 * (the KDC is the authority: a disabled Kerberos account gets no ticket at all).
 */
import { z } from 'zod';
import { ImppError } from '../../errors.js';
import { formatAddress, parseAddress } from '../../trust/address.js';
import type {
  CredentialProvider,
  IdentityLookup,
  ProviderCapability,
  ProviderDeps,
  ProviderPlugin,
} from '../types.js';
import { assertReplayCacheEnabled, configureGssEnvironment } from './gss.js';

const realmRule = z
  .object({
    realm: z
      .string()
      .regex(/^[A-Za-z0-9.-]{1,255}$/, 'realm must be letters, digits, dots and dashes'),
    userPattern: z.string().default('^[A-Za-z0-9._-]{1,64}$'),
    lowercase: z.boolean().default(true),
  })
  .strict();

const kerberosConfigSchema = z
  .object({
    name: z.string().min(1).max(64).default('kerberos'),
    /** GSS host-based service name `service@host`: the principal is `service/host@REALM`. */
    service: z.string().regex(/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+$/, 'service must be service@host'),
    /** Path of the service keytab (sets KRB5_KTNAME process-wide, see gss.ts). */
    keytab: z.string().min(1).optional(),
    /** Path of a krb5.conf for this process (sets KRB5_CONFIG). */
    krb5Config: z.string().min(1).optional(),
    /** Replay cache, e.g. `/var/lib/impp/krb5.rcache2` (sets KRB5RCACHENAME). */
    replayCache: z.string().min(1).optional(),
    realms: z.array(realmRule).min(1),
  })
  .strict();

/** Configuration of {@link kerberosProvider}. */
export type KerberosProviderConfig = z.input<typeof kerberosConfigSchema> & {
  /** Directory check for disabled accounts and groups, by `user@domain`. */
  readonly accountLookup?: (address: string) => Promise<IdentityLookup>;
};

/** The provider plus the acceptor settings the GS2-KRB5 mechanism reads. */
export interface KerberosCredentialProvider extends CredentialProvider {
  /** GSS host-based service name the acceptor uses, e.g. `impp@im.example.com`. */
  readonly kerberosService: string;
}

/**
 * `true` when `provider` is a Kerberos provider that tells the mechanism its service name.
 *
 * @example
 * ```ts
 * const service = isKerberosProvider(ctx.provider) ? ctx.provider.kerberosService : fallback;
 * ```
 */
export function isKerberosProvider(
  provider: CredentialProvider,
): provider is KerberosCredentialProvider {
  return typeof (provider as Partial<KerberosCredentialProvider>).kerberosService === 'string';
}

/**
 * Creates the Kerberos provider plug-in.
 *
 * @example
 * ```ts
 * await registry.registerProvider(kerberosProvider({
 *   service: 'impp@im.example.com', keytab: '/etc/impp/impp.keytab',
 *   realms: [{ realm: 'EXAMPLE.COM' }],
 * }));
 * ```
 */
export function kerberosProvider(config: KerberosProviderConfig): ProviderPlugin {
  const { accountLookup, ...rest } = config;
  const parsed = kerberosConfigSchema.safeParse(rest);
  if (!parsed.success) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `kerberos provider: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    );
  }
  const cfg = parsed.data;
  const rules = cfg.realms.map((r) => {
    let pattern: RegExp;
    try {
      pattern = new RegExp(r.userPattern, 'u');
    } catch (e) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        'kerberos provider: userPattern is not a regular expression',
        {
          cause: e,
        },
      );
    }
    return { ...r, pattern };
  });
  return (deps: ProviderDeps) => {
    configureGssEnvironment({
      ...(cfg.keytab === undefined ? {} : { keytab: cfg.keytab }),
      ...(cfg.krb5Config === undefined ? {} : { krb5Config: cfg.krb5Config }),
      ...(cfg.replayCache === undefined ? {} : { replayCache: cfg.replayCache }),
    });
    assertReplayCacheEnabled();
    const capabilities: readonly ProviderCapability[] = ['kerberos'];
    const provider: KerberosCredentialProvider = {
      name: cfg.name,
      kind: 'kerberos',
      capabilities,
      kerberosService: cfg.service,
      mapKerberosPrincipal: async (principal: string): Promise<IdentityLookup> => {
        const address = mapPrincipal(principal, rules, deps.domain);
        if (address === null) return { status: 'unknown' };
        if (accountLookup !== undefined) {
          const answer = await accountLookup(address);
          // The directory may only confirm or refuse THIS address, never substitute another.
          if (answer.status !== 'unknown' && formatAddress(answer.identity.principal) !== address) {
            return { status: 'unknown' };
          }
          return answer;
        }
        return {
          status: 'ok',
          identity: {
            principal: parseAddress(address),
            kind: 'person',
            attributes: { krb5Principal: principal },
          },
        };
      },
    };
    return provider;
  };
}

/**
 * Applies the realm rules: `alice@EXAMPLE.TEST` → `alice@example.test`, or `null` when refused.
 *
 * @example
 * ```ts
 * mapPrincipal('alice@EXAMPLE.TEST', [{ realm: 'EXAMPLE.TEST', pattern: /^[a-z]+$/u, lowercase: true }], 'example.test');
 * ```
 */
export function mapPrincipal(
  principal: string,
  rules: readonly { realm: string; pattern: RegExp; lowercase: boolean }[],
  domain: string,
): string | null {
  // RFC 1964 §2.1.1 display form: name components separated by "/", realm after an unescaped "@".
  // A backslash escapes; any escape at all is refused rather than interpreted.
  if (principal.length > 512 || principal.includes('\\')) return null;
  const at = principal.lastIndexOf('@');
  if (at <= 0) return null;
  const name = principal.slice(0, at);
  const realm = principal.slice(at + 1);
  if (name.includes('/') || name.includes('@')) return null;
  const rule = rules.find((r) => r.realm === realm);
  if (rule === undefined || !rule.pattern.test(name)) return null;
  const user = rule.lowercase ? name.toLowerCase() : name;
  try {
    return formatAddress(parseAddress(`${user}@${domain}`));
  } catch {
    return null;
  }
}
