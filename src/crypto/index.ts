/**
 * impp's crypto hygiene layer: the only module that talks to libsodium. Everything above it
 * (trust, seal, auth) composes these functions and never calls libsodium itself.
 */
export * from './aead.js';
export * from './bytes.js';
export * from './ed25519.js';
export * from './hash.js';
export * from './random.js';
export * from './secret.js';
export * from './x25519.js';
