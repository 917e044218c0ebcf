/**
 * `impp serve`: runs the server for one domain on embedded defaults or a configuration file.
 *
 * On first start it creates the data folder with the domain key, a local CA and a server
 * certificate (later starts reuse them), opens the stores, listens for TLS and WebSocket
 * connections and prints where, with the CA a client must trust. Human-readable lines go to
 * standard output; structured logs (pino JSON lines) go to standard error, so that a service
 * manager (systemd, a container runtime) collects them and `2>file` keeps them apart.
 * SIGTERM or SIGINT stops it gracefully: no new connections, a CLOSE frame on each open one, the
 * store's pending writes committed, exit code 0.
 */
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { ServiceLog } from '../service/logging.js';
import type { CliIo } from './io.js';

/** Options of {@link startServer} (the command's options). */
export interface ServeOptions {
  /** Configuration file; default `$IMPP_CONFIG`, else the embedded defaults. */
  readonly config?: string;
  /** Data folder; overrides the configuration and `$IMPP_DATA_DIR`. */
  readonly dataDir?: string;
}

/** Where a listener listens. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** A started server, as {@link startServer} returns it. */
export interface RunningServer {
  readonly domain: string;
  readonly dataDir: string;
  readonly tls: Endpoint;
  /** The WebSocket listener (`wss://host:port/impp`), when enabled. */
  readonly websocket: Endpoint | undefined;
  /**
   * The server-to-server listener and the domain key's public half (base64url, what a peer
   * pins as `proof: { type: pinned-key }`), when federation is enabled.
   */
  readonly federation: { readonly listen: Endpoint; readonly domainKey: string } | undefined;
  /** The local CA a client must trust; `undefined` with the operator's own certificate. */
  readonly ca: { readonly certPath: string; readonly fingerprint: string } | undefined;
  /** `true` when this start created the CA (first start). */
  readonly caCreated: boolean;
  /** The domain's Ed25519 public key (pinned by clients for enrolment and the key log). */
  readonly domainKey: Uint8Array;
  /** The service log (pino). */
  readonly log: ServiceLog;
  /** Stops accepting, closes every connection with CLOSE, commits the store, closes files. */
  stop(): Promise<void>;
}

/**
 * How long a graceful stop may take before the process exits anyway (code 1).
 *
 * @example
 * ```ts
 * setTimeout(forceExit, SHUTDOWN_TIMEOUT_MS).unref();
 * ```
 */
export const SHUTDOWN_TIMEOUT_MS = 5_000;

/**
 * URL path of the WebSocket endpoint (docs/protocol.md, "On WebSocket").
 *
 * @example
 * ```ts
 * const url = `wss://127.0.0.1:${port}${WEBSOCKET_PATH}`;
 * ```
 */
export const WEBSOCKET_PATH = '/impp';

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Starts a server as `impp serve` does, logging to `io.stderr`. Does not print the banner and
 * does not handle signals (the command does both).
 *
 * @throws ImppError `ERR_CONFIG_INVALID` (configuration, key files, a port in use),
 *   `ERR_STORAGE` (the data folder or a database).
 * @example
 * ```ts
 * const running = await startServer({ dataDir: '/tmp/impp' }, io);
 * // … later
 * await running.stop();
 * ```
 */
export async function startServer(options: ServeOptions, io: CliIo): Promise<RunningServer> {
  const [configModule, logging, { ImppServer }, storeModule, authModule, authConfig, errors] =
    await Promise.all([
      import('../service/config/index.js'),
      import('../service/logging.js'),
      import('../service/server.js'),
      import('../service/store/index.js'),
      import('../auth/audit.js'),
      import('../service/authenticator.js'),
      import('../errors.js'),
    ]);
  const env = io.env;
  const configPath = options.config ?? (env.IMPP_CONFIG === '' ? undefined : env.IMPP_CONFIG);
  const loaded = configModule.loadServerConfig(configPath, env);
  const config =
    options.dataDir === undefined ? loaded : { ...loaded, dataDir: resolve(options.dataDir) };
  const logger = logging.createServiceLogger({
    level: config.log.level,
    destination: { write: (line: string) => io.stderr.write(line) },
  });
  const files = await configModule.prepareServerFiles(config);
  const localCa = files.tls.localCa;
  logger.info(
    {
      domain: config.domain,
      dataDir: files.dataDir,
      config: config.source ?? null,
      domainKeyCreated: files.domainKeyCreated,
      caCreated: localCa?.caCreated ?? false,
      serverCertIssued: localCa?.serverIssued ?? null,
    },
    'server.starting',
  );
  const store = storeModule.openSqliteServiceStore({
    path: files.serviceDbPath,
    quotas: config.quotas,
  });
  let auth: Awaited<ReturnType<typeof authConfig.authenticatorFromConfig>> | undefined;
  let server: InstanceType<typeof ImppServer> | undefined;
  let node: import('../federation/node.js').FederationNode | undefined;
  const cleanUp = async (): Promise<void> => {
    // Federation first: until its links are closed, peers may still be writing to the store.
    await node?.close();
    await server?.close();
    await store.close();
    await auth?.close();
  };
  try {
    auth = await authConfig.authenticatorFromConfig({
      trust: config.trust,
      accountsDbPath: files.accountsDbPath,
      domainKey: files.domainKey,
      audit: new authModule.PinoAuditSink(logger.child({ component: 'auth' })),
      // Relative keytab, CA and secret-file paths in a config file mean "next to that file".
      ...(config.source === undefined ? {} : { baseDir: dirname(resolve(config.source)) }),
    });
    if (config.federation.enabled) {
      const { buildFederationNode } = await import('./serve-federation.js');
      node = buildFederationNode({
        config,
        store,
        serverTls: { certPem: files.tls.certPem, keyPem: files.tls.keyPem },
        domainKey: files.domainKey,
        log: logger.child({ component: 'federation' }),
      });
    }
    server = new ImppServer({
      domain: config.domain,
      tls: { key: files.tls.keyPem, cert: files.tls.certPem },
      // Only with a PKI provider (EXTERNAL): ask for client certificates from its CAs.
      ...(auth.clientCertificates === undefined
        ? {}
        : { clientCertificates: auth.clientCertificates }),
      store,
      authenticator: auth.authenticator,
      domainKey: files.domainKey,
      limits: config.limits,
      websocket: { path: WEBSOCKET_PATH },
      log: logger.child({ component: 'server' }),
      ...(node === undefined ? {} : { remote: node.router }),
    });
    node?.attach(server.federationInbound);
    const listenOn = async (
      kind: 'tls' | 'websocket' | 'federation',
      listen: (o: Endpoint) => Promise<{ port: number }>,
      where: Endpoint,
    ): Promise<Endpoint> => {
      try {
        const { port } = await listen(where);
        logger.info({ transport: kind, host: where.host, port }, 'server.listening');
        return { host: where.host, port };
      } catch (error) {
        const cause = error instanceof Error ? error.cause : undefined;
        const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'unknown error';
        throw new errors.ImppError(
          'ERR_CONFIG_INVALID',
          `cannot listen on ${where.host}:${where.port} for ${kind} (${code}); ` +
            `set ${kind === 'federation' ? 'federation.listen' : `listen.${kind}`}.port in the ` +
            'configuration file',
          { cause: error },
        );
      }
    };
    const running = server;
    const tls = await listenOn('tls', (o) => running.listen(o), config.listen.tls);
    const websocket = config.listen.websocket.enabled
      ? await listenOn('websocket', (o) => running.listenWebSocket(o), config.listen.websocket)
      : undefined;
    const federating = node;
    const federation =
      federating === undefined
        ? undefined
        : {
            listen: await listenOn(
              'federation',
              async (o) => ({ port: await federating.listen(o) }),
              config.federation.listen,
            ),
            // Unpadded base64url, as the trust configuration spells pinned keys.
            domainKey: Buffer.from(files.domainKey.publicKey).toString('base64url'),
          };
    let stopping: Promise<void> | undefined;
    return {
      domain: config.domain,
      dataDir: files.dataDir,
      tls,
      websocket,
      federation,
      ca:
        localCa === undefined
          ? undefined
          : { certPath: localCa.caCertPath, fingerprint: localCa.caFingerprint },
      caCreated: localCa?.caCreated ?? false,
      domainKey: files.domainKey.publicKey,
      log: logger,
      stop: () => {
        stopping ??= (async () => {
          const started = Date.now();
          logger.info({ online: running.onlineDevices }, 'server.stopping');
          await cleanUp();
          logger.info({ ms: Date.now() - started }, 'server.stopped');
        })();
        return stopping;
      },
    };
  } catch (error) {
    await cleanUp().catch(() => undefined);
    throw error;
  }
}

/**
 * The lines printed once the server listens. `flags` are the `--config`/`--data-dir` options
 * the `impp user` commands need to find the same accounts (empty on the defaults).
 *
 * @example
 * ```ts
 * io.stdout.write(banner(running, '').join('\n') + '\n');
 * ```
 */
export function banner(running: RunningServer, flags = ''): string[] {
  const lines = [`impp server for domain ${running.domain}`];
  lines.push(`  listening (TLS):        ${hostForUrl(running.tls.host)}:${running.tls.port}`);
  if (running.websocket !== undefined) {
    const ws = running.websocket;
    lines.push(
      `  listening (WebSocket):  wss://${hostForUrl(ws.host)}:${ws.port}${WEBSOCKET_PATH}`,
    );
  }
  if (running.federation !== undefined) {
    const f = running.federation.listen;
    lines.push(
      `  listening (federation): ${hostForUrl(f.host)}:${f.port}`,
      `  domain key (peers pin): ${running.federation.domainKey}`,
    );
  }
  lines.push(`  data folder:            ${running.dataDir}`);
  if (running.ca === undefined) {
    lines.push('  certificate:            from the configuration (tls.cert, tls.key)');
  } else {
    lines.push(
      `  CA certificate:         ${running.ca.certPath}${running.caCreated ? '  (new)' : ''}`,
      `  CA SHA-256 fingerprint: ${running.ca.fingerprint}`,
      '  Clients must trust this CA: give them the CA file, or compare the fingerprint.',
    );
  }
  const server = `${hostForUrl(running.tls.host)}:${running.tls.port}`;
  const caOption = running.ca === undefined ? '' : ` --ca ${running.ca.certPath}`;
  lines.push(
    '',
    'Next steps, in another terminal (same folder):',
    `  impp user add alice@${running.domain}${flags}`,
    `  impp user add bob@${running.domain}${flags}`,
    `  impp chat --server ${server}${caOption} --user alice@${running.domain}`,
    '',
    'Logs (JSON) go to standard error. Stop with Ctrl-C or SIGTERM.',
  );
  return lines;
}

/**
 * Registers `impp serve` on `program`.
 *
 * @example
 * ```ts
 * registerServe(program, io);
 * ```
 */
export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .summary('run the server (embedded defaults, or a configuration file)')
    .description(
      'Run the impp server for one domain. Without a configuration it serves "localhost" on ' +
        '127.0.0.1 (TLS on 5330, WebSocket on 5331) and keeps everything in ./.impp: the first ' +
        'start creates a domain key, a local CA and a server certificate; later starts reuse them. ' +
        'Logs are JSON lines on standard error (never message content, passwords or keys). ' +
        'SIGTERM or Ctrl-C stops it gracefully. When the trust section allows peer domains ' +
        '(trust.federation), it also listens for them (server to server, port 5332; see the ' +
        'federation section in docs/operations.md).',
    )
    .option('--config <file>', 'server configuration file (YAML; default: $IMPP_CONFIG, or none)')
    .option(
      '--data-dir <path>',
      'data folder (default: dataDir of the configuration, $IMPP_DATA_DIR, or ./.impp)',
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  $ impp serve                          embedded defaults, data in ./.impp',
        '  $ impp serve --data-dir /var/lib/impp --config /etc/impp/server.yaml',
        '  $ impp serve 2>> impp.log             keep the JSON log in a file',
        '',
        'Then, in another terminal: impp user add alice@localhost',
        'See docs/operations.md, "Running a server".',
      ].join('\n'),
    )
    .action(async (options: ServeOptions) => {
      const running = await startServer(options, io);
      const flags =
        (options.config === undefined ? '' : ` --config ${resolve(options.config)}`) +
        (options.dataDir === undefined ? '' : ` --data-dir ${running.dataDir}`);
      io.stdout.write(`${banner(running, flags).join('\n')}\n`);
      await waitForSignal(running, io);
    });
}

/** Resolves after SIGTERM or SIGINT and a graceful stop; a second signal exits at once. */
async function waitForSignal(running: RunningServer, io: CliIo): Promise<void> {
  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    const on = (s: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolveSignal(s);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  running.log.info({ signal }, 'server.signal');
  const force = (): void => {
    io.stderr.write('impp: stopped without a graceful shutdown\n');
    process.exit(1);
  };
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
  const watchdog = setTimeout(() => {
    running.log.warn({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'server.stop_timeout');
    force();
  }, SHUTDOWN_TIMEOUT_MS);
  watchdog.unref();
  try {
    await running.stop();
  } finally {
    clearTimeout(watchdog);
    process.off('SIGTERM', force);
    process.off('SIGINT', force);
  }
  io.stdout.write('impp server stopped\n');
}
