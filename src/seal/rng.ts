/**
 * The random source of the seal layer. Production code always uses the OS CSPRNG (src/crypto/random.ts); only
 * the hazmat entry point (src/seal/hazmat.ts) lets a caller inject a deterministic source, for
 * known-answer vectors.
 */
import { randomBytes } from '../crypto/index.js';

/** Returns `length` fresh random bytes. */
export type RandomSource = (length: number) => Uint8Array;

/** Returns milliseconds since the epoch. */
export type Clock = () => number;

/** The OS CSPRNG via src/crypto `randomBytes`. */
export const systemRandom: RandomSource = randomBytes;

/** `Date.now`. */
export const systemClock: Clock = () => Date.now();
