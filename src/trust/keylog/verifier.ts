/**
 * The client side of the key log: a verifier that remembers the last signed tree head it trusted
 * and moves forward only along proven-consistent heads. A server that forks the log (shows one
 * history to some clients and another to others), rewrites or truncates history, or rolls a
 * client back to an older head fails here with `ERR_KEYLOG_INCONSISTENT`; an entry that is not
 * in the trusted tree fails with `ERR_KEYLOG_PROOF_INVALID`.
 *
 * Forks are only *caught* when the two histories meet: the same client sees both (here), or
 * clients compare heads with each other (gossip: feed a head received from a peer to
 * {@link KeyLogVerifier.update} together with a consistency proof fetched from the log).
 */
import { assertSigningPublicKey } from '../../crypto/index.js';
import { ImppError } from '../../errors.js';
import { leafHash } from './hash.js';
import { verifyConsistency, verifyInclusion } from './proof.js';
import { verifyTreeHead, type SignedTreeHead } from './tree-head.js';

/** Options of {@link KeyLogVerifier}. */
export interface KeyLogVerifierOptions {
  /** The domain whose log this is. */
  readonly domain: string;
  /** The domain's Ed25519 log key, obtained out of band (configuration, pinned). */
  readonly logKey: Uint8Array;
  /** The encoded head trusted so far (persisted by the client), if any. */
  readonly trusted?: Uint8Array;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Remembers the last trusted tree head of one domain's log and checks everything against it.
 *
 * @example
 * ```ts
 * const v = new KeyLogVerifier({ domain: 'example.com', logKey, trusted: saved });
 * v.update(headBytes, log.consistencyProof(v.trusted!.treeSize, size));
 * v.verifyEntry(statementBytes, index, inclusionProof);
 * save(v.trusted!.bytes);
 * ```
 */
export class KeyLogVerifier {
  readonly domain: string;
  readonly #logKey: Uint8Array;
  #trusted: SignedTreeHead | undefined;

  constructor(options: KeyLogVerifierOptions) {
    this.domain = options.domain;
    this.#logKey = Uint8Array.from(assertSigningPublicKey(options.logKey, 'logKey'));
    this.#trusted =
      options.trusted === undefined
        ? undefined
        : verifyTreeHead(options.trusted, { domain: this.domain, logKey: this.#logKey });
  }

  /** The head trusted so far, or `undefined` before the first one. */
  get trusted(): SignedTreeHead | undefined {
    return this.#trusted;
  }

  /**
   * Verifies a newly received head and, if it is proven consistent with the trusted one, trusts it.
   * `consistencyProof` goes from the trusted size to the new size (ignored for the first head).
   *
   * Refused: a bad signature or other domain (`ERR_KEYLOG_PROOF_INVALID`); a smaller tree
   * (rollback), a different root at the same size (fork), an older timestamp, or a proof that does
   * not verify (`ERR_KEYLOG_INCONSISTENT`). On refusal the trusted head is unchanged.
   */
  update(headBytes: Uint8Array, consistencyProof: readonly Uint8Array[]): SignedTreeHead {
    const head = verifyTreeHead(headBytes, { domain: this.domain, logKey: this.#logKey });
    const old = this.#trusted;
    if (old === undefined) {
      this.#trusted = head;
      return head;
    }
    if (head.treeSize < old.treeSize) {
      throw new ImppError(
        'ERR_KEYLOG_INCONSISTENT',
        'tree head is smaller than the trusted one (rollback)',
      );
    }
    if (head.timestamp < old.timestamp) {
      throw new ImppError('ERR_KEYLOG_INCONSISTENT', 'tree head is older than the trusted one');
    }
    if (head.treeSize === old.treeSize) {
      if (!bytesEqual(head.rootHash, old.rootHash)) {
        throw new ImppError(
          'ERR_KEYLOG_INCONSISTENT',
          'two different roots for the same tree size (fork)',
        );
      }
    } else if (
      !verifyConsistency(old.treeSize, head.treeSize, consistencyProof, old.rootHash, head.rootHash)
    ) {
      throw new ImppError(
        'ERR_KEYLOG_INCONSISTENT',
        'tree head is not proven consistent with the trusted one',
      );
    }
    this.#trusted = head;
    return head;
  }

  /**
   * Checks that `entry` is at `index` in the trusted tree. Throws `ERR_KEYLOG_PROOF_INVALID`
   * otherwise, or when no head is trusted yet.
   */
  verifyEntry(entry: Uint8Array, index: number, inclusionProof: readonly Uint8Array[]): void {
    const head = this.#trusted;
    if (head === undefined) {
      throw new ImppError('ERR_KEYLOG_PROOF_INVALID', 'no trusted tree head yet');
    }
    if (!(entry instanceof Uint8Array)) {
      throw new ImppError('ERR_KEYLOG_PROOF_INVALID', 'entry must be bytes');
    }
    if (!verifyInclusion(leafHash(entry), index, head.treeSize, inclusionProof, head.rootHash)) {
      throw new ImppError(
        'ERR_KEYLOG_PROOF_INVALID',
        'inclusion proof does not verify against the trusted head',
      );
    }
  }
}
