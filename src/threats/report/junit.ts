/**
 * The JUnit XML report for CI systems: one `<testsuite>` per threat class, one `<testcase>` per
 * threat. VULNERABLE and ERROR are `<failure>`s (the `type` attribute names which), NOT-TESTED and
 * ACCEPTED-RISK are `<skipped>` with the reason; evidence and notes go to `<system-out>`.
 */
import { THREAT_CLASSES, type RunReport, type ThreatResult } from '../runner.js';

// XML 1.0 (§2.2) has no way to carry most C0 controls, even escaped: drop them.
// eslint-disable-next-line no-control-regex
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

/** Escapes text for an XML attribute or element. */
export function xmlEscape(text: string): string {
  return text
    .replace(NOT_XML_CHAR, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function secs(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function testcase(r: ThreatResult): string[] {
  const open = `    <testcase classname="impp.threats.${r.class}" name="${xmlEscape(`${r.id} ${r.name}`)}" time="${secs(r.durationMs)}">`;
  const lines = [open];
  if (r.verdict === 'VULNERABLE' || r.verdict === 'ERROR') {
    lines.push(
      `      <failure type="${r.verdict}" message="${xmlEscape(r.summary)}">${xmlEscape(
        [r.title, ...r.evidence].join('\n'),
      )}</failure>`,
    );
  } else if (r.verdict === 'NOT-TESTED' || r.verdict === 'ACCEPTED-RISK') {
    lines.push(`      <skipped message="${xmlEscape(`${r.verdict}: ${r.summary}`)}"/>`);
  }
  const out = [`verdict: ${r.verdict}`, `summary: ${r.summary}`, ...r.evidence, ...r.notes];
  lines.push(`      <system-out>${xmlEscape(out.join('\n'))}</system-out>`, '    </testcase>');
  return lines;
}

/**
 * The JUnit XML text of `report`.
 *
 * @example
 * ```ts
 * writeFileSync('reports/threats.xml', junitReport(report));
 * ```
 */
export function junitReport(report: RunReport): string {
  const n = report.counts;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="impp threats" tests="${report.results.length}" failures="${n.VULNERABLE + n.ERROR}" errors="0" skipped="${n['NOT-TESTED'] + n['ACCEPTED-RISK']}" time="${secs(report.durationMs)}" timestamp="${report.startedAt}">`,
  ];
  for (const { id, label } of THREAT_CLASSES) {
    const results = report.results.filter((r) => r.class === id);
    if (results.length === 0) continue;
    const failures = results.filter((r) => r.verdict === 'VULNERABLE' || r.verdict === 'ERROR');
    const skipped = results.filter(
      (r) => r.verdict === 'NOT-TESTED' || r.verdict === 'ACCEPTED-RISK',
    );
    const time = results.reduce((a, r) => a + r.durationMs, 0);
    lines.push(
      `  <testsuite name="${xmlEscape(label)}" tests="${results.length}" failures="${failures.length}" errors="0" skipped="${skipped.length}" time="${secs(time)}">`,
    );
    for (const r of results) lines.push(...testcase(r));
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>');
  return `${lines.join('\n')}\n`;
}
