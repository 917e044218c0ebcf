/**
 * Federation defences that the threat suite's own tests switch off, one at a time, to show that
 * the suite reports VULNERABLE for exactly that threat (issue 6: "a threat suite that cannot fail
 * proves nothing"; the federation threats T26–T28, T45–T47 of issue 7).
 *
 * Only tests can reach this: the option is keyed by {@link WEAKEN_FEDERATION}, which neither
 * src/federation/index.ts nor package.json `exports` publishes, and the CLI never imports this
 * file (test/architecture.test.ts). Every defence is on unless a test says otherwise.
 *
 * Not switchable: the refusal of a handshake offering only other ALPN ids (OpenSSL's), the chain
 * check against the peer's anchors (OpenSSL's), and the sequence-number check of DATA (a replayed
 * frame is a protocol error whatever else holds).
 */

/** One flag per defence; `true` (the default) means the defence is on. */
export interface FederationDefences {
  /** T27, T28: a pinned-key peer's proof must verify over this connection and pair of domains. */
  readonly proofCheck: boolean;
  /** T27, T29, T47: a peer's certificate must name the domain as a dNSName (no CN, no wildcard). */
  readonly nameCheck: boolean;
  /** T45: a DATA frame whose origin is not the authenticated peer is refused. */
  readonly originCheck: boolean;
  /** T46: an object id delivered before is acknowledged and not delivered again. */
  readonly duplicateFilter: boolean;
  /**
   * T26: the federation port negotiates TLS 1.3 only and serves only connections that agreed on
   * ALPN `impp-s2s/1`. Off: TLS 1.2 is negotiated and a connection without ALPN is served.
   */
  readonly tls13Only: boolean;
}

/** Every defence on. */
export const ALL_FEDERATION_DEFENCES: FederationDefences = Object.freeze({
  proofCheck: true,
  nameCheck: true,
  originCheck: true,
  duplicateFilter: true,
  tls13Only: true,
});

/**
 * The option key under which a test passes `Partial<FederationDefences>` to a FederationNode or
 * FederationEndpoint.
 */
export const WEAKEN_FEDERATION: unique symbol = Symbol('impp.test-only.weaken-federation-defences');

/** The defences in force, given what a test asked to switch off. */
export function federationDefences(
  weakened: Partial<FederationDefences> | undefined,
): FederationDefences {
  return weakened === undefined
    ? ALL_FEDERATION_DEFENCES
    : { ...ALL_FEDERATION_DEFENCES, ...weakened };
}
