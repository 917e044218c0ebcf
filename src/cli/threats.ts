/**
 * `impp threats`: plays the adversary of docs/security-model.md against a deployment and reports
 * a verdict per threat (docs/threat-suite.md). `--spawn` starts a server of its own on the
 * embedded defaults in a fresh temporary folder, with fresh accounts, and removes it afterwards
 * (what CI runs); `--target HOST:PORT --accounts FILE` attacks a running deployment with test
 * accounts the operator provides.
 *
 * Progress goes to standard error (one line per threat as it completes), the table and the
 * per-class summary to standard output. Exit code 1 when any threat is VULNERABLE or ERROR.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { rootCertificates } from 'node:tls';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type {
  ClientPki,
  FederationAccess,
  StorageAccess,
  Target,
  TestAccount,
  Threat,
} from '../threats/types.js';
import { CliExit, type CliIo } from './io.js';

/** Options of `impp threats`, as commander parses them. */
export interface ThreatsCliOptions {
  readonly spawn?: boolean;
  readonly target?: string;
  readonly accounts?: string;
  readonly ca?: string;
  readonly servername?: string;
  readonly domainKey?: string;
  readonly dataDir?: string;
  readonly logFile?: readonly string[];
  readonly json?: string;
  readonly junit?: string;
  readonly accept?: string;
  readonly only?: readonly string[];
  readonly skip?: readonly string[];
  readonly deadline?: number;
  readonly dos?: boolean;
  readonly dosRate?: number;
  readonly verbose?: boolean;
  readonly stateDir?: string;
  readonly clientCaCert?: string;
  readonly clientCaKey?: string;
  readonly federation?: string;
  readonly peerDomain?: string;
  readonly peerCert?: string;
  readonly peerKey?: string;
  readonly keyPeerDomain?: string;
  readonly keyPeerSeed?: string;
}

/**
 * The domain of the `--spawn` server: a name under `.example` (RFC 2606), not `localhost`,
 * because a federating domain must be one a peer can name in a certificate.
 */
export const SPAWN_DOMAIN = 'target.threats.example';

/** How many accounts `--spawn` creates: enough for every threat (`accounts:4`). */
export const SPAWN_ACCOUNTS = ['alice', 'bob', 'carol', 'dave'] as const;

/**
 * The pre-authentication deadline of the `--spawn` server (ms): long enough for any login the
 * suite makes (SCRAM at the default iteration count takes well under a second), short enough
 * that T24 sees the slowloris sockets closed in seconds.
 */
export const SPAWN_PRE_AUTH_TIMEOUT_MS = 5_000;

/** A deployment the suite attacks, and how to let go of it. */
interface Deployment {
  readonly target: Target;
  readonly accounts: readonly TestAccount[];
  readonly storage: StorageAccess | undefined;
  readonly mode: 'spawn' | 'target';
  /** Where the accounts' stewards keep their seeds (src/threats/steward.ts). */
  readonly stateDir: string;
  /** Client certificates the deployment accepts for EXTERNAL (T52, T53), when the run has them. */
  readonly pki?: ClientPki;
  /** The federation endpoint and the suite's peer domains (T27, T28, T45–T47), when known. */
  readonly federation?: FederationAccess;
  close(): Promise<void>;
}

/** Loads the shipped catalogue (the default) or, in tests, a list of their own. */
export type CatalogueLoader = () => Promise<readonly Threat[]>;

const shippedCatalogue: CatalogueLoader = async () =>
  (await import('../threats/catalogue.js')).CATALOGUE;

function list(value: string, previous: readonly string[] | undefined): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return [...(previous ?? []), ...items];
}

function repeatable(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive whole number`);
    }
    return n;
  };
}

/** Starts a server on embedded defaults in a temporary folder, with fresh accounts. */
async function spawnDeployment(io: CliIo): Promise<Deployment> {
  const [{ startServer }, configModule, dataDirModule, local, store, crypto] = await Promise.all([
    import('./serve.js'),
    import('../service/config/server-config.js'),
    import('../service/config/data-dir.js'),
    import('../auth/providers/local.js'),
    import('../auth/providers/local-store.js'),
    import('../crypto/random.js'),
  ]);
  const { createSuiteClientPki } = await import('../threats/pki.js');
  const { prepareFederatedSpawn, auditFromLog } = await import('../threats/federated-spawn.js');
  const work = mkdtempSync(join(tmpdir(), 'impp-threats-'));
  let federated: Awaited<ReturnType<typeof prepareFederatedSpawn>> | undefined;
  let stopServer: (() => Promise<void>) | undefined;
  try {
    const dataDir = join(work, 'data');
    const logFile = join(work, 'server.log');
    const configPath = join(work, 'impp.yaml');
    // EXTERNAL next to SCRAM, for a CA of the suite's own (T52, T53): the local accounts keep
    // SCRAM, and a client certificate of that CA naming user@domain in an rfc822Name logs in.
    const pki = await createSuiteClientPki();
    const clientCaPath = join(work, 'client-ca.pem');
    writeFileSync(clientCaPath, pki.caPem);
    // Federation with peer domains whose credentials the suite holds (T27, T28, T45–T47).
    federated = await prepareFederatedSpawn(work, SPAWN_DOMAIN);
    // The embedded defaults, except free ports, this data folder, debug logs (more to grep) and
    // a short pre-authentication deadline: T24 waits for it to strike, and the shipped 30 s
    // would be most of the run. The server is the suite's own; --target is never changed.
    writeFileSync(
      configPath,
      [
        'version: 1',
        `domain: ${SPAWN_DOMAIN}`,
        `dataDir: ${JSON.stringify(dataDir)}`,
        'listen:',
        '  tls: { host: 127.0.0.1, port: 0 }',
        '  websocket: { host: 127.0.0.1, port: 0 }',
        'log: { level: debug }',
        `limits: { preAuthTimeoutMs: ${SPAWN_PRE_AUTH_TIMEOUT_MS} }`,
        ...federated.federationYaml,
        'trust:',
        '  authentication:',
        '    mechanisms: [SCRAM-SHA-256-PLUS, SCRAM-SHA-256, EXTERNAL]',
        '    providers:',
        '      - { type: local, id: local }',
        '      - type: pki',
        '        id: threat-suite-ca',
        `        trustAnchors: { path: ${JSON.stringify(clientCaPath)} }`,
        '        revocation: none',
        '        addressFrom: san-email',
        ...federated.trustYaml,
        '',
      ].join('\n'),
    );
    const config = configModule.loadServerConfig(configPath, {});
    // The accounts are made as `impp user add` makes them: SCRAM verifiers in accounts.db.
    dataDirModule.ensureDataDir(config.dataDir);
    const accountsPath = configModule.localAccountsPath(config);
    dataDirModule.createPrivateFile(accountsPath);
    const repository = new store.SqliteLocalAccountRepository(accountsPath);
    const accounts: TestAccount[] = [];
    try {
      const localAccounts = new local.LocalAccounts(
        repository,
        config.domain,
        config.trust.policy.scram.iterations,
      );
      for (const user of SPAWN_ACCOUNTS) {
        const password = Buffer.from(crypto.randomBytes(18)).toString('base64url');
        localAccounts.create(user, password);
        accounts.push({ address: `${user}@${config.domain}`, password });
      }
    } finally {
      repository.close();
    }
    const running = await startServer(
      { config: configPath },
      {
        stdout: { write: () => true },
        stderr: {
          write: (line: string) => {
            appendFileSync(logFile, line);
            return true;
          },
        },
        env: {},
      },
    );
    // From here on a failure must not leave the server running.
    stopServer = () => running.stop();
    const { ca, federation } = running;
    if (ca === undefined || federation === undefined) {
      throw new Error('the spawned server has no local CA or does not federate');
    }
    const fedListen = federation.listen;
    io.stderr.write(
      `spawned a server for ${running.domain} on ${running.tls.host}:${running.tls.port}, federation on ${fedListen.host}:${fedListen.port} (data in ${running.dataDir})\n`,
    );
    const fed = federated;
    return {
      mode: 'spawn',
      target: {
        host: running.tls.host,
        port: running.tls.port,
        ...(running.websocket === undefined ? {} : { websocketPort: running.websocket.port }),
        ca: readFileSync(ca.certPath, 'utf8'),
        servername: running.domain,
        domain: running.domain,
        domainKey: running.domainKey,
      },
      accounts,
      storage: { dataDir: running.dataDir, logFiles: [logFile] },
      // Fresh accounts each time: the stewards go with the server.
      stateDir: join(work, 'stewards'),
      pki,
      federation: fed.access(fedListen.host, fedListen.port, running.domain, () =>
        auditFromLog(logFile),
      ),
      async close() {
        try {
          await running.stop();
        } finally {
          await fed.close();
          rmSync(work, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    await stopServer?.().catch(() => undefined);
    await federated?.close();
    rmSync(work, { recursive: true, force: true });
    throw error;
  }
}

/** The operator's deployment from `--target` and the files they name. */
async function targetDeployment(options: ThreatsCliOptions, io: CliIo): Promise<Deployment> {
  const [{ ImppError }, files, steward] = await Promise.all([
    import('../errors.js'),
    import('../threats/files.js'),
    import('../threats/steward.js'),
  ]);
  const at = hostAndPort(options.target ?? '');
  if (at === undefined) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--target must be HOST:PORT, e.g. im.example.com:5330',
    );
  }
  if (options.accounts === undefined) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--target needs --accounts FILE (see impp threats --help)',
    );
  }
  const { domain, accounts } = files.readAccountsFile(options.accounts, (line) =>
    io.stderr.write(`${line}\n`),
  );
  let domainKey: Uint8Array | undefined;
  if (options.domainKey !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(options.domainKey)) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        '--domain-key must be 64 hex digits (an Ed25519 public key)',
      );
    }
    domainKey = Uint8Array.from(Buffer.from(options.domainKey, 'hex'));
  }
  // A test CA the deployment trusts for client certificates lets T52 and T53 run (EXTERNAL).
  if ((options.clientCaCert === undefined) !== (options.clientCaKey === undefined)) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--client-ca-cert and --client-ca-key go together (a test CA the deployment trusts for EXTERNAL)',
    );
  }
  const pki =
    options.clientCaCert === undefined || options.clientCaKey === undefined
      ? undefined
      : await (
          await import('../threats/pki.js')
        ).clientPkiFromPem(
          files.readText(options.clientCaCert, 'client CA certificate'),
          files.readText(options.clientCaKey, 'client CA key'),
        );
  const federation = await federationAccess(options, domain);
  const storage =
    options.dataDir === undefined
      ? undefined
      : {
          dataDir: resolve(options.dataDir),
          logFiles: (options.logFile ?? []).map((f) => resolve(f)),
        };
  const target: Target = {
    host: at.host,
    port: at.port,
    // Without --ca, Node's bundled root CAs apply, as for any TLS client.
    ca:
      options.ca === undefined
        ? rootCertificates.join('\n')
        : files.readText(options.ca, 'CA file'),
    servername: options.servername ?? domain,
    domain,
    ...(domainKey === undefined ? {} : { domainKey }),
  };
  return {
    mode: 'target',
    target,
    accounts,
    storage,
    stateDir: resolve(options.stateDir ?? steward.defaultStateDir(target)),
    ...(pki === undefined ? {} : { pki }),
    ...(federation === undefined ? {} : { federation }),
    close: () => Promise.resolve(),
  };
}

/** `HOST:PORT` (IPv6 in brackets), or undefined when it is not one. */
function hostAndPort(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  return host === undefined || !(port > 0 && port < 65536) ? undefined : { host, port };
}

/**
 * The target's federation endpoint and the peers the operator configured for the suite
 * (`--federation` with `--peer-domain`/`--peer-cert`/`--peer-key` and/or
 * `--key-peer-domain`/`--key-peer-seed`); undefined without `--federation`.
 */
async function federationAccess(
  options: ThreatsCliOptions,
  domain: string,
): Promise<FederationAccess | undefined> {
  const [{ ImppError }, files, cryptoModule, addressModule] = await Promise.all([
    import('../errors.js'),
    import('../threats/files.js'),
    import('../crypto/index.js'),
    import('../trust/address.js'),
  ]);
  const x509Flags = [options.peerDomain, options.peerCert, options.peerKey];
  const keyFlags = [options.keyPeerDomain, options.keyPeerSeed];
  const anyPeer = [...x509Flags, ...keyFlags].some((v) => v !== undefined);
  if (options.federation === undefined) {
    if (anyPeer) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        "the peer options need --federation HOST:PORT (the target's federation port)",
      );
    }
    return undefined;
  }
  const at = hostAndPort(options.federation);
  if (at === undefined) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--federation must be HOST:PORT, e.g. im.example.com:5332',
    );
  }
  const some = (list: readonly (string | undefined)[]): boolean =>
    list.some((v) => v !== undefined);
  const all = (list: readonly (string | undefined)[]): boolean =>
    list.every((v) => v !== undefined);
  if (some(x509Flags) && !all(x509Flags)) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--peer-domain, --peer-cert and --peer-key go together (a peer the target accepts by X.509)',
    );
  }
  if (some(keyFlags) && !all(keyFlags)) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--key-peer-domain and --key-peer-seed go together (a peer the target accepts by a pinned key)',
    );
  }
  if (!anyPeer) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      '--federation needs a peer the target federates with for the suite: --peer-domain with ' +
        '--peer-cert and --peer-key, and/or --key-peer-domain with --key-peer-seed',
    );
  }
  const name = (value: string, flag: string): string => {
    try {
      return addressModule.normalizeDomain(value);
    } catch (cause) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `${flag} must be a domain name`, { cause });
    }
  };
  let keyPeer: FederationAccess['keyPeer'];
  if (options.keyPeerDomain !== undefined && options.keyPeerSeed !== undefined) {
    // A file, not the value: a private key in argv is visible to every local user (ps). The
    // error does not repeat the argument, which may be a seed given in its place.
    let hex: string;
    try {
      hex = readFileSync(options.keyPeerSeed, 'utf8').trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new ImppError(
        'ERR_CONFIG_INVALID',
        `cannot read the key peer seed file that --key-peer-seed names (${code}); it takes a file holding the seed, not the seed`,
      );
    }
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        '--key-peer-seed must name a file holding 64 hex digits (the Ed25519 seed whose public key the target pins)',
      );
    }
    const seed = Uint8Array.from(Buffer.from(hex, 'hex'));
    keyPeer = {
      domain: name(options.keyPeerDomain, '--key-peer-domain'),
      key: cryptoModule.generateSigningKeyPair(seed),
    };
  }
  return {
    host: at.host,
    port: at.port,
    domain,
    ...(options.peerDomain === undefined ||
    options.peerCert === undefined ||
    options.peerKey === undefined
      ? {}
      : {
          x509Peer: {
            domain: name(options.peerDomain, '--peer-domain'),
            cert: {
              certPem: files.readText(options.peerCert, 'peer certificate'),
              keyPem: files.readText(options.peerKey, 'peer key'),
            },
          },
        }),
    ...(keyPeer === undefined ? {} : { keyPeer }),
  };
}

/**
 * Runs the suite as the options say and returns the exit code (0, or 1 when anything is
 * VULNERABLE or ERROR). `loadCatalogue` is for tests; the command uses the shipped one.
 *
 * @throws ImppError for bad options or files (before anything is attacked).
 * @example
 * ```ts
 * const code = await runThreatsCommand({ spawn: true, only: ['T50'] }, io);
 * ```
 */
export async function runThreatsCommand(
  options: ThreatsCliOptions,
  io: CliIo,
  loadCatalogue: CatalogueLoader = shippedCatalogue,
  version = 'unknown',
): Promise<number> {
  const [{ ImppError }, runner, { Stewards }, files, text, json, junit, ioModule] =
    await Promise.all([
      import('../errors.js'),
      import('../threats/runner.js'),
      import('../threats/steward.js'),
      import('../threats/files.js'),
      import('../threats/report/text.js'),
      import('../threats/report/json.js'),
      import('../threats/report/junit.js'),
      import('./io.js'),
    ]);
  if ((options.spawn === true) === (options.target !== undefined)) {
    throw new ImppError(
      'ERR_INVALID_ARGUMENT',
      'give exactly one of --spawn and --target HOST:PORT',
    );
  }
  if (options.spawn === true) {
    for (const [flag, value] of [
      ['--accounts', options.accounts],
      ['--data-dir', options.dataDir],
      ['--domain-key', options.domainKey],
      ['--ca', options.ca],
      ['--client-ca-cert', options.clientCaCert],
      ['--client-ca-key', options.clientCaKey],
      ['--federation', options.federation],
      ['--peer-domain', options.peerDomain],
      ['--peer-cert', options.peerCert],
      ['--peer-key', options.peerKey],
      ['--key-peer-domain', options.keyPeerDomain],
      ['--key-peer-seed', options.keyPeerSeed],
    ] as const) {
      if (value !== undefined) {
        throw new ImppError(
          'ERR_INVALID_ARGUMENT',
          `${flag} is for --target; --spawn makes its own`,
        );
      }
    }
  }
  if (options.logFile !== undefined && options.dataDir === undefined) {
    throw new ImppError('ERR_INVALID_ARGUMENT', '--log-file needs --data-dir');
  }
  const catalogue = await loadCatalogue();
  // Every file and selection is checked before a server is started or attacked.
  const threats = runner.select(catalogue, {
    ...(options.only === undefined ? {} : { only: options.only }),
    ...(options.skip === undefined ? {} : { skip: options.skip }),
  });
  const accepted =
    options.accept === undefined
      ? new Map<string, string>()
      : files.readAcceptedRisksFile(options.accept, new Set(catalogue.map((t) => t.id)));
  const deployment =
    options.spawn === true ? await spawnDeployment(io) : await targetDeployment(options, io);
  // Ctrl-C or SIGTERM during a --spawn run still stops the server and removes its folder.
  const onSignal = (signal: NodeJS.Signals): void => {
    io.stderr.write(`impp threats: ${signal}, stopping\n`);
    void deployment.close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const errStyle = ioModule.makeStyle(ioModule.colorEnabled(io.stderr, io.env));
  const outStyle = ioModule.makeStyle(ioModule.colorEnabled(io.stdout, io.env));
  let report: Awaited<ReturnType<typeof runner.runThreats>>;
  try {
    io.stderr.write(
      `impp threats: ${threats.length} threats against ${deployment.target.host}:${deployment.target.port}` +
        ` (${deployment.target.domain}), ${deployment.accounts.length} accounts, storage ${
          deployment.storage === undefined ? 'not reachable' : 'reachable'
        }, denial-of-service probes ${options.dos === true ? `on (≤ ${options.dosRate ?? 20}/s)` : 'off'}\n`,
    );
    const stewards = await Stewards.prepare(
      deployment.target,
      deployment.accounts,
      deployment.stateDir,
    );
    report = await runner.runThreats(
      threats,
      {
        target: deployment.target,
        listSigner: stewards.signer,
        ...(deployment.pki === undefined ? {} : { pki: deployment.pki }),
        ...(deployment.federation === undefined ? {} : { federation: deployment.federation }),
        accounts: deployment.accounts,
        storage: deployment.storage,
        dos: { enabled: options.dos === true, maxRate: options.dosRate ?? 20 },
        ...(options.deadline === undefined ? {} : { deadlineMs: options.deadline }),
        accepted,
        ...(options.verbose === true
          ? {
              onNote: (t: Threat, line: string) =>
                io.stderr.write(errStyle.dim(`    ${t.id} ${line}\n`)),
            }
          : {}),
      },
      (r) => io.stderr.write(`${text.progressLine(r, errStyle)}\n`),
    );
    for (const line of await stewards.sweep()) io.stderr.write(`clean-up: ${line}\n`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await deployment.close();
  }
  io.stdout.write(`\n${text.renderTable(report, outStyle).join('\n')}\n`);
  const write = (path: string, body: string, what: string): void => {
    try {
      writeFileSync(path, body);
    } catch (e) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        `cannot write the ${what} to ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'}); does ${dirname(resolve(path))} exist?`,
        { cause: e },
      );
    }
    io.stderr.write(`${what} written to ${path}\n`);
  };
  if (options.json !== undefined) {
    write(
      options.json,
      json.jsonReport(report, version, {
        mode: deployment.mode,
        storage: deployment.storage !== undefined,
        dos: options.dos === true,
        selection: { only: options.only ?? [], skip: options.skip ?? [] },
      }),
      'JSON report',
    );
  }
  if (options.junit !== undefined) write(options.junit, junit.junitReport(report), 'JUnit report');
  return report.exitCode;
}

/**
 * Registers `impp threats` on `program`.
 *
 * @example
 * ```ts
 * registerThreats(program, io);
 * ```
 */
export function registerThreats(
  program: Command,
  io: CliIo,
  loadCatalogue: CatalogueLoader = shippedCatalogue,
): void {
  program
    .command('threats')
    .summary('attack a deployment and report which threats are mitigated')
    .description(
      'Plays the adversary of docs/security-model.md against a deployment: for each threat a ' +
        'benign control step, then the attack, then a verdict: MITIGATED, VULNERABLE, NOT-TESTED ' +
        '(with the reason) or ACCEPTED-RISK. Exit code 1 when anything is VULNERABLE or ERROR. ' +
        'Operator guide: docs/threat-suite.md.',
    )
    .option(
      '--spawn',
      'start a throw-away server on embedded defaults and attack it (what CI runs)',
    )
    .option('--target <host:port>', "attack a running deployment's client port")
    .option('--accounts <file>', 'test accounts for --target (YAML or JSON, mode 0600; see below)')
    .option('--ca <file>', 'CA certificates (PEM) that verify the target (default: the system CAs)')
    .option(
      '--client-ca-cert <file>',
      'a test CA (PEM) the target trusts for client certificates: lets T52/T53 try EXTERNAL',
    )
    .option(
      '--client-ca-key <file>',
      "that CA's private key (unencrypted PKCS #8 PEM; ECDSA or RSA; keep it chmod 600)",
    )
    .option(
      '--federation <host:port>',
      "the target's federation port: lets T26, T27, T28, T29 (link half), T45 and T46 attack it",
    )
    .option('--peer-domain <domain>', 'a peer the target accepts by X.509, set up for the suite')
    .option('--peer-cert <file>', "that peer's link certificate (PEM; serverAuth and clientAuth)")
    .option('--peer-key <file>', "that certificate's private key (PEM; keep it chmod 600)")
    .option('--key-peer-domain <domain>', 'a peer the target accepts by a pinned Ed25519 key')
    .option(
      '--key-peer-seed <file>',
      "a file holding that peer's 32-byte Ed25519 seed as 64 hex digits (keep it chmod 600)",
    )
    .option('--servername <name>', 'TLS server name to ask for (default: the domain)')
    .option('--domain-key <hex>', "the domain's Ed25519 public key, when you pin it")
    .option('--data-dir <dir>', "the server's data folder, when the suite runs on the server host")
    .option(
      '--log-file <file>',
      "a file with the server's log (repeatable; with --data-dir)",
      repeatable,
    )
    .option('--json <file>', 'write the JSON report here')
    .option('--junit <file>', 'write a JUnit XML report here (for CI systems)')
    .option('--accept <file>', 'accepted risks: a YAML list of { id, reason }')
    .option('--only <ids>', 'run only these threats (ids or names, comma-separated)', list)
    .option('--skip <ids>', 'skip these threats (ids or names, comma-separated)', list)
    .addOption(
      new Option('--deadline <ms>', 'deadline of a threat that sets none of its own').argParser(
        positiveInt('--deadline'),
      ),
    )
    .option('--dos', 'also run denial-of-service probes (never against production)')
    .addOption(
      new Option('--dos-rate <n>', 'most connections or requests per second a probe may make')
        .default(20)
        .argParser(positiveInt('--dos-rate')),
    )
    .option('--verbose', "print each threat's progress notes")
    .option(
      '--state-dir <dir>',
      'where --target keeps the seeds of its steward devices, one per account (default: ~/.cache/impp-threats/HOST_PORT_DOMAIN)',
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  $ impp threats --spawn --json reports/threats.json --junit reports/threats.xml',
        '  $ impp threats --target im.example.com:5330 --accounts threat-accounts.yaml --ca ca.pem',
        '  $ impp threats --spawn --only T14,T15 --verbose',
        '',
        'Accounts file (--accounts; keep it chmod 600, it holds passwords):',
        '  domain: example.com            # optional: default the domain of the addresses',
        '  accounts:                      # at least 2; 4 let every threat run',
        '    - { address: threat-a@example.com, password: "…" }',
        '    - { address: threat-b@example.com, password: "…" }',
        'Use dedicated test accounts: the suite registers devices, sends messages, changes',
        'subscriptions and makes failed logins (which may lock or slow the accounts). After the',
        'run, a device of the suite on each account (its steward, kept in --state-dir) revokes the',
        'devices the run added; fresh accounts let it sign their device lists.',
        '',
        'Accepted risks (--accept): an accepted threat still runs; its line shows ACCEPTED-RISK',
        'with the observed verdict, and it does not fail the run.',
        '  - id: T57',
        '    reason: GS2-KRB5 stays enabled for legacy clients until 2027',
      ].join('\n'),
    )
    .action(async (options: ThreatsCliOptions) => {
      const code = await runThreatsCommand(options, io, loadCatalogue, program.version());
      if (code !== 0) throw new CliExit(code);
    });
}
