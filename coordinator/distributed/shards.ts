// The data side of scatter-gather in the coordinator: measuring and slicing a task's input into shard inputs, and
// combining / merging shard outputs with the built-in handlers' own pure functions (lib/analytics/). Pure: no I/O.
import { builtinHandlers } from "../../lib/analytics/registry.js";
import type { BuiltinHandler, HandlerInput } from "../../lib/analytics/types.js";
import type { JsonValue, NumericSeries, TaskSpec } from "../tasks/types.js";

const DATA_FIELDS = new Set(["values", "timestamps", "samples", "indexOffset"]);

const asObject = (j: JsonValue | undefined): Record<string, JsonValue> => (j !== null && typeof j === "object" && !Array.isArray(j) ? j : {});

/** Points a task's input holds: its packed series, else JSON `values`, else JSON `samples`; undefined when none. */
export function inputLength(spec: Pick<TaskSpec, "input" | "series">): number | undefined {
  if (spec.series && spec.series.values.length > 0) return spec.series.values.length;
  const o = asObject(spec.input);
  if (Array.isArray(o.values)) return o.values.length;
  if (Array.isArray(o.samples)) return o.samples.length;
  return undefined;
}

/** The input's own indexOffset (a task may itself be part of a larger series); 0 when absent or not a number. */
export function baseOffset(spec: Pick<TaskSpec, "input">): number {
  const v = asObject(spec.input).indexOffset;
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 0;
}

/**
 * Points [start, end) of the task's input as a standalone input: the same parameters, only the shard's data (so an
 * agent receives only its shard), and `indexOffset` = where the shard starts in whole-input terms.
 */
export function sliceInput(spec: Pick<TaskSpec, "input" | "series">, start: number, end: number): { input: JsonValue; series: NumericSeries | undefined } {
  const src = asObject(spec.input);
  const input: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(src)) if (!DATA_FIELDS.has(k)) input[k] = v;
  input.indexOffset = baseOffset(spec) + start;
  if (spec.series && spec.series.values.length > 0) {
    const ts = spec.series.timestamps;
    return { input, series: { values: spec.series.values.slice(start, end), timestamps: ts.length > 0 ? ts.slice(start, end) : [] } };
  }
  if (Array.isArray(src.values)) {
    input.values = src.values.slice(start, end);
    if (Array.isArray(src.timestamps)) input.timestamps = src.timestamps.slice(start, end);
  } else if (Array.isArray(src.samples)) {
    input.samples = src.samples.slice(start, end);
  }
  return { input, series: undefined };
}

/** The built-in of this name, whose combine and merge the coordinator runs itself; undefined for custom handlers. */
export function builtin(handler: string): BuiltinHandler | undefined {
  return builtinHandlers.get(handler);
}

/** The task's parameters (its input without the data) as a handler input, for prepareRounds. */
const params = (spec: Pick<TaskSpec, "input">): HandlerInput => {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(asObject(spec.input))) if (!DATA_FIELDS.has(k)) o[k] = v;
  return o;
};

/** Prepare rounds the task needs before its partial round (anomaly: 1 for zscore, 2 for mad). Throws HandlerInputError on bad parameters. */
export function prepareRounds(spec: Pick<TaskSpec, "handler" | "input">): number {
  return builtin(spec.handler)?.prepareRounds?.(params(spec)) ?? 0;
}

/** Combines one prepare round's shard outputs (in shard order) into the global context for the next step. */
export function combineRound(handler: string, prepared: JsonValue[], round: number, global: JsonValue | undefined): JsonValue {
  const h = builtin(handler);
  if (!h?.combine) throw new Error(`handler "${handler}" has no combine step in the coordinator`);
  return h.combine(prepared, round, global);
}

/** Merges the partial round's shard outputs (in shard order) into the whole-input result. */
export function mergePartials(handler: string, partials: JsonValue[], global: JsonValue | undefined): JsonValue {
  const h = builtin(handler);
  if (!h) throw new Error(`handler "${handler}" is not a built-in: its merge runs on an agent`);
  return h.merge(partials, global);
}
