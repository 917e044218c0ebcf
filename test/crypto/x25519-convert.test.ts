import { describe, expect, it } from 'vitest';
import {
  ed25519PublicKeyToX25519,
  ed25519SecretKeyToX25519,
  generateDhKeyPair,
  generateSigningKeyPair,
  SecretBytes,
  toHex,
  x25519,
} from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';

describe('ed25519SecretKeyToX25519', () => {
  it('matches the public-key conversion: X25519 base point times the converted scalar', () => {
    for (let i = 0; i < 5; i++) {
      const id = generateSigningKeyPair();
      const sk = ed25519SecretKeyToX25519(id.secretKey);
      const peer = generateDhKeyPair();
      const viaSecret = x25519(sk, peer.publicKey);
      const viaPublic = x25519(peer.secretKey, ed25519PublicKeyToX25519(id.publicKey));
      expect(toHex(viaSecret.expose())).toBe(toHex(viaPublic.expose()));
    }
  });

  it('is deterministic for a seed and returns a redacted secret', () => {
    const seed = new Uint8Array(32).fill(7);
    const a = ed25519SecretKeyToX25519(generateSigningKeyPair(seed).secretKey);
    const b = ed25519SecretKeyToX25519(generateSigningKeyPair(seed).secretKey);
    expect(toHex(a.expose())).toBe(toHex(b.expose()));
    expect(JSON.stringify({ a })).toBe('{"a":"[redacted]"}');
  });

  it('refuses a key of the wrong length', () => {
    try {
      ed25519SecretKeyToX25519(new SecretBytes(new Uint8Array(32)));
      expect.fail('accepted a 32-byte Ed25519 secret key');
    } catch (e) {
      expect(isImppError(e, 'ERR_CRYPTO_INVALID_KEY')).toBe(true);
    }
  });
});
