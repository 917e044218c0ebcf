/**
 * The parser threats (T35, T36, T37, T58): every hostile input refused with the parser's typed
 * error, the parsers still working after; T37 also through a real target to a real SDK device.
 * The parsers have no switch to turn off (a parser that accepted a DOCTYPE would be another
 * parser), so the "can fail" proof here is the judgement every parser threat shares: a parser
 * that accepts a hostile input, or refuses it with an untyped or another error, is reported.
 */
import { describe, expect, it } from 'vitest';
import { ImppError } from '../../src/errors.js';
import { expectRefusals, parsingThreats } from '../../src/threats/catalogue/parsing.js';
import type { Threat } from '../../src/threats/types.js';
import { pick, runOne, sharedTarget } from './target.js';

const threat = (id: string): Threat => pick(parsingThreats, id);

describe('parser threats', () => {
  const target = sharedTarget();

  it.each(['T35', 'T36', 'T37', 'T58'])('%s is MITIGATED', async (id) => {
    const r = await runOne(threat(id), target());
    expect({ id, verdict: r.verdict, summary: r.summary, evidence: r.evidence }).toMatchObject({
      verdict: 'MITIGATED',
    });
  });
});

describe('the judgement the parser threats share', () => {
  it('reports a parser that accepts, throws untyped, or throws another code', () => {
    const r = expectRefusals('ERR_PAYLOAD_INVALID', [
      ['accepts', () => 'parsed'],
      [
        'untyped',
        () => {
          JSON.parse('{');
        },
      ],
      [
        'other code',
        () => {
          throw new ImppError('ERR_PROTOCOL', 'x');
        },
      ],
      [
        'right code',
        () => {
          throw new ImppError('ERR_PAYLOAD_INVALID', 'x');
        },
      ],
    ]);
    expect(r.accepted).toEqual([
      'accepts',
      'untyped (untyped SyntaxError, not ERR_PAYLOAD_INVALID)',
      'other code (ERR_PROTOCOL, not ERR_PAYLOAD_INVALID)',
    ]);
    expect(
      expectRefusals(null, [
        [
          'other code',
          () => {
            throw new ImppError('ERR_PROTOCOL', 'x');
          },
        ],
      ]).accepted,
    ).toEqual([]);
  });
});
