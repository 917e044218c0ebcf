/**
 * `impp demo`: a real server and real clients in one process, over TLS on 127.0.0.1. Prints,
 * step by step and side by side, what Alice and Bob saw, then what the server stored (read back
 * from its SQLite store), the safety numbers and the checks.
 *
 * It exits 1 when any claim fails, above all when a plaintext is found in the stored objects or
 * in the database files.
 */
import type { Command } from 'commander';
import type { FederatedDemoResult } from './demo-federated.js';
import type { DemoResult, DemoStep, StoredObject, StoreSnapshot } from './demo-scenario.js';
import { CliExit, colorEnabled, makeStyle, type CliIo, type Style } from './io.js';

/** Bytes of each stored object shown in hex. */
const HEX_PREVIEW_BYTES = 16;
/** Width of Alice's column in the side-by-side view. */
const COLUMN_WIDTH = 48;
const MODE = 'one process: a server on 127.0.0.1 and two clients over TLS';
const FEDERATED_MODE =
  'one process: two domains, each with its own server on 127.0.0.1, linked server to server';

/** Version of the `--json` summary, bumped on any incompatible change. */
export const DEMO_JSON_VERSION = 2;

/**
 * Registers `impp demo` on `program`. `scenario` is replaceable so that a test can check that
 * a failed claim makes the command exit 1.
 *
 * @example
 * ```ts
 * registerDemo(program, io);
 * ```
 */
export function registerDemo(
  program: Command,
  io: CliIo,
  scenario: () => Promise<DemoResult> = runScenario,
  federated: () => Promise<FederatedDemoResult> = runFederated,
): void {
  program
    .command('demo')
    .summary('a server and two users in one process: sealed messages and presence over TLS')
    .description(
      'Start a throwaway impp server on 127.0.0.1 and let Alice and Bob use it over TLS: they ' +
        'register devices, watch each other’s presence and exchange messages. Shows what each ' +
        'saw and what the server stored.',
    )
    .option('--json', 'print a machine-readable summary (stored bytes in base64)')
    .option(
      '--federated',
      'two domains (a.example, b.example) with a server each: presence and messages across',
    )
    .addHelpText(
      'after',
      [
        '',
        'What it does, with the real server, client, sealing and trust code:',
        '  a temporary folder gets a throwaway CA and server certificate and a SQLite store;',
        '  local accounts alice, bob and carol@example.test are created; each client connects',
        '  (TLS 1.3, SCRAM-SHA-256-PLUS), registers its device and keys; Alice and Bob subscribe',
        '  to each other and approve; Alice messages Bob while he is offline (the server stores',
        '  it sealed), Bob comes back, reads it and replies; Alice revokes Carol, who then gets',
        '  nothing. Then it reads the store back and searches the stored objects and database',
        '  files (with the write-ahead log) for every text: it exits 1 if any is found.',
        '  The temporary folder is removed at the end.',
        '',
        'With --federated: two domains in one process, a.example and b.example, each with its',
        '  own local CA, domain key, store and server-to-server listener on 127.0.0.1; a.example',
        '  accepts b.example by its pinned domain key, b.example accepts a.example by a',
        '  certificate from its CA. alice@a.example and bob@b.example approve each other’s',
        '  presence across the domains, publish, and write to each other both ways.',
        '',
        'Examples:',
        '  $ impp demo',
        '  $ impp demo --json | jq .checks',
        '  $ impp demo --federated',
        '  $ NO_COLOR=1 impp demo',
      ].join('\n'),
    )
    .action(async (options: { json?: boolean; federated?: boolean }) => {
      if (options.federated === true) {
        const fed = await federated();
        if (options.json === true) {
          io.stdout.write(`${JSON.stringify(federatedDemoJson(fed), null, 2)}\n`);
        } else {
          io.stdout.write(renderFederatedDemo(fed, makeStyle(colorEnabled(io.stdout, io.env))));
        }
        if (!fed.checks.every((c) => c.passed) || fed.leaks.length > 0) throw new CliExit(1);
        return;
      }
      const result = await scenario();
      if (options.json === true) io.stdout.write(`${JSON.stringify(demoJson(result), null, 2)}\n`);
      else io.stdout.write(renderDemo(result, makeStyle(colorEnabled(io.stdout, io.env))));
      if (!result.checks.every((c) => c.passed) || result.leaks.length > 0) throw new CliExit(1);
    });
}

/** Loaded on use, so that `impp --help` does not load the server. */
async function runScenario(): Promise<DemoResult> {
  const { runDemoScenario } = await import('./demo-scenario.js');
  return runDemoScenario();
}

async function runFederated(): Promise<FederatedDemoResult> {
  const { runFederatedDemo } = await import('./demo-federated.js');
  return runFederatedDemo();
}

function hex(bytes: Uint8Array, count: number): string {
  const shown = Buffer.from(bytes.subarray(0, count)).toString('hex');
  return (shown.match(/../g) ?? []).join(' ');
}

/** Wraps `text` at spaces into lines of at most `width` characters (longer words are cut). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(' ')) {
    const candidate = current === '' ? word : `${current} ${word}`;
    if (candidate.length <= width) current = candidate;
    else {
      if (current !== '') lines.push(current);
      current = word;
      while (current.length > width) {
        lines.push(current.slice(0, width));
        current = current.slice(width);
      }
    }
  }
  if (current !== '' || lines.length === 0) lines.push(current);
  return lines;
}

function renderStep(step: DemoStep, n: number, style: Style): string {
  let out = `\n${style.bold(`${n}. ${step.title}`)}\n`;
  const left = step.alice.flatMap((l) => wrap(l, COLUMN_WIDTH));
  const right = step.bob.flatMap((l) => wrap(l, COLUMN_WIDTH));
  const rows = Math.max(left.length, right.length);
  if (rows > 0) {
    out += `  ${style.accent('Alice saw'.padEnd(COLUMN_WIDTH))}   ${style.accent('Bob saw')}\n`;
    for (let i = 0; i < rows; i++) {
      out +=
        `  ${(left[i] ?? '').padEnd(COLUMN_WIDTH)} ${style.dim('|')} ${right[i] ?? ''}`.trimEnd();
      out += '\n';
    }
  }
  for (const o of step.others) out += `  ${style.dim('·')} ${o}\n`;
  return out;
}

function renderObject(o: StoredObject, i: number, style: Style): string {
  const where = o.table === 'queue' ? `queued for ${o.routing}` : `latest presence of ${o.routing}`;
  let out = `  ${String(i + 1).padStart(2)}. ${o.kind.padEnd(15)} ${where}\n`;
  out +=
    `      ${o.size} bytes, ciphertext ${o.ciphertextSize} bytes: ` +
    `${style.dim(`${hex(o.bytes, HEX_PREVIEW_BYTES)} …`)}\n`;
  return out;
}

function renderSnapshot(s: StoreSnapshot, style: Style, start: number): string {
  let out = `\n${style.accent(`What the server stored, ${s.moment}`)}\n`;
  out += `  devices ${s.devices}, key log entries ${s.keyLogSize}\n`;
  for (const sub of s.subscriptions) out += `  subscription ${sub}\n`;
  if (s.objects.length === 0) out += '  no sealed objects\n';
  s.objects.forEach((o, i) => {
    out += renderObject(o, start + i, style);
  });
  return out;
}

/**
 * The human-readable report of a demo run.
 *
 * @example
 * ```ts
 * io.stdout.write(renderDemo(await runDemoScenario(), makeStyle(false)));
 * ```
 */
export function renderDemo(result: DemoResult, style: Style): string {
  const yes = (ok: boolean): string => (ok ? style.good('yes') : style.bad('NO'));
  let out = `${style.bold('impp demo')}: ${MODE}\n`;
  out += `server ${result.server.domain} on ${result.server.listen} (${result.server.ca})\n`;
  result.steps.forEach((step, i) => {
    out += renderStep(step, i + 1, style);
  });
  let start = 0;
  for (const s of result.stored) {
    out += renderSnapshot(s, style, start);
    start += s.objects.length;
  }
  out += '  The server routes by recipient device and presentity; it never sees a sender.\n';
  out += `\n${style.bold('Safety number (compare out of band)')}\n`;
  out += `  Alice sees   ${result.safetyNumber.alice}\n`;
  out += `  Bob sees     ${result.safetyNumber.bob}\n`;
  out += `  match        ${yes(result.safetyNumber.match)}\n`;
  out += `\n${style.bold('Checks')}\n`;
  for (const c of result.checks) out += `  ${yes(c.passed).padEnd(3)}  ${c.claim}\n`;
  const files = result.files.map((f) => `${f.name} (${f.size} bytes)`).join(', ');
  out += `  searched the stored objects and the database files: ${files}\n`;
  for (const leak of result.leaks) out += `  ${style.bad('leak')}  ${leak.what} in ${leak.where}\n`;
  out += `\nserver store contains no plaintext: ${yes(result.leaks.length === 0)}\n`;
  return out;
}

function objectJson(o: StoredObject): Record<string, unknown> {
  return {
    table: o.table,
    kind: o.kind,
    routing: o.routing,
    size: o.size,
    ciphertextSize: o.ciphertextSize,
    ...(o.sealedSender !== undefined ? { sealedSender: o.sealedSender } : {}),
    bytesBase64: Buffer.from(o.bytes).toString('base64'),
  };
}

/**
 * The `--json` summary: the steps, every stored object's bytes in base64 (so a test can search
 * them independently), the safety numbers and the checks.
 *
 * @example
 * ```ts
 * const summary = demoJson(await runDemoScenario());
 * ```
 */
export function demoJson(result: DemoResult): Record<string, unknown> {
  return {
    version: DEMO_JSON_VERSION,
    mode: MODE,
    server: result.server,
    users: result.users,
    steps: result.steps,
    stored: result.stored.map((s) => ({
      moment: s.moment,
      devices: s.devices,
      keyLogSize: s.keyLogSize,
      subscriptions: s.subscriptions,
      objects: s.objects.map(objectJson),
    })),
    files: result.files,
    safetyNumber: result.safetyNumber,
    checks: result.checks,
    leaks: result.leaks,
    plaintext: result.plaintext,
    serverStoreContainsNoPlaintext: result.leaks.length === 0,
  };
}

/**
 * The human-readable report of `impp demo --federated`.
 *
 * @example
 * ```ts
 * io.stdout.write(renderFederatedDemo(await runFederatedDemo(), makeStyle(false)));
 * ```
 */
export function renderFederatedDemo(result: FederatedDemoResult, style: Style): string {
  const yes = (ok: boolean): string => (ok ? style.good('yes') : style.bad('NO'));
  let out = `${style.bold('impp demo --federated')}: ${FEDERATED_MODE}\n`;
  for (const d of result.domains) {
    out +=
      `domain ${d.domain}: clients on ${d.listen}, peers on ${d.federation}; ` +
      `accepts ${d.accepts}\n`;
  }
  result.steps.forEach((step, i) => {
    out += renderStep(step, i + 1, style);
  });
  out += `\n${style.bold('Checks')}\n`;
  for (const c of result.checks) out += `  ${yes(c.passed).padEnd(3)}  ${c.claim}\n`;
  const files = result.files.map((f) => `${f.name} (${f.size} bytes)`).join(', ');
  out += `  searched the database files of both domains: ${files}\n`;
  for (const leak of result.leaks) out += `  ${style.bad('leak')}  ${leak.what} in ${leak.where}\n`;
  out += `\nservers' stores contain no plaintext: ${yes(result.leaks.length === 0)}\n`;
  return out;
}

/**
 * The `--federated --json` summary.
 *
 * @example
 * ```ts
 * const summary = federatedDemoJson(await runFederatedDemo());
 * ```
 */
export function federatedDemoJson(result: FederatedDemoResult): Record<string, unknown> {
  return {
    version: DEMO_JSON_VERSION,
    mode: FEDERATED_MODE,
    domains: result.domains,
    steps: result.steps,
    links: result.links,
    plaintext: result.plaintext,
    files: result.files,
    checks: result.checks,
    leaks: result.leaks,
    serverStoresContainNoPlaintext: result.leaks.length === 0,
  };
}
