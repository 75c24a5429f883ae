// Running moments (count, mean, M2, min, max): Welford's update for one pass, Chan et al.'s pairwise merge
// for shards. Pure: no I/O. Mean and M2 are never derived from raw sums, which cancel catastrophically
// for sensor data with a large offset (e.g. 1e9 ± 1).

import { CHECKPOINT_EVERY } from "./context.js";
import { HandlerInputError } from "./errors.js";
import type { HandlerContext, NumberArray } from "./types.js";
import { asRecord, describeValue, stateNumber } from "./validate.js";

/** Mergeable moments. `m2` is the sum of squared deviations from the mean; min/max are null when count is 0. */
export type Moments = { count: number; mean: number; m2: number; min: number | null; max: number | null };

export const EMPTY_MOMENTS: Moments = { count: 0, mean: 0, m2: 0, min: null, max: null };

/** One pass of Welford's algorithm, checking in with ctx every CHECKPOINT_EVERY elements. */
export function momentsOf(values: NumberArray, ctx: HandlerContext): Moments {
  let count = 0;
  let mean = 0;
  let m2 = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if ((i & (CHECKPOINT_EVERY - 1)) === 0) ctx.checkpoint();
    const x = values[i];
    count++;
    const d = x - mean;
    mean += d / count;
    m2 += d * (x - mean);
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return count === 0 ? EMPTY_MOMENTS : { count, mean, m2, min, max };
}

/** Chan et al.'s parallel combination: the result equals one pass over both inputs up to rounding. */
export function mergeMoments(a: Moments, b: Moments): Moments {
  if (a.count === 0) return b;
  if (b.count === 0) return a;
  const count = a.count + b.count;
  const d = b.mean - a.mean;
  return {
    count,
    mean: a.mean + d * (b.count / count),
    m2: a.m2 + b.m2 + d * d * ((a.count * b.count) / count),
    min: Math.min(a.min as number, b.min as number),
    max: Math.max(a.max as number, b.max as number),
  };
}

/** Population standard deviation (divides by n, not n - 1): the spread of exactly these samples. */
export function populationStddev(m: Moments): number {
  return m.count > 0 ? Math.sqrt(Math.max(0, m.m2) / m.count) : 0;
}

/** Rejects values so large that the variance overflows (|x| beyond ~1e154): better an error than Infinity. */
export function assertFiniteMoments(handler: string, m: Moments): void {
  if (!Number.isFinite(m.mean) || !Number.isFinite(m.m2)) {
    throw new HandlerInputError(`${handler}: "values" are too large in magnitude: their variance overflows a double; scale them down`);
  }
}

/** Validates moments received from another shard. */
export function parseMoments(handler: string, value: unknown, what: string): Moments {
  const r = asRecord(handler, value, what);
  const count = stateNumber(handler, r, "count", what);
  if (count === 0) return EMPTY_MOMENTS;
  const minMax = (f: "min" | "max"): number => {
    const v = r[f];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new HandlerInputError(`${handler}: ${what} field "${f}" must be a finite number; got ${describeValue(v)}`);
    }
    return v;
  };
  return {
    count,
    mean: stateNumber(handler, r, "mean", what),
    m2: stateNumber(handler, r, "m2", what),
    min: minMax("min"),
    max: minMax("max"),
  };
}
