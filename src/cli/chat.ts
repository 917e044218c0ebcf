/**
 * `impp chat`: an interactive terminal client. This module registers the command and checks its
 * options; the session itself (src/cli/chat/session.ts) is loaded only when it runs.
 *
 * Scripts pass `--password-stdin`: the FIRST LINE of standard input is then the password, and
 * every following line is a chat command, exactly as if typed.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliIo } from './io.js';

/** Device id used when `--device` is not given. */
export const DEFAULT_CHAT_DEVICE = 'terminal';
/** Folder of the state files when `--state` is not given (under the home folder). */
export const CHAT_STATE_DIR = '.impp-chat';
/** Port used when `--server` names only a host (docs/protocol.md, "Ports"). */
const DEFAULT_PORT = 5330;

interface RawOptions {
  server: string;
  ca?: string;
  user: string;
  state?: string;
  device?: string;
  servername?: string;
  passwordStdin?: boolean;
}

/**
 * Splits `HOST:PORT` (`[v6]:PORT` for IPv6; the port is optional).
 *
 * @example
 * ```ts
 * parseServer('127.0.0.1:5330'); // { host: '127.0.0.1', port: 5330 }
 * ```
 */
export function parseServer(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(text);
  if (m === null) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const port = m[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (host === '' || port < 1 || port > 65535) return undefined;
  return { host, port };
}

/**
 * Registers `impp chat` on `program`.
 *
 * @example
 * ```ts
 * registerChat(program, io);
 * ```
 */
export function registerChat(program: Command, io: CliIo): void {
  program
    .command('chat')
    .summary('an interactive terminal client: messages, presence, watchers, safety numbers')
    .description(
      'Connect to an impp server as ADDRESS and chat: send and read messages, see your ' +
        'contacts’ presence live, approve who may see yours, and compare safety numbers. The ' +
        'first run registers this device; its keys and sessions are kept in a state file (0600).',
    )
    .requiredOption('--server <host:port>', 'the server, e.g. 127.0.0.1:5330')
    .requiredOption('--user <address>', 'your address, e.g. alice@localhost')
    .option('--ca <file>', 'CA certificate (PEM) that signed the server’s certificate')
    .option('--state <file>', `state file (default: ~/${CHAT_STATE_DIR}/ADDRESS[-DEVICE].json)`)
    .option('--device <id>', `this device's id (default: ${DEFAULT_CHAT_DEVICE})`)
    .option('--servername <name>', 'name to verify in the server certificate (default: the host)')
    .option(
      '--password-stdin',
      'read the password from the first line of standard input; the next lines are commands',
    )
    .addHelpText(
      'after',
      [
        '',
        'Commands (type /help in the chat):',
        '  /msg ADDRESS TEXT   /to ADDRESS (then plain lines)   /sub ADDRESS   /unsub ADDRESS',
        '  /approve ADDRESS    /deny ADDRESS    /revoke ADDRESS   /status open|closed [NOTE]',
        '  /who                /safety ADDRESS  /help             /quit (or end of input)',
        '',
        'The password is prompted without echo. With --password-stdin, the first line of',
        'standard input is the password and each further line is a command, so a script can',
        'drive a session: printf "%s\\n/msg bob@localhost hi\\n/quit\\n" "$PW" | impp chat ...',
        'Incoming messages, presence changes, subscription requests and key-change warnings are',
        'printed as they arrive. NO_COLOR=1 turns colours off.',
        '',
        'Examples:',
        '  $ impp chat --server 127.0.0.1:5330 --ca .impp/ca.pem --user alice@localhost',
        '  $ impp chat --server chat.example.com:5330 --user bob@example.com --device laptop',
      ].join('\n'),
    )
    .action(async (raw: RawOptions) => {
      const [{ ImppError }, address, session] = await Promise.all([
        import('../errors.js'),
        import('../trust/address.js'),
        import('./chat/session.js'),
      ]);
      const server = parseServer(raw.server);
      if (server === undefined) {
        throw new ImppError('ERR_INVALID_ARGUMENT', '--server must be HOST:PORT');
      }
      const user = address.formatAddress(address.parseAddress(raw.user));
      const deviceId = address.assertDeviceId(raw.device ?? DEFAULT_CHAT_DEVICE);
      const fileName =
        deviceId === DEFAULT_CHAT_DEVICE ? `${user}.json` : `${user}-${deviceId}.json`;
      const home = io.env.HOME ?? homedir();
      await session.runChat(io, {
        host: server.host,
        port: server.port,
        ca: raw.ca === undefined ? undefined : session.readCa(raw.ca),
        servername: raw.servername,
        address: user,
        deviceId,
        statePath:
          raw.state === undefined ? join(home, CHAT_STATE_DIR, fileName) : resolve(raw.state),
        passwordStdin: raw.passwordStdin === true,
      });
    });
}
