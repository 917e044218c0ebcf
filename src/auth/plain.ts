/**
 * The PLAIN mechanism (RFC 4616), server and client.
 *
 * PLAIN sends the password itself, so impp allows it only (a) inside TLS — the metadata says
 * `needsSecureChannel` and the authenticator never offers it otherwise — and (b) with providers
 * that verify a cleartext password (an LDAP bind), never with the local provider, which holds SCRAM
 * verifiers and no passwords. Both rules are checked at registration (`registry.ts`).
 *
 * Message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`, each part 1..255 octets of UTF-8
 * without NUL (the authzid may be empty). impp accepts an authzid only when it is empty or equal to
 * the authcid: there is no proxy authorization. An empty password is refused before the provider
 * is called: Active Directory treats an empty-password simple bind as an anonymous bind that
 * succeeds (RFC 4513 §5.1.2 "unauthenticated" bind).
 */
import { fromUtf8, utf8 } from '../crypto/index.js';
import { prepareUsername } from './scram/keys.js';
import {
  AuthError,
  type ClientMechanism,
  type ClientMechanismFactory,
  type MechanismMetadata,
  type MechanismPlugin,
  type ServerMechanism,
  type ServerMechanismContext,
  type ServerStep,
} from './types.js';

/** RFC 4616 §2: each field at most 255 octets. */
export const PLAIN_MAX_FIELD_BYTES = 255;

/** PLAIN's declared metadata. */
export const PLAIN_METADATA: MechanismMetadata = {
  name: 'PLAIN',
  needsSecureChannel: true,
  channelBinding: 'none',
  needsCleartextPassword: true,
  providerCapability: 'verify-password',
};

/** A parsed PLAIN message. */
export interface PlainMessage {
  readonly authzid: string;
  readonly authcid: string;
  readonly password: string;
}

/**
 * Parses a PLAIN message strictly: exactly two NUL separators, field sizes, UTF-8.
 *
 * @throws AuthError `'malformed'`.
 */
export function parsePlainMessage(bytes: Uint8Array): PlainMessage {
  if (bytes.length > 3 * PLAIN_MAX_FIELD_BYTES + 2)
    throw new AuthError('malformed', 'PLAIN message is too long');
  const first = bytes.indexOf(0);
  const second = first < 0 ? -1 : bytes.indexOf(0, first + 1);
  if (first < 0 || second < 0 || bytes.indexOf(0, second + 1) >= 0) {
    throw new AuthError('malformed', 'PLAIN message must have exactly two NUL separators');
  }
  const parts = [
    bytes.subarray(0, first),
    bytes.subarray(first + 1, second),
    bytes.subarray(second + 1),
  ];
  for (const p of parts) {
    if (p.length > PLAIN_MAX_FIELD_BYTES)
      throw new AuthError('malformed', 'PLAIN field is longer than 255 octets');
  }
  const [z, c, p] = parts.map((part, i) => {
    try {
      return fromUtf8(part, ['authzid', 'authcid', 'password'][i]);
    } catch (cause) {
      throw new AuthError('malformed', 'PLAIN field is not valid UTF-8', { cause });
    }
  });
  if (c === undefined || c.length === 0) throw new AuthError('malformed', 'PLAIN authcid is empty');
  return { authzid: z ?? '', authcid: c, password: p ?? '' };
}

/**
 * The PLAIN server mechanism plug-in.
 *
 * @example
 * ```ts
 * registry.registerMechanism(plainServer());
 * ```
 */
export function plainServer(): MechanismPlugin {
  return () => ({ metadata: PLAIN_METADATA, create: (ctx) => new PlainServerExchange(ctx) });
}

class PlainServerExchange implements ServerMechanism {
  readonly name = 'PLAIN';
  #done = false;

  constructor(private readonly ctx: ServerMechanismContext) {}

  async step(input: Uint8Array | null): Promise<ServerStep> {
    if (this.#done) throw new AuthError('aborted', 'PLAIN exchange is already finished');
    if (input === null) return { type: 'challenge', challenge: new Uint8Array(0) };
    this.#done = true;
    // Defence in depth: the authenticator never offers PLAIN outside TLS.
    if (!this.ctx.channel.secure)
      throw new AuthError('insecure-channel', 'PLAIN refused outside TLS');
    const message = parsePlainMessage(input);
    const authcid = prepareUsername(message.authcid);
    await this.ctx.claimIdentity(authcid);
    if (message.authzid !== '' && prepareUsername(message.authzid) !== authcid) {
      throw new AuthError(
        'authzid-refused',
        'PLAIN: authorization identity differs from authentication identity',
      );
    }
    if (message.password.length === 0)
      throw new AuthError('bad-credential', 'PLAIN: empty password refused');
    const provider = this.ctx.provider;
    if (provider.verifyPassword === undefined)
      throw new AuthError('internal', 'provider paired with PLAIN has no verifyPassword');
    const verdict = await provider.verifyPassword(authcid, message.password);
    switch (verdict.status) {
      case 'ok':
        return { type: 'success', identity: verdict.identity, channelBound: false };
      case 'unknown':
        throw new AuthError('unknown-user', 'PLAIN: unknown user');
      case 'bad-password':
        throw new AuthError('bad-credential', 'PLAIN: wrong password');
      case 'disabled':
        throw new AuthError('disabled', 'PLAIN: account is disabled');
    }
  }
}

/**
 * PLAIN client factory for one set of credentials. Refuses to run outside TLS.
 *
 * @example
 * ```ts
 * await authenticate(transport, [plainClient({ username: 'alice', password })], offered, channel);
 * ```
 */
export function plainClient(options: {
  readonly username: string;
  readonly password: string;
}): ClientMechanismFactory {
  return {
    metadata: PLAIN_METADATA,
    create: (ctx): ClientMechanism => {
      let done = false;
      return {
        name: 'PLAIN',
        channelBound: false,
        start: () => {
          if (!ctx.channel.secure)
            return Promise.reject(new AuthError('insecure-channel', 'PLAIN refused outside TLS'));
          done = true;
          return Promise.resolve(utf8(`\u0000${options.username}\u0000${options.password}`));
        },
        step: () =>
          Promise.reject(
            new AuthError('malformed', 'PLAIN server sent a challenge after the response'),
          ),
        finish: (data) =>
          done && (data === null || data.length === 0)
            ? Promise.resolve()
            : Promise.reject(
                new AuthError('malformed', 'PLAIN success arrived with unexpected data'),
              ),
      };
    },
  };
}
