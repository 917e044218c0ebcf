/**
 * Reading a password for `impp user`: from standard input with `--password-stdin` (scripts,
 * secret managers), or from a prompt on a terminal with echo off. Never from the command line:
 * arguments are visible to every user of the machine (`ps`, /proc/<pid>/cmdline) and are kept
 * in shell history.
 *
 * JavaScript strings cannot be wiped; the password lives in memory until the garbage collector
 * reclaims it, and is turned into a SCRAM verifier at once by the caller.
 */
import { constantTimeEqual, utf8 } from '../crypto/index.js';
import { ImppError } from '../errors.js';
import { CliExit, type CliInput, type CliStream } from './io.js';

/** Longest password accepted, in bytes of UTF-8 (far above any passphrase; bounds memory). */
export const MAX_PASSWORD_BYTES = 1024;

/** Exit code after Ctrl-C at a prompt (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

/**
 * Reads the whole of `input` as the password: UTF-8, at most {@link MAX_PASSWORD_BYTES}, with
 * one trailing newline (`\n` or `\r\n`) removed so that `echo pw |` and files ending in a
 * newline work. Any other whitespace is part of the password.
 *
 * @throws ImppError `ERR_INVALID_ARGUMENT` when empty, too long or not UTF-8.
 * @example
 * ```ts
 * const password = await readPasswordFromStream(process.stdin);
 * ```
 */
export async function readPasswordFromStream(input: CliInput): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    size += bytes.length;
    // Two more bytes for a trailing CRLF.
    if (size > MAX_PASSWORD_BYTES + 2) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        `password on standard input is longer than ${MAX_PASSWORD_BYTES} bytes`,
      );
    }
    chunks.push(bytes);
  }
  const all = Buffer.concat(chunks);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(all);
  } catch (cause) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'password on standard input is not UTF-8', {
      cause,
    });
  } finally {
    all.fill(0);
    for (const c of chunks) c.fill(0);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'password on standard input is empty');
  }
  if (utf8(password).length > MAX_PASSWORD_BYTES) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      `password is longer than ${MAX_PASSWORD_BYTES} bytes`,
    );
  }
  return password;
}

/**
 * Prompts for a password on a terminal with echo off (raw mode), writing the prompt to `output`
 * (standard error, so standard output stays clean for scripts). Enter ends the input, Backspace
 * deletes, Ctrl-C aborts with exit code 130, Ctrl-D on an empty line aborts.
 *
 * @throws ImppError `ERR_INVALID_ARGUMENT` when `input` is not a terminal or the password is too
 *   long; CliExit(130) on Ctrl-C.
 * @example
 * ```ts
 * const password = await promptPassword(io.stdin, io.stderr, 'Password: ');
 * ```
 */
export function promptPassword(
  input: CliInput,
  output: CliStream,
  prompt: string,
): Promise<string> {
  if (input.isTTY !== true || input.setRawMode === undefined) {
    return Promise.reject(
      new ImppError(
        'ERR_INVALID_ARGUMENT',
        'standard input is not a terminal, so there is no prompt: pass the password with --password-stdin',
      ),
    );
  }
  const setRaw = input.setRawMode.bind(input);
  output.write(prompt);
  return new Promise<string>((resolve, reject) => {
    let chars: string[] = [];
    const finish = (error: unknown, value?: string): void => {
      input.off('data', onData);
      setRaw(false);
      input.pause();
      output.write('\n');
      chars = [];
      if (error === undefined && value !== undefined) resolve(value);
      else reject(error instanceof Error ? error : new Error(String(error)));
    };
    const onData = (chunk: string | Buffer): void => {
      const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      // Bounded by the chunk length.
      for (const ch of text) {
        if (ch === '\r' || ch === '\n') {
          finish(undefined, chars.join(''));
          return;
        }
        if (ch === '\u0003') {
          finish(new CliExit(EXIT_INTERRUPTED));
          return;
        }
        if (ch === '\u0004') {
          if (chars.length === 0) {
            finish(new ImppError('ERR_INVALID_ARGUMENT', 'no password entered'));
            return;
          }
          continue;
        }
        if (ch === '\u007f' || ch === '\b') {
          chars.pop();
          continue;
        }
        // Other control characters (arrow keys, escape sequences) are not part of a password.
        if (ch < ' ') continue;
        chars.push(ch);
        if (chars.length > MAX_PASSWORD_BYTES) {
          finish(
            new ImppError(
              'ERR_INVALID_ARGUMENT',
              `password is longer than ${MAX_PASSWORD_BYTES} characters`,
            ),
          );
          return;
        }
      }
    };
    setRaw(true);
    input.on('data', onData);
    input.resume();
  });
}

/**
 * Asks twice on a terminal and checks that both entries match (a typo in an unseen password
 * would lock the user out).
 *
 * @throws ImppError `ERR_INVALID_ARGUMENT` when they differ or are empty.
 * @example
 * ```ts
 * const password = await promptNewPassword(io.stdin, io.stderr, 'alice@example.com');
 * ```
 */
export async function promptNewPassword(
  input: CliInput,
  output: CliStream,
  who: string,
): Promise<string> {
  const first = await promptPassword(input, output, `New password for ${who}: `);
  if (first === '') throw new ImppError('ERR_INVALID_ARGUMENT', 'the password is empty');
  const second = await promptPassword(input, output, 'Repeat the password: ');
  if (!constantTimeEqual(utf8(first), utf8(second))) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'the two passwords differ; nothing was changed');
  }
  return first;
}
