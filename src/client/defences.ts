/**
 * Client (SDK) defences that the threat suite's own tests switch off, one at a time, to show that the
 * suite reports VULNERABLE for exactly that threat (issue 6: "a threat suite that cannot fail
 * proves nothing").
 *
 * Only tests can reach this: the option is keyed by {@link WEAKEN_CLIENT}, which neither
 * src/client/index.ts nor package.json `exports` publishes, and the CLI never imports this file
 * (test/architecture.test.ts). Every defence is on unless a test says otherwise.
 *
 * One flag reaches into the seal layer (`presenceRollbackCheck`, through src/seal/defences.ts).
 * Not switchable, on purpose: the AEAD, the signatures, the domain separation labels and the
 * version and suite refusal (tampering, sealed-sender rewriting, context confusion, downgrade):
 * they are the primitives or their direct use, and the header fields are authenticated, so a
 * check switched off would not even let the attack through. Nor the replay cache (T03): every
 * replay a server can make is already refused by the ratchet (message keys deleted after use, a
 * prekey message matched to its session by base key), so the cache is defence in depth whose
 * absence the suite could not show; it stays unconditional.
 */

/** One flag per defence; `true` (the default) means the defence is on. */
export interface ClientDefences {
  /** T08: seal only for devices on the contact's verified signed device list, not the directory's. */
  readonly listedDevicesOnly: boolean;
  /** T07: a prekey bundle whose identity key is not the listed one is refused. */
  readonly bundleKeyCheck: boolean;
  /** T06: an incoming session whose sender key contradicts the sender's verified list is refused. */
  readonly senderKeyCheck: boolean;
  /** T05: a gap in a contact's per-session message numbers raises `missingMessages`. */
  readonly missingMessageCheck: boolean;
  /** T33: a contact's tree head is checked against this device's view of the key log. */
  readonly treeHeadCheck: boolean;
  /** T34: with `contactEnrolment` on, a device whose enrolment statement fails gets nothing. */
  readonly enrolmentCheck: boolean;
  /** T04: the seal layer's refusal of a presence update not newer than the last. */
  readonly presenceRollbackCheck: boolean;
  /** T17: the SCRAM server nonce must extend the client's own (RFC 5802 §5.1). */
  readonly scramNonceCheck: boolean;
  /**
   * T45: a sealed sender must be of the domain the object arrived from (the server's `from`
   * stamp), or of this client's home domain when there is no stamp.
   */
  readonly senderDomainCheck: boolean;
  /**
   * T13 (client side): what a user this account denied sends is dropped after opening, whatever
   * its domain (the server cannot see the sealed sender of a remote message).
   */
  readonly deniedSenderCheck: boolean;
}

/** Every defence on. */
export const ALL_CLIENT_DEFENCES: ClientDefences = Object.freeze({
  listedDevicesOnly: true,
  bundleKeyCheck: true,
  senderKeyCheck: true,
  missingMessageCheck: true,
  treeHeadCheck: true,
  enrolmentCheck: true,
  presenceRollbackCheck: true,
  scramNonceCheck: true,
  senderDomainCheck: true,
  deniedSenderCheck: true,
});

/** The option key under which a test passes `Partial<ClientDefences>` to ImppClient. */
export const WEAKEN_CLIENT: unique symbol = Symbol('impp.test-only.weaken-client-defences');

/** The defences in force, given what a test asked to switch off. */
export function clientDefences(weakened: Partial<ClientDefences> | undefined): ClientDefences {
  return weakened === undefined ? ALL_CLIENT_DEFENCES : { ...ALL_CLIENT_DEFENCES, ...weakened };
}
