/**
 * Server defences that the threat suite's own tests switch off, one at a time, to show that the
 * suite reports VULNERABLE for exactly that threat (issue 6: "a threat suite that cannot fail
 * proves nothing").
 *
 * Only tests can reach this: the option is keyed by {@link WEAKEN_SERVER}, which neither
 * src/service/index.ts nor package.json `exports` publishes, and the CLI never imports this file
 * (test/architecture.test.ts). Every defence is on unless a test says otherwise.
 */

/** One flag per defence; `true` (the default) means the defence is on. */
export interface ServerDefences {
  /** T11: presence is fanned out only to approved watchers (not pending or denied ones). */
  readonly presenceApprovalCheck: boolean;
  /** T12: a revoked watcher leaves the fan-out set at once (defence in depth to key rotation). */
  readonly revocationStopsFanout: boolean;
  /** T13: a user who denied you answers exactly like a user who does not exist. */
  readonly uniformBlockedAnswers: boolean;
  /** T21: a password change, a disabled account or a revoked device ends the live sessions. */
  readonly endSessionsOnRevocation: boolean;
  /** T43: a device reads and acknowledges only its own queue. */
  readonly ownershipChecks: boolean;
  /** T42: a device dropped from the signed device list is revoked (no binding, no queue). */
  readonly revokedDeviceRouting: boolean;
  /** T16: SCRAM-PLUS channel-binding data must match this TLS connection's exporter. */
  readonly scramChannelBindingCheck: boolean;
  /** T18: authentication attempts are rate limited per account, per source and globally. */
  readonly authRateLimit: boolean;
  /** T19: an unknown user is answered like a wrong password (SCRAM fake salt, failure at the end). */
  readonly uniformUnknownUser: boolean;
  /** T44: the device-binding signature must verify over this connection's exporter and nonce. */
  readonly deviceBindingCheck: boolean;
  /** T26: the client and WebSocket listeners negotiate and serve TLS 1.3 only. */
  readonly tls13Only: boolean;
  /** T52: EXTERNAL refuses a client certificate whose chain Node's TLS did not verify. */
  readonly clientCertificateChainCheck: boolean;
  /** T53: a client certificate naming two or more different addresses maps to none of them. */
  readonly certificateSingleIdentity: boolean;
}

/** Every defence on. */
export const ALL_SERVER_DEFENCES: ServerDefences = Object.freeze({
  presenceApprovalCheck: true,
  revocationStopsFanout: true,
  uniformBlockedAnswers: true,
  endSessionsOnRevocation: true,
  ownershipChecks: true,
  revokedDeviceRouting: true,
  scramChannelBindingCheck: true,
  authRateLimit: true,
  uniformUnknownUser: true,
  deviceBindingCheck: true,
  tls13Only: true,
  clientCertificateChainCheck: true,
  certificateSingleIdentity: true,
});

/** The option key under which a test passes `Partial<ServerDefences>` to ImppServer. */
export const WEAKEN_SERVER: unique symbol = Symbol('impp.test-only.weaken-server-defences');

/** The defences in force, given what a test asked to switch off. */
export function serverDefences(weakened: Partial<ServerDefences> | undefined): ServerDefences {
  return weakened === undefined ? ALL_SERVER_DEFENCES : { ...ALL_SERVER_DEFENCES, ...weakened };
}
