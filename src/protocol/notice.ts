/**
 * The delivery-failure notice (docs/protocol.md, Server-to-server §5.3): what the sender's own
 * server puts in the sender device's queue when an object it accepted for another domain could
 * not be delivered there. It travels to the client as a DELIVER / FETCH item `{ seq, notice }`
 * (client protocol §6.2, §6.4), so both the service (which stores it) and the client SDK (which
 * reads it) share this one codec.
 *
 * A notice is metadata from the sender's server, not sealed: nothing in it is authenticated by the
 * peer or by the recipient, and a client shows it as "the server says", never as a fact.
 */
import { ImppError, type ImppErrorCode } from '../errors.js';
import { type CborValue, decodeStrictCbor, encodeStrictCbor } from '../transport/cbor-strict.js';

/** Version of the delivery-failure notice format. */
export const DELIVERY_NOTICE_VERSION = 1;

/**
 * Largest encoded notice a queue accepts or a client reads. A version-1 notice is about 1.4 KiB at
 * most (a 1024-character recipient, a 253-character domain); the bound leaves room for a later
 * version without letting a "notice" carry anything large.
 */
export const MAX_NOTICE_BYTES = 4 * 1024;

/**
 * A delivery-failure notice: the sender's server telling the sender's device that an object it
 * accepted could not be delivered to another domain.
 *
 * @example
 * ```ts
 * const notice: DeliveryNotice = { v: 1, type: 'delivery-failure', messageId, recipient,
 *   domain: 'b.example', reason: 'expired', code: 'ERR_TIMEOUT', queuedAt, at: Date.now() };
 * ```
 */
export interface DeliveryNotice {
  readonly v: typeof DELIVERY_NOTICE_VERSION;
  readonly type: 'delivery-failure';
  /** The message id of the object that failed (from its envelope). */
  readonly messageId: Uint8Array;
  /** The recipient device it was sealed for. */
  readonly recipient: string;
  /** The peer domain it was queued for. */
  readonly domain: string;
  /** `expired`: the domain stayed unreachable; `refused`: the domain would not take it. */
  readonly reason: 'expired' | 'refused';
  /** `ERR_TIMEOUT` for `expired`; the peer's REJECT code for `refused`. */
  readonly code: ImppErrorCode;
  /** When the sender's server accepted the object, ms since the epoch. */
  readonly queuedAt: number;
  /** When it gave up, ms since the epoch. */
  readonly at: number;
}

const NOTICE_KEYS = [
  'v',
  'type',
  'messageId',
  'recipient',
  'domain',
  'reason',
  'code',
  'queuedAt',
  'at',
] as const;

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/**
 * Encodes a notice as strict CBOR (a map with text keys, in the order of the format).
 *
 * @example
 * ```ts
 * const bytes = encodeDeliveryNotice(notice);
 * ```
 */
export function encodeDeliveryNotice(notice: DeliveryNotice): Uint8Array {
  const map: Record<string, CborValue> = {};
  for (const key of NOTICE_KEYS) map[key] = notice[key];
  return encodeStrictCbor(map);
}

/**
 * Decodes a notice strictly (exact keys, typed values). Throws `ERR_PAYLOAD_INVALID`, or
 * `ERR_VERSION_UNSUPPORTED` for a version other than 1 (a client ignores what it cannot read).
 *
 * @example
 * ```ts
 * const { messageId, reason } = decodeDeliveryNotice(bytes);
 * ```
 */
export function decodeDeliveryNotice(bytes: Uint8Array): DeliveryNotice {
  const bad = (what: string): ImppError =>
    new ImppError('ERR_PAYLOAD_INVALID', `delivery notice is malformed: ${what}`);
  let value: CborValue;
  try {
    value = decodeStrictCbor(bytes, 4);
  } catch {
    throw bad('not CBOR');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || isBytes(value)) {
    throw bad('expected a map');
  }
  const map = value as Readonly<Record<string, CborValue>>;
  if (map.v !== DELIVERY_NOTICE_VERSION) {
    if (typeof map.v === 'number') {
      throw new ImppError('ERR_VERSION_UNSUPPORTED', 'delivery notice version not supported');
    }
    throw bad('v');
  }
  const keys = Object.keys(map);
  if (keys.length !== NOTICE_KEYS.length || !NOTICE_KEYS.every((k) => keys.includes(k))) {
    throw bad('keys');
  }
  const { type, messageId, recipient, domain, reason, code, queuedAt, at } = map;
  if (type !== 'delivery-failure') throw bad('type');
  if (!isBytes(messageId) || messageId.length !== 16) throw bad('messageId');
  if (typeof recipient !== 'string' || recipient.length > 1024) throw bad('recipient');
  if (typeof domain !== 'string' || domain.length > 253) throw bad('domain');
  if (reason !== 'expired' && reason !== 'refused') throw bad('reason');
  if (typeof code !== 'string' || !/^ERR_[A-Z_]{1,48}$/.test(code)) throw bad('code');
  for (const [name, t] of [
    ['queuedAt', queuedAt],
    ['at', at],
  ] as const) {
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw bad(name);
  }
  return {
    v: DELIVERY_NOTICE_VERSION,
    type,
    messageId: Uint8Array.from(messageId),
    recipient,
    domain,
    reason,
    code: code as ImppErrorCode,
    queuedAt: queuedAt as number,
    at: at as number,
  };
}
