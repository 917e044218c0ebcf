/**
 * The timing test of T19: a two-sided Mann-Whitney U test (normal approximation with the tie
 * correction) on two samples of response times.
 *
 * Why this test: it compares ranks, not means, so the long right tail of a noisy 2-core machine
 * (a GC pause, a scheduler hiccup) moves one rank, not the statistic. Under the null hypothesis
 * (both groups from one distribution) and with the groups interleaved in random order, so that
 * drift of the machine hits both alike, the probability of a false alarm is the significance
 * level α. The suite uses α = 0.001 and additionally requires the medians to differ by at least a
 * floor (1 ms), so a statistically "significant" difference far below any exploitable one is not
 * reported: the false-positive rate is at most 0.1 % per run.
 */

/** Result of {@link mannWhitney}. */
export interface MannWhitneyResult {
  readonly u: number;
  readonly z: number;
  /** Two-sided p-value (normal approximation). */
  readonly p: number;
  readonly medianA: number;
  readonly medianB: number;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((x, y) => x - y);
  const n = s.length;
  if (n === 0) return Number.NaN;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** erfc by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * z);
  const poly =
    t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const r = poly * Math.exp(-z * z);
  return x >= 0 ? r : 2 - r;
}

/**
 * Two-sided Mann-Whitney U test of samples `a` and `b` (each at least 8 values).
 *
 * @example
 * ```ts
 * const { p } = mannWhitney(existingMs, absentMs);
 * if (p < 0.001) report('timing differs');
 * ```
 */
export function mannWhitney(a: readonly number[], b: readonly number[]): MannWhitneyResult {
  const n1 = a.length;
  const n2 = b.length;
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort(
    (x, y) => x.v - y.v,
  );
  const ranks = new Array<number>(all.length);
  let tieTerm = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]?.v === all[i]?.v) j++;
    const rank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) ranks[k] = rank;
    const t = j - i + 1;
    tieTerm += t ** 3 - t;
    i = j + 1;
  }
  let r1 = 0;
  all.forEach((x, i) => {
    if (x.g === 0) r1 += ranks[i] as number;
  });
  const u1 = r1 - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  const z = variance > 0 ? (u1 - mean) / Math.sqrt(variance) : 0;
  const p = Math.min(1, erfc(Math.abs(z) / Math.SQRT2));
  return { u: u1, z, p, medianA: median(a), medianB: median(b) };
}
