/**
 * `impp serve` (startServer, in process) with a configuration file that enables client
 * certificates: a PKI provider answering EXTERNAL next to the local accounts. The SDK presents a
 * certificate of the enterprise CA named in the file and logs in with EXTERNAL over TLS and over
 * WebSocket; a certificate of another CA is refused; SCRAM keeps working on the same port.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImppClient, type ImppClientOptions } from '../../src/client/client.js';
import { FileStateStore } from '../../src/client/state.js';
import { startServer, type RunningServer } from '../../src/cli/serve.js';
import { isImppError } from '../../src/errors.js';
import { createCa, issue, type Issued } from '../infra/certs.js';

let work: string;
let running: RunningServer;
let corp: Issued;
let alice: Issued;
let rogue: Issued;
let log = '';
let n = 0;

const sink = { write: (s: string): boolean => ((log += s), true) };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'impp-serve-pki-'));
  corp = await createCa('CN=Corp Users CA');
  alice = await issue(corp, {
    subject: 'CN=alice',
    sans: [{ type: 'url', value: 'im:alice@localhost' }],
  });
  const other = await createCa('CN=Corp Users CA'); // same name, other key
  rogue = await issue(other, {
    subject: 'CN=alice',
    sans: [{ type: 'url', value: 'im:alice@localhost' }],
  });
  writeFileSync(join(work, 'corp-ca.pem'), corp.certPem);
  const config = join(work, 'impp.yaml');
  writeFileSync(
    config,
    [
      'version: 1',
      'domain: localhost',
      'listen:',
      '  tls: { host: 127.0.0.1, port: 0 }',
      '  websocket: { host: 127.0.0.1, port: 0 }',
      'trust:',
      '  authentication:',
      '    mechanisms: [SCRAM-SHA-256-PLUS, EXTERNAL]',
      '    providers:',
      '      - { type: local, id: local }',
      '      - type: pki',
      '        id: corp',
      '        trustAnchors: { path: corp-ca.pem }',
      '        revocation: none',
      '        addressFrom: san-uri',
      '  policy: { scram: { iterations: 4096 } }',
    ].join('\n'),
  );
  running = await startServer(
    { config, dataDir: join(work, 'data') },
    { stdout: sink, stderr: sink, env: {} },
  );
}, 20_000);

afterAll(async () => {
  await running.stop();
  rmSync(work, { recursive: true, force: true });
});

function client(extra: Partial<ImppClientOptions>): ImppClient {
  n++;
  return new ImppClient({
    host: '127.0.0.1',
    port: running.tls.port,
    ca: readFileSync(running.ca?.certPath ?? '', 'utf8'),
    servername: 'localhost',
    address: 'alice@localhost',
    deviceId: `d${n}`,
    state: new FileStateStore(join(work, `c${n}.state`)),
    ...extra,
  });
}

describe('impp serve with a PKI provider in its configuration file', () => {
  it('logs alice in with EXTERNAL over TLS and over WebSocket (SAN im:alice@localhost)', async () => {
    const cert = { cert: alice.certPem, key: alice.keyPem };
    const overTls = client({ mechanism: 'external', clientCertificate: cert });
    await overTls.connect();
    await overTls.close();
    const overWs = client({
      mechanism: 'external',
      clientCertificate: cert,
      transport: 'websocket',
      port: running.websocket?.port ?? 0,
    });
    await overWs.connect();
    await overWs.close();
    // The audit log names the mechanism and provider, never the certificate's key.
    expect(log).toMatch(
      /"mechanism":"EXTERNAL".*"provider":"corp"|"provider":"corp".*"mechanism":"EXTERNAL"/,
    );
    expect(log).not.toContain('PRIVATE KEY');
  });

  it('refuses a certificate of another CA with the same name; the server carries on', async () => {
    const err: unknown = await client({
      mechanism: 'external',
      clientCertificate: { cert: rogue.certPem, key: rogue.keyPem },
    })
      .connect()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isImppError(err, 'ERR_AUTH_FAILED')).toBe(true);
    const again = client({
      mechanism: 'external',
      clientCertificate: { cert: alice.certPem, key: alice.keyPem },
    });
    await again.connect();
    await again.close();
  });
});
