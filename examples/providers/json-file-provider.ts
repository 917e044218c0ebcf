/**
 * Example credential provider: accounts in a JSON file of SCRAM verifiers.
 *
 * A complete, small provider a company can copy and adapt (docs/auth-providers.md walks through
 * it). The file holds RFC 5803 `authPassword` verifiers, never passwords, so it offers:
 * - `scram-sha-256`: the verifier as stored (SCRAM-SHA-256 and -PLUS, the preferred mechanisms);
 * - `verify-password`: a cleartext password (PLAIN, inside TLS) checked against the same verifier:
 *   StoredKey = SHA-256(HMAC(PBKDF2(SASLprep(password), salt, i), "Client Key")), RFC 5802 §3.
 *
 * File format (versioned; an unknown version is refused):
 *
 * ```json
 * { "version": 1,
 *   "users": {
 *     "alice": { "authPassword": "SCRAM-SHA-256$4096:…$…:…", "groups": ["staff"] },
 *     "dave":  { "authPassword": "SCRAM-SHA-256$4096:…$…:…", "disabled": true } } }
 * ```
 *
 * In your own project import from the package entry points (`impp/auth`, `impp/crypto`,
 * `impp/trust`) instead of the relative paths used here inside the impp repository.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { constantTimeEqual, sha256, wipe } from '../../src/crypto/index.js';
import { ImppError } from '../../src/errors.js';
import { parseAddress } from '../../src/trust/address.js';
import {
  formatScramAuthPassword,
  parseScramAuthPassword,
} from '../../src/auth/ldap/authpassword.js';
import { deriveScramKeys, makeScramCredential } from '../../src/auth/scram/keys.js';
import type {
  CredentialProvider,
  PasswordVerdict,
  ProviderIdentity,
  ProviderPlugin,
  ScramCredential,
  ScramCredentialLookup,
} from '../../src/auth/types.js';

const fileSchema = z.object({
  version: z.literal(1),
  users: z.record(
    z.string().regex(/^[a-z0-9._-]{1,64}$/, 'user names are lower-case letters, digits, . _ -'),
    z.object({
      authPassword: z.string(),
      disabled: z.boolean().default(false),
      groups: z.array(z.string()).default([]),
      displayName: z.string().optional(),
    }),
  ),
});

interface Account {
  readonly credential: ScramCredential;
  readonly disabled: boolean;
  readonly identity: ProviderIdentity;
}

/** Options of {@link jsonFileProvider}. */
export interface JsonFileProviderOptions {
  /** Path of the JSON file (read once at registration). */
  readonly path: string;
  /** Provider name used in policy; default `'json-file'`. */
  readonly name?: string;
}

/**
 * The provider plug-in: `(deps) => provider`, registered with `registry.registerProvider`.
 *
 * @example
 * ```ts
 * await registry.registerProvider(jsonFileProvider({ path: '/etc/impp/users.json' }));
 * ```
 */
export function jsonFileProvider(options: JsonFileProviderOptions): ProviderPlugin {
  return async (deps) => {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(options.path, 'utf8'));
    } catch (e) {
      // The message names the file, not its content: it holds verifiers.
      throw new ImppError('ERR_CONFIG_INVALID', `json-file provider: cannot read ${options.path}`, {
        cause: e,
      });
    }
    const parsed = fileSchema.safeParse(raw);
    if (!parsed.success) {
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `json-file provider: ${parsed.error.issues[0]?.message ?? 'bad file'}`,
      );
    }
    const accounts = new Map<string, Account>();
    for (const [user, entry] of Object.entries(parsed.data.users)) {
      const credential = parseScramAuthPassword(entry.authPassword);
      if (credential === null) {
        throw new ImppError(
          'ERR_CONFIG_INVALID',
          `json-file provider: bad authPassword for ${user}`,
        );
      }
      const attributes = {
        groups: entry.groups,
        ...(entry.displayName === undefined ? {} : { displayName: entry.displayName }),
      };
      accounts.set(user, {
        credential,
        disabled: entry.disabled,
        // Addresses are always in the provider's own domain (deps.domain).
        identity: { principal: parseAddress(`${user}@${deps.domain}`), kind: 'person', attributes },
      });
    }
    // Unknown users cost the same PBKDF2 work as known ones (no timing oracle for PLAIN).
    const decoy = makeScramCredential('decoy password, never matches', 4096);

    /** `alice` or `alice@<our domain>` → the account key; anything else → undefined. */
    const keyOf = (username: string): string | undefined => {
      const suffix = `@${deps.domain}`;
      const local = username.toLowerCase().endsWith(suffix)
        ? username.slice(0, -suffix.length)
        : username;
      return local.includes('@') ? undefined : local.toLowerCase();
    };

    const provider: CredentialProvider = {
      name: options.name ?? 'json-file',
      kind: 'json-file',
      capabilities: ['scram-sha-256', 'verify-password'],

      // NOT VERIFIED when called: `username` is the client's claim (after SASLprep).
      getScramCredential(username: string): Promise<ScramCredentialLookup> {
        const key = keyOf(username);
        const account = key === undefined ? undefined : accounts.get(key);
        if (account === undefined) return Promise.resolve({ status: 'unknown' });
        return Promise.resolve({
          status: account.disabled ? 'disabled' : 'ok',
          identity: account.identity,
          credential: account.credential,
        });
      },

      // NOT VERIFIED when called: both arguments are the client's claims; never log them.
      verifyPassword(username: string, password: string): Promise<PasswordVerdict> {
        const key = keyOf(username);
        const account = key === undefined ? undefined : accounts.get(key);
        const credential = account?.credential ?? decoy;
        let matches = false;
        try {
          const keys = deriveScramKeys(password, credential.salt, credential.iterations);
          const storedKey = sha256(keys.clientKey);
          matches = constantTimeEqual(storedKey, credential.storedKey);
          wipe(keys.clientKey);
          wipe(keys.serverKey);
        } catch {
          matches = false; // a password SASLprep refuses cannot match any verifier
        }
        if (account === undefined) return Promise.resolve({ status: 'unknown' });
        if (!matches) return Promise.resolve({ status: 'bad-password' });
        return Promise.resolve(
          account.disabled
            ? { status: 'disabled', identity: account.identity }
            : { status: 'ok', identity: account.identity },
        );
      },
    };
    return provider;
  };
}

/**
 * Makes a file entry for a new password (a provisioning helper: run it where the password is
 * typed, store only its output).
 *
 * @example
 * ```ts
 * users.alice = { authPassword: makeAuthPassword('correct horse battery staple') };
 * ```
 */
export function makeAuthPassword(password: string, iterations = 4096): string {
  return formatScramAuthPassword(makeScramCredential(password, iterations));
}
