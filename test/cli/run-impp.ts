/**
 * The real `impp` entry point in a child process (tsx, as `npx tsx src/cli/main.ts` would run
 * it), for the end-to-end CLI tests.
 */
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const main = join(root, 'src/cli/main.ts');

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function impp(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done, fail) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', main, ...args],
      {
        cwd: root,
        timeout: 30_000,
        maxBuffer: 8 << 20,
        // A pipe, not a TTY: no colours whatever the caller's environment says.
        env: { PATH: process.env.PATH ?? '', ...env },
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          fail(new Error('impp could not be run', { cause: error }));
          return;
        }
        done({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}
