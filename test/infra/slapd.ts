/**
 * A throwaway OpenLDAP directory for tests: a slapd.conf in a temporary folder (mdb backend,
 * suffix dc=example,dc=test, the ppolicy overlay for account lock-out), entries loaded offline with
 * `slapadd`, then `slapd -d stats` in the foreground on ldap://127.0.0.1:PORT (StartTLS) and
 * ldaps://127.0.0.1:PORT2 with a throwaway CA.
 *
 * Needs only the Debian packages slapd and ldap-utils. The stats log (every BIND and SEARCH the
 * directory saw) is kept in memory so tests can assert what did — or did not — reach it.
 */
import { createHash, pbkdf2Sync, createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCa, issueServer, type Issued } from './certs.js';
import { freePort, run, startDaemon, tempDir, waitForPort, type Daemon } from './process.js';

export const SUFFIX = 'dc=example,dc=test';
export const PEOPLE = `ou=people,${SUFFIX}`;
export const GROUPS = `ou=groups,${SUFFIX}`;
export const SERVICE_DN = `cn=impp-service,ou=services,${SUFFIX}`;
export const SERVICE_PASSWORD = 'service-account-pw';

export interface LdapUser {
  readonly uid: string;
  readonly password: string;
  readonly groups?: readonly string[];
  /** Locked with ppolicy's pwdAccountLockedTime = 000001010000Z (locked until an admin unlocks). */
  readonly disabled?: boolean;
  /** Store an RFC 5803 SCRAM-SHA-256 verifier in authPassword (iterations). */
  readonly scramIterations?: number;
}

export const DEFAULT_USERS: readonly LdapUser[] = [
  { uid: 'alice', password: 'alice-ldap-pw', groups: ['staff', 'admins'], scramIterations: 4096 },
  { uid: 'bob', password: 'bob-ldap-pw', groups: ['staff'] },
  {
    uid: 'carol',
    password: 'carol-ldap-pw',
    groups: ['staff'],
    disabled: true,
    scramIterations: 4096,
  },
];

export interface SlapdFixture {
  readonly url: string;
  readonly ldapsUrl: string;
  readonly ca: Issued;
  readonly caPem: string;
  /** Everything slapd logged at `stats` level so far (connections, BINDs, SEARCHes). */
  readonly log: () => Promise<string>;
  readonly dir: string;
  readonly stop: () => Promise<void>;
}

/** `{SSHA}` of RFC 2307 / OpenLDAP: base64(SHA-1(password || salt) || salt). Test data only. */
function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** RFC 5803 `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` computed per RFC 5802 §3. */
export function scramAuthPassword(
  password: string,
  iterations: number,
  salt = randomBytes(16),
): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

function ldif(users: readonly LdapUser[]): string {
  const entries: string[] = [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example Test`,
    `dn: ${PEOPLE}\nobjectClass: organizationalUnit\nou: people`,
    `dn: ${GROUPS}\nobjectClass: organizationalUnit\nou: groups`,
    `dn: ou=services,${SUFFIX}\nobjectClass: organizationalUnit\nou: services`,
    `dn: ou=policies,${SUFFIX}\nobjectClass: organizationalUnit\nou: policies`,
    `dn: cn=default,ou=policies,${SUFFIX}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE`,
    `dn: ${SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: impp-service\nuserPassword: ${ssha(SERVICE_PASSWORD)}`,
  ];
  for (const u of users) {
    const lines = [
      `dn: uid=${u.uid},${PEOPLE}`,
      'objectClass: inetOrgPerson',
      'objectClass: authPasswordObject',
      `uid: ${u.uid}`,
      `cn: ${u.uid[0]?.toUpperCase() ?? ''}${u.uid.slice(1)} Example`,
      `sn: Example`,
      `mail: ${u.uid}@example.test`,
      `userPassword: ${ssha(u.password)}`,
    ];
    if (u.scramIterations !== undefined) {
      lines.push(`authPassword: ${scramAuthPassword(u.password, u.scramIterations)}`);
    }
    if (u.disabled === true) lines.push('pwdAccountLockedTime: 000001010000Z');
    entries.push(lines.join('\n'));
  }
  const groups = new Map<string, string[]>();
  for (const u of users) {
    for (const g of u.groups ?? [])
      groups.set(g, [...(groups.get(g) ?? []), `uid=${u.uid},${PEOPLE}`]);
  }
  for (const [name, members] of groups) {
    entries.push(
      [
        `dn: cn=${name},${GROUPS}`,
        'objectClass: groupOfNames',
        `cn: ${name}`,
        ...members.map((m) => `member: ${m}`),
      ].join('\n'),
    );
  }
  return `${entries.join('\n\n')}\n`;
}

// RFC 3112 authPassword, declared here because Debian's slapd is built without it. The RFC's own
// matching rule and syntax are not known to slapd, so IA5 string stands in: tests only read it.
const AUTHPASSWORD_SCHEMA = `attributetype ( 1.3.6.1.4.1.4203.1.3.4 NAME 'authPassword'
  DESC 'RFC 3112 password authentication information'
  EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
objectclass ( 1.3.6.1.4.1.4203.1.4.7 NAME 'authPasswordObject'
  DESC 'RFC 3112 authentication password mix in class' AUXILIARY MAY authPassword )
`;

/** Starts slapd; rejects with slapd's log when it does not come up within 10 s. */
export async function startSlapd(
  users: readonly LdapUser[] = DEFAULT_USERS,
): Promise<SlapdFixture> {
  const started = Date.now();
  const { dir, remove } = await tempDir('impp-slapd-');
  const [port, ldapsPort] = [await freePort(), await freePort()];
  const ca = await createCa('CN=impp LDAP test CA,O=impp tests');
  const server = await issueServer(ca);
  await mkdir(join(dir, 'db'));
  await writeFile(join(dir, 'ca.pem'), ca.certPem);
  await writeFile(join(dir, 'server.pem'), server.certPem);
  await writeFile(join(dir, 'server.key'), server.keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'authpassword.schema'), AUTHPASSWORD_SCHEMA);
  const conf = join(dir, 'slapd.conf');
  await writeFile(
    conf,
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include ${join(dir, 'authpassword.schema')}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile ${join(dir, 'slapd.pid')}
loglevel stats
logfile ${join(dir, 'slapd.log')}
argsfile ${join(dir, 'slapd.args')}
TLSCACertificateFile ${join(dir, 'ca.pem')}
TLSCertificateFile ${join(dir, 'server.pem')}
TLSCertificateKeyFile ${join(dir, 'server.key')}
# Emulates Active Directory: a simple bind with a DN and an EMPTY password is an "unauthenticated"
# bind that succeeds. The provider must refuse empty passwords before they reach the directory.
allow bind_anon_dn
database mdb
maxsize 16777216
suffix "${SUFFIX}"
rootdn "cn=admin,${SUFFIX}"
directory ${join(dir, 'db')}
overlay ppolicy
ppolicy_default "cn=default,ou=policies,${SUFFIX}"
ppolicy_use_lockout
access to attrs=userPassword by anonymous auth by * none
access to attrs=authPassword by dn.exact="${SERVICE_DN}" read by * none
access to * by users read by anonymous auth
`,
  );
  await writeFile(join(dir, 'data.ldif'), ldif(users));
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  await run('slapadd', ['-q', '-f', conf, '-l', join(dir, 'data.ldif')], { env });
  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
  const daemon: Daemon = startDaemon(
    'slapd',
    ['-f', conf, '-h', `${url}/ ${ldapsUrl}/`, '-d', 'stats'],
    env,
  );
  try {
    await waitForPort(port, 10_000, daemon.alive);
    await waitForPort(ldapsPort, 10_000, daemon.alive);
  } catch (e) {
    await daemon.stop();
    const log = await readFile(join(dir, 'slapd.log'), 'utf8').catch(() => '');
    await remove();
    throw new Error(`slapd did not start: ${String(e)}\n${daemon.output()}\n${log}`);
  }
  if (process.env.IMPP_INFRA_TIMING === '1') {
    console.log(`slapd ready on ${url} and ${ldapsUrl} in ${Date.now() - started} ms`);
  }
  return {
    url,
    ldapsUrl,
    ca,
    caPem: ca.certPem,
    log: () => readFile(join(dir, 'slapd.log'), 'utf8'),
    dir,
    stop: async () => {
      await daemon.stop();
      await remove();
    },
  };
}
