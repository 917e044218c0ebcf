/**
 * Runs threats (docs/security-model.md §12): each gets a fresh {@link ThreatContext} and a
 * deadline; the runner, not the threat, gives ERROR (control step failed, the threat threw, it
 * passed its deadline, or it claimed MITIGATED without a successful control step), NOT-TESTED for
 * a capability the run cannot offer, and ACCEPTED-RISK for an id in the operator's accepted-risks
 * file.
 *
 * Accepted risks are still run: the report keeps the observed verdict beside ACCEPTED-RISK, so an
 * operator sees when an accepted risk is in fact mitigated now (and can drop it from the file), and
 * the evidence stays in the report. An accepted threat never fails the run, whatever it observed.
 */
import type { ImppClientOptions } from '../client/client.js';
import { ImppError } from '../errors.js';
import { ControlFailure, createThreatContext, describeError } from './context.js';
import type {
  Capability,
  ClientPki,
  DosPolicy,
  FederationAccess,
  ListSigner,
  StorageAccess,
  Target,
  TestAccount,
  Threat,
  ThreatClass,
  Verdict,
} from './types.js';

/** The per-threat deadline unless the threat or the run says otherwise. */
export const DEFAULT_DEADLINE_MS = 30_000;

/** One threat's line of the report. */
export interface ThreatResult {
  readonly id: string;
  readonly name: string;
  readonly class: ThreatClass;
  readonly title: string;
  readonly verdict: Verdict;
  /** With ACCEPTED-RISK: the verdict the run observed (MITIGATED, VULNERABLE, …). */
  readonly observed?: Exclude<Verdict, 'ACCEPTED-RISK'>;
  /** With ACCEPTED-RISK: the operator's reason from the accepted-risks file. */
  readonly acceptedReason?: string;
  readonly summary: string;
  readonly evidence: readonly string[];
  /** The threat's progress notes, control steps and clean-up problems. */
  readonly notes: readonly string[];
  readonly durationMs: number;
}

/** What {@link runThreat} and {@link runThreats} need. */
export interface RunOptions {
  readonly target: Target;
  readonly accounts: readonly TestAccount[];
  readonly storage?: StorageAccess | undefined;
  readonly dos?: DosPolicy;
  /** Deadline of a threat that does not set its own; default {@link DEFAULT_DEADLINE_MS}. */
  readonly deadlineMs?: number;
  /** Accepted risks: id → the operator's reason. */
  readonly accepted?: ReadonlyMap<string, string>;
  /** Merged into every client a threat opens (tests switch client defences off here). */
  readonly clientDefaults?: Partial<ImppClientOptions>;
  /** Each note of a threat as it is made (`--verbose`). */
  readonly onNote?: (threat: Threat, line: string) => void;
  /** The accounts' device-list signers (./steward.ts), when the run has them. */
  readonly listSigner?: (address: string) => ListSigner | undefined;
  /** Client certificates for EXTERNAL (./pki.ts), when the run has them (T52, T53). */
  readonly pki?: ClientPki;
  /** The target's federation endpoint and the suite's peer domains (T27, T28, T45–T47). */
  readonly federation?: FederationAccess;
}

/** Why federation threats cannot run against a target without {@link RunOptions.federation}. */
export const NO_FEDERATION =
  "needs the target's federation endpoint and a peer domain it federates with for the suite: " +
  'run with --spawn, or give --federation HOST:PORT with --peer-domain, --peer-cert and ' +
  '--peer-key (a peer accepted by X.509) and/or --key-peer-domain and --key-peer-seed (a peer ' +
  'accepted by a pinned key); see docs/threat-suite.md';

/** Why the run cannot offer `capability`, or `undefined` when it can. */
export function missingCapability(
  capability: Capability,
  options: Pick<RunOptions, 'storage' | 'dos' | 'accounts' | 'federation'>,
): string | undefined {
  switch (capability) {
    case 'storage':
      return options.storage === undefined
        ? "needs access to the server's storage (run with --spawn, or --data-dir on the server host)"
        : undefined;
    case 'dos':
      return options.dos?.enabled === true
        ? undefined
        : 'denial-of-service probe: opt in with --dos (never against production)';
    case 'local-server':
      // The suite can always start its own server to play the compromised one.
      return undefined;
    case 'federation':
      return options.federation === undefined ? NO_FEDERATION : undefined;
    case 'accounts:3':
    case 'accounts:4': {
      const needed = capability === 'accounts:3' ? 3 : 4;
      return options.accounts.length >= needed
        ? undefined
        : `needs ${needed} test accounts, the run has ${options.accounts.length}`;
    }
  }
}

class DeadlineExceeded extends Error {
  constructor(readonly ms: number) {
    super(`deadline exceeded (${ms} ms)`);
  }
}

const THREAT_VERDICTS: ReadonlySet<string> = new Set(['MITIGATED', 'VULNERABLE', 'NOT-TESTED']);

function result(
  threat: Threat,
  started: number,
  verdict: Exclude<Verdict, 'ACCEPTED-RISK'>,
  summary: string,
  evidence: readonly string[],
  notes: readonly string[],
): ThreatResult {
  return {
    id: threat.id,
    name: threat.name,
    class: threat.class,
    title: threat.title,
    verdict,
    summary,
    evidence,
    notes,
    durationMs: Math.round(performance.now() - started),
  };
}

function accept(observed: ThreatResult, reason: string): ThreatResult {
  const verdict = observed.verdict as Exclude<Verdict, 'ACCEPTED-RISK'>;
  const hint = verdict === 'MITIGATED' ? ' (now mitigated: the entry can be removed)' : '';
  return {
    ...observed,
    verdict: 'ACCEPTED-RISK',
    observed: verdict,
    acceptedReason: reason,
    summary: `accepted: ${reason}; observed ${verdict}${hint}: ${observed.summary}`,
  };
}

async function observe(threat: Threat, options: RunOptions): Promise<ThreatResult> {
  const started = performance.now();
  for (const capability of threat.needs ?? []) {
    const reason = missingCapability(capability, options);
    if (reason !== undefined) return result(threat, started, 'NOT-TESTED', reason, [], []);
  }
  const deadlineMs = threat.deadlineMs ?? options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const controller = new AbortController();
  const handle = createThreatContext({
    target: options.target,
    accounts: options.accounts,
    ...(options.storage === undefined ? {} : { storage: options.storage }),
    ...(options.dos === undefined ? {} : { dos: options.dos }),
    ...(options.clientDefaults === undefined ? {} : { clientDefaults: options.clientDefaults }),
    signal: controller.signal,
    onNote: (line) => options.onNote?.(threat, line),
    ...(options.listSigner === undefined ? {} : { listSigner: options.listSigner }),
    ...(options.pki === undefined ? {} : { pki: options.pki }),
    ...(options.federation === undefined ? {} : { federation: options.federation }),
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new DeadlineExceeded(deadlineMs);
      controller.abort(error);
      reject(error);
    }, deadlineMs);
  });
  const running = (async () => threat.run(handle.ctx))();
  // A threat that ignores the signal keeps running past its deadline; its late end is ignored.
  running.catch(() => undefined);
  let outcome: ThreatResult;
  try {
    const o = await Promise.race([running, deadline]);
    if (!THREAT_VERDICTS.has(o.verdict)) {
      outcome = result(threat, started, 'ERROR', `threat returned an invalid verdict`, [], []);
    } else if (o.verdict === 'MITIGATED' && handle.controls.length === 0) {
      // Never MITIGATED by default: an attack that "failed" proves nothing unless the benign
      // operation it abuses was seen to work.
      outcome = result(
        threat,
        started,
        'ERROR',
        'MITIGATED without a control step (a bug in the threat)',
        o.evidence ?? [],
        [],
      );
    } else {
      outcome = result(threat, started, o.verdict, o.summary, o.evidence ?? [], []);
    }
  } catch (error) {
    const summary =
      error instanceof DeadlineExceeded || error instanceof ControlFailure
        ? error.message
        : `threat failed: ${describeError(error)}`;
    outcome = result(threat, started, 'ERROR', summary, [], []);
  } finally {
    clearTimeout(timer);
  }
  // Clean-up is bounded too, so a hung close cannot stall the whole run.
  const cleanupErrors = await Promise.race([
    handle.dispose(),
    new Promise<string[]>((resolve) => {
      setTimeout(() => {
        resolve([`clean-up did not finish within ${deadlineMs} ms`]);
      }, deadlineMs).unref();
    }),
  ]);
  return {
    ...outcome,
    notes: [...handle.notes, ...cleanupErrors],
    durationMs: Math.round(performance.now() - started),
  };
}

/**
 * Runs one threat and returns its line of the report; never throws.
 *
 * @example
 * ```ts
 * const r = await runThreat(threat, { target, accounts });
 * if (r.verdict === 'VULNERABLE') failures.push(`${r.id} ${r.name}: ${r.summary}`);
 * ```
 */
export async function runThreat(threat: Threat, options: RunOptions): Promise<ThreatResult> {
  const observed = await observe(threat, options);
  const reason = options.accepted?.get(threat.id);
  return reason === undefined ? observed : accept(observed, reason);
}

/** Which threats of a catalogue to run: ids (`T07`) or names (`key-substitution`). */
export interface Selection {
  readonly only?: readonly string[];
  readonly skip?: readonly string[];
}

/**
 * The threats of `catalogue` that `selection` picks, in catalogue order.
 *
 * @throws ImppError `ERR_INVALID_ARGUMENT` naming an id or name the catalogue does not have.
 * @example
 * ```ts
 * select(catalogue, { only: ['T07', 'tampering'] });
 * ```
 */
export function select(catalogue: readonly Threat[], selection: Selection): Threat[] {
  const known = new Set(catalogue.flatMap((t) => [t.id, t.name]));
  for (const key of [...(selection.only ?? []), ...(selection.skip ?? [])]) {
    if (!known.has(key)) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `no threat with id or name "${key}"`);
    }
  }
  const picks = (list: readonly string[] | undefined, t: Threat): boolean =>
    list !== undefined && (list.includes(t.id) || list.includes(t.name));
  return catalogue.filter(
    (t) =>
      (selection.only === undefined || selection.only.length === 0 || picks(selection.only, t)) &&
      !picks(selection.skip, t),
  );
}

/** The classes in the order of the class table after docs/security-model.md §8, with its labels. */
export const THREAT_CLASSES: readonly { readonly id: ThreatClass; readonly label: string }[] = [
  { id: 'content', label: 'content (end to end)' },
  { id: 'keys-and-trust', label: 'keys and trust' },
  { id: 'presence-and-access', label: 'presence and access control' },
  { id: 'authentication', label: 'authentication' },
  { id: 'transport-and-robustness', label: 'transport and robustness' },
  { id: 'parsing', label: 'parsing' },
  { id: 'federation', label: 'federation' },
  { id: 'operations-and-storage', label: 'operations and storage' },
  { id: 'crypto-primitives', label: 'cryptographic primitives' },
];

/** Counts per verdict. */
export type VerdictCounts = Record<Verdict, number>;

/** One class's line of the summary, e.g. "authentication 9/9 mitigated". */
export interface ClassSummary {
  readonly class: ThreatClass;
  readonly total: number;
  readonly counts: VerdictCounts;
}

/** A whole run. */
export interface RunReport {
  readonly startedAt: string;
  readonly durationMs: number;
  readonly target: { readonly host: string; readonly port: number; readonly domain: string };
  readonly results: readonly ThreatResult[];
  readonly counts: VerdictCounts;
  readonly classes: readonly ClassSummary[];
  /** 1 when anything is VULNERABLE or ERROR (accepted risks excepted), else 0. */
  readonly exitCode: number;
}

function emptyCounts(): VerdictCounts {
  return { MITIGATED: 0, VULNERABLE: 0, 'NOT-TESTED': 0, 'ACCEPTED-RISK': 0, ERROR: 0 };
}

/**
 * The counts, per-class summaries and exit code of a set of results.
 *
 * @example
 * ```ts
 * const { exitCode } = summarise(results);
 * ```
 */
export function summarise(
  results: readonly ThreatResult[],
): Pick<RunReport, 'counts' | 'classes' | 'exitCode'> {
  const counts = emptyCounts();
  const byClass = new Map<ThreatClass, VerdictCounts>();
  for (const r of results) {
    counts[r.verdict] += 1;
    let c = byClass.get(r.class);
    if (c === undefined) {
      c = emptyCounts();
      byClass.set(r.class, c);
    }
    c[r.verdict] += 1;
  }
  const classes = THREAT_CLASSES.flatMap(({ id }) => {
    const c = byClass.get(id);
    return c === undefined
      ? []
      : [{ class: id, total: Object.values(c).reduce((a, b) => a + b, 0), counts: c }];
  });
  return { counts, classes, exitCode: counts.VULNERABLE + counts.ERROR > 0 ? 1 : 0 };
}

/**
 * Runs `threats` one after the other (they share one target and its accounts, so running them
 * in parallel would let one threat's rate limits and quotas change another's verdict).
 *
 * @example
 * ```ts
 * const report = await runThreats(select(CATALOGUE, { only: ['T07'] }), options, (r) => print(r));
 * process.exitCode = report.exitCode;
 * ```
 */
export async function runThreats(
  threats: readonly Threat[],
  options: RunOptions,
  onResult?: (result: ThreatResult) => void,
): Promise<RunReport> {
  const startedAt = new Date().toISOString();
  const started = performance.now();
  const results: ThreatResult[] = [];
  for (const threat of threats) {
    const r = await runThreat(threat, options);
    results.push(r);
    onResult?.(r);
  }
  return {
    startedAt,
    durationMs: Math.round(performance.now() - started),
    target: {
      host: options.target.host,
      port: options.target.port,
      domain: options.target.domain,
    },
    results,
    ...summarise(results),
  };
}
