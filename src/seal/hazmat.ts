/**
 * HAZMAT: deterministic entry points for known-answer vectors and benchmarks only.
 *
 * A device created here draws every key, nonce and message id from the given random source and
 * reads time from the given clock. With a fixed source, sealed objects repeat byte for byte —
 * which is the point for test vectors and a catastrophe anywhere else (nonce and key reuse).
 * Nothing in src/ imports this module, and the package does not export it.
 */
import { sha256 } from '../crypto/index.js';
import type { DeviceAddress } from '../trust/address.js';
import type { Clock, RandomSource } from './rng.js';
import { createDeviceWith, restoreState, SealDevice, type CreateDeviceOptions } from './session.js';

export type { Clock, RandomSource } from './rng.js';

/**
 * Creates a device whose randomness and clock are injected.
 *
 * @example
 * ```ts
 * const d = createDeviceForVectors('alice@example.org/phone', {}, deterministicRandom(seed), () => 1_700_000_000_000);
 * ```
 */
export function createDeviceForVectors(
  device: string | DeviceAddress,
  options: CreateDeviceOptions,
  rng: RandomSource,
  clock: Clock,
): SealDevice {
  return createDeviceWith(device, options, rng, clock);
}

/** Restores a device with an injected random source and clock. */
export function restoreDeviceForVectors(
  bytes: Uint8Array,
  rng: RandomSource,
  clock: Clock,
): SealDevice {
  return new SealDevice(restoreState(bytes, rng, clock));
}

/**
 * A deterministic byte stream for vectors: block j of call c is
 * SHA-256(seed ‖ uint32be(c) ‖ uint32be(j)), concatenated and cut to length. Never use it for
 * anything but vectors.
 *
 * @example
 * ```ts
 * const rng = deterministicRandom(utf8('impp-kat-alice'));
 * ```
 */
export function deterministicRandom(seed: Uint8Array): RandomSource {
  const fixedSeed = Uint8Array.from(seed);
  let call = 0;
  return (length: number) => {
    call += 1;
    const out = new Uint8Array(length);
    for (let block = 0, offset = 0; offset < length; block++, offset += 32) {
      const input = new Uint8Array(fixedSeed.length + 8);
      input.set(fixedSeed);
      const view = new DataView(input.buffer);
      view.setUint32(fixedSeed.length, call);
      view.setUint32(fixedSeed.length + 4, block);
      out.set(sha256(input).subarray(0, Math.min(32, length - offset)), offset);
    }
    return out;
  };
}
