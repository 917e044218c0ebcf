/**
 * `GS2-KRB5` and `GS2-KRB5-PLUS`: Kerberos V5 single sign-on through the GS2 bridge (RFC 5801,
 * RFC 1964 for the mechanism), with RFC 9266 `tls-exporter` channel binding for -PLUS.
 *
 * Why GS2 and not `GSSAPI` (RFC 4752): GSSAPI's last round needs gss_wrap/gss_unwrap on the
 * server to negotiate a security layer, and the `kerberos` package's server has neither. GS2 has
 * no security-layer negotiation: one context token from the client, the AP-REP back with the
 * success, mutual authentication done.
 *
 * Exchange (client first, RFC 5801 §4):
 *   C: gs2-header || krb5 initial context token with its RFC 2743 §3.1 header removed
 *   S: success, additional data = the AP-REP token, unmodified (mutual authentication)
 *
 * Channel bindings (RFC 5801 §5): application data = gs2-header || tls-exporter value (for `p=`).
 * - With impp's native addon (backend.ts), both sides pass them; -PLUS requires the acceptor's
 *   GSS_C_CHANNEL_BOUND_FLAG, so an AP-REQ relayed from another TLS connection is refused
 *   (different exporter value → "incorrect channel bindings"). GS2-KRB5 without -PLUS still binds
 *   the GS2 header (authzid) when both sides use the addon.
 * - With only the `kerberos` package, nothing is bound: GS2-KRB5 only, `channelBound: false`.
 *   Residual risk: whoever terminates the client's TLS can relay a fresh, unused AP-REQ once.
 * - Downgrade (RFC 5801 §4, as RFC 5802 §6): a client that could bind but was not offered -PLUS
 *   sends `y`; a server that did offer -PLUS refuses `y`.
 *
 * Replays: MIT's replay cache (KRB5RCACHENAME, default file2 in /var/tmp) refuses an AP-REQ seen
 * before, on any connection to this host within the clock-skew window (test: kerberos.test.ts).
 */
import { formatAddress } from '../../trust/address.js';
import { ImppError, isImppError } from '../../errors.js';
import {
  AuthError,
  type ClientMechanism,
  type ClientMechanismFactory,
  type MechanismMetadata,
  type MechanismPlugin,
  type ServerMechanism,
  type ServerMechanismContext,
  type ServerStep,
} from '../types.js';
import {
  loadNativeAddon,
  NATIVE_ADDON_HINT,
  selectGssBackend,
  type GssBackend,
  type GssBackendChoice,
  type GssInitiator,
} from './backend.js';
import type { KerberosModule } from './gss.js';
import { addTokenHeader, formatGs2Header, parseGs2Message, stripTokenHeader } from './gs2.js';
import { isKerberosProvider } from './provider.js';

export const GS2_KRB5 = 'GS2-KRB5';
export const GS2_KRB5_PLUS = 'GS2-KRB5-PLUS';

/** Metadata: Kerberos tickets are not passwords; TLS is still required. */
export const GS2_KRB5_METADATA: MechanismMetadata = {
  name: GS2_KRB5,
  needsSecureChannel: true,
  channelBinding: 'none',
  needsCleartextPassword: false,
  providerCapability: 'kerberos',
};

/** Metadata of the channel-bound variant (needs the native addon). */
export const GS2_KRB5_PLUS_METADATA: MechanismMetadata = {
  ...GS2_KRB5_METADATA,
  name: GS2_KRB5_PLUS,
  channelBinding: 'tls-exporter',
};

/** Bound on the client token: real AP-REQs are a few kB (PACs in AD can reach ~12 kB). */
const MAX_TOKEN_BYTES = 64 * 1024;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Options of {@link gs2Krb5Server}. */
export interface Gs2Krb5ServerOptions {
  /** `true` for GS2-KRB5-PLUS (tls-exporter binding required; needs the native addon). */
  readonly plus?: boolean;
  /** Service name when the paired provider is not a Kerberos provider (it normally is). */
  readonly service?: string;
  /** GSS back end; default `'auto'` (native addon when built, else the `kerberos` package). */
  readonly gss?: GssBackendChoice;
  /** Tests only: load the `kerberos` package from elsewhere. */
  readonly loader?: () => Promise<KerberosModule>;
}

/**
 * The GS2-KRB5 (or, with `plus: true`, GS2-KRB5-PLUS) server mechanism plug-in.
 *
 * @throws ImppError ERR_AUTH_PROVIDER_UNAVAILABLE at registration when -PLUS is asked for and
 *   the native addon is not built.
 * @example
 * ```ts
 * registry.registerMechanism(gs2Krb5Server({ plus: true }));
 * registry.registerMechanism(gs2Krb5Server());
 * ```
 */
export function gs2Krb5Server(options: Gs2Krb5ServerOptions = {}): MechanismPlugin {
  const plus = options.plus === true;
  return () => {
    if (plus && (options.gss === 'package' || loadNativeAddon() === null)) {
      throw new ImppError('ERR_AUTH_PROVIDER_UNAVAILABLE', NATIVE_ADDON_HINT);
    }
    return {
      metadata: plus ? GS2_KRB5_PLUS_METADATA : GS2_KRB5_METADATA,
      create: (ctx) => new Gs2Krb5ServerExchange(ctx, options, plus),
    };
  };
}

/** Classifies a GSS accept failure for the audit trail (the wire answer is uniform anyway). */
function acceptFailure(e: unknown): AuthError {
  if (e instanceof AuthError) return e;
  if (isImppError(e, 'ERR_AUTH_PROVIDER_UNAVAILABLE')) {
    return new AuthError('provider-unavailable', e.message, { cause: e });
  }
  const text = e instanceof Error ? e.message : '';
  if (/replay/i.test(text))
    return new AuthError('replay', 'GS2-KRB5: AP-REQ is a replay', { cause: e });
  if (/channel binding/i.test(text)) {
    return new AuthError('channel-binding-mismatch', 'GS2-KRB5: channel bindings differ', {
      cause: e,
    });
  }
  if (/defective|invalid token|malformed|ASN\.1|bad format/i.test(text)) {
    return new AuthError('malformed', 'GS2-KRB5: context token is malformed', { cause: e });
  }
  return new AuthError('bad-credential', 'GS2-KRB5: ticket refused by GSS-API', { cause: e });
}

class Gs2Krb5ServerExchange implements ServerMechanism {
  readonly name: string;
  #done = false;
  #askedForInitial = false;

  constructor(
    private readonly ctx: ServerMechanismContext,
    private readonly options: Gs2Krb5ServerOptions,
    private readonly plus: boolean,
  ) {
    this.name = plus ? GS2_KRB5_PLUS : GS2_KRB5;
  }

  async step(input: Uint8Array | null): Promise<ServerStep> {
    if (this.#done) throw new AuthError('aborted', 'GS2-KRB5 exchange is already finished');
    if (input === null || (input.length === 0 && !this.#askedForInitial)) {
      // RFC 4422 §3.3: no initial response → empty challenge, then the client's first message.
      if (this.#askedForInitial) throw new AuthError('malformed', 'GS2-KRB5: empty client message');
      this.#askedForInitial = true;
      return { type: 'challenge', challenge: new Uint8Array(0) };
    }
    this.#done = true;
    const channel = this.ctx.channel;
    if (!channel.secure) throw new AuthError('insecure-channel', 'GS2-KRB5 refused outside TLS');
    if (input.length > MAX_TOKEN_BYTES)
      throw new AuthError('malformed', 'GS2-KRB5: token too large');
    const { header, token } = parseGs2Message(input);
    let cbData: Uint8Array = new Uint8Array(0);
    if (this.plus) {
      if (header.cbFlag !== 'p' || header.cbName !== 'tls-exporter') {
        throw new AuthError(
          'channel-binding-mismatch',
          'GS2-KRB5-PLUS: client did not bind with tls-exporter',
        );
      }
      const exporter = channel.tlsExporter;
      if (exporter?.length !== 32)
        throw new AuthError('channel-binding-mismatch', 'GS2-KRB5-PLUS: no tls-exporter value');
      cbData = exporter;
    } else if (header.cbFlag === 'p') {
      // RFC 5801 §4: 'p' with the non-PLUS mechanism is an error.
      throw new AuthError(
        'channel-binding-mismatch',
        'GS2-KRB5: channel binding requested on the non-PLUS mechanism',
      );
    } else if (header.cbFlag === 'y' && this.ctx.offeredMechanisms.includes(GS2_KRB5_PLUS)) {
      // The client could bind and believes we cannot: someone removed -PLUS from our offer.
      throw new AuthError('downgrade', 'GS2-KRB5: client saw no -PLUS, but it was offered');
    }
    if (token.length === 0) throw new AuthError('malformed', 'GS2-KRB5: no context token');
    const service = isKerberosProvider(this.ctx.provider)
      ? this.ctx.provider.kerberosService
      : this.options.service;
    if (service === undefined)
      throw new AuthError('internal', 'GS2-KRB5: no Kerberos service name configured');
    let backend: GssBackend;
    try {
      backend = await selectGssBackend(
        this.plus ? 'native' : (this.options.gss ?? 'auto'),
        this.options.loader,
      );
    } catch (e) {
      throw new AuthError(
        'provider-unavailable',
        isImppError(e) ? e.message : 'GSS-API unavailable',
        { cause: e },
      );
    }
    // RFC 5801 §5: application data = gs2-header (no "F," here: refused by the parser) || cb data.
    const appData = concat(utf8(header.raw), cbData);
    let accepted;
    try {
      accepted = await backend.accept(service, addTokenHeader(token), appData);
    } catch (e) {
      throw acceptFailure(e);
    }
    if (this.plus && !accepted.channelBound) {
      // The initiator sent no bindings at all (MIT accepts that unless told otherwise).
      throw new AuthError(
        'channel-binding-mismatch',
        'GS2-KRB5-PLUS: initiator did not bind the channel',
      );
    }
    // The KDC vouches for the principal now; the rate limit and audit see it before the mapping.
    await this.ctx.claimIdentity(accepted.principal);
    const provider = this.ctx.provider;
    if (provider.mapKerberosPrincipal === undefined)
      throw new AuthError('internal', 'provider paired with GS2-KRB5 cannot map principals');
    const lookup = await provider.mapKerberosPrincipal(accepted.principal);
    if (lookup.status === 'unknown')
      throw new AuthError('unknown-user', 'GS2-KRB5: principal not mapped');
    if (lookup.status === 'disabled')
      throw new AuthError('disabled', 'GS2-KRB5: account is disabled');
    if (header.authzid !== null && header.authzid !== formatAddress(lookup.identity.principal)) {
      throw new AuthError(
        'authzid-refused',
        'GS2-KRB5: authorization identity differs from the principal',
      );
    }
    return {
      type: 'success',
      identity: lookup.identity,
      channelBound: this.plus,
      ...(accepted.output.length === 0 ? {} : { additionalData: accepted.output }),
    };
  }
}

/** Options of {@link gs2Krb5Client}. */
export interface Gs2Krb5ClientOptions {
  /** GSS host-based service name of the server, e.g. `impp@im.example.com`. */
  readonly service: string;
  /** Client principal to use from a credential-cache collection (`kerberos` package back end only). */
  readonly principal?: string;
  /** Authorization identity (`user@domain`) to request; default none. */
  readonly authzid?: string;
  /** `true` for the GS2-KRB5-PLUS factory (needs the native addon). */
  readonly plus?: boolean;
  readonly gss?: GssBackendChoice;
  readonly loader?: () => Promise<KerberosModule>;
}

/**
 * GS2-KRB5 client factory: initiates from the user's credential cache (after `kinit`, or the
 * desktop login) and checks the server's AP-REP (mutual authentication). Use
 * {@link gs2Krb5Clients} to get the -PLUS variant first when the addon is available.
 *
 * @example
 * ```ts
 * await authenticate(transport, gs2Krb5Clients({ service: 'impp@im.example.com' }), offered, channel);
 * ```
 */
export function gs2Krb5Client(options: Gs2Krb5ClientOptions): ClientMechanismFactory {
  const plus = options.plus === true;
  return {
    metadata: plus ? GS2_KRB5_PLUS_METADATA : GS2_KRB5_METADATA,
    create: (ctx): ClientMechanism => {
      let gss: GssInitiator | null = null;
      let sent = false;
      const initial = async (): Promise<Uint8Array> => {
        if (!ctx.channel.secure)
          throw new AuthError('insecure-channel', 'GS2-KRB5 refused outside TLS');
        if (sent)
          throw new AuthError('malformed', 'GS2-KRB5: server asked for a second initial message');
        const backend = await selectGssBackend(
          plus ? 'native' : (options.gss ?? 'auto'),
          options.loader,
        );
        const exporter = ctx.channel.tlsExporter;
        let header: string;
        let cbData: Uint8Array = new Uint8Array(0);
        if (plus) {
          if (exporter?.length !== 32)
            throw new AuthError('channel-binding-mismatch', 'GS2-KRB5-PLUS: no tls-exporter value');
          header = formatGs2Header('p=tls-exporter', options.authzid ?? null);
          cbData = exporter;
        } else {
          // RFC 5801 §4: 'y' when this client could bind but the server offered no -PLUS.
          const couldBind = backend.channelBindings && exporter?.length === 32;
          const flag = couldBind && !ctx.offeredMechanisms.includes(GS2_KRB5_PLUS) ? 'y' : 'n';
          header = formatGs2Header(flag, options.authzid ?? null);
        }
        gss = await backend.initiator(
          options.service,
          concat(utf8(header), cbData),
          options.principal,
        );
        const first = await gss.step(null);
        sent = true;
        return concat(utf8(header), stripTokenHeader(first.output));
      };
      return {
        name: plus ? GS2_KRB5_PLUS : GS2_KRB5,
        channelBound: plus,
        start: initial,
        step: (challenge) =>
          challenge.length === 0 && !sent
            ? initial()
            : Promise.reject(new AuthError('malformed', 'GS2-KRB5: unexpected server challenge')),
        finish: async (data) => {
          const context = gss;
          if (context === null)
            throw new AuthError('aborted', 'GS2-KRB5: success before the exchange started');
          // Mutual authentication: without a valid AP-REP the server has not proven its key.
          if (data === null || data.length === 0) {
            throw new AuthError(
              'bad-credential',
              'GS2-KRB5: server did not authenticate itself (no AP-REP)',
            );
          }
          let complete: boolean;
          try {
            complete = (await context.step(data)).complete;
          } catch (e) {
            throw new AuthError('bad-credential', 'GS2-KRB5: server AP-REP did not verify', {
              cause: e,
            });
          }
          if (!complete)
            throw new AuthError('bad-credential', 'GS2-KRB5: mutual authentication incomplete');
        },
      };
    },
  };
}

/**
 * Client factories in preference order: GS2-KRB5-PLUS when the native addon is built, then
 * GS2-KRB5.
 *
 * @example
 * ```ts
 * const factories = gs2Krb5Clients({ service: 'impp@im.example.com' });
 * ```
 */
export function gs2Krb5Clients(
  options: Omit<Gs2Krb5ClientOptions, 'plus'>,
): ClientMechanismFactory[] {
  const plain = gs2Krb5Client(options);
  if (options.gss === 'package' || options.principal !== undefined || loadNativeAddon() === null)
    return [plain];
  return [gs2Krb5Client({ ...options, plus: true }), plain];
}
