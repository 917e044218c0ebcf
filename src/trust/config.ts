/**
 * The domain trust configuration: for one domain, which authentication mechanisms and credential
 * providers it accepts, the authentication policy, and which peer domains it federates with and
 * how each must prove itself.
 *
 * The configuration is untrusted input until {@link parseDomainTrustConfig} has validated it with
 * the zod schema below. Objects are strict (an unknown or misspelt field is an error, not silently
 * ignored), domain names go through the address module's normalization, and rules that span fields
 * (a mechanism with no provider able to answer it, PLAIN without TLS, a domain federating with
 * itself, a peer listed twice) are checked once every field has a valid shape. All problems of a
 * stage are reported at once in one `ERR_CONFIG_INVALID` error, each line naming the path of the bad field and what is expected. See
 * docs/trust.md for the reference and a YAML example.
 *
 * Secrets never appear inline: an LDAP bind password is a reference to a file or an environment
 * variable, so a configuration file can be reviewed, logged and committed.
 */
import { z } from 'zod';
import { fromBase64Url, isAllZero, toBase64Url } from '../crypto/bytes.js';
import { normalizeDomain } from './address.js';
import {
  configError,
  configErrorMap,
  domainNameSchema,
  expecting,
  filePathSchema,
  parseConfigYaml,
  problemsOf,
} from './config-support.js';

/** How errors name this configuration. */
const WHAT = 'domain trust configuration';

/** The closed set of SASL mechanism names a domain may accept (RFC 4422 names). */
export const AUTH_MECHANISMS = [
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-256',
  'PLAIN',
  'GS2-KRB5-PLUS',
  'GS2-KRB5',
  'EXTERNAL',
] as const;

/** A SASL mechanism name from {@link AUTH_MECHANISMS}. */
export type AuthMechanismName = (typeof AUTH_MECHANISMS)[number];

/** The closed set of credential provider types. */
export const PROVIDER_TYPES = ['local', 'ldap', 'kerberos', 'pki', 'custom'] as const;

/** A credential provider type from {@link PROVIDER_TYPES}. */
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/**
 * Which built-in provider types can answer which mechanism. SCRAM needs stored verifiers (local);
 * PLAIN is only for providers that must see the password to check it (an LDAP bind), never for a
 * store that holds SCRAM verifiers (that would only add a weaker path to the same accounts);
 * GS2-KRB5 (and its channel-bound -PLUS variant) needs a keytab; EXTERNAL needs a CA to check
 * the client certificate. An LDAP provider also answers SCRAM when it names the attribute holding
 * RFC 5803 verifiers (`scramAttribute`, see {@link mechanismsOf}). A `custom` provider declares
 * its mechanisms itself.
 */
const BUILTIN_PROVIDER_MECHANISMS: Readonly<
  Record<Exclude<ProviderType, 'custom'>, readonly AuthMechanismName[]>
> = {
  local: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
  ldap: ['PLAIN'],
  kerberos: ['GS2-KRB5-PLUS', 'GS2-KRB5'],
  pki: ['EXTERNAL'],
};

/** What an LDAP provider answers in addition to PLAIN when it reads RFC 5803 SCRAM verifiers. */
const LDAP_SCRAM_MECHANISMS: readonly AuthMechanismName[] = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'];

/** RFC 7677 §4: the iteration count of SCRAM-SHA-256 must be at least 4096. */
export const MIN_SCRAM_ITERATIONS = 4096;
/** Upper bound, so a configuration cannot make every login a denial of service. */
export const MAX_SCRAM_ITERATIONS = 10_000_000;
/** Longest inline PEM bundle accepted (1 MiB). */
export const MAX_INLINE_PEM_LENGTH = 1 << 20;

const providerId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, {
  error: 'must be 1..32 characters of a-z 0-9 -, starting with a letter or digit',
});

const mechanism = z.enum(AUTH_MECHANISMS, {
  error: expecting(`must be one of ${AUTH_MECHANISMS.join(', ')}`),
});

const PEM_BLOCK =
  /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;

/** Inline PEM: one or more CERTIFICATE blocks whose bodies are DER SEQUENCEs, nothing else. */
const pemBundle = z
  .string()
  .max(MAX_INLINE_PEM_LENGTH, { error: `is longer than ${MAX_INLINE_PEM_LENGTH} characters` })
  .superRefine((pem, ctx) => {
    let count = 0;
    let bad = false;
    for (const m of pem.matchAll(PEM_BLOCK)) {
      count++;
      const der = Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
      if (der.length < 2 || der[0] !== 0x30) bad = true;
    }
    const rest = pem.replace(PEM_BLOCK, '').trim();
    if (count === 0 || rest.length > 0 || bad) {
      ctx.addIssue({
        code: 'custom',
        message:
          'must be a PEM bundle of one or more "-----BEGIN CERTIFICATE-----" blocks and nothing else',
      });
    }
  });

/** Trust anchors: a PEM bundle file, or the PEM inline. Exactly one of the two. */
const trustAnchors = z
  .strictObject({ path: filePathSchema.optional(), pem: pemBundle.optional() })
  .superRefine((v, ctx) => {
    if ((v.path === undefined) === (v.pem === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'must have exactly one of "path" (a PEM bundle file) or "pem" (inline PEM)',
      });
    }
  });

/** A secret is a reference to where it lives, never the secret itself. */
const secretRef = z
  .strictObject({
    file: filePathSchema.optional(),
    env: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]{0,127}$/, {
        error: 'must be an environment variable name (A-Z 0-9 _)',
      })
      .optional(),
  })
  .superRefine((v, ctx) => {
    if ((v.file === undefined) === (v.env === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'must have exactly one of "file" or "env" (secrets are never written inline)',
      });
    }
  });

/** A pinned Ed25519 domain key: canonical unpadded base64url of exactly 32 bytes. */
const ed25519PublicKey = z.string().superRefine((text, ctx) => {
  let bytes: Uint8Array | undefined;
  try {
    bytes = fromBase64Url(text, 'publicKey');
  } catch {
    bytes = undefined;
  }
  if (bytes === undefined || toBase64Url(bytes) !== text) {
    ctx.addIssue({ code: 'custom', message: 'must be unpadded base64url (RFC 4648 §5)' });
  } else if (bytes.length !== 32) {
    ctx.addIssue({
      code: 'custom',
      message: `must encode a 32-byte Ed25519 public key, got ${bytes.length} bytes`,
    });
  } else if (isAllZero(bytes)) {
    ctx.addIssue({ code: 'custom', message: 'must not be the all-zero key' });
  }
});

// ---------------------------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------------------------

const localProvider = z.strictObject({
  type: z.literal('local'),
  id: providerId,
  /** SQLite file with SCRAM verifiers; the server's main database when absent. */
  store: filePathSchema.optional(),
});

/**
 * An LDAP server URL: `ldaps://host[:port]` or `ldap://host[:port]`, nothing else. Credentials in
 * the URL are refused (they would be a secret inline); a DN, attributes or filter in the URL
 * (RFC 4516) are refused because the search settings have their own fields.
 */
const ldapUrl = z.string().superRefine((text, ctx) => {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  const expected = 'must be an ldaps://host[:port] or ldap://host[:port] URL';
  // The URL parser drops leading and trailing spaces and controls and removes tabs and newlines
  // anywhere ("l\tdap://h" is ldap://h to it), so such a string would read differently here, in
  // the StartTLS rule and in whatever connects later. Refused: one spelling, read one way.
  if (/[\p{Cc}\s]/u.test(text)) {
    ctx.addIssue({ code: 'custom', message: `${expected} (no spaces or control characters)` });
  } else if (url === undefined || (url.protocol !== 'ldaps:' && url.protocol !== 'ldap:')) {
    ctx.addIssue({ code: 'custom', message: expected });
  } else if (url.username !== '' || url.password !== '') {
    ctx.addIssue({
      code: 'custom',
      message: 'must not contain credentials: use bind.password with { file } or { env }',
    });
  } else if (
    url.hostname === '' ||
    !['', '/'].includes(url.pathname) ||
    url.search !== '' ||
    url.hash !== ''
  ) {
    ctx.addIssue({ code: 'custom', message: `${expected} (no path, query or fragment)` });
  }
});

/** The protocol the URL parser reads from `text`, or undefined when it is not a URL. */
function ldapProtocolOf(text: string): string | undefined {
  try {
    return new URL(text).protocol;
  } catch {
    return undefined;
  }
}

const ldapProvider = z
  .strictObject({
    type: z.literal('ldap'),
    id: providerId,
    url: ldapUrl,
    startTls: z.boolean().default(false),
    bind: z.strictObject({ dn: z.string().min(1), password: secretRef }).optional(),
    userSearch: z.strictObject({
      base: z.string().min(1),
      filter: z.string().refine((f) => f.includes('{user}'), {
        error: 'must contain the {user} placeholder',
      }),
      scope: z.enum(['sub', 'one']).default('sub'),
    }),
    groupSearch: z
      .strictObject({
        base: z.string().min(1),
        filter: z.string().refine((f) => f.includes('{dn}'), {
          error: 'must contain the {dn} placeholder',
        }),
      })
      .optional(),
    caBundle: trustAnchors.optional(),
    timeoutMs: z.int().min(100).max(60_000).default(5000),
    /**
     * The attribute holding SCRAM-SHA-256 verifiers in the RFC 5803 `authPassword` format (e.g.
     * `authPassword`). With it the provider also answers SCRAM-SHA-256(-PLUS); reading it needs
     * the service account (`bind`).
     */
    scramAttribute: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,63}(;[A-Za-z0-9-]{1,64})*$/, {
        error: 'must be an LDAP attribute description like authPassword',
      })
      .optional(),
    /**
     * An LDAP filter that matches DISABLED user entries, checked on each login, e.g.
     * `(pwdAccountLockedTime=*)` (OpenLDAP ppolicy) or
     * `(userAccountControl:1.2.840.113556.1.4.803:=2)` (Active Directory).
     */
    disabledFilter: z.string().min(3).max(4096).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.scramAttribute !== undefined && p.bind === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['scramAttribute'],
        message: 'needs bind (a service account) to read the verifiers',
      });
    }
    // A PLAIN login binds as the user, so the directory itself refuses a locked account; a SCRAM
    // login never binds as the user, so without this filter a disabled account could log in.
    if (p.scramAttribute !== undefined && p.disabledFilter === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['disabledFilter'],
        message:
          'is needed with scramAttribute (SCRAM logins do not bind as the user, so the directory ' +
          'cannot refuse a locked account): e.g. (pwdAccountLockedTime=*) or ' +
          '(userAccountControl:1.2.840.113556.1.4.803:=2)',
      });
    }
    // The provider verifies passwords with an LDAP bind: on ldap:// without StartTLS the
    // password would cross the network in clear.
    if (ldapProtocolOf(p.url) !== 'ldaps:' && !p.startTls) {
      ctx.addIssue({
        code: 'custom',
        path: ['startTls'],
        message: 'must be true for an ldap:// URL (binds carry passwords); or use an ldaps:// URL',
      });
    }
  });

const kerberosProvider = z.strictObject({
  type: z.literal('kerberos'),
  id: providerId,
  keytab: filePathSchema,
  servicePrincipal: z.string().regex(/^[^\s@/]+\/[^\s@/]+(@[^\s@/]+)?$/, {
    error: 'must be a service principal like impp/host.example.com@EXAMPLE.COM',
  }),
  realm: z.string().regex(/^[A-Z0-9][A-Z0-9.-]{0,254}$/, {
    error: 'must be an upper-case Kerberos realm like EXAMPLE.COM',
  }),
  maxClockSkewSeconds: z.int().min(1).max(600).default(300),
});

const pkiProvider = z.strictObject({
  type: z.literal('pki'),
  id: providerId,
  trustAnchors,
  revocation: z.enum(['crl', 'ocsp', 'none']).default('crl'),
  crlPaths: z.array(filePathSchema).optional(),
  /** Where in the client certificate the user's address is read. */
  addressFrom: z.enum(['san-email', 'san-uri']).default('san-email'),
});

const customProvider = z.strictObject({
  type: z.literal('custom'),
  id: providerId,
  /** A module specifier or file path; the module exports a provider factory. */
  module: z.string().min(1).max(4096),
  /** The mechanisms this provider can answer, declared because the core cannot know. */
  mechanisms: z.array(mechanism).min(1, { error: 'must list at least one mechanism' }),
  options: z.record(z.string(), z.unknown()).default({}),
});

const provider = z.discriminatedUnion('type', [
  localProvider,
  ldapProvider,
  kerberosProvider,
  pkiProvider,
  customProvider,
]);

// ---------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------

const rateLimit = z.strictObject({
  attempts: z.int().min(1).max(1_000_000),
  windowSeconds: z.int().min(1).max(86_400),
});

const policy = z.strictObject({
  /**
   * impp has no plaintext mode: TLS on every connection, and PLAIN only inside it. The field
   * exists so that a configuration that asks for anything else is refused loudly rather than
   * ignored.
   */
  requireTls: z
    .literal(true, {
      error:
        'must be true: impp has no plaintext mode, and PLAIN without TLS would send passwords in clear',
    })
    .default(true),
  scram: z
    .strictObject({
      iterations: z
        .int()
        .min(MIN_SCRAM_ITERATIONS, {
          error: `must be at least ${MIN_SCRAM_ITERATIONS} (RFC 7677 §4)`,
        })
        .max(MAX_SCRAM_ITERATIONS)
        .default(100_000),
    })
    .prefault({}),
  rateLimits: z
    .strictObject({
      perAccount: rateLimit.default({ attempts: 10, windowSeconds: 900 }),
      perSource: rateLimit.default({ attempts: 100, windowSeconds: 60 }),
      lockoutSeconds: z.int().min(0).max(86_400).default(900),
    })
    .prefault({}),
  deviceEnrolment: z
    .strictObject({
      /** Mechanisms whose authentication may enrol a new device; all accepted ones when absent. */
      mechanisms: z.array(mechanism).min(1).optional(),
      maxDevicesPerUser: z.int().min(1).max(1000).default(10),
      /** A new device must be approved from an existing device of the same user (when one exists). */
      requireExistingDeviceApproval: z.boolean().default(false),
    })
    .prefault({}),
});

// ---------------------------------------------------------------------------------------------
// Federation
// ---------------------------------------------------------------------------------------------

const peerProof = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('x509'), trustAnchors }),
  z.strictObject({ type: z.literal('pinned-key'), publicKey: ed25519PublicKey }),
]);

const peer = z.discriminatedUnion('mode', [
  z.strictObject({ domain: domainNameSchema, mode: z.literal('allow'), proof: peerProof }),
  z.strictObject({ domain: domainNameSchema, mode: z.literal('deny') }),
]);

const federation = z.strictObject({
  /**
   * What happens with a domain that is not listed: `deny` (default) refuses it; `webpki` accepts
   * it if it presents a certificate for its domain that chains to the system's public CA roots.
   */
  unlisted: z.enum(['deny', 'webpki']).default('deny'),
  peers: z.array(peer).default([]),
});

// ---------------------------------------------------------------------------------------------
// The whole configuration
// ---------------------------------------------------------------------------------------------

/** Adds an issue for each value of `values` that appeared before, at `path(index)`. */
function refuseDuplicates(
  values: readonly string[],
  ctx: z.RefinementCtx,
  path: (index: number) => (string | number)[],
  what: string,
): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) {
      ctx.addIssue({ code: 'custom', path: path(i), message: `${what} is listed more than once` });
    }
    seen.add(v);
  });
}

/** The mechanisms a provider can answer. */
function mechanismsOf(p: z.output<typeof provider>): readonly AuthMechanismName[] {
  if (p.type === 'custom') return p.mechanisms;
  if (p.type === 'ldap' && p.scramAttribute !== undefined)
    return [...LDAP_SCRAM_MECHANISMS, ...BUILTIN_PROVIDER_MECHANISMS.ldap];
  return BUILTIN_PROVIDER_MECHANISMS[p.type];
}

/**
 * The zod schema of the domain trust configuration. Prefer {@link parseDomainTrustConfig}, which
 * turns validation failures into one `ERR_CONFIG_INVALID`.
 */
export const domainTrustConfigSchema = z
  .strictObject({
    /** Format version; only 1 exists. Unknown versions are refused, never guessed at. */
    version: z.literal(1, {
      error: expecting('must be 1 (the only configuration format version)'),
    }),
    domain: domainNameSchema,
    authentication: z.strictObject({
      /** Accepted mechanisms, most preferred first. */
      mechanisms: z.array(mechanism).min(1, { error: 'must list at least one mechanism' }),
      providers: z.array(provider).min(1, { error: 'must list at least one provider' }),
    }),
    policy: policy.prefault({}),
    federation: federation.prefault({}),
  })
  .superRefine((c, ctx) => {
    const mechs = c.authentication.mechanisms;
    refuseDuplicates(mechs, ctx, (i) => ['authentication', 'mechanisms', i], 'mechanism');
    refuseDuplicates(
      c.authentication.providers.map((p) => p.id),
      ctx,
      (i) => ['authentication', 'providers', i, 'id'],
      'provider id',
    );

    // Preference order must not rank SCRAM without channel binding above SCRAM-PLUS (RFC 5802
    // §6: the channel-bound variant is what detects a man in the middle).
    // The same for GS2-KRB5 (RFC 5801 §5: -PLUS binds the ticket to this TLS channel).
    for (const [bound, unbound] of [
      ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
      ['GS2-KRB5-PLUS', 'GS2-KRB5'],
    ] as const) {
      const plus = mechs.indexOf(bound);
      const plain = mechs.indexOf(unbound);
      if (plus >= 0 && plain >= 0 && plain < plus) {
        ctx.addIssue({
          code: 'custom',
          path: ['authentication', 'mechanisms', plain],
          message: `${unbound} must come after ${bound} in the preference order`,
        });
      }
    }

    mechs.forEach((m, i) => {
      if (!c.authentication.providers.some((p) => mechanismsOf(p).includes(m))) {
        const types = (
          Object.keys(BUILTIN_PROVIDER_MECHANISMS) as Exclude<ProviderType, 'custom'>[]
        )
          .filter((t) => BUILTIN_PROVIDER_MECHANISMS[t].includes(m))
          .join(' or ');
        ctx.addIssue({
          code: 'custom',
          path: ['authentication', 'mechanisms', i],
          message: `${m} has no provider that can answer it: add a ${types} provider, or a custom provider declaring ${m}`,
        });
      }
    });

    c.policy.deviceEnrolment.mechanisms?.forEach((m, i) => {
      if (!mechs.includes(m)) {
        ctx.addIssue({
          code: 'custom',
          path: ['policy', 'deviceEnrolment', 'mechanisms', i],
          message: `${m} is not in authentication.mechanisms, so no user can authenticate with it`,
        });
      }
    });

    refuseDuplicates(
      c.federation.peers.map((p) => p.domain),
      ctx,
      (i) => ['federation', 'peers', i, 'domain'],
      'peer domain',
    );
    c.federation.peers.forEach((p, i) => {
      if (p.domain === c.domain) {
        ctx.addIssue({
          code: 'custom',
          path: ['federation', 'peers', i, 'domain'],
          message: 'is this domain itself: a domain does not federate with itself',
        });
      }
    });
  });

/** The validated configuration (output of the schema: defaults filled in, domains canonical). */
export type DomainTrustConfig = z.output<typeof domainTrustConfigSchema>;
/** What may be written in a configuration file (input of the schema: defaults optional). */
export type DomainTrustConfigInput = z.input<typeof domainTrustConfigSchema>;
/** One credential provider entry. */
export type ProviderConfig = DomainTrustConfig['authentication']['providers'][number];
/** The authentication policy. */
export type AuthPolicyConfig = DomainTrustConfig['policy'];
/** The federation section. */
export type FederationConfig = DomainTrustConfig['federation'];
/** One peer entry. */
export type PeerConfig = FederationConfig['peers'][number];
/** How a listed peer proves itself. */
export type PeerProofConfig = Extract<PeerConfig, { mode: 'allow' }>['proof'];
/** A trust-anchor reference: `{ path }` or `{ pem }`. */
export type TrustAnchorsConfig = z.output<typeof trustAnchors>;

// ---------------------------------------------------------------------------------------------
// Parsing and error reporting
// ---------------------------------------------------------------------------------------------

/**
 * Validates a domain trust configuration (e.g. the result of parsing YAML or JSON) and returns it
 * with defaults filled in and domain names in canonical form.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` listing every problem as `path: what is expected`.
 * @example
 * ```ts
 * const config = parseDomainTrustConfig({
 *   version: 1,
 *   domain: 'example.com',
 *   authentication: {
 *     mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
 *     providers: [{ type: 'local', id: 'local' }],
 *   },
 * });
 * config.policy.scram.iterations; // 100000
 * ```
 */
export function parseDomainTrustConfig(input: unknown): DomainTrustConfig {
  const result = domainTrustConfigSchema.safeParse(input, { error: configErrorMap });
  if (!result.success) throw configError(WHAT, problemsOf(result.error.issues));
  return result.data;
}

/**
 * Parses YAML text (duplicate keys refused, aliases bounded) and validates it with
 * {@link parseDomainTrustConfig}. Syntax errors name the line and column, never the content.
 *
 * @throws ImppError `ERR_CONFIG_INVALID`.
 * @example
 * ```ts
 * const config = parseDomainTrustConfigYaml(readFileSync('impp.yaml', 'utf8'));
 * ```
 */
export function parseDomainTrustConfigYaml(text: string): DomainTrustConfig {
  return parseDomainTrustConfig(parseConfigYaml(text, WHAT));
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/** How a peer domain must prove itself, as decided by the configuration. */
export type PeerProof =
  | { readonly type: 'x509'; readonly trustAnchors: TrustAnchorsConfig }
  | { readonly type: 'pinned-key'; readonly publicKey: Uint8Array }
  | { readonly type: 'webpki' };

/**
 * The federation decision for one domain: either federated, with the proof the peer must give,
 * or not, with the reason.
 */
export type PeerTrust =
  | { readonly federated: true; readonly domain: string; readonly proof: PeerProof }
  | {
      readonly federated: false;
      readonly domain: string;
      readonly reason: 'self' | 'denied' | 'not-listed';
    };

/**
 * Says how a peer domain must prove itself before its server may speak for it, or that it is not
 * federated. The domain is normalized first (so `Partner.Example` finds `partner.example`).
 *
 * @throws ImppError `ERR_ADDRESS_INVALID` if `domain` is not a valid domain name.
 * @example
 * ```ts
 * const t = peerTrustFor(config, 'partner.example');
 * if (!t.federated) refuse(t.reason);
 * else if (t.proof.type === 'pinned-key') checkSignature(t.proof.publicKey);
 * ```
 */
export function peerTrustFor(config: DomainTrustConfig, domain: string): PeerTrust {
  const name = normalizeDomain(domain);
  if (name === config.domain) return { federated: false, domain: name, reason: 'self' };
  const entry = config.federation.peers.find((p) => p.domain === name);
  if (entry === undefined) {
    return config.federation.unlisted === 'webpki'
      ? { federated: true, domain: name, proof: { type: 'webpki' } }
      : { federated: false, domain: name, reason: 'not-listed' };
  }
  if (entry.mode === 'deny') return { federated: false, domain: name, reason: 'denied' };
  const proof: PeerProof =
    entry.proof.type === 'pinned-key'
      ? { type: 'pinned-key', publicKey: fromBase64Url(entry.proof.publicKey, 'publicKey') }
      : { type: 'x509', trustAnchors: entry.proof.trustAnchors };
  return { federated: true, domain: name, proof };
}

/**
 * The providers (in configuration order) that can answer `mechanism`, or `[]` if the domain does
 * not accept it.
 *
 * @example
 * ```ts
 * providersForMechanism(config, 'PLAIN').map((p) => p.id); // ['corp-ldap']
 * ```
 */
export function providersForMechanism(
  config: DomainTrustConfig,
  mechanism: AuthMechanismName,
): ProviderConfig[] {
  if (!config.authentication.mechanisms.includes(mechanism)) return [];
  return config.authentication.providers.filter((p) => mechanismsOf(p).includes(mechanism));
}

/**
 * The mechanisms whose authentication may enrol a new device (the policy's list, or every
 * accepted mechanism when the policy does not restrict it).
 *
 * @example
 * ```ts
 * enrolmentMechanisms(config); // ['GS2-KRB5', 'EXTERNAL']
 * ```
 */
export function enrolmentMechanisms(config: DomainTrustConfig): readonly AuthMechanismName[] {
  return config.policy.deviceEnrolment.mechanisms ?? config.authentication.mechanisms;
}
