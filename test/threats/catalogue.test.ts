/**
 * The catalogue is the specification's list: every row of docs/security-model.md §8 has exactly
 * one entry with its id, name and class (from the class table after §8), in order, and nothing
 * else; and T50 `dependency-rule` catches a build that breaks the rule.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CATALOGUE, IMPLEMENTED_THREATS, buildCatalogue } from '../../src/threats/catalogue.js';
import { dependencyRuleThreatFor } from '../../src/threats/dependency-rule.js';
import { THREAT_CLASSES } from '../../src/threats/runner.js';
import type { Threat } from '../../src/threats/types.js';
import { runOne, startThreatTarget } from './target.js';

const DOC = new URL('../../docs/security-model.md', import.meta.url);

interface DocRow {
  readonly id: string;
  readonly name: string;
  readonly class: string;
}

async function docRows(): Promise<DocRow[]> {
  const { readFileSync } = await import('node:fs');
  const text = readFileSync(DOC, 'utf8');
  const start = text.indexOf('\n## 8. ');
  const end = text.indexOf('\n## 9. ', start);
  const section = text.slice(start, end);
  const rows = [...section.matchAll(/^\| (T\d+) `([^`]+)`/gm)].map((m) => ({
    id: m[1] ?? '',
    name: m[2] ?? '',
  }));
  const classOf = new Map<string, string>();
  for (const m of section.matchAll(/^\| ([a-z ()]+?)\s+\| ((?:T\d+,?\s*)+)\|/gm)) {
    const label = (m[1] ?? '').trim();
    const cls = THREAT_CLASSES.find((c) => c.label === label);
    if (cls === undefined) throw new Error(`class "${label}" of the class table is unknown`);
    for (const id of (m[2] ?? '').split(',').map((s) => s.trim())) {
      if (classOf.has(id)) throw new Error(`${id} is in two classes`);
      classOf.set(id, cls.id);
    }
  }
  return rows.map((r) => ({ ...r, class: classOf.get(r.id) ?? '(no class)' }));
}

describe('the catalogue', () => {
  it('has one entry per row of §8, with its id, name and class, in order', async () => {
    const rows = await docRows();
    expect(rows.length).toBe(58);
    expect(CATALOGUE.map((t) => ({ id: t.id, name: t.name, class: t.class }))).toEqual(rows);
    expect(new Set(CATALOGUE.map((t) => t.id)).size).toBe(CATALOGUE.length);
  });

  it('every implemented threat is a row, implemented once', async () => {
    const ids = new Set((await docRows()).map((r) => r.id));
    for (const t of IMPLEMENTED_THREATS) expect(ids, t.id).toContain(t.id);
    const fake: Threat = { ...CATALOGUE[0], id: 'T99' } as Threat;
    expect(() => buildCatalogue([fake])).toThrow(/T99/);
    const one = CATALOGUE[0] as Threat;
    expect(() => buildCatalogue([one, one])).toThrow(/twice/);
  });

  it('federation threats are played, and without a federation endpoint say how to enable them', async () => {
    const { runThreat, NO_FEDERATION } = await import('../../src/threats/runner.js');
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(DOC, 'utf8');
    for (const id of ['T27', 'T28', 'T45', 'T46', 'T47']) {
      const t = CATALOGUE.find((x) => x.id === id) as Threat;
      expect(IMPLEMENTED_THREATS, id).toContain(t);
      const r = await runThreat(t, {
        target: { host: '127.0.0.1', port: 1, ca: '', domain: 'localhost' },
        accounts: [],
      });
      expect(r.verdict).toBe('NOT-TESTED');
      expect(r.summary).toBe(NO_FEDERATION);
      // The row's last column names the suite test and the test that shows it can fail.
      const row = text.split('\n').find((l) => l.startsWith(`| ${id} `)) ?? '';
      expect(row, id).toContain('`impp threats` ' + id);
      expect(row, id).toContain('test/threats/federation.test.ts');
    }
  });
});

describe('T50 dependency-rule', () => {
  it('MITIGATED on this build (src/ under vitest)', async () => {
    const t = await startThreatTarget();
    try {
      const r = await runOne(dependencyRuleThreatFor(), t);
      expect(r.verdict, r.summary).toBe('MITIGATED');
      expect(r.notes[0]).toMatch(/^control ok/);
    } finally {
      await t.close();
    }
  });

  it('VULNERABLE for a build whose server reaches seal/message, or imports libsodium', async () => {
    const root = mkdtempSync(join(tmpdir(), 'impp-build-'));
    const put = (path: string, text: string): void => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    try {
      put('errors.js', 'export {};\n');
      put('seal/header.js', 'export {};\n');
      put('seal/message.js', 'export {};\n');
      put('service/store.js', "import { h } from '../seal/header.js';\n");
      put('service/helper.js', "export * from '../trust/util.js';\n");
      const t = await startThreatTarget();
      try {
        const clean = await runOne(dependencyRuleThreatFor(root), t);
        expect(clean.verdict).toBe('MITIGATED');
        // Reached transitively, through an allowed area.
        put('trust/util.js', "import { open } from '../seal/message.js';\n");
        const indirect = await runOne(dependencyRuleThreatFor(root), t);
        expect(indirect.verdict).toBe('VULNERABLE');
        expect(indirect.evidence).toContain(
          'server reaches seal: service/helper → trust/util → seal/message',
        );
        put('trust/util.js', 'export {};\n');
        put('auth/x.js', "import sodium from 'libsodium-wrappers-sumo';\n");
        const sodium = await runOne(dependencyRuleThreatFor(root), t);
        expect(sodium.verdict).toBe('VULNERABLE');
        expect(sodium.evidence).toEqual(['imports libsodium outside crypto: auth/x']);
        // A tree the scanner cannot read is an ERROR, never MITIGATED.
        put('service/store.js', 'export {};\n');
        const blind = await runOne(dependencyRuleThreatFor(root), t);
        expect(blind.verdict).toBe('ERROR');
      } finally {
        await t.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
