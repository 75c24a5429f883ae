// A mergeable quantile summary for scatter-gather: each shard keeps m+1 of its order statistics with the
// rank gap each one stands for; merging is the union. Pure: no I/O.
//
// Error bound (deterministic). A shard of n_i values keeps the values at ranks round(j·(n_i-1)/m),
// j = 0..m (all values when n_i <= m+1), so each kept value stands for at most g_i = ⌈(n_i-1)/m⌉ values.
// Let E = Σ_i (g_i - 1) over the merged shards (< n/m; 0 when every shard has <= m+1 values: exact).
// The estimate of the value at global rank t is an actual input value x_r with t-E <= r <= t. So a merged
// percentile, interpolated as in quantiles.ts between estimated ranks ⌊h⌋ and ⌊h⌋+1 (h = q·(n-1)), lies in
// [x_(⌊h⌋-E), x_(⌊h⌋+1)] — within E ranks below the exact percentile's neighbours. With m = 1024 that is
// under 0.1% of n ranks. Why ranks, not a relative-value sketch (DDSketch): sensor readings sit on large
// offsets (293.1 K ± 0.2), where a 1% value error would swamp the spread; rank error adapts to the data.

import { HandlerInputError } from "./errors.js";
import { lerp } from "./quantiles.js";
import { asRecord, describeValue, stateNumber } from "./validate.js";

/** Kept order statistics per shard, minus one (m). */
export const SUMMARY_INTERVALS = 1024;

/**
 * Kept values in ascending order with the number of input values each stands for (sum = count), and the
 * bound E above for this summary (summed when merging).
 */
export type QuantileSummary = { count: number; values: number[]; weights: number[]; maxRankError: number };

/** Summarises a sorted array. */
export function summarize(sorted: ArrayLike<number>, intervals: number = SUMMARY_INTERVALS): QuantileSummary {
  const n = sorted.length;
  if (n <= intervals + 1) {
    return { count: n, values: Array.from(sorted), weights: new Array<number>(n).fill(1), maxRankError: 0 };
  }
  const values: number[] = [];
  const weights: number[] = [];
  let maxGap = 1;
  let prev = 0;
  for (let j = 1; j <= intervals; j++) {
    // Strictly increasing because (n-1)/m >= 1 here; the last rank is n-1, standing for itself alone.
    const rank = Math.round((j * (n - 1)) / intervals);
    values.push(sorted[prev]);
    weights.push(rank - prev);
    if (rank - prev > maxGap) maxGap = rank - prev;
    prev = rank;
  }
  values.push(sorted[n - 1]);
  weights.push(1);
  return { count: n, values, weights, maxRankError: maxGap - 1 };
}

/** The union of summaries: no extra error, size grows with the number of shards. */
export function mergeSummaries(summaries: readonly QuantileSummary[]): QuantileSummary {
  const pairs: [number, number][] = [];
  let count = 0;
  let maxRankError = 0;
  for (const s of summaries) {
    for (let i = 0; i < s.values.length; i++) pairs.push([s.values[i], s.weights[i]]);
    count += s.count;
    maxRankError += s.maxRankError;
  }
  pairs.sort((a, b) => a[0] - b[0]);
  return { count, values: pairs.map((p) => p[0]), weights: pairs.map((p) => p[1]), maxRankError };
}

/** Estimated q-quantile (see the bound above) of a non-empty summary. */
export function summaryQuantile(s: QuantileSummary, q: number): number {
  const h = q * (s.count - 1);
  const lo = Math.floor(h);
  const f = h - lo;
  const a = valueAtRank(s, lo);
  return f === 0 ? a : lerp(a, valueAtRank(s, Math.min(lo + 1, s.count - 1)), f);
}

function valueAtRank(s: QuantileSummary, rank: number): number {
  let seen = 0;
  for (let i = 0; i < s.values.length; i++) {
    seen += s.weights[i];
    if (rank < seen) return s.values[i];
  }
  return s.values[s.values.length - 1];
}

/** Validates a summary received from another shard. */
export function parseSummary(handler: string, value: unknown, what: string): QuantileSummary {
  const r = asRecord(handler, value, what);
  const count = stateNumber(handler, r, "count", what);
  const maxRankError = stateNumber(handler, r, "maxRankError", what);
  const { values, weights } = r;
  if (!Array.isArray(values) || !Array.isArray(weights) || values.length !== weights.length) {
    throw new HandlerInputError(`${handler}: ${what} must have "values" and "weights" arrays of equal length`);
  }
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    const v: unknown = values[i];
    const w: unknown = weights[i];
    if (typeof v !== "number" || !Number.isFinite(v) || typeof w !== "number" || !Number.isInteger(w) || w < 1) {
      throw new HandlerInputError(`${handler}: ${what} entry ${i} is invalid (value ${describeValue(v)}, weight ${describeValue(w)})`);
    }
    total += w;
  }
  if (total !== count) throw new HandlerInputError(`${handler}: ${what} weights sum to ${total}, not its count ${count}`);
  return { count, values: values as number[], weights: weights as number[], maxRankError };
}
