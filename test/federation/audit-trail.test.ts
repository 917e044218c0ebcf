/**
 * The federation audit trail over a real SQLite store: a budget per authenticated peer, and one
 * shared budget for everything said before a peer proved a name (a claimed name must not buy a
 * budget of its own, or anyone could flood the trail by claiming many domains).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FederationAuditTrail, UNAUTHENTICATED } from '../../src/federation/audit-trail.js';
import { type SqliteServiceStore, openSqliteServiceStore } from '../../src/service/store/index.js';

const dirs: string[] = [];
const stores: SqliteServiceStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(): SqliteServiceStore {
  const dir = mkdtempSync(join(tmpdir(), 'impp-audit-'));
  dirs.push(dir);
  const s = openSqliteServiceStore({ path: join(dir, 'store.db') });
  stores.push(s);
  return s;
}

function rows(s: SqliteServiceStore): { kind: string; details: Record<string, unknown> }[] {
  return s.db
    .prepare<[], { kind: string; details: string }>('SELECT kind, details FROM audit ORDER BY seq')
    .all()
    .map((r) => ({ kind: r.kind, details: JSON.parse(r.details) as Record<string, unknown> }));
}

describe('FederationAuditTrail', () => {
  it('caps each source per window and reports what it suppressed with the next record', async () => {
    const s = store();
    let now = 1_000_000;
    const trail = new FederationAuditTrail(s.audit, { perPeer: 2, windowMs: 1000 }, () => now);
    const entry = (budgetKey: string, claimedDomain: string) => ({
      kind: 'federation.proof-failed',
      budgetKey,
      source: '127.0.0.1',
      outcome: 'refused' as const,
      details: { peer: claimedDomain, reason: 'wrong key' },
    });
    // Fifty claimed names before authentication: one shared budget of 2.
    for (let i = 0; i < 50; i++) await trail.record(entry(UNAUTHENTICATED, `d${i}.example`));
    // An authenticated peer keeps its own budget.
    for (let i = 0; i < 3; i++) await trail.record(entry('b.example', 'b.example'));
    expect(rows(s).map((r) => r.details.peer)).toEqual([
      'd0.example',
      'd1.example',
      'b.example',
      'b.example',
    ]);
    now += 1000;
    await trail.record(entry(UNAUTHENTICATED, 'late.example'));
    const last = rows(s).at(-1);
    expect(last?.details).toMatchObject({ peer: 'late.example', suppressed: 48 });
  });

  it('refuses a budget that would switch the trail off or make it unbounded', () => {
    // FederationNode hands its auditLimit option straight to the trail: the check lives here.
    const log = store().audit;
    for (const limit of [
      { perPeer: 0, windowMs: 1000 },
      { perPeer: Number.NaN, windowMs: 1000 },
      { perPeer: 2, windowMs: -1 },
      { perPeer: 2.5, windowMs: 1000 },
    ]) {
      expect(() => new FederationAuditTrail(log, limit)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
      );
    }
  });
});
