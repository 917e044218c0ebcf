/**
 * A deployment for the threat suite's own tests: the service harness's real server (real TLS,
 * SQLite in a temporary folder, local SCRAM accounts alice, bob, carol and dave) with a JSON log
 * file the operator threats can grep, and test-only switches to turn one defence off at a time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import type { ImppClientOptions } from '../../src/client/client.js';
import { WEAKEN_CLIENT, type ClientDefences } from '../../src/client/defences.js';
import { randomBytes } from '../../src/crypto/random.js';
import { createServiceLogger } from '../../src/service/logging.js';
import { runThreat, type RunOptions, type ThreatResult } from '../../src/threats/runner.js';
import type { StorageAccess, Target, TestAccount, Threat } from '../../src/threats/types.js';
import { startEnv, type Env, type EnvOptions } from '../service/harness.js';

/** Options of {@link startThreatTarget}: the service harness's, plus client defences. */
export interface ThreatTargetOptions extends Omit<EnvOptions, 'defences' | 'log' | 'password'> {
  /** Server defences to switch off (test-only). */
  readonly server?: EnvOptions['defences'];
  /** Client defences to switch off in every client a threat opens (test-only). */
  readonly client?: Partial<ClientDefences>;
}

/** A running target and what a threat run needs of it. */
export interface ThreatTarget {
  readonly env: Env;
  readonly target: Target;
  /** alice, bob, carol, dave (in that order). */
  readonly accounts: readonly TestAccount[];
  readonly storage: StorageAccess;
  readonly clientDefaults: Partial<ImppClientOptions>;
  close(): Promise<void>;
}

/** Starts a server for the threat tests; `close()` stops it and removes its files. */
export async function startThreatTarget(options: ThreatTargetOptions = {}): Promise<ThreatTarget> {
  const logDir = mkdtempSync(join(tmpdir(), 'impp-threat-log-'));
  const logFile = join(logDir, 'server.log');
  const destination = pino.destination({ dest: logFile, sync: true });
  const log = createServiceLogger({ level: 'debug', destination });
  // A fresh password per run: the storage threats grep for it.
  const password = `pw-${Buffer.from(randomBytes(12)).toString('hex')}`;
  const { server, client, ...envOptions } = options;
  const env = await startEnv({
    ...envOptions,
    password,
    log,
    ...(server === undefined ? {} : { defences: server }),
  });
  const clientDefaults: Partial<ImppClientOptions> =
    client === undefined ? {} : { [WEAKEN_CLIENT]: client };
  return {
    env,
    target: {
      host: '127.0.0.1',
      port: env.port,
      ca: env.ca,
      servername: 'localhost',
      domain: env.domain,
      domainKey: env.domainKey,
    },
    accounts: ['alice', 'bob', 'carol', 'dave'].map((u) => ({
      address: `${u}@${env.domain}`,
      password,
    })),
    storage: { dataDir: env.dir, logFiles: [logFile] },
    clientDefaults,
    async close() {
      await env.close();
      destination.end();
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs one threat against `t` through the real runner. Denial-of-service probes are allowed
 * (at 50 per second) unless `options.dos` says otherwise.
 */
export function runOne(
  threat: Threat,
  t: ThreatTarget,
  options: Partial<RunOptions> = {},
): Promise<ThreatResult> {
  return runThreat(threat, {
    target: t.target,
    accounts: t.accounts,
    storage: t.storage,
    clientDefaults: t.clientDefaults,
    dos: { enabled: true, maxRate: 50 },
    ...options,
  });
}

/** The threat `id` of `list` (a catalogue file's array); throws when there is none. */
export function pick(list: readonly Threat[], id: string): Threat {
  const found = list.find((x) => x.id === id);
  if (found === undefined) throw new Error(`no ${id}`);
  return found;
}

/** A result as one block (summary, evidence, notes): the message of a failed assertion. */
export function explain(r: ThreatResult): string {
  return `${r.summary}\n${r.evidence.join('\n')}\n${r.notes.join('\n')}`;
}

/**
 * One target for the tests of the enclosing `describe` (or file): started before them, closed
 * after. Returns the accessor, since the target exists only once the tests run.
 *
 * @example
 * ```ts
 * const target = sharedTarget();
 * it('T11 is MITIGATED', async () => expect((await runOne(t11, target())).verdict).toBe('MITIGATED'));
 * ```
 */
export function sharedTarget(options: ThreatTargetOptions = {}): () => ThreatTarget {
  let t: ThreatTarget | undefined;
  beforeAll(async () => {
    t = await startThreatTarget(options);
  });
  afterAll(async () => {
    await t?.close();
  });
  return () => {
    if (t === undefined) throw new Error('the target starts before the tests');
    return t;
  };
}

/** Runs `threat` once against a target of its own built with `options`, then closes it. */
export async function runAgainst(
  threat: Threat,
  options: ThreatTargetOptions,
  runOptions: Partial<RunOptions> = {},
): Promise<ThreatResult> {
  const t = await startThreatTarget(options);
  try {
    return await runOne(threat, t, runOptions);
  } finally {
    await t.close();
  }
}
