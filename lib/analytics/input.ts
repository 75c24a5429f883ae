// Builds a HandlerInput from a task's JSON input and packed series, and reads numeric points back out of it.
// Pure: no I/O. Never copies a packed series (it is the big part of the task).

import { HandlerInputError } from "./errors.js";
import type { HandlerInput, NumberArray } from "./types.js";
import { describeValue, readFiniteArray } from "./validate.js";

/** A packed numeric series as the executor hands it over: timestamps are epoch ms, one per value, or none. */
export interface PackedSeries {
  values: NumberArray;
  timestamps?: NumberArray;
}

/** Points as the built-ins consume them: values, and timestamps when the input had them. */
export interface Points {
  values: NumberArray;
  timestamps: NumberArray | undefined;
}

// Non-enumerable, so `{...input}` (split) drops it and readers can tell a packed series from JSON arrays.
const PACKED = Symbol("edgeplane.packedSeries");

const DATA_FIELDS = ["values", "timestamps", "samples"] as const;

/**
 * The handler's view of a task: the JSON input object (or `{}`), with a non-empty packed series replacing
 * `values`/`timestamps`/`samples`. Throws HandlerInputError for a non-object input or mismatched series.
 */
export function buildHandlerInput(json: unknown, series?: PackedSeries): HandlerInput {
  if (json !== undefined && json !== null && (typeof json !== "object" || Array.isArray(json))) {
    throw new HandlerInputError(`input must be a JSON object (or absent); got ${describeValue(json)}`);
  }
  const base: Record<string, unknown> = { ...(json as Record<string, unknown> | null | undefined) };
  if (!series || series.values.length === 0) return base;

  const values = series.values;
  const timestamps = series.timestamps && series.timestamps.length > 0 ? series.timestamps : undefined;
  if (timestamps && timestamps.length !== values.length) {
    throw new HandlerInputError(`series has ${values.length} values but ${timestamps.length} timestamps; send one timestamp per value, or none`);
  }
  for (const f of DATA_FIELDS) delete base[f];
  base.values = values;
  if (timestamps) {
    base.timestamps = timestamps;
    let samples: { t: number; v: number }[] | undefined;
    // Built on first use only: built-ins read the arrays directly, custom handlers may prefer objects.
    Object.defineProperty(base, "samples", {
      enumerable: false,
      configurable: true,
      get() {
        samples ??= Array.from(values, (v, i) => ({ t: timestamps[i], v }));
        return samples;
      },
    });
  }
  Object.defineProperty(base, PACKED, { value: { values, timestamps } satisfies Points, enumerable: false });
  return base;
}

/** Reads `values` as a non-empty (or, for shards, possibly empty) array of finite numbers. */
export function readValues(handler: string, input: HandlerInput, opts: { allowEmpty?: boolean } = {}): NumberArray {
  return readFiniteArray(handler, "values", input.values, opts);
}

/**
 * Reads points from `samples: [{t, v}]`, or from `values` (+ `timestamps`), or from a packed series.
 * With `requireTimestamps`, inputs without times are rejected with a message naming both accepted shapes.
 */
export function readPoints(handler: string, input: HandlerInput, opts: { requireTimestamps: boolean; allowEmpty?: boolean }): Points {
  const packed = (input as Record<symbol, unknown>)[PACKED] as Points | undefined;
  const samplesShape = `"samples" must be a ${opts.allowEmpty ? "" : "non-empty "}array of {"t": epoch ms, "v": number}`;
  if (packed) {
    const values = readFiniteArray(handler, "values", packed.values, opts);
    const timestamps = packed.timestamps && readFiniteArray(handler, "timestamps", packed.timestamps, opts);
    if (opts.requireTimestamps && !timestamps) {
      throw new HandlerInputError(`${handler}: the series has no timestamps; send one timestamp per value, or ${samplesShape}`);
    }
    return { values, timestamps };
  }
  if (input.samples !== undefined) {
    if (input.values !== undefined) {
      throw new HandlerInputError(`${handler}: give either "samples" or "values", not both`);
    }
    return readSamples(handler, input.samples, samplesShape, opts.allowEmpty ?? false);
  }
  if (input.values === undefined && opts.requireTimestamps) {
    throw new HandlerInputError(`${handler}: ${samplesShape}; it is missing`);
  }
  const values = readFiniteArray(handler, "values", input.values, opts);
  let timestamps: NumberArray | undefined;
  if (input.timestamps !== undefined) {
    timestamps = readFiniteArray(handler, "timestamps", input.timestamps, { allowEmpty: true });
    if (timestamps.length !== values.length) {
      throw new HandlerInputError(`${handler}: "timestamps" must have one entry per value; got ${timestamps.length} timestamps for ${values.length} values`);
    }
  }
  if (opts.requireTimestamps && !timestamps) {
    throw new HandlerInputError(`${handler}: ${samplesShape}, or give "timestamps" (epoch ms) with "values"`);
  }
  return { values, timestamps };
}

function readSamples(handler: string, raw: unknown, shape: string, allowEmpty: boolean): Points {
  if (!Array.isArray(raw)) throw new HandlerInputError(`${handler}: ${shape}; got ${describeValue(raw)}`);
  if (!allowEmpty && raw.length === 0) throw new HandlerInputError(`${handler}: ${shape}; it is empty`);
  const values = new Float64Array(raw.length);
  const timestamps = new Float64Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const s: unknown = raw[i];
    if (s === null || typeof s !== "object" || Array.isArray(s)) {
      throw new HandlerInputError(`${handler}: ${shape}; element ${i} is ${describeValue(s)}`);
    }
    const { t, v } = s as { t?: unknown; v?: unknown };
    if (typeof t !== "number" || !Number.isFinite(t)) {
      throw new HandlerInputError(`${handler}: ${shape}; element ${i} has "t": ${describeValue(t)}`);
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new HandlerInputError(`${handler}: ${shape}; element ${i} has "v": ${describeValue(v)}`);
    }
    timestamps[i] = t;
    values[i] = v;
  }
  return { values, timestamps };
}
