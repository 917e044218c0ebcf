/**
 * The client side of authentication: choosing a mechanism by the client's own policy and running
 * the exchange over whatever transport carries SASL messages.
 *
 * Choice: the first of the client's factories (its preference order, `-PLUS` first by default)
 * that the server offered and that can run on this channel. Downgrade detection: when the channel
 * has a tls-exporter value, the client can bind, and the server did not offer the `-PLUS` variant,
 * the list was probably stripped (a server that supports binding always offers it inside TLS 1.3).
 * With `requireChannelBinding` the client refuses (`ERR_AUTH_DOWNGRADE`); otherwise the SCRAM client
 * sends GS2 `y` so that a server which did offer -PLUS refuses (RFC 5802 §6).
 */
import {
  AuthError,
  type AuthFailureReason,
  type AuthWireFailure,
  type ChannelInfo,
  type ClientMechanismFactory,
} from './types.js';

/** A server's reply to a client message, as the transport decoded it. */
export type ServerReply =
  | { readonly type: 'challenge'; readonly challenge: Uint8Array }
  | { readonly type: 'success'; readonly additionalData: Uint8Array | null }
  | { readonly type: 'failure'; readonly failure: AuthWireFailure };

/** How the client sends SASL messages (frames, IMAP lines, an in-process session…). */
export interface ClientSaslTransport {
  start(mechanism: string, initialResponse: Uint8Array | null): Promise<ServerReply>;
  respond(data: Uint8Array): Promise<ServerReply>;
}

/** Options of {@link selectMechanism} and {@link authenticate}. */
export interface ClientAuthOptions {
  /** Refuse to authenticate without channel binding when the channel could provide it. */
  readonly requireChannelBinding?: boolean;
  /** Maximum number of server challenges accepted. Default 10. */
  readonly maxSteps?: number;
}

/** The choice {@link selectMechanism} made. */
export interface MechanismChoice {
  readonly factory: ClientMechanismFactory;
  /** `true` when a -PLUS variant the client supports was missing from a binding-capable channel. */
  readonly downgradeSuspected: boolean;
}

/** What a successful client exchange reports. */
export interface ClientAuthOutcome {
  readonly mechanism: string;
  readonly channelBound: boolean;
  readonly downgradeSuspected: boolean;
}

function usable(f: ClientMechanismFactory, channel: ChannelInfo): boolean {
  if (f.metadata.needsSecureChannel && !channel.secure) return false;
  if (f.metadata.channelBinding === 'tls-exporter' && channel.tlsExporter?.length !== 32)
    return false;
  return true;
}

/**
 * Picks the client's mechanism for this channel and offer.
 *
 * @throws AuthError `'downgrade'` with `requireChannelBinding` when binding was possible and not
 *   offered; `'mechanism-unavailable'` when nothing matches.
 * @example
 * ```ts
 * const { factory } = selectMechanism(scramClient({ username, password }), offered, channel);
 * ```
 */
export function selectMechanism(
  factories: readonly ClientMechanismFactory[],
  offered: readonly string[],
  channel: ChannelInfo,
  options: ClientAuthOptions = {},
): MechanismChoice {
  const bindingPossible = channel.secure && channel.tlsExporter?.length === 32;
  const plusWanted = factories.filter((f) => f.metadata.channelBinding === 'tls-exporter');
  const downgradeSuspected =
    bindingPossible &&
    plusWanted.length > 0 &&
    !plusWanted.some((f) => offered.includes(f.metadata.name));
  if (downgradeSuspected && options.requireChannelBinding === true) {
    throw new AuthError(
      'downgrade',
      'server did not offer a channel-binding mechanism on a channel that has one',
    );
  }
  for (const f of factories) {
    if (!offered.includes(f.metadata.name) || !usable(f, channel)) continue;
    if (
      options.requireChannelBinding === true &&
      bindingPossible &&
      f.metadata.channelBinding === 'none'
    )
      continue;
    if (f.metadata.needsCleartextPassword && !channel.secure) continue; // never PLAIN without TLS
    return { factory: f, downgradeSuspected };
  }
  throw new AuthError('mechanism-unavailable', 'no offered mechanism is acceptable to this client');
}

/** The audit-level reason a client attributes to a wire failure. */
export function reasonForWireFailure(failure: AuthWireFailure): AuthFailureReason {
  switch (failure) {
    case 'not-authorized':
      return 'bad-credential';
    case 'malformed-request':
      return 'malformed';
    case 'invalid-mechanism':
      return 'mechanism-unavailable';
    case 'encryption-required':
      return 'insecure-channel';
    case 'temporary-auth-failure':
      return 'rate-limited';
    case 'aborted':
      return 'aborted';
  }
}

/**
 * Runs a whole exchange: selects the mechanism, relays challenges, checks the server's final data.
 *
 * @throws AuthError with the mapped reason on any failure (a `'not-authorized'` answer becomes
 *   `'bad-credential'`; the client cannot know more, by design).
 * @example
 * ```ts
 * const out = await authenticate(transport, scramClient({ username, password }), offered, channel);
 * if (!out.channelBound) warn('login not bound to TLS');
 * ```
 */
export async function authenticate(
  transport: ClientSaslTransport,
  factories: readonly ClientMechanismFactory[],
  offered: readonly string[],
  channel: ChannelInfo,
  options: ClientAuthOptions = {},
): Promise<ClientAuthOutcome> {
  const choice = selectMechanism(factories, offered, channel, options);
  const mechanism = choice.factory.create({ channel, offeredMechanisms: offered });
  try {
    let reply = await transport.start(mechanism.name, await mechanism.start());
    const maxSteps = options.maxSteps ?? 10;
    for (let steps = 0; reply.type === 'challenge'; steps++) {
      if (steps >= maxSteps) throw new AuthError('aborted', 'server sent too many challenges');
      reply = await transport.respond(await mechanism.step(reply.challenge));
    }
    if (reply.type === 'failure') {
      throw new AuthError(
        reasonForWireFailure(reply.failure),
        `server refused authentication: ${reply.failure}`,
      );
    }
    await mechanism.finish(reply.additionalData);
    return {
      mechanism: mechanism.name,
      channelBound: mechanism.channelBound,
      downgradeSuspected: choice.downgradeSuspected,
    };
  } finally {
    mechanism.dispose?.();
  }
}
