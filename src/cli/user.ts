/**
 * `impp user add|passwd|disable|enable|list`: administration of the local provider's accounts,
 * directly in its SQLite store in the data folder (the server need not run; SQLite's WAL lets
 * it run at the same time).
 *
 * Passwords come from a prompt with echo off or from standard input (`--password-stdin`), never
 * from the command line, and are turned into SCRAM verifiers (RFC 5802 §3) at once: the store
 * never holds a password.
 */
import { existsSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { Option, type Command } from 'commander';
import { PRINCIPAL_KINDS, type PrincipalKind } from '../trust/principal.js';
import type { CliIo } from './io.js';

/** Version of the `user list --json` output, bumped on any incompatible change. */
export const USER_LIST_JSON_VERSION = 1;

interface StoreOptions {
  readonly dataDir?: string;
  readonly config?: string;
}

const PASSWORD_HELP = [
  '',
  'Passwords are never taken from the command line: arguments are visible to every user of',
  'the machine (ps, /proc/<pid>/cmdline) and are kept in shell history. On a terminal you are',
  'prompted (nothing is echoed); in scripts, pipe the password in with --password-stdin (one',
  'trailing newline is removed). Only a SCRAM-SHA-256 verifier is stored, never the password.',
].join('\n');

const STORE_HELP = [
  '',
  'The accounts live in accounts.db in the data folder (--data-dir, else IMPP_DATA_DIR, else',
  './.impp), or in the local provider\'s "store" file when the configuration sets one.',
  'The domain comes from the configuration file (--config or IMPP_CONFIG; "localhost" without one):',
  'an address in another domain is refused. See docs/operations.md.',
].join('\n');

function addStoreOptions(command: Command): Command {
  return command
    .option('--data-dir <path>', 'data folder (default: $IMPP_DATA_DIR or ./.impp)')
    .option('--config <file>', 'server configuration file (default: $IMPP_CONFIG, or none)');
}

/** Everything an action needs, loaded on use so that `impp --help` stays light. */
async function openStore(
  options: StoreOptions,
  io: CliIo,
  mustExist: boolean,
  addressText?: string,
) {
  const [configModule, dataDirModule, local, store, address] = await Promise.all([
    import('../service/config/server-config.js'),
    import('../service/config/data-dir.js'),
    import('../auth/providers/local.js'),
    import('../auth/providers/local-store.js'),
    import('../trust/address.js'),
  ]);
  const { ImppError } = await import('../errors.js');
  const env = io.env;
  const configPath = options.config ?? (env.IMPP_CONFIG === '' ? undefined : env.IMPP_CONFIG);
  const loaded = configModule.loadServerConfig(configPath, env);
  const config =
    options.dataDir === undefined ? loaded : { ...loaded, dataDir: resolve(options.dataDir) };
  if (!config.trust.authentication.providers.some((p) => p.type === 'local')) {
    throw new ImppError(
      'ERR_CONFIG_INVALID',
      'the configuration has no local provider (trust.authentication.providers), so there are no local accounts to manage',
    );
  }
  const where = configPath === undefined ? 'the default' : `set in ${loaded.source ?? configPath}`;
  /** The canonical user of `text`, refused when its domain is not the configured one. */
  const userOf = (text: string): { user: string; address: string } => {
    const parsed = address.parseAddress(text);
    if (parsed.domain !== config.domain) {
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        `the address is in domain ${parsed.domain}, but this server's domain is ${config.domain} (${where}); ` +
          'use --config to manage another server',
      );
    }
    return { user: parsed.user, address: address.formatAddress(parsed) };
  };
  // The address is checked before anything is created on disk.
  const target = addressText === undefined ? undefined : userOf(addressText);
  const path = configModule.localAccountsPath(config);
  if (mustExist && !existsSync(path)) {
    throw new ImppError(
      'ERR_NOT_FOUND',
      `there is no account store at ${path}; add a user first with "impp user add"`,
    );
  }
  if (path.startsWith(config.dataDir + sep)) dataDirModule.ensureDataDir(config.dataDir);
  // Verifiers allow offline guessing: the file is private (0600) from its creation.
  dataDirModule.createPrivateFile(path);
  const repository = new store.SqliteLocalAccountRepository(path);
  const accounts = new local.LocalAccounts(
    repository,
    config.domain,
    config.trust.policy.scram.iterations,
  );
  return { accounts, repository, config, path, target };
}

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new TypeError('openStore was called without an address');
  return value;
}

async function readNewPassword(
  io: CliIo,
  fromStdin: boolean | undefined,
  who: string,
): Promise<string> {
  const input = await import('./password-input.js');
  const { ImppError } = await import('../errors.js');
  if (io.stdin === undefined) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'no standard input to read a password from');
  }
  if (fromStdin === true) return input.readPasswordFromStream(io.stdin);
  return input.promptNewPassword(io.stdin, io.stderr, who);
}

/**
 * Registers `impp user` and its sub-commands on `program`.
 *
 * @example
 * ```ts
 * registerUser(program, io);
 * ```
 */
export function registerUser(program: Command, io: CliIo): void {
  const user = program
    .command('user')
    .summary("manage the local provider's accounts (add, passwd, disable, enable, list)")
    .description(
      "Manage the accounts of the local credential provider, in the server's data folder.",
    )
    .addHelpText(
      'after',
      [
        STORE_HELP,
        '',
        'Examples:',
        '  $ impp user add alice@localhost',
        '  $ printf %s "$PASSWORD" | impp user add alice@example.com --password-stdin --config impp.yaml',
        '  $ impp user passwd alice@localhost',
        '  $ impp user disable alice@localhost',
        '  $ impp user list --json',
      ].join('\n'),
    );

  addStoreOptions(
    user
      .command('add')
      .summary('create an account')
      .description('Create a local account for <address> (user@domain, in the served domain).')
      .argument('<address>', 'the new account, e.g. alice@example.com')
      .option('--password-stdin', 'read the password from standard input instead of a prompt')
      .addOption(
        new Option('--kind <kind>', 'what the account is')
          .choices(PRINCIPAL_KINDS)
          .default('person'),
      ),
  )
    .addHelpText(
      'after',
      [
        PASSWORD_HELP,
        STORE_HELP,
        '',
        'Examples:',
        '  $ impp user add alice@localhost',
        '  $ impp user add bot@example.com --kind service --password-stdin < bot-password.txt',
      ].join('\n'),
    )
    .action(
      async (
        text: string,
        options: StoreOptions & { passwordStdin?: boolean; kind: PrincipalKind },
      ) => {
        const { accounts, repository, target } = await openStore(options, io, false, text);
        try {
          const { user: name, address } = required(target);
          const { ImppError } = await import('../errors.js');
          // Checked before the prompt, so nobody types a password for nothing.
          if (repository.get(name) !== undefined) {
            throw new ImppError('ERR_CONFLICT', `${address} already exists`);
          }
          const password = await readNewPassword(io, options.passwordStdin, address);
          accounts.create(name, password, options.kind);
          io.stdout.write(`added ${address} (${options.kind})\n`);
        } finally {
          repository.close();
        }
      },
    );

  addStoreOptions(
    user
      .command('passwd')
      .summary("change an account's password")
      .description(
        'Set a new password for <address> (a new salt and verifier). Logins with the old ' +
          'password fail from now on.',
      )
      .argument('<address>', 'the account, e.g. alice@example.com')
      .option('--password-stdin', 'read the new password from standard input instead of a prompt'),
  )
    .addHelpText(
      'after',
      [
        PASSWORD_HELP,
        '',
        'Examples:',
        '  $ impp user passwd alice@localhost',
        '  $ impp user passwd alice@example.com --password-stdin --config impp.yaml < new.txt',
      ].join('\n'),
    )
    .action(async (text: string, options: StoreOptions & { passwordStdin?: boolean }) => {
      const { accounts, repository, target } = await openStore(options, io, true, text);
      try {
        const { user: name, address } = required(target);
        const { ImppError } = await import('../errors.js');
        if (repository.get(name) === undefined) {
          throw new ImppError('ERR_NOT_FOUND', `${address} does not exist`);
        }
        const password = await readNewPassword(io, options.passwordStdin, address);
        accounts.changePassword(name, password);
        io.stdout.write(`changed the password of ${address}\n`);
      } finally {
        repository.close();
      }
    });

  for (const [verb, done, summary] of [
    ['disable', 'disabled', 'refuse new logins of an account (it is kept)'],
    ['enable', 'enabled', 'allow a disabled account to log in again'],
  ] as const) {
    addStoreOptions(
      user
        .command(verb)
        .summary(summary)
        .description(
          verb === 'disable'
            ? 'Disable <address>: its logins are refused from now on; its data is kept. ' +
                'Sessions already open are not ended by this command.'
            : 'Enable <address> again after "impp user disable".',
        )
        .argument('<address>', 'the account, e.g. alice@example.com'),
    )
      .addHelpText('after', ['', 'Example:', `  $ impp user ${verb} alice@localhost`].join('\n'))
      .action(async (text: string, options: StoreOptions) => {
        const { accounts, repository, target } = await openStore(options, io, true, text);
        try {
          const { user: name, address } = required(target);
          const { ImppError, isImppError } = await import('../errors.js');
          try {
            if (verb === 'disable') accounts.disable(name);
            else accounts.enable(name);
          } catch (e) {
            if (isImppError(e, 'ERR_NOT_FOUND')) {
              throw new ImppError('ERR_NOT_FOUND', `${address} does not exist`, { cause: e });
            }
            throw e;
          }
          io.stdout.write(`${done} ${address}\n`);
        } finally {
          repository.close();
        }
      });
  }

  addStoreOptions(
    user
      .command('list')
      .summary('list the accounts')
      .description('List the local accounts: address, kind, status, dates. No key material.')
      .option('--json', 'print a machine-readable list'),
  )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  $ impp user list',
        '  $ impp user list --json | jq -r ".accounts[].address"',
      ].join('\n'),
    )
    .action(async (options: StoreOptions & { json?: boolean }) => {
      const { accounts, repository, config } = await openStore(options, io, true);
      try {
        const rows = accounts.list().map((a) => ({
          address: `${a.username}@${config.domain}`,
          kind: a.kind,
          disabled: a.disabled,
          iterations: a.iterations,
          createdAt: new Date(a.createdAt).toISOString(),
          updatedAt: new Date(a.updatedAt).toISOString(),
        }));
        if (options.json === true) {
          const out = { version: USER_LIST_JSON_VERSION, domain: config.domain, accounts: rows };
          io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return;
        }
        if (rows.length === 0) {
          io.stdout.write(`no accounts in ${config.domain}\n`);
          return;
        }
        const width = Math.max(7, ...rows.map((r) => r.address.length));
        io.stdout.write(`${'ADDRESS'.padEnd(width)}  KIND           STATUS    CREATED\n`);
        for (const r of rows) {
          io.stdout.write(
            `${r.address.padEnd(width)}  ${r.kind.padEnd(13)}  ${(r.disabled ? 'disabled' : 'active').padEnd(8)}  ${r.createdAt.slice(0, 10)}\n`,
          );
        }
      } finally {
        repository.close();
      }
    });
}
