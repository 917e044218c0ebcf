/**
 * T50 `dependency-rule`: reads the import graph of the build that is running (dist/ when
 * installed, src/ under tsx) and checks that the server cannot reach code that opens sealed
 * payloads, and that only src/crypto imports libsodium. test/architecture.test.ts checks the
 * sources on every test run; this checks what an operator actually installed.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Threat, ThreatOutcome } from './types.js';

/** Areas that run on the server and must never reach the opening side of seal. */
const SERVER_AREAS = ['service', 'federation'];

/** Files of seal that only read the server-visible header (same list as the architecture test). */
const SEAL_HEADER_FILES = new Set(['seal/header', 'seal/cbor', 'seal/constants']);

const IMPORT_PATTERNS = [
  /(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g,
  /import\(\s*['"]([^'"]+)['"]\s*\)/g,
  /^import\s+['"]([^'"]+)['"]/gm,
];

/** The import graph of one build tree: module (relative, no extension) → specifiers. */
export interface ImportGraph {
  readonly root: string;
  /** Module key (e.g. `service/server`) → the modules and packages it imports. */
  readonly edges: ReadonlyMap<string, { readonly local: string[]; readonly packages: string[] }>;
}

function walk(dir: string, ext: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return walk(path, ext);
    return path.endsWith(ext) && !path.endsWith('.d.ts') ? [path] : [];
  });
}

function keyOf(root: string, file: string): string {
  return relative(root, file)
    .split(sep)
    .join('/')
    .replace(/\.(?:ts|js)$/, '');
}

/**
 * Reads the import graph under `root` (a `src/` tree of .ts or a `dist/` tree of .js files).
 *
 * @example
 * ```ts
 * const graph = readImportGraph('/usr/lib/node_modules/impp/dist');
 * ```
 */
export function readImportGraph(root: string): ImportGraph {
  const ext = existsSync(join(root, 'errors.ts')) ? '.ts' : '.js';
  const edges = new Map<string, { local: string[]; packages: string[] }>();
  for (const file of walk(root, ext)) {
    // Comments may show imports in examples; only code counts.
    const text = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    const specs = IMPORT_PATTERNS.flatMap((p) => [...text.matchAll(p)].map((m) => m[1] ?? ''));
    edges.set(keyOf(root, file), {
      local: specs
        .filter((s) => s.startsWith('.'))
        .map((s) => keyOf(root, resolve(dirname(file), s))),
      packages: specs.filter((s) => s !== '' && !s.startsWith('.') && !s.startsWith('node:')),
    });
  }
  return { root, edges };
}

/** What {@link checkDependencyRule} found. */
export interface DependencyFindings {
  /** Server modules that can reach an opening seal module: `service/x → … → seal/message`. */
  readonly reachesSeal: string[];
  /** Modules outside crypto/ that import libsodium. */
  readonly sodiumOutsideCrypto: string[];
  /** Edges from a server module to the header side of seal (the control: the scan sees imports). */
  readonly headerEdges: number;
  readonly modules: number;
}

/**
 * Checks the rule over `graph`: every module reachable from a server module (transitively) is
 * outside seal or on its header side; only crypto/ imports libsodium.
 *
 * @example
 * ```ts
 * const { reachesSeal } = checkDependencyRule(readImportGraph(root));
 * ```
 */
export function checkDependencyRule(graph: ImportGraph): DependencyFindings {
  const area = (key: string): string => key.split('/')[0] ?? key;
  const opensSeal = (key: string): boolean => area(key) === 'seal' && !SEAL_HEADER_FILES.has(key);
  const reachesSeal: string[] = [];
  let headerEdges = 0;
  for (const start of [...graph.edges.keys()].filter((k) => SERVER_AREAS.includes(area(k)))) {
    headerEdges += (graph.edges.get(start)?.local ?? []).filter((k) =>
      SEAL_HEADER_FILES.has(k),
    ).length;
    // Breadth-first, remembering the path to report one route per start.
    const seen = new Map<string, string[]>([[start, [start]]]);
    const queue = [start];
    while (queue.length > 0) {
      const at = queue.shift() as string;
      const path = seen.get(at) ?? [at];
      if (opensSeal(at)) {
        reachesSeal.push(path.join(' → '));
        break;
      }
      for (const next of graph.edges.get(at)?.local ?? []) {
        if (!seen.has(next)) {
          seen.set(next, [...path, next]);
          queue.push(next);
        }
      }
    }
  }
  const sodiumOutsideCrypto = [...graph.edges]
    .filter(([k, e]) => area(k) !== 'crypto' && e.packages.some((p) => p.startsWith('libsodium')))
    .map(([k]) => k);
  return { reachesSeal, sodiumOutsideCrypto, headerEdges, modules: graph.edges.size };
}

/** The build this module belongs to: `dist/` or `src/`. */
export function installedBuildRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..');
}

/**
 * The T50 threat over the build under `root` (default: the running build).
 *
 * @example
 * ```ts
 * const threat = dependencyRuleThreatFor('/tmp/tampered-dist');
 * ```
 */
export function dependencyRuleThreatFor(root?: string): Threat {
  return {
    id: 'T50',
    name: 'dependency-rule',
    class: 'content',
    title: 'the server reaches code that opens sealed payloads, or libsodium outside src/crypto',
    async run(ctx): Promise<ThreatOutcome> {
      const buildRoot = root ?? installedBuildRoot();
      const graph = readImportGraph(buildRoot);
      const findings = await ctx.control('the import graph of the build is readable', () => {
        const f = checkDependencyRule(graph);
        // A scanner that sees no server module, or none of its header imports, proves nothing.
        if (f.headerEdges === 0) {
          return Promise.reject(
            new Error(`no server module imports the header side of seal under ${buildRoot}`),
          );
        }
        return Promise.resolve(f);
      });
      ctx.note(`${findings.modules} modules under ${buildRoot}`);
      const evidence = [
        ...findings.reachesSeal.map((p) => `server reaches seal: ${p}`),
        ...findings.sodiumOutsideCrypto.map((m) => `imports libsodium outside crypto: ${m}`),
      ];
      if (evidence.length > 0) {
        return {
          verdict: 'VULNERABLE',
          summary: `${evidence.length} violation(s) of the dependency rule in the build`,
          evidence,
        };
      }
      return {
        verdict: 'MITIGATED',
        summary: `${findings.modules} modules: no server module reaches the opening side of seal; libsodium only in crypto`,
        evidence: [`${findings.headerEdges} server imports of the seal header side seen`],
      };
    },
  };
}

/** T50 over the running build. */
export const dependencyRuleThreat: Threat = dependencyRuleThreatFor();
