/**
 * RFC 3861 resolution (T47): SRV order, static overrides, and the rule that matters for security:
 * the host that SRV points to must prove the domain that was asked for, not its own name.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isImppError } from '../../src/errors.js';
import {
  DEFAULT_FEDERATION_PORT,
  type SrvResolver,
  resolveDomain,
} from '../../src/federation/index.js';
import { issueCert } from '../helpers/tls-fixtures.js';
import { type RunningEndpoint, type TestDomain, makeDomain, startEndpoint } from './helpers.js';

type Srv = { name: string; port: number; priority: number; weight: number };

/** A DNS resolver answering from a table (what the network would say), with the names asked. */
function fakeDns(table: Record<string, Srv[] | Error>): SrvResolver & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolveSrv(name: string) {
      asked.push(name);
      const answer = table[name];
      if (answer instanceof Error) return Promise.reject(answer);
      if (answer === undefined) {
        return Promise.reject(Object.assign(new Error('no such name'), { code: 'ENOTFOUND' }));
      }
      return Promise.resolve(answer);
    },
  };
}

describe('resolveDomain', () => {
  it('looks up _im._tcp and _pres._tcp and orders by priority, then weight (RFC 2782)', async () => {
    const dns = fakeDns({
      '_im._tcp.a.example': [
        { name: 'backup.a.example', port: 5400, priority: 20, weight: 0 },
        { name: 'light.a.example', port: 5332, priority: 10, weight: 1 },
        { name: 'heavy.a.example', port: 5332, priority: 10, weight: 99 },
      ],
      '_pres._tcp.a.example': [{ name: 'pres.a.example', port: 5333, priority: 0, weight: 0 }],
    });
    const im = await resolveDomain('A.Example', 'im', { resolver: dns, random: () => 0.5 });
    expect(im.map((t) => t.host)).toEqual([
      'heavy.a.example',
      'light.a.example',
      'backup.a.example',
    ]);
    const pres = await resolveDomain('a.example', 'pres', { resolver: dns });
    expect(pres).toEqual([{ host: 'pres.a.example', port: 5333 }]);
    expect(dns.asked).toEqual(['_im._tcp.a.example', '_pres._tcp.a.example']);
  });

  it('uses a static override before DNS', async () => {
    const dns = fakeDns({});
    const targets = await resolveDomain('a.example', 'im', {
      resolver: dns,
      overrides: new Map([['a.example', [{ host: '10.0.0.1', port: 6000 }]]]),
    });
    expect(targets).toEqual([{ host: '10.0.0.1', port: 6000 }]);
    expect(dns.asked).toEqual([]);
  });

  it('falls back to the domain on the default port without records; "." means no service', async () => {
    const dns = fakeDns({
      '_im._tcp.none.example': [{ name: '.', port: 0, priority: 0, weight: 0 }],
    });
    expect(await resolveDomain('a.example', 'im', { resolver: dns })).toEqual([
      { host: 'a.example', port: DEFAULT_FEDERATION_PORT },
    ]);
    const refused = await resolveDomain('none.example', 'im', { resolver: dns }).catch(
      (e: unknown) => e,
    );
    expect(isImppError(refused, 'ERR_NOT_FOUND')).toBe(true);
  });

  it('a DNS failure other than "no such record" is an error, not a fallback', async () => {
    const dns = fakeDns({
      '_im._tcp.a.example': Object.assign(new Error('server failure'), { code: 'ESERVFAIL' }),
    });
    const error = await resolveDomain('a.example', 'im', { resolver: dns }).catch(
      (e: unknown) => e,
    );
    expect(isImppError(error, 'ERR_NOT_FOUND')).toBe(true);
  });
});

describe('connecting through SRV', () => {
  let a: TestDomain;
  let b: TestDomain;
  const running: RunningEndpoint[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([makeDomain('a.example'), makeDomain('b.example')]);
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.endpoint.close()));
  });

  /** B, trusting a.example's CA, resolving through DNS that points a.example at `port`. */
  async function bResolvingTo(port: number): Promise<RunningEndpoint> {
    const dns = fakeDns({
      '_im._tcp.a.example': [{ name: 'localhost', port, priority: 0, weight: 0 }],
    });
    const B = await startEndpoint(
      b,
      [{ domain: 'a.example', proof: 'x509', caPem: a.ca.certPem }],
      {
        resolver: dns,
      },
    );
    running.push(B);
    return B;
  }

  it('a host proving only the SRV target name is refused', async () => {
    // A certificate from the very CA that B trusts for a.example, but naming the SRV target.
    const targetCert = await issueCert(a.ca, { dnsNames: ['localhost'], usage: 'both' });
    const host = await startEndpoint(
      a,
      [{ domain: 'b.example', proof: 'x509', caPem: b.ca.certPem }],
      {
        cert: targetCert,
      },
    );
    running.push(host);
    const B = await bResolvingTo(host.port);
    const error = await B.endpoint.connect('a.example').catch((e: unknown) => e);
    expect(isImppError(error)).toBe(true);
    expect(B.endpoint.links).toHaveLength(0);
  });

  it('the same SRV answer works when the host proves the domain asked for', async () => {
    const host = await startEndpoint(a, [
      { domain: 'b.example', proof: 'x509', caPem: b.ca.certPem },
    ]);
    running.push(host);
    const B = await bResolvingTo(host.port);
    const link = await B.endpoint.connect('a.example');
    expect(link.peer).toBe('a.example');
  });
});
