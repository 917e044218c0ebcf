/**
 * The operator's files for `impp threats`: the test accounts (`--accounts`) and the accepted
 * risks (`--accept`). Both are YAML (JSON is YAML too), refused as a whole with every problem
 * listed (never the values: the accounts file holds passwords).
 *
 * Accounts file:
 * ```yaml
 * domain: example.org        # optional; default the domain of the addresses
 * accounts:                  # at least 2, all of the domain; 4 let every threat run
 *   - { address: threat-a@example.org, password: "…" }
 *   - { address: threat-b@example.org, password: "…" }
 * ```
 *
 * Accepted-risks file (a list; ids must be in the catalogue, each at most once):
 * ```yaml
 * - id: T57
 *   reason: GS2-KRB5 stays enabled for the legacy clients until 2027 (ticket OPS-114)
 * ```
 */
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { ImppError, isImppError } from '../errors.js';
import { formatAddress, normalizeDomain, parseAddress } from '../trust/address.js';
import {
  configError,
  configErrorMap,
  parseConfigYaml,
  problemsOf,
  type ConfigProblem,
} from '../trust/config-support.js';
import type { TestAccount } from './types.js';

/** What an accounts file gives. */
export interface AccountsFile {
  readonly domain: string;
  readonly accounts: readonly TestAccount[];
}

const accountsSchema = z.strictObject({
  domain: z.string().min(1).optional(),
  accounts: z
    .array(
      z.strictObject({
        address: z.string().min(3),
        password: z.string().min(1, { error: 'must be a non-empty string' }),
      }),
    )
    .min(2, { error: 'needs at least 2 test accounts' }),
});

/**
 * Parses an accounts file's text.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` listing each problem (paths, never values).
 * @example
 * ```ts
 * const { domain, accounts } = parseAccounts(text, 'accounts file t.yaml');
 * ```
 */
export function parseAccounts(text: string, where: string): AccountsFile {
  const data = parseConfigYaml(text, where);
  const parsed = accountsSchema.safeParse(data, { error: configErrorMap });
  if (!parsed.success) throw configError(where, problemsOf(parsed.error.issues));
  const problems: ConfigProblem[] = [];
  let domain: string | undefined;
  if (parsed.data.domain !== undefined) {
    try {
      domain = normalizeDomain(parsed.data.domain);
    } catch (e) {
      if (!isImppError(e, 'ERR_ADDRESS_INVALID')) throw e;
      problems.push({ path: ['domain'], message: e.message });
    }
  }
  const accounts: TestAccount[] = [];
  const seen = new Set<string>();
  parsed.data.accounts.forEach((a, i) => {
    try {
      const address = parseAddress(a.address);
      domain ??= address.domain;
      const canonical = formatAddress(address);
      if (address.domain !== domain) {
        problems.push({ path: ['accounts', i, 'address'], message: `must be in ${domain}` });
      } else if (seen.has(canonical)) {
        problems.push({ path: ['accounts', i, 'address'], message: 'is listed twice' });
      } else {
        seen.add(canonical);
        accounts.push({ address: canonical, password: a.password });
      }
    } catch (e) {
      if (!isImppError(e, 'ERR_ADDRESS_INVALID')) throw e;
      problems.push({ path: ['accounts', i, 'address'], message: e.message });
    }
  });
  if (problems.length > 0 || domain === undefined) throw configError(where, problems);
  return { domain, accounts };
}

/**
 * Reads an accounts file; calls `warn` when others than its owner may read it (it holds
 * passwords: keep it `chmod 600`).
 *
 * @throws ImppError `ERR_CONFIG_INVALID` (unreadable or invalid).
 * @example
 * ```ts
 * const file = readAccountsFile('threat-accounts.yaml', (w) => io.stderr.write(w + '\n'));
 * ```
 */
export function readAccountsFile(path: string, warn: (line: string) => void): AccountsFile {
  const text = readText(path, 'accounts file');
  if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
    warn(
      `warning: the accounts file ${path} holds passwords and others may read it; run chmod 600 ${path}`,
    );
  }
  return parseAccounts(text, `accounts file ${path}`);
}

const acceptedSchema = z.array(
  z.strictObject({
    id: z.string().regex(/^T\d{2,}$/, { error: 'must be a threat id such as T07' }),
    reason: z.string().trim().min(1, { error: 'must say why the risk is accepted' }),
  }),
);

/**
 * Parses an accepted-risks file's text: id → reason.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` for an id not in `knownIds`, a duplicate, or no reason.
 * @example
 * ```ts
 * const accepted = parseAcceptedRisks(text, 'accepted.yaml', new Set(CATALOGUE.map((t) => t.id)));
 * ```
 */
export function parseAcceptedRisks(
  text: string,
  where: string,
  knownIds: ReadonlySet<string>,
): Map<string, string> {
  const data = parseConfigYaml(text, where) ?? [];
  const parsed = acceptedSchema.safeParse(data, { error: configErrorMap });
  if (!parsed.success) throw configError(where, problemsOf(parsed.error.issues));
  const accepted = new Map<string, string>();
  const problems: ConfigProblem[] = [];
  parsed.data.forEach(({ id, reason }, i) => {
    if (!knownIds.has(id)) {
      problems.push({ path: [i, 'id'], message: `${id} is not a threat of this suite` });
    } else if (accepted.has(id)) {
      problems.push({ path: [i, 'id'], message: `${id} is listed twice` });
    } else {
      accepted.set(id, reason);
    }
  });
  if (problems.length > 0) throw configError(where, problems);
  return accepted;
}

/**
 * Reads an accepted-risks file.
 *
 * @throws ImppError `ERR_CONFIG_INVALID`.
 * @example
 * ```ts
 * const accepted = readAcceptedRisksFile('accepted.yaml', ids);
 * ```
 */
export function readAcceptedRisksFile(
  path: string,
  knownIds: ReadonlySet<string>,
): Map<string, string> {
  return parseAcceptedRisks(
    readText(path, 'accepted-risks file'),
    `accepted-risks file ${path}`,
    knownIds,
  );
}

/** A small text file, or ERR_CONFIG_INVALID naming it. */
export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ImppError('ERR_CONFIG_INVALID', `cannot read the ${what} ${path} (${code})`, {
      cause: e,
    });
  }
}
