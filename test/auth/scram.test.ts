import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import vectors from '../vectors/rfc7677.json' with { type: 'json' };
import { SecretBytes, randomBytes, utf8 } from '../../src/crypto/index.js';
import { authenticate } from '../../src/auth/client.js';
import { scramClient } from '../../src/auth/scram/client.js';
import { makeScramCredential } from '../../src/auth/scram/keys.js';
import {
  decodeSaslName,
  encodeSaslName,
  parseClientFinal,
  parseClientFirst,
  parseServerFinal,
  parseServerFirst,
} from '../../src/auth/scram/messages.js';
import { scramServer } from '../../src/auth/scram/server.js';
import {
  AuthError,
  isAuthError,
  type CredentialProvider,
  type ServerMechanismContext,
} from '../../src/auth/types.js';
import { DOMAIN, PLAINTEXT_CHANNEL, SessionTransport, localEnv, tlsChannel } from './helpers.js';

const text = (b: Uint8Array | null | undefined): string =>
  Buffer.from(b ?? new Uint8Array(0)).toString('utf8');

async function expectAuthError(p: Promise<unknown>, reason: string): Promise<void> {
  await expect(p).rejects.toSatisfy((e: unknown) => isAuthError(e) && e.reason === reason);
}

describe('SCRAM-SHA-256: RFC 7677 §3 test vector', () => {
  for (const v of vectors.cases) {
    it(`client side: ${v.label}`, async () => {
      const [factory] = scramClient({
        username: v.username,
        password: v.password,
        channelBinding: 'never',
        nonceForTesting: v.clientNonce,
      });
      const mech = factory!.create({
        channel: PLAINTEXT_CHANNEL,
        offeredMechanisms: ['SCRAM-SHA-256'],
      });
      expect(text(await mech.start())).toBe(v.clientFirst);
      expect(text(await mech.step(utf8(v.serverFirst)))).toBe(v.clientFinal);
      await mech.finish(utf8(v.serverFinal));
      expect(mech.channelBound).toBe(false);
    });

    it(`server side: ${v.label}`, async () => {
      const credential = makeScramCredential(
        v.password,
        v.iterations,
        Buffer.from(v.salt, 'base64'),
      );
      const provider: CredentialProvider = {
        name: 'vector',
        kind: 'test',
        capabilities: ['scram-sha-256'],
        getScramCredential: (u) =>
          Promise.resolve(
            u === v.username
              ? {
                  status: 'ok',
                  credential,
                  identity: { principal: { user: 'user', domain: DOMAIN }, kind: 'person' },
                }
              : { status: 'unknown' },
          ),
      };
      const factory = scramServer({ plus: false, serverNonceForTesting: v.serverNonceSuffix })({
        serverSecret: new SecretBytes(randomBytes(32)),
        now: Date.now,
      });
      const claimed: string[] = [];
      const ctx: ServerMechanismContext = {
        domain: DOMAIN,
        channel: PLAINTEXT_CHANNEL,
        provider,
        offeredMechanisms: ['SCRAM-SHA-256'],
        claimIdentity: (id) => {
          claimed.push(id);
          return Promise.resolve();
        },
      };
      const mech = factory.create(ctx);
      const first = await mech.step(utf8(v.clientFirst));
      expect(first.type === 'challenge' && text(first.challenge)).toBe(v.serverFirst);
      const final = await mech.step(utf8(v.clientFinal));
      expect(final.type).toBe('success');
      expect(final.type === 'success' && text(final.additionalData)).toBe(v.serverFinal);
      expect(claimed).toEqual(['user']);
    });
  }
});

describe('SCRAM-SHA-256(-PLUS) end to end through the authenticator', () => {
  it('logs in with -PLUS on a binding channel and reports the channel binding', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const channel = tlsChannel();
    const session = env.authenticator.begin(channel);
    expect(session.offered).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    const t = new SessionTransport(session);
    const out = await authenticate(
      t,
      scramClient({ username: 'alice', password: 'pencil' }),
      session.offered,
      channel,
    );
    expect(out).toEqual({
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBound: true,
      downgradeSuspected: false,
    });
    expect(t.last?.type === 'success' && t.last.result.principal).toEqual({
      user: 'alice',
      domain: DOMAIN,
    });
    expect(env.audit.events.map((e) => [e.type, e.mechanism, e.channelBound])).toEqual([
      ['auth.success', 'SCRAM-SHA-256-PLUS', true],
    ]);
    await env.close();
  });

  it('does not offer -PLUS without an exporter, and logs in with the plain variant', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const channel = { secure: true, remoteAddress: '192.0.2.1' };
    const session = env.authenticator.begin(channel);
    expect(session.offered).toEqual(['SCRAM-SHA-256']);
    const out = await authenticate(
      new SessionTransport(session),
      scramClient({ username: 'alice', password: 'pencil' }),
      session.offered,
      channel,
    );
    expect(out.channelBound).toBe(false);
    await env.close();
  });

  it('fails when the client and server see different exporters (re-terminated TLS)', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const session = env.authenticator.begin(tlsChannel());
    await expect(
      authenticate(
        new SessionTransport(session),
        scramClient({ username: 'alice', password: 'pencil' }),
        session.offered,
        tlsChannel(),
      ),
    ).rejects.toBeInstanceOf(AuthError);
    expect(env.audit.events.at(-1)).toMatchObject({
      type: 'auth.failure',
      reason: 'channel-binding-mismatch',
      wire: 'not-authorized',
    });
    await env.close();
  });

  it('server refuses GS2 y when it offered -PLUS (stripped list downgrade)', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const channel = tlsChannel();
    const session = env.authenticator.begin(channel);
    // The attacker strips -PLUS from what the client sees; the client then signals 'y'.
    const stripped = session.offered.filter((m) => !m.endsWith('-PLUS'));
    const t = new SessionTransport(session);
    await expectAuthError(
      authenticate(t, scramClient({ username: 'alice', password: 'pencil' }), stripped, channel),
      'bad-credential',
    );
    expect(t.wire[0]?.data).toMatch(/^SCRAM-SHA-256 /);
    expect(text(Buffer.from(t.wire[0]!.data.split(' ')[1]!, 'base64'))).toMatch(/^y,,/);
    expect(env.audit.events.at(-1)).toMatchObject({ reason: 'downgrade', wire: 'not-authorized' });
    await env.close();
  });

  it('client requiring binding refuses a stripped list before sending anything', async () => {
    const env = await localEnv();
    const channel = tlsChannel();
    const t = new SessionTransport(env.authenticator.begin(channel));
    await expectAuthError(
      authenticate(
        t,
        scramClient({ username: 'alice', password: 'pencil', channelBinding: 'require' }),
        ['SCRAM-SHA-256'],
        channel,
        {
          requireChannelBinding: true,
        },
      ),
      'downgrade',
    );
    expect(t.wire).toEqual([]);
    await env.close();
  });

  it('server accepts y when it did not offer -PLUS (binding genuinely unavailable on the server)', async () => {
    const env = await localEnv({ mechanisms: [{ mechanism: 'SCRAM-SHA-256', provider: 'local' }] });
    env.accounts.create('alice', 'pencil');
    const channel = tlsChannel();
    const session = env.authenticator.begin(channel);
    const out = await authenticate(
      new SessionTransport(session),
      scramClient({ username: 'alice', password: 'pencil' }),
      session.offered,
      channel,
    );
    expect(out).toMatchObject({
      mechanism: 'SCRAM-SHA-256',
      channelBound: false,
      downgradeSuspected: true,
    });
    await env.close();
  });
});

/** Runs the first server step with a raw client-first and returns the server-first text. */
async function rawFirst(
  session: import('../../src/auth/server.js').AuthSession,
  mech: string,
  clientFirst: string,
): Promise<string> {
  const out = await session.start(mech, utf8(clientFirst));
  if (out.type !== 'challenge') throw new Error(`expected challenge, got ${JSON.stringify(out)}`);
  return text(out.challenge);
}

describe('SCRAM server: malformed and adversarial input', () => {
  const bad: [string, string][] = [
    ['wrong GS2 flag', 'x,,n=alice,r=abcdefghijkl'],
    ['GS2 header missing', 'n=alice,r=abcdefghijkl'],
    ['missing nonce', 'n,,n=alice'],
    ['attributes out of order', 'n,,r=abcdefghijkl,n=alice'],
    ['bad saslname escape', 'n,,n=al=2Dice,r=abcdefghijkl'],
    ['mandatory extension', 'n,,m=ext,n=alice,r=abcdefghijkl'],
    ['nonce with comma-free but non-printable char', 'n,,n=alice,r=abc\u0001defghijkl'],
    ['nonce too short', 'n,,n=alice,r=abc'],
    ['p flag on the non-PLUS mechanism', 'p=tls-exporter,,n=alice,r=abcdefghijkl'],
    ['empty username', 'n,,n=,r=abcdefghijkl'],
  ];
  for (const [label, msg] of bad) {
    it(`refuses client-first: ${label}`, async () => {
      const env = await localEnv();
      const out = await env.authenticator.begin(tlsChannel()).start('SCRAM-SHA-256', utf8(msg));
      expect(out).toEqual({ type: 'failure', failure: 'malformed-request' });
      expect(env.audit.events.at(-1)).toMatchObject({ reason: 'malformed' });
      await env.close();
    });
  }

  it('refuses n and y flags on SCRAM-SHA-256-PLUS, and unknown channel-binding types', async () => {
    const env = await localEnv();
    for (const flag of ['n,,', 'y,,', 'p=tls-unique,,']) {
      const out = await env.authenticator
        .begin(tlsChannel())
        .start('SCRAM-SHA-256-PLUS', utf8(`${flag}n=alice,r=abcdefghijkl`));
      expect(out).toEqual({ type: 'failure', failure: 'malformed-request' });
    }
    await env.close();
  });

  it('refuses a foreign authzid', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const out = await env.authenticator
      .begin(tlsChannel())
      .start('SCRAM-SHA-256-PLUS', utf8('p=tls-exporter,a=bob,n=alice,r=abcdefghijkl'));
    expect(out).toEqual({ type: 'failure', failure: 'not-authorized' });
    expect(env.audit.events.at(-1)).toMatchObject({
      reason: 'authzid-refused',
      claimedIdentity: 'alice',
    });
    await env.close();
  });

  it('refuses bad base64, a missing proof, a wrong proof and a foreign nonce in client-final', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const cases: [string, (nonce: string) => string, string][] = [
      ['bad base64 proof', (r) => `c=biws,r=${r},p=!!!!`, 'malformed'],
      ['non-canonical base64', (r) => `c=biws,r=${r},p=${'A'.repeat(42)}B=`, 'malformed'],
      ['missing proof', (r) => `c=biws,r=${r}`, 'malformed'],
      [
        'missing channel binding',
        (r) => `r=${r},p=${Buffer.alloc(32).toString('base64')}`,
        'malformed',
      ],
      ['short proof', (r) => `c=biws,r=${r},p=${Buffer.alloc(16).toString('base64')}`, 'malformed'],
      [
        'wrong proof',
        (r) => `c=biws,r=${r},p=${Buffer.alloc(32, 7).toString('base64')}`,
        'bad-credential',
      ],
      [
        'nonce of another exchange',
        () => `c=biws,r=abcdefghijklOTHERNONCE,p=${Buffer.alloc(32).toString('base64')}`,
        'replay',
      ],
      [
        'binding of another header',
        (r) =>
          `c=${Buffer.from('y,,').toString('base64')},r=${r},p=${Buffer.alloc(32).toString('base64')}`,
        'channel-binding-mismatch',
      ],
    ];
    for (const [label, final, reason] of cases) {
      const session = env.authenticator.begin({
        secure: true,
        remoteAddress: `198.51.100.${cases.findIndex((c) => c[0] === label)}`,
      });
      const serverFirst = await rawFirst(session, 'SCRAM-SHA-256', 'n,,n=alice,r=abcdefghijkl');
      const nonce = /^r=([^,]+)/.exec(serverFirst)![1]!;
      const out = await session.respond(utf8(final(nonce)));
      expect(out.type, label).toBe('failure');
      expect(env.audit.events.at(-1)?.reason, label).toBe(reason);
    }
    await env.close();
  });

  it('a client-final captured on one connection fails on another (replay)', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const channel = { secure: true, remoteAddress: '192.0.2.5' };
    // Connection 1: a genuine login; the attacker records the client's messages.
    const first = env.authenticator.begin(channel);
    const t1 = new SessionTransport(first);
    await authenticate(
      t1,
      scramClient({ username: 'alice', password: 'pencil', nonceForTesting: 'fixedclientnonce' }),
      first.offered,
      channel,
    );
    const recordedFirst = Buffer.from(t1.wire[0]!.data.split(' ')[1]!, 'base64');
    const recordedFinal = Buffer.from(t1.wire[2]!.data, 'base64');
    // Connection 2: the attacker replays them verbatim, and with the nonce rewritten.
    const second = env.authenticator.begin(channel);
    const serverFirst = await rawFirst(second, 'SCRAM-SHA-256', text(recordedFirst));
    expect(await second.respond(recordedFinal)).toEqual({
      type: 'failure',
      failure: 'not-authorized',
    });
    expect(env.audit.events.at(-1)?.reason).toBe('replay');
    const third = env.authenticator.begin(channel);
    const sf3 = await rawFirst(third, 'SCRAM-SHA-256', text(recordedFirst));
    const nonce3 = /^r=([^,]+)/.exec(sf3)![1]!;
    const rewritten = text(recordedFinal).replace(/r=[^,]+/, `r=${nonce3}`);
    expect(await third.respond(utf8(rewritten))).toEqual({
      type: 'failure',
      failure: 'not-authorized',
    });
    expect(env.audit.events.at(-1)?.reason).toBe('bad-credential');
    expect(serverFirst).not.toBe(sf3);
    await env.close();
  });

  it('refuses over-long messages before parsing', async () => {
    const env = await localEnv();
    const out = await env.authenticator
      .begin(tlsChannel())
      .start('SCRAM-SHA-256', utf8(`n,,n=alice,r=${'a'.repeat(9000)}`));
    expect(out).toEqual({ type: 'failure', failure: 'malformed-request' });
    const out2 = await env.authenticator
      .begin(tlsChannel())
      .start('SCRAM-SHA-256', utf8(`n,,n=alice,r=${'a'.repeat(5000)}`));
    expect(out2).toEqual({ type: 'failure', failure: 'malformed-request' });
    await env.close();
  });

  it('unknown users get a stable fake salt and the same failure bytes as a wrong password', async () => {
    const env = await localEnv();
    env.accounts.create('alice', 'pencil');
    const salts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const sf = await rawFirst(
        env.authenticator.begin({ secure: true, remoteAddress: `203.0.113.${i}` }),
        'SCRAM-SHA-256',
        'n,,n=mallory,r=abcdefghijkl',
      );
      salts.push(/,s=([^,]+),i=(\d+)$/.exec(sf)!.slice(1).join('/'));
    }
    expect(salts[0]).toBe(salts[1]);
    expect(salts[0]).toMatch(/\/4096$/);
    const wire = async (user: string, password: string): Promise<string[]> => {
      const ch = { secure: true, remoteAddress: `203.0.113.${user.length}` };
      const s = env.authenticator.begin(ch);
      const t = new SessionTransport(s);
      await expect(
        authenticate(t, scramClient({ username: user, password }), s.offered, ch),
      ).rejects.toBeInstanceOf(AuthError);
      return t.wire
        .filter((w) => w.dir === 's2c')
        .slice(1)
        .map((w) => w.data);
    };
    const unknown = await wire('mallory', 'pencil');
    const wrong = await wire('alice', 'wrong');
    expect(unknown).toEqual(wrong);
    expect(unknown).toEqual(['{"type":"failure","failure":"not-authorized"}']);
    env.accounts.disable('alice');
    expect(await wire('alice', 'pencil')).toEqual(unknown);
    expect(env.audit.events.map((e) => e.reason)).toEqual([
      'unknown-user',
      'bad-credential',
      'disabled',
    ]);
    await env.close();
  });
});

describe('SCRAM client: adversarial servers', () => {
  const start = async (opts: Partial<Parameters<typeof scramClient>[0]> = {}) => {
    const [, plain] = scramClient({
      username: 'user',
      password: 'pencil',
      nonceForTesting: 'rOprNGfwEbeRWgbNEkqO',
      ...opts,
    });
    const mech = plain!.create({
      channel: PLAINTEXT_CHANNEL,
      offeredMechanisms: ['SCRAM-SHA-256'],
    });
    await mech.start();
    return mech;
  };
  const v = vectors.cases[0]!;

  it('refuses an iteration count below 4096', async () => {
    const mech = await start();
    await expectAuthError(mech.step(utf8(v.serverFirst.replace('i=4096', 'i=4095'))), 'malformed');
  });

  it('refuses an iteration count above its ceiling', async () => {
    const mech = await start({ maxIterations: 100_000 });
    await expectAuthError(
      mech.step(utf8(v.serverFirst.replace('i=4096', 'i=100001'))),
      'malformed',
    );
  });

  it('refuses a nonce that does not extend its own', async () => {
    const mech = await start();
    await expectAuthError(
      mech.step(utf8(v.serverFirst.replace('rOprNGfwEbeRWgbNEkqO', 'XOprNGfwEbeRWgbNEkqO'))),
      'malformed',
    );
    const mech2 = await start();
    await expectAuthError(
      mech2.step(utf8(`r=rOprNGfwEbeRWgbNEkqO,s=${v.salt},i=4096`)),
      'malformed',
    );
  });

  it('refuses a wrong server signature, a missing one, and maps e= errors', async () => {
    const mech = await start();
    await mech.step(utf8(v.serverFirst));
    await expectAuthError(
      mech.finish(utf8(`v=${Buffer.alloc(32).toString('base64')}`)),
      'bad-credential',
    );
    const mech2 = await start();
    await mech2.step(utf8(v.serverFirst));
    await expectAuthError(mech2.finish(null), 'bad-credential');
    const mech3 = await start();
    await mech3.step(utf8(v.serverFirst));
    await expectAuthError(
      mech3.finish(utf8('e=channel-bindings-dont-match')),
      'channel-binding-mismatch',
    );
  });

  it('refuses -PLUS without an exporter and PLAIN-variant use under require', async () => {
    const [plus, plain] = scramClient({ username: 'u', password: 'p', channelBinding: 'require' });
    await expectAuthError(
      plus!.create({ channel: PLAINTEXT_CHANNEL, offeredMechanisms: [] }).start(),
      'mechanism-unavailable',
    );
    await expectAuthError(
      plain!.create({ channel: tlsChannel(), offeredMechanisms: [] }).start(),
      'downgrade',
    );
  });
});

describe('SCRAM parsers under fuzzing throw only typed errors', () => {
  const parsers = [parseClientFirst, parseServerFirst, parseClientFinal, parseServerFinal];
  const onlyTyped = (f: (b: Uint8Array) => unknown, input: Uint8Array): void => {
    try {
      f(input);
    } catch (e) {
      if (!(e instanceof AuthError) || e.reason !== 'malformed') throw e;
    }
  };
  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const p of parsers) onlyTyped(p, bytes);
      }),
      { numRuns: 500 },
    );
  });
  it('mutations of valid messages', () => {
    const v = vectors.cases[0]!;
    const seeds = [
      v.clientFirst,
      v.serverFirst,
      v.clientFinal,
      v.serverFinal,
      'p=tls-exporter,a=x=2Cy,n=u=3Dv,r=abcdefghij',
    ];
    const alphabet = fc.constantFrom(
      ',',
      '=',
      'a',
      'n',
      'r',
      'p',
      'c',
      'v',
      'e',
      'm',
      '\u0000',
      '\u00e9',
      '=2C',
      '=3D',
      '==',
      '/',
      '+',
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.nat(),
        fc.nat({ max: 5 }),
        alphabet,
        (seed, pos, del, ins) => {
          const i = pos % (seed.length + 1);
          const mutated = utf8(seed.slice(0, i) + ins + seed.slice(i + del));
          for (const p of parsers) onlyTyped(p, mutated);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('SCRAM failure timing (measured)', () => {
  it('unknown user and wrong password take similar server time, without any added delay', async () => {
    const env = await localEnv({ rateLimit: { accountBurst: 1e6, sourceBurst: 1e6 } });
    env.accounts.create('alice', 'pencil');
    // Time only the server's two steps; the client messages are fixed strings.
    const serverTime = async (user: string): Promise<number> => {
      const ch = { secure: true, remoteAddress: '192.0.2.77' };
      const first = utf8(`n,,n=${user},r=abcdefghijklmnop`);
      const session = env.authenticator.begin(ch);
      const t0 = performance.now();
      const sf = await session.start('SCRAM-SHA-256', first);
      const t1 = performance.now();
      if (sf.type !== 'challenge') throw new Error('expected challenge');
      const nonce = /^r=([^,]+)/.exec(text(sf.challenge))![1]!;
      const final = utf8(`c=biws,r=${nonce},p=${Buffer.alloc(32, 1).toString('base64')}`);
      const t2 = performance.now();
      const out = await session.respond(final);
      const t3 = performance.now();
      expect(out).toEqual({ type: 'failure', failure: 'not-authorized' });
      return t1 - t0 + (t3 - t2);
    };
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 60; i++) {
      unknown.push(await serverTime('ghost'));
      wrong.push(await serverTime('alice'));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const mu = median(unknown.slice(10));
    const mw = median(wrong.slice(10));
    console.log(
      `SCRAM failure server time: unknown user median ${(mu * 1000).toFixed(0)} µs, wrong password median ${(mw * 1000).toFixed(0)} µs`,
    );
    expect(Math.abs(mu - mw)).toBeLessThan(1);
    await env.close();
  });
});

describe('SCRAM saslname escaping (RFC 5802 §5.1)', () => {
  it('decodes =2C and =3D and refuses other escapes', () => {
    expect(decodeSaslName('a=2Cb=3Dc', 'username')).toBe('a,b=c');
    for (const bad of ['a=2c', 'a=', 'a=3', 'a=41', 'a,b']) {
      expect(() => decodeSaslName(bad, 'username')).toThrow(AuthError);
    }
  });
  it('escape then parse is the identity for any name (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), (name) => {
        expect(decodeSaslName(encodeSaslName(name), 'username')).toBe(name);
      }),
      { numRuns: 500 },
    );
  });
});
