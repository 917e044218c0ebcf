#!/usr/bin/env node
/**
 * Entry point of the `impp` command (package.json `bin`). All logic is in program.ts; this file
 * only binds it to the process and sets the exit code (without `process.exit`, so that output
 * written to a pipe is flushed first).
 */
import { runCli } from './program.js';

// A reader that goes away (`impp threats --spawn | head`) is not an error of ours: stop quietly,
// as other command-line tools do, instead of dying with an unhandled EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
