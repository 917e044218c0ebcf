/**
 * Authentication checks that the threat suite's own tests switch off one at a time, to show that
 * the suite notices (issue 6). Only tests can reach this: {@link WEAKEN_AUTH} and this module are
 * not re-exported by src/auth/index.ts, so neither package users nor the CLI can switch a check
 * off; src/service/defences.ts maps its test-only switches onto these.
 */
export interface AuthChecks {
  /** SCRAM-PLUS: the client's channel-binding data must equal this channel's (T16). */
  readonly scramChannelBinding: boolean;
  /** The rate limiter is consulted before each exchange and each claimed account (T18). */
  readonly rateLimit: boolean;
  /** An unknown user gets a fake salt and fails only at the end, like a wrong password (T19). */
  readonly uniformUnknownUser: boolean;
  /** EXTERNAL: a client certificate whose chain the TLS layer did not verify is refused (T52). */
  readonly certificateChainVerified: boolean;
  /** PKI: a certificate whose names map to two or more different addresses is refused (T53). */
  readonly certificateSingleIdentity: boolean;
}

/** Every authentication check on. */
export const ALL_AUTH_CHECKS: AuthChecks = Object.freeze({
  scramChannelBinding: true,
  rateLimit: true,
  uniformUnknownUser: true,
  certificateChainVerified: true,
  certificateSingleIdentity: true,
});

/** The option key under which a test passes `Partial<AuthChecks>` to `Authenticator.begin`. */
export const WEAKEN_AUTH: unique symbol = Symbol('impp.test-only.weaken-auth-checks');

/** What `Authenticator.begin` takes besides the channel. */
export interface BeginOptions {
  /** Test-only: checks to switch off. */
  readonly [WEAKEN_AUTH]?: Partial<AuthChecks>;
}
