/**
 * Where to connect for a domain (RFC 3861 §3, SRV per RFC 2782): `_im._tcp.<domain>` for
 * messaging, `_pres._tcp.<domain>` for presence, with static overrides from configuration for
 * private deployments and tests.
 *
 * Resolution only says where to connect (T47). The host reached must then prove the domain that
 * was asked for, never the SRV target's name: the endpoint passes the asked-for domain, not the
 * target, to the TLS check and to the OPEN frame. Spoofed DNS therefore costs availability,
 * not identity.
 */
import { Resolver } from 'node:dns/promises';
import { ImppError } from '../errors.js';
import { normalizeDomain } from '../trust/address.js';

/** The port of the server-to-server protocol when nothing else says. */
export const DEFAULT_FEDERATION_PORT = 5332;

/** One place to try. */
export interface LinkTarget {
  readonly host: string;
  readonly port: number;
}

/** The SRV part of a DNS resolver; node's `dns.promises.Resolver` fits, tests inject their own. */
export interface SrvResolver {
  resolveSrv(
    name: string,
  ): Promise<readonly { name: string; port: number; priority: number; weight: number }[]>;
}

/** Which RFC 3861 service to look up. */
export type FederationService = 'im' | 'pres';

/** Options of {@link resolveDomain}. */
export interface ResolveOptions {
  /** Default: node's resolver (the system's DNS servers). */
  readonly resolver?: SrvResolver;
  /** Fixed targets per domain, consulted before DNS. */
  readonly overrides?: ReadonlyMap<string, readonly LinkTarget[]>;
  /** Random source in [0, 1) for RFC 2782 weighted selection (tests make it deterministic). */
  readonly random?: () => number;
}

let defaultResolver: Resolver | undefined;

/** RFC 2782: order by priority; within one priority, a weighted random order. */
function orderSrv(
  records: readonly { name: string; port: number; priority: number; weight: number }[],
  random: () => number,
): LinkTarget[] {
  const byPriority = new Map<number, { name: string; port: number; weight: number }[]>();
  for (const r of records) {
    const list = byPriority.get(r.priority) ?? [];
    list.push(r);
    byPriority.set(r.priority, list);
  }
  const out: LinkTarget[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = [...(byPriority.get(priority) ?? [])];
    while (pool.length > 0) {
      const total = pool.reduce((sum, r) => sum + r.weight, 0);
      let pick = 0;
      if (total > 0) {
        let point = random() * total;
        pick = pool.findIndex((r) => (point -= r.weight) < 0);
        if (pick < 0) pick = pool.length - 1;
      }
      const [chosen] = pool.splice(pick, 1);
      if (chosen !== undefined) out.push({ host: chosen.name, port: chosen.port });
    }
  }
  return out;
}

function isNoRecords(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

/**
 * The targets to try, in order, for `service` at `domain`: the configured override, else the SRV
 * records, else (no records at all) the domain itself on {@link DEFAULT_FEDERATION_PORT}, which
 * is impp's fallback. A single SRV record with target "." means the domain offers no such service
 * (RFC 2782) and fails with `ERR_NOT_FOUND`.
 *
 * @example
 * ```ts
 * const targets = await resolveDomain('partner.example', 'im');
 * // [{ host: 'im1.partner.example', port: 5332 }, …]; then prove 'partner.example' there
 * ```
 */
export async function resolveDomain(
  domain: string,
  service: FederationService,
  options: ResolveOptions = {},
): Promise<LinkTarget[]> {
  const name = normalizeDomain(domain);
  const fixed = options.overrides?.get(name);
  if (fixed !== undefined && fixed.length > 0) return [...fixed];
  const resolver = options.resolver ?? (defaultResolver ??= new Resolver());
  let records: readonly { name: string; port: number; priority: number; weight: number }[];
  try {
    records = await resolver.resolveSrv(`_${service}._tcp.${name}`);
  } catch (error) {
    if (isNoRecords(error)) return [{ host: name, port: DEFAULT_FEDERATION_PORT }];
    throw new ImppError('ERR_NOT_FOUND', `SRV look-up for ${name} failed`, { cause: error });
  }
  if (records.length === 0) return [{ host: name, port: DEFAULT_FEDERATION_PORT }];
  if (records.length === 1 && (records[0]?.name === '.' || records[0]?.name === '')) {
    throw new ImppError('ERR_NOT_FOUND', `${name} publishes no ${service} service`);
  }
  return orderSrv(
    records.filter((r) => r.name !== '.' && r.name !== ''),
    options.random ?? Math.random,
  );
}
