/**
 * The report formats and the operator's files: JUnit XML stays well-formed whatever a summary
 * holds, class lines read as the issue asks, and file errors name fields, never passwords.
 */
import { describe, expect, it } from 'vitest';
import { parseAcceptedRisks, parseAccounts } from '../../src/threats/files.js';
import { jsonReport } from '../../src/threats/report/json.js';
import { junitReport, xmlEscape } from '../../src/threats/report/junit.js';
import { classLine, progressLine, renderTable } from '../../src/threats/report/text.js';
import { summarise, type RunReport, type ThreatResult } from '../../src/threats/runner.js';

function result(id: string, verdict: ThreatResult['verdict'], summary: string): ThreatResult {
  return {
    id,
    name: `n-${id}`,
    class: 'authentication',
    title: 't',
    verdict,
    summary,
    evidence: ['e <1>'],
    notes: [],
    durationMs: 1234,
  };
}

function report(results: ThreatResult[]): RunReport {
  return {
    startedAt: '2026-01-01T00:00:00.000Z',
    durationMs: 5000,
    target: { host: '127.0.0.1', port: 1, domain: 'example.org' },
    results,
    ...summarise(results),
  };
}

describe('reports', () => {
  it('progress lines and class lines', () => {
    expect(progressLine(result('T07', 'MITIGATED', 'x'))).toBe(
      'T07 n-T07 .............................. MITIGATED (1.2 s)',
    );
    expect(progressLine(result('T08', 'ERROR', 'why'))).toMatch(/ERROR \(1\.2 s\): why$/);
    const r = report([
      result('T14', 'MITIGATED', 'a'),
      result('T15', 'MITIGATED', 'b'),
      result('T16', 'NOT-TESTED', 'c'),
    ]);
    expect(r.classes.map(classLine)).toEqual(['authentication 2/3 mitigated, 1 not tested']);
    expect(renderTable(r).join('\n')).toContain('authentication 2/3 mitigated');
  });

  it('JUnit XML escapes markup and drops characters XML cannot carry', () => {
    expect(xmlEscape('a<b>&"\'\u0000\u001b')).toBe('a&lt;b&gt;&amp;&quot;&apos;');
    const xml = junitReport(
      report([
        result('T01', 'VULNERABLE', 'got <script>&\u0007'),
        result('T02', 'ACCEPTED-RISK', 'ok'),
        result('T03', 'MITIGATED', 'fine'),
      ]),
    );
    expect(xml).toContain('tests="3" failures="1" errors="0" skipped="1"');
    expect(xml).toContain('<failure type="VULNERABLE" message="got &lt;script&gt;&amp;">');
    expect(xml).toContain('<skipped message="ACCEPTED-RISK: ok"/>');
    expect(Buffer.from(xml).some((b) => b < 9)).toBe(false);
    // Balanced: every opened testcase is closed.
    expect(xml.match(/<testcase /g)?.length).toBe(xml.match(/<\/testcase>/g)?.length);
  });

  it('the JSON report is versioned and round-trips', () => {
    const text = jsonReport(report([result('T01', 'MITIGATED', 'x')]), '9.9.9');
    const parsed = JSON.parse(text) as { format: string; tool: { version: string } };
    expect(parsed.format).toBe('impp-threats/v1');
    expect(parsed.tool.version).toBe('9.9.9');
  });
});

describe('operator files', () => {
  it('accounts: canonical addresses, one domain, at least two; errors never echo a password', () => {
    const ok = parseAccounts(
      'accounts:\n  - { address: Alice@Example.ORG, password: s3cret-one }\n  - { address: bob@example.org, password: s3cret-two }\n',
      'accounts file a',
    );
    expect(ok.domain).toBe('example.org');
    expect(ok.accounts.map((a) => a.address)).toEqual(['alice@example.org', 'bob@example.org']);
    const bad = (text: string): string => {
      try {
        parseAccounts(text, 'accounts file b');
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(bad('accounts:\n  - { address: a@x.org, password: hunter2-secret }\n')).toContain(
      'needs at least 2 test accounts',
    );
    const other = bad(
      'domain: x.org\naccounts:\n  - { address: a@x.org, password: hunter2-secret }\n  - { address: b@y.org, password: hunter2-secret }\n',
    );
    expect(other).toContain('accounts[1].address: must be in x.org');
    expect(other).not.toContain('hunter2');
    expect(
      bad(
        'accounts:\n  - { address: a@x.org, pasword: hunter2-secret }\n  - { address: b@x.org, password: p }\n',
      ),
    ).not.toContain('hunter2');
  });

  it('accepted risks: known ids, once each, with a reason; an empty file accepts nothing', () => {
    const ids = new Set(['T01', 'T02']);
    expect(parseAcceptedRisks('', 'f', ids).size).toBe(0);
    expect([...parseAcceptedRisks('- { id: T02, reason: tracked }\n', 'f', ids)]).toEqual([
      ['T02', 'tracked'],
    ]);
    expect(() => parseAcceptedRisks('- { id: T02, reason: "  " }\n', 'f', ids)).toThrow(
      /must say why/,
    );
    expect(() => parseAcceptedRisks('{ T02: x }\n', 'f', ids)).toThrow(
      /ERR_CONFIG_INVALID|invalid/,
    );
  });
});
