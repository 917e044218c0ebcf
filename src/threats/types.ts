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
 * - `accounts:3`, `accounts:4`: that many test accounts;
 * - `federation`: the target's federation endpoint and a peer domain it federates with whose
 *   credentials the suite holds ({@link FederationAccess}).
 */
export type Capability =
  'storage' | 'dos' | 'local-server' | 'accounts:3' | 'accounts:4' | 'federation';

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

/** A certificate and its private key, as PEM (a link certificate of a peer domain). */
export interface PemCredentials {
  readonly certPem: string;
  readonly keyPem: string;
}

/** What to put in a link certificate the suite mints for its peer domain (T27). */
export interface LinkCertRequest {
  /** dNSName entries of the subjectAltName (none: the name only in the subject's CN). */
  readonly names: readonly string[];
  /** Default: the first name. */
  readonly commonName?: string;
  /** Default `both` (serverAuth and clientAuth, as a link certificate must have). */
  readonly usage?: 'server' | 'client' | 'both';
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/** An audit event of the target's federation (link or routing), as the suite sees it. */
export interface FederationAuditRecord {
  readonly type: string;
  readonly peer: string | null;
  readonly reason: string;
  readonly claimedOrigin?: string;
  readonly claimedDomain?: string;
}

/**
 * The target's federation endpoint and the peer domains the suite may play (T27, T28, T45–T47):
 * with `--spawn` all of it is the suite's own; with `--target`, `--federation HOST:PORT` and the
 * credentials of a peer the operator configured for the suite.
 */
export interface FederationAccess {
  /** Where the target's server-to-server port listens. */
  readonly host: string;
  readonly port: number;
  /** The target's domain (what a link to it asks for). */
  readonly domain: string;
  /** A peer domain the target accepts by X.509, and its credentials. */
  readonly x509Peer?: {
    readonly domain: string;
    /** The honest peer's link certificate (serverAuth and clientAuth, dNSName = domain). */
    readonly cert: PemCredentials;
    /** Mints certificates under the CA the target trusts for this peer, when the suite holds it. */
    readonly issue?: (request: LinkCertRequest) => Promise<PemCredentials>;
  };
  /** A peer domain the target accepts by a pinned Ed25519 key, and that key. */
  readonly keyPeer?: { readonly domain: string; readonly key: SigningKeyPair };
  /** The target's federation audit events so far, when the suite can see them (`--spawn`). */
  readonly audit?: () => readonly FederationAuditRecord[];
  /**
   * Resolution the suite controls (`--spawn` only, T47): `point(to)` makes the target resolve
   * `domain` to `to` from its next connection to that domain on.
   */
  readonly resolution?: {
    /** A peer domain the target accepts by X.509 under `issue`'s CA, kept for this threat. */
    readonly domain: string;
    readonly cert: PemCredentials;
    /** The CA certificate (PEM) that the target's own link certificate chains to. */
    readonly targetCa: string;
    /** Mints certificates under the CA the target trusts for `domain`, when the suite holds it. */
    readonly issue?: (request: LinkCertRequest) => Promise<PemCredentials>;
    point(to: { readonly host: string; readonly port: number }): void;
  };
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
  /** The target's federation endpoint and the suite's peer domains, when the run has them. */
  readonly federation?: FederationAccess;
}
