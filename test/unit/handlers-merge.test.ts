// Scatter-gather property tests: for random inputs cut into random contiguous shards, merging the shards'
// partials gives the whole-run result — exactly (up to 1e-9 relative) for counts, means, extremes, spreads,
// windows and alerts; within the documented rank bound (quantile-summary.ts) for sketched percentiles.
import { describe, expect, it } from "vitest";
import {
  aggregateHandler,
  anomalyHandler,
  HandlerInputError,
  plainContext,
  quantileSorted,
  runAggregate,
  runAnomaly,
  runScatterGather,
  runShards,
  runStats,
  runThreshold,
  sliceShard,
  statsHandler,
  SUMMARY_INTERVALS,
  thresholdHandler,
  type AggregateResult,
  type AnomalyResult,
  type HandlerInput,
  type StatsResult,
  type ThresholdResult,
} from "../../lib/analytics/index.js";
import { rng } from "../helpers/rng.js";

const ctx = plainContext();
const TRIALS = 40;

const normal = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const DISTRIBUTIONS = [
  (r: () => number) => (r() - 0.5) * 2e6,
  (r: () => number) => 293.15 + 0.2 * normal(r),
  (r: () => number) => Math.sign(r() - 0.5) * Math.exp(8 * r()),
  (r: () => number) => Math.floor(r() * 5),
  (r: () => number) => 1e9 + r(),
];

/** A random trial: values, a shard count 1..12, sometimes shards big enough (> 1025) that summaries approximate. */
function trial(seed: number): { r: () => number; values: number[]; k: number } {
  const r = rng(seed);
  const big = r() < 0.3;
  const n = big ? int(r, 3000, 30_000) : int(r, 1, 2500);
  const dist = DISTRIBUTIONS[int(r, 0, DISTRIBUTIONS.length - 1)];
  return { r, values: Array.from({ length: n }, () => dist(r)), k: int(r, 1, 12) };
}

/** k contiguous shards at random cut points; empty shards are allowed (a splitter may produce them). */
function randomShards(r: () => number, input: HandlerInput, n: number, k: number): { shards: HandlerInput[]; sizes: number[] } {
  const cuts = Array.from({ length: k - 1 }, () => int(r, 0, n)).sort((a, b) => a - b);
  const bounds = [0, ...cuts, n];
  const shards: HandlerInput[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < k; i++) {
    shards.push(sliceShard(input, bounds[i], bounds[i + 1]));
    sizes.push(bounds[i + 1] - bounds[i]);
  }
  return { shards, sizes };
}

/** The documented bound E: Σ over shards of (⌈(n_i - 1)/m⌉ - 1), 0 for shards of at most m+1 values. */
const rankBound = (sizes: number[]) => sizes.reduce((e, n) => e + (n <= SUMMARY_INTERVALS + 1 ? 0 : Math.ceil((n - 1) / SUMMARY_INTERVALS) - 1), 0);

function expectRelClose(actual: number, expected: number, scale: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-9 * Math.max(Math.abs(expected), scale, 1e-300));
}

/** The merged q-quantile lies in [x_(⌊h⌋-E), x_(⌊h⌋+1)]; with E = 0 it equals the exact one. */
function expectWithinRankBound(estimate: number, sorted: Float64Array, q: number, e: number): void {
  const h = q * (sorted.length - 1);
  const lo = Math.floor(h);
  if (e === 0) {
    expect(estimate).toBe(quantileSorted(sorted, q));
    return;
  }
  const lower = sorted[Math.max(0, lo - e)];
  const upper = sorted[Math.min(sorted.length - 1, lo + 1)];
  const slack = 1e-12 * Math.max(Math.abs(lower), Math.abs(upper));
  expect(estimate).toBeGreaterThanOrEqual(lower - slack);
  expect(estimate).toBeLessThanOrEqual(upper + slack);
}

describe("stats merge", () => {
  it("equals the whole run: moments within 1e-9 relative, percentiles within the rank bound", () => {
    let approximated = 0;
    for (let seed = 1; seed <= TRIALS; seed++) {
      const { r, values, k } = trial(seed);
      const input = { values };
      const { shards, sizes } = randomShards(r, input, values.length, k);
      const whole = runStats(input, ctx);
      const merged = runShards(statsHandler, shards, ctx) as StatsResult;
      const scale = Math.max(Math.abs(whole.min), Math.abs(whole.max));
      expect(merged.count).toBe(whole.count);
      expect(merged.min).toBe(whole.min);
      expect(merged.max).toBe(whole.max);
      expectRelClose(merged.mean, whole.mean, scale);
      expectRelClose(merged.stddev, whole.stddev, scale * 1e-6);
      const sorted = Float64Array.from(values).sort();
      const e = rankBound(sizes);
      if (e > 0) approximated++;
      expectWithinRankBound(merged.p50, sorted, 0.5, e);
      expectWithinRankBound(merged.p95, sorted, 0.95, e);
      expectWithinRankBound(merged.p99, sorted, 0.99, e);
    }
    expect(approximated).toBeGreaterThan(0); // the bound, not just exactness, was exercised
  });

  it("refuses to merge only empty shards, with the run's own message", () => {
    const empty = statsHandler.runPartial({ values: [] }, ctx);
    expect(() => statsHandler.merge([empty, empty])).toThrow(
      new HandlerInputError('stats: "values" must be a non-empty array of finite numbers; every shard was empty'),
    );
    expect(() => statsHandler.merge([{ count: 2 }])).toThrow(HandlerInputError);
  });
});

describe("anomaly merge", () => {
  const withOutliers = (seed: number) => {
    const t = trial(seed);
    const spread = Math.max(...t.values) - Math.min(...t.values) || 1;
    for (let i = 0; i < t.values.length / 40; i++) t.values[int(t.r, 0, t.values.length - 1)] += (t.r() < 0.5 ? -1 : 1) * spread * 3;
    return t;
  };

  it("zscore: global mean/stddev within 1e-9 relative, the same anomalies (bar scores on the threshold)", () => {
    for (let seed = 100; seed < 100 + TRIALS; seed++) {
      const { r, values, k } = withOutliers(seed);
      const input = { values, threshold: 2.5 };
      const whole = runAnomaly(input, ctx);
      const merged = runShards(anomalyHandler, randomShards(r, input, values.length, k).shards, ctx) as AnomalyResult;
      if (whole.method !== "zscore" || merged.method !== "zscore") throw new Error("expected zscore");
      const scale = Math.max(...values.map(Math.abs));
      expect(merged.count).toBe(whole.count);
      expectRelClose(merged.mean, whole.mean, scale);
      expectRelClose(merged.stddev, whole.stddev, scale * 1e-6);
      // Scores are differences of values near the mean: their rounding error scales with max|x| / stddev.
      const scoreScale = scale / whole.stddev;
      const a = new Set(whole.anomalies.map((x) => x.index));
      const b = new Set(merged.anomalies.map((x) => x.index));
      for (const i of [...a, ...b]) {
        if (a.has(i) === b.has(i)) continue;
        const score = Math.abs((values[i] - whole.mean) / whole.stddev);
        expect(Math.abs(score - 2.5)).toBeLessThan(1e-9 * scoreScale); // only a value on the threshold may flip
      }
      const byIndex = new Map(whole.anomalies.map((x) => [x.index, x]));
      for (const m of merged.anomalies) {
        const w = byIndex.get(m.index);
        if (!w) continue;
        expect(m.value).toBe(w.value);
        expectRelClose(m.score, w.score, scoreScale);
      }
      expect(merged.anomalies.map((x) => x.index)).toEqual([...b].sort((x, y) => x - y)); // input order
    }
  });

  it("mad: median and MAD within the rank bound (exact for small shards); anomalies scored against them", () => {
    let approximated = 0;
    for (let seed = 200; seed < 200 + TRIALS; seed++) {
      const { r, values, k } = withOutliers(seed);
      const input = { values, method: "mad", threshold: 3.5 };
      const { shards, sizes } = randomShards(r, input, values.length, k);
      const whole = runAnomaly(input, ctx);
      const merged = runShards(anomalyHandler, shards, ctx) as AnomalyResult;
      if (whole.method !== "mad" || merged.method !== "mad") throw new Error("expected mad");
      const e = rankBound(sizes);
      if (e === 0) {
        expect(merged).toEqual(whole);
        continue;
      }
      approximated++;
      const sorted = Float64Array.from(values).sort();
      expectWithinRankBound(merged.median, sorted, 0.5, e);
      // |x - m̂| differs from |x - m| by at most δ, so the deviations' order statistics shift by at most δ.
      const delta = Math.abs(merged.median - whole.median);
      const dev = Float64Array.from(values, (x) => Math.abs(x - whole.median)).sort();
      const lo = Math.floor(0.5 * (values.length - 1));
      const slack = 1e-9 * Math.max(1, whole.mad, delta);
      expect(merged.mad).toBeGreaterThanOrEqual(dev[Math.max(0, lo - e)] - delta - slack);
      expect(merged.mad).toBeLessThanOrEqual(dev[Math.min(values.length - 1, lo + 1)] + delta + slack);
      const expected = merged.mad === 0 ? [] : values.flatMap((x, i) => (Math.abs((0.6745 * (x - merged.median)) / merged.mad) > 3.5 ? [i] : []));
      expect(merged.anomalies.map((x) => x.index)).toEqual(expected);
    }
    expect(approximated).toBeGreaterThan(0);
  });

  it("needs the prepare rounds before runPartial, and says so", () => {
    expect(() => anomalyHandler.runPartial({ values: [1] }, ctx)).toThrow(/run the prepare rounds first/);
  });
});

describe("aggregate merge", () => {
  it("merges windows that straddle shard boundaries into the whole run's windows", () => {
    for (let seed = 300; seed < 300 + TRIALS; seed++) {
      const { r, values, k } = trial(seed);
      const samples = values.map((v) => ({ t: 1.7e12 + int(r, -50_000, 3_600_000), v }));
      const input = { samples, windowMs: int(r, 1, 600_000) };
      const whole = runAggregate(input, ctx);
      const merged = runShards(aggregateHandler, randomShards(r, input, samples.length, k).shards, ctx) as AggregateResult;
      expect(merged.windowMs).toBe(whole.windowMs);
      expect(merged.windows.map((w) => [w.start, w.count, w.min, w.max])).toEqual(whole.windows.map((w) => [w.start, w.count, w.min, w.max]));
      merged.windows.forEach((w, i) => expectRelClose(w.mean, whole.windows[i].mean, Math.abs(whole.windows[i].max)));
    }
  });
});

describe("threshold merge", () => {
  it("concatenates alerts in input order with whole-input indexes", () => {
    for (let seed = 400; seed < 400 + TRIALS; seed++) {
      const { r, values, k } = trial(seed);
      const sorted = [...values].sort((a, b) => a - b);
      const rules = [
        { name: "high", op: ">", value: sorted[Math.floor(values.length * 0.9)] },
        { name: "low", op: "<=", value: sorted[Math.floor(values.length * 0.1)] },
        { name: "eq", op: "==", value: values[0] },
      ];
      const input = r() < 0.5 ? { values, rules } : { samples: values.map((v, i) => ({ t: i * 1000, v })), rules };
      const whole = runThreshold(input, ctx);
      const merged = runShards(thresholdHandler, randomShards(r, input, values.length, k).shards, ctx) as ThresholdResult;
      expect(merged).toEqual(whole);
    }
  });
});

describe("runScatterGather", () => {
  it("splits into at most n even shards and agrees with the whole run for every built-in", () => {
    const r = rng(7);
    const values = Array.from({ length: 5000 }, () => 20 + normal(r));
    const samples = values.map((v, i) => ({ t: i * 250, v }));
    // 5 or more shards of 5000 values hold <= 1025 values each, so even percentiles and MAD are exact.
    for (const count of [5, 8, 10_000]) {
      const stats = runScatterGather(statsHandler, { values }, count, ctx) as StatsResult;
      const whole = runStats({ values }, ctx);
      expect({ ...stats, mean: 0, stddev: 0 }).toEqual({ ...whole, mean: 0, stddev: 0 });
      expectRelClose(stats.mean, whole.mean, 1);
      expectRelClose(stats.stddev, whole.stddev, 1);
      expect(runScatterGather(thresholdHandler, { values, rules: [{ name: "x", op: ">", value: 21 }] }, count, ctx)).toEqual(
        runThreshold({ values, rules: [{ name: "x", op: ">", value: 21 }] }, ctx),
      );
      const agg = runScatterGather(aggregateHandler, { samples, windowMs: 10_000 }, count, ctx) as AggregateResult;
      expect(agg.windows.map((w) => w.count)).toEqual(runAggregate({ samples, windowMs: 10_000 }, ctx).windows.map((w) => w.count));
      const mad = runScatterGather(anomalyHandler, { values, method: "mad" }, count, ctx);
      expect(mad).toEqual(runAnomaly({ values, method: "mad" }, ctx)); // shards of <= 1025 values: exact
    }
  });
});
