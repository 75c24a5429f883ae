// Sample summaries and number formatting for the benchmark. Pure: no clocks, no I/O.

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/**
 * Nearest-rank percentile of ascending samples: the smallest sample with at least a share q of the samples at or
 * below it (so p99 of 300 samples is the 297th). Always an observed value, never interpolated.
 */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1];
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.length === 0 ? Number.NaN : s.reduce((a, b) => a + b, 0) / s.length;
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    p50: percentile(s, 0.5),
    p90: percentile(s, 0.9),
    p99: percentile(s, 0.99),
    p999: percentile(s, 0.999),
    max: s.at(-1) ?? Number.NaN,
    mean,
  };
}

/** Milliseconds with precision that suits their size: 0.412, 3.41, 41.2, 412. */
export function fmtMs(ms: number): string {
  if (ms === Number.POSITIVE_INFINITY) return "∞";
  if (!Number.isFinite(ms)) return "n/a";
  const a = Math.abs(ms);
  return a < 1 ? ms.toFixed(3) : a < 10 ? ms.toFixed(2) : a < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

/** An integer with thousands separators: 20,000. */
export const fmtInt = (n: number): string => Math.round(n).toLocaleString("en-US");

/**
 * A latency summary in one cell. Small samples (under 20) show min / median / max, since their p90 and p99 would
 * only repeat the maximum; p99.9 is shown when asked for and the sample has at least 1,000 values.
 */
export function fmtSummary(s: Summary, opts: { p999?: boolean } = {}): string {
  if (s.n === 0) return "no samples";
  if (s.n < 20) return `median ${fmtMs(s.p50)} · min ${fmtMs(s.min)} · max ${fmtMs(s.max)} ms (n=${s.n})`;
  const tail = opts.p999 && s.n >= 1000 ? ` · p99.9 ${fmtMs(s.p999)}` : "";
  return `p50 ${fmtMs(s.p50)} · p90 ${fmtMs(s.p90)} · p99 ${fmtMs(s.p99)}${tail} · max ${fmtMs(s.max)} ms (n=${fmtInt(s.n)})`;
}

/** A rate per second: 3,412 tasks/s. */
export const fmtRate = (perSecond: number): string => (Number.isFinite(perSecond) ? `${fmtInt(perSecond)} tasks/s` : "n/a");

/** Collects failure messages, keeping the first `keep` verbatim and counting the rest. */
export class Failures {
  private readonly kept: string[] = [];
  count = 0;

  constructor(
    private readonly scenario: string,
    private readonly keep = 10,
  ) {}

  add(message: string): void {
    this.count++;
    if (this.kept.length < this.keep) this.kept.push(`${this.scenario}: ${message}`);
  }

  list(): string[] {
    const more = this.count - this.kept.length;
    return more > 0 ? [...this.kept, `${this.scenario}: … and ${fmtInt(more)} more failures`] : [...this.kept];
  }
}
