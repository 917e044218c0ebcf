/**
 * The streams and environment a CLI command writes to, passed in rather than taken from
 * `process` so that tests can run commands in-process and capture what they print.
 */

/** A stream the CLI writes text to. `isTTY` decides whether colours may be used. */
export interface CliStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/**
 * A stream the CLI reads from (a password with `--password-stdin`, or a prompt on a terminal).
 * `setRawMode` exists on a terminal: it turns off echo for password prompts.
 */
export interface CliInput extends AsyncIterable<string | Buffer> {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: 'data', listener: (chunk: string | Buffer) => void): unknown;
  off(event: 'data', listener: (chunk: string | Buffer) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** What a command may touch of the outside world. */
export interface CliIo {
  readonly stdout: CliStream;
  readonly stderr: CliStream;
  /** Standard input; absent when a command must not read any (tests, embedding). */
  readonly stdin?: CliInput;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Text styles; identity functions when colour is off. */
export interface Style {
  readonly bold: (text: string) => string;
  readonly dim: (text: string) => string;
  readonly good: (text: string) => string;
  readonly bad: (text: string) => string;
  readonly accent: (text: string) => string;
}

/**
 * `true` when `stream` may get ANSI colours: it is a terminal and `NO_COLOR` is unset or empty
 * (https://no-color.org: "present and not an empty string" disables colour).
 *
 * @example
 * ```ts
 * const style = makeStyle(colorEnabled(io.stdout, io.env));
 * ```
 */
export function colorEnabled(stream: CliStream, env: CliIo['env']): boolean {
  const noColor = env.NO_COLOR;
  return stream.isTTY === true && (noColor === undefined || noColor === '');
}

function sgr(open: number, close: number): (text: string) => string {
  return (text) => `\u001b[${open}m${text}\u001b[${close}m`;
}

/**
 * ANSI styles when `enabled`, plain text otherwise.
 *
 * @example
 * ```ts
 * io.stdout.write(makeStyle(false).bold('plain') + '\n');
 * ```
 */
export function makeStyle(enabled: boolean): Style {
  if (!enabled) {
    const plain = (text: string): string => text;
    return { bold: plain, dim: plain, good: plain, bad: plain, accent: plain };
  }
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    good: sgr(32, 39),
    bad: sgr(31, 39),
    accent: sgr(36, 39),
  };
}

/**
 * Thrown by a command that has already printed why it failed and wants a given exit code.
 *
 * @example
 * ```ts
 * if (!checksPassed) throw new CliExit(1);
 * ```
 */
export class CliExit extends Error {
  readonly exitCode: number;

  constructor(exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = 'CliExit';
    this.exitCode = exitCode;
  }
}
