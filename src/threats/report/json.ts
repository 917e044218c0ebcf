/**
 * The JSON report: the whole run, one object per threat with its evidence and notes. The format
 * is versioned (`format`), so CI tooling can rely on it.
 */
import type { RunReport } from '../runner.js';

/** The report's format tag; a change that breaks readers gets a new one. */
export const JSON_REPORT_FORMAT = 'impp-threats/v1';

/** How the run was made (for the reader of a stored report). */
export interface RunDescription {
  /** `spawn`: a throw-away server of the suite's own; `target`: the operator's deployment. */
  readonly mode: 'spawn' | 'target';
  /** Whether the storage threats could look at the data folder and logs. */
  readonly storage: boolean;
  /** Whether denial-of-service probes were allowed. */
  readonly dos: boolean;
  readonly selection: { readonly only: readonly string[]; readonly skip: readonly string[] };
}

/**
 * The JSON text of `report` (pretty-printed, with a trailing newline).
 *
 * @example
 * ```ts
 * writeFileSync('reports/threats.json', jsonReport(report, '0.1.0'));
 * ```
 */
export function jsonReport(report: RunReport, version: string, run?: RunDescription): string {
  const body = {
    format: JSON_REPORT_FORMAT,
    tool: { name: 'impp threats', version },
    ...(run === undefined ? {} : { run }),
    startedAt: report.startedAt,
    durationMs: report.durationMs,
    target: report.target,
    exitCode: report.exitCode,
    counts: report.counts,
    classes: report.classes,
    results: report.results,
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}
