/**
 * Seal-layer checks that the threat suite's own tests switch off, one at a time, through the
 * client SDK (src/client/defences.ts), to show that the suite reports VULNERABLE for exactly that
 * threat (issue 6). Only bookkeeping above the primitives belongs here. The AEAD, the
 * signatures, the labels and the version and suite refusal are never switchable (a version or
 * suite check switched off would still fail: both are authenticated header fields).
 *
 * Only tests reach this: the option is keyed by {@link WEAKEN_SEAL}, which src/seal/index.ts does
 * not export. Every check is on unless a test says otherwise.
 */

/** `true` (the default) means the check is on. */
export interface SealDefences {
  /** T04: a presence update whose version is not newer than the last is refused. */
  readonly presenceRollbackCheck: boolean;
}

/** The option key under which the client passes `Partial<SealDefences>` to an open. */
export const WEAKEN_SEAL: unique symbol = Symbol('impp.test-only.weaken-seal-defences');

/** Options that may carry the switch. */
export interface WeakenSealOption {
  readonly [WEAKEN_SEAL]?: Partial<SealDefences>;
}

/**
 * Whether `check` is on for an open with `options`.
 *
 * @example
 * ```ts
 * if (sealCheckOn(options, 'presenceRollbackCheck') && version <= last) throw rollback();
 * ```
 */
export function sealCheckOn(
  options: WeakenSealOption | undefined,
  check: keyof SealDefences,
): boolean {
  const weakened: Partial<SealDefences> | undefined = options?.[WEAKEN_SEAL];
  return weakened?.[check] !== false;
}
