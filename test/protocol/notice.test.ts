/**
 * The delivery-failure notice codec (src/protocol/notice.ts): the exact format, and refusal of
 * anything altered, so a client never acts on a notice it only half understands.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../src/crypto/index.js';
import { ImppError, isImppError } from '../../src/errors.js';
import {
  DELIVERY_NOTICE_VERSION,
  type DeliveryNotice,
  MAX_NOTICE_BYTES,
  decodeDeliveryNotice,
  encodeDeliveryNotice,
} from '../../src/protocol/notice.js';
import { type CborValue, encodeStrictCbor } from '../../src/transport/cbor-strict.js';

const notice: DeliveryNotice = {
  v: DELIVERY_NOTICE_VERSION,
  type: 'delivery-failure',
  messageId: new Uint8Array(16).fill(7),
  recipient: 'bob@b.example/phone',
  domain: 'b.example',
  reason: 'expired',
  code: 'ERR_TIMEOUT',
  queuedAt: 1_700_000_000_000,
  at: 1_700_000_100_000,
};

function codeOf(bytes: Uint8Array): string {
  try {
    decodeDeliveryNotice(bytes);
    return 'accepted';
  } catch (e) {
    return isImppError(e) ? e.code : 'other';
  }
}

describe('delivery-failure notice format', () => {
  it('round-trips, with keys in the format order', () => {
    const bytes = encodeDeliveryNotice(notice);
    expect(decodeDeliveryNotice(bytes)).toEqual(notice);
    // A map of nine text keys, the first being "v" (0xa9 0x61 0x76).
    expect([...bytes.subarray(0, 3)]).toEqual([0xa9, 0x61, 0x76]);
  });

  it('refuses an altered notice: another version as unsupported, the rest as invalid', () => {
    const altered: Record<string, CborValue>[] = [
      { ...notice, v: 2 },
      { ...notice, v: 'one' },
      { ...notice, type: 'receipt' },
      { ...notice, reason: 'lost' },
      { ...notice, messageId: new Uint8Array(8) },
      { ...notice, code: 'not a code' },
      { ...notice, at: -1 },
      { ...notice, queuedAt: 1.5 },
      { ...notice, domain: 'x'.repeat(254) },
      { ...notice, recipient: 'x'.repeat(1025) },
      { ...notice, extra: 1 },
    ];
    expect(altered.map((n) => codeOf(encodeStrictCbor(n)))).toEqual([
      'ERR_VERSION_UNSUPPORTED',
      ...Array<string>(10).fill('ERR_PAYLOAD_INVALID'),
    ]);
    const missing: Record<string, CborValue> = { ...notice };
    delete missing.at;
    expect(() => decodeDeliveryNotice(encodeStrictCbor(missing))).toThrow(ImppError);
    expect(codeOf(randomBytes(20))).toBe('ERR_PAYLOAD_INVALID');
    expect(codeOf(encodeStrictCbor([1, 2]))).toBe('ERR_PAYLOAD_INVALID');
    expect(codeOf(new Uint8Array(0))).toBe('ERR_PAYLOAD_INVALID');
  });

  it('fits well inside the bound a queue puts on notices, even at its longest fields', () => {
    const longest = encodeDeliveryNotice({
      ...notice,
      recipient: 'r'.repeat(1024),
      domain: 'd'.repeat(253),
      code: `ERR_${'X'.repeat(48)}` as DeliveryNotice['code'],
    });
    expect(longest.length).toBeLessThan(MAX_NOTICE_BYTES / 2);
  });
});
