/**
 * The Double Ratchet ("The Double Ratchet Algorithm", Perrin & Marlinspike, revision 1,
 * 2016-11-20), without header encryption, with the recommended algorithms of §5.2 except the
 * AEAD, which is XChaCha20-Poly1305 keyed from the message key by HKDF.
 *
 * The functions here mutate the state they are given, exactly like the pseudocode of §3. The
 * session layer never hands them its live state: it works on {@link cloneRatchetState} and
 * commits only after the whole open has succeeded, so (§3.5) "if an exception is raised … the
 * message is discarded and changes to the state object are discarded".
 */
import {
  generateDhKeyPair,
  hkdfSha256,
  hmacSha256,
  SecretBytes,
  toHex,
  utf8,
  wipe,
  x25519,
  xchachaOpen,
  xchachaSeal,
  type DhKeyPair,
} from '../crypto/index.js';
import { ImppError } from '../errors.js';
import {
  bytesField,
  encodeCbor,
  expectMap,
  uintField,
  type CborMap,
  type CborValue,
} from './cbor.js';
import {
  INFO_RATCHET_MESSAGE,
  INFO_RATCHET_ROOT,
  MAX_SKIP,
  MAX_SKIPPED_KEYS,
} from './constants.js';
import type { RandomSource } from './rng.js';

/** Message header (§3.1 HEADER(dh_pair, pn, n)). */
export interface RatchetHeader {
  readonly dh: Uint8Array;
  readonly pn: number;
  readonly n: number;
}

/** A skipped message key (§3.2 MKSKIPPED), remembered with the chain it belongs to. */
interface SkippedKey {
  readonly dh: Uint8Array;
  readonly n: number;
  readonly mk: SecretBytes;
}

/** The state variables of §3.2. */
export interface RatchetState {
  /** DHs */
  dhSelf: DhKeyPair;
  /** DHr */
  dhRemote: Uint8Array | null;
  /** RK */
  rootKey: SecretBytes;
  /** CKs */
  sendChain: SecretBytes | null;
  /** CKr */
  recvChain: SecretBytes | null;
  /** Ns, Nr, PN */
  ns: number;
  nr: number;
  pn: number;
  /** MKSKIPPED, in insertion order (oldest first) so the global cap evicts the oldest. */
  skipped: Map<string, SkippedKey>;
}

/** Largest message number accepted in a header. */
const MAX_COUNTER = 0xffff_ffff;

function openFailed(): ImppError {
  return new ImppError('ERR_SEAL_OPEN_FAILED', 'sealed object could not be opened');
}

function freshDh(rng: RandomSource): DhKeyPair {
  const secret = rng(32);
  const kp = generateDhKeyPair(secret);
  wipe(secret);
  return kp;
}

/** §5.2 KDF_RK: HKDF with SK/RK as salt, the DH output as input key material, 64 bytes out. */
function kdfRk(rootKey: SecretBytes, dhOut: SecretBytes): [SecretBytes, SecretBytes] {
  const out = hkdfSha256(dhOut.expose(), rootKey.expose(), utf8(INFO_RATCHET_ROOT), 64);
  dhOut.wipe();
  const pair: [SecretBytes, SecretBytes] = [
    new SecretBytes(out.slice(0, 32)),
    new SecretBytes(out.slice(32)),
  ];
  wipe(out);
  return pair;
}

const ONE = Uint8Array.of(0x01);
const TWO = Uint8Array.of(0x02);

/** §5.2 KDF_CK: message key = HMAC(ck, 0x01), next chain key = HMAC(ck, 0x02). */
function kdfCk(chainKey: SecretBytes): [SecretBytes, SecretBytes] {
  const ck = chainKey.expose();
  return [new SecretBytes(hmacSha256(ck, TWO)), new SecretBytes(hmacSha256(ck, ONE))];
}

/** §5.2 ENCRYPT/DECRYPT keying: HKDF(mk) → 32-byte XChaCha20-Poly1305 key ‖ 24-byte nonce. */
function messageKeys(mk: SecretBytes): { key: SecretBytes; nonce: Uint8Array } {
  const okm = hkdfSha256(mk.expose(), new Uint8Array(0), utf8(INFO_RATCHET_MESSAGE), 56);
  const out = { key: new SecretBytes(okm.slice(0, 32)), nonce: okm.slice(32) };
  wipe(okm);
  return out;
}

/**
 * §3.3 RatchetInitAlice: the initiator's first DH ratchet step against Bob's signed prekey,
 * which is his initial ratchet key (§5.1 "Integration with X3DH").
 */
export function initRatchetInitiator(
  sharedKey: SecretBytes,
  remoteRatchetKey: Uint8Array,
  rng: RandomSource,
): RatchetState {
  const dhSelf = freshDh(rng);
  const [rootKey, sendChain] = kdfRk(sharedKey, x25519(dhSelf.secretKey, remoteRatchetKey));
  return {
    dhSelf,
    dhRemote: Uint8Array.from(remoteRatchetKey),
    rootKey,
    sendChain,
    recvChain: null,
    ns: 0,
    nr: 0,
    pn: 0,
    skipped: new Map(),
  };
}

/** §3.3 RatchetInitBob: the responder starts from its signed prekey pair and RK = SK. */
export function initRatchetResponder(
  sharedKey: SecretBytes,
  signedPrekey: DhKeyPair,
): RatchetState {
  return {
    dhSelf: copyKeyPair(signedPrekey),
    dhRemote: null,
    rootKey: new SecretBytes(Uint8Array.from(sharedKey.expose())),
    sendChain: null,
    recvChain: null,
    ns: 0,
    nr: 0,
    pn: 0,
    skipped: new Map(),
  };
}

/** Deterministic CBOR of a header: `{0: dh, 1: pn, 2: n}`. */
export function encodeRatchetHeader(header: RatchetHeader): Uint8Array {
  return encodeCbor(ratchetHeaderMap(header));
}

/** The header as a CBOR map. */
export function ratchetHeaderMap(header: RatchetHeader): Map<number, CborValue> {
  return new Map<number, CborValue>([
    [0, header.dh],
    [1, header.pn],
    [2, header.n],
  ]);
}

/** Reads a header map; malformed headers are `ERR_SEAL_MALFORMED`. */
export function readRatchetHeader(value: CborValue | undefined): RatchetHeader {
  const m = expectMap(value, [0, 1, 2]);
  return {
    dh: bytesField(m, 0, 32),
    pn: uintField(m, 1, MAX_COUNTER),
    n: uintField(m, 2, MAX_COUNTER),
  };
}

/**
 * §3.4 RatchetEncrypt. `associatedData` receives the encoded header and returns the AD to bind
 * (CONCAT(AD, header) in the specification).
 */
export function ratchetEncrypt(
  state: RatchetState,
  plaintext: Uint8Array,
  associatedData: (headerBytes: Uint8Array) => Uint8Array,
): { header: RatchetHeader; ciphertext: Uint8Array } {
  if (state.sendChain === null) {
    throw new ImppError('ERR_SEAL_SESSION_STATE', 'session cannot send before it has received');
  }
  const [nextChain, mk] = kdfCk(state.sendChain);
  state.sendChain.wipe();
  state.sendChain = nextChain;
  const header: RatchetHeader = { dh: state.dhSelf.publicKey, pn: state.pn, n: state.ns };
  state.ns += 1;
  const { key, nonce } = messageKeys(mk);
  mk.wipe();
  const ciphertext = xchachaSeal(
    key,
    nonce,
    plaintext,
    associatedData(encodeRatchetHeader(header)),
  );
  key.wipe();
  return { header, ciphertext };
}

function skippedId(dh: Uint8Array, n: number): string {
  return `${toHex(dh)}:${n}`;
}

/** §3.5 SkipMessageKeys, with the per-chain bound MAX_SKIP and a global cap (oldest evicted). */
function skipMessageKeys(state: RatchetState, until: number): void {
  if (state.nr + MAX_SKIP < until) throw openFailed();
  if (state.recvChain === null || state.dhRemote === null) return;
  while (state.nr < until) {
    const [nextChain, mk] = kdfCk(state.recvChain);
    state.recvChain.wipe();
    state.recvChain = nextChain;
    state.skipped.set(skippedId(state.dhRemote, state.nr), {
      dh: state.dhRemote,
      n: state.nr,
      mk,
    });
    state.nr += 1;
  }
  // §6.4: stored skipped keys are a liability; keep at most MAX_SKIPPED_KEYS, oldest out first.
  while (state.skipped.size > MAX_SKIPPED_KEYS) {
    const oldest = state.skipped.keys().next().value;
    if (oldest === undefined) break;
    state.skipped.get(oldest)?.mk.wipe();
    state.skipped.delete(oldest);
  }
}

/** §3.5 DHRatchet. */
function dhRatchet(state: RatchetState, header: RatchetHeader, rng: RandomSource): void {
  state.pn = state.ns;
  state.ns = 0;
  state.nr = 0;
  state.dhRemote = Uint8Array.from(header.dh);
  const [rk1, recv] = kdfRk(state.rootKey, x25519(state.dhSelf.secretKey, state.dhRemote));
  state.rootKey.wipe();
  state.recvChain?.wipe();
  state.recvChain = recv;
  state.dhSelf.secretKey.wipe();
  state.dhSelf = freshDh(rng);
  const [rk2, send] = kdfRk(rk1, x25519(state.dhSelf.secretKey, state.dhRemote));
  rk1.wipe();
  state.rootKey = rk2;
  state.sendChain?.wipe();
  state.sendChain = send;
}

function decryptWith(mk: SecretBytes, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array {
  const { key, nonce } = messageKeys(mk);
  try {
    return xchachaOpen(key, nonce, ciphertext, ad);
  } catch {
    throw openFailed();
  } finally {
    key.wipe();
  }
}

/**
 * §3.5 RatchetDecrypt. Mutates `state` (pass a clone); any failure is `ERR_SEAL_OPEN_FAILED`.
 * Ratchet key generation (DHRatchet) draws from `rng`.
 */
export function ratchetDecrypt(
  state: RatchetState,
  header: RatchetHeader,
  ciphertext: Uint8Array,
  associatedData: Uint8Array,
  rng: RandomSource,
): Uint8Array {
  const id = skippedId(header.dh, header.n);
  const skipped = state.skipped.get(id);
  if (skipped !== undefined) {
    // TrySkippedMessageKeys: the key is deleted only when the message has opened.
    const plaintext = decryptWith(skipped.mk, ciphertext, associatedData);
    skipped.mk.wipe();
    state.skipped.delete(id);
    return plaintext;
  }
  const sameChain = state.dhRemote !== null && bytesEq(header.dh, state.dhRemote);
  if (!sameChain) {
    skipMessageKeys(state, header.pn);
    dhRatchet(state, header, rng);
  }
  skipMessageKeys(state, header.n);
  if (state.recvChain === null) throw openFailed();
  const [nextChain, mk] = kdfCk(state.recvChain);
  state.recvChain.wipe();
  state.recvChain = nextChain;
  state.nr += 1;
  try {
    return decryptWith(mk, ciphertext, associatedData);
  } finally {
    mk.wipe();
  }
}

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function copySecret(s: SecretBytes): SecretBytes {
  return new SecretBytes(Uint8Array.from(s.expose()));
}

function copyKeyPair(kp: DhKeyPair): DhKeyPair {
  return { publicKey: Uint8Array.from(kp.publicKey), secretKey: copySecret(kp.secretKey) };
}

/** A deep copy with its own secret buffers, to work on during an open. */
export function cloneRatchetState(state: RatchetState): RatchetState {
  const skipped = new Map<string, SkippedKey>();
  for (const [k, v] of state.skipped) skipped.set(k, { dh: v.dh, n: v.n, mk: copySecret(v.mk) });
  return {
    dhSelf: copyKeyPair(state.dhSelf),
    dhRemote: state.dhRemote === null ? null : Uint8Array.from(state.dhRemote),
    rootKey: copySecret(state.rootKey),
    sendChain: state.sendChain === null ? null : copySecret(state.sendChain),
    recvChain: state.recvChain === null ? null : copySecret(state.recvChain),
    ns: state.ns,
    nr: state.nr,
    pn: state.pn,
    skipped,
  };
}

/** Wipes every secret of a state that is being discarded. */
export function wipeRatchetState(state: RatchetState): void {
  state.dhSelf.secretKey.wipe();
  state.rootKey.wipe();
  state.sendChain?.wipe();
  state.recvChain?.wipe();
  for (const s of state.skipped.values()) s.mk.wipe();
}

/** Number of skipped message keys held. */
export function skippedKeyCount(state: RatchetState): number {
  return state.skipped.size;
}

/**
 * The state as a CBOR map (docs/formats.md, "Session state"): keys 0 DHs secret, 1 DHs public,
 * 2 DHr (optional), 3 RK, 4 CKs (optional), 5 CKr (optional), 6 Ns, 7 Nr, 8 PN, 9 skipped keys
 * as `[dh, n, mk]` oldest first.
 */
export function ratchetStateToCbor(state: RatchetState): Map<number, CborValue> {
  const m = new Map<number, CborValue>([
    [0, state.dhSelf.secretKey.expose()],
    [1, state.dhSelf.publicKey],
  ]);
  if (state.dhRemote !== null) m.set(2, state.dhRemote);
  m.set(3, state.rootKey.expose());
  if (state.sendChain !== null) m.set(4, state.sendChain.expose());
  if (state.recvChain !== null) m.set(5, state.recvChain.expose());
  m.set(6, state.ns);
  m.set(7, state.nr);
  m.set(8, state.pn);
  m.set(
    9,
    [...state.skipped.values()].map((s) => [s.dh, s.n, s.mk.expose()]),
  );
  return m;
}

/** Inverse of {@link ratchetStateToCbor}; throws `ERR_SEAL_MALFORMED` on any inconsistency. */
export function ratchetStateFromCbor(value: CborValue | undefined): RatchetState {
  const m: CborMap = expectMap(value, [0, 1, 3, 6, 7, 8, 9], [2, 4, 5]);
  const skippedList = m.get(9);
  if (!Array.isArray(skippedList) || skippedList.length > MAX_SKIPPED_KEYS) {
    throw new ImppError('ERR_SEAL_MALFORMED', 'sealed object is malformed: skipped keys');
  }
  const skipped = new Map<string, SkippedKey>();
  for (const entry of skippedList as readonly CborValue[]) {
    if (!Array.isArray(entry) || entry.length !== 3) {
      throw new ImppError('ERR_SEAL_MALFORMED', 'sealed object is malformed: skipped key');
    }
    const e = new Map<number, CborValue>((entry as CborValue[]).map((v, i) => [i, v]));
    const dh = bytesField(e, 0, 32);
    const n = uintField(e, 1, MAX_COUNTER);
    skipped.set(skippedId(dh, n), { dh, n, mk: new SecretBytes(bytesField(e, 2, 32)) });
  }
  return {
    dhSelf: { secretKey: new SecretBytes(bytesField(m, 0, 32)), publicKey: bytesField(m, 1, 32) },
    dhRemote: m.has(2) ? bytesField(m, 2, 32) : null,
    rootKey: new SecretBytes(bytesField(m, 3, 32)),
    sendChain: m.has(4) ? new SecretBytes(bytesField(m, 4, 32)) : null,
    recvChain: m.has(5) ? new SecretBytes(bytesField(m, 5, 32)) : null,
    ns: uintField(m, 6, MAX_COUNTER),
    nr: uintField(m, 7, MAX_COUNTER),
    pn: uintField(m, 8, MAX_COUNTER),
    skipped,
  };
}
