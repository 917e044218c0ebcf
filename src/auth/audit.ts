/**
 * Audit sinks for authentication events. Every exchange ends in exactly one event, success or
 * failure (see `server.ts`). Events carry no secrets by construction: {@link AuditEvent} has no
 * field that could hold a password, proof, nonce, ticket or key.
 */
import type { Logger } from 'pino';
import type { AuditEvent, AuditSink } from './types.js';

/**
 * Keeps events in memory. FOR TESTS AND DEVELOPMENT ONLY: it grows until `clear()` (bounded at
 * `limit` events, oldest dropped).
 *
 * @example
 * ```ts
 * const audit = new MemoryAuditSink();
 * // … run an exchange …
 * expect(audit.events.at(-1)?.type).toBe('auth.failure');
 * ```
 */
export class MemoryAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];

  constructor(private readonly limit = 10_000) {}

  record(event: AuditEvent): void {
    this.events.push(event);
    if (this.events.length > this.limit) this.events.shift();
  }

  clear(): void {
    this.events.length = 0;
  }
}

/**
 * Writes events through pino at `info` level (failures are expected events, not bugs, so never
 * `error`), under the message `auth.success` / `auth.failure`.
 *
 * @example
 * ```ts
 * const audit = new PinoAuditSink(pino({ name: 'impp-audit' }));
 * ```
 */
export class PinoAuditSink implements AuditSink {
  constructor(private readonly logger: Logger) {}

  record(event: AuditEvent): void {
    this.logger.info({ audit: event }, event.type);
  }
}

/** Sends each event to several sinks (e.g. pino and a database table). */
export class FanOutAuditSink implements AuditSink {
  constructor(private readonly sinks: readonly AuditSink[]) {}

  async record(event: AuditEvent): Promise<void> {
    for (const sink of this.sinks) await sink.record(event);
  }
}
