/**
 * T52 `client-cert-misvalidation` and T53 `principal-mapping-confusion` against a real server
 * built as `impp serve` builds it from a trust configuration with a `pki` provider (EXTERNAL next
 * to SCRAM, real TLS on loopback, local accounts in SQLite): MITIGATED with every defence on, and
 * VULNERABLE with exactly one defence off (issue 6 item 5). The operator's `--client-ca-cert` /
 * `--client-ca-key` path (clientPkiFromPem) is what mints the certificates here.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { isImppError } from '../../src/errors.js';
import { WEAKEN_SERVER, type ServerDefences } from '../../src/service/defences.js';
import {
  createSuiteCa,
  issueServerCert,
  type SuiteCert,
} from '../../src/threats/attackers/certs.js';
import { pkiThreats } from '../../src/threats/catalogue/pki.js';
import { clientPkiFromPem, createSuiteClientPki } from '../../src/threats/pki.js';
import { runThreat } from '../../src/threats/runner.js';
import type { ClientPki, Target, TestAccount, Threat } from '../../src/threats/types.js';
import { startConfiguredServer } from '../helpers/configured-server.js';
import { explain, pick } from './target.js';

const DOMAIN = 'example.org';
const PASSWORD = 'threat-pki-password';

let serverCa: SuiteCert;
let serverCert: SuiteCert;
let clientCa: SuiteCert;
let pki: ClientPki;

beforeAll(async () => {
  serverCa = await createSuiteCa('impp threat test server CA');
  serverCert = await issueServerCert(serverCa, { names: ['localhost', '127.0.0.1'] });
  clientCa = await createSuiteCa('impp threat test users CA');
  pki = await clientPkiFromPem(clientCa.certPem, clientCa.keyPem);
});

/** A server trusting `clientCa` for EXTERNAL next to SCRAM, with `weakened` defences off. */
async function startPkiServer(weakened: Partial<ServerDefences> = {}): Promise<{
  target: Target;
  accounts: readonly TestAccount[];
  close(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'impp-threat-pki-'));
  writeFileSync(join(dir, 'users-ca.pem'), clientCa.certPem);
  const s = await startConfiguredServer({
    dir,
    domain: DOMAIN,
    tls: { key: serverCert.keyPem, cert: serverCert.certPem },
    users: ['alice', 'bob'],
    password: PASSWORD,
    trust: {
      authentication: {
        mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'EXTERNAL'],
        providers: [
          { type: 'local', id: 'local' },
          {
            type: 'pki',
            id: 'users',
            trustAnchors: { path: 'users-ca.pem' },
            revocation: 'none',
            addressFrom: 'san-email',
          },
        ],
      },
      policy: { scram: { iterations: 4096 } },
    },
    server: { [WEAKEN_SERVER]: weakened },
  });
  return {
    target: {
      host: '127.0.0.1',
      port: s.port,
      ca: serverCa.certPem,
      servername: 'localhost',
      domain: DOMAIN,
    },
    accounts: ['alice', 'bob'].map((u) => ({ address: `${u}@${DOMAIN}`, password: PASSWORD })),
    async close() {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const threat = (id: string): Threat => pick(pkiThreats, id);

describe('T52 and T53 with every defence on', () => {
  let s: Awaited<ReturnType<typeof startPkiServer>>;
  beforeAll(async () => {
    s = await startPkiServer();
  });
  afterAll(async () => {
    await s.close();
  });

  for (const id of ['T52', 'T53']) {
    it(`${id} is MITIGATED, each attack refused with not-authorized`, async () => {
      const r = await runThreat(threat(id), { target: s.target, accounts: s.accounts, pki });
      expect(r.verdict, explain(r)).toBe('MITIGATED');
      expect(r.notes.filter((n) => n.startsWith('control ok:'))).toHaveLength(3);
      const refused = r.evidence.filter((e) => e.includes('refused (not-authorized)'));
      expect(refused.length).toBeGreaterThanOrEqual(id === 'T52' ? 6 : 5);
      expect(r.evidence.join('\n')).not.toContain(PASSWORD);
    });
  }

  it('both say NOT-TESTED, with how to enable them, when the run cannot mint certificates', async () => {
    for (const id of ['T52', 'T53']) {
      const r = await runThreat(threat(id), { target: s.target, accounts: s.accounts });
      expect(r.verdict).toBe('NOT-TESTED');
      expect(r.summary).toMatch(/--client-ca-cert/);
    }
  });

  it('a control that fails is an ERROR, never MITIGATED (a CA the server does not trust)', async () => {
    const other = await createSuiteClientPki();
    const r = await runThreat(threat('T52'), {
      target: s.target,
      accounts: s.accounts,
      pki: other,
    });
    expect(r.verdict, explain(r)).toBe('ERROR');
    expect(r.summary).toMatch(/control failed/);
  });
});

describe('one defence off: the suite reports VULNERABLE', () => {
  it('T52 when EXTERNAL accepts chains the TLS layer did not verify (clientCertificateChainCheck)', async () => {
    const s = await startPkiServer({ clientCertificateChainCheck: false });
    try {
      const r = await runThreat(threat('T52'), { target: s.target, accounts: s.accounts, pki });
      expect(r.verdict, explain(r)).toBe('VULNERABLE');
      expect(r.summary).toMatch(/rogue CA with the same name logged in as alice@example\.org/);
    } finally {
      await s.close();
    }
  });

  it('T53 when a certificate naming two users maps to the first (certificateSingleIdentity)', async () => {
    const s = await startPkiServer({ certificateSingleIdentity: false });
    try {
      const r = await runThreat(threat('T53'), { target: s.target, accounts: s.accounts, pki });
      expect(r.verdict, explain(r)).toBe('VULNERABLE');
      expect(r.summary).toMatch(
        /alice@example\.org and bob@example\.org in one certificate logged in as/,
      );
    } finally {
      await s.close();
    }
  });
});

describe('clientPkiFromPem (--client-ca-cert, --client-ca-key)', () => {
  it('refuses a key that does not belong to the certificate, and a non-PKCS #8 key', async () => {
    const other = await createSuiteCa('impp threat test other CA');
    const mismatch = await clientPkiFromPem(clientCa.certPem, other.keyPem).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImppError(mismatch, 'ERR_INVALID_ARGUMENT')).toBe(true);
    const notKey = await clientPkiFromPem(clientCa.certPem, clientCa.certPem).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImppError(notKey, 'ERR_INVALID_ARGUMENT')).toBe(true);
  });
});

describe('impp threats --target with --client-ca-cert and --client-ca-key', () => {
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(['threats', ...args], {
      stdout: { write: (t: string) => ((stdout += t), true) },
      stderr: { write: (t: string) => ((stderr += t), true) },
      env: {},
    });
    return { code, stdout, stderr };
  }

  it('plays T52 and T53 against the deployment with certificates of its test CA', async () => {
    const s = await startPkiServer();
    const dir = mkdtempSync(join(tmpdir(), 'impp-threat-pki-cli-'));
    try {
      const file = (name: string, body: string): string => {
        writeFileSync(join(dir, name), body);
        chmodSync(join(dir, name), 0o600);
        return join(dir, name);
      };
      const accounts = file(
        'accounts.json',
        JSON.stringify({ accounts: s.accounts.map((a) => ({ ...a })) }),
      );
      const common = [
        '--target',
        `127.0.0.1:${s.target.port}`,
        '--accounts',
        accounts,
        '--ca',
        file('ca.pem', serverCa.certPem),
        '--servername',
        'localhost',
        '--state-dir',
        join(dir, 'state'),
        '--only',
        'T52,T53',
      ];
      const r = await cli([
        ...common,
        '--client-ca-cert',
        file('users-ca.pem', clientCa.certPem),
        '--client-ca-key',
        file('users-ca.key', clientCa.keyPem),
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/T52 +client-cert-misvalidation +MITIGATED/);
      expect(r.stdout).toMatch(/T53 +principal-mapping-confusion +MITIGATED/);
      const without = await cli(common);
      expect(without.stdout).toMatch(/T52 +client-cert-misvalidation +NOT-TESTED/);
      const half = await cli([...common, '--client-ca-cert', join(dir, 'users-ca.pem')]);
      expect(half.code).not.toBe(0);
      expect(half.stderr).toMatch(/go together/);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--spawn refuses them (it makes its own CA)', async () => {
    const r = await cli(['--spawn', '--client-ca-cert', 'x.pem', '--client-ca-key', 'x.key']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--client-ca-cert is for --target/);
  });
});
