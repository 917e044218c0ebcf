/**
 * The running `impp chat` session: connects one {@link ImppClient}, prints what arrives
 * (messages, presence, subscription requests and decisions, key-change warnings) as it arrives,
 * and runs one input command at a time until `/quit`, end of input, or a lost connection.
 *
 * Everything that came over the network is passed through {@link printable} before it reaches
 * the terminal: a contact must not be able to send escape sequences.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { ImppClient } from '../../client/client.js';
import { ImppError, isImppError } from '../../errors.js';
import { formatAddress, parseAddress } from '../../trust/address.js';
import { type CliIo, type Style, colorEnabled, makeStyle } from '../io.js';
import { promptPassword } from '../password-input.js';
import { CHAT_HELP, type ChatCommand, parseChatLine, printable } from './commands.js';
import { LineQueue } from './lines.js';
import { SerialStateFile } from './state-file.js';

/** What `impp chat` was asked to do, validated. */
export interface ChatOptions {
  readonly host: string;
  readonly port: number;
  /** PEM of the CA that verifies the server; `undefined` uses the system's CAs. */
  readonly ca: string | undefined;
  readonly servername: string | undefined;
  readonly address: string;
  readonly deviceId: string;
  readonly statePath: string;
  /** Read the password from the first line of standard input. */
  readonly passwordStdin: boolean;
}

/** Last presence seen per contact, for `/who`. */
interface Seen {
  readonly basic: string | undefined;
  readonly note: string | undefined;
}

class Printer {
  /** Set when the session ends: no more prompts after the last line. */
  ended = false;

  constructor(
    private readonly io: CliIo,
    readonly style: Style,
    private readonly lines: () => LineQueue | undefined,
    private readonly interactive: boolean,
  ) {}

  /** Prints `text` above the prompt (a terminal) or as a line (a pipe). */
  line(text: string): void {
    if (this.interactive) {
      this.io.stdout.write(`\r\u001b[K${text}\n`);
      if (!this.ended) this.lines()?.rl.prompt(true);
    } else {
      this.io.stdout.write(`${text}\n`);
    }
  }

  info(text: string): void {
    this.line(`${this.style.dim('*')} ${text}`);
  }

  warn(text: string): void {
    this.line(`${this.style.bad('!')} ${text}`);
  }
}

function now(): string {
  return new Date().toTimeString().slice(0, 5);
}

/**
 * Runs a chat session to its end. Resolves when the user quits or input ends; rejects with an
 * ImppError when the connection cannot be made or is lost.
 *
 * @example
 * ```ts
 * await runChat(io, { host: '127.0.0.1', port: 5280, ca, servername: undefined,
 *   address: 'alice@localhost', deviceId: 'terminal', statePath, passwordStdin: false });
 * ```
 */
export async function runChat(io: CliIo, options: ChatOptions): Promise<void> {
  const stdin = io.stdin;
  if (!(stdin instanceof Readable)) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'impp chat needs standard input');
  }
  const interactive =
    !options.passwordStdin &&
    io.stdin?.isTTY === true &&
    io.stdout.isTTY === true &&
    io.stdout instanceof Writable;
  const style = makeStyle(colorEnabled(io.stdout, io.env));
  let lines: LineQueue | undefined;
  const out = new Printer(io, style, () => lines, interactive);

  let password: string;
  if (options.passwordStdin) {
    lines = new LineQueue(stdin);
    const first = await lines.next();
    if (first === undefined || first === '') {
      lines.close();
      throw new ImppError(
        'ERR_INVALID_ARGUMENT',
        'no password: with --password-stdin the first line of input is the password',
      );
    }
    password = first;
  } else {
    password = await promptPassword(stdin, io.stderr, `Password for ${options.address}: `);
    lines = new LineQueue(
      stdin,
      interactive && io.stdout instanceof Writable ? io.stdout : undefined,
    );
  }

  const firstRun = !existsSync(options.statePath);
  const client = new ImppClient({
    host: options.host,
    port: options.port,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    ...(options.servername === undefined ? {} : { servername: options.servername }),
    address: options.address,
    password,
    deviceId: options.deviceId,
    state: new SerialStateFile(options.statePath),
  });
  const seen = new Map<string, Seen>();
  wireEvents(client, out, seen);
  // An object, not two lets: the close handler changes it behind the compiler's back.
  const link = { quitting: false, lost: false };
  let lost: (() => void) | undefined;
  const connectionLost = new Promise<undefined>((resolve) => {
    lost = () => {
      resolve(undefined);
    };
  });
  try {
    await client.connect();
  } catch (e) {
    lines.close();
    throw e;
  }
  client.on('close', () => {
    if (!link.quitting) link.lost = true;
    lost?.();
  });
  out.info(
    `connected as ${client.device}` +
      (firstRun ? ` (new device registered; keys kept in ${options.statePath})` : ''),
  );
  out.info('type /help for commands, /quit to leave');
  if (interactive) {
    lines.rl.setPrompt('> ');
    lines.rl.prompt();
  }

  let target: string | undefined;
  try {
    for (;;) {
      const line = await Promise.race([lines.next(), connectionLost]);
      if (line === undefined || link.lost) break;
      const command = parseChatLine(line);
      if (command.kind === 'quit') break;
      try {
        target = await execute(command, client, out, seen, target);
      } catch (e) {
        if (!isImppError(e)) throw e;
        out.warn(`${e.message} (${e.code})`);
      }
      if (interactive) lines.rl.prompt();
    }
  } finally {
    link.quitting = true;
    out.ended = true;
    lines.close();
    await client.close().catch(() => undefined);
  }
  if (link.lost) {
    throw new ImppError('ERR_CONNECTION_CLOSED', 'the connection to the server was lost');
  }
  out.info('bye');
}

function wireEvents(client: ImppClient, out: Printer, seen: Map<string, Seen>): void {
  const me = client.address;
  client.on('message', (m) => {
    out.line(
      `${out.style.dim(`[${now()}]`)} ${out.style.bold(`<${printable(m.from)}>`)} ${printable(m.text)}`,
    );
  });
  client.on('presence', (p) => {
    seen.set(p.presentity, { basic: p.basic, note: p.note });
    const note = p.note === undefined ? '' : `: ${printable(p.note)}`;
    const state = p.basic === 'open' ? out.style.good('open') : (p.basic ?? 'unknown');
    out.info(`${printable(p.presentity)} is ${state}${note}`);
  });
  client.on('subscription', (s) => {
    const watcher = printable(s.watcher);
    const presentity = printable(s.presentity);
    if (s.presentity === me && s.state === 'pending') {
      out.info(
        `${out.style.accent(watcher)} asks to see your presence: /approve ${watcher} or /deny ${watcher}`,
      );
    } else if (s.watcher === me) {
      out.info(
        `${presentity} ${s.state === 'approved' ? out.style.good(s.state) : s.state} your request to see their presence`,
      );
    } else {
      out.info(`subscription of ${watcher} to ${presentity}: ${s.state}`);
    }
  });
  client.on('keyChange', (k) => {
    out.warn(
      out.style.bad(
        `WARNING: the identity key of ${printable(k.device)} has changed. Messages to and from ` +
          'that device are refused. Compare safety numbers out of band (/safety) before trusting it.',
      ),
    );
  });
  client.on('deviceList', (d) => {
    const who = printable(d.address);
    if (d.firstSight) {
      out.info(`${who} has ${d.added.length} device(s); compare safety numbers (/safety ${who})`);
      return;
    }
    const changes = [
      ...d.added.map((id) => `added ${printable(id)}`),
      ...d.removed.map((id) => `removed ${printable(id)}`),
      ...d.replaced.map((id) => `re-keyed ${printable(id)}`),
    ];
    if (changes.length > 0) out.warn(`${who} changed their devices: ${changes.join(', ')}`);
  });
  client.on('trustWarning', (w) => {
    const subject = printable(w.device ?? w.address);
    const what =
      w.kind === 'unlisted-sender'
        ? `a message came from ${subject}, a device not on its owner's verified list`
        : `your client refused ${subject} (${w.kind}): nothing was sealed for it`;
    out.warn(out.style.bad(`WARNING: ${what}`));
  });
  client.on('undeliverable', (u) => {
    out.warn(`an incoming object could not be opened and was dropped (${u.code})`);
  });
  client.on('missingMessages', (m) => {
    // The server (or the network) dropped or is holding them: say so, never stay silent (T05).
    out.warn(
      `${m.count} message(s) from ${printable(m.device)} are missing (dropped or held back on the way)`,
    );
  });
}

function canonical(address: string): string {
  return formatAddress(parseAddress(address));
}

/** Runs one command; returns the current conversation (changed by `/to` and `/msg`). */
async function execute(
  command: ChatCommand,
  client: ImppClient,
  out: Printer,
  seen: ReadonlyMap<string, Seen>,
  target: string | undefined,
): Promise<string | undefined> {
  switch (command.kind) {
    case 'empty':
      return target;
    case 'invalid':
      out.warn(command.message);
      return target;
    case 'help':
      for (const l of CHAT_HELP) out.line(`  ${l}`);
      return target;
    case 'to': {
      const to = canonical(command.to);
      out.info(`talking to ${to}: plain lines are sent there`);
      return to;
    }
    case 'msg':
    case 'text': {
      const to = command.kind === 'msg' ? canonical(command.to) : target;
      if (to === undefined) {
        out.warn('no conversation yet: /to ADDRESS first, or /msg ADDRESS TEXT');
        return target;
      }
      const ids = await client.sendMessage(to, command.text);
      if (ids.length === 0) {
        out.warn(`${to} has no device that can receive it (none registered, or its key changed)`);
      } else {
        out.info(`sent to ${to}`);
      }
      return to;
    }
    case 'sub': {
      const a = canonical(command.address);
      out.info(`subscription to ${a}: ${await client.subscribe(a)}`);
      return target;
    }
    case 'unsub': {
      const a = canonical(command.address);
      out.info(`subscription to ${a}: ${await client.unsubscribe(a)}`);
      return target;
    }
    case 'approve':
    case 'deny':
    case 'revoke': {
      const a = canonical(command.address);
      const state = await client[command.kind](a);
      out.info(`${a} may ${state === 'approved' ? '' : 'not '}see your presence (${state})`);
      return target;
    }
    case 'status':
      await client.publishPresence(command.basic, command.note);
      out.info(
        `published ${command.basic}${command.note === undefined ? '' : `: ${command.note}`}`,
      );
      return target;
    case 'safety': {
      const a = canonical(command.address);
      out.info(`safety number with ${a}: ${await client.safetyNumber(a)}`);
      out.line(
        '  compare it with theirs in person or by a call; equal numbers mean no one is in between',
      );
      return target;
    }
    case 'who':
      await who(client, out, seen);
      return target;
    case 'quit':
      return target;
  }
}

async function who(
  client: ImppClient,
  out: Printer,
  seen: ReadonlyMap<string, Seen>,
): Promise<void> {
  const { watchers, subscriptions } = await client.subscriptions();
  out.line(out.style.bold('Contacts (presence you watch)'));
  if (subscriptions.length === 0) out.line('  none: /sub ADDRESS');
  for (const s of subscriptions) {
    const p = seen.get(s.presentity);
    const presence =
      s.state !== 'approved'
        ? `(${s.state})`
        : p === undefined
          ? 'no presence yet'
          : `${p.basic ?? 'unknown'}${p.note === undefined ? '' : `: ${printable(p.note)}`}`;
    out.line(`  ${printable(s.presentity).padEnd(32)} ${presence}`);
  }
  out.line(out.style.bold('Watchers (who may see yours)'));
  if (watchers.length === 0) out.line('  none');
  for (const w of watchers) {
    const hint = w.state === 'pending' ? `  /approve ${printable(w.watcher)}` : '';
    out.line(`  ${printable(w.watcher).padEnd(32)} ${w.state}${hint}`);
  }
}

/** Reads the CA file given with `--ca`. */
export function readCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ImppError('ERR_INVALID_ARGUMENT', `cannot read the CA file ${path} (${code})`, {
      cause,
    });
  }
}
