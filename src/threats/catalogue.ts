/**
 * The whole catalogue, in the order of docs/security-model.md §8: one {@link Threat} per row,
 * with the row's id, name and class. Rows nobody has written a suite test for yet get a
 * placeholder that reports NOT-TESTED with the reason, so the report always has every row and
 * says honestly which ones it did not play (test/threats/catalogue.test.ts checks the list
 * against the document).
 */
import { ImppError } from '../errors.js';
import { accessThreats } from './catalogue/access.js';
import { authenticationThreats } from './catalogue/authentication.js';
import { contentThreats } from './catalogue/content.js';
import { federationThreats } from './catalogue/federation.js';
import { keysThreats } from './catalogue/keys.js';
import { parsingThreats } from './catalogue/parsing.js';
import { storageThreats } from './catalogue/storage.js';
import { transportThreats } from './catalogue/transport.js';
import { dependencyRuleThreat } from './dependency-rule.js';
import type { Threat, ThreatClass } from './types.js';

/** One row of docs/security-model.md §8 as the suite knows it. */
export interface ThreatRow {
  readonly id: string;
  readonly name: string;
  readonly class: ThreatClass;
  readonly title: string;
  /** Why the suite does not play it (yet): only rows without an implemented threat have one. */
  readonly notTested?: string;
}

const NOT_YET =
  'no suite test yet; the unit and integration tests named in docs/security-model.md §8 cover it';

/** Every row of §8, in order. */
export const THREAT_ROWS: readonly ThreatRow[] = [
  {
    id: 'T01',
    name: 'server-reads-content',
    class: 'content',
    title: 'the server or an operator reads content from memory, database, queues or logs',
  },
  {
    id: 'T02',
    name: 'tampering',
    class: 'content',
    title: 'a relay or the server flips bits, truncates, splices or swaps sealed objects',
  },
  {
    id: 'T03',
    name: 'replay',
    class: 'content',
    title: 'an accepted message is delivered again',
  },
  {
    id: 'T04',
    name: 'reorder-rollback',
    class: 'presence-and-access',
    title: 'messages out of order, an older presence document, device list or key-log head',
  },
  {
    id: 'T05',
    name: 'silent-drop',
    class: 'content',
    title: 'the server drops one message and delivers the rest',
  },
  {
    id: 'T06',
    name: 'sender-impersonation',
    class: 'content',
    title: 'a rewritten sender, or a sealed payload re-wrapped by another device',
  },
  {
    id: 'T07',
    name: 'key-substitution',
    class: 'keys-and-trust',
    title: 'the server returns a rogue identity key or prekey bundle',
  },
  {
    id: 'T08',
    name: 'ghost-device-or-watcher',
    class: 'keys-and-trust',
    title: 'the server adds a device or an approved watcher on its own',
  },
  {
    id: 'T09',
    name: 'context-confusion',
    class: 'content',
    title: 'an object of one kind presented as another',
  },
  {
    id: 'T10',
    name: 'e2e-downgrade',
    class: 'content',
    title: 'encryption stripped, no keys claimed, an older or unknown envelope version',
  },
  {
    id: 'T11',
    name: 'unauthorized-watcher',
    class: 'presence-and-access',
    title: 'presence fetched or subscribed without approval',
  },
  {
    id: 'T12',
    name: 'revoked-watcher',
    class: 'presence-and-access',
    title: 'a revoked watcher keeps reading presence',
  },
  {
    id: 'T13',
    name: 'blocking-leak',
    class: 'presence-and-access',
    title: 'answers for a blocking user differ from those for a user who does not exist',
  },
  {
    id: 'T14',
    name: 'plain-without-tls',
    class: 'authentication',
    title: 'PLAIN offered or accepted without TLS',
  },
  {
    id: 'T15',
    name: 'scram-plus-stripping',
    class: 'authentication',
    title: 'a proxy hides -PLUS so the client falls back to unbound SCRAM',
  },
  {
    id: 'T16',
    name: 'channel-binding-mitm',
    class: 'authentication',
    title: 'a TLS-terminating proxy relays a SCRAM-SHA-256-PLUS login',
  },
  {
    id: 'T17',
    name: 'weak-scram',
    class: 'authentication',
    title: 'low iterations, per-user salts of unknown users, client-final replay, bad nonces',
  },
  {
    id: 'T18',
    name: 'brute-force',
    class: 'authentication',
    title: 'many passwords against one account; credential stuffing',
  },
  {
    id: 'T19',
    name: 'user-enumeration',
    class: 'authentication',
    title: 'answers or timing tell existing users from absent ones',
  },
  {
    id: 'T20',
    name: 'kerberos-replay',
    class: 'authentication',
    title: 'a captured AP-REQ replayed, or an authenticator outside the clock skew',
  },
  {
    id: 'T21',
    name: 'session-survives-revocation',
    class: 'authentication',
    title: 'a session or credential keeps working after logout, password change or revocation',
  },
  {
    id: 'T22',
    name: 'malformed-frames',
    class: 'transport-and-robustness',
    title: 'garbage, bad lengths, invalid CBOR, unknown types, requests before authentication',
  },
  {
    id: 'T23',
    name: 'oversized-frames',
    class: 'transport-and-robustness',
    title: 'a length prefix over the limit, or a huge field in a valid frame',
  },
  {
    id: 'T24',
    name: 'slow-clients',
    class: 'transport-and-robustness',
    title: 'slowloris before authentication; a client that never reads',
  },
  {
    id: 'T25',
    name: 'resource-exhaustion',
    class: 'transport-and-robustness',
    title: 'floods of subscriptions, devices, queues, prekey fetches, fan-out',
  },
  {
    id: 'T26',
    name: 'weak-tls',
    class: 'transport-and-robustness',
    title: 'TLS 1.2 or older, weak cipher suites',
  },
  {
    id: 'T27',
    name: 'domain-spoofing',
    class: 'federation',
    title: 'a rogue server claims another domain on the federation port',
  },
  {
    id: 'T28',
    name: 'federation-proof-confusion',
    class: 'federation',
    title: 'a domain-key proof made for another connection or pair of domains',
  },
  {
    id: 'T29',
    name: 'certificate-misvalidation',
    class: 'federation',
    title: 'an expired, self-signed, wrong-name or rogue-CA certificate',
  },
  {
    id: 'T30',
    name: 'metadata-exposure',
    class: 'content',
    title: 'what the server sees: sessions, recipients, sizes, timing',
  },
  {
    id: 'T31',
    name: 'crypto-edge-cases',
    class: 'crypto-primitives',
    title: 'low-order points, malleable signatures, invalid tags through the wrappers',
  },
  {
    id: 'T32',
    name: 'prekey-depletion',
    class: 'keys-and-trust',
    title: "Bob's one-time prekeys fetched until none are left, or handed out twice",
  },
  {
    id: 'T33',
    name: 'keylog-split-view',
    class: 'keys-and-trust',
    title: 'the server shows two users different, consistent-looking key logs',
  },
  {
    id: 'T34',
    name: 'enrolment-forgery',
    class: 'keys-and-trust',
    title: 'a forged or replayed enrolment statement',
  },
  {
    id: 'T35',
    name: 'pidf-xml-attacks',
    class: 'parsing',
    title: 'a PIDF document with DOCTYPE, entities, extreme depth or size',
  },
  {
    id: 'T36',
    name: 'xmldsig-wrapping',
    class: 'parsing',
    title: 'XML signature wrapping and canonicalisation tricks',
  },
  {
    id: 'T37',
    name: 'cbor-decoder-abuse',
    class: 'parsing',
    title: 'deep nesting, huge lengths, duplicate or __proto__ keys, non-canonical CBOR',
  },
  {
    id: 'T38',
    name: 'storage-theft',
    class: 'operations-and-storage',
    title: 'a copy of the SQLite files, the WAL or the data folder',
  },
  {
    id: 'T39',
    name: 'log-injection',
    class: 'operations-and-storage',
    title: 'newlines, controls or JSON in names and ids to forge log lines',
  },
  {
    id: 'T40',
    name: 'secret-in-logs',
    class: 'operations-and-storage',
    title: 'passwords, key bytes or content in logs or error messages',
  },
  {
    id: 'T41',
    name: 'clock-skew',
    class: 'keys-and-trust',
    title: 'a wrong clock makes expired or stale material look valid',
  },
  {
    id: 'T42',
    name: 'revoked-device',
    class: 'keys-and-trust',
    title: 'a retired device keeps receiving messages and presence',
  },
  {
    id: 'T43',
    name: 'cross-account-access',
    class: 'presence-and-access',
    title: "an authenticated user reaches another user's queue, keys or subscriptions",
  },
  {
    id: 'T44',
    name: 'device-proof-replay',
    class: 'authentication',
    title: 'a device-binding signature replayed on another connection',
  },
  {
    id: 'T45',
    name: 'forged-third-domain-sender',
    class: 'federation',
    title: 'a peer sends an object claiming a third domain as sender',
  },
  {
    id: 'T46',
    name: 'federation-link-replay',
    class: 'federation',
    title: 'link frames replayed to duplicate deliveries',
  },
  {
    id: 'T47',
    name: 'srv-redirection',
    class: 'federation',
    title: "spoofed DNS or SRV answers send a domain's traffic elsewhere",
  },
  {
    id: 'T48',
    name: 'decryption-oracle',
    class: 'content',
    title: 'crafted ciphertexts to tell which check failed',
  },
  {
    id: 'T49',
    name: 'nonce-reuse',
    class: 'content',
    title: 'nonce reuse under one key, or weak randomness',
  },
  {
    id: 'T50',
    name: 'dependency-rule',
    class: 'content',
    title: 'the server reaches code that opens sealed payloads, or libsodium outside src/crypto',
  },
  {
    id: 'T51',
    name: 'directory-leg',
    class: 'authentication',
    title: 'cleartext LDAP, anonymous binds with empty passwords, filter injection',
  },
  {
    id: 'T52',
    name: 'client-cert-misvalidation',
    class: 'authentication',
    title: 'EXTERNAL with a certificate from another CA, expired, revoked or for another user',
  },
  {
    id: 'T53',
    name: 'principal-mapping-confusion',
    class: 'authentication',
    title: 'a principal of another realm or domain maps to a local address',
  },
  {
    id: 'T54',
    name: 'address-confusion',
    class: 'keys-and-trust',
    title: 'two spellings of one address slip past a decision',
  },
  {
    id: 'T55',
    name: 'insecure-configuration',
    class: 'operations-and-storage',
    title: 'a configuration that allows PLAIN without TLS or weak SCRAM',
  },
  {
    id: 'T56',
    name: 'tls-early-data',
    class: 'transport-and-robustness',
    title: 'TLS 1.3 early data replayed; a resumed session reusing a binding',
  },
  {
    id: 'T57',
    name: 'unbound-login-relay',
    class: 'authentication',
    title: 'a MITM relays a login made without channel binding',
  },
  {
    id: 'T58',
    name: 'payload-parser-abuse',
    class: 'parsing',
    title: "a contact sends a hostile CPIM document to the recipient's client",
  },
];

/**
 * The placeholder threat of a row the suite does not play: NOT-TESTED with the row's reason.
 *
 * @example
 * ```ts
 * placeholder(THREAT_ROWS[0]).run(ctx); // { verdict: 'NOT-TESTED', summary: '…' }
 * ```
 */
export function placeholder(row: ThreatRow): Threat {
  return {
    id: row.id,
    name: row.name,
    class: row.class,
    title: row.title,
    run: () => Promise.resolve({ verdict: 'NOT-TESTED', summary: row.notTested ?? NOT_YET }),
  };
}

/**
 * The catalogue from the implemented threats: each row takes the threat with its id, or a
 * placeholder. A threat whose id is not a row, or an id implemented twice, is a bug.
 *
 * @throws ImppError `ERR_INVALID_ARGUMENT` for an unknown or duplicate id.
 * @example
 * ```ts
 * const catalogue = buildCatalogue([...transportThreats, ...authenticationThreats]);
 * ```
 */
export function buildCatalogue(
  implemented: readonly Threat[],
  rows: readonly ThreatRow[] = THREAT_ROWS,
): Threat[] {
  const byId = new Map<string, Threat>();
  for (const t of implemented) {
    if (byId.has(t.id)) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `threat ${t.id} is implemented twice`);
    }
    if (!rows.some((r) => r.id === t.id)) {
      throw new ImppError('ERR_INVALID_ARGUMENT', `threat ${t.id} is not a row of §8`);
    }
    byId.set(t.id, t);
  }
  return rows.map((row) => byId.get(row.id) ?? placeholder(row));
}

/** Every threat the suite implements, from the class files. */
export const IMPLEMENTED_THREATS: readonly Threat[] = [
  ...contentThreats,
  ...keysThreats,
  ...accessThreats,
  ...authenticationThreats,
  ...transportThreats,
  ...parsingThreats,
  ...storageThreats,
  ...federationThreats,
  dependencyRuleThreat,
];

/** The shipped catalogue: all 58 rows of docs/security-model.md §8, in order. */
export const CATALOGUE: readonly Threat[] = buildCatalogue(IMPLEMENTED_THREATS);
