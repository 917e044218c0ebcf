/**
 * The verdict constructors every catalogue file uses, so a threat's last line reads as its
 * verdict: `return MITIGATED('refused with ERR_AUTH_FAILED', evidence)`.
 */
import type { ThreatOutcome } from '../types.js';

function outcomeOf(verdict: ThreatOutcome['verdict']) {
  return (summary: string, evidence: readonly string[] = []): ThreatOutcome => ({
    verdict,
    summary,
    evidence,
  });
}

/** The attack failed the way the mitigation says. */
export const MITIGATED = outcomeOf('MITIGATED');
/** The attack worked. */
export const VULNERABLE = outcomeOf('VULNERABLE');
/** The run cannot play this attack; `summary` says why. */
export const NOT_TESTED = outcomeOf('NOT-TESTED');

/**
 * MITIGATED with `mitigated` when `ok`, else VULNERABLE with `vulnerable`.
 *
 * @example
 * ```ts
 * return verdictIf(refused, 'the forged list is refused', 'the forged list was accepted', evidence);
 * ```
 */
export function verdictIf(
  ok: boolean,
  mitigated: string,
  vulnerable: string,
  evidence: readonly string[],
): ThreatOutcome {
  return ok ? MITIGATED(mitigated, evidence) : VULNERABLE(vulnerable, evidence);
}

/**
 * MITIGATED with `mitigated` when no problem was found, else VULNERABLE naming every problem.
 *
 * @example
 * ```ts
 * return withProblems(problems, 'old presence and key-log head refused', evidence);
 * ```
 */
export function withProblems(
  problems: readonly string[],
  mitigated: string,
  evidence: readonly string[],
): ThreatOutcome {
  return verdictIf(problems.length === 0, mitigated, problems.join('; '), evidence);
}
