// The `stats` built-in: count, mean, min, max, population stddev and p50/p95/p99 of a numeric series.
// Pure computation: no I/O, no clocks.
//
// Whole run: mean/stddev by Welford, percentiles exact (see quantiles.ts: linear interpolation between
// the closest ranks, numpy's default). stddev is the population one (divides by n).
// Sharded run: moments merge exactly (up to rounding, ~1e-15 relative); percentiles come from merged
// quantile summaries, within the rank bound documented in quantile-summary.ts (exact when shards are small).

import { HandlerInputError } from "./errors.js";
import { readValues } from "./input.js";
import { assertFiniteMoments, EMPTY_MOMENTS, mergeMoments, type Moments, momentsOf, parseMoments, populationStddev } from "./moments.js";
import { mergeSummaries, parseSummary, type QuantileSummary, summarize, summaryQuantile } from "./quantile-summary.js";
import { quantilesOf, sortedCopy } from "./quantiles.js";
import { splitInput } from "./split.js";
import type { BuiltinHandler, HandlerContext, HandlerInput, JsonValue } from "./types.js";

const NAME = "stats";

export type StatsResult = {
  count: number;
  mean: number;
  min: number;
  max: number;
  stddev: number;
  p50: number;
  p95: number;
  p99: number;
};

/** A shard's mergeable state: moments plus a quantile summary. */
export type StatsPartial = Moments & { summary: QuantileSummary };

function result(m: Moments, quantile: (q: number) => number): StatsResult {
  assertFiniteMoments(NAME, m);
  return {
    count: m.count,
    mean: m.mean,
    min: m.min as number,
    max: m.max as number,
    stddev: populationStddev(m),
    p50: quantile(0.5),
    p95: quantile(0.95),
    p99: quantile(0.99),
  };
}

/** Whole-input statistics with exact percentiles. */
export function runStats(input: HandlerInput, ctx: HandlerContext): StatsResult {
  const values = readValues(NAME, input);
  const m = momentsOf(values, ctx);
  ctx.checkpoint();
  const [p50, p95, p99] = quantilesOf(new Float64Array(values), [0.5, 0.95, 0.99], () => ctx.checkpoint());
  return result(m, (q) => (q === 0.5 ? p50 : q === 0.95 ? p95 : p99));
}

/** A shard's partial; an empty shard is allowed (it merges as nothing). */
export function statsPartial(shard: HandlerInput, ctx: HandlerContext): StatsPartial {
  const values = readValues(NAME, shard, { allowEmpty: true });
  const m = momentsOf(values, ctx);
  ctx.checkpoint();
  const sorted = sortedCopy(values);
  ctx.checkpoint();
  return { ...m, summary: summarize(sorted) };
}

/** Combines shard partials into the whole input's statistics (percentiles within the summary's bound). */
export function mergeStats(partials: readonly JsonValue[]): StatsResult {
  let m: Moments = EMPTY_MOMENTS;
  const summaries: QuantileSummary[] = [];
  partials.forEach((p, i) => {
    const what = `partial ${i}`;
    m = mergeMoments(m, parseMoments(NAME, p, what));
    summaries.push(parseSummary(NAME, (p as Record<string, unknown>).summary, `${what} summary`));
  });
  if (m.count === 0) throw new HandlerInputError(`${NAME}: "values" must be a non-empty array of finite numbers; every shard was empty`);
  const summary = mergeSummaries(summaries);
  if (summary.count !== m.count) {
    throw new HandlerInputError(`${NAME}: partials disagree: summaries count ${summary.count} values, moments ${m.count}`);
  }
  return result(m, (q) => summaryQuantile(summary, q));
}

export const statsHandler: BuiltinHandler = {
  name: NAME,
  run: runStats,
  split: splitInput,
  runPartial: statsPartial,
  merge: mergeStats,
};
