/**
 * The dependency rule of the architecture brief (§7), checked on every run:
 *   trust ← seal, trust ← auth; transport stands alone; service uses trust, auth, transport and
 *   only the header side of seal; nothing below the client imports the client.
 * "Servers cannot read content" is therefore visible in the imports: src/service (and later
 * src/federation) can never reach code that opens a sealed payload.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

/** Which top-level areas of src/ each area may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  'errors.ts': [],
  crypto: ['errors.ts'],
  trust: ['errors.ts', 'crypto'],
  seal: ['errors.ts', 'crypto', 'trust'],
  auth: ['errors.ts', 'crypto', 'trust'],
  transport: ['errors.ts'],
  // The delivery-notice codec (protocol/notice.ts) reads strict CBOR from transport.
  protocol: ['errors.ts', 'trust', 'transport'],
  service: ['errors.ts', 'crypto', 'trust', 'auth', 'transport', 'protocol', 'seal-header'],
  federation: ['errors.ts', 'crypto', 'trust', 'transport', 'protocol', 'service', 'seal-header'],
  client: ['errors.ts', 'crypto', 'trust', 'auth', 'transport', 'protocol', 'seal', 'seal-header'],
  threats: [
    'errors.ts',
    'crypto',
    'trust',
    'auth',
    'transport',
    'seal',
    'seal-header',
    'client',
    'protocol',
    'service',
    // The federation threats (T27, T28, T45–T47) run honest peer endpoints of their own.
    'federation',
  ],
  cli: [
    'errors.ts',
    'crypto',
    'trust',
    'auth',
    'transport',
    'seal',
    'seal-header',
    'client',
    'protocol',
    'service',
    'federation',
    'threats',
  ],
};

/** Files of src/seal that only read the server-visible header of a sealed object. */
const SEAL_HEADER_FILES = new Set(['seal/header.ts', 'seal/cbor.ts', 'seal/constants.ts']);

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return walk(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function areaOf(file: string): string {
  const rel = relative(src, file).split('\\').join('/');
  if (SEAL_HEADER_FILES.has(rel)) return 'seal-header';
  const first = rel.split('/')[0] ?? rel;
  return first;
}

function importsOf(file: string): string[] {
  // Comments may show imports in examples; only code counts.
  const text = readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  const specs = [
    ...text.matchAll(/(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g),
    ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g),
    ...text.matchAll(/^import\s+['"]([^'"]+)['"]/gm),
  ].map((m) => m[1] ?? '');
  return specs
    .filter((s) => s.startsWith('.'))
    .map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
}

const files = walk(src);

describe('architecture: dependency rule', () => {
  it('finds the source tree', () => {
    expect(files.length).toBeGreaterThan(5);
  });

  it('every import crosses only an allowed boundary', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = areaOf(file);
      const fromArea = from === 'seal-header' ? 'seal' : from;
      const allowed = ALLOWED[fromArea];
      if (allowed === undefined) {
        violations.push(`${relative(root, file)}: area "${fromArea}" has no rule in ALLOWED`);
        continue;
      }
      for (const target of importsOf(file)) {
        const to = areaOf(target);
        const sameArea = to === fromArea || (to === 'seal-header' && fromArea === 'seal');
        if (!sameArea && !allowed.includes(to)) {
          violations.push(
            `${relative(root, file)} imports ${relative(root, target)} (${from} → ${to})`,
          );
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('the header side of seal imports nothing that opens payloads', () => {
    for (const file of files.filter((f) => areaOf(f) === 'seal-header')) {
      for (const target of importsOf(file)) {
        expect(['errors.ts', 'seal-header', 'trust']).toContain(areaOf(target));
      }
    }
  });

  it('has no import cycles', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        cycles.push(
          [...path.slice(path.indexOf(file)), file].map((f) => relative(src, f)).join(' → '),
        );
        return;
      }
      state.set(file, 'visiting');
      for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('only src/crypto imports libsodium', () => {
    for (const file of files.filter((f) => areaOf(f) !== 'crypto')) {
      expect(readFileSync(file, 'utf8'), relative(root, file)).not.toMatch(
        /(?:from|import)\s*\(?\s*['"]libsodium/,
      );
    }
  });
});

describe('architecture: test-only defence switches stay test-only', () => {
  // Issue 6: the configurations with a defence switched off are "kept out of the shipped CLI:
  // only the tests can build it". The switches are symbol-keyed options whose modules no index
  // re-exports; here: no shipped entry point (the CLI, the threat suite, any index.ts) reaches them.
  const SWITCH_MODULES = [
    'service/defences.ts',
    'federation/defences.ts',
    'client/defences.ts',
    'seal/defences.ts',
    'auth/checks.ts',
  ];
  const rel = (f: string): string => relative(src, f).split('\\').join('/');

  it('no file of src/cli or src/threats, and no index.ts, imports a switch module', () => {
    const offenders = files
      .filter((f) => /^(cli|threats)\//.test(rel(f)) || rel(f).endsWith('/index.ts'))
      .flatMap((f) =>
        importsOf(f)
          .filter((t) => SWITCH_MODULES.includes(rel(t)))
          .map(() => rel(f)),
      );
    expect(offenders).toEqual([]);
  });

  it('the WEAKEN_ symbols appear only in the modules that define or honour them', () => {
    const honouring = new Set([
      ...SWITCH_MODULES,
      'auth/server.ts',
      'service/server.ts',
      'service/session.ts',
      'client/client.ts',
      'seal/presence.ts',
      'transport/server-core.ts',
      'transport/tls-server.ts',
      'transport/ws-server.ts',
      'federation/endpoint.ts',
      'federation/link.ts',
      'federation/node.ts',
    ]);
    const mentioning = files
      .filter((f) => /\bWEAKEN_[A-Z]+\b/.test(readFileSync(f, 'utf8')))
      .map(rel)
      .filter((f) => !honouring.has(f));
    expect(mentioning).toEqual([]);
  });
});
