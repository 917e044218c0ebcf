/**
 * What every impp configuration parser shares: a few field schemas, zod's error wording, one
 * `ERR_CONFIG_INVALID` that lists each problem as `path: what is expected` (never the value), and
 * hardened YAML reading. Used by the domain trust configuration here and by the server
 * configuration in src/service/config, so both report problems the same way.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ImppError, isImppError } from '../errors.js';
import { normalizeDomain } from './address.js';

/**
 * A schema-level error message that still says "is required" for a missing field (a schema's own
 * `error` takes precedence over the per-parse error map).
 *
 * @example
 * ```ts
 * z.literal(1, { error: expecting('must be 1') });
 * ```
 */
export function expecting(message: string): (issue: { input?: unknown }) => string {
  return (issue) => (issue.input === undefined ? 'is required' : message);
}

/** A domain name, normalized to canonical A-label form by the address module. */
export const domainNameSchema = z.string().transform((value, ctx) => {
  try {
    return normalizeDomain(value);
  } catch (e) {
    if (!isImppError(e, 'ERR_ADDRESS_INVALID')) throw e;
    ctx.issues.push({ code: 'custom', input: value, message: e.message });
    return z.NEVER;
  }
});

/** A file path: non-empty, bounded, no NUL. */
export const filePathSchema = z
  .string()
  .min(1, { error: 'must be a non-empty file path' })
  .max(4096, { error: 'is longer than 4096 characters' })
  .refine((p) => !p.includes('\0'), { error: 'must not contain a NUL character' });

/** Zod's per-parse error map: clearer wording for missing fields, nothing of the input echoed. */
export function configErrorMap(issue: z.core.$ZodRawIssue): string | undefined {
  if (
    (issue.code === 'invalid_type' || issue.code === 'invalid_value') &&
    issue.input === undefined
  ) {
    return 'is required';
  }
  return undefined;
}

/** One thing wrong with a configuration: where, and what is expected. */
export interface ConfigProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/** Most problems listed in one error message; the rest are counted. */
const MAX_LISTED_PROBLEMS = 25;

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(top level)' : out;
}

/**
 * zod issues as problems, under `prefix`. Each unknown key is its own problem, with a hint when
 * it looks like an inline secret.
 *
 * @example
 * ```ts
 * const problems = problemsOf(result.error.issues, ['trust']);
 * ```
 */
export function problemsOf(
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): ConfigProblem[] {
  return issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          path: [...prefix, ...issue.path, key],
          message:
            'unknown field; check the spelling' +
            (/pass|secret|token|key$/i.test(key)
              ? ' (secrets are never written inline: use { file } or { env } references)'
              : ''),
        }))
      : [{ path: [...prefix, ...issue.path], message: issue.message }],
  );
}

/**
 * One `ERR_CONFIG_INVALID` listing every problem as `path: message`, capped, with a count.
 *
 * @example
 * ```ts
 * throw configError('domain trust configuration', problemsOf(result.error.issues));
 * ```
 */
export function configError(where: string, problems: readonly ConfigProblem[]): ImppError {
  const lines = problems
    .slice(0, MAX_LISTED_PROBLEMS)
    .map((p) => `${formatPath(p.path)}: ${p.message}`);
  if (problems.length > MAX_LISTED_PROBLEMS) {
    lines.push(`... and ${problems.length - MAX_LISTED_PROBLEMS} more`);
  }
  const noun = problems.length === 1 ? 'problem' : 'problems';
  return new ImppError(
    'ERR_CONFIG_INVALID',
    `${where} is invalid (${problems.length} ${noun}):\n- ${lines.join('\n- ')}`,
  );
}

/** Alias expansions allowed in a configuration file (bounds "billion laughs" documents). */
export const MAX_YAML_ALIASES = 100;

/**
 * Parses configuration YAML with duplicate keys refused and aliases bounded. Errors name the line
 * and column, never the content (prettyErrors is off because it would quote the source line).
 *
 * @throws ImppError `ERR_CONFIG_INVALID`.
 * @example
 * ```ts
 * const data = parseConfigYaml(text, 'configuration file impp.yaml');
 * ```
 */
export function parseConfigYaml(text: string, where: string): unknown {
  try {
    return parseYaml(text, {
      uniqueKeys: true,
      maxAliasCount: MAX_YAML_ALIASES,
      prettyErrors: false,
    });
  } catch (e) {
    if (e instanceof YAMLParseError) {
      const offset = e.pos[0];
      const before = text.slice(0, offset);
      const line = before.split('\n').length;
      const col = offset - before.lastIndexOf('\n');
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `${where} is not valid YAML at line ${line}, column ${col} (${e.code})`,
        { cause: e },
      );
    }
    if (e instanceof Error && /alias/i.test(e.message)) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `${where} expands YAML aliases too often (at most ${MAX_YAML_ALIASES})`,
        { cause: e },
      );
    }
    throw new ImppError('ERR_CONFIG_INVALID', `${where} is not valid YAML`, { cause: e });
  }
}
