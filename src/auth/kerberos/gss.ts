/**
 * Lazy access to the optional `kerberos` npm package (MIT/Heimdal GSS-API through node-gyp).
 *
 * impp installs without it (`optionalDependencies`): a deployment that does not use Kerberos never
 * loads it. When a Kerberos provider or mechanism is used and the package is missing (or failed to
 * compile), this module throws ERR_AUTH_PROVIDER_UNAVAILABLE naming exactly what to install.
 *
 * What the package can and cannot do (measured with kerberos 7.0.0 on Debian 12, MIT krb5 1.20):
 * - client: `initializeClient(service, { mechOID, gssFlag })` + `step` (+ wrap/unwrap);
 * - server: `initializeServer(service)` + `step` only — NO wrap/unwrap, and
 *   `gss_accept_sec_context` is called with GSS_C_NO_CHANNEL_BINDINGS, so neither the RFC 4752
 *   security-layer negotiation nor RFC 5801 §5 channel bindings are possible with it. Hence
 *   GS2-KRB5 (no security layer); -PLUS needs impp's native addon (backend.ts, native/gss-cb).
 * - the acceptor key comes from the keytab named by KRB5_KTNAME (process environment), replay
 *   detection from MIT's replay cache (KRB5RCACHENAME / KRB5RCACHEDIR / KRB5RCACHETYPE).
 */
import { ImppError } from '../../errors.js';

/** The parts of the `kerberos` package impp uses (typed here so impp compiles without it). */
export interface GssClientContext {
  step(challenge: string): Promise<string>;
  readonly contextComplete: boolean;
}
export interface GssServerContext {
  step(challenge: string): Promise<string>;
  readonly contextComplete: boolean;
  readonly username: string;
}
export interface KerberosModule {
  initializeClient(
    service: string,
    options?: { principal?: string; gssFlag?: number; mechOID?: number },
  ): Promise<GssClientContext>;
  initializeServer(service: string): Promise<GssServerContext>;
  readonly GSS_MECH_OID_KRB5: number;
  readonly GSS_C_MUTUAL_FLAG: number;
  readonly GSS_C_SEQUENCE_FLAG: number;
}

/** What to install, in the words the error carries. */
export const KERBEROS_INSTALL_HINT =
  'Kerberos support needs the optional "kerberos" npm package, built against the system GSS-API: ' +
  'apt-get install libkrb5-dev (Debian/Ubuntu; krb5-devel on Fedora/RHEL), then npm install kerberos';

type Importer = () => Promise<unknown>;
// A variable specifier keeps TypeScript and bundlers from requiring the optional package.
const PACKAGE = 'kerberos';
const defaultImporter: Importer = () => import(PACKAGE) as Promise<unknown>;

let cached: Promise<KerberosModule> | undefined;

function isKerberosModule(value: unknown): value is KerberosModule {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    typeof m.initializeClient === 'function' &&
    typeof m.initializeServer === 'function' &&
    typeof m.GSS_MECH_OID_KRB5 === 'number' &&
    typeof m.GSS_C_MUTUAL_FLAG === 'number'
  );
}

/**
 * Loads the `kerberos` package once. `importer` is for tests (simulating a missing package).
 *
 * @example
 * ```ts
 * const krb = await loadKerberos();
 * const ctx = await krb.initializeServer('impp@im.example.com');
 * ```
 */
export async function loadKerberos(importer?: Importer): Promise<KerberosModule> {
  if (importer === undefined && cached !== undefined) return cached;
  const attempt = (async () => {
    let mod: unknown;
    try {
      mod = await (importer ?? defaultImporter)();
    } catch (e) {
      throw new ImppError('ERR_AUTH_PROVIDER_UNAVAILABLE', KERBEROS_INSTALL_HINT, { cause: e });
    }
    const candidate = (mod as { default?: unknown }).default ?? mod;
    if (isKerberosModule(candidate)) return candidate;
    if (isKerberosModule(mod)) return mod;
    throw new ImppError('ERR_AUTH_PROVIDER_UNAVAILABLE', KERBEROS_INSTALL_HINT);
  })();
  if (importer === undefined) {
    cached = attempt;
    attempt.catch(() => {
      cached = undefined;
    });
  }
  return attempt;
}

/**
 * Points the process's GSS-API library at a keytab, configuration and replay cache.
 *
 * MIT krb5 reads these from the process environment when it creates a context, so they are
 * process-wide: one acceptor keytab per process. A second, different value is refused rather than
 * silently switching every other Kerberos acceptor in the process. Must run on the main thread:
 * in a worker thread `process.env` is a copy the native library never sees.
 *
 * @example
 * ```ts
 * configureGssEnvironment({ keytab: '/etc/impp/impp.keytab' });
 * ```
 */
export function configureGssEnvironment(settings: {
  readonly keytab?: string;
  readonly krb5Config?: string;
  readonly replayCache?: string;
}): void {
  const pairs: [string, string | undefined][] = [
    ['KRB5_KTNAME', settings.keytab === undefined ? undefined : withType(settings.keytab, 'FILE')],
    ['KRB5_CONFIG', settings.krb5Config],
    [
      'KRB5RCACHENAME',
      settings.replayCache === undefined ? undefined : withType(settings.replayCache, 'file2'),
    ],
  ];
  for (const [name, value] of pairs) {
    if (value === undefined) continue;
    const current = process.env[name];
    if (current !== undefined && current !== value && configuredHere.has(name)) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `kerberos: ${name} is process-wide and already set to another value`,
      );
    }
    process.env[name] = value;
    configuredHere.add(name);
  }
}
const configuredHere = new Set<string>();

/**
 * Refuses a disabled replay cache (`KRB5RCACHETYPE=none`, `KRB5RCACHENAME=none:`): without it
 * MIT accepts the same AP-REQ twice (measured: the replay test then fails).
 *
 * @example
 * ```ts
 * assertReplayCacheEnabled(); // at provider registration
 * ```
 */
export function assertReplayCacheEnabled(): void {
  const type = process.env.KRB5RCACHETYPE?.toLowerCase();
  const name = process.env.KRB5RCACHENAME?.toLowerCase();
  if (type === 'none' || name?.startsWith('none:') === true) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      'kerberos: the replay cache is disabled (KRB5RCACHETYPE/KRB5RCACHENAME none)',
    );
  }
}

function withType(path: string, type: string): string {
  return /^[A-Za-z0-9]+:/.test(path) ? path : `${type}:${path}`;
}
