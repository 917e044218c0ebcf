/**
 * Server configuration and the embedded defaults: the data folder, the domain key, the local CA
 * and server certificate, and the YAML configuration file. See docs/operations.md.
 */
export {
  DATA_DIR_MODE,
  DATA_FILES,
  DEFAULT_DATA_DIR,
  PUBLIC_FILE_MODE,
  SECRET_FILE_MODE,
  assertPrivateFile,
  createPrivateFile,
  dataFile,
  ensureDataDir,
  resolveDataDir,
  writeFileAtomic,
} from './data-dir.js';
export { loadOrCreateDomainKey, type DomainKey } from './domain-key.js';
export {
  CA_VALIDITY_DAYS,
  LOOPBACK_NAMES,
  SERVER_CERT_RENEW_BEFORE_DAYS,
  SERVER_CERT_VALIDITY_DAYS,
  ensureLocalTls,
  serverCertNames,
  type LocalTls,
  type LocalTlsOptions,
  type ServerIssueReason,
} from './local-ca.js';
export {
  DEFAULT_DOMAIN,
  DEFAULT_FEDERATION_EXPIRE_MS,
  DEFAULT_FEDERATION_LISTEN_PORT,
  DEFAULT_FEDERATION_RETRY,
  DEFAULT_LISTEN_HOST,
  DEFAULT_TRUST_SECTION,
  LOG_LEVELS,
  MAX_CONFIG_FILE_BYTES,
  loadServerConfig,
  localAccountsPath,
  parseServerConfig,
  parseServerConfigYaml,
  type FederationRoute,
  type FederationServeConfig,
  type ListenConfig,
  type LogLevel,
  type ParseServerConfigOptions,
  type ServerConfig,
  type TlsConfig,
} from './server-config.js';
export { prepareServerFiles, type ServerFiles, type ServerTlsMaterial } from './bootstrap.js';
