/**
 * End to end over real TLS on loopback: the client SDK against the server with a SQLite store.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MissingMessagesEvent, ReceivedMessage } from '../../src/client/client.js';
import { type Env, next, quiet, startEnv } from '../service/harness.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env.close();
});

function collect(client: {
  on(e: 'message', l: (m: ReceivedMessage) => void): unknown;
}): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => got.push(m));
  return got;
}

describe('messages between two users', () => {
  it('alice and bob exchange messages; the server stores only ciphertext', async () => {
    const alice = env.client('alice', 'laptop');
    const bob = env.client('bob', 'phone');
    await alice.connect();
    await bob.connect();
    const bobGot = next<ReceivedMessage>(bob, 'message');
    await alice.sendMessage('bob@example.org', 'the eagle lands at noon');
    const m = await bobGot;
    expect(m.text).toBe('the eagle lands at noon');
    expect(m.from).toBe('alice@example.org');
    expect(m.fromDevice).toBe('alice@example.org/laptop');
    const aliceGot = next<ReceivedMessage>(alice, 'message');
    await bob.sendMessage('alice@example.org', 'copy that, purple giraffe');
    expect((await aliceGot).text).toBe('copy that, purple giraffe');
    await quiet(100);
    // Acknowledged objects are deleted; nothing stays queued.
    expect((await env.store.queue.usage('bob@example.org/phone')).count).toBe(0);
  });
});

describe('offline delivery and acknowledgement', () => {
  it('an offline device receives its messages at login, once', async () => {
    const carol = env.client('carol', 'desk');
    await carol.connect();
    await carol.close();
    const alice = env.client('alice', 'laptop');
    await alice.connect();
    await alice.sendMessage('carol@example.org', 'message one while you were out');
    await alice.sendMessage('carol@example.org', 'message two while you were out');
    expect((await env.store.queue.usage('carol@example.org/desk')).count).toBe(2);
    // A new process for the same device: state restored from its file.
    const again = env.client('carol', 'desk');
    const got = collect(again);
    await again.connect();
    for (let i = 0; i < 50 && got.length < 2; i++) await quiet(20);
    expect(got.map((m) => m.text)).toEqual([
      'message one while you were out',
      'message two while you were out',
    ]);
    await quiet(100);
    expect((await env.store.queue.usage('carol@example.org/desk')).count).toBe(0);
    // The restored sessions keep working in both directions.
    const reply = next<ReceivedMessage>(alice, 'message');
    await again.sendMessage('alice@example.org', 'back online');
    expect((await reply).text).toBe('back online');
  });

  it('a crash before the acknowledgement loses nothing and duplicates nothing', async () => {
    const dave = env.client('dave', 'phone');
    await dave.connect();
    const alice = env.client('alice', 'laptop');
    await alice.connect();
    const first = new Promise<ReceivedMessage>((resolve) => {
      dave.once('message', (m) => {
        dave.abort(); // gone before the ACK leaves
        resolve(m);
      });
    });
    await alice.sendMessage('dave@example.org', 'exactly once please');
    expect((await first).text).toBe('exactly once please');
    await quiet(100);
    expect((await env.store.queue.usage('dave@example.org/phone')).count).toBe(1);
    const again = env.client('dave', 'phone');
    const got = collect(again);
    await again.connect();
    // The redelivered copy is recognised (replay) and acknowledged silently.
    for (let i = 0; i < 50; i++) {
      if ((await env.store.queue.usage('dave@example.org/phone')).count === 0) break;
      await quiet(20);
    }
    expect((await env.store.queue.usage('dave@example.org/phone')).count).toBe(0);
    expect(got).toEqual([]);
    // And the next message arrives normally.
    const nextOne = next<ReceivedMessage>(again, 'message');
    await alice.sendMessage('dave@example.org', 'and the next one');
    expect((await nextOne).text).toBe('and the next one');
  });
});

describe('verification', () => {
  it('both sides compute the same safety number', async () => {
    const alice = env.client('alice', 'laptop');
    const bob = env.client('bob', 'phone');
    await alice.connect();
    await bob.connect();
    const a = await alice.safetyNumber('bob@example.org');
    expect(a).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(await bob.safetyNumber('alice@example.org')).toBe(a);
  });

  // Key substitution by the server (T07) and ghost devices (T08): test/client/contacts.test.ts.
});

describe('a contact without keys (docs/security-model.md T10)', () => {
  it('sending to a contact without keys fails and sends nothing', async () => {
    // erin has an account but no device: no device list, no identity key, no prekey bundle.
    env.accounts.create('erin', env.password);
    const alice = env.client('alice', 'laptop');
    const erin = 'erin@example.org';
    await alice.connect();
    const sequence = (): number =>
      (
        env.store.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'queue'").get() as
          { seq: number } | undefined
      )?.seq ?? 0;
    const before = sequence();
    // A missing key is an error, never a fallback to anything unsealed.
    await expect(alice.sendMessage(erin, 'for erin’s eyes only')).rejects.toMatchObject({
      name: 'ImppError',
      code: 'ERR_DEVICE_LIST_INVALID',
    });
    // Nor does an address with no account at all get anything.
    await expect(
      alice.sendMessage('nobody@example.org', 'for nobody’s eyes only'),
    ).rejects.toMatchObject({ code: 'ERR_DEVICE_LIST_INVALID' });
    expect(sequence()).toBe(before); // nothing was stored for anyone
    expect(await env.store.devices.list(erin)).toEqual([]);
  });
});

describe('storage', () => {
  it('the SQLite files hold none of the plaintext', async () => {
    await quiet(50);
    const { existsSync } = await import('node:fs');
    const files = [env.dbPath, `${env.dbPath}-wal`].filter((f) => existsSync(f));
    const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
    expect(bytes.length).toBeGreaterThan(0);
    for (const secret of [
      'the eagle lands at noon',
      'purple giraffe',
      'while you were out',
      'back online',
      'exactly once please',
      'and the next one',
      'for erin’s eyes only',
      'for nobody’s eyes only',
    ]) {
      expect(bytes.includes(Buffer.from(secret, 'utf8'))).toBe(false);
      expect(bytes.includes(Buffer.from(secret, 'utf16le'))).toBe(false);
    }
  });
});

describe('pipelined sends', () => {
  it('many sends in flight at once each arrive exactly once', async () => {
    const dave = env.client('dave', 'phone');
    const bob = env.client('bob', 'phone'); // bob's first device: on his signed list
    await dave.connect();
    await bob.connect();
    const got = collect(bob);
    const texts = Array.from({ length: 40 }, (_, i) => `pipelined ${String(i).padStart(2, '0')}`);
    // Not awaited one by one: the SENDs overlap on the connection and share commits.
    await Promise.all(texts.map((t) => dave.sendMessage('bob@example.org', t)));
    for (let i = 0; i < 250 && got.length < texts.length; i++) await quiet(20);
    await quiet(100);
    const received = got.filter((m) => m.from === 'dave@example.org').map((m) => m.text);
    expect(received.length).toBe(texts.length);
    expect(new Set(received).size).toBe(texts.length);
    expect([...received].sort()).toEqual(texts);
    expect((await env.store.queue.usage('bob@example.org/phone')).count).toBe(0);
  });
});

describe('missing messages (docs/security-model.md T05)', () => {
  it('the client raises a missing-messages event', async () => {
    // Its own server: the test deletes from the queue, as a server that drops a message would.
    const own = await startEnv();
    try {
      const alice = own.client('alice', 'laptop');
      const bob = own.client('bob', 'phone');
      await alice.connect();
      await bob.connect();
      const missing: MissingMessagesEvent[] = [];
      bob.on('missingMessages', (m) => missing.push(m));
      const first = next<ReceivedMessage>(bob, 'message');
      await alice.sendMessage('bob@example.org', 'one');
      await first;
      await bob.close();
      for (const text of ['two', 'three', 'four']) await alice.sendMessage('bob@example.org', text);
      const queued = await own.store.queue.pending('bob@example.org/phone');
      expect(queued).toHaveLength(3);
      await own.store.queue.acknowledge('bob@example.org/phone', [queued[1]!.id]); // dropped
      const again = own.client('bob', 'phone');
      const got = collect(again);
      again.on('missingMessages', (m) => missing.push(m));
      await again.connect();
      for (let i = 0; i < 100 && got.length < 2; i++) await quiet(20);
      expect(got.map((m) => m.text)).toEqual(['two', 'four']);
      expect(missing).toEqual([
        { contact: 'alice@example.org', device: 'alice@example.org/laptop', count: 1 },
      ]);
    } finally {
      await own.close();
    }
  });
});
