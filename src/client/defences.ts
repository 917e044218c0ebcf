/**
 * Client (SDK) defences that the threat suite's own tests switch off, one at a time, to show that the
 * suite reports VULNERABLE for exactly that threat (issue 6: "a threat suite that cannot fail
 * proves nothing").
 *
 * Only tests can reach this: the option is keyed by {@link WEAKEN_CLIENT}, which neither
 * src/client/index.ts nor package.json `exports` publishes, and the CLI never imports this file
 * (test/architecture.test.ts). Every defence is on unless a test says otherwise.
 */

/** One flag per defence; `true` (the default) means the defence is on. */
export interface ClientDefences {
  /** Placeholder so the type is never empty; helpers add one flag per switchable defence. */
  readonly _version: true;
}

/** Every defence on. */
export const ALL_CLIENT_DEFENCES: ClientDefences = Object.freeze({ _version: true });

/** The option key under which a test passes `Partial<ClientDefences>` to ImppClient. */
export const WEAKEN_CLIENT: unique symbol = Symbol('impp.test-only.weaken-client-defences');

/** The defences in force, given what a test asked to switch off. */
export function clientDefences(weakened: Partial<ClientDefences> | undefined): ClientDefences {
  return weakened === undefined ? ALL_CLIENT_DEFENCES : { ...ALL_CLIENT_DEFENCES, ...weakened };
}
