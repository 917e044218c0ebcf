/**
 * The server's data folder: where the SQLite files, the domain key and the local CA live.
 *
 * The folder is private to the user running the server (mode 0700), because it holds the domain
 * signing key and the TLS private keys. Files holding secrets are written atomically with mode
 * 0600 (temporary file in the same folder, fsync, rename, fsync of the folder), so a crash or a
 * full disk never leaves a half-written key that the next start would read as garbage.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes, toHex } from '../../crypto/index.js';
import { ImppError } from '../../errors.js';

/** The data folder when neither the configuration nor `IMPP_DATA_DIR` names one. */
export const DEFAULT_DATA_DIR = './.impp';

/** Mode of the data folder: owner only. */
export const DATA_DIR_MODE = 0o700;
/** Mode of files holding private keys. */
export const SECRET_FILE_MODE = 0o600;
/** Mode of public files (certificates). */
export const PUBLIC_FILE_MODE = 0o644;

/** File names inside the data folder, in one place so that docs/operations.md can list them. */
export const DATA_FILES = Object.freeze({
  /** The service store (messages, devices, presence): src/service/store. */
  serviceDb: 'store.db',
  /** Local accounts (SCRAM verifiers): src/auth/providers/local-store.ts. */
  accountsDb: 'accounts.db',
  /** The domain's Ed25519 signing key. */
  domainKey: 'domain.key',
  /** The local CA certificate (PEM): what clients pin. */
  caCert: 'ca.crt',
  /** The local CA private key (PKCS #8 PEM). */
  caKey: 'ca.key',
  /** The server certificate (PEM), issued by the local CA. */
  serverCert: 'server.crt',
  /** The server private key (PKCS #8 PEM). */
  serverKey: 'server.key',
});

/**
 * The data folder to use: `explicit` (a command-line option or the configuration), else
 * `IMPP_DATA_DIR`, else {@link DEFAULT_DATA_DIR}; resolved to an absolute path.
 *
 * @example
 * ```ts
 * resolveDataDir(undefined, process.env); // '/home/me/project/.impp'
 * ```
 */
export function resolveDataDir(
  explicit: string | undefined,
  env: Readonly<Record<string, string | undefined>> = {},
): string {
  const chosen = explicit ?? (env.IMPP_DATA_DIR === '' ? undefined : env.IMPP_DATA_DIR);
  return resolve(chosen ?? DEFAULT_DATA_DIR);
}

/**
 * Creates the data folder with mode 0700 if it is missing and checks that it is a folder that no
 * other user can read. An existing folder that is group- or world-accessible is refused rather
 * than silently re-moded: someone set it up that way, and the keys inside may already be exposed.
 *
 * @throws ImppError `ERR_CONFIG_INVALID` when the path is not a folder or is too open;
 *   `ERR_STORAGE` when it cannot be created.
 * @example
 * ```ts
 * const dir = ensureDataDir(resolveDataDir(undefined, process.env));
 * ```
 */
export function ensureDataDir(dir: string): string {
  const path = resolve(dir);
  try {
    mkdirSync(path, { recursive: true, mode: DATA_DIR_MODE });
  } catch (cause) {
    throw new ImppError('ERR_STORAGE', `cannot create the data folder ${path}`, { cause });
  }
  const st = statSync(path);
  if (!st.isDirectory()) {
    throw new ImppError('ERR_CONFIG_INVALID', `data folder ${path} exists and is not a folder`);
  }
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `data folder ${path} is accessible to other users (mode ${(st.mode & 0o777).toString(8)}); ` +
        'run "chmod 700" on it (and check who could have read the keys inside)',
    );
  }
  return path;
}

/** Path of a file of {@link DATA_FILES} inside `dir`. */
export function dataFile(dir: string, name: keyof typeof DATA_FILES): string {
  return join(dir, DATA_FILES[name]);
}

/**
 * Writes `data` to `path` atomically with `mode`: a new file next to it (created exclusively,
 * so never through a planted symlink), flushed, renamed over `path`, then the folder flushed so
 * the rename survives a crash.
 *
 * @throws ImppError `ERR_STORAGE`.
 * @example
 * ```ts
 * writeFileAtomic(join(dir, 'ca.key'), pem, SECRET_FILE_MODE);
 * ```
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  const tmp = `${path}.${toHex(randomBytes(8))}.tmp`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', mode);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let written = 0;
    // Bounded: every iteration writes at least one byte or throws.
    while (written < bytes.length) written += writeSync(fd, bytes, written);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
    syncDir(resolve(path, '..'));
  } catch (cause) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // Already renamed or never created.
    }
    throw new ImppError('ERR_STORAGE', `cannot write ${path}`, { cause });
  }
}

function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a folder; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Refuses a secret file that other users can read (a copy restored with the wrong umask, say).
 *
 * @throws ImppError `ERR_CONFIG_INVALID` naming the file and the fix.
 * @example
 * ```ts
 * assertPrivateFile(dataFile(dir, 'domainKey'));
 * ```
 */
export function assertPrivateFile(path: string): void {
  if (process.platform === 'win32') return;
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `${path} holds a private key and is accessible to other users (mode ${mode.toString(8)}); run "chmod 600" on it`,
    );
  }
}

/**
 * Creates `path` empty with mode 0600 if it does not exist, so that a database opened on it
 * afterwards (SQLite gives its -wal and -shm files the database's mode) is private from its
 * first byte, whatever the umask.
 *
 * @throws ImppError `ERR_STORAGE`.
 * @example
 * ```ts
 * createPrivateFile(dataFile(dir, 'accountsDb'));
 * const repo = new SqliteLocalAccountRepository(dataFile(dir, 'accountsDb'));
 * ```
 */
export function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', SECRET_FILE_MODE));
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw new ImppError('ERR_STORAGE', `cannot create ${path}`, { cause });
  }
}
