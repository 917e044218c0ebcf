/**
 * The EXTERNAL threats (docs/security-model.md §8): T52 `client-cert-misvalidation` and T53
 * `principal-mapping-confusion`, played with client certificates the run can mint
 * ({@link ThreatContext.pki}: the suite's own CA with `--spawn`, or the operator's test CA).
 *
 * The attacks speak the protocol directly (src/threats/raw.ts), so that the suite chooses the
 * authorization identity and reads the address the server authenticated from AUTH_SUCCESS;
 * nothing is bound or registered.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { randomBytes, toHex } from '../../crypto/index.js';
import { ClientFrame } from '../../protocol/frames.js';
import { formatAddress, parseAddress } from '../../trust/address.js';
import { describeError } from '../context.js';
import { RawClient, asBody, textOf } from '../raw.js';
import type {
  IssuedClientCert,
  TestAccount,
  Threat,
  ThreatContext,
  ThreatOutcome,
} from '../types.js';
import { MITIGATED, NOT_TESTED, VULNERABLE } from './outcome.js';

const DAY_MS = 86_400_000;
/** How long a refused EXTERNAL attempt may take to be answered. */
const ANSWER_MS = 3_000;

/** What one EXTERNAL attempt came to. */
type Attempt =
  | { readonly outcome: 'success'; readonly address: string }
  | { readonly outcome: 'refused'; readonly failure: string }
  /** The TLS handshake or the connection before the offer failed, or EXTERNAL was not offered. */
  | { readonly outcome: 'no-exchange'; readonly detail: string };

function describe(a: Attempt): string {
  switch (a.outcome) {
    case 'success':
      return `logged in as ${a.address}`;
    case 'refused':
      return `refused (${a.failure})`;
    case 'no-exchange':
      return `refused before EXTERNAL (${a.detail})`;
  }
}

/** EXTERNAL with `cert` (or none) asking for `authzid` (empty: the certificate's identity). */
async function tryExternal(
  ctx: ThreatContext,
  cert: IssuedClientCert | undefined,
  authzid: string,
): Promise<Attempt> {
  let raw: RawClient;
  try {
    raw = await RawClient.connect(
      ctx.target,
      cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem },
    );
  } catch (e) {
    return { outcome: 'no-exchange', detail: `TLS: ${describeError(e)}` };
  }
  try {
    let offer: string[];
    try {
      offer = await raw.offer();
    } catch (e) {
      return { outcome: 'no-exchange', detail: describeError(e) };
    }
    if (!offer.includes('EXTERNAL')) return { outcome: 'no-exchange', detail: 'not offered' };
    raw.conn.send(ClientFrame.AUTH_START, {
      mechanism: 'EXTERNAL',
      initial: new TextEncoder().encode(authzid),
    });
    const answer = await raw.next(
      [ClientFrame.AUTH_SUCCESS, ClientFrame.AUTH_FAILURE, ClientFrame.AUTH_CHALLENGE],
      ANSWER_MS,
    );
    if (answer === undefined) {
      return { outcome: 'no-exchange', detail: raw.isClosed ? 'connection closed' : 'no answer' };
    }
    const body = asBody(answer.body);
    if (answer.type === ClientFrame.AUTH_SUCCESS)
      return { outcome: 'success', address: textOf(body.address) };
    if (answer.type === ClientFrame.AUTH_FAILURE)
      return { outcome: 'refused', failure: textOf(body.failure) || '?' };
    return { outcome: 'no-exchange', detail: 'an unexpected EXTERNAL challenge' };
  } finally {
    raw.close();
  }
}

/** Whether a SCRAM-SHA-256-PLUS login of `account` works right now (one line for the evidence). */
async function scramWorks(ctx: ThreatContext, account: TestAccount): Promise<string | undefined> {
  let raw: RawClient | undefined;
  try {
    raw = await RawClient.connect(ctx.target);
    await raw.authenticate(account);
    return undefined;
  } catch (e) {
    return describeError(e);
  } finally {
    raw?.close();
  }
}

interface Prepared {
  readonly alice: TestAccount;
  readonly bob: TestAccount;
  readonly pki: NonNullable<ThreatContext['pki']>;
}

/**
 * What both threats check first: certificates to mint, EXTERNAL offered, and the control — a
 * certificate of the trusted CA logs alice in with EXTERNAL (with an empty and with her own
 * authorization identity), and bob logs in with SCRAM.
 */
async function prepare(ctx: ThreatContext): Promise<Prepared | ThreatOutcome> {
  const [alice, bob] = ctx.accounts;
  if (alice === undefined || bob === undefined) return NOT_TESTED('needs two test accounts');
  const pki = ctx.pki;
  if (pki === undefined) {
    return NOT_TESTED(
      'needs client certificates of a CA the deployment trusts for EXTERNAL: run with --spawn, or give --client-ca-cert and --client-ca-key with --target',
    );
  }
  const offer = await ctx.control('the target offers mechanisms', async () => {
    const probe = await RawClient.connect(ctx.target);
    try {
      return await probe.offer();
    } finally {
      probe.close();
    }
  });
  if (!offer.includes('EXTERNAL')) {
    return NOT_TESTED(`the target does not offer EXTERNAL (offers ${offer.join(', ')})`);
  }
  await ctx.control(
    `a certificate of the trusted CA logs ${alice.address} in with EXTERNAL`,
    async () => {
      const cert = await pki.issue({ names: [alice.address] });
      for (const authzid of ['', alice.address]) {
        const a = await tryExternal(ctx, cert, authzid);
        if (a.outcome !== 'success' || a.address !== alice.address) {
          throw new Error(`authzid "${authzid}": ${describe(a)}`);
        }
      }
    },
  );
  await ctx.control(`${bob.address} logs in with SCRAM on the same port`, async () => {
    const problem = await scramWorks(ctx, bob);
    if (problem !== undefined) throw new Error(problem);
  });
  return { alice, bob, pki };
}

/** One attack: a certificate (or none) and an authorization identity. */
interface Case {
  readonly what: string;
  readonly cert: () => Promise<IssuedClientCert | undefined>;
  readonly authzid?: string;
}

const t52: Threat = {
  id: 'T52',
  name: 'client-cert-misvalidation',
  class: 'authentication',
  title:
    'EXTERNAL with a rogue, expired, misused or missing client certificate, or for another user',
  deadlineMs: 20_000,
  async run(ctx) {
    const ready = await prepare(ctx);
    if ('verdict' in ready) return ready;
    const { alice, bob, pki } = ready;
    const names = [alice.address];
    const cases: readonly Case[] = [
      {
        what: 'a certificate from a rogue CA with the same name',
        cert: () => pki.issue({ names, rogue: true }),
      },
      {
        what: 'an expired certificate',
        cert: () =>
          pki.issue({
            names,
            notBefore: new Date(Date.now() - 10 * DAY_MS),
            notAfter: new Date(Date.now() - DAY_MS),
          }),
      },
      {
        what: 'a certificate for serverAuth only',
        cert: () => pki.issue({ names, usage: 'server' }),
      },
      {
        what: 'a certificate without an extended key usage',
        cert: () => pki.issue({ names, usage: 'none' }),
      },
      { what: 'no certificate', cert: () => Promise.resolve(undefined) },
      {
        what: `a certificate for ${alice.address} asking to act as ${bob.address}`,
        cert: () => pki.issue({ names }),
        authzid: bob.address,
      },
    ];
    const evidence: string[] = [];
    const problems: string[] = [];
    let limited = false;
    for (const c of cases) {
      const attempt = await tryExternal(ctx, await c.cert(), c.authzid ?? '');
      const scram = await scramWorks(ctx, bob);
      evidence.push(
        `${c.what}: ${describe(attempt)}; SCRAM afterwards: ${scram === undefined ? 'ok' : scram}`,
      );
      if (attempt.outcome === 'success') problems.push(`${c.what} ${describe(attempt)}`);
      if (attempt.outcome === 'refused' && attempt.failure === 'temporary-auth-failure')
        limited = true;
      if (scram !== undefined) problems.push(`SCRAM failed after ${c.what} (${scram})`);
    }
    if (problems.length > 0) return VULNERABLE(problems.join('; '), evidence);
    if (limited) {
      return NOT_TESTED(
        'some attempts were answered temporary-auth-failure (rate limited or a provider down), so the certificate checks were not reached; run again later',
        evidence,
      );
    }
    return MITIGATED(
      `${cases.length} misused certificates (rogue CA of the same name, expired, serverAuth only, no extended key usage, none, another user's authzid) all refused; SCRAM worked after each`,
      evidence,
    );
  },
};

function token(): string {
  return toHex(randomBytes(4));
}

/** `s` in fullwidth forms (U+FF01…): a Unicode spelling that IDNA and PRECIS map back to ASCII. */
function fullwidth(s: string): string {
  return s.replace(/[a-z0-9]/gi, (c) => String.fromCodePoint(c.charCodeAt(0) + 0xfee0));
}

/** The canonical address of `name`, or `undefined` when it is no valid address. */
function canonical(name: string): string | undefined {
  try {
    return formatAddress(parseAddress(name));
  } catch {
    return undefined;
  }
}

const t53: Threat = {
  id: 'T53',
  name: 'principal-mapping-confusion',
  class: 'authentication',
  title:
    'a certificate name of another domain, two names, or an odd spelling maps to a local address',
  deadlineMs: 20_000,
  async run(ctx) {
    const ready = await prepare(ctx);
    if ('verdict' in ready) return ready;
    const { alice, bob, pki } = ready;
    const domain = ctx.target.domain;
    const user = parseAddress(alice.address).user;
    const foreign = `threat-${token()}.example`;
    const sub = `sub-${token()}.${domain}`;
    const evidence: string[] = [];
    const problems: string[] = [];
    // Set inside the helper below.
    const seen = { limited: false };
    const attempt = async (
      what: string,
      names: readonly string[],
      authzid = '',
    ): Promise<Attempt | undefined> => {
      let cert: IssuedClientCert;
      try {
        cert = await pki.issue({ names });
      } catch (e) {
        evidence.push(`${what}: not issued (${describeError(e)})`);
        return undefined;
      }
      const a = await tryExternal(ctx, cert, authzid);
      evidence.push(`${what}: ${describe(a)}`);
      if (a.outcome === 'refused' && a.failure === 'temporary-auth-failure') seen.limited = true;
      return a;
    };

    // Names that are not one address of this domain: refused, whatever the authzid says.
    const mustRefuse: readonly [string, readonly string[], string?][] = [
      [`${user}@${foreign} (another domain)`, [`${user}@${foreign}`]],
      [
        `${user}@${foreign} asking to act as ${alice.address}`,
        [`${user}@${foreign}`],
        alice.address,
      ],
      [`${user}@${domain}.${foreign} (our domain as a prefix)`, [`${user}@${domain}.${foreign}`]],
      [`${user}@${sub} (a subdomain)`, [`${user}@${sub}`]],
      [`${alice.address} and ${bob.address} in one certificate`, [alice.address, bob.address]],
    ];
    for (const [what, names, authzid] of mustRefuse) {
      const r = await attempt(what, names, authzid);
      if (r?.outcome === 'success') problems.push(`${what} ${describe(r)}`);
    }

    // Odd spellings of alice's address: refused, or mapped to the canonical form of the very
    // name in the certificate, never to another local address.
    const unicodeDomain = domainToUnicode(domain);
    const otherLabelForm =
      unicodeDomain !== domain
        ? unicodeDomain
        : domainToASCII(domain) !== domain
          ? domainToASCII(domain)
          : fullwidth(domain);
    const odd: readonly [string, string][] = [
      ['upper case', alice.address.toUpperCase()],
      ['a trailing dot', `${alice.address}.`],
      [
        'the other label form of the domain (U-label, A-label or fullwidth)',
        `${user}@${otherLabelForm}`,
      ],
      ['a fullwidth local part', `${fullwidth(user)}@${domain}`],
      [
        'a Cyrillic look-alike local part',
        `${user.replace(/a/g, '\u0430').replace(/e/g, '\u0435').replace(/o/g, '\u043e')}@${domain}`,
      ],
    ];
    for (const [what, name] of odd) {
      const r = await attempt(`${what} (${JSON.stringify(name)})`, [name]);
      if (r?.outcome !== 'success') continue;
      // The login must land on the canonical form of the name the CA meant, or not at all.
      const expected = canonical(name);
      if (expected === undefined || r.address !== expected) {
        problems.push(
          `a certificate naming ${JSON.stringify(name)} logged in as ${r.address}${
            expected === undefined ? ', which is not its canonical form' : ` instead of ${expected}`
          }`,
        );
      }
    }
    const scram = await scramWorks(ctx, bob);
    evidence.push(`SCRAM afterwards: ${scram ?? 'ok'}`);
    if (scram !== undefined) problems.push(`SCRAM failed afterwards (${scram})`);
    if (problems.length > 0) return VULNERABLE(problems.join('; '), evidence);
    if (seen.limited) {
      return NOT_TESTED(
        'some attempts were answered temporary-auth-failure (rate limited or a provider down), so the mapping was not reached; run again later',
        evidence,
      );
    }
    return MITIGATED(
      `names of another domain, our domain as a prefix, a subdomain and two users in one certificate refused; ${odd.length} odd spellings refused or mapped to their own canonical address`,
      evidence,
    );
  },
};

/** T52 and T53, for src/threats/catalogue/authentication.ts. */
export const pkiThreats: readonly Threat[] = [t52, t53];
