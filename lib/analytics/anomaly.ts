// The `anomaly` built-in: flags values far from the centre of a series, by z-score or by MAD (modified
// z-score). Pure computation: no I/O, no clocks.
//
// zscore: score = (x - mean) / stddev (population stddev); mad: score = 0.6745·(x - median) / MAD, where
// MAD = median(|x - median|) and medians interpolate like quantiles.ts. A value is an anomaly when
// |score| > threshold (default 3). Anomalies come in input order and `count` is how many were found.
// Scores are signed: negative means below the centre. When stddev or MAD is 0 (constant data, or more
// than half the values equal for MAD) nothing can be scored: no anomalies.
//
// Sharded: anomalies need global statistics, so the handler has prepare rounds (see types.ts):
//   zscore: 1 round — shards send moments; the merged mean/stddev equal the whole run's up to rounding.
//   mad:    2 rounds — shards send a quantile summary of x (→ median), then of |x - median| (→ MAD); both
//           are within the rank bound of quantile-summary.ts (exact when shards have <= 1025 values), so
//           values scored within that error of the threshold may be classified differently from a whole run.

import { HandlerInputError } from "./errors.js";
import { readValues } from "./input.js";
import { assertFiniteMoments, EMPTY_MOMENTS, mergeMoments, type Moments, momentsOf, parseMoments, populationStddev } from "./moments.js";
import { CHECKPOINT_EVERY } from "./context.js";
import { mergeSummaries, parseSummary, type QuantileSummary, summarize, summaryQuantile } from "./quantile-summary.js";
import { quantilesOf, sortedCopy } from "./quantiles.js";
import { splitInput } from "./split.js";
import type { BuiltinHandler, HandlerContext, HandlerInput, JsonValue, NumberArray } from "./types.js";
import { asRecord, readChoice, readIndexOffset, readNumber, stateNumber } from "./validate.js";

const NAME = "anomaly";
const METHODS = ["zscore", "mad"] as const;
export type AnomalyMethod = (typeof METHODS)[number];

/** Iglewicz & Hoaglin's constant: makes the MAD-based score comparable to a z-score for normal data. */
export const MAD_SCALE = 0.6745;
export const DEFAULT_ANOMALY_THRESHOLD = 3;

export type Anomaly = { index: number; value: number; score: number };

export type AnomalyResult =
  | { count: number; method: "zscore"; threshold: number; mean: number; stddev: number; anomalies: Anomaly[] }
  | { count: number; method: "mad"; threshold: number; median: number; mad: number; anomalies: Anomaly[] };

/** The global statistics every shard scores against (the result of the last combine round). */
export type AnomalyGlobal =
  | { method: "zscore"; threshold: number; count: number; mean: number; stddev: number }
  | { method: "mad"; threshold: number; count: number; median: number; mad: number | null };

/** A shard's anomalies, with indexes already in whole-input terms. */
export type AnomalyPartial = { offset: number; anomalies: Anomaly[] };

function readParams(input: HandlerInput): { method: AnomalyMethod; threshold: number } {
  return {
    method: readChoice(NAME, input, "method", METHODS, "zscore"),
    threshold: readNumber(NAME, input, "threshold", { default: DEFAULT_ANOMALY_THRESHOLD, min: 0 }),
  };
}

/** Scores values against (center, scale); nothing is scored when scale is 0. */
function flag(values: NumberArray, g: { center: number; scale: number; factor: number; threshold: number }, offset: number, ctx: HandlerContext): Anomaly[] {
  const anomalies: Anomaly[] = [];
  if (g.scale === 0) return anomalies;
  for (let i = 0; i < values.length; i++) {
    if ((i & (CHECKPOINT_EVERY - 1)) === 0) ctx.checkpoint();
    const score = (g.factor * (values[i] - g.center)) / g.scale;
    if (Math.abs(score) > g.threshold) anomalies.push({ index: offset + i, value: values[i], score });
  }
  return anomalies;
}

/** The median of |x - median|, computed in `scratch` (a copy of the values, reused for the deviations). */
function madOf(scratch: Float64Array, median: number, ctx: HandlerContext): number {
  const dev = scratch;
  for (let i = 0; i < dev.length; i++) {
    if ((i & (CHECKPOINT_EVERY - 1)) === 0) ctx.checkpoint();
    dev[i] = Math.abs(dev[i] - median);
  }
  return quantilesOf(dev, [0.5], () => ctx.checkpoint())[0];
}

function scoring(g: AnomalyGlobal): { center: number; scale: number; factor: number; threshold: number } {
  return g.method === "zscore"
    ? { center: g.mean, scale: g.stddev, factor: 1, threshold: g.threshold }
    : { center: g.median, scale: g.mad ?? 0, factor: MAD_SCALE, threshold: g.threshold };
}

function result(g: AnomalyGlobal, anomalies: Anomaly[]): AnomalyResult {
  const count = anomalies.length;
  return g.method === "zscore"
    ? { count, method: g.method, threshold: g.threshold, mean: g.mean, stddev: g.stddev, anomalies }
    : { count, method: g.method, threshold: g.threshold, median: g.median, mad: g.mad ?? 0, anomalies };
}

function zscoreGlobal(threshold: number, m: Moments): AnomalyGlobal {
  assertFiniteMoments(NAME, m);
  return { method: "zscore", threshold, count: m.count, mean: m.mean, stddev: populationStddev(m) };
}

/** Whole-input anomaly detection with exact statistics. */
export function runAnomaly(input: HandlerInput, ctx: HandlerContext): AnomalyResult {
  const { method, threshold } = readParams(input);
  const values = readValues(NAME, input);
  let g: AnomalyGlobal;
  if (method === "zscore") {
    g = zscoreGlobal(threshold, momentsOf(values, ctx));
  } else {
    const scratch = new Float64Array(values);
    ctx.checkpoint();
    const [median] = quantilesOf(scratch, [0.5], () => ctx.checkpoint());
    g = { method, threshold, count: values.length, median, mad: madOf(scratch, median, ctx) };
  }
  return result(g, flag(values, scoring(g), readIndexOffset(NAME, input), ctx));
}

function prepareRounds(input: HandlerInput): number {
  return readParams(input).method === "zscore" ? 1 : 2;
}

/** Round 0: moments (zscore) or a summary of x (mad). Round 1 (mad): a summary of |x - median|. */
function prepare(shard: HandlerInput, ctx: HandlerContext, round: number, global: JsonValue | undefined): JsonValue {
  const { method, threshold } = readParams(shard);
  const values = readValues(NAME, shard, { allowEmpty: true });
  if (method === "zscore") return { method, threshold, moments: momentsOf(values, ctx) };
  const sorted = sortedCopy(values);
  ctx.checkpoint();
  if (round === 0) return { method, threshold, summary: summarize(sorted) };
  const g = parseGlobal(global);
  if (g.method !== "mad") throw new HandlerInputError(`${NAME}: round ${round} needs a "mad" global; got "${g.method}"`);
  for (let i = 0; i < sorted.length; i++) sorted[i] = Math.abs(sorted[i] - g.median);
  sorted.sort();
  return { method, threshold, summary: summarize(sorted) };
}

function combine(prepared: JsonValue[], round: number, global: JsonValue | undefined): AnomalyGlobal {
  if (prepared.length === 0) throw new HandlerInputError(`${NAME}: nothing to combine (no shards)`);
  const first = asRecord(NAME, prepared[0], "prepared partial 0");
  const { method, threshold } = readParams(first);
  if (method === "zscore") {
    let m = EMPTY_MOMENTS;
    prepared.forEach((p, i) => {
      m = mergeMoments(m, parseMoments(NAME, asRecord(NAME, p, `prepared partial ${i}`).moments, `prepared partial ${i} moments`));
    });
    if (m.count === 0) throw new HandlerInputError(`${NAME}: "values" must be a non-empty array of finite numbers; every shard was empty`);
    return zscoreGlobal(threshold, m);
  }
  const summaries: QuantileSummary[] = prepared.map((p, i) =>
    parseSummary(NAME, asRecord(NAME, p, `prepared partial ${i}`).summary, `prepared partial ${i} summary`),
  );
  const merged = mergeSummaries(summaries);
  if (merged.count === 0) throw new HandlerInputError(`${NAME}: "values" must be a non-empty array of finite numbers; every shard was empty`);
  const estimate = summaryQuantile(merged, 0.5);
  if (round === 0) return { method, threshold, count: merged.count, median: estimate, mad: null };
  const g = parseGlobal(global);
  if (g.method !== "mad") throw new HandlerInputError(`${NAME}: round ${round} needs a "mad" global; got "${g.method}"`);
  return { ...g, mad: estimate };
}

/** A shard's anomalies, scored against the combined global statistics. */
function runPartial(shard: HandlerInput, ctx: HandlerContext, global?: JsonValue): AnomalyPartial {
  const g = parseGlobal(global);
  const values = readValues(NAME, shard, { allowEmpty: true });
  const offset = readIndexOffset(NAME, shard);
  return { offset, anomalies: flag(values, scoring(g), offset, ctx) };
}

/** Concatenates shard anomalies in input order (by offset) under the global statistics. */
function merge(partials: JsonValue[], global?: JsonValue): AnomalyResult {
  const g = parseGlobal(global);
  const parts = partials.map((p, i) => {
    const r = asRecord(NAME, p, `partial ${i}`);
    if (!Array.isArray(r.anomalies)) throw new HandlerInputError(`${NAME}: partial ${i} must have an "anomalies" array`);
    return { offset: stateNumber(NAME, r, "offset", `partial ${i}`), anomalies: r.anomalies as Anomaly[] };
  });
  parts.sort((a, b) => a.offset - b.offset);
  return result(
    g,
    parts.flatMap((p) => p.anomalies),
  );
}

function parseGlobal(global: JsonValue | undefined): AnomalyGlobal {
  if (global === undefined) {
    throw new HandlerInputError(`${NAME}: sharded runs need the combined global statistics; run the prepare rounds first`);
  }
  const r = asRecord(NAME, global, "global");
  const what = "global";
  const { method, threshold } = readParams(r);
  const count = stateNumber(NAME, r, "count", what);
  if (method === "zscore") {
    return { method, threshold, count, mean: stateNumber(NAME, r, "mean", what), stddev: stateNumber(NAME, r, "stddev", what) };
  }
  return { method, threshold, count, median: stateNumber(NAME, r, "median", what), mad: r.mad === null ? null : stateNumber(NAME, r, "mad", what) };
}

export const anomalyHandler: BuiltinHandler = {
  name: NAME,
  run: runAnomaly,
  split: splitInput,
  prepareRounds,
  prepare,
  combine,
  runPartial,
  merge,
};
