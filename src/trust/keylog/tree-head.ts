/**
 * Signed tree heads: the log's commitment to its size and root at a time, signed with the
 * domain's Ed25519 log key (the role of RFC 9162 §4.10 `SignedTreeHead`, in our own encoding).
 *
 * Wire form (deterministic CBOR): `[1, domain, treeSize, rootHash, timestamp, signature]`.
 * The signature covers `["impp/keylog-tree-head/v1", 1, domain, treeSize, rootHash, timestamp]`:
 * the label keeps a tree-head signature from ever verifying as any other signed object, and the
 * domain keeps one domain's head from being replayed as another's.
 */
import {
  ED25519_SIGNATURE_BYTES,
  assertSigningPublicKey,
  sign,
  verify,
  type SecretBytes,
} from '../../crypto/index.js';
import { ImppError } from '../../errors.js';
import { FieldReader, decodeCanonical, encodeCanonical, signingInput } from '../canonical.js';
import { assertTimestamp } from '../identity.js';
import { KEYLOG_HASH_BYTES } from './hash.js';

/** Format version of a signed tree head. */
export const TREE_HEAD_VERSION = 1;
/** Domain-separation label of tree-head signatures. */
export const TREE_HEAD_LABEL = 'impp/keylog-tree-head/v1';

/** The fields a tree head commits to. */
export interface TreeHead {
  /** The domain whose log this is (lower-case A-label form). */
  readonly domain: string;
  readonly treeSize: number;
  readonly rootHash: Uint8Array;
  /** When the head was signed, ms since the epoch. */
  readonly timestamp: number;
}

/** A tree head with its signature and exact encoding. */
export interface SignedTreeHead extends TreeHead {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
}

const what = 'tree head';

function tbs(head: TreeHead): Uint8Array {
  return signingInput(TREE_HEAD_LABEL, [
    TREE_HEAD_VERSION,
    head.domain,
    head.treeSize,
    head.rootHash,
    head.timestamp,
  ]);
}

/**
 * Signs a tree head with the domain's log key.
 *
 * @example
 * ```ts
 * const sth = signTreeHead({ domain, treeSize: log.size, rootHash: log.root(), timestamp: Date.now() }, logKey);
 * ```
 */
export function signTreeHead(head: TreeHead, logKey: SecretBytes): SignedTreeHead {
  if (typeof head.domain !== 'string' || head.domain.length === 0 || head.domain.length > 253) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'domain must be 1..253 characters');
  }
  if (!Number.isSafeInteger(head.treeSize) || head.treeSize < 0) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'treeSize must be a non-negative integer');
  }
  if (!(head.rootHash instanceof Uint8Array) || head.rootHash.length !== KEYLOG_HASH_BYTES) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'rootHash must be 32 bytes');
  }
  assertTimestamp(head.timestamp, 'timestamp');
  const fields: TreeHead = {
    domain: head.domain,
    treeSize: head.treeSize,
    rootHash: Uint8Array.from(head.rootHash),
    timestamp: head.timestamp,
  };
  const signature = sign(logKey, tbs(fields));
  const bytes = encodeCanonical([
    TREE_HEAD_VERSION,
    fields.domain,
    fields.treeSize,
    fields.rootHash,
    fields.timestamp,
    signature,
  ]);
  return { ...fields, signature, bytes };
}

/**
 * Parses and verifies a signed tree head for `domain` under its log key. Any failure (malformed,
 * unknown version, other domain, bad signature) throws `ERR_KEYLOG_PROOF_INVALID`.
 *
 * @example
 * ```ts
 * const sth = verifyTreeHead(bytes, { domain: 'example.com', logKey });
 * ```
 */
export function verifyTreeHead(
  bytes: Uint8Array,
  options: { domain: string; logKey: Uint8Array },
): SignedTreeHead {
  const code = 'ERR_KEYLOG_PROOF_INVALID';
  const logKey = assertSigningPublicKey(options.logKey, 'logKey');
  const r = FieldReader.of(decodeCanonical(bytes, code, what), 6, code, what);
  const version = r.uint('version');
  if (version !== TREE_HEAD_VERSION) {
    throw new ImppError(code, `${what}: unsupported version ${version}`);
  }
  const head: TreeHead = {
    domain: r.text('domain', 253),
    treeSize: r.uint('treeSize'),
    rootHash: r.bytes('rootHash', KEYLOG_HASH_BYTES),
    timestamp: r.uint('timestamp'),
  };
  const signature = r.bytes('signature', ED25519_SIGNATURE_BYTES);
  if (head.domain !== options.domain)
    throw new ImppError(code, `${what}: head is for another domain`);
  if (!verify(logKey, tbs(head), signature)) {
    throw new ImppError(code, `${what}: signature does not verify under the log key`);
  }
  return { ...head, signature, bytes: Uint8Array.from(bytes) };
}
