/**
 * The domain's Ed25519 signing key (it signs enrolment statements and the domain key log), kept
 * in the data folder as a small versioned text file, mode 0600:
 *
 * ```text
 * impp-domain-key v1 ed25519
 * <the 32-byte seed, unpadded base64url>
 * ```
 *
 * Only the seed is stored; the key pair is derived from it on load (RFC 8032 §5.1.5). A file
 * with another version or algorithm is refused, never guessed at.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  ED25519_SEED_BYTES,
  fromBase64Url,
  generateSigningKeyPair,
  randomBytes,
  toBase64Url,
  wipe,
  type SigningKeyPair,
} from '../../crypto/index.js';
import { ImppError } from '../../errors.js';
import { SECRET_FILE_MODE, assertPrivateFile, writeFileAtomic } from './data-dir.js';

const HEADER = 'impp-domain-key v1 ed25519';

/** A loaded domain key and whether this call created it. */
export interface DomainKey {
  readonly keyPair: SigningKeyPair;
  readonly created: boolean;
}

function parseDomainKeyFile(text: string, path: string): Uint8Array {
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines[0] !== HEADER) {
    const first = lines[0] ?? '';
    const why = first.startsWith('impp-domain-key ')
      ? 'an unknown version or algorithm'
      : 'not an impp domain key file';
    throw new ImppError('ERR_CONFIG_INVALID', `${path} is ${why} (expected "${HEADER}")`);
  }
  let seed: Uint8Array | undefined;
  try {
    seed = lines.length === 2 ? fromBase64Url(lines[1] ?? '', 'seed') : undefined;
  } catch {
    seed = undefined;
  }
  if (seed?.length !== ED25519_SEED_BYTES) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `${path} is damaged: expected one line with a ${ED25519_SEED_BYTES}-byte seed in base64url`,
    );
  }
  return seed;
}

/**
 * Loads the domain key from `path`, or generates one and writes it atomically (0600) when the
 * file does not exist. A key file other users can read is refused.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` (damaged, unknown version, too open), `ERR_STORAGE`.
 * @example
 * ```ts
 * const { keyPair, created } = loadOrCreateDomainKey(dataFile(dir, 'domainKey'));
 * ```
 */
export function loadOrCreateDomainKey(path: string): DomainKey {
  if (existsSync(path)) {
    assertPrivateFile(path);
    const seed = parseDomainKeyFile(readFileSync(path, 'utf8'), path);
    const keyPair = generateSigningKeyPair(seed);
    wipe(seed);
    return { keyPair, created: false };
  }
  const seed = randomBytes(ED25519_SEED_BYTES);
  const keyPair = generateSigningKeyPair(seed);
  writeFileAtomic(path, `${HEADER}\n${toBase64Url(seed)}\n`, SECRET_FILE_MODE);
  wipe(seed);
  return { keyPair, created: true };
}
