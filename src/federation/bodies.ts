/**
 * DATA bodies of link kinds 2–5 (docs/protocol.md, Server-to-server §5.1): presence with its
 * watchers, subscription requests and decisions, look-ups and their answers.
 *
 * Each body is a byte string holding one strict-CBOR map (the outbound queue stores opaque
 * bytes; look-ups use the same form so that one rule covers every kind but the sealed one).
 * Decoding is strict, as for link frames: exact keys, typed and bounded values, canonical
 * addresses. Everything wrong is `ERR_PAYLOAD_INVALID` (permanent at the sender, §2.4), never a
 * guess at what the peer meant. Who may speak for which address is the router's check, not
 * this module's: it only says what the body claims.
 */
import { ImppError } from '../errors.js';
import type {
  BundleAnswer,
  DevicesAnswer,
  LogAnswer,
  PresentityAction,
  WatcherAction,
} from '../service/remote.js';
import {
  formatAddress,
  formatDeviceAddress,
  isValidDeviceId,
  parseAddress,
  parseDeviceAddress,
} from '../trust/address.js';
import { type CborValue, decodeStrictCbor, encodeStrictCbor } from '../transport/cbor-strict.js';
import { KEYLOG_HASH_BYTES } from '../trust/keylog/hash.js';
import { KEYLOG_MAX_ENTRY_BYTES } from '../trust/keylog/log.js';

/** Most watchers one presence body may list (a longer list is split over several bodies). */
export const MAX_PRESENCE_WATCHERS = 10_000;
/**
 * Most hashes in one key-log proof: a proof of a tree of up to 2^64 leaves is at most 2·64 long,
 * but a log that fits a store has far fewer than 2^32 leaves (proofs ≤ 2·32). 64 covers that.
 */
export const MAX_LOG_PROOF_HASHES = 64;
/** Largest encoded signed tree head (a domain name, sizes, a hash and a signature fit easily). */
export const MAX_LOG_HEAD_BYTES = 1024;
/** Most devices (and bundles) one look-up answer may hold: an account's device bound. */
export const MAX_LOOKUP_DEVICES = 64;
/** Largest signed device list or enrolment statement in an answer (client protocol's bound). */
export const MAX_LOOKUP_TRUST_BYTES = 64 * 1024;
/** Largest sealed object inside a body (the seal layer's MAX_SEALED_BYTES). */
const MAX_OBJECT_BYTES = 256 * 1024;
/** Bytes of a look-up request id. */
export const LOOKUP_ID_BYTES = 16;
/** Nesting of the deepest body (bundles: map → array → map → map). */
const MAX_DEPTH = 5;

type CborMap = Readonly<Record<string, CborValue>>;

function invalid(what: string): ImppError {
  return new ImppError('ERR_PAYLOAD_INVALID', `federation body is malformed: ${what}`);
}

function isMap(v: CborValue | undefined): v is CborMap {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** The map inside a DATA body, with exactly `required` and at most `optional` more keys. */
function openBody(
  body: CborValue,
  what: string,
  required: readonly string[],
  optional: readonly string[] = [],
): CborMap {
  if (!(body instanceof Uint8Array)) throw invalid(`${what} body is not a byte string`);
  let value: CborValue;
  try {
    value = decodeStrictCbor(body, MAX_DEPTH);
  } catch {
    throw invalid(`${what} body is not strict CBOR`);
  }
  return exactMap(value, what, required, optional);
}

function exactMap(
  value: CborValue | undefined,
  what: string,
  required: readonly string[],
  optional: readonly string[] = [],
): CborMap {
  if (!isMap(value)) throw invalid(`${what} is not a map`);
  for (const key of Object.keys(value)) {
    if (!required.includes(key) && !optional.includes(key)) throw invalid(`${what}: unknown key`);
  }
  for (const key of required) {
    if (!(key in value)) throw invalid(`${what}: missing ${key}`);
  }
  return value;
}

function bytesOf(v: CborValue | undefined, what: string, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) {
    throw invalid(`${what} must be ${min === max ? `${min}` : `${min}..${max}`} bytes`);
  }
  // A plain view (the decoder may hand out Buffers): what the service gets compares as bytes.
  return new Uint8Array(v.buffer, v.byteOffset, v.length);
}

function uint32(v: CborValue | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw invalid(`${what} must be an unsigned 32-bit integer`);
  }
  return v;
}

/**
 * True when `v` is a `user@domain` address in its one canonical spelling (no scheme, no device):
 * a second spelling of one user would be a second identity in every check that compares them.
 */
export function isCanonicalAddress(v: unknown): v is string {
  if (typeof v !== 'string' || v.includes(':') || v.includes('/')) return false;
  try {
    return formatAddress(parseAddress(v)) === v;
  } catch {
    return false;
  }
}

/** True when `v` is a `user@domain/deviceId` in its canonical spelling. */
export function isCanonicalDevice(v: unknown): v is string {
  if (typeof v !== 'string' || v.includes(':')) return false;
  try {
    return formatDeviceAddress(parseDeviceAddress(v)) === v;
  } catch {
    return false;
  }
}

/** The `user@domain` of a canonical device address. */
export function ownerOf(device: string): string {
  return formatAddress(parseDeviceAddress(device).address);
}

function address(v: CborValue | undefined, what: string): string {
  if (!isCanonicalAddress(v)) throw invalid(`${what} must be a canonical user@domain`);
  return v;
}

/** The domain of a canonical address. */
export function domainOf(canonical: string): string {
  return parseAddress(canonical).domain;
}

function oneOf<T extends string>(v: CborValue | undefined, values: readonly T[], what: string): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw invalid(`${what} must be one of ${values.join(', ')}`);
  }
  return v as T;
}

// ── Kind 2: presence ─────────────────────────────────────────────────────────────────────────

/** A presence object and the receiving domain's watchers to fan it out to. */
export interface PresenceBody {
  /** The sealed presence object, as the presentity's device published it. */
  readonly object: Uint8Array;
  /** Canonical `user@domain` addresses, all of the receiving domain, no repeats. */
  readonly watchers: readonly string[];
}

/** Encodes a kind-2 body. */
export function encodePresenceBody(body: PresenceBody): Uint8Array {
  return encodeStrictCbor({ object: body.object, watchers: [...body.watchers] });
}

/**
 * Bytes a presence body with this object and these watchers takes, exactly (the encoder's
 * figure is not needed: CBOR lengths are known), so that the sender can split a long list.
 */
export function presenceBodySize(objectBytes: number, watchers: readonly string[]): number {
  // map(2) + "object" + bstr + "watchers" + array header + each text.
  let size = 1 + 7 + headLength(objectBytes) + objectBytes + 9 + headLength(watchers.length);
  for (const w of watchers) size += textLength(w);
  return size;
}

/** Bytes of one watcher's entry in a presence body. */
export function textLength(text: string): number {
  const n = Buffer.byteLength(text, 'utf8');
  return headLength(n) + n;
}

function headLength(n: number): number {
  if (n < 24) return 1;
  if (n < 0x100) return 2;
  if (n < 0x10000) return 3;
  if (n < 0x1_0000_0000) return 5;
  return 9;
}

/** Decodes a kind-2 body strictly (the object is not parsed here). */
export function decodePresenceBody(body: CborValue): PresenceBody {
  const map = openBody(body, 'presence', ['object', 'watchers']);
  const object = bytesOf(map.object, 'presence object', 1, MAX_OBJECT_BYTES);
  const list = map.watchers;
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_PRESENCE_WATCHERS) {
    throw invalid(`presence watchers must list 1..${MAX_PRESENCE_WATCHERS} addresses`);
  }
  const watchers = (list as readonly CborValue[]).map((w) => address(w, 'presence watcher'));
  if (new Set(watchers).size !== watchers.length) throw invalid('presence watchers repeat');
  return { object, watchers };
}

// ── Kind 3: subscription requests and decisions ──────────────────────────────────────────────

/** A kind-3 body: a watcher's request, or a presentity's decision. */
export type SubscriptionBody =
  | {
      readonly type: 'subscription';
      readonly presentity: string;
      readonly watcher: string;
      readonly action: WatcherAction;
    }
  | {
      readonly type: 'decision';
      readonly presentity: string;
      readonly watcher: string;
      readonly action: PresentityAction;
      /** The presentity's latest presence object, only with `approve`. */
      readonly presence?: Uint8Array;
    };

const WATCHER_ACTIONS: readonly WatcherAction[] = ['request', 'cancel'];
const PRESENTITY_ACTIONS: readonly PresentityAction[] = ['approve', 'deny', 'revoke'];

/** Encodes a kind-3 body. */
export function encodeSubscriptionBody(body: SubscriptionBody): Uint8Array {
  const map: Record<string, CborValue> = {
    type: body.type,
    presentity: body.presentity,
    watcher: body.watcher,
    action: body.action,
  };
  if (body.type === 'decision' && body.presence !== undefined) map.presence = body.presence;
  return encodeStrictCbor(map);
}

/** Decodes a kind-3 body strictly. */
export function decodeSubscriptionBody(body: CborValue): SubscriptionBody {
  const keys = ['type', 'presentity', 'watcher', 'action'];
  const map = openBody(body, 'subscription', keys, ['presence']);
  const type = oneOf(map.type, ['subscription', 'decision'] as const, 'subscription type');
  const presentity = address(map.presentity, 'presentity');
  const watcher = address(map.watcher, 'watcher');
  if (presentity === watcher) throw invalid('a user does not watch itself');
  if (type === 'subscription') {
    if (map.presence !== undefined) throw invalid('subscription: unknown key');
    return { type, presentity, watcher, action: oneOf(map.action, WATCHER_ACTIONS, 'action') };
  }
  const action = oneOf(map.action, PRESENTITY_ACTIONS, 'action');
  if (map.presence === undefined) return { type, presentity, watcher, action };
  if (action !== 'approve') throw invalid('only an approval carries presence');
  const presence = bytesOf(map.presence, 'decision presence', 1, MAX_OBJECT_BYTES);
  return { type, presentity, watcher, action, presence };
}

// ── Kinds 4 and 5: look-ups ──────────────────────────────────────────────────────────────────

/** What a look-up asks for: a user's devices or bundles, or the receiving domain's key log. */
export type LookupOp = 'devices' | 'bundles' | 'log';

/** A kind-4 body. */
export type LookupRequest =
  | {
      /** 16 random bytes; the answer repeats them. */
      readonly rid: Uint8Array;
      readonly op: 'devices' | 'bundles';
      /** The user looked up: of the receiving domain. */
      readonly address: string;
      /** The user who asks: of the sending domain. */
      readonly asker: string;
    }
  | {
      readonly rid: Uint8Array;
      /** The receiving domain's key log (the domain is the peer's own: nothing to name). */
      readonly op: 'log';
      /** The tree size the asking client trusts (client protocol §5.6). */
      readonly since: number;
      /** The entry to include with its inclusion proof, if any. */
      readonly index?: number;
    };

/** Encodes a kind-4 body. */
export function encodeLookupRequest(request: LookupRequest): Uint8Array {
  if (request.op === 'log') {
    return encodeStrictCbor({
      rid: request.rid,
      op: request.op,
      since: request.since,
      ...(request.index === undefined ? {} : { index: request.index }),
    });
  }
  return encodeStrictCbor({
    rid: request.rid,
    op: request.op,
    address: request.address,
    asker: request.asker,
  });
}

/** Decodes a kind-4 body strictly: the keys are those of its `op`, exactly. */
export function decodeLookupRequest(body: CborValue): LookupRequest {
  const head = openBody(body, 'look-up', ['rid', 'op'], ['address', 'asker', 'since', 'index']);
  const rid = bytesOf(head.rid, 'rid', LOOKUP_ID_BYTES, LOOKUP_ID_BYTES);
  const op = oneOf(head.op, ['devices', 'bundles', 'log'] as const, 'op');
  if (op === 'log') {
    const map = exactMap(head, 'log look-up', ['rid', 'op', 'since'], ['index']);
    const since = uint32(map.since, 'since');
    return map.index === undefined
      ? { rid, op, since }
      : { rid, op, since, index: uint32(map.index, 'index') };
  }
  const map = exactMap(head, 'look-up', ['rid', 'op', 'address', 'asker']);
  return { rid, op, address: address(map.address, 'address'), asker: address(map.asker, 'asker') };
}

/** A kind-5 body: the answer to one look-up, or the code it failed with. */
export type LookupAnswer =
  | { readonly rid: Uint8Array; readonly ok: DevicesAnswer | readonly BundleAnswer[] | LogAnswer }
  | { readonly rid: Uint8Array; readonly error: string };

function devicesValue(answer: DevicesAnswer): CborValue {
  return {
    deviceList: answer.deviceList,
    devices: answer.devices.map((d) => ({
      deviceId: d.deviceId,
      identityKey: d.identityKey,
      enrolment: d.enrolment,
    })),
  };
}

function bundleValue(b: BundleAnswer): CborValue {
  const map: Record<string, CborValue> = {
    device: b.device,
    identityKey: b.identityKey,
    signedPrekey: {
      id: b.signedPrekey.id,
      publicKey: b.signedPrekey.publicKey,
      signature: b.signedPrekey.signature,
    },
  };
  if (b.oneTimePrekey !== undefined) {
    map.oneTimePrekey = { id: b.oneTimePrekey.id, publicKey: b.oneTimePrekey.publicKey };
  }
  return map;
}

/** Encodes a kind-5 body. */
export function encodeLookupAnswer(
  answer:
    | { readonly rid: Uint8Array; readonly op: 'devices'; readonly ok: DevicesAnswer }
    | { readonly rid: Uint8Array; readonly op: 'bundles'; readonly ok: readonly BundleAnswer[] }
    | { readonly rid: Uint8Array; readonly op: 'log'; readonly ok: LogAnswer }
    | { readonly rid: Uint8Array; readonly error: string },
): Uint8Array {
  if ('error' in answer) return encodeStrictCbor({ rid: answer.rid, error: answer.error });
  const ok =
    answer.op === 'devices'
      ? devicesValue(answer.ok)
      : answer.op === 'bundles'
        ? answer.ok.map(bundleValue)
        : logValue(answer.ok);
  return encodeStrictCbor({ rid: answer.rid, ok });
}

function logValue(answer: LogAnswer): CborValue {
  const map: Record<string, CborValue> = {
    head: answer.head,
    consistency: [...answer.consistency],
  };
  if (answer.entry !== undefined) map.entry = answer.entry;
  if (answer.inclusion !== undefined) map.inclusion = [...answer.inclusion];
  return map;
}

/** The request id of a kind-5 body, before its answer is checked against what was asked. */
export function decodeLookupAnswerHead(body: CborValue): { rid: Uint8Array; map: CborMap } {
  const map = openBody(body, 'look-up answer', ['rid'], ['ok', 'error']);
  const rid = bytesOf(map.rid, 'rid', LOOKUP_ID_BYTES, LOOKUP_ID_BYTES);
  if ((map.ok === undefined) === (map.error === undefined)) {
    throw invalid('look-up answer needs exactly one of ok and error');
  }
  return { rid, map };
}

/** The error code of an answer, if it is one: an `ERR_*` code, else malformed. */
export function answerError(map: CborMap): string | null {
  if (map.error === undefined) return null;
  if (typeof map.error !== 'string' || !/^ERR_[A-Z_]{1,48}$/.test(map.error)) {
    throw invalid('look-up error must be an ERR_* code');
  }
  return map.error;
}

/** Decodes the `ok` of a devices answer strictly. */
export function decodeDevicesAnswer(value: CborValue | undefined): DevicesAnswer {
  const map = exactMap(value, 'devices answer', ['deviceList', 'devices']);
  const deviceList =
    map.deviceList === null
      ? null
      : bytesOf(map.deviceList, 'deviceList', 1, MAX_LOOKUP_TRUST_BYTES);
  const list = map.devices;
  if (!Array.isArray(list) || list.length > MAX_LOOKUP_DEVICES) {
    throw invalid(`devices must list at most ${MAX_LOOKUP_DEVICES}`);
  }
  const devices = (list as readonly CborValue[]).map((item) => {
    const d = exactMap(item, 'device', ['deviceId', 'identityKey', 'enrolment']);
    if (!isValidDeviceId(d.deviceId)) throw invalid('deviceId');
    return {
      deviceId: d.deviceId,
      identityKey: bytesOf(d.identityKey, 'identityKey', 32, 32),
      enrolment:
        d.enrolment === null ? null : bytesOf(d.enrolment, 'enrolment', 1, MAX_LOOKUP_TRUST_BYTES),
    };
  });
  if (new Set(devices.map((d) => d.deviceId)).size !== devices.length) {
    throw invalid('deviceId repeats');
  }
  return { deviceList, devices };
}

/**
 * Decodes the `ok` of a bundles answer strictly. Whether each device belongs to the user asked
 * about is the caller's check (it is a peer's misbehaviour, not a malformed body).
 */
export function decodeBundlesAnswer(value: CborValue | undefined): readonly BundleAnswer[] {
  if (!Array.isArray(value) || value.length > MAX_LOOKUP_DEVICES) {
    throw invalid(`bundles must list at most ${MAX_LOOKUP_DEVICES}`);
  }
  const seen = new Set<string>();
  return (value as readonly CborValue[]).map((item) => {
    const b = exactMap(
      item,
      'bundle',
      ['device', 'identityKey', 'signedPrekey'],
      ['oneTimePrekey'],
    );
    const device = b.device;
    if (!isCanonicalDevice(device)) {
      throw invalid('bundle device must be a canonical user@domain/deviceId');
    }
    if (seen.has(device)) throw invalid('bundle device repeats');
    seen.add(device);
    const spk = exactMap(b.signedPrekey, 'signedPrekey', ['id', 'publicKey', 'signature']);
    const bundle: BundleAnswer = {
      device,
      identityKey: bytesOf(b.identityKey, 'identityKey', 32, 32),
      signedPrekey: {
        id: uint32(spk.id, 'signedPrekey id'),
        publicKey: bytesOf(spk.publicKey, 'signedPrekey publicKey', 32, 32),
        signature: bytesOf(spk.signature, 'signedPrekey signature', 64, 64),
      },
    };
    if (b.oneTimePrekey === undefined) return bundle;
    const otk = exactMap(b.oneTimePrekey, 'oneTimePrekey', ['id', 'publicKey']);
    return {
      ...bundle,
      oneTimePrekey: {
        id: uint32(otk.id, 'oneTimePrekey id'),
        publicKey: bytesOf(otk.publicKey, 'oneTimePrekey publicKey', 32, 32),
      },
    };
  });
}

function proof(v: CborValue | undefined, what: string): Uint8Array[] {
  if (!Array.isArray(v) || v.length > MAX_LOG_PROOF_HASHES) {
    throw invalid(`${what} must list at most ${MAX_LOG_PROOF_HASHES} hashes`);
  }
  return (v as readonly CborValue[]).map((h) =>
    bytesOf(h, `${what} hash`, KEYLOG_HASH_BYTES, KEYLOG_HASH_BYTES),
  );
}

/**
 * Decodes the `ok` of a key-log answer strictly: a head of bounded size, proofs of at most
 * {@link MAX_LOG_PROOF_HASHES} 32-byte hashes, an entry of at most the log's own entry bound, and
 * the entry and its inclusion proof together or not at all. Whether the entry was asked for is
 * the caller's check; the head's signature and the proofs are the client's (it pins the key).
 */
export function decodeLogAnswer(value: CborValue | undefined): LogAnswer {
  const map = exactMap(value, 'log answer', ['head', 'consistency'], ['entry', 'inclusion']);
  const answer = {
    head: bytesOf(map.head, 'head', 1, MAX_LOG_HEAD_BYTES),
    consistency: proof(map.consistency, 'consistency'),
  };
  if ((map.entry === undefined) !== (map.inclusion === undefined)) {
    throw invalid('log answer needs both entry and inclusion, or neither');
  }
  if (map.entry === undefined) return answer;
  return {
    ...answer,
    entry: bytesOf(map.entry, 'entry', 1, KEYLOG_MAX_ENTRY_BYTES),
    inclusion: proof(map.inclusion, 'inclusion'),
  };
}
