// Built-in handlers against independent naive reference implementations (sort-based percentiles,
// two-pass variance, group-by windows), plus the exact error messages clients see for bad input.
import { describe, expect, it } from "vitest";
import {
  buildHandlerInput,
  builtinHandlerNames,
  builtinHandlers,
  HandlerInputError,
  plainContext,
  quantileSorted,
  quantilesOf,
  runAggregate,
  runAnomaly,
  runStats,
  runThreshold,
  type HandlerInput,
} from "../../lib/analytics/index.js";
import { rng } from "../helpers/rng.js";

const ctx = plainContext();

// --- deterministic randomness -------------------------------------------------------------------
function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}
const DISTRIBUTIONS: Record<string, (r: () => number) => number> = {
  "uniform wide": (r) => (r() - 0.5) * 2e6,
  "normal on a large offset": (r) => 293.15 + 0.2 * normal(r),
  "heavy-tailed": (r) => Math.sign(r() - 0.5) * Math.exp(8 * r()),
  "few distinct integers": (r) => Math.floor(r() * 5),
};
function sample(seed: number, n: number, dist: (r: () => number) => number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => dist(r));
}

// --- naive references -------------------------------------------------------------------------
const refMean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const refStddev = (xs: number[]) => {
  const m = refMean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / xs.length);
};
/** numpy.percentile(xs, 100q) with the default "linear" method, by sorting. */
const refQuantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
};

function expectClose(actual: number, expected: number, scale = Math.abs(expected)): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-9 * Math.max(scale, 1e-300) + 1e-12);
}

function inputError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HandlerInputError);
    return (err as Error).message;
  }
  throw new Error("expected a HandlerInputError");
}

describe("builtinHandlers", () => {
  it("registers stats, anomaly, aggregate and threshold, each with a merge for sharded runs", () => {
    expect([...builtinHandlers.keys()].sort()).toEqual(["aggregate", "anomaly", "stats", "threshold"]);
    for (const h of builtinHandlers.values()) expect(typeof h.merge).toBe("function");
  });

  it("gives the coordinator the same names it registers (what a submission may name before any agent registered)", () => {
    expect(builtinHandlerNames).toEqual([...builtinHandlers.keys()]);
  });
});

describe("stats", () => {
  it("computes a hand-checked example (population stddev, numpy-linear percentiles)", () => {
    expect(runStats({ values: [4, 1, 3, 2] }, ctx)).toEqual({
      count: 4,
      mean: 2.5,
      min: 1,
      max: 4,
      stddev: Math.sqrt(1.25),
      p50: 2.5,
      // h = q·(n-1); rank 2 (value 3) plus the fraction of the way to rank 3 (value 4), as numpy computes it.
      p95: 3 + (0.95 * 3 - 2) * (4 - 3),
      p99: 3 + (0.99 * 3 - 2) * (4 - 3),
    });
  });

  it("handles a single value (stddev 0, every percentile the value)", () => {
    expect(runStats({ values: [7] }, ctx)).toEqual({ count: 1, mean: 7, min: 7, max: 7, stddev: 0, p50: 7, p95: 7, p99: 7 });
  });

  for (const [name, dist] of Object.entries(DISTRIBUTIONS)) {
    it(`matches the naive reference on ${name} data`, () => {
      for (const [seed, n] of [
        [1, 2],
        [2, 17],
        [3, 1000],
        [4, 70_000],
      ]) {
        const xs = sample(seed, n, dist);
        const got = runStats({ values: xs }, ctx);
        const scale = Math.max(...xs.map(Math.abs));
        expect(got.count).toBe(n);
        expect(got.min).toBe(Math.min(...xs));
        expect(got.max).toBe(Math.max(...xs));
        expectClose(got.mean, refMean(xs), scale);
        expectClose(got.stddev, refStddev(xs), scale);
        for (const [k, q] of [
          ["p50", 0.5],
          ["p95", 0.95],
          ["p99", 0.99],
        ] as const)
          expectClose(got[k], refQuantile(xs, q), scale);
      }
    });
  }

  it("finds by selection exactly the order statistics a full sort gives (quantilesOf)", () => {
    const qs = [0, 0.01, 0.25, 0.5, 0.5, 0.95, 0.99, 0.999, 1];
    for (const [name, dist] of Object.entries(DISTRIBUTIONS)) {
      for (const [seed, n] of [
        [11, 1],
        [12, 2],
        [13, 3],
        [14, 599],
        [15, 601],
        [16, 4_099],
        [17, 100_003],
      ]) {
        const xs = sample(seed, n, dist);
        const scratch = new Float64Array(xs);
        let checkpoints = 0;
        const got = quantilesOf(scratch, qs, () => checkpoints++);
        const sorted = [...xs].sort((a, b) => a - b);
        qs.forEach((q, i) => expect(got[i], `${name} n=${n} q=${q}`).toBe(quantileSorted(sorted, q)));
        expect(checkpoints).toBeGreaterThan(0);
        // It only reorders: the scratch still holds the same multiset.
        expect([...scratch].sort((a, b) => a - b)).toEqual(sorted);
      }
    }
    expect(() => quantilesOf(new Float64Array(0), [0.5])).toThrow(RangeError);
  });

  it("stays accurate on a huge offset where sum-of-squares formulas cancel", () => {
    const xs = sample(9, 10_000, (r) => 1e9 + r());
    const shifted = xs.map((x) => x - 1e9); // exact: same exponent range
    const got = runStats({ values: xs }, ctx);
    expect(Math.abs(got.stddev - refStddev(shifted))).toBeLessThan(1e-6);
  });

  it("reads a packed series (Float64Array) exactly like a JSON array", () => {
    const xs = sample(5, 5000, DISTRIBUTIONS["heavy-tailed"]);
    const packed = buildHandlerInput({}, { values: Float64Array.from(xs) });
    expect(runStats(packed, ctx)).toEqual(runStats({ values: xs }, ctx));
  });

  it("says exactly what to fix in bad input", () => {
    const msg = (values: unknown) => inputError(() => runStats({ values } as HandlerInput, ctx));
    expect(msg([1, 2, 3, "x"])).toBe('stats: "values" must be a non-empty array of finite numbers; element 3 is "x"');
    expect(msg(undefined)).toBe('stats: "values" must be a non-empty array of finite numbers; it is missing');
    expect(msg([])).toBe('stats: "values" must be a non-empty array of finite numbers; it is empty');
    expect(msg("1,2,3")).toBe('stats: "values" must be a non-empty array of finite numbers; got "1,2,3"');
    expect(msg([1, null])).toBe('stats: "values" must be a non-empty array of finite numbers; element 1 is null');
    expect(msg([1, {}])).toBe('stats: "values" must be a non-empty array of finite numbers; element 1 is an object');
    const packed = buildHandlerInput({}, { values: new Float64Array([1, Number.NaN]) });
    expect(inputError(() => runStats(packed, ctx))).toBe('stats: "values" must be a non-empty array of finite numbers; element 1 is NaN');
    expect(inputError(() => runStats({ values: [1e300, -1e300] }, ctx))).toMatch(/too large in magnitude/);
  });

  it("stops with the abort reason when the signal is aborted", () => {
    const ac = new AbortController();
    ac.abort(new Error("stop now"));
    expect(() => runStats({ values: [1, 2, 3] }, plainContext(ac.signal))).toThrow("stop now");
  });
});

describe("anomaly", () => {
  const withOutliers = (seed: number, n: number) => {
    const xs = sample(seed, n, (r) => 50 + 2 * normal(r));
    const r = rng(seed + 100);
    for (let i = 0; i < n / 50; i++) xs[Math.floor(r() * n)] = 50 + (r() < 0.5 ? -1 : 1) * (10 + 20 * r());
    return xs;
  };

  it("flags |x - mean| / stddev > threshold (zscore, the default) like a two-pass reference", () => {
    for (const [seed, n, threshold] of [
      [1, 500, undefined],
      [2, 5000, 2.5],
      [3, 100_000, 4],
    ] as const) {
      const xs = withOutliers(seed, n);
      const got = runAnomaly(threshold === undefined ? { values: xs } : { values: xs, threshold }, ctx);
      const t = threshold ?? 3;
      const mean = refMean(xs);
      const sd = refStddev(xs);
      const expected = xs.flatMap((x, index) => (Math.abs((x - mean) / sd) > t ? [{ index, value: x, score: (x - mean) / sd }] : []));
      expect(got).toMatchObject({ count: expected.length, method: "zscore", threshold: t });
      if (got.method !== "zscore") throw new Error("unreachable");
      expectClose(got.mean, mean);
      expectClose(got.stddev, sd);
      expect(got.anomalies.map((a) => a.index)).toEqual(expected.map((a) => a.index));
      got.anomalies.forEach((a, i) => {
        expect(a.value).toBe(expected[i].value);
        expectClose(a.score, expected[i].score);
      });
      expect(expected.length).toBeGreaterThan(0);
    }
  });

  it("flags |0.6745 (x - median) / MAD| > threshold (mad) like a sort-based reference", () => {
    for (const [seed, n] of [
      [4, 501],
      [5, 4000],
    ]) {
      const xs = withOutliers(seed, n);
      const median = refQuantile(xs, 0.5);
      const mad = refQuantile(
        xs.map((x) => Math.abs(x - median)),
        0.5,
      );
      const got = runAnomaly({ values: xs, method: "mad", threshold: 3.5 }, ctx);
      if (got.method !== "mad") throw new Error("expected mad");
      expect(got.median).toBe(median);
      expect(got.mad).toBe(mad);
      const expected = xs.flatMap((x, index) => (Math.abs((0.6745 * (x - median)) / mad) > 3.5 ? [index] : []));
      expect(got.anomalies.map((a) => a.index)).toEqual(expected);
      expect(got.count).toBe(expected.length);
      expect(got.anomalies.every((a) => a.score === (0.6745 * (a.value - median)) / mad)).toBe(true);
    }
  });

  it("reports no anomalies when stddev or MAD is 0 (nothing to scale by)", () => {
    expect(runAnomaly({ values: [5, 5, 5, 5] }, ctx)).toEqual({ count: 0, method: "zscore", threshold: 3, mean: 5, stddev: 0, anomalies: [] });
    // More than half the values equal: MAD is 0 although 1000 is clearly odd — documented behaviour.
    expect(runAnomaly({ values: [1, 1, 1, 1000], method: "mad" }, ctx)).toEqual({
      count: 0,
      method: "mad",
      threshold: 3,
      median: 1,
      mad: 0,
      anomalies: [],
    });
  });

  it("says exactly what to fix in bad input", () => {
    expect(inputError(() => runAnomaly({ values: [1, 2], method: "iqr" }, ctx))).toBe('anomaly: "method" must be one of "zscore", "mad"; got "iqr"');
    expect(inputError(() => runAnomaly({ values: [1, 2], threshold: -1 }, ctx))).toBe('anomaly: "threshold" must be a finite number >= 0; got -1');
    expect(inputError(() => runAnomaly({ values: [1, 2], threshold: "3" }, ctx))).toBe('anomaly: "threshold" must be a finite number >= 0; got "3"');
    expect(inputError(() => runAnomaly({ values: [true] }, ctx))).toBe('anomaly: "values" must be a non-empty array of finite numbers; element 0 is true');
  });
});

describe("aggregate", () => {
  const refWindows = (samples: { t: number; v: number }[], windowMs: number) => {
    const groups = new Map<number, number[]>();
    for (const s of samples) {
      const start = Math.floor(s.t / windowMs) * windowMs;
      groups.set(start, [...(groups.get(start) ?? []), s.v]);
    }
    return [...groups.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([start, vs]) => ({ start, count: vs.length, mean: refMean(vs), min: Math.min(...vs), max: Math.max(...vs) }));
  };

  it("groups unsorted samples into aligned tumbling windows, sorted, empty windows omitted", () => {
    const samples = [
      { t: 2500, v: 4 },
      { t: 1000, v: 1 },
      { t: 1999, v: 3 },
      { t: 7000, v: 10 },
      { t: -1, v: -5 },
    ];
    expect(runAggregate({ samples, windowMs: 1000 }, ctx)).toEqual({
      windowMs: 1000,
      windows: [
        { start: -1000, count: 1, mean: -5, min: -5, max: -5 },
        { start: 1000, count: 2, mean: 2, min: 1, max: 3 },
        { start: 2000, count: 1, mean: 4, min: 4, max: 4 },
        { start: 7000, count: 1, mean: 10, min: 10, max: 10 },
      ],
    });
  });

  it("matches a group-by reference on random samples", () => {
    const r = rng(11);
    const samples = Array.from({ length: 20_000 }, () => ({ t: 1.7e12 + Math.floor(r() * 3_600_000), v: 20 + normal(r) }));
    const got = runAggregate({ samples, windowMs: 60_000 }, ctx);
    const expected = refWindows(samples, 60_000);
    expect(got.windows.map((w) => [w.start, w.count, w.min, w.max])).toEqual(expected.map((w) => [w.start, w.count, w.min, w.max]));
    got.windows.forEach((w, i) => expectClose(w.mean, expected[i].mean));
  });

  it("reads a packed series with timestamps, and values + timestamps arrays, like samples", () => {
    const samples = [
      { t: 10, v: 1 },
      { t: 25, v: 2 },
      { t: 12, v: 3 },
    ];
    const expected = runAggregate({ samples, windowMs: 10 }, ctx);
    const packed = buildHandlerInput({ windowMs: 10 }, { values: new Float64Array([1, 2, 3]), timestamps: new Float64Array([10, 25, 12]) });
    expect(runAggregate(packed, ctx)).toEqual(expected);
    expect(runAggregate({ values: [1, 2, 3], timestamps: [10, 25, 12], windowMs: 10 }, ctx)).toEqual(expected);
  });

  it("says exactly what to fix in bad input", () => {
    const samples = [{ t: 1, v: 1 }];
    expect(inputError(() => runAggregate({ samples }, ctx))).toBe('aggregate: "windowMs" must be a positive integer; it is missing');
    expect(inputError(() => runAggregate({ samples, windowMs: 0 }, ctx))).toBe('aggregate: "windowMs" must be a positive integer; got 0');
    expect(inputError(() => runAggregate({ samples, windowMs: 1.5 }, ctx))).toBe('aggregate: "windowMs" must be a positive integer; got 1.5');
    expect(inputError(() => runAggregate({ windowMs: 10 }, ctx))).toBe(
      'aggregate: "samples" must be a non-empty array of {"t": epoch ms, "v": number}; it is missing',
    );
    expect(inputError(() => runAggregate({ samples: [{ t: 1, v: 1 }, { t: 2 }], windowMs: 10 }, ctx))).toBe(
      'aggregate: "samples" must be a non-empty array of {"t": epoch ms, "v": number}; element 1 has "v": missing',
    );
    expect(inputError(() => runAggregate({ values: [1], windowMs: 10 }, ctx))).toMatch(/^aggregate: "samples" must be .*or give "timestamps"/);
    const noTimes = buildHandlerInput({ windowMs: 10 }, { values: new Float64Array([1]) });
    expect(inputError(() => runAggregate(noTimes, ctx))).toMatch(/^aggregate: the series has no timestamps/);
  });
});

describe("threshold", () => {
  const rules = [
    { name: "hot", op: ">", value: 30 },
    { name: "very-hot", op: ">=", value: 40 },
    { name: "cold", op: "<", value: 0 },
    { name: "freezing", op: "<=", value: -10 },
    { name: "exactly-20", op: "==", value: 20 },
    { name: "not-20", op: "!=", value: 20 },
  ] as const;
  const refAlerts = (values: number[], times?: number[]) => {
    const test = {
      ">": (x: number, v: number) => x > v,
      ">=": (x: number, v: number) => x >= v,
      "<": (x: number, v: number) => x < v,
      "<=": (x: number, v: number) => x <= v,
      "==": (x: number, v: number) => x === v,
      "!=": (x: number, v: number) => x !== v,
    };
    const out: object[] = [];
    values.forEach((x, index) => {
      for (const r of rules)
        if (test[r.op](x, r.value)) out.push(times ? { rule: r.name, index, value: x, t: times[index] } : { rule: r.name, index, value: x });
    });
    return out;
  };

  it("reports matches per point, then per rule, in input order (all six operators)", () => {
    const values = [20, 35, 45, -5, -10, 0, 40];
    expect(runThreshold({ values, rules }, ctx)).toEqual({ count: refAlerts(values).length, alerts: refAlerts(values) });
  });

  it("adds t for samples and for a packed series with timestamps", () => {
    const r = rng(3);
    const values = Array.from({ length: 3000 }, () => Math.round(normal(r) * 20));
    const times = values.map((_, i) => 1_000 + i * 10);
    const samples = values.map((v, i) => ({ t: times[i], v }));
    const expected = { count: refAlerts(values, times).length, alerts: refAlerts(values, times) };
    expect(runThreshold({ samples, rules }, ctx)).toEqual(expected);
    const packed = buildHandlerInput({ rules }, { values: Float64Array.from(values), timestamps: Float64Array.from(times) });
    expect(runThreshold(packed, ctx)).toEqual(expected);
  });

  it("says exactly what to fix in bad input", () => {
    const shape = '"rules" must be a non-empty array of {"name": string, "op": one of > >= < <= == !=, "value": number}';
    expect(inputError(() => runThreshold({ values: [1] }, ctx))).toBe(`threshold: ${shape}; it is missing`);
    expect(inputError(() => runThreshold({ values: [1], rules: [] }, ctx))).toBe(`threshold: ${shape}; it is empty`);
    expect(inputError(() => runThreshold({ values: [1], rules: [{ name: "a", op: "=>", value: 1 }] }, ctx))).toBe(`threshold: ${shape}; rule 0 has "op": "=>"`);
    expect(inputError(() => runThreshold({ values: [1], rules: [{ name: "a", op: ">", value: "1" }] }, ctx))).toBe(
      `threshold: ${shape}; rule 0 has "value": "1"`,
    );
    expect(inputError(() => runThreshold({ values: [1], samples: [], rules }, ctx))).toBe('threshold: give either "samples" or "values", not both');
  });
});

describe("buildHandlerInput", () => {
  it("rejects a non-object input and a series whose timestamps do not match its values", () => {
    expect(inputError(() => buildHandlerInput([1, 2]))).toBe("input must be a JSON object (or absent); got an array");
    expect(inputError(() => buildHandlerInput({}, { values: [1, 2], timestamps: [1] }))).toBe(
      "series has 2 values but 1 timestamps; send one timestamp per value, or none",
    );
  });

  it("lets the packed series replace JSON data fields, and offers samples lazily", () => {
    const input = buildHandlerInput({ values: [9], samples: [], windowMs: 5 }, { values: [1, 2], timestamps: [10, 20] });
    expect(input.values).toEqual([1, 2]);
    expect(input.windowMs).toBe(5);
    expect(input.samples).toEqual([
      { t: 10, v: 1 },
      { t: 20, v: 2 },
    ]);
    expect(Object.keys(input)).not.toContain("samples");
    expect(buildHandlerInput(undefined)).toEqual({});
  });
});
