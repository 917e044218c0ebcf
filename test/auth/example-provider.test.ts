/**
 * The example provider of docs/auth-providers.md (examples/providers/json-file-provider.ts), loaded
 * through the public registry exactly as a company's own provider would be: no core file knows it.
 * It must pass the same provider contract as the built-in providers, over SCRAM-SHA-256-PLUS and
 * over PLAIN.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonFileProvider, makeAuthPassword } from '../../examples/providers/json-file-provider.js';
import { plainClient, plainServer } from '../../src/auth/plain.js';
import { AuthRegistry } from '../../src/auth/registry.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { scramServer } from '../../src/auth/scram/server.js';
import { SecretBytes, randomBytes } from '../../src/crypto/index.js';
import { isImppError } from '../../src/errors.js';
import { tlsChannel } from './helpers.js';
import { runProviderContract } from './provider-contract.js';

const DOMAIN = 'example.com';
let dir: string;
let usersFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'impp-example-provider-'));
  usersFile = join(dir, 'users.json');
  await writeFile(
    usersFile,
    JSON.stringify({
      version: 1,
      users: {
        alice: {
          authPassword: makeAuthPassword('alice-file-pw'),
          groups: ['staff'],
          displayName: 'Alice',
        },
        dave: { authPassword: makeAuthPassword('dave-file-pw'), disabled: true },
      },
    }),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function registry(): Promise<AuthRegistry> {
  const r = new AuthRegistry({ domain: DOMAIN, serverSecret: new SecretBytes(randomBytes(32)) });
  r.registerMechanism(scramServer({ plus: true }));
  r.registerMechanism(plainServer());
  await r.registerProvider(jsonFileProvider({ path: usersFile }));
  return r;
}

const channel = (remoteAddress: string) => tlsChannel(randomBytes(32), remoteAddress);
const secrets = ['alice-file-pw', 'wrong-file-pw', 'dave-file-pw'];

runProviderContract('example json-file provider over SCRAM-SHA-256-PLUS', async () => {
  const scram = (username: string, password: string) =>
    scramClient({ username, password, channelBinding: 'require' });
  return {
    registry: await registry(),
    domain: DOMAIN,
    mechanisms: [{ mechanism: 'SCRAM-SHA-256-PLUS', provider: 'json-file' }],
    providerName: 'json-file',
    good: { mechanisms: scram('alice', 'alice-file-pw'), channel },
    wrongSecret: { mechanisms: scram('alice', 'wrong-file-pw'), channel },
    unknownUser: { mechanisms: scram('zed', 'alice-file-pw'), channel },
    disabledUser: { mechanisms: scram('dave', 'dave-file-pw'), channel },
    expectedPrincipal: { user: 'alice', domain: DOMAIN },
    secrets,
    close: () => Promise.resolve(),
  };
});

runProviderContract('example json-file provider over PLAIN', async () => ({
  registry: await registry(),
  domain: DOMAIN,
  mechanisms: [{ mechanism: 'PLAIN', provider: 'json-file' }],
  providerName: 'json-file',
  good: { mechanisms: [plainClient({ username: 'alice', password: 'alice-file-pw' })], channel },
  wrongSecret: {
    mechanisms: [plainClient({ username: 'alice', password: 'wrong-file-pw' })],
    channel,
  },
  unknownUser: {
    mechanisms: [plainClient({ username: 'zed', password: 'alice-file-pw' })],
    channel,
  },
  disabledUser: {
    mechanisms: [plainClient({ username: 'dave', password: 'dave-file-pw' })],
    channel,
  },
  expectedPrincipal: { user: 'alice', domain: DOMAIN },
  secrets,
  close: () => Promise.resolve(),
}));

describe('example json-file provider: its own rules', () => {
  it('reports groups and display name, and accepts user@its-domain only', async () => {
    const p = (await registry()).provider('json-file')!;
    const ok = await p.verifyPassword!('alice@example.com', 'alice-file-pw');
    expect(ok).toMatchObject({
      status: 'ok',
      identity: { attributes: { groups: ['staff'], displayName: 'Alice' } },
    });
    expect((await p.verifyPassword!('alice@evil.example', 'alice-file-pw')).status).toBe('unknown');
  });

  it('refuses unreadable files, unknown versions and malformed verifiers at registration', async () => {
    const cases: unknown[] = [
      { version: 2, users: {} },
      { version: 1, users: { alice: { authPassword: 'SCRAM-SHA-256$10:AAAA$x:y' } } },
      { version: 1, users: { 'Bad Name': { authPassword: makeAuthPassword('x') } } },
    ];
    for (const [i, content] of cases.entries()) {
      const path = join(dir, `bad-${String(i)}.json`);
      await writeFile(path, JSON.stringify(content));
      const r = new AuthRegistry({
        domain: DOMAIN,
        serverSecret: new SecretBytes(randomBytes(32)),
      });
      await expect(r.registerProvider(jsonFileProvider({ path }))).rejects.toSatisfy((e) =>
        isImppError(e, 'ERR_CONFIG_INVALID'),
      );
    }
    const r = new AuthRegistry({ domain: DOMAIN, serverSecret: new SecretBytes(randomBytes(32)) });
    await expect(
      r.registerProvider(jsonFileProvider({ path: join(dir, 'missing.json') })),
    ).rejects.toSatisfy((e) => isImppError(e, 'ERR_CONFIG_INVALID'));
  });
});
