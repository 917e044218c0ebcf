/**
 * `EXTERNAL` (RFC 4422 appendix A) for TLS client certificates.
 *
 * The client's credential is the certificate it proved possession of in the TLS handshake (its
 * CertificateVerify signs the handshake transcript), so the login is inherently tied to this TLS
 * connection: the result reports `channelBound: true` for that reason, although no tls-exporter
 * value is exchanged.
 *
 * Exchange: the client sends its authorization identity (empty, or exactly the address the
 * certificate maps to — anything else is refused) as the initial response.
 */
import { sha256, toHex } from '../../crypto/index.js';
import { parseAddress, sameAddress } from '../../trust/address.js';
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

export const EXTERNAL = 'EXTERNAL';

/** Metadata: only inside TLS (that is where the certificate comes from). */
export const EXTERNAL_METADATA: MechanismMetadata = {
  name: EXTERNAL,
  needsSecureChannel: true,
  channelBinding: 'none',
  needsCleartextPassword: false,
  providerCapability: 'certificate',
};

/** RFC 4422 §3.4.1: an authzid is at most a few hundred bytes in practice; 1 KiB is generous. */
const MAX_AUTHZID_BYTES = 1024;

/**
 * The EXTERNAL server mechanism plug-in.
 *
 * @example
 * ```ts
 * registry.registerMechanism(externalServer());
 * ```
 */
export function externalServer(): MechanismPlugin {
  return () => ({ metadata: EXTERNAL_METADATA, create: (ctx) => new ExternalServerExchange(ctx) });
}

class ExternalServerExchange implements ServerMechanism {
  readonly name = EXTERNAL;
  #asked = false;
  #done = false;

  constructor(private readonly ctx: ServerMechanismContext) {}

  async step(input: Uint8Array | null): Promise<ServerStep> {
    if (this.#done) throw new AuthError('aborted', 'EXTERNAL exchange is already finished');
    if (input === null) {
      if (this.#asked) throw new AuthError('malformed', 'EXTERNAL: missing client response');
      this.#asked = true;
      return { type: 'challenge', challenge: new Uint8Array(0) };
    }
    this.#done = true;
    const channel = this.ctx.channel;
    if (!channel.secure) throw new AuthError('insecure-channel', 'EXTERNAL refused outside TLS');
    if (input.length > MAX_AUTHZID_BYTES)
      throw new AuthError('malformed', 'EXTERNAL: authzid too long');
    let authzid: string;
    try {
      authzid = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch (e) {
      throw new AuthError('malformed', 'EXTERNAL: authzid is not UTF-8', { cause: e });
    }
    if (authzid.includes('\u0000')) throw new AuthError('malformed', 'EXTERNAL: NUL in authzid');
    const der = channel.peerCertificate;
    if (der === undefined || der.length === 0)
      throw new AuthError('bad-credential', 'EXTERNAL: no client certificate');
    // Rate limit and audit key: the certificate's fingerprint (what the client "claims" is the certificate).
    await this.ctx.claimIdentity(`cert:sha256:${toHex(sha256(der)).slice(0, 32)}`);
    if (
      channel.peerCertificateVerified !== true &&
      this.ctx.checks?.certificateChainVerified !== false
    ) {
      throw new AuthError('bad-credential', 'EXTERNAL: client certificate not verified by TLS');
    }
    const provider = this.ctx.provider;
    if (provider.mapCertificate === undefined)
      throw new AuthError('internal', 'provider paired with EXTERNAL cannot map certificates');
    const lookup = await provider.mapCertificate({
      der,
      chain: channel.peerCertificateChain ?? [],
      chainVerified: true,
      ...(this.ctx.checks === undefined ? {} : { checks: this.ctx.checks }),
    });
    if (lookup.status === 'unknown')
      throw new AuthError('unknown-user', 'EXTERNAL: certificate maps to no account');
    if (lookup.status === 'disabled')
      throw new AuthError('disabled', 'EXTERNAL: account is disabled');
    if (authzid.length > 0) {
      let requested;
      try {
        requested = parseAddress(authzid);
      } catch (e) {
        throw new AuthError('authzid-refused', 'EXTERNAL: authzid is not an address', { cause: e });
      }
      if (!sameAddress(requested, lookup.identity.principal)) {
        throw new AuthError(
          'authzid-refused',
          'EXTERNAL: authzid differs from the certificate identity',
        );
      }
    }
    return { type: 'success', identity: lookup.identity, channelBound: true };
  }
}

/**
 * EXTERNAL client factory. The certificate itself goes into the TLS connection options
 * (`key`/`cert`); this only sends the optional authzid.
 *
 * @example
 * ```ts
 * await authenticate(transport, [externalClient()], offered, channel);
 * ```
 */
export function externalClient(
  options: { readonly authzid?: string } = {},
): ClientMechanismFactory {
  return {
    metadata: EXTERNAL_METADATA,
    create: (ctx): ClientMechanism => {
      const response = (): Promise<Uint8Array> => {
        if (!ctx.channel.secure)
          return Promise.reject(new AuthError('insecure-channel', 'EXTERNAL refused outside TLS'));
        return Promise.resolve(new TextEncoder().encode(options.authzid ?? ''));
      };
      let sent = false;
      return {
        name: EXTERNAL,
        channelBound: true,
        start: async () => {
          sent = true;
          return response();
        },
        step: async (challenge) => {
          if (sent || challenge.length > 0)
            throw new AuthError('malformed', 'EXTERNAL: unexpected server challenge');
          sent = true;
          return response();
        },
        finish: (data) =>
          data === null || data.length === 0
            ? Promise.resolve()
            : Promise.reject(
                new AuthError('malformed', 'EXTERNAL success arrived with unexpected data'),
              ),
      };
    },
  };
}
