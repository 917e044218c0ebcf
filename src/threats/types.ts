/**
 * The threat suite's vocabulary: one {@link Threat} per row of docs/security-model.md §8, with the
 * same id and name, and the verdicts of §12. The runner (./runner.ts) gives each threat a
 * {@link ThreatContext} and a deadline; a threat runs its control step through
 * {@link ThreatContext.control}, then plays the attack, then returns a {@link ThreatOutcome}.
 */
import type { ImppClient, ImppClientOptions } from '../client/client.js';
import type { SigningKeyPair } from '../crypto/index.js';

/** A verdict as the report shows it (docs/security-model.md §12). */
export type Verdict = 'MITIGATED' | 'VULNERABLE' | 'NOT-TESTED' | 'ACCEPTED-RISK' | 'ERROR';

/** The classes of the summary table after docs/security-model.md §8. */
export type ThreatClass =
  | 'content'
  | 'keys-and-trust'
  | 'presence-and-access'
  | 'authentication'
  | 'transport-and-robustness'
  | 'parsing'
  | 'federation'
  | 'operations-and-storage'
  | 'crypto-primitives';

/**
 * What a threat needs beyond a target and two or more test accounts. When the run cannot offer
 * one, the runner records NOT-TESTED with the reason instead of calling the threat.
 * - `storage`: the server's data folder and log (with `--spawn` or `--data-dir`);
 * - `dos`: denial-of-service probes, opt-in (`--dos`), rate-capped by {@link DosPolicy};
 * - `local-server`: a server the suite controls (the malicious-server harness), which the suite
 *   always can start itself: such threats test the client SDK that ships with this build;
 * - `accounts:3`, `accounts:4`: that many test accounts.
 */
export type Capability = 'storage' | 'dos' | 'local-server' | 'accounts:3' | 'accounts:4';

/** What a threat returns; `ERROR` and `ACCEPTED-RISK` are the runner's to give. */
export interface ThreatOutcome {
  readonly verdict: 'MITIGATED' | 'VULNERABLE' | 'NOT-TESTED';
  /** One line for the table: what was tried and what happened. No secrets, no plaintext. */
  readonly summary: string;
  /** Further lines for the JSON/JUnit report (what each attack step saw). */
  readonly evidence?: readonly string[];
}

/** One threat of the catalogue. */
export interface Threat {
  /** `T01`…, as in docs/security-model.md §8; never reused or renumbered. */
  readonly id: string;
  /** The row's backquoted name, e.g. `server-reads-content`. */
  readonly name: string;
  readonly class: ThreatClass;
  /** One line: the attack, as an operator reads it. */
  readonly title: string;
  readonly needs?: readonly Capability[];
  /** Per-threat deadline in ms (default: the runner's). */
  readonly deadlineMs?: number;
  run(ctx: ThreatContext): Promise<ThreatOutcome>;
}

/** The deployment under attack. */
export interface Target {
  readonly host: string;
  /** The client port (TLS, ALPN impp/1). */
  readonly port: number;
  /** The WebSocket port, when the deployment has one. */
  readonly websocketPort?: number;
  /** The CA certificates (PEM) a client of this deployment trusts. */
  readonly ca: string;
  /** TLS server name to ask for; default the domain. */
  readonly servername?: string;
  /** The domain served (canonical form). */
  readonly domain: string;
  /** The domain's Ed25519 public key, when the operator pins it (enrolment, key log). */
  readonly domainKey?: Uint8Array;
}

/** A test account the operator provides (or `--spawn` creates). */
export interface TestAccount {
  /** `user@domain`. */
  readonly address: string;
  readonly password: string;
}

/** Where the operator lets the suite look (canary greps). */
export interface StorageAccess {
  /** The server's data folder (SQLite files, WAL, keys). */
  readonly dataDir: string;
  /** Files holding the server's log output, when known. */
  readonly logFiles: readonly string[];
}

/** Denial-of-service probes: off unless the operator opts in. */
export interface DosPolicy {
  readonly enabled: boolean;
  /** Upper bound on connections or requests per second any probe may make. */
  readonly maxRate: number;
}

/**
 * A device of the suite that signs a test account's device list (its steward, ./steward.ts):
 * a threat that must add and remove devices binds as it.
 */
export interface ListSigner {
  readonly deviceId: string;
  readonly identity: SigningKeyPair;
}

/** A client certificate a threat asks {@link ClientPki.issue} for (EXTERNAL: T52, T53). */
export interface ClientCertRequest {
  /**
   * Addresses for the subjectAltName; each goes in as an rfc822Name and as an `im:` URI
   * (IA5Strings: non-ASCII as its UTF-8 bytes).
   */
  readonly names: readonly string[];
  /** Extended key usage: `client` (default), `server` (serverAuth only) or `none` (no extension). */
  readonly usage?: 'client' | 'server' | 'none';
  /** Default: an hour ago. */
  readonly notBefore?: Date;
  /** Default: a day after `notBefore`. */
  readonly notAfter?: Date;
  /** Signed by a rogue CA with the trusted CA's name but another key. */
  readonly rogue?: boolean;
}

/** A certificate and its private key, as PEM. */
export interface IssuedClientCert {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Client certificates under a CA the deployment trusts for EXTERNAL (./pki.ts). */
export interface ClientPki {
  /** The CA certificate (PEM). */
  readonly caPem: string;
  issue(request: ClientCertRequest): Promise<IssuedClientCert>;
}

/** What a threat may use. Everything it opens through the context is closed after it. */
export interface ThreatContext {
  readonly target: Target;
  readonly accounts: readonly TestAccount[];
  readonly storage: StorageAccess | undefined;
  readonly dos: DosPolicy;
  /** Aborted at the threat's deadline. */
  readonly signal: AbortSignal;
  /**
   * Runs the benign operation that must work before the attack means anything. If it throws,
   * the threat ends with ERROR ("control failed: …"), never MITIGATED.
   */
  control<T>(what: string, step: () => Promise<T>): Promise<T>;
  /** A progress line (shown with `--verbose`, kept in the JSON report). */
  note(line: string): void;
  /**
   * A fresh SDK client for `account` on a new device id (unless given), its state in a temporary
   * folder, connected to the target; closed after the threat. Not yet connected.
   */
  client(account: TestAccount, options?: Partial<ImppClientOptions>): ImppClient;
  /** A fresh unique canary string (ASCII letters and digits) to send and then search for. */
  canary(): string;
  /** A temporary folder, removed after the threat. */
  tempDir(): string;
  /** Registers clean-up that runs after the threat, in reverse order. */
  defer(cleanup: () => Promise<void> | void): void;
  /** The suite's device that signs `address`'s device list, when the run has one. */
  listSigner(address: string): ListSigner | undefined;
  /**
   * Client certificates the deployment accepts for EXTERNAL: with `--spawn` (the suite's own
   * CA), or `--client-ca-cert`/`--client-ca-key` with `--target`; absent otherwise.
   */
  readonly pki?: ClientPki;
}
