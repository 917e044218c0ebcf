/**
 * The human-readable report: one progress line per threat as it completes, the final table and
 * the per-class summary ("authentication 9/9 mitigated").
 */
import { THREAT_CLASSES, type ClassSummary, type RunReport, type ThreatResult } from '../runner.js';
import type { Verdict } from '../types.js';

/** Colours for verdicts; identity functions when colour is off. */
export interface VerdictStyle {
  readonly good: (text: string) => string;
  readonly bad: (text: string) => string;
  readonly dim: (text: string) => string;
  readonly bold: (text: string) => string;
}

const PLAIN: VerdictStyle = { good: (s) => s, bad: (s) => s, dim: (s) => s, bold: (s) => s };

/** Width of `T07 key-substitution` plus its dot leader. */
const LABEL_WIDTH = 40;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function paint(verdict: Verdict, style: VerdictStyle): string {
  switch (verdict) {
    case 'MITIGATED':
      return style.good(verdict);
    case 'VULNERABLE':
    case 'ERROR':
      return style.bad(verdict);
    default:
      return style.dim(verdict);
  }
}

function verdictText(r: ThreatResult, style: VerdictStyle): string {
  const v = paint(r.verdict, style);
  return r.observed === undefined ? v : `${v} [observed ${r.observed}]`;
}

/**
 * The progress line of one result: `T07 key-substitution ...... MITIGATED (1.2 s)`.
 *
 * @example
 * ```ts
 * io.stderr.write(progressLine(result) + '\n');
 * ```
 */
export function progressLine(r: ThreatResult, style: VerdictStyle = PLAIN): string {
  const label = `${r.id} ${r.name} `;
  const dots = '.'.repeat(Math.max(3, LABEL_WIDTH - label.length));
  const line = `${label}${style.dim(dots)} ${verdictText(r, style)} (${seconds(r.durationMs)})`;
  // Anything but MITIGATED says why at once, so a long run can be followed from its progress.
  return r.verdict === 'MITIGATED' ? line : `${line}: ${cut(r.summary, 100)}`;
}

/**
 * One class's summary line: "authentication 9/9 mitigated", then any other verdicts.
 *
 * @example
 * ```ts
 * classLine(report.classes[0]); // 'content (end to end) 9/11 mitigated, 2 not tested'
 * ```
 */
export function classLine(c: ClassSummary): string {
  const label = THREAT_CLASSES.find((x) => x.id === c.class)?.label ?? c.class;
  const rest: string[] = [];
  if (c.counts.VULNERABLE > 0) rest.push(`${c.counts.VULNERABLE} vulnerable`);
  if (c.counts.ERROR > 0) rest.push(`${c.counts.ERROR} error`);
  if (c.counts['NOT-TESTED'] > 0) rest.push(`${c.counts['NOT-TESTED']} not tested`);
  if (c.counts['ACCEPTED-RISK'] > 0) rest.push(`${c.counts['ACCEPTED-RISK']} accepted risk`);
  const head = `${label} ${c.counts.MITIGATED}/${c.total} mitigated`;
  return rest.length === 0 ? head : `${head}, ${rest.join(', ')}`;
}

/** Cuts `text` to `width` characters with an ellipsis. */
function cut(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/**
 * The final table (id, name, verdict, time, summary), the per-class summary and the totals.
 *
 * @example
 * ```ts
 * io.stdout.write(renderTable(report).join('\n') + '\n');
 * ```
 */
export function renderTable(
  report: RunReport,
  style: VerdictStyle = PLAIN,
  summaryWidth = 100,
): string[] {
  const rows = report.results.map((r) => ({
    id: r.id,
    name: r.name,
    verdict: r.observed === undefined ? r.verdict : `${r.verdict} [${r.observed}]`,
    raw: r,
    time: seconds(r.durationMs),
    summary: cut(r.summary, summaryWidth),
  }));
  const w = {
    id: Math.max(2, ...rows.map((r) => r.id.length)),
    name: Math.max(4, ...rows.map((r) => r.name.length)),
    verdict: Math.max(7, ...rows.map((r) => r.verdict.length)),
    time: Math.max(4, ...rows.map((r) => r.time.length)),
  };
  const lines = [
    style.bold(
      `${'id'.padEnd(w.id)}  ${'name'.padEnd(w.name)}  ${'verdict'.padEnd(w.verdict)}  ${'time'.padStart(w.time)}  summary`,
    ),
  ];
  for (const r of rows) {
    const verdict = paint(r.raw.verdict, style) + r.verdict.slice(r.raw.verdict.length);
    const pad = ' '.repeat(w.verdict - r.verdict.length);
    lines.push(
      `${r.id.padEnd(w.id)}  ${r.name.padEnd(w.name)}  ${verdict}${pad}  ${r.time.padStart(w.time)}  ${r.summary}`,
    );
  }
  lines.push('', style.bold('Per class:'));
  for (const c of report.classes) lines.push(`  ${classLine(c)}`);
  const n = report.counts;
  lines.push(
    '',
    `${report.results.length} threats in ${seconds(report.durationMs)}: ${n.MITIGATED} mitigated, ` +
      `${n.VULNERABLE} vulnerable, ${n.ERROR} error, ${n['NOT-TESTED']} not tested, ` +
      `${n['ACCEPTED-RISK']} accepted risk`,
  );
  return lines;
}
