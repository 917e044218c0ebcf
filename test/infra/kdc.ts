/**
 * A throwaway MIT Kerberos realm for tests: `kdb5_util create` in a temporary folder, a user and a
 * service principal through `kadmin.local`, the service key in a temporary keytab, `krb5kdc -n` on
 * a free loopback TCP port and `kinit` with the user's password into a temporary credential cache.
 *
 * Needs only the Debian packages krb5-kdc, krb5-admin-server and krb5-user. Nothing outside the
 * temporary folder is read or written: every tool gets KRB5_CONFIG / KRB5_KDC_PROFILE pointing into
 * it, and {@link KdcFixture.env} gives the variables the GSS-API library in *this* process needs.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, run, startDaemon, tempDir, waitForPort, type Daemon } from './process.js';

export const REALM = 'EXAMPLE.TEST';
/** GSS host-based service name; the principal is `impp/localhost@EXAMPLE.TEST`. */
export const SERVICE = 'impp@localhost';

export interface KdcUser {
  readonly name: string;
  readonly password: string;
  /** `-allow_tix`: the KDC refuses to issue tickets (a disabled account). */
  readonly disabled?: boolean;
}

export interface KdcFixture {
  readonly dir: string;
  readonly port: number;
  readonly realm: string;
  readonly keytab: string;
  readonly krb5Config: string;
  /** Environment for the GSS-API library and the MIT tools (config, keytab, replay cache). */
  readonly env: Record<string, string>;
  /** `kinit` `user` into a fresh credential cache; returns the cache's path (FILE: type). */
  readonly kinit: (user: string, password: string) => Promise<string>;
  readonly stop: () => Promise<void>;
}

/**
 * Creates the realm and starts the KDC (about 0.1 s). `otherServices` are extra service
 * principals (`name/localhost`) whose keys are NOT in the service keytab: tickets for them are
 * "a ticket for another service" to impp's acceptor.
 */
export async function startKdc(
  users: readonly KdcUser[] = [{ name: 'alice', password: 'alice-pw-1' }],
  otherServices: readonly string[] = [],
): Promise<KdcFixture> {
  const started = Date.now();
  const { dir, remove } = await tempDir('impp-kdc-');
  const port = await freePort();
  const krb5Config = join(dir, 'krb5.conf');
  const kdcConf = join(dir, 'kdc.conf');
  const keytab = join(dir, 'service.keytab');
  // Clients use TCP only (udp_preference_limit = 1); the KDC also listens on the same UDP port
  // number, which is almost always free when the TCP one is. No DNS lookups, so
  // `localhost` stays `localhost` in the service principal.
  await writeFile(
    krb5Config,
    `[libdefaults]
  default_realm = ${REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  udp_preference_limit = 1
  ticket_lifetime = 1h
  default_ccache_name = FILE:${join(dir, 'ccache-default')}
[realms]
  ${REALM} = {
    kdc = 127.0.0.1:${port}
  }
[domain_realm]
  localhost = ${REALM}
[logging]
  kdc = FILE:${join(dir, 'kdc.log')}
`,
  );
  await writeFile(
    kdcConf,
    `[kdcdefaults]
  kdc_listen = 127.0.0.1:${port}
  kdc_tcp_listen = 127.0.0.1:${port}
[realms]
  ${REALM} = {
    database_name = ${join(dir, 'principal')}
    key_stash_file = ${join(dir, 'stash')}
    acl_file = ${join(dir, 'kadm5.acl')}
    max_life = 1h
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:${join(dir, 'kdc.log')}
`,
  );
  await writeFile(join(dir, 'kadm5.acl'), '');
  const env: Record<string, string> = {
    KRB5_CONFIG: krb5Config,
    KRB5_KDC_PROFILE: kdcConf,
    KRB5_KTNAME: `FILE:${keytab}`,
    KRB5RCACHENAME: `file2:${join(dir, 'service.rcache2')}`,
    KRB5RCACHEDIR: dir,
    KRB5CCNAME: `FILE:${join(dir, 'ccache-default')}`,
  };
  const toolEnv = { PATH: `/usr/sbin:/usr/bin:/sbin:/bin`, ...env };
  await run('kdb5_util', ['create', '-s', '-r', REALM, '-P', 'master-key-for-tests-only', '-W'], {
    env: toolEnv,
  });
  const commands = [
    `addprinc -randkey impp/localhost@${REALM}`,
    `ktadd -k ${keytab} impp/localhost@${REALM}`,
    ...otherServices.map((name) => `addprinc -randkey ${name}/localhost@${REALM}`),
    ...users.map(
      (u) =>
        `addprinc -pw ${u.password}${u.disabled === true ? ' -allow_tix' : ''} ${u.name}@${REALM}`,
    ),
  ];
  for (const command of commands) {
    await run('kadmin.local', ['-r', REALM, '-q', command], { env: toolEnv });
  }
  const daemon: Daemon = startDaemon('krb5kdc', ['-n', '-r', REALM], toolEnv);
  try {
    await waitForPort(port, 10_000, daemon.alive);
  } catch (e) {
    await daemon.stop();
    await remove();
    throw new Error(`krb5kdc did not start: ${String(e)}\n${daemon.output()}`);
  }
  let caches = 0;
  const fixture: KdcFixture = {
    dir,
    port,
    realm: REALM,
    keytab,
    krb5Config,
    env,
    kinit: async (user, password) => {
      const cache = join(dir, `ccache-${String(++caches)}`);
      await run('kinit', [`${user}@${REALM}`], {
        env: { ...toolEnv, KRB5CCNAME: `FILE:${cache}` },
        input: `${password}\n`,
      });
      return cache;
    },
    stop: async () => {
      await daemon.stop();
      await remove();
    },
  };
  if (process.env.IMPP_INFRA_TIMING === '1') {
    console.log(`KDC ready on 127.0.0.1:${port} in ${Date.now() - started} ms`);
  }
  return fixture;
}
