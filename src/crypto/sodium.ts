/**
 * The single place libsodium is loaded and initialised.
 *
 * libsodium.js is WebAssembly and must finish `ready` before any call. Waiting here with a
 * top-level await means every module that imports `sodium` gets an initialised library, and
 * there is no "forgot to await init" failure mode anywhere else in the code base.
 *
 * We use the `-sumo` build of libsodium-wrappers: the same library and maintainers, with the full
 * API (HMAC-SHA-256, SHA-256, ChaCha20-Poly1305 IETF) that SCRAM, HKDF and the Wycheproof checks
 * need. Nothing outside `src/crypto/` imports libsodium directly.
 */
import sodiumModule from 'libsodium-wrappers-sumo';

await sodiumModule.ready;

export const sodium = sodiumModule;
export type Sodium = typeof sodiumModule;
