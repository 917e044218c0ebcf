/**
 * The key log: an append-only Merkle log (RFC 9162 §2.1) of a domain's address→key bindings,
 * with inclusion and consistency proofs and signed tree heads, and the client-side verifier.
 */
export { KEYLOG_HASH_BYTES, emptyRoot, leafHash, merkleTreeHash, nodeHash } from './hash.js';
export {
  MAX_PROOF_HASHES,
  consistencyPath,
  inclusionPath,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
  type RangeHasher,
} from './proof.js';
export { MemoryKeyLogStorage, type KeyLogNode, type KeyLogStorage } from './storage.js';
export { KEYLOG_MAX_ENTRY_BYTES, KeyLog, type KeyLogAppendResult } from './log.js';
export {
  TREE_HEAD_LABEL,
  TREE_HEAD_VERSION,
  signTreeHead,
  verifyTreeHead,
  type SignedTreeHead,
  type TreeHead,
} from './tree-head.js';
export { KeyLogVerifier, type KeyLogVerifierOptions } from './verifier.js';
