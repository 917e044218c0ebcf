/**
 * `impp demo`: end-to-end sealing between two users in one process, printed in three views:
 * what the sender did, what the recipients saw, and what a server would store and route.
 *
 * There is no server and no network yet: the demo says so in its first line. It exits 1 when
 * any claim it prints fails, above all when the server view contains a plaintext.
 */
import type { Command } from 'commander';
import type { DemoResult, DemoStep, ServerObject } from './demo-scenario.js';
import { CliExit, colorEnabled, makeStyle, type CliIo, type Style } from './io.js';

/** Bytes of ciphertext shown in hex per server object. */
const HEX_PREVIEW_BYTES = 16;
const LABEL_WIDTH = 14;
const MODE = 'in-process, no network';

/** Version of the `--json` summary, bumped on any incompatible change. */
export const DEMO_JSON_VERSION = 1;

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
): void {
  program
    .command('demo')
    .summary('sealed messages and presence between two users, in-process (no network)')
    .description(
      'Show end-to-end sealing: Alice and Bob exchange a message and presence, and what a ' +
        'server would store and route of it. In-process, no network: the server comes later.',
    )
    .option('--json', 'print a machine-readable summary (server-visible bytes in base64)')
    .addHelpText(
      'after',
      [
        '',
        'What it does, with the real sealing and trust code:',
        '  alice@example.test and bob@example.test get device keys and signed device lists;',
        '  Bob publishes a prekey bundle; Alice opens a session (X3DH, Double Ratchet) and sends',
        '  a Message/CPIM text; Bob replies; Alice publishes PIDF presence sealed once for her',
        '  watchers, revokes a third watcher (Carol), who cannot open the next update; both',
        '  compare safety numbers. It exits 1 if the server view contains any plaintext.',
        '',
        'Examples:',
        '  $ impp demo',
        '  $ impp demo --json | jq .checks',
        '  $ NO_COLOR=1 impp demo',
      ].join('\n'),
    )
    .action(async (options: { json?: boolean }) => {
      const result = await scenario();
      if (options.json === true) io.stdout.write(`${JSON.stringify(demoJson(result), null, 2)}\n`);
      else io.stdout.write(renderDemo(result, makeStyle(colorEnabled(io.stdout, io.env))));
      if (!result.checks.every((c) => c.passed) || result.leaks.length > 0) throw new CliExit(1);
    });
}

/** Loaded on use, so that `impp --help` does not initialise libsodium. */
async function runScenario(): Promise<DemoResult> {
  const { runDemoScenario } = await import('./demo-scenario.js');
  return runDemoScenario();
}

function hex(bytes: Uint8Array, count: number): string {
  const shown = Buffer.from(bytes.subarray(0, count)).toString('hex');
  return (shown.match(/../g) ?? []).join(' ');
}

function headerLine(o: ServerObject): string {
  const h = o.header;
  if (h.kind === 'presence') {
    return (
      `of ${h.presentity} (device ${h.deviceId}), key epoch ${h.epoch}, ` +
      `version ${h.presenceVersion}, ${h.size} bytes`
    );
  }
  return `for ${h.recipientDevice}, id ${h.id.slice(0, 12)}…, ${h.size} bytes`;
}

const KIND_LABEL = { message: 'message', keyDistribution: 'presence key', presence: 'presence' };

function line(style: Style, label: string, value: string): string {
  return `  ${style.dim(label.padEnd(LABEL_WIDTH))} ${value}\n`;
}

function renderStep(step: DemoStep, n: number, style: Style): string {
  let out = `\n${style.bold(`${n}. ${step.title}`)}\n`;
  out += `${style.accent(`${step.actor} did`)}\n`;
  for (const l of step.did) out += line(style, l.label, l.value);
  for (const o of step.observers) {
    out += `${style.accent(`${o.who} saw`)}\n`;
    for (const l of o.saw) out += line(style, l.label, l.value);
  }
  out += `${style.accent('what a server would store and route')}\n`;
  for (const l of step.serverPublic) out += line(style, l.label, l.value);
  for (const o of step.server) {
    out += line(style, KIND_LABEL[o.header.kind], headerLine(o));
    out += line(style, '', `routed to ${o.routeTo.join(', ')}`);
    out += line(
      style,
      '',
      `ciphertext ${style.dim(`${hex(o.ciphertext, HEX_PREVIEW_BYTES)} …`)} (${o.ciphertext.length} bytes)`,
    );
  }
  if (step.server.length === 0 && step.serverPublic.length === 0) {
    out += line(style, '', 'nothing');
  }
  return out;
}

/**
 * The human-readable report of a demo run.
 *
 * @example
 * ```ts
 * io.stdout.write(renderDemo(runDemoScenario(), makeStyle(false)));
 * ```
 */
export function renderDemo(result: DemoResult, style: Style): string {
  const yes = (ok: boolean): string => (ok ? style.good('yes') : style.bad('NO'));
  let out = `${style.bold('impp demo')}: end-to-end sealing, ${MODE}\n`;
  out +=
    'There is no server yet: "what a server would store and route" is computed from the\n' +
    'very bytes a server would receive, through the header parser a server is allowed to use.\n';
  result.steps.forEach((step, i) => {
    out += renderStep(step, i + 1, style);
  });
  out += `\n${style.bold(`${result.steps.length + 1}. Safety number (compare out of band)`)}\n`;
  out += line(style, 'Alice sees', result.safetyNumber.alice);
  out += line(style, 'Bob sees', result.safetyNumber.bob);
  out += line(style, 'match', yes(result.safetyNumber.match));
  out += `\n${style.bold('Checks')}\n`;
  for (const c of result.checks) out += `  ${yes(c.passed).padEnd(3)}  ${c.claim}\n`;
  for (const leak of result.leaks) {
    out += `  ${style.bad('leak')}  ${leak.what} in server object ${leak.object + 1}\n`;
  }
  out += '\nPresence updates name their presentity in the clear: the server routes by it.\n';
  out += `\nserver view contains no plaintext: ${yes(result.leaks.length === 0)}\n`;
  return out;
}

function serverJson(o: ServerObject): Record<string, unknown> {
  return {
    header: o.header,
    routeTo: o.routeTo,
    ciphertextLength: o.ciphertext.length,
    ...(o.sealedSender !== undefined ? { sealedSender: o.sealedSender } : {}),
    bytesBase64: Buffer.from(o.bytes).toString('base64'),
  };
}

/**
 * The `--json` summary: every step, the server-visible bytes of every object in base64 (so a
 * test can search them independently), the safety numbers and the checks.
 *
 * @example
 * ```ts
 * const summary = demoJson(runDemoScenario());
 * ```
 */
export function demoJson(result: DemoResult): Record<string, unknown> {
  return {
    version: DEMO_JSON_VERSION,
    mode: MODE,
    users: result.users,
    steps: result.steps.map((s) => ({
      title: s.title,
      actor: s.actor,
      did: s.did,
      observers: s.observers,
      serverPublic: s.serverPublic,
      // The bytes of each object are in `serverView`, once.
      server: s.server.map((o) => ({ header: o.header, routeTo: o.routeTo })),
    })),
    serverView: result.serverView.map(serverJson),
    safetyNumber: result.safetyNumber,
    checks: result.checks,
    leaks: result.leaks,
    plaintext: result.plaintext,
    serverViewContainsNoPlaintext: result.leaks.length === 0,
  };
}
