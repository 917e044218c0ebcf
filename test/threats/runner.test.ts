/**
 * The runner against a real target, with fake test-only threats: each runner verdict (ERROR for a
 * failed control, a throw and a missed deadline; NOT-TESTED for a missing capability;
 * ACCEPTED-RISK keeping the observed verdict) and the clean-up of what a threat opened.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImppClient } from '../../src/client/client.js';
import { runThreats, select, summarise } from '../../src/threats/runner.js';
import type { Threat, ThreatContext, ThreatOutcome } from '../../src/threats/types.js';
import { runOne, startThreatTarget, type ThreatTarget } from './target.js';

let t: ThreatTarget;

beforeAll(async () => {
  t = await startThreatTarget();
});
afterAll(async () => {
  await t.close();
});

function fake(
  id: string,
  run: (ctx: ThreatContext) => Promise<ThreatOutcome>,
  extra: Partial<Threat> = {},
): Threat {
  return {
    id,
    name: `fake-${id.toLowerCase()}`,
    class: 'content',
    title: 'a test-only threat',
    run,
    ...extra,
  };
}

describe('runThreat', () => {
  it('a control step that works and an attack that fails: MITIGATED, clients closed after', async () => {
    let client: ImppClient | undefined;
    let dir = '';
    const r = await runOne(
      fake('T90', async (ctx) => {
        const account = ctx.accounts[0];
        if (account === undefined) throw new Error('no account');
        client = ctx.client(account);
        dir = ctx.tempDir();
        await ctx.control('alice logs in', () => (client as ImppClient).connect());
        ctx.note('attack: nothing');
        return { verdict: 'MITIGATED', summary: 'nothing happened', evidence: ['e1'] };
      }),
      t,
    );
    expect(r).toMatchObject({
      id: 'T90',
      name: 'fake-t90',
      class: 'content',
      verdict: 'MITIGATED',
      summary: 'nothing happened',
      evidence: ['e1'],
    });
    expect(r.notes).toEqual(['control ok: alice logs in', 'attack: nothing']);
    expect(existsSync(dir)).toBe(false);
    await expect.poll(() => t.env.server.onlineDevices).toBe(0);
  });

  it('a failed control step is ERROR, never MITIGATED', async () => {
    const r = await runOne(
      fake('T91', async (ctx) => {
        const account = ctx.accounts[0];
        if (account === undefined) throw new Error('no account');
        const c = ctx.client({ ...account, password: 'wrong-password' });
        await ctx.control('log in', () => c.connect());
        return { verdict: 'MITIGATED', summary: 'unreachable' };
      }),
      t,
    );
    expect(r.verdict).toBe('ERROR');
    expect(r.summary).toMatch(/^control failed: log in: ERR_AUTH_FAILED/);
    expect(r.summary).not.toContain('wrong-password');
  });

  it('a threat past its deadline is ERROR "deadline exceeded", and its signal is aborted', async () => {
    let aborted = false;
    const r = await runOne(
      fake(
        'T92',
        (ctx) =>
          new Promise<ThreatOutcome>(() => {
            ctx.signal.addEventListener('abort', () => {
              aborted = true;
            });
          }),
        { deadlineMs: 100 },
      ),
      t,
    );
    expect(r.verdict).toBe('ERROR');
    expect(r.summary).toBe('deadline exceeded (100 ms)');
    expect(aborted).toBe(true);
    expect(r.durationMs).toBeLessThan(2_000);
  });

  it('a throw, an invalid verdict, or MITIGATED without a control step is ERROR', async () => {
    const thrown = await runOne(
      fake('T93', () => Promise.reject(new Error('boom'))),
      t,
    );
    expect(thrown).toMatchObject({ verdict: 'ERROR', summary: 'threat failed: boom' });
    const invalid = await runOne(
      fake('T94', () =>
        Promise.resolve({ verdict: 'ACCEPTED-RISK', summary: 'x' } as unknown as ThreatOutcome),
      ),
      t,
    );
    expect(invalid.verdict).toBe('ERROR');
    const unchecked = await runOne(
      fake('T98', () => Promise.resolve({ verdict: 'MITIGATED', summary: 'trust me' })),
      t,
    );
    expect(unchecked).toMatchObject({
      verdict: 'ERROR',
      summary: 'MITIGATED without a control step (a bug in the threat)',
    });
  });

  it('a missing capability is NOT-TESTED with the reason, and the threat is not called', async () => {
    let called = false;
    const threat = fake(
      'T95',
      () => {
        called = true;
        return Promise.resolve({ verdict: 'VULNERABLE', summary: 'x' });
      },
      { needs: ['storage', 'dos'] },
    );
    const noStorage = await runOne(threat, t, { storage: undefined });
    expect(noStorage.verdict).toBe('NOT-TESTED');
    expect(noStorage.summary).toMatch(/storage/);
    const noDos = await runOne(threat, t, { dos: { enabled: false, maxRate: 1 } });
    expect(noDos.summary).toMatch(/--dos/);
    const few = await runOne(
      fake('T96', () => Promise.reject(new Error('x')), { needs: ['accounts:4'] }),
      t,
      {
        accounts: t.accounts.slice(0, 2),
      },
    );
    expect(few).toMatchObject({
      verdict: 'NOT-TESTED',
      summary: 'needs 4 test accounts, the run has 2',
    });
    expect(called).toBe(false);
  });

  it('an accepted risk still runs and keeps the observed verdict', async () => {
    const r = await runOne(
      fake('T97', () => Promise.resolve({ verdict: 'VULNERABLE', summary: 'it worked' })),
      t,
      { accepted: new Map([['T97', 'we know']]) },
    );
    expect(r).toMatchObject({
      verdict: 'ACCEPTED-RISK',
      observed: 'VULNERABLE',
      acceptedReason: 'we know',
    });
    expect(summarise([r]).exitCode).toBe(0);
  });
});

describe('runThreats', () => {
  const threats = [
    fake('T01', async (ctx) => {
      await ctx.control('nothing', () => Promise.resolve());
      return { verdict: 'MITIGATED', summary: 'ok' };
    }),
    fake('T02', () => Promise.resolve({ verdict: 'VULNERABLE', summary: 'bad' }), {
      class: 'authentication',
    }),
    fake('T03', () => Promise.resolve({ verdict: 'NOT-TESTED', summary: 'n/a' })),
  ];

  it('selects by id or name, in catalogue order, and refuses unknown keys', () => {
    expect(select(threats, { only: ['fake-t03', 'T01'] }).map((x) => x.id)).toEqual(['T01', 'T03']);
    expect(select(threats, { skip: ['T02'] }).map((x) => x.id)).toEqual(['T01', 'T03']);
    expect(() => select(threats, { only: ['T99'] })).toThrow(/T99/);
  });

  it('reports each result as it completes, summarises per class, exits 1 on VULNERABLE', async () => {
    const seen: string[] = [];
    const report = await runThreats(threats, { target: t.target, accounts: t.accounts }, (r) =>
      seen.push(r.id),
    );
    expect(seen).toEqual(['T01', 'T02', 'T03']);
    expect(report.exitCode).toBe(1);
    expect(report.counts).toMatchObject({ MITIGATED: 1, VULNERABLE: 1, 'NOT-TESTED': 1 });
    expect(report.classes.map((c) => [c.class, c.total])).toEqual([
      ['content', 2],
      ['authentication', 1],
    ]);
    const clean = await runThreats(select(threats, { skip: ['T02'] }), {
      target: t.target,
      accounts: t.accounts,
    });
    expect(clean.exitCode).toBe(0);
  });
});
