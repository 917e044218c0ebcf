/**
 * The domain-key proof: how a peer with a pinned Ed25519 domain key proves its domain on one
 * link (docs/protocol.md, "Proofs"; security model §7.3, T27, T28).
 *
 * The signed message is the strict CBOR array
 *   ["impp-s2s/1 domain-key proof", role, initiator, responder, exporter]
 * where `role` is "initiator" or "responder" (who signs), the two domains are in that fixed order
 * whoever signs, and `exporter` is this connection's tls-exporter value (RFC 9266 §2, the RFC 8446
 * §7.5 exporter with label "EXPORTER-Channel-Binding" and an empty context). Each TLS 1.3
 * handshake has its own exporter, so a proof made on another connection (a relay, a replay) or
 * for another pair of domains, or the other side's proof reflected back, does not verify. There is
 * no dialback and no "verify this for me" request, so there is nothing to confuse (XMPP dialback
 * confusion, T28).
 */
import { type SecretBytes, sign, verify } from '../crypto/index.js';
import { encodeStrictCbor } from '../transport/cbor-strict.js';

/** Label of the signed structure; a new link version gets a new label. */
export const DOMAIN_PROOF_LABEL = 'impp-s2s/1 domain-key proof';

/** Who made a proof. */
export type ProofRole = 'initiator' | 'responder';

/** What a proof is about: one connection between two domains. */
export interface ProofContext {
  readonly initiator: string;
  readonly responder: string;
  /** This connection's tls-exporter value (32 bytes). */
  readonly exporter: Uint8Array;
}

/** The exact bytes a proof signs. */
export function domainProofMessage(role: ProofRole, context: ProofContext): Uint8Array {
  return encodeStrictCbor([
    DOMAIN_PROOF_LABEL,
    role,
    context.initiator,
    context.responder,
    context.exporter,
  ]);
}

/**
 * Signs the proof for `role` on this connection with the domain's secret key.
 *
 * @example
 * ```ts
 * const proof = signDomainProof(domainKey.secretKey, 'responder', { initiator, responder, exporter });
 * ```
 */
export function signDomainProof(
  secretKey: SecretBytes,
  role: ProofRole,
  context: ProofContext,
): Uint8Array {
  return sign(secretKey, domainProofMessage(role, context));
}

/**
 * Verifies a proof against the pinned key of the domain that `role` claims. Returns false for
 * any failure (wrong key, other connection, other pair of domains, other role, malformed).
 */
export function verifyDomainProof(
  pinnedKey: Uint8Array,
  role: ProofRole,
  context: ProofContext,
  proof: Uint8Array,
): boolean {
  return verify(pinnedKey, domainProofMessage(role, context), proof);
}
