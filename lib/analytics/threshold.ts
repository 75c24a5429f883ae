// The `threshold` built-in: evaluates comparison rules against every point and reports the matches.
// Pure computation: no I/O, no clocks.
//
// Alerts come out in input order: for each point, each matching rule in rule order; `count` is the number
// of alerts (alerts.length). `t` is included when
// the input had timestamps (samples, or a series with timestamps). `==` and `!=` compare exactly.

import { CHECKPOINT_EVERY } from "./context.js";
import { HandlerInputError } from "./errors.js";
import { readPoints } from "./input.js";
import { splitInput } from "./split.js";
import type { BuiltinHandler, HandlerContext, HandlerInput, JsonValue } from "./types.js";
import { asRecord, describeValue, readIndexOffset, stateNumber } from "./validate.js";

const NAME = "threshold";
const OPS = [">", ">=", "<", "<=", "==", "!="] as const;
export type ThresholdOp = (typeof OPS)[number];

export type ThresholdRule = { name: string; op: ThresholdOp; value: number };
export type Alert = { rule: string; index: number; value: number; t?: number };
export type ThresholdResult = { count: number; alerts: Alert[] };
/** A shard's alerts, with indexes already in whole-input terms. */
export type ThresholdPartial = { offset: number; alerts: Alert[] };

const COMPARE: Record<ThresholdOp, (x: number, v: number) => boolean> = {
  ">": (x, v) => x > v,
  ">=": (x, v) => x >= v,
  "<": (x, v) => x < v,
  "<=": (x, v) => x <= v,
  "==": (x, v) => x === v,
  "!=": (x, v) => x !== v,
};

function readRules(input: HandlerInput): ThresholdRule[] {
  const shape = `"rules" must be a non-empty array of {"name": string, "op": one of ${OPS.join(" ")}, "value": number}`;
  const raw = input.rules;
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new HandlerInputError(`${NAME}: ${shape}; ${raw === undefined ? "it is missing" : Array.isArray(raw) ? "it is empty" : `got ${describeValue(raw)}`}`);
  }
  return raw.map((r: unknown, i): ThresholdRule => {
    if (r === null || typeof r !== "object" || Array.isArray(r)) throw new HandlerInputError(`${NAME}: ${shape}; rule ${i} is ${describeValue(r)}`);
    const { name, op, value } = r as Record<string, unknown>;
    if (typeof name !== "string" || name === "") throw new HandlerInputError(`${NAME}: ${shape}; rule ${i} has "name": ${describeValue(name)}`);
    if (typeof op !== "string" || !(OPS as readonly string[]).includes(op)) {
      throw new HandlerInputError(`${NAME}: ${shape}; rule ${i} has "op": ${describeValue(op)}`);
    }
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new HandlerInputError(`${NAME}: ${shape}; rule ${i} has "value": ${describeValue(value)}`);
    }
    return { name, op: op as ThresholdOp, value };
  });
}

function evaluate(input: HandlerInput, ctx: HandlerContext, allowEmpty: boolean): ThresholdPartial {
  const rules = readRules(input);
  const { values, timestamps } = readPoints(NAME, input, { requireTimestamps: false, allowEmpty });
  const offset = readIndexOffset(NAME, input);
  const tests = rules.map((r) => COMPARE[r.op]);
  const alerts: Alert[] = [];
  for (let i = 0; i < values.length; i++) {
    if ((i & (CHECKPOINT_EVERY - 1)) === 0) ctx.checkpoint();
    const x = values[i];
    for (let j = 0; j < rules.length; j++) {
      if (!tests[j](x, rules[j].value)) continue;
      alerts.push(timestamps ? { rule: rules[j].name, index: offset + i, value: x, t: timestamps[i] } : { rule: rules[j].name, index: offset + i, value: x });
    }
  }
  return { offset, alerts };
}

/** Whole-input alerts. */
export function runThreshold(input: HandlerInput, ctx: HandlerContext): ThresholdResult {
  const { alerts } = evaluate(input, ctx, false);
  return { count: alerts.length, alerts };
}

/** Concatenates shard alerts in input order (by offset). */
function merge(partials: JsonValue[]): ThresholdResult {
  const parts = partials.map((p, i) => {
    const r = asRecord(NAME, p, `partial ${i}`);
    if (!Array.isArray(r.alerts)) throw new HandlerInputError(`${NAME}: partial ${i} must have an "alerts" array`);
    return { offset: stateNumber(NAME, r, "offset", `partial ${i}`), alerts: r.alerts as Alert[] };
  });
  parts.sort((a, b) => a.offset - b.offset);
  const alerts = parts.flatMap((p) => p.alerts);
  return { count: alerts.length, alerts };
}

export const thresholdHandler: BuiltinHandler = {
  name: NAME,
  run: runThreshold,
  split: splitInput,
  runPartial: (shard, ctx) => evaluate(shard, ctx, true),
  merge,
};
