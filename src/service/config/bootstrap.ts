/**
 * Everything `impp serve` needs from disk before it listens, in one call: the data folder
 * (0700), the domain key, the TLS certificate and key (the local CA's, or the operator's files),
 * and the paths of the SQLite files, created private (0600) before SQLite opens them.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SigningKeyPair } from '../../crypto/index.js';
import { ImppError } from '../../errors.js';
import { assertPrivateFile, createPrivateFile, dataFile, ensureDataDir } from './data-dir.js';
import { loadOrCreateDomainKey } from './domain-key.js';
import { ensureLocalTls, type LocalTls } from './local-ca.js';
import { localAccountsPath, type ServerConfig } from './server-config.js';

/** The TLS material to give to `tls.createServer` (and the WebSocket listener). */
export interface ServerTlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  /** The local CA when it issued the certificate; `undefined` for the operator's own files. */
  readonly localCa: LocalTls | undefined;
}

/** What {@link prepareServerFiles} returns. */
export interface ServerFiles {
  /** Absolute path of the data folder. */
  readonly dataDir: string;
  /** The domain's Ed25519 signing key. */
  readonly domainKey: SigningKeyPair;
  readonly domainKeyCreated: boolean;
  readonly tls: ServerTlsMaterial;
  /** SQLite file of the service store (src/service/store). */
  readonly serviceDbPath: string;
  /** SQLite file of the local accounts (src/auth/providers/local-store.ts). */
  readonly accountsDbPath: string;
}

function readOperatorTls(certPath: string, keyPath: string): ServerTlsMaterial {
  let certPem: string;
  let keyPem: string;
  try {
    certPem = readFileSync(certPath, 'utf8');
    assertPrivateFile(keyPath);
    keyPem = readFileSync(keyPath, 'utf8');
  } catch (cause) {
    if (cause instanceof ImppError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ImppError('ERR_CONFIG_INVALID', `cannot read tls.cert or tls.key (${code})`, {
      cause,
    });
  }
  let matches: boolean;
  try {
    matches = new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch (cause) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      `tls.cert ${certPath} or tls.key ${keyPath} is not a PEM certificate or private key`,
      { cause },
    );
  }
  if (!matches) {
    throw new ImppError('ERR_CONFIG_INVALID', `tls.key ${keyPath} is not the key of ${certPath}`);
  }
  return { certPem, keyPem, localCa: undefined };
}

/**
 * Prepares the data folder for a server start (idempotent: a second call reuses everything).
 *
 * @throws ImppError `ERR_CONFIG_INVALID` (a damaged or too-open key file, a mismatched
 *   certificate), `ERR_STORAGE` (a file cannot be written).
 * @example
 * ```ts
 * const config = loadServerConfig(options.config, process.env);
 * const files = await prepareServerFiles(config);
 * const server = tls.createServer({ cert: files.tls.certPem, key: files.tls.keyPem });
 * if (files.tls.localCa) print(`CA sha256 fingerprint: ${files.tls.localCa.caFingerprint}`);
 * ```
 */
export async function prepareServerFiles(
  config: ServerConfig,
  options: { readonly now?: () => Date } = {},
): Promise<ServerFiles> {
  const dir = ensureDataDir(config.dataDir);
  const { keyPair, created } = loadOrCreateDomainKey(dataFile(dir, 'domainKey'));
  const tls =
    config.tls.source === 'files'
      ? readOperatorTls(config.tls.certPath, config.tls.keyPath)
      : await (async (): Promise<ServerTlsMaterial> => {
          const localCa = await ensureLocalTls({
            dataDir: dir,
            domain: config.domain,
            extraNames: config.tls.source === 'local-ca' ? config.tls.extraNames : [],
            ...(options.now === undefined ? {} : { now: options.now }),
          });
          return { certPem: localCa.certPem, keyPem: localCa.keyPem, localCa };
        })();
  const serviceDbPath = dataFile(dir, 'serviceDb');
  const accountsDbPath = localAccountsPath(config);
  createPrivateFile(serviceDbPath);
  createPrivateFile(accountsDbPath);
  return {
    dataDir: dir,
    domainKey: keyPair,
    domainKeyCreated: created,
    tls,
    serviceDbPath,
    accountsDbPath,
  };
}
