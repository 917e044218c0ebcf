/**
 * The command language of `impp chat`: one input line becomes one {@link ChatCommand}. Pure, so
 * that it is tested without a terminal or a server.
 *
 * A line that starts with `/` is a command; any other non-empty line is text for the current
 * conversation (set with `/to`). `//` at the start sends a line that begins with a slash.
 */

/** Presence states a user can publish (PIDF basic status, RFC 3863 §4.1.4). */
export type BasicStatus = 'open' | 'closed';

/** What one input line asks for. */
export type ChatCommand =
  | { readonly kind: 'msg'; readonly to: string; readonly text: string }
  | { readonly kind: 'to'; readonly to: string }
  | { readonly kind: 'text'; readonly text: string }
  | {
      readonly kind: 'sub' | 'unsub' | 'approve' | 'deny' | 'revoke' | 'safety';
      readonly address: string;
    }
  | { readonly kind: 'status'; readonly basic: BasicStatus; readonly note: string | undefined }
  | { readonly kind: 'who' | 'help' | 'quit' | 'empty' }
  | { readonly kind: 'invalid'; readonly message: string };

/** Longest input line accepted (a message's text included). */
export const MAX_LINE_CHARS = 4096;

/** One line per command, for `/help`. */
export const CHAT_HELP: readonly string[] = [
  '/msg ADDRESS TEXT      send TEXT to ADDRESS (and make ADDRESS the current conversation)',
  '/to ADDRESS            talk to ADDRESS: plain lines are then sent there',
  '/sub ADDRESS           ask to see ADDRESS’s presence',
  '/unsub ADDRESS         withdraw a request or stop watching ADDRESS',
  '/approve ADDRESS       let ADDRESS see your presence',
  '/deny ADDRESS          refuse ADDRESS’s request',
  '/revoke ADDRESS        stop ADDRESS from seeing your presence (takes effect at once)',
  '/status open|closed [NOTE]   publish your presence to approved watchers',
  '/who                   your contacts with their live presence, and your watchers',
  '/safety ADDRESS        the safety number with ADDRESS (compare it out of band)',
  '/help                  this list',
  '/quit                  disconnect and exit (so does end of input, Ctrl-D)',
];

const ONE_ADDRESS = new Set(['sub', 'unsub', 'approve', 'deny', 'revoke', 'safety']);

/** Removes one pair of matching quotes around `text`, if any. */
function unquote(text: string): string {
  const m = /^(["'])(.*)\1$/s.exec(text);
  return m?.[2] ?? text;
}

/**
 * Parses one input line (without its newline).
 *
 * @example
 * ```ts
 * parseChatLine('/msg bob@example.org hi'); // { kind: 'msg', to: 'bob@example.org', text: 'hi' }
 * parseChatLine('/status open "at desk"');  // { kind: 'status', basic: 'open', note: 'at desk' }
 * ```
 */
export function parseChatLine(line: string): ChatCommand {
  if (line.length > MAX_LINE_CHARS) {
    return { kind: 'invalid', message: `a line is limited to ${MAX_LINE_CHARS} characters` };
  }
  const trimmed = line.trim();
  if (trimmed === '') return { kind: 'empty' };
  if (trimmed.startsWith('//')) return { kind: 'text', text: trimmed.slice(1) };
  if (!trimmed.startsWith('/')) return { kind: 'text', text: trimmed };
  const m = /^\/(\S+)\s*(.*)$/s.exec(trimmed);
  const name = (m?.[1] ?? '').toLowerCase();
  const rest = (m?.[2] ?? '').trim();
  const [first = '', ...more] = rest === '' ? [] : rest.split(/\s+/);
  const tail = rest.slice(first.length).trim();
  switch (name) {
    case 'msg':
    case 'm':
      if (first === '' || tail === '') return usage('/msg ADDRESS TEXT');
      return { kind: 'msg', to: first, text: tail };
    case 'to':
      if (first === '' || more.length > 0) return usage('/to ADDRESS');
      return { kind: 'to', to: first };
    case 'status': {
      if (first !== 'open' && first !== 'closed') return usage('/status open|closed [NOTE]');
      const note = unquote(tail);
      return { kind: 'status', basic: first, note: note === '' ? undefined : note };
    }
    case 'who':
    case 'help':
    case 'quit':
      if (rest !== '') return usage(`/${name}`);
      return { kind: name };
    case 'exit':
      return { kind: 'quit' };
    default:
      if (ONE_ADDRESS.has(name)) {
        if (first === '' || more.length > 0) return usage(`/${name} ADDRESS`);
        return { kind: name as 'sub', address: first };
      }
      return { kind: 'invalid', message: `unknown command /${name}: try /help` };
  }
}

function usage(form: string): ChatCommand {
  return { kind: 'invalid', message: `usage: ${form}` };
}

/**
 * Makes text from the network safe to print on a terminal: control characters (which could
 * move the cursor, rewrite earlier lines or change the terminal's state) become `�`.
 *
 * @example
 * ```ts
 * printable('hi\u001b[2J'); // 'hi�[2J'
 * ```
 */
export function printable(text: string): string {
  // C0 controls, DEL, C1 controls, and the bidirectional overrides that can reorder a line.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '\ufffd');
}
