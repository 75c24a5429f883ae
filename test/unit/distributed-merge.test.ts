// Property tests of the coordinator's split + merge path (planSplit → sliceInput → shard steps as agents run them →
// combine/merge in the coordinator): for random inputs over 1..8 nodes of random free capacity, DISTRIBUTED and
// HYBRID results equal LOCAL's (handler.run on the whole input) — exactly up to float rounding for counts, means,
// extremes, stddev, windows, alerts and zscore anomalies; percentiles within the documented rank bound.
import { describe, expect, it } from "vitest";
import {
  anomalyHandler,
  plainContext,
  quantileSorted,
  runAggregate,
  runStats,
  runThreshold,
  buildHandlerInput,
  SUMMARY_INTERVALS,
} from "../../lib/analytics/index.js";
import type { TaskSpec } from "../../coordinator/tasks/types.js";
import { ShardSim, simNode, simSpec } from "../helpers/shard-sim.js";
import { rng } from "../helpers/rng.js";

const ctx = plainContext();

const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const normal = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

/** k nodes in c1 with random free cpu; the first serves device d1. */
function fleet(r: () => number, k: number): ShardSim {
  const nodes = Array.from({ length: k }, (_, i) => simNode(`n${i}`, "c1", { freeCpuMillis: int(r, 100, 4000), deviceIds: new Set(i === 0 ? ["d1"] : []) }));
  // A small points-per-ms figure so HYBRID really spreads small test inputs.
  return new ShardSim(nodes, undefined, [], { pointsPerCoreMs: 5, shardOverheadMs: 10 });
}

/** Runs `spec` split over a random fleet of k nodes and returns the parent's output, checking it used k shards when it could. */
function distributed(r: () => number, k: number, spec: TaskSpec, n: number): Record<string, unknown> {
  const sim = fleet(r, k);
  const id = sim.submit(spec);
  const parent = sim.run(id);
  expect(parent.state, parent.error).toBe("succeeded");
  if (spec.mode === "distributed") expect(parent.split!.shards.length).toBe(Math.min(k, n));
  expect(parent.split!.done).toBe(parent.split!.total);
  const cover = parent.split!.shards.map((s) => [s.start, s.end]);
  expect(cover[0][0]).toBe(0);
  expect(cover.at(-1)![1]).toBe(n);
  return parent.output as Record<string, unknown>;
}

const local = (spec: TaskSpec) =>
  buildHandlerInput(
    spec.input,
    spec.series
      ? { values: Float64Array.from(spec.series.values), timestamps: spec.series.timestamps.length ? Float64Array.from(spec.series.timestamps) : undefined }
      : undefined,
  );

function close(actual: unknown, expected: number, scale: number): void {
  expect(typeof actual).toBe("number");
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(1e-9 * Math.max(Math.abs(expected), scale, 1e-300));
}

/** Per-shard bound E of quantile-summary.ts: Σ (⌈(nᵢ-1)/m⌉ - 1) over shards bigger than m+1. */
const rankBound = (sizes: number[]) => sizes.reduce((e, n) => e + (n <= SUMMARY_INTERVALS + 1 ? 0 : Math.ceil((n - 1) / SUMMARY_INTERVALS) - 1), 0);

const MODES = ["distributed", "hybrid"] as const;

describe("DISTRIBUTED / HYBRID equal LOCAL through the coordinator's split and merge", () => {
  it("stats: moments exact (1e-9 relative), percentiles within the rank bound, for 1..8 shards, series and JSON input", () => {
    for (let seed = 1; seed <= 48; seed++) {
      const r = rng(seed);
      const k = ((seed - 1) % 8) + 1;
      const n = int(r, k, r() < 0.25 ? 6000 : 1500);
      const values = Array.from({ length: n }, () => (r() < 0.5 ? normal(r) * 100 : (r() - 0.5) * 1e6));
      const packed = r() < 0.5;
      const spec = simSpec({
        handler: "stats",
        mode: MODES[seed % 2],
        deviceId: "d1",
        input: packed ? {} : { values },
        series: packed ? { values, timestamps: [] } : undefined,
      });
      const sim = fleet(r, k);
      const id = sim.submit(spec);
      const parent = sim.run(id);
      expect(parent.state, parent.error).toBe("succeeded");
      const out = parent.output as Record<string, number>;
      const whole = runStats(local(spec), ctx);
      const scale = Math.max(Math.abs(whole.min), Math.abs(whole.max));
      expect(out.count).toBe(whole.count);
      expect(out.min).toBe(whole.min);
      expect(out.max).toBe(whole.max);
      close(out.mean, whole.mean, scale);
      close(out.stddev, whole.stddev, scale * 1e-6);
      const sorted = Float64Array.from(values).sort();
      const e = rankBound(parent.split!.shards.map((s) => s.end - s.start));
      for (const [key, q] of [
        ["p50", 0.5],
        ["p95", 0.95],
        ["p99", 0.99],
      ] as const) {
        if (e === 0) {
          expect(out[key]).toBe(quantileSorted(sorted, q));
        } else {
          const lo = Math.floor(q * (n - 1));
          expect(out[key]).toBeGreaterThanOrEqual(sorted[Math.max(0, lo - e)] - 1e-9);
          expect(out[key]).toBeLessThanOrEqual(sorted[Math.min(n - 1, lo + 1)] + 1e-9);
        }
      }
    }
  });

  it("anomaly zscore: the same anomalies (indexes, values, scores) as LOCAL — scored against global mean and stddev", () => {
    for (let seed = 100; seed < 140; seed++) {
      const r = rng(seed);
      const k = ((seed - 100) % 8) + 1;
      const n = int(r, k, 3000);
      const values = Array.from({ length: n }, () => (r() < 0.01 ? (r() - 0.5) * 400 : normal(r) * 10));
      const threshold = 1 + r() * 3;
      const spec = simSpec({ handler: "anomaly", mode: MODES[seed % 2], deviceId: "d1", input: { values, threshold, indexOffset: seed % 3 === 0 ? 1000 : 0 } });
      const out = distributed(r, k, spec, n) as { count: number; mean: number; stddev: number; anomalies: { index: number; value: number; score: number }[] };
      const whole = anomalyHandler.run(local(spec), ctx) as typeof out;
      close(out.mean, whole.mean, 1);
      close(out.stddev, whole.stddev, 1);
      expect(out.count).toBe(whole.count);
      expect(out.anomalies.map((a) => [a.index, a.value])).toEqual(whole.anomalies.map((a) => [a.index, a.value]));
      out.anomalies.forEach((a, i) => close(a.score, whole.anomalies[i].score, 1));
    }
  });

  it("anomaly mad: exact median, MAD and anomalies when shards have at most 1025 values (two prepare rounds)", () => {
    for (let seed = 200; seed < 224; seed++) {
      const r = rng(seed);
      const k = ((seed - 200) % 8) + 1;
      const n = int(r, k, k * 1000);
      const values = Array.from({ length: n }, () => (r() < 0.02 ? (r() - 0.5) * 500 : normal(r) * 5));
      const spec = simSpec({ handler: "anomaly", mode: "distributed", input: { values, method: "mad", threshold: 3.5 }, clusterId: "c1" });
      const sim = fleet(r, k);
      const id = sim.submit(spec);
      const parent = sim.run(id);
      expect(parent.state, parent.error).toBe("succeeded");
      expect(parent.split!.prepareRounds).toBe(2);
      expect(parent.split!.total).toBe(3 * parent.split!.shards.length);
      const whole = anomalyHandler.run(local(spec), ctx);
      expect(parent.output).toEqual(whole);
    }
  });

  it("aggregate: the same windows (merged across shard boundaries) as LOCAL", () => {
    for (let seed = 300; seed < 332; seed++) {
      const r = rng(seed);
      const k = ((seed - 300) % 8) + 1;
      const n = int(r, k, 2000);
      let t = 1_700_000_000_000;
      const samples = Array.from({ length: n }, () => ({ t: (t += int(r, 0, 900)), v: normal(r) * 3 }));
      const packed = r() < 0.5;
      const spec = simSpec({
        handler: "aggregate",
        mode: MODES[seed % 2],
        deviceId: "d1",
        input: packed ? { windowMs: 5000 } : { windowMs: 5000, samples },
        series: packed ? { values: samples.map((s) => s.v), timestamps: samples.map((s) => s.t) } : undefined,
      });
      const out = distributed(r, k, spec, n) as { windowMs: number; windows: { start: number; count: number; mean: number; min: number; max: number }[] };
      const whole = runAggregate(local(spec), ctx);
      expect(out.windows.map((w) => [w.start, w.count, w.min, w.max])).toEqual(whole.windows.map((w) => [w.start, w.count, w.min, w.max]));
      out.windows.forEach((w, i) => close(w.mean, whole.windows[i].mean, 10));
    }
  });

  it("threshold: the same alerts in the same order as LOCAL", () => {
    for (let seed = 400; seed < 432; seed++) {
      const r = rng(seed);
      const k = ((seed - 400) % 8) + 1;
      const n = int(r, k, 2000);
      const values = Array.from({ length: n }, () => Math.round(normal(r) * 10) + 0); // + 0: no -0, which JSON cannot carry
      const rules = [
        { name: "hi", op: ">", value: 12 },
        { name: "zero", op: "==", value: 0 },
        { name: "lo", op: "<=", value: -15 },
      ];
      const spec = simSpec({ handler: "threshold", mode: MODES[seed % 2], deviceId: "d1", input: { values, rules } });
      const out = distributed(r, k, spec, n);
      expect(out).toEqual(runThreshold(local(spec), ctx));
    }
  });
});
