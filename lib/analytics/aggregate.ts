// The `aggregate` built-in: tumbling-window count/mean/min/max of timestamped samples.
// Pure computation: no I/O, no clocks (windows come from the samples' own timestamps).
//
// A sample at t falls in the window starting at floor(t / windowMs)·windowMs (aligned to multiples of
// windowMs since the epoch, so shards and nodes agree on boundaries). Samples need not be sorted; windows
// come out sorted by start and empty windows are omitted. Means are running means (no raw sums), so
// merging windows across shards agrees with a whole run up to rounding.

import { CHECKPOINT_EVERY } from "./context.js";
import { HandlerInputError } from "./errors.js";
import { readPoints } from "./input.js";
import { splitInput } from "./split.js";
import type { BuiltinHandler, HandlerContext, HandlerInput, JsonValue } from "./types.js";
import { asRecord, describeValue, readPositiveInteger, stateNumber } from "./validate.js";

const NAME = "aggregate";

export type AggregateWindow = { start: number; count: number; mean: number; min: number; max: number };
export type AggregateResult = { windowMs: number; windows: AggregateWindow[] };

function mergeWindow(into: AggregateWindow, w: AggregateWindow): void {
  const count = into.count + w.count;
  into.mean += (w.mean - into.mean) * (w.count / count);
  into.count = count;
  if (w.min < into.min) into.min = w.min;
  if (w.max > into.max) into.max = w.max;
}

function sortedWindows(windows: Map<number, AggregateWindow>): AggregateWindow[] {
  return [...windows.values()].sort((a, b) => a.start - b.start);
}

function aggregate(input: HandlerInput, ctx: HandlerContext, allowEmpty: boolean): AggregateResult {
  const windowMs = readPositiveInteger(NAME, input, "windowMs");
  const { values, timestamps } = readPoints(NAME, input, { requireTimestamps: true, allowEmpty });
  const ts = timestamps as NonNullable<typeof timestamps>;
  const windows = new Map<number, AggregateWindow>();
  for (let i = 0; i < values.length; i++) {
    if ((i & (CHECKPOINT_EVERY - 1)) === 0) ctx.checkpoint();
    const start = Math.floor(ts[i] / windowMs) * windowMs;
    const v = values[i];
    const w = windows.get(start);
    if (w === undefined) {
      windows.set(start, { start, count: 1, mean: v, min: v, max: v });
    } else {
      w.count++;
      w.mean += (v - w.mean) / w.count;
      if (v < w.min) w.min = v;
      if (v > w.max) w.max = v;
    }
  }
  return { windowMs, windows: sortedWindows(windows) };
}

/** Whole-input windows. */
export function runAggregate(input: HandlerInput, ctx: HandlerContext): AggregateResult {
  return aggregate(input, ctx, false);
}

/** Windows are their own mergeable state; an empty shard yields no windows. */
function runPartial(shard: HandlerInput, ctx: HandlerContext): AggregateResult {
  return aggregate(shard, ctx, true);
}

/** Merges windows with the same start across shards (a window may straddle a shard boundary). */
function merge(partials: JsonValue[]): AggregateResult {
  let windowMs: number | undefined;
  const windows = new Map<number, AggregateWindow>();
  partials.forEach((p, i) => {
    const r = asRecord(NAME, p, `partial ${i}`);
    const ms = stateNumber(NAME, r, "windowMs", `partial ${i}`);
    if (windowMs !== undefined && ms !== windowMs) {
      throw new HandlerInputError(`${NAME}: partials disagree on windowMs (${windowMs} vs ${ms})`);
    }
    windowMs = ms;
    if (!Array.isArray(r.windows)) throw new HandlerInputError(`${NAME}: partial ${i} "windows" must be an array; got ${describeValue(r.windows)}`);
    for (const [j, raw] of r.windows.entries()) {
      const wr = asRecord(NAME, raw, `partial ${i} window ${j}`);
      const f = (k: string): number => stateNumber(NAME, wr, k, `partial ${i} window ${j}`);
      const w: AggregateWindow = { start: f("start"), count: f("count"), mean: f("mean"), min: f("min"), max: f("max") };
      const existing = windows.get(w.start);
      if (existing) mergeWindow(existing, w);
      else windows.set(w.start, w);
    }
  });
  if (windowMs === undefined) throw new HandlerInputError(`${NAME}: nothing to merge (no partials)`);
  return { windowMs, windows: sortedWindows(windows) };
}

export const aggregateHandler: BuiltinHandler = {
  name: NAME,
  run: runAggregate,
  split: splitInput,
  runPartial,
  merge,
};
