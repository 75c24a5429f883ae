// Exact quantiles of a whole input. Pure: no I/O.
//
// Definition (numpy's default, "linear"): for q in [0, 1] over sorted x_0..x_{n-1}, let h = q·(n-1);
// the quantile is x_⌊h⌋ + (h - ⌊h⌋)·(x_⌊h⌋+1 - x_⌊h⌋), i.e. linear interpolation between the two closest ranks.

import type { NumberArray } from "./types.js";

/** A sorted Float64Array copy (typed-array sort is numeric, unlike Array#sort's default). */
export function sortedCopy(values: NumberArray): Float64Array {
  const s = new Float64Array(values);
  s.sort();
  return s;
}

/** Linear interpolation between a and b, written so that huge opposite-signed values cannot overflow. */
export function lerp(a: number, b: number, f: number): number {
  if (f === 0) return a;
  const v = a + f * (b - a);
  return Number.isFinite(v) ? v : (1 - f) * a + f * b;
}

/** The q-quantile of a non-empty sorted array, by the definition above. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const h = q * (sorted.length - 1);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return lerp(sorted[lo], sorted[hi], h - lo);
}
