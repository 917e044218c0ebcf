/**
 * The `impp` command line: the commander program, one module per command, and the one place
 * where errors become exit codes.
 *
 * Exit codes: 0 success; 1 an expected failure (an {@link ImppError}, or a command that reports
 * a failed check); 2 a usage error (unknown command or option, missing argument); 70 a bug
 * (EX_SOFTWARE of sysexits.h): anything that is not an ImppError.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isImppError } from '../errors.js';
import { registerChat } from './chat.js';
import { registerDemo } from './demo.js';
import { CliExit, type CliIo } from './io.js';
import { registerServe } from './serve.js';
import { registerThreats } from './threats.js';
import { registerUser } from './user.js';

/** Exit code of a usage error. */
export const EXIT_USAGE = 2;
/** Exit code of an internal error (a bug): EX_SOFTWARE. */
export const EXIT_SOFTWARE = 70;

/**
 * The package version, read at run time from the package.json two levels above this module:
 * the same path from src/cli/ (tsx) and from dist/cli/ (built).
 *
 * @example
 * ```ts
 * packageVersion(); // '0.1.0'
 * ```
 */
export function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== 'string') throw new TypeError('package.json has no version string');
  return version;
}

/**
 * Builds the `impp` program with its commands, writing to `io` and never exiting the process.
 *
 * @example
 * ```ts
 * await buildProgram(io).parseAsync(['demo', '--json'], { from: 'user' });
 * ```
 */
export function buildProgram(io: CliIo): Command {
  const program = new Command('impp');
  program
    .description(
      'impp: end-to-end sealed instant messaging and presence (IMPP, RFC 2778/2779). ' +
        'Servers authenticate, route and store; only the devices a message is for can read it.',
    )
    .version(packageVersion(), '-V, --version', 'print the impp version')
    .helpOption('-h, --help', 'show help for impp or a command')
    .helpCommand('help [command]', 'show help for a command')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Usage errors are printed by runCli, in one format, with the exit code.
      outputError: () => undefined,
    })
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  $ impp demo            sealed messages and presence between two users, in-process',
        '  $ impp demo --json     the same, as a machine-readable summary',
        '  $ impp help demo       what the demo shows',
        '  $ impp serve           run a server on embedded defaults (data in ./.impp)',
        '  $ impp user add alice@localhost   create a local account (prompts for the password)',
        '  $ impp threats --spawn  attack a throw-away server and report every threat',
        '',
        'Set IMPP_DEBUG=1 to print stack traces with errors.',
      ].join('\n'),
    );
  registerDemo(program, io);
  registerUser(program, io);
  registerServe(program, io);
  registerChat(program, io);
  registerThreats(program, io);
  return program;
}

function commandNames(program: Command): string[] {
  return [...program.commands.map((c) => c.name()), 'help'];
}

/**
 * Turns an error into its message on stderr and an exit code (see the module comment).
 * Expected failures print one line, `impp: <message> (<code>)`; the stack only with
 * `IMPP_DEBUG=1`. Anything else is a bug and is printed with its stack.
 *
 * @example
 * ```ts
 * process.exitCode = reportError(err, io);
 * ```
 */
export function reportError(err: unknown, io: CliIo, program?: Command): number {
  const debug = io.env.IMPP_DEBUG === '1';
  if (err instanceof CliExit) return err.exitCode;
  if (err instanceof CommanderError) {
    // Help and version end with code 0; `impp` without a command prints help to stderr.
    if (err.exitCode === 0) return 0;
    if (err.code === 'commander.help') return EXIT_USAGE;
    const message = err.message.replace(/^error: /, '');
    const lines = [`impp: ${message}`];
    if (err.code === 'commander.unknownCommand' && program !== undefined) {
      lines.push(`Commands: ${commandNames(program).join(', ')}`);
    }
    lines.push(`Run 'impp --help' for usage.`);
    io.stderr.write(`${lines.join('\n')}\n`);
    return EXIT_USAGE;
  }
  if (isImppError(err)) {
    io.stderr.write(`impp: ${err.message} (${err.code})\n`);
    if (debug && err.stack !== undefined) io.stderr.write(`${err.stack}\n`);
    return 1;
  }
  const detail = err instanceof Error ? (err.stack ?? String(err)) : String(err);
  io.stderr.write(
    `impp: internal error (a bug; please report it with the text below)\n${detail}\n`,
  );
  return EXIT_SOFTWARE;
}

/**
 * Runs `impp` with the user's arguments (without `node` and the script) and returns the exit
 * code; never calls `process.exit`.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(process.argv.slice(2), { stdout, stderr, env: process.env });
 * ```
 */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  let program: Command | undefined;
  try {
    program = buildProgram(io);
    await program.parseAsync([...args], { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, io, program);
  }
}
