/**
 * Admission control of pipelined requests (src/service/admission.ts): the server-wide bound,
 * FIFO hand-over, and that a server at its bound still answers every SEND exactly once, in
 * order, by making sessions wait rather than refusing or losing anything.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { ReceivedMessage } from '../../src/client/client.js';
import { RequestAdmission } from '../../src/service/admission.js';
import { type Env, quiet, startEnv } from './harness.js';

describe('RequestAdmission', () => {
  it('admits up to its limit at once, then hands slots over first come, first served', async () => {
    const admission = new RequestAdmission(2);
    expect(admission.acquire()).toBeUndefined();
    expect(admission.acquire()).toBeUndefined();
    const order: number[] = [];
    const third = admission.acquire();
    const fourth = admission.acquire();
    expect(third).toBeInstanceOf(Promise);
    void fourth?.then(() => order.push(4));
    void third?.then(() => order.push(3));
    await quiet(5);
    expect(order).toEqual([]);
    expect(admission.inFlight).toBe(2);
    admission.release();
    await quiet(5);
    expect(order).toEqual([3]);
    admission.release();
    await quiet(5);
    expect(order).toEqual([3, 4]);
    // Two holders left (3 and 4): releasing both empties it, and a newcomer gets in at once.
    admission.release();
    admission.release();
    expect(admission.inFlight).toBe(0);
    expect(admission.acquire()).toBeUndefined();
    expect(admission.stats.waited).toBe(2);
  });

  it('never counts below zero and takes at least one slot', () => {
    const admission = new RequestAdmission(0);
    expect(admission.limit).toBe(1);
    admission.release();
    expect(admission.inFlight).toBe(0);
    expect(admission.acquire()).toBeUndefined();
    expect(admission.acquire()).toBeInstanceOf(Promise);
  });
});

describe('a server at its bound on pipelined requests', () => {
  let env: Env | undefined;
  afterAll(async () => {
    await env?.close();
  });

  it('makes sessions wait and still delivers every overlapping send exactly once', async () => {
    // A 100 ms commit window keeps every SEND in flight long enough for the next ones to queue.
    env = await startEnv({ maxPipelinedRequests: 3, batch: { maxDelayMs: 100 } });
    const dave = env.client('dave', 'phone');
    const bob = env.client('bob', 'phone');
    await dave.connect();
    await bob.connect();
    const got: ReceivedMessage[] = [];
    bob.on('message', (m) => got.push(m));
    const texts = Array.from({ length: 30 }, (_, i) => `admitted ${String(i).padStart(2, '0')}`);
    await Promise.all(texts.map((t) => dave.sendMessage('bob@example.org', t)));
    for (let i = 0; i < 250 && got.length < texts.length; i++) await quiet(20);
    const received = got.filter((m) => m.from === 'dave@example.org').map((m) => m.text);
    expect([...received].sort()).toEqual(texts);
    expect(env.server.admission.stats.waited).toBeGreaterThan(0);
    expect(env.server.admission.inFlight).toBeLessThanOrEqual(3);
  });
});
