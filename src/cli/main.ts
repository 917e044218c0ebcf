#!/usr/bin/env node
/**
 * Entry point of the `impp` command (package.json `bin`). All logic is in program.ts; this file
 * only binds it to the process and sets the exit code (without `process.exit`, so that output
 * written to a pipe is flushed first).
 */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
