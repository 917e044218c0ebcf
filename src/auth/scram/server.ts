/**
 * Server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, RFC 9266).
 *
 * Exchange (RFC 5802 §5):
 * ```
 * C: gs2-header client-first-message-bare          → step 1: parse, claim identity, look up verifier
 * S: r=cnonce+snonce,s=salt,i=iterations            ← challenge
 * C: c=base64(gs2-header [cb-data]),r=…,p=proof     → step 2: check nonce, binding, proof
 * S: v=ServerSignature                              ← success additional data
 * ```
 *
 * Uniform failure: an unknown user gets a salt derived from the username with the server secret
 * (stable across attempts and restarts, so probing twice shows nothing) and random keys, the
 * exchange runs to the end with the same computations, and fails like a wrong password. A disabled
 * account is answered with its real salt and also fails only at the end. Nothing distinguishes the
 * three on the wire; the audit event carries the real reason.
 */
import {
  concatBytes,
  constantTimeEqual,
  hmacSha256,
  randomBytes,
  sha256,
  utf8,
  wipe,
} from '../../crypto/index.js';
import {
  AuthError,
  type MechanismDeps,
  type MechanismMetadata,
  type MechanismPlugin,
  type ProviderIdentity,
  type ScramCredential,
  type ScramCredentialLookup,
  type ServerMechanism,
  type ServerMechanismContext,
  type ServerMechanismFactory,
  type ServerStep,
} from '../types.js';
import {
  SCRAM_MIN_ITERATIONS,
  SCRAM_SALT_BYTES,
  prepareUsername,
  serverSignature,
  verifyClientProof,
} from './keys.js';
import {
  encodeBase64,
  encodeScramMessage,
  formatServerFirst,
  parseClientFinal,
  parseClientFirst,
} from './messages.js';

/** SASL names (RFC 7677 §2, RFC 5802 §4). */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';

/** Options of the SCRAM server plug-in. */
export interface ScramServerOptions {
  /** `true` for SCRAM-SHA-256-PLUS (tls-exporter binding required), `false` for the plain variant. */
  readonly plus: boolean;
  /**
   * Iteration count shown to unknown users when the provider gives no hint. Set it to what your
   * provider uses for new verifiers. Default 4096.
   */
  readonly fakeIterations?: number;
  /**
   * Server nonce part, for test vectors only (RFC 7677 §3). Never set it in production.
   * @internal
   */
  readonly serverNonceForTesting?: string;
}

const FAKE_SALT_LABEL = utf8('impp/auth/scram-fake-salt/v1\u0000');
const SERVER_NONCE_BYTES = 24;

/** Metadata of the two variants. */
export function scramMetadata(plus: boolean): MechanismMetadata {
  return {
    name: plus ? SCRAM_SHA_256_PLUS : SCRAM_SHA_256,
    needsSecureChannel: plus,
    channelBinding: plus ? 'tls-exporter' : 'none',
    needsCleartextPassword: false,
    providerCapability: 'scram-sha-256',
  };
}

/**
 * The SCRAM-SHA-256(-PLUS) server mechanism plug-in.
 *
 * @example
 * ```ts
 * registry.registerMechanism(scramServer({ plus: true }));
 * registry.registerMechanism(scramServer({ plus: false }));
 * ```
 */
export function scramServer(options: ScramServerOptions): MechanismPlugin {
  return (deps: MechanismDeps): ServerMechanismFactory => {
    const metadata = scramMetadata(options.plus);
    return {
      metadata,
      create: (ctx) => new ScramServerExchange(metadata.name, options, deps, ctx),
    };
  };
}

type Phase = 'start' | 'first' | 'done';

interface Pending {
  readonly identity: ProviderIdentity | null;
  readonly status: 'ok' | 'disabled' | 'unknown';
  readonly credential: ScramCredential;
  readonly expectedBinding: Uint8Array;
  readonly nonce: string;
  readonly authPrefix: string;
  readonly channelBound: boolean;
}

class ScramServerExchange implements ServerMechanism {
  readonly name: string;
  #phase: Phase = 'start';
  #pending: Pending | null = null;

  constructor(
    name: string,
    private readonly options: ScramServerOptions,
    private readonly deps: MechanismDeps,
    private readonly ctx: ServerMechanismContext,
  ) {
    this.name = name;
  }

  async step(input: Uint8Array | null): Promise<ServerStep> {
    const phase = this.#phase;
    // Any failure ends the exchange: a failed step can never be retried on the same object.
    this.#phase = 'done';
    if (phase === 'start') {
      if (input === null) {
        // RFC 4422 §3.3: no initial response → empty challenge, client sends client-first.
        this.#phase = 'start';
        return { type: 'challenge', challenge: new Uint8Array(0) };
      }
      const challenge = await this.#clientFirst(input);
      this.#phase = 'first';
      return { type: 'challenge', challenge };
    }
    if (phase === 'first') {
      if (input === null) throw new AuthError('malformed', 'SCRAM client-final-message is missing');
      return this.#clientFinal(input);
    }
    throw new AuthError('aborted', 'SCRAM exchange is already finished');
  }

  dispose(): void {
    const p = this.#pending;
    if (p?.status === 'unknown') wipe(p.credential.storedKey, p.credential.serverKey);
    this.#pending = null;
    this.#phase = 'done';
  }

  async #clientFirst(input: Uint8Array): Promise<Uint8Array> {
    const first = parseClientFirst(input);
    const plus = this.options.plus;
    const exporter = this.ctx.channel.tlsExporter;
    let channelBound = false;
    let cbData: Uint8Array = new Uint8Array(0);
    // RFC 5802 §6 and RFC 9266: the GS2 flag must agree with the mechanism and the channel.
    switch (first.gs2.type) {
      case 'p':
        if (!plus)
          throw new AuthError(
            'malformed',
            'SCRAM: channel binding requested on a non-PLUS mechanism',
          );
        if (first.gs2.cbName !== 'tls-exporter') {
          throw new AuthError('malformed', 'SCRAM: unsupported channel-binding type');
        }
        if (exporter === undefined || exporter.length !== 32) {
          throw new AuthError(
            'channel-binding-mismatch',
            'SCRAM: channel has no tls-exporter value',
          );
        }
        channelBound = true;
        cbData = exporter;
        break;
      case 'y':
        if (plus) throw new AuthError('malformed', 'SCRAM-PLUS requires the p= flag');
        // RFC 5802 §6: the client supports binding and thinks we do not. If we offered -PLUS on
        // this channel, someone removed it from the list on the way: a downgrade. (Only our own
        // -PLUS variant counts: another mechanism's binding says nothing about SCRAM's.)
        if (this.ctx.offeredMechanisms.includes(`${this.name}-PLUS`)) {
          throw new AuthError('downgrade', 'SCRAM: client sent y although -PLUS was offered');
        }
        break;
      case 'n':
        if (plus) throw new AuthError('malformed', 'SCRAM-PLUS requires the p= flag');
        break;
    }
    const username = prepareUsername(first.username);
    await this.ctx.claimIdentity(username);
    if (first.authzid !== null && prepareUsername(first.authzid) !== username) {
      // Deliberate: impp has no proxy authorization; an authzid may only repeat the authcid.
      throw new AuthError(
        'authzid-refused',
        'SCRAM: authorization identity differs from authentication identity',
      );
    }
    const provider = this.ctx.provider;
    if (provider.getScramCredential === undefined) {
      throw new AuthError('internal', 'provider paired with SCRAM has no getScramCredential');
    }
    const lookup = await provider.getScramCredential(username);
    // Computed on every path, used only for unknown users: the two paths then do the same work
    // (measured in scram.test.ts; random keys here cost a visible ~170 µs more).
    const fake = this.#fakeCredential(username, lookup);
    let credential: ScramCredential;
    let identity: ProviderIdentity | null = null;
    if (lookup.status === 'unknown' && this.ctx.checks?.uniformUnknownUser === false) {
      wipe(fake.storedKey, fake.serverKey);
      throw new AuthError('unknown-user', 'SCRAM: unknown user');
    }
    if (lookup.status === 'unknown') {
      credential = fake;
    } else {
      wipe(fake.storedKey, fake.serverKey);
      credential = lookup.credential;
      identity = lookup.identity;
    }
    const nonce =
      first.clientNonce +
      (this.options.serverNonceForTesting ?? encodeBase64(randomBytes(SERVER_NONCE_BYTES)));
    const serverFirst = formatServerFirst(nonce, credential.salt, credential.iterations);
    this.#pending = {
      identity,
      status: lookup.status,
      credential,
      expectedBinding: concatBytes(utf8(first.gs2Header), cbData),
      nonce,
      authPrefix: `${first.bare},${serverFirst},`,
      channelBound,
    };
    return encodeScramMessage(serverFirst);
  }

  #clientFinal(input: Uint8Array): ServerStep {
    const p = this.#pending;
    if (p === null) throw new AuthError('internal', 'SCRAM: no pending exchange');
    const final = parseClientFinal(input);
    const authMessage = utf8(p.authPrefix + final.withoutProof);
    // Always run the proof check, whatever fails below, so every path does the same work.
    const proofOk = verifyClientProof(p.credential, authMessage, final.proof);
    const bindingOk = constantTimeEqual(final.channelBinding, p.expectedBinding);
    // The nonce is not secret; a mismatch means this client-final belongs to another exchange.
    if (final.nonce !== p.nonce)
      throw new AuthError('replay', 'SCRAM: nonce does not match this exchange');
    if (!bindingOk && this.ctx.checks?.scramChannelBinding !== false)
      throw new AuthError(
        'channel-binding-mismatch',
        'SCRAM: channel binding does not match this channel',
      );
    if (p.status === 'unknown' || p.identity === null)
      throw new AuthError('unknown-user', 'SCRAM: unknown user');
    if (!proofOk) throw new AuthError('bad-credential', 'SCRAM: client proof is wrong');
    if (p.status === 'disabled') throw new AuthError('disabled', 'SCRAM: account is disabled');
    const signature = serverSignature(p.credential.serverKey, authMessage);
    const additionalData = encodeScramMessage(`v=${encodeBase64(signature)}`);
    wipe(signature);
    this.#pending = null;
    return { type: 'success', additionalData, identity: p.identity, channelBound: p.channelBound };
  }

  /**
   * Verifier for an unknown user: salt and keys derived from the username with the server secret.
   * Stable (probing twice shows the same salt) and unpredictable without the secret. The keys never
   * verify anything: the unknown-user path fails whatever the proof, and even a client that knew
   * `storedKey` would need a SHA-256 preimage to forge a proof for it.
   */
  #fakeCredential(username: string, lookup: ScramCredentialLookup): ScramCredential {
    const mac = hmacSha256(
      this.deps.serverSecret.expose(),
      concatBytes(FAKE_SALT_LABEL, utf8(username)),
    );
    const fake: ScramCredential = {
      salt: mac.slice(0, SCRAM_SALT_BYTES),
      iterations:
        (lookup.status === 'unknown' ? lookup.iterationsHint : undefined) ??
        this.options.fakeIterations ??
        SCRAM_MIN_ITERATIONS,
      storedKey: sha256(mac),
      serverKey: mac,
    };
    return fake;
  }
}
