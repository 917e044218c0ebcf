/**
 * The {@link ThreatContext} a threat runs in: the target, the test accounts, what else the run
 * may touch, and the resources the threat opens, all closed after it (in reverse order).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImppClient, type ImppClientOptions } from '../client/client.js';
import { FileStateStore } from '../client/state.js';
import { randomBytes } from '../crypto/random.js';
import type {
  ClientPki,
  DosPolicy,
  FederationAccess,
  ListSigner,
  StorageAccess,
  Target,
  TestAccount,
  ThreatContext,
} from './types.js';

/** Thrown by {@link ThreatContext.control} when the benign step fails; the runner reports ERROR. */
export class ControlFailure extends Error {
  constructor(
    readonly what: string,
    cause: unknown,
  ) {
    super(`control failed: ${what}: ${describeError(cause)}`, { cause });
    this.name = 'ControlFailure';
  }
}

/**
 * One line for an error without its stack: `CODE: message` for errors that carry a code.
 * Messages of this project's errors never hold secrets (src/errors.ts).
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

/** What {@link createThreatContext} needs. */
export interface ThreatContextOptions {
  readonly target: Target;
  readonly accounts: readonly TestAccount[];
  readonly storage?: StorageAccess | undefined;
  /** Default: off, at most 20 per second. */
  readonly dos?: DosPolicy;
  /** Aborted at the threat's deadline. */
  readonly signal: AbortSignal;
  /** Merged into every {@link ThreatContext.client} (tests pass client defence switches here). */
  readonly clientDefaults?: Partial<ImppClientOptions>;
  /** Called with each note as it is made (`--verbose`). */
  readonly onNote?: (line: string) => void;
  /** The run's device-list signers (./steward.ts), when it has them. */
  readonly listSigner?: (address: string) => ListSigner | undefined;
  /** Client certificates for EXTERNAL (./pki.ts), when the run has them. */
  readonly pki?: ClientPki;
  /** The federation endpoint and peer domains (T27, T28, T45–T47), when the run has them. */
  readonly federation?: FederationAccess;
}

/** A context and what the runner needs from it afterwards. */
export interface ThreatContextHandle {
  readonly ctx: ThreatContext;
  /** Notes made so far, in order. */
  readonly notes: readonly string[];
  /** The control steps that succeeded, in order. */
  readonly controls: readonly string[];
  /**
   * Runs every deferred clean-up in reverse order (clients closed, temporary folders removed).
   * Returns the errors it met; never throws.
   */
  dispose(): Promise<string[]>;
}

/** The default cap of denial-of-service probes, per second. */
export const DEFAULT_DOS_RATE = 20;

const CANARY_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomToken(length: number): string {
  // Rejection-free: 36 does not divide 256, but a canary needs uniqueness, not uniformity.
  return Array.from(randomBytes(length), (b) => CANARY_ALPHABET[b % 36] ?? 'x').join('');
}

/**
 * Builds the context for one threat.
 *
 * @example
 * ```ts
 * const handle = createThreatContext({ target, accounts, signal: AbortSignal.timeout(10_000) });
 * try { outcome = await threat.run(handle.ctx); } finally { await handle.dispose(); }
 * ```
 */
export function createThreatContext(options: ThreatContextOptions): ThreatContextHandle {
  const notes: string[] = [];
  const controls: string[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  const defer = (cleanup: () => Promise<void> | void): void => {
    cleanups.push(cleanup);
  };
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'impp-threat-'));
    defer(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    return dir;
  };
  const note = (line: string): void => {
    notes.push(line);
    options.onNote?.(line);
  };
  let stateDir: string | undefined;
  const { target } = options;
  const ctx: ThreatContext = {
    target,
    accounts: options.accounts,
    storage: options.storage,
    dos: options.dos ?? { enabled: false, maxRate: DEFAULT_DOS_RATE },
    signal: options.signal,
    async control<T>(what: string, step: () => Promise<T>): Promise<T> {
      try {
        const value = await step();
        controls.push(what);
        note(`control ok: ${what}`);
        return value;
      } catch (error) {
        throw new ControlFailure(what, error);
      }
    },
    note,
    client(account: TestAccount, extra: Partial<ImppClientOptions> = {}): ImppClient {
      stateDir ??= tempDir();
      const deviceId = extra.deviceId ?? `threat-${randomToken(12)}`;
      const client = new ImppClient({
        host: target.host,
        port: target.port,
        ca: target.ca,
        servername: target.servername ?? target.domain,
        address: account.address,
        password: account.password,
        deviceId,
        state: new FileStateStore(join(stateDir, `${randomToken(8)}-${deviceId}.state`)),
        ...(target.domainKey === undefined ? {} : { domainKey: target.domainKey }),
        ...options.clientDefaults,
        ...extra,
      });
      defer(() => client.close());
      return client;
    },
    canary: () => `canary${randomToken(20)}`,
    tempDir,
    defer,
    listSigner: (address) => options.listSigner?.(address),
    ...(options.pki === undefined ? {} : { pki: options.pki }),
    ...(options.federation === undefined ? {} : { federation: options.federation }),
  };
  return {
    ctx,
    notes,
    controls,
    async dispose(): Promise<string[]> {
      const errors: string[] = [];
      for (const cleanup of cleanups.splice(0).reverse()) {
        try {
          await cleanup();
        } catch (error) {
          errors.push(`clean-up failed: ${describeError(error)}`);
        }
      }
      return errors;
    },
  };
}
