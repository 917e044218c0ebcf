/** Shared fixtures for the seal tests: devices with sessions, mutation helpers. */
import { expect } from 'vitest';
import { isImppError, type ImppErrorCode } from '../../src/errors.js';
import { SealDevice, sealMessage, openMessage } from '../../src/seal/index.js';
import { utf8 } from '../../src/crypto/index.js';

export const ALICE = 'alice@example.org/phone';
export const ALICE2 = 'alice@example.org/laptop';
export const BOB = 'bob@example.org/laptop';
export const CAROL = 'carol@example.net/tablet';

/** A device with few one-time prekeys, to keep tests fast. */
export function device(address: string, oneTimePrekeys = 4): SealDevice {
  return SealDevice.create(address, { oneTimePrekeys });
}

/** Alice and Bob with an established session (one message each way). */
export function pair(): { alice: SealDevice; bob: SealDevice } {
  const alice = device(ALICE);
  const bob = device(BOB);
  openMessage(
    bob,
    sealMessage(alice, { to: BOB, bundle: bob.bundle() }, 'text/plain', utf8('hi')).bytes,
  );
  openMessage(alice, sealMessage(bob, { to: ALICE }, 'text/plain', utf8('hello')).bytes);
  return { alice, bob };
}

/** Asserts that `fn` throws an ImppError with one of `codes`; returns the code. */
export function expectCode(fn: () => unknown, ...codes: ImppErrorCode[]): ImppErrorCode {
  try {
    fn();
  } catch (e) {
    if (isImppError(e) && codes.includes(e.code)) return e.code;
    throw new Error(`expected ${codes.join('|')}, got ${String(e)}`, { cause: e });
  }
  expect.fail(`expected ${codes.join('|')}, but nothing was thrown`);
}

/** `true` when `needle` occurs in `haystack`. */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) !== -1;
}

/** Flips one bit. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const i = Math.floor(bit / 8) % out.length;
  out[i] = (out[i] ?? 0) ^ (1 << (bit % 8));
  return out;
}
