/**
 * Threats where the adversary is the operator or whoever holds the server's files (T01, T38, T39,
 * T40) and the configuration check (T55). The operator attacker (../attackers/operator.ts) greps
 * the data folder and the logs; these threats need the `storage` capability (`--spawn` or
 * `--data-dir`), except T55, which runs the shipped validator locally.
 */
import { ImppError, isImppError } from '../../errors.js';
import { parseServerConfig } from '../../service/config/server-config.js';
import { Frames } from '../../client/protocol.js';
import { describeFindings, grepFiles, operatorFiles, operatorGrep } from '../attackers/operator.js';
import { RawDevice, sleep } from '../attackers/watchers.js';
import type { TestAccount, Threat, ThreatContext, ThreatOutcome } from '../types.js';
import { MITIGATED, NOT_TESTED, VULNERABLE } from './outcome.js';

/** Time for the store's group commit and the log to reach the files, in ms. */
const SETTLE_MS = 300;

function first(ctx: ThreatContext): { a: TestAccount; b: TestAccount } {
  const [a, b] = ctx.accounts;
  if (a === undefined || b === undefined) {
    throw new ImppError('ERR_INVALID_ARGUMENT', 'two test accounts are needed');
  }
  return { a, b };
}

function storageOf(ctx: ThreatContext): NonNullable<ThreatContext['storage']> {
  const s = ctx.storage;
  if (s === undefined) throw new ImppError('ERR_INVALID_ARGUMENT', 'storage access is needed');
  return s;
}

/** The account passwords as needles (labelled by address, never shown). */
function passwordNeedles(ctx: ThreatContext): { label: string; value: string }[] {
  return ctx.accounts.map((acc) => ({ label: `password of ${acc.address}`, value: acc.password }));
}

const serverReadsContent: Threat = {
  id: 'T01',
  name: 'server-reads-content',
  class: 'content',
  title: 'the operator greps the data folder and logs for message and presence canaries',
  needs: ['storage'],
  async run(ctx): Promise<ThreatOutcome> {
    const { a, b } = first(ctx);
    const message = ctx.canary();
    const note = ctx.canary();
    await ctx.control('a message and a presence note with canaries reach the server', async () => {
      const recipient = ctx.client(a);
      await recipient.connect();
      const sender = ctx.client(b);
      await sender.connect();
      const sealedFor = await sender.sendMessage(a.address, `hello ${message}`);
      if (sealedFor.length === 0) throw new ImppError('ERR_NOT_FOUND', 'no device to send to');
      const presentity = await RawDevice.rejoined(ctx, a);
      const published = await presentity.publishPresence(`note ${note}`);
      if (!published.ok) throw new ImppError('ERR_PROTOCOL', `publish refused: ${published.code}`);
    });
    await sleep(SETTLE_MS);
    const { files, findings } = operatorGrep(storageOf(ctx), [
      { label: 'message canary', value: message },
      { label: 'presence canary', value: note },
    ]);
    ctx.note(
      `operator read ${files.length} files (${files.reduce((n, f) => n + f.size, 0)} bytes)`,
    );
    if (files.length === 0) {
      return NOT_TESTED('the data folder and logs hold no readable file');
    }
    if (findings.length > 0) {
      return VULNERABLE(
        `content readable by the operator: ${findings.length} finding(s)`,
        describeFindings(findings),
      );
    }
    return MITIGATED(
      `no message or presence canary in ${files.length} files (database, WAL, logs), in 10 encodings`,
      files.map((f) => `searched ${f.name} (${f.size} bytes)`),
    );
  },
};

/** Files that must be private: databases with their WAL and shared memory, and keys. */
function mustBePrivate(name: string): boolean {
  return /\.db(-wal|-shm|-journal)?$/.test(name) || /key/i.test(name);
}

const storageTheft: Threat = {
  id: 'T38',
  name: 'storage-theft',
  class: 'operations-and-storage',
  title: 'copy the data folder: no passwords, no plaintext, private files mode 0600',
  needs: ['storage'],
  async run(ctx): Promise<ThreatOutcome> {
    const { a } = first(ctx);
    const storage = storageOf(ctx);
    await ctx.control(
      'an account logs in (its verifier is used, its password is not stored)',
      async () => {
        const c = ctx.client(a);
        await c.connect();
        await c.close();
      },
    );
    await sleep(SETTLE_MS);
    const files = operatorFiles(storage).filter((f) => !storage.logFiles.includes(f.path));
    if (files.length === 0) {
      return NOT_TESTED('the data folder holds no readable file');
    }
    const findings = grepFiles(files, passwordNeedles(ctx));
    const open = files.filter((f) => mustBePrivate(f.name) && (f.mode & 0o077) !== 0);
    const evidence = [
      ...describeFindings(findings),
      ...open.map((f) => `${f.name} has mode ${f.mode.toString(8)} (others can read it)`),
    ];
    if (evidence.length > 0) {
      return VULNERABLE(
        `the files give away ${findings.length} password(s) and ${open.length} private file(s)`,
        evidence,
      );
    }
    const checked = files.filter((f) => mustBePrivate(f.name));
    return MITIGATED(
      `no password in ${files.length} data files; ${checked.length} database and key files are private`,
      checked.map((f) => `${f.name}: mode ${f.mode.toString(8)}`),
    );
  },
};

/** Hostile values, each with a forged JSON record holding `marker` after a line break. */
function injections(marker: string): string[] {
  const forged = `{"level":50,"msg":"${marker}","forged":true}`;
  return [`x\n${forged}`, `x\r\n${forged}`, `x\u2028${forged}`, `x\u001b[2J\u0000${forged}`];
}

const logInjection: Threat = {
  id: 'T39',
  name: 'log-injection',
  class: 'operations-and-storage',
  title: 'newlines, control characters and JSON in names, device ids and addresses forge log lines',
  needs: ['storage'],
  async run(ctx): Promise<ThreatOutcome> {
    const { a } = first(ctx);
    const storage = storageOf(ctx);
    if (storage.logFiles.length === 0) {
      return NOT_TESTED('no log file was given (--log-file)');
    }
    await ctx.control('a login is logged', async () => {
      const c = ctx.client(a);
      await c.connect();
      await c.close();
    });
    const marker = ctx.canary();
    let tried = 0;
    const d = await RawDevice.registered(ctx, a);
    for (const value of injections(marker)) {
      // As a SCRAM user name, sent as the client would (no client-side SASLprep in the way).
      const named = await RawDevice.open(ctx);
      await named.take(Frames.AUTH_OFFER);
      const gs2 = `n,,n=${value.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${marker}`;
      named.conn.send(Frames.AUTH_START, {
        mechanism: 'SCRAM-SHA-256',
        initial: new TextEncoder().encode(gs2),
      });
      await Promise.race([named.closed, sleep(300)]);
      named.close();
      // As a device id at binding, and as an address in a request.
      const device = await RawDevice.open(ctx);
      await device.authenticate(a);
      await device.bind(value).catch(() => undefined);
      device.close();
      await d.request(Frames.SUBSCRIBE, { presentity: `${value}@${ctx.target.domain}` });
      tried += 3;
    }
    d.close();
    await sleep(SETTLE_MS);
    const { readFileSync } = await import('node:fs');
    const problems: string[] = [];
    let lines = 0;
    for (const path of storage.logFiles) {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        if (line === '') continue;
        lines++;
        // eslint-disable-next-line no-control-regex
        if (/[\u0000-\u0008\u000b-\u001f\u007f\u2028\u2029]/.test(line)) {
          problems.push(`a raw control character in a line of ${path}`);
        }
        let record: unknown;
        try {
          record = JSON.parse(line);
        } catch {
          problems.push(`a line of ${path} is not one JSON record`);
          continue;
        }
        if (typeof record === 'object' && record !== null && 'forged' in record) {
          problems.push(`a forged record in ${path}`);
        }
      }
    }
    if (lines === 0) {
      return NOT_TESTED('the log files are empty (is the log level above info?)');
    }
    if (problems.length > 0) {
      return VULNERABLE(`${problems.length} log problem(s) after ${tried} hostile inputs`, [
        ...new Set(problems),
      ]);
    }
    return MITIGATED(
      `${tried} hostile names, device ids and addresses: ${lines} log lines, each one JSON record, no control characters`,
    );
  },
};

const secretInLogs: Threat = {
  id: 'T40',
  name: 'secret-in-logs',
  class: 'operations-and-storage',
  title: 'passwords, wrong passwords and content reach logs or error answers',
  needs: ['storage'],
  async run(ctx): Promise<ThreatOutcome> {
    const { a, b } = first(ctx);
    const storage = storageOf(ctx);
    const wrong = ctx.canary();
    const text = ctx.canary();
    await ctx.control('logins and a message are logged', async () => {
      const ca = ctx.client(a);
      await ca.connect();
      const cb = ctx.client(b);
      await cb.connect();
      await cb.sendMessage(a.address, text);
    });
    // A failed login with a password that is itself a canary: neither its answer nor the logs
    // may hold it.
    const failed = await RawDevice.open(ctx);
    const refused = await failed.authenticate({ address: a.address, password: wrong }).then(
      () => 'accepted',
      (e: unknown) => (isImppError(e) ? e.code : 'refused'),
    );
    if (refused === 'accepted') {
      return { verdict: 'NOT-TESTED', summary: 'the canary password was accepted (?)' };
    }
    await sleep(SETTLE_MS);
    const answers = Buffer.concat(
      failed.frames.map((f) =>
        Buffer.from(
          JSON.stringify(f.body, (_k, v: unknown) =>
            v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v,
          ),
        ),
      ),
    );
    const logs = operatorFiles(storage).filter((f) => storage.logFiles.includes(f.path));
    if (logs.length === 0) {
      return { verdict: 'NOT-TESTED', summary: 'no log file was given or it does not exist' };
    }
    const findings = grepFiles(logs, [
      ...passwordNeedles(ctx),
      { label: 'a wrong password', value: wrong },
      { label: 'a message text', value: text },
    ]);
    const inAnswer = answers.includes(Buffer.from(wrong))
      ? ['the wrong password in the answer']
      : [];
    if (findings.length + inAnswer.length > 0) {
      return VULNERABLE('a secret reached the logs or an answer', [
        ...describeFindings(findings),
        ...inAnswer,
      ]);
    }
    return {
      verdict: 'MITIGATED',
      summary: `no password, wrong password or message text in ${logs.length} log file(s) or the failure answer`,
    };
  },
};

/** Insecure settings, each of which the shipped configuration loader must refuse. */
const INSECURE: readonly [string, Record<string, unknown>][] = [
  ['PLAIN without TLS (policy.requireTls: false)', { policy: { requireTls: false } }],
  ['SCRAM iterations below 4096', { policy: { scram: { iterations: 4095 } } }],
  [
    'an unknown mechanism name',
    {
      authentication: {
        mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'DIGEST-MD5'],
        providers: [{ type: 'local', id: 'local' }],
      },
    },
  ],
  [
    'a federation peer with no proof method',
    { federation: { peers: [{ domain: 'peer.example', mode: 'allow' }] } },
  ],
  [
    'a federation peer pinned to the all-zero key',
    {
      federation: {
        peers: [
          {
            domain: 'peer.example',
            mode: 'allow',
            proof: { type: 'pinned-key', publicKey: Buffer.alloc(32).toString('base64url') },
          },
        ],
      },
    },
  ],
];

const insecureConfiguration: Threat = {
  id: 'T55',
  name: 'insecure-configuration',
  class: 'operations-and-storage',
  title: 'a configuration with PLAIN without TLS, weak SCRAM, unknown mechanisms, unproven peers',
  async run(ctx): Promise<ThreatOutcome> {
    const base = {
      version: 1,
      domain: 'example.org',
      trust: {
        authentication: {
          mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
          providers: [{ type: 'local', id: 'local' }],
        },
      },
    };
    await ctx.control('the shipped loader accepts a sound configuration', () => {
      parseServerConfig(base, { baseDir: ctx.tempDir() });
      return Promise.resolve();
    });
    const accepted: string[] = [];
    const evidence: string[] = [];
    for (const [name, edit] of INSECURE) {
      const input = { ...base, trust: { ...base.trust, ...edit } };
      try {
        parseServerConfig(input, { baseDir: ctx.tempDir() });
        accepted.push(name);
      } catch (e) {
        const code = isImppError(e) ? e.code : 'a non-typed error';
        evidence.push(`${name}: refused (${code})`);
        if (!isImppError(e, 'ERR_CONFIG_INVALID')) accepted.push(`${name} (wrong error)`);
      }
    }
    if (accepted.length > 0) {
      return VULNERABLE(`the loader accepts: ${accepted.join('; ')}`, evidence);
    }
    return MITIGATED(
      `all ${INSECURE.length} insecure settings refused with ERR_CONFIG_INVALID (the shipped loader, run locally)`,
      evidence,
    );
  },
};

export const storageThreats: readonly Threat[] = [
  serverReadsContent,
  storageTheft,
  logInjection,
  secretInLogs,
  insecureConfiguration,
];
