/**
 * Structured logs of the service (pino, one JSON object per line).
 *
 * What is logged is decided here and in the server, never by whoever calls `log.info`: ids,
 * device addresses, transport kinds, remote IP addresses, error codes and sizes. Never message
 * or presence content, passwords, keys, nonces or tokens. The service never holds plaintext
 * content anyway (it routes sealed objects); the redaction list below is a second line of
 * defence against a field carrying a secret by mistake (e.g. an error's `cause`).
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config/server-config.js';

/**
 * The subset of a pino logger the service uses, so that the server can be given any
 * compatible logger (or {@link SILENT_LOG}).
 */
export interface ServiceLog {
  error(fields: Readonly<Record<string, unknown>>, message: string): void;
  warn(fields: Readonly<Record<string, unknown>>, message: string): void;
  info(fields: Readonly<Record<string, unknown>>, message: string): void;
  debug(fields: Readonly<Record<string, unknown>>, message: string): void;
}

/**
 * A logger that drops everything (the server's default when it is given none).
 *
 * @example
 * ```ts
 * const log: ServiceLog = options.log ?? SILENT_LOG;
 * ```
 */
export const SILENT_LOG: ServiceLog = Object.freeze({
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
});

/**
 * Field names whose values are replaced by `[redacted]` wherever they appear (top level or one
 * level down). They are never logged on purpose; this only catches accidents.
 *
 * @example
 * ```ts
 * REDACTED_FIELDS.includes('password'); // true
 * ```
 */
export const REDACTED_FIELDS: readonly string[] = Object.freeze([
  'password',
  'secret',
  'secretKey',
  'key',
  'token',
  'nonce',
  'object',
  'bytes',
  'text',
  'note',
  'body',
]);

/** Options of {@link createServiceLogger}. */
export interface ServiceLoggerOptions {
  readonly level: LogLevel;
  /**
   * Where lines go: a pino destination stream (tests), else standard error. Writes are
   * synchronous so that nothing is lost when the process exits right after a line.
   */
  readonly destination?: DestinationStream;
}

/**
 * The server's pino logger: JSON lines to standard error, the configured level, `name: impp`,
 * and {@link REDACTED_FIELDS} censored.
 *
 * @example
 * ```ts
 * const log = createServiceLogger({ level: config.log.level });
 * const server = new ImppServer({ ...options, log: log.child({ component: 'server' }) });
 * ```
 */
export function createServiceLogger(options: ServiceLoggerOptions): Logger {
  const paths = REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`]);
  return pino(
    {
      name: 'impp',
      level: options.level,
      redact: { paths, censor: '[redacted]' },
      base: { pid: process.pid },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 2, sync: true }),
  );
}
