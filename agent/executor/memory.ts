// Memory classes and the up-front input size check. Pure: no I/O, no workers.
//
// Why classes: V8 heap limits are fixed when a Worker starts, so warm workers are kept per limit class;
// rounding to powers of two keeps the number of distinct classes (and cold starts) small.

import type { ResourceLimits } from "node:worker_threads";
import type { ExecRequest } from "./types.js";

export const MIB = 1024 * 1024;
export const MIN_MEMORY_CLASS_MB = 32;
/** The task default (TaskSpec.required_memory_bytes). */
export const DEFAULT_MEMORY_LIMIT_BYTES = 64 * MIB;

/** The limit to enforce: the request's, or the default when unset (0) or nonsense. */
export function normalizeMemoryLimit(bytes: number): number {
  return Number.isFinite(bytes) && bytes > 0 ? bytes : DEFAULT_MEMORY_LIMIT_BYTES;
}

/** The limit rounded up to a power of two MiB, at least 32 MiB (the worker baseline alone is ~8 MiB). */
export function memoryClassMb(limitBytes: number): number {
  const mb = Math.ceil(normalizeMemoryLimit(limitBytes) / MIB);
  return Math.max(MIN_MEMORY_CLASS_MB, 2 ** Math.ceil(Math.log2(mb)));
}

/**
 * V8 limits for a class: young + old generation = the class, so the heap as a whole stays near it.
 * The young generation is an eighth (2–16 MiB): large enough that short-lived garbage is cheap to collect.
 */
export function resourceLimitsFor(classMb: number): ResourceLimits {
  const young = Math.min(16, Math.max(2, Math.floor(classMb / 8)));
  return { maxOldGenerationSizeMb: classMb - young, maxYoungGenerationSizeMb: young };
}

/**
 * A lower bound on the bytes the input will occupy in the worker (8 per number or reference, string
 * lengths, 16 per object), so only inputs that cannot possibly fit are rejected. Stops counting once
 * past `stopAbove`, so a huge input costs no more than the limit to inspect.
 */
export function estimateInputBytes(input: unknown, series: ExecRequest["series"], stopAbove: number): number {
  let total = series ? 8 * (series.values.length + series.timestamps.length) : 0;
  const stack: unknown[] = [input];
  const seen = new Set<object>();
  while (stack.length > 0 && total <= stopAbove) {
    const v = stack.pop();
    if (typeof v === "string") total += 8 + v.length;
    else if (v === null || typeof v !== "object") total += 8;
    else if (!seen.has(v)) {
      seen.add(v);
      if (ArrayBuffer.isView(v)) total += 16 + v.byteLength;
      else if (Array.isArray(v)) {
        total += 16;
        for (const x of v) stack.push(x);
      } else {
        total += 16;
        for (const [k, x] of Object.entries(v)) {
          total += k.length;
          stack.push(x);
        }
      }
    }
  }
  return total;
}
