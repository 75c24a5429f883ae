// Splits a series input into contiguous shards for scatter-gather. Pure: no I/O. Never copies the values
// of a packed series (Float64Array shards are subarray views).

import { HandlerInputError } from "./errors.js";
import type { HandlerInput } from "./types.js";
import { readIndexOffset } from "./validate.js";

const DATA_FIELDS = new Set(["values", "timestamps", "samples", "indexOffset"]);

/** Number of points in an input: `values` when present, else `samples`. */
export function seriesLength(input: HandlerInput): number {
  const data = input.values ?? input.samples;
  if (Array.isArray(data) || data instanceof Float64Array) return data.length;
  throw new HandlerInputError(`cannot split: the input has no "values" or "samples" array`);
}

/**
 * Points [start, end) of `input` as a standalone input: the same parameters, the sliced data, and
 * `indexOffset` = where the shard starts in the whole input (added to any offset the input already had).
 */
export function sliceShard(input: HandlerInput, start: number, end: number): HandlerInput {
  const shard: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) if (!DATA_FIELDS.has(k)) shard[k] = v;
  const slice = (a: unknown): unknown => (a instanceof Float64Array ? a.subarray(start, end) : Array.isArray(a) ? a.slice(start, end) : a);
  if (input.values !== undefined) {
    shard.values = slice(input.values);
    if (input.timestamps !== undefined) shard.timestamps = slice(input.timestamps);
  } else {
    shard.samples = slice(input.samples);
  }
  shard.indexOffset = readIndexOffset("split", input) + start;
  return shard;
}

/** At most `count` contiguous, non-empty shards of near-equal size, in input order. */
export function splitInput(input: HandlerInput, count: number): HandlerInput[] {
  const n = seriesLength(input);
  const k = Math.max(1, Math.min(Math.floor(count), n));
  const shards: HandlerInput[] = [];
  for (let i = 0; i < k; i++) shards.push(sliceShard(input, Math.floor((i * n) / k), Math.floor(((i + 1) * n) / k)));
  return shards;
}
