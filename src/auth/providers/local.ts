/**
 * The local credential provider: accounts in impp's own store, authenticated with SCRAM verifiers.
 *
 * It has exactly one capability, `scram-sha-256`: it never sees nor stores a password after
 * {@link LocalAccounts.create} / {@link LocalAccounts.changePassword} have derived the verifier,
 * and so it cannot answer PLAIN (the registry refuses that pairing).
 */
import { ImppError } from '../../errors.js';
import { normalizeLocalPart, parseAddress } from '../../trust/address.js';
import type { PrincipalKind } from '../../trust/principal.js';
import { SCRAM_MIN_ITERATIONS, makeScramCredential, prepareUsername } from '../scram/keys.js';
import {
  isAuthError,
  type AccountChange,
  type CredentialProvider,
  type ProviderDeps,
  type ProviderPlugin,
  type ScramCredential,
  type ScramCredentialLookup,
} from '../types.js';
import type { LocalAccountRepository, LocalAccountSummary } from './local-store.js';

/** Options of the local provider. */
export interface LocalProviderOptions {
  readonly repository: LocalAccountRepository;
  /** Provider name in policy; default `'local'`. */
  readonly name?: string;
  /** Iterations for new verifiers (≥ 4096). Default 4096. */
  readonly iterations?: number;
}

/**
 * Administration of local accounts (create, change password, disable/enable, list).
 * Passwords are turned into SCRAM verifiers with a fresh salt and dropped.
 *
 * @example
 * ```ts
 * const accounts = new LocalAccounts(repo, 'example.com', 4096);
 * accounts.create('alice', 'correct horse battery staple');
 * accounts.disable('alice');
 * ```
 */
export class LocalAccounts {
  constructor(
    private readonly repository: LocalAccountRepository,
    readonly domain: string,
    readonly iterations = SCRAM_MIN_ITERATIONS,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(iterations) || iterations < SCRAM_MIN_ITERATIONS) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `local provider iterations must be ≥ ${SCRAM_MIN_ITERATIONS}`,
      );
    }
  }

  /** Canonical username: SASLprep (RFC 4013) then the address local-part rules. */
  static canonicalUsername(username: string): string {
    return normalizeLocalPart(prepareUsername(username));
  }

  create(username: string, password: string, kind: PrincipalKind = 'person'): void {
    const name = LocalAccounts.canonicalUsername(username);
    const at = this.now();
    this.repository.insert({
      username: name,
      kind,
      disabled: false,
      credential: this.#verifier(password),
      createdAt: at,
      updatedAt: at,
    });
  }

  /** Replaces the verifier with one derived from `password` and a new salt. */
  changePassword(username: string, password: string): void {
    const name = LocalAccounts.canonicalUsername(username);
    if (!this.repository.updateCredential(name, this.#verifier(password), this.now())) {
      throw new ImppError('ERR_NOT_FOUND', 'no such local account');
    }
  }

  disable(username: string): void {
    this.#setDisabled(username, true);
  }

  enable(username: string): void {
    this.#setDisabled(username, false);
  }

  remove(username: string): void {
    if (!this.repository.delete(LocalAccounts.canonicalUsername(username))) {
      throw new ImppError('ERR_NOT_FOUND', 'no such local account');
    }
  }

  list(): LocalAccountSummary[] {
    return this.repository.list();
  }

  /** SCRAM verifier with a fresh salt; an unusable password is an argument error here, not an auth failure. */
  #verifier(password: string): ScramCredential {
    try {
      return makeScramCredential(password, this.iterations);
    } catch (cause) {
      if (isAuthError(cause)) {
        throw new ImppError(
          'ERR_INVALID_ARGUMENT',
          'password is empty or has characters SASLprep prohibits',
          { cause },
        );
      }
      throw cause;
    }
  }

  #setDisabled(username: string, disabled: boolean): void {
    if (
      !this.repository.setDisabled(LocalAccounts.canonicalUsername(username), disabled, this.now())
    ) {
      throw new ImppError('ERR_NOT_FOUND', 'no such local account');
    }
  }
}

/**
 * The local provider plug-in.
 *
 * @example
 * ```ts
 * await registry.registerProvider(localProvider({ repository: new SqliteLocalAccountRepository(path) }));
 * ```
 */
export function localProvider(options: LocalProviderOptions): ProviderPlugin {
  return (deps: ProviderDeps): CredentialProvider => {
    const iterations = options.iterations ?? SCRAM_MIN_ITERATIONS;
    const unknown: ScramCredentialLookup = { status: 'unknown', iterationsHint: iterations };
    return {
      name: options.name ?? 'local',
      kind: 'local',
      capabilities: ['scram-sha-256'],
      /**
       * NOT VERIFIED when called: `username` is the client's claim (SASLprep'd). Accepts `alice`
       * or `alice@<this domain>`; anything else is an unknown user.
       */
      getScramCredential(username: string): Promise<ScramCredentialLookup> {
        let local: string;
        try {
          if (username.includes('@')) {
            const address = parseAddress(username);
            if (address.domain !== deps.domain) return Promise.resolve(unknown);
            local = address.user;
          } else {
            local = normalizeLocalPart(username);
          }
        } catch {
          return Promise.resolve(unknown);
        }
        const record = options.repository.get(local);
        if (record === undefined) return Promise.resolve(unknown);
        return Promise.resolve({
          status: record.disabled ? 'disabled' : 'ok',
          identity: {
            principal: { user: record.username, domain: deps.domain },
            kind: record.kind,
          },
          credential: record.credential,
        });
      },
      changedAccounts(since: number): Promise<readonly AccountChange[]> {
        const changed = options.repository.changedSince?.(since) ?? [];
        return Promise.resolve(
          changed.map((c) => ({ address: `${c.username}@${deps.domain}`, changedAt: c.updatedAt })),
        );
      },
      close(): Promise<void> {
        options.repository.close();
        return Promise.resolve();
      },
    };
  };
}
