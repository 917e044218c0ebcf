/**
 * Client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802 §5, RFC 7677, RFC 9266).
 *
 * The client checks the server as much as the server checks the client:
 * - the server nonce must extend the client nonce (RFC 5802 §5.1);
 * - the iteration count must be ≥ 4096 (RFC 7677 §4) and below a ceiling (no CPU exhaustion);
 * - the server must prove knowledge of ServerKey with `v=`, compared in constant time; a success
 *   without a valid `v=` is a failure (RFC 5802 §5.1: the client MUST verify it);
 * - downgrade (RFC 5802 §6): a client that can bind, on a channel that offers a tls-exporter value,
 *   that is offered only the non-PLUS mechanism, sends GS2 `y` so a server that *did* offer -PLUS
 *   refuses; with `channelBinding: 'require'` it refuses to continue at all.
 */
import { concatBytes, constantTimeEqual, randomBytes, utf8, wipe } from '../../crypto/index.js';
import {
  AuthError,
  type AuthFailureReason,
  type ClientMechanism,
  type ClientMechanismContext,
  type ClientMechanismFactory,
} from '../types.js';
import {
  SCRAM_MAX_ITERATIONS,
  SCRAM_MIN_ITERATIONS,
  clientProof,
  deriveScramKeys,
  prepareUsername,
  serverSignature,
  type ScramClientKeys,
} from './keys.js';
import {
  encodeBase64,
  encodeScramMessage,
  formatClientFinalWithoutProof,
  formatClientFirstBare,
  formatGs2Header,
  parseServerFinal,
  parseServerFirst,
  type Gs2Flag,
} from './messages.js';
import { scramMetadata } from './server.js';

/** How a SCRAM client treats channel binding. */
export type ChannelBindingPolicy = 'require' | 'prefer' | 'never';

/** Options of {@link scramClient}. */
export interface ScramClientOptions {
  readonly username: string;
  readonly password: string;
  /** Default `'prefer'`: use -PLUS when offered, signal `y` when binding was possible but not offered. */
  readonly channelBinding?: ChannelBindingPolicy;
  /** Lowest iteration count accepted; never below 4096. */
  readonly minIterations?: number;
  /** Highest iteration count accepted. Default {@link SCRAM_MAX_ITERATIONS}. */
  readonly maxIterations?: number;
  /**
   * Client nonce, for test vectors only. Normal use leaves it unset: 24 random bytes, base64.
   * @internal
   */
  readonly nonceForTesting?: string;
  /**
   * Check that the server nonce extends ours (RFC 5802 §5.1); default `true`. Only the threat
   * suite's own tests turn it off, to show that the suite notices.
   * @internal
   */
  readonly checkServerNonce?: boolean;
}

/** Maps a server `e=` value (RFC 5802 §7 `server-error-value`) to a failure reason. */
export function scramServerErrorReason(value: string): AuthFailureReason {
  switch (value) {
    case 'channel-bindings-dont-match':
      return 'channel-binding-mismatch';
    case 'server-does-support-channel-binding':
      return 'downgrade';
    case 'channel-binding-not-supported':
    case 'unsupported-channel-binding-type':
      return 'mechanism-unavailable';
    case 'invalid-encoding':
    case 'extensions-not-supported':
    case 'channel-binding-not-provided':
    case 'invalid-username-encoding':
      return 'malformed';
    case 'unknown-user':
      return 'unknown-user';
    default:
      return 'bad-credential';
  }
}

/**
 * SCRAM-SHA-256 client factories for one set of credentials: `[SCRAM-SHA-256-PLUS,
 * SCRAM-SHA-256]`, or only the plain variant when `channelBinding` is `'never'`.
 * Derived keys are cached per (salt, iterations) for this credential (RFC 5802 §5.1 allows it),
 * so repeated logins do not repeat the PBKDF2 work.
 *
 * @example
 * ```ts
 * const factories = scramClient({ username: 'alice', password: 'pencil' });
 * const result = await authenticate(transport, factories, channel, offered);
 * ```
 */
export function scramClient(options: ScramClientOptions): ClientMechanismFactory[] {
  const policy = options.channelBinding ?? 'prefer';
  const minIterations = Math.max(
    SCRAM_MIN_ITERATIONS,
    options.minIterations ?? SCRAM_MIN_ITERATIONS,
  );
  const maxIterations = options.maxIterations ?? SCRAM_MAX_ITERATIONS;
  const username = prepareUsername(options.username);
  const cache = new Map<string, ScramClientKeys>();
  const keysFor = (salt: Uint8Array, iterations: number): ScramClientKeys => {
    const key = `${iterations}:${encodeBase64(salt)}`;
    let keys = cache.get(key);
    if (keys === undefined) {
      keys = deriveScramKeys(options.password, salt, iterations);
      if (cache.size > 16) cache.clear();
      cache.set(key, keys);
    }
    return keys;
  };
  const make = (plus: boolean): ClientMechanismFactory => ({
    metadata: scramMetadata(plus),
    create: (ctx) =>
      new ScramClientExchange(plus, policy, username, ctx, {
        minIterations,
        maxIterations,
        keysFor,
        nonce: options.nonceForTesting,
        checkServerNonce: options.checkServerNonce !== false,
      }),
  });
  return policy === 'never' ? [make(false)] : [make(true), make(false)];
}

interface ExchangeConfig {
  readonly minIterations: number;
  readonly maxIterations: number;
  readonly keysFor: (salt: Uint8Array, iterations: number) => ScramClientKeys;
  readonly nonce: string | undefined;
  readonly checkServerNonce: boolean;
}

class ScramClientExchange implements ClientMechanism {
  readonly name: string;
  #channelBound = false;
  #phase: 'new' | 'first' | 'final' | 'verified' | 'done' = 'new';
  #gs2Header = '';
  #cbData: Uint8Array = new Uint8Array(0);
  #clientNonce = '';
  #bare = '';
  #expectedSignature: Uint8Array | null = null;

  constructor(
    private readonly plus: boolean,
    private readonly policy: ChannelBindingPolicy,
    private readonly username: string,
    private readonly ctx: ClientMechanismContext,
    private readonly config: ExchangeConfig,
  ) {
    this.name = scramMetadata(plus).name;
  }

  get channelBound(): boolean {
    return this.#channelBound;
  }

  start(): Promise<Uint8Array | null> {
    if (this.#phase !== 'new')
      return Promise.reject(new AuthError('aborted', 'SCRAM client already started'));
    const exporter = this.ctx.channel.tlsExporter;
    let flag: Gs2Flag;
    if (this.plus) {
      if (!this.ctx.channel.secure || exporter?.length !== 32) {
        return Promise.reject(
          new AuthError(
            'mechanism-unavailable',
            'SCRAM-PLUS needs a TLS channel with a tls-exporter value',
          ),
        );
      }
      flag = { type: 'p', cbName: 'tls-exporter' };
      this.#cbData = exporter;
      this.#channelBound = true;
    } else if (this.policy === 'require') {
      return Promise.reject(
        new AuthError(
          'downgrade',
          'channel binding is required but SCRAM-SHA-256-PLUS was not offered',
        ),
      );
    } else if (this.policy === 'prefer' && exporter !== undefined) {
      // RFC 5802 §6: we support binding and the channel has it, but -PLUS was not offered.
      flag = { type: 'y' };
    } else {
      flag = { type: 'n' };
    }
    this.#gs2Header = formatGs2Header(flag, null);
    this.#clientNonce = this.config.nonce ?? encodeBase64(randomBytes(24));
    this.#bare = formatClientFirstBare(this.username, this.#clientNonce);
    this.#phase = 'first';
    return Promise.resolve(encodeScramMessage(this.#gs2Header + this.#bare));
  }

  step(challenge: Uint8Array): Promise<Uint8Array> {
    try {
      if (this.#phase === 'first') return Promise.resolve(this.#serverFirst(challenge));
      if (this.#phase === 'final') {
        // Some profiles deliver server-final as a last challenge; answer it with an empty response.
        this.#verifyServerFinal(challenge);
        return Promise.resolve(new Uint8Array(0));
      }
      throw new AuthError('malformed', 'SCRAM client received an unexpected challenge');
    } catch (e) {
      this.#phase = 'done';
      return Promise.reject(
        e instanceof Error ? e : new AuthError('internal', 'SCRAM client failure'),
      );
    }
  }

  finish(additionalData: Uint8Array | null): Promise<void> {
    try {
      if (this.#phase === 'final') {
        if (additionalData === null || additionalData.length === 0) {
          throw new AuthError(
            'bad-credential',
            'SCRAM server did not prove knowledge of the password',
          );
        }
        this.#verifyServerFinal(additionalData);
      } else if (
        this.#phase !== 'verified' ||
        (additionalData !== null && additionalData.length > 0)
      ) {
        throw new AuthError('malformed', 'SCRAM success arrived at the wrong time');
      }
      this.#phase = 'done';
      return Promise.resolve();
    } catch (e) {
      this.#phase = 'done';
      return Promise.reject(
        e instanceof Error ? e : new AuthError('internal', 'SCRAM client failure'),
      );
    }
  }

  dispose(): void {
    wipe(this.#expectedSignature ?? undefined);
    this.#expectedSignature = null;
    this.#phase = 'done';
  }

  #serverFirst(challenge: Uint8Array): Uint8Array {
    const first = parseServerFirst(challenge);
    // RFC 5802 §5.1: the nonce must start with ours and add the server's part.
    if (
      this.config.checkServerNonce &&
      (!first.nonce.startsWith(this.#clientNonce) ||
        first.nonce.length === this.#clientNonce.length)
    ) {
      throw new AuthError('malformed', 'SCRAM server nonce does not extend the client nonce');
    }
    if (first.iterations < this.config.minIterations) {
      throw new AuthError('malformed', 'SCRAM iteration count is below the accepted minimum');
    }
    if (first.iterations > this.config.maxIterations) {
      throw new AuthError('malformed', 'SCRAM iteration count is above the accepted maximum');
    }
    const keys = this.config.keysFor(first.salt, first.iterations);
    const withoutProof = formatClientFinalWithoutProof(
      concatBytes(utf8(this.#gs2Header), this.#cbData),
      first.nonce,
    );
    const authMessage = utf8(`${this.#bare},${first.text},${withoutProof}`);
    const proof = clientProof(keys.clientKey, authMessage);
    this.#expectedSignature = serverSignature(keys.serverKey, authMessage);
    const final = encodeScramMessage(`${withoutProof},p=${encodeBase64(proof)}`);
    wipe(proof);
    this.#phase = 'final';
    return final;
  }

  #verifyServerFinal(data: Uint8Array): void {
    const final = parseServerFinal(data);
    if (final.type === 'error') {
      throw new AuthError(scramServerErrorReason(final.error), 'SCRAM server reported an error');
    }
    const expected = this.#expectedSignature;
    if (expected === null || !constantTimeEqual(expected, final.verifier)) {
      throw new AuthError(
        'bad-credential',
        'SCRAM server signature is wrong: the server does not know the verifier',
      );
    }
    this.#phase = 'verified';
  }
}
