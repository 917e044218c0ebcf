/**
 * The server configuration file: one YAML document that sets the domain, where the server
 * listens, its TLS certificate, the data folder, transport limits, store quotas, the log level,
 * and the domain trust section (authentication mechanisms, providers, policy, federation).
 *
 * Like the domain trust configuration (src/trust/config.ts), the file is untrusted input until
 * validated: objects are strict (an unknown or misspelt field is an error), every problem is
 * reported at once in one `ERR_CONFIG_INVALID` naming the file and the path of each bad field.
 * The `trust` section is validated by the domain trust schema itself, so there is one definition
 * of what a valid trust configuration is; its problems are reported under `trust.`.
 *
 * Relative paths in a file are resolved against the file's folder (so a configuration means the
 * same whatever folder the server is started from); without a file, against the working folder.
 * See docs/operations.md for the reference and an example.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ImppError, isImppError } from '../../errors.js';
import { domainTrustConfigSchema, type DomainTrustConfig } from '../../trust/config.js';
import {
  type ConfigProblem,
  configError,
  configErrorMap,
  domainNameSchema,
  expecting,
  filePathSchema,
  parseConfigYaml,
  problemsOf,
} from '../../trust/config-support.js';
import {
  DEFAULT_CLIENT_PORT,
  DEFAULT_LIMITS,
  DEFAULT_WEBSOCKET_PORT,
  resolveLimits,
  type TransportLimits,
} from '../../transport/limits.js';
import { DEFAULT_STORE_QUOTAS, type StoreQuotas } from '../store/types.js';
import { resolveDataDir } from './data-dir.js';

/** The domain served when no configuration file sets one. */
export const DEFAULT_DOMAIN = 'localhost';
/** Listening address when none is configured: loopback only, so a first start exposes nothing. */
export const DEFAULT_LISTEN_HOST = '127.0.0.1';
/** pino's levels. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A log level of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The trust section used when the file has none: local accounts over SCRAM, -PLUS first. */
export const DEFAULT_TRUST_SECTION = Object.freeze({
  authentication: {
    mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    providers: [{ type: 'local', id: 'local' }],
  },
});

/** One listener. `port` 0 asks the system for a free port (tests). */
export interface ListenConfig {
  readonly enabled: boolean;
  readonly host: string;
  readonly port: number;
}

/** Where the server's certificate comes from. */
export type TlsConfig =
  | {
      /** The local CA in the data folder issues it (embedded default). */
      readonly source: 'local-ca';
      /** Names besides the domain and the loopback names. */
      readonly extraNames: readonly string[];
    }
  | {
      /** Files the operator provides (e.g. from a public CA); absolute paths. */
      readonly source: 'files';
      readonly certPath: string;
      readonly keyPath: string;
    };

/**
 * The port of the server-to-server protocol (docs/protocol.md, "Ports"); the same number as
 * `DEFAULT_FEDERATION_PORT` of src/federation, which this module may not import.
 */
export const DEFAULT_FEDERATION_LISTEN_PORT = 5332;
/** Default back-off of a peer's queue: first retry within a second, doubling up to 5 minutes. */
export const DEFAULT_FEDERATION_RETRY = Object.freeze({ baseMs: 1000, maxMs: 300_000 });
/** Default time after which an object queued for an unreachable peer is bounced: two days. */
export const DEFAULT_FEDERATION_EXPIRE_MS = 2 * 24 * 3600_000;

/** One place a peer domain is reached at (a static route, instead of SRV records). */
export interface FederationRoute {
  readonly host: string;
  readonly port: number;
}

/**
 * How this server takes part in federation. Who it federates with, and how each peer proves
 * itself, is the trust section's `federation` (src/trust/config.ts); this is the rest.
 */
export interface FederationServeConfig {
  /** Off unless set, or unless the trust section allows a peer (or unlisted `webpki`). */
  readonly enabled: boolean;
  readonly listen: { readonly host: string; readonly port: number };
  /**
   * The certificate and key presented on links (absolute paths); `undefined`: the server's
   * TLS certificate. Either must name the domain (dNSName) with serverAuth and clientAuth.
   */
  readonly tls: { readonly certPath: string; readonly keyPath: string } | undefined;
  /** Static routes per peer domain, tried in order, before DNS (RFC 3861 SRV). */
  readonly routes: ReadonlyMap<string, readonly FederationRoute[]>;
  readonly retry: { readonly baseMs: number; readonly maxMs: number };
  /** Objects queued longer than this for an unreachable peer are bounced to their senders. */
  readonly expireAfterMs: number;
}

/** The validated, fully defaulted server configuration. */
export interface ServerConfig {
  readonly domain: string;
  /** Absolute path of the data folder. */
  readonly dataDir: string;
  readonly listen: { readonly tls: ListenConfig; readonly websocket: ListenConfig };
  readonly tls: TlsConfig;
  readonly limits: TransportLimits;
  readonly quotas: StoreQuotas;
  readonly log: { readonly level: LogLevel };
  /** The domain trust configuration (its `domain` is {@link ServerConfig.domain}). */
  readonly trust: DomainTrustConfig;
  /** Federation with other domains (listener, link certificate, routes, retry). */
  readonly federation: FederationServeConfig;
  /** Absolute path of the file this was read from, or `undefined` for the defaults. */
  readonly source: string | undefined;
}

const host = z
  .string()
  .min(1, { error: 'must be a host name or IP address' })
  .max(253, { error: 'is longer than 253 characters' })
  .regex(/^[A-Za-z0-9.:-]+$/, { error: 'must be a host name or IP address (e.g. 127.0.0.1, ::)' });

function listener(defaultPort: number) {
  return z.strictObject({
    enabled: z.boolean({ error: expecting('must be true or false') }).default(true),
    host: host.default(DEFAULT_LISTEN_HOST),
    port: z
      .int({ error: expecting('must be an integer port number') })
      .min(0, { error: 'must be 0..65535' })
      .max(65_535, { error: 'must be 0..65535' })
      .default(defaultPort),
  });
}

const positiveInt = z
  .int({ error: expecting('must be a positive integer') })
  .min(1, { error: 'must be a positive integer' });

/** Each transport limit, optional; cross-field rules are checked by resolveLimits. */
const limitsShape = z.strictObject(
  Object.fromEntries(Object.keys(DEFAULT_LIMITS).map((k) => [k, positiveInt.optional()])) as Record<
    keyof TransportLimits,
    z.ZodOptional<typeof positiveInt>
  >,
);

const quotasShape = z.strictObject(
  Object.fromEntries(
    Object.keys(DEFAULT_STORE_QUOTAS).map((k) => [k, positiveInt.optional()]),
  ) as Record<keyof StoreQuotas, z.ZodOptional<typeof positiveInt>>,
);

const tlsShape = z
  .strictObject({
    cert: filePathSchema.optional(),
    key: filePathSchema.optional(),
    extraNames: z.array(host).max(32, { error: 'must list at most 32 names' }).default([]),
  })
  .superRefine((v, ctx) => {
    if ((v.cert === undefined) !== (v.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'must have both "cert" and "key" (your own certificate) or neither (the local CA issues one)',
      });
    }
    if (v.cert !== undefined && v.extraNames.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['extraNames'],
        message: 'only applies to the certificate the local CA issues, not to "cert"/"key" files',
      });
    }
  });

/** `host:port` or `[v6]:port`. */
const routeTarget = z.string().transform((value, ctx) => {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port < 1 || port > 65_535) {
    ctx.issues.push({
      code: 'custom',
      input: value,
      message: 'must be HOST:PORT (e.g. 127.0.0.1:5332 or [::1]:5332)',
    });
    return z.NEVER;
  }
  return { host: m[1] ?? m[2] ?? '', port };
});

const federationShape = z
  .strictObject({
    enabled: z.boolean({ error: expecting('must be true or false') }).optional(),
    listen: z
      .strictObject({
        host: host.default(DEFAULT_LISTEN_HOST),
        port: z
          .int({ error: expecting('must be an integer port number') })
          .min(0, { error: 'must be 0..65535' })
          .max(65_535, { error: 'must be 0..65535' })
          .default(DEFAULT_FEDERATION_LISTEN_PORT),
      })
      .prefault({}),
    cert: filePathSchema.optional(),
    key: filePathSchema.optional(),
    routes: z
      .record(z.string(), z.unknown(), {
        error: 'must map each peer domain to HOST:PORT (or a list of them)',
      })
      .default({})
      .transform((record, ctx) => {
        // One target or a list, with the problem reported at the domain's own path.
        const out: Record<string, { host: string; port: number }[]> = {};
        for (const [name, value] of Object.entries(record)) {
          const list = typeof value === 'string' ? [value] : value;
          const parsed = z.array(routeTarget).min(1).max(16).safeParse(list);
          if (!parsed.success) {
            ctx.issues.push({
              code: 'custom',
              input: value,
              path: [name],
              message: 'must be HOST:PORT (e.g. 127.0.0.1:5332 or [::1]:5332), or 1..16 of them',
            });
            continue;
          }
          out[name] = parsed.data;
        }
        return out;
      }),
    retry: z
      .strictObject({
        baseMs: positiveInt.default(DEFAULT_FEDERATION_RETRY.baseMs),
        maxMs: positiveInt.default(DEFAULT_FEDERATION_RETRY.maxMs),
      })
      .prefault({}),
    expireAfterMs: positiveInt.default(DEFAULT_FEDERATION_EXPIRE_MS),
  })
  .superRefine((v, ctx) => {
    if ((v.cert === undefined) !== (v.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'must have both "cert" and "key" (a link certificate of its own) or neither (the ' +
          "server's TLS certificate is used)",
      });
    }
    if (v.retry.baseMs > v.retry.maxMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['retry', 'baseMs'],
        message: 'must not be larger than retry.maxMs',
      });
    }
  });

/** The schema of the file (paths still as written). */
const fileSchema = z.strictObject({
  /** Format version; only 1 exists. Unknown versions are refused, never guessed at. */
  version: z.literal(1, { error: expecting('must be 1 (the only configuration format version)') }),
  domain: domainNameSchema,
  dataDir: filePathSchema.optional(),
  listen: z
    .strictObject({
      tls: listener(DEFAULT_CLIENT_PORT).prefault({}),
      websocket: listener(DEFAULT_WEBSOCKET_PORT).prefault({}),
    })
    .prefault({}),
  tls: tlsShape.prefault({}),
  limits: limitsShape.prefault({}),
  quotas: quotasShape.prefault({}),
  log: z
    .strictObject({
      level: z
        .enum(LOG_LEVELS, { error: expecting(`must be one of ${LOG_LEVELS.join(', ')}`) })
        .default('info'),
    })
    .prefault({}),
  federation: federationShape.prefault({}),
  /** The domain trust section without `version` and `domain` (they are the file's own). */
  trust: z.record(z.string(), z.unknown(), { error: 'must be a mapping' }).optional(),
});

// ---------------------------------------------------------------------------------------------
// Error reporting (the same shape as src/trust/config.ts: one line per problem, path first)
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Options of {@link parseServerConfig}. */
export interface ParseServerConfigOptions {
  /** Folder that relative paths are resolved against; the working folder by default. */
  readonly baseDir?: string;
  /** Environment (for `IMPP_DATA_DIR`); nothing by default. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Names the input in error messages and becomes {@link ServerConfig.source}. */
  readonly source?: string;
}

/**
 * Validates a parsed server configuration (YAML or JSON data) and returns it fully defaulted.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` listing every problem as `path: what is expected`.
 * @example
 * ```ts
 * const config = parseServerConfig({ version: 1, domain: 'example.com' });
 * config.listen.tls.port; // 5330
 * ```
 */
export function parseServerConfig(
  input: unknown,
  options: ParseServerConfigOptions = {},
): ServerConfig {
  const where =
    options.source === undefined ? 'server configuration' : `configuration file ${options.source}`;
  const base = options.baseDir ?? process.cwd();
  const parsed = fileSchema.safeParse(input, { error: configErrorMap });
  const problems: ConfigProblem[] = parsed.success ? [] : problemsOf(parsed.error.issues);

  // The trust section is checked even when the rest has problems, so that all are reported.
  const rawTrust: unknown =
    typeof input === 'object' && input !== null ? (input as { trust?: unknown }).trust : undefined;
  const trustInput = isPlainObject(rawTrust) ? rawTrust : DEFAULT_TRUST_SECTION;
  for (const key of ['version', 'domain'] as const) {
    if (key in trustInput) {
      problems.push({
        path: ['trust', key],
        message: `is set at the top level of the file; remove it here`,
      });
    }
  }
  const trust = domainTrustConfigSchema.safeParse(
    // An invalid top-level domain is reported once, at the top level.
    { ...trustInput, version: 1, domain: parsed.success ? parsed.data.domain : DEFAULT_DOMAIN },
    { error: configErrorMap },
  );
  if (!trust.success) problems.push(...problemsOf(trust.error.issues, ['trust']));
  if (!parsed.success) throw configError(where, problems);
  const file = parsed.data;

  let limits: TransportLimits | undefined;
  try {
    const overrides = Object.fromEntries(
      Object.entries(file.limits).filter(([, v]) => v !== undefined),
    ) as Partial<TransportLimits>;
    limits = resolveLimits(overrides);
  } catch (e) {
    if (!isImppError(e, 'ERR_CONFIG_INVALID')) throw e;
    // resolveLimits names the field itself ("limits.x must ...").
    problems.push({ path: [], message: e.message });
  }

  const { tls: tlsListen, websocket } = file.listen;
  if (tlsListen.enabled && websocket.enabled && tlsListen.port !== 0) {
    if (tlsListen.port === websocket.port && tlsListen.host === websocket.host) {
      problems.push({
        path: ['listen', 'websocket', 'port'],
        message: 'is the same as listen.tls.port on the same host',
      });
    }
  }
  if (!tlsListen.enabled && !websocket.enabled) {
    problems.push({ path: ['listen'], message: 'must leave at least one listener enabled' });
  }

  // Federation is on where the trust section names someone to federate with, unless told.
  let routes: Map<string, FederationRoute[]> | undefined;
  let federationEnabled = false;
  if (trust.success) {
    const fed = trust.data.federation;
    const someone = fed.unlisted === 'webpki' || fed.peers.some((p) => p.mode === 'allow');
    federationEnabled = file.federation.enabled ?? someone;
    if (federationEnabled && !someone) {
      problems.push({
        path: ['federation', 'enabled'],
        message:
          'is true, but trust.federation allows no peer: add trust.federation.peers ' +
          '(mode: allow) or set trust.federation.unlisted to webpki',
      });
    }
    if (federationEnabled) {
      if (file.domain === DEFAULT_DOMAIN) {
        problems.push({
          path: ['domain'],
          message: `must be a real domain name to federate (not ${DEFAULT_DOMAIN})`,
        });
      }
      const mine = [tlsListen, websocket].filter((l) => l.enabled);
      const fl = file.federation.listen;
      if (fl.port !== 0 && mine.some((l) => l.port === fl.port && l.host === fl.host)) {
        problems.push({
          path: ['federation', 'listen', 'port'],
          message: 'is the same as a client listener on the same host',
        });
      }
    }
    routes = new Map();
    for (const [name, target] of Object.entries(file.federation.routes)) {
      const domain = domainNameSchema.safeParse(name);
      if (!domain.success) {
        problems.push({ path: ['federation', 'routes', name], message: 'is not a domain name' });
        continue;
      }
      if (domain.data === file.domain) {
        problems.push({
          path: ['federation', 'routes', name],
          message: 'is this server’s own domain; routes are for peer domains',
        });
        continue;
      }
      routes.set(domain.data, target);
    }
  }

  if (problems.length > 0 || !trust.success || limits === undefined || routes === undefined) {
    throw configError(where, problems);
  }
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const quotas = Object.fromEntries(
    (Object.keys(DEFAULT_STORE_QUOTAS) as (keyof StoreQuotas)[]).map((k) => [
      k,
      file.quotas[k] ?? DEFAULT_STORE_QUOTAS[k],
    ]),
  ) as unknown as StoreQuotas;
  const tls: TlsConfig =
    file.tls.cert !== undefined && file.tls.key !== undefined
      ? { source: 'files', certPath: abs(file.tls.cert), keyPath: abs(file.tls.key) }
      : { source: 'local-ca', extraNames: file.tls.extraNames };
  return {
    domain: file.domain,
    dataDir:
      file.dataDir === undefined ? resolveDataDir(undefined, options.env) : abs(file.dataDir),
    listen: { tls: tlsListen, websocket },
    tls,
    limits,
    quotas: Object.freeze(quotas),
    log: file.log,
    trust: trust.data,
    federation: {
      enabled: federationEnabled,
      listen: file.federation.listen,
      tls:
        file.federation.cert !== undefined && file.federation.key !== undefined
          ? { certPath: abs(file.federation.cert), keyPath: abs(file.federation.key) }
          : undefined,
      routes,
      retry: file.federation.retry,
      expireAfterMs: file.federation.expireAfterMs,
    },
    source: options.source,
  };
}

/**
 * Parses YAML text (duplicate keys refused, aliases bounded) and validates it with
 * {@link parseServerConfig}.
 *
 * @throws ImppError `ERR_CONFIG_INVALID`.
 * @example
 * ```ts
 * const config = parseServerConfigYaml('version: 1\ndomain: example.com\n');
 * ```
 */
export function parseServerConfigYaml(
  text: string,
  options: ParseServerConfigOptions = {},
): ServerConfig {
  const where =
    options.source === undefined ? 'server configuration' : `configuration file ${options.source}`;
  const data = parseConfigYaml(text, where);
  return parseServerConfig(data, options);
}

/** Largest configuration file read (1 MiB): a configuration is small; a huge file is a mistake. */
export const MAX_CONFIG_FILE_BYTES = 1 << 20;

/**
 * Loads the server configuration: from the YAML file at `path`, or the embedded defaults when
 * `path` is `undefined` (domain `localhost`, loopback listeners on 5330/5331, the local CA, the
 * data folder from `IMPP_DATA_DIR` or `./.impp`, local accounts over SCRAM).
 *
 * @throws ImppError `ERR_CONFIG_INVALID` naming the file (unreadable, not YAML, or invalid, with
 *   the path of every bad field).
 * @example
 * ```ts
 * const config = loadServerConfig(options.config, process.env);
 * ```
 */
export function loadServerConfig(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>> = {},
): ServerConfig {
  if (path === undefined) {
    return parseServerConfig({ version: 1, domain: DEFAULT_DOMAIN }, { env });
  }
  const file = resolve(path);
  let text: string;
  try {
    const bytes = readFileSync(file);
    if (bytes.length > MAX_CONFIG_FILE_BYTES) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `configuration file ${file} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`,
      );
    }
    text = bytes.toString('utf8');
  } catch (cause) {
    if (isImppError(cause)) throw cause;
    const code = (cause as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ImppError('ERR_CONFIG_INVALID', `cannot read configuration file ${file} (${code})`, {
      cause,
    });
  }
  return parseServerConfigYaml(text, { baseDir: dirname(file), env, source: file });
}

/**
 * The SQLite file of the local accounts: the `store` of the first `local` provider of the trust
 * section when set, else `accounts.db` in the data folder.
 *
 * @example
 * ```ts
 * new SqliteLocalAccountRepository(localAccountsPath(config));
 * ```
 */
export function localAccountsPath(config: ServerConfig, baseDir?: string): string {
  const local = config.trust.authentication.providers.find((p) => p.type === 'local');
  const store = local?.type === 'local' ? local.store : undefined;
  if (store !== undefined) {
    const base = baseDir ?? (config.source === undefined ? process.cwd() : dirname(config.source));
    return isAbsolute(store) ? store : resolve(base, store);
  }
  return resolve(config.dataDir, 'accounts.db');
}
