/**
 * T13, the client's side (docs/security-model.md): the SDK drops what a user this account denied
 * sends, because for a sender of another domain the server cannot (sealed sender; docs/protocol.md
 * Server-to-server §5.1). `impp threats` T13 compares the server's answers only and has no check of
 * this yet, so this file shows, at the SDK level, that the check can fail: with `deniedSenderCheck`
 * off (test-only switch, src/client/defences.ts) the same message is delivered. The server's own
 * block is switched off too (`uniformBlockedAnswers`), so that the client's check is alone, as it
 * is for a remote sender (test/client/denied-senders.test.ts has the two-domain cases).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrustWarningEvent } from '../../src/client/client.js';
import { WEAKEN_CLIENT } from '../../src/client/defences.js';
import { type Env, next, quiet, startEnv } from '../service/harness.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ defences: { uniformBlockedAnswers: false } });
});
afterAll(async () => {
  await env.close();
});

describe('T13 in the SDK: a denied sender’s message is dropped only while the check is on', () => {
  for (const deniedSenderCheck of [true, false]) {
    it(`deniedSenderCheck ${deniedSenderCheck ? 'on: dropped' : 'off: delivered (VULNERABLE)'}`, async () => {
      // Two pairs of the harness's four accounts, one pair per run.
      const [recipient, sender] = deniedSenderCheck ? ['alice', 'bob'] : ['carol', 'dave'];
      const owner = env.client(recipient, 'desk', { [WEAKEN_CLIENT]: { deniedSenderCheck } });
      const denied = env.client(sender, 'desk');
      const got: string[] = [];
      const warned: TrustWarningEvent[] = [];
      owner.on('message', (m) => got.push(m.text));
      owner.on('trustWarning', (w) => warned.push(w));
      await owner.connect();
      await denied.connect();
      expect(await denied.subscribe(owner.address)).toBe('pending');
      expect(await owner.deny(denied.address)).toBe('denied');
      const arrived = deniedSenderCheck ? next(owner, 'trustWarning') : next(owner, 'message');
      await denied.sendMessage(owner.address, 'unwanted');
      await arrived;
      await quiet(50);
      if (deniedSenderCheck) {
        expect(got).toEqual([]);
        expect(warned).toEqual([
          { kind: 'blocked-sender', address: denied.address, device: `${denied.address}/desk` },
        ]);
      } else {
        expect(got).toEqual(['unwanted']);
        expect(warned).toEqual([]);
      }
    });
  }
});
