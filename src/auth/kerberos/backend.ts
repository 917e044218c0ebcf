/**
 * GSS-API back ends for GS2-KRB5, behind one small interface:
 *
 * - `native`: impp's own minimal addon (native/gss-cb, built optionally with node-gyp against
 *   libgssapi_krb5). It passes RFC 5801 §5 channel bindings — the GS2 header, plus the RFC 9266
 *   tls-exporter value for -PLUS — to gss_init_sec_context / gss_accept_sec_context, and reports
 *   whether the acceptor saw them match (GSS_C_CHANNEL_BOUND_FLAG, MIT krb5 ≥ 1.19).
 * - `package`: the `kerberos` npm package. No channel bindings (it passes
 *   GSS_C_NO_CHANNEL_BINDINGS), so GS2-KRB5 only, never bound to the TLS channel.
 *
 * `auto` prefers the addon when it is built, and falls back to the package.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ImppError } from '../../errors.js';
import { loadKerberos, type KerberosModule } from './gss.js';

/** What one accepted context yields. */
export interface GssAcceptResult {
  /** Display name of the client principal, `user@REALM`. */
  readonly principal: string;
  /** Output token (the AP-REP), possibly empty. */
  readonly output: Uint8Array;
  /** `true` when the initiator's channel bindings matched `appData` (native back end only). */
  readonly channelBound: boolean;
}

/** One initiator context (client side). */
export interface GssInitiator {
  step(token: Uint8Array | null): Promise<{ output: Uint8Array; complete: boolean }>;
}

/** A GSS-API back end. */
export interface GssBackend {
  readonly name: 'native' | 'package';
  /** `true` when it can pass channel bindings (GS2-KRB5-PLUS possible). */
  readonly channelBindings: boolean;
  accept(service: string, framedToken: Uint8Array, appData: Uint8Array): Promise<GssAcceptResult>;
  initiator(service: string, appData: Uint8Array, principal?: string): Promise<GssInitiator>;
}

/** Which back end to use. */
export type GssBackendChoice = 'auto' | 'native' | 'package';

interface NativeAddon {
  accept(
    service: string,
    token: Buffer,
    appData: Buffer,
  ): { principal?: string; output: Buffer; flags: number; complete: boolean };
  Initiator: new (
    service: string,
    appData: Buffer,
    flags: number,
  ) => {
    step(token: Buffer | null): { output: Buffer; complete: boolean };
  };
  readonly GSS_C_MUTUAL_FLAG: number;
  readonly GSS_C_SEQUENCE_FLAG: number;
  readonly GSS_C_CHANNEL_BOUND_FLAG: number;
}

/** Where the optional addon is built, relative to this module (src/ or dist/ alike). */
const ADDON_URL = new URL('../../../native/gss-cb/build/Release/impp_gss_cb.node', import.meta.url);

let nativeCache: NativeAddon | null | undefined;

/**
 * Loads the native channel-binding addon, or `null` when it is not built.
 *
 * @example
 * ```ts
 * if (loadNativeAddon() === null) log.info('GS2-KRB5-PLUS unavailable: build native/gss-cb');
 * ```
 */
export function loadNativeAddon(): NativeAddon | null {
  if (nativeCache !== undefined) return nativeCache;
  try {
    const require = createRequire(import.meta.url);
    nativeCache = require(fileURLToPath(ADDON_URL)) as NativeAddon;
  } catch {
    nativeCache = null;
  }
  return nativeCache;
}

/** Hint carried by the error when -PLUS is configured without the addon. */
export const NATIVE_ADDON_HINT =
  "GS2-KRB5-PLUS needs impp's native GSS channel-binding addon: apt-get install libkrb5-dev, then " +
  'run `npx node-gyp rebuild --directory native/gss-cb` in the impp package';

const buf = (bytes: Uint8Array): Buffer =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function nativeBackend(addon: NativeAddon): GssBackend {
  const flags = addon.GSS_C_MUTUAL_FLAG | addon.GSS_C_SEQUENCE_FLAG;
  return {
    name: 'native',
    channelBindings: true,
    accept: (service, framedToken, appData) => {
      const r = addon.accept(service, buf(framedToken), buf(appData));
      if (!r.complete || r.principal === undefined) {
        return Promise.reject(new Error('GSS context not established in one step'));
      }
      return Promise.resolve({
        principal: r.principal,
        output: new Uint8Array(r.output),
        channelBound: (r.flags & addon.GSS_C_CHANNEL_BOUND_FLAG) !== 0,
      });
    },
    initiator: (service, appData, principal) => {
      if (principal !== undefined) {
        return Promise.reject(
          new ImppError(
            'ERR_CONFIG_INVALID',
            'the native GSS back end uses the default credential cache only',
          ),
        );
      }
      const ctx = new addon.Initiator(service, buf(appData), flags);
      return Promise.resolve({
        step: (token) => {
          const r = ctx.step(token === null ? null : buf(token));
          return Promise.resolve({ output: new Uint8Array(r.output), complete: r.complete });
        },
      });
    },
  };
}

function packageBackend(krb: KerberosModule): GssBackend {
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
  const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
  return {
    name: 'package',
    channelBindings: false,
    accept: async (service, framedToken) => {
      const acceptor = await krb.initializeServer(service).catch((e: unknown) => {
        throw new ImppError(
          'ERR_AUTH_PROVIDER_UNAVAILABLE',
          'cannot acquire acceptor credentials (keytab?)',
          { cause: e },
        );
      });
      const reply = (await acceptor.step(b64(framedToken))) as string | null;
      if (!acceptor.contextComplete || acceptor.username.length === 0) {
        throw new Error('GSS context not established in one step');
      }
      return { principal: acceptor.username, output: unb64(reply ?? ''), channelBound: false };
    },
    initiator: async (service, _appData, principal) => {
      const ctx = await krb.initializeClient(service, {
        mechOID: krb.GSS_MECH_OID_KRB5,
        gssFlag: krb.GSS_C_MUTUAL_FLAG | krb.GSS_C_SEQUENCE_FLAG,
        ...(principal === undefined ? {} : { principal }),
      });
      return {
        step: async (token) => {
          // The package answers null (despite its typings) when GSS produced no output token.
          const out = (await ctx.step(token === null ? '' : b64(token))) as string | null;
          return { output: unb64(out ?? ''), complete: ctx.contextComplete };
        },
      };
    },
  };
}

/**
 * Picks the back end. `'native'` without the addon throws ERR_AUTH_PROVIDER_UNAVAILABLE with
 * {@link NATIVE_ADDON_HINT}; `'package'` without the `kerberos` package throws it with the
 * package's install hint.
 *
 * @example
 * ```ts
 * const gss = await selectGssBackend('auto');
 * ```
 */
export async function selectGssBackend(
  choice: GssBackendChoice,
  loader: () => Promise<KerberosModule> = loadKerberos,
): Promise<GssBackend> {
  if (choice !== 'package') {
    const addon = loadNativeAddon();
    if (addon !== null) return nativeBackend(addon);
    if (choice === 'native')
      throw new ImppError('ERR_AUTH_PROVIDER_UNAVAILABLE', NATIVE_ADDON_HINT);
  }
  return packageBackend(await loader());
}
