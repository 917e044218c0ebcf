/** Random bytes from libsodium's CSPRNG (`randombytes_buf`): the only randomness impp uses for keys and nonces. */
import { sodium } from './sodium.js';

/** `length` bytes from the operating system's CSPRNG via libsodium. */
export function randomBytes(length: number): Uint8Array {
  return sodium.randombytes_buf(length);
}
