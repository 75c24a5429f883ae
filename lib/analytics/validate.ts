// Input validation shared by the built-ins: every failure is a HandlerInputError that names the handler,
// the field, and the offending element. Pure: no I/O.

import { HandlerInputError } from "./errors.js";
import type { HandlerInput, NumberArray } from "./types.js";

/** A short, client-safe rendering of a bad value for error messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  if (typeof v === "number") return String(v);
  if (typeof v === "string") {
    const s = JSON.stringify(v);
    return s.length > 40 ? `${s.slice(0, 36)}..."` : s;
  }
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return "an array";
  if (typeof v === "object") return "an object";
  return String(v);
}

/**
 * Reads `field` as an array of finite numbers (a plain array or a Float64Array from a packed series).
 * Returns it as-is: no copy, so the packed case stays zero-copy.
 */
export function readFiniteArray(handler: string, field: string, value: unknown, opts: { allowEmpty?: boolean } = {}): NumberArray {
  const what = `${handler}: "${field}" must be a ${opts.allowEmpty ? "" : "non-empty "}array of finite numbers`;
  if (value === undefined) throw new HandlerInputError(`${what}; it is missing`);
  if (value instanceof Float64Array) {
    if (!opts.allowEmpty && value.length === 0) throw new HandlerInputError(`${what}; it is empty`);
    for (let i = 0; i < value.length; i++) {
      if (!Number.isFinite(value[i])) throw new HandlerInputError(`${what}; element ${i} is ${describeValue(value[i])}`);
    }
    return value;
  }
  if (!Array.isArray(value)) throw new HandlerInputError(`${what}; got ${describeValue(value)}`);
  if (!opts.allowEmpty && value.length === 0) throw new HandlerInputError(`${what}; it is empty`);
  for (let i = 0; i < value.length; i++) {
    const x: unknown = value[i];
    if (typeof x !== "number" || !Number.isFinite(x)) {
      throw new HandlerInputError(`${what}; element ${i} is ${describeValue(x)}`);
    }
  }
  return value as number[];
}

/** Reads an optional finite number, with a default. */
export function readNumber(
  handler: string,
  input: HandlerInput,
  field: string,
  opts: { default: number; min?: number; integer?: boolean; positive?: boolean },
): number {
  const v = input[field];
  if (v === undefined) return opts.default;
  const kind = opts.integer ? "integer" : "number";
  const range = opts.positive ? ` > 0` : opts.min !== undefined ? ` >= ${opts.min}` : "";
  const what = `${handler}: "${field}" must be a finite ${kind}${range}`;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new HandlerInputError(`${what}; got ${describeValue(v)}`);
  if (opts.integer && !Number.isInteger(v)) throw new HandlerInputError(`${what}; got ${v}`);
  if (opts.positive && !(v > 0)) throw new HandlerInputError(`${what}; got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new HandlerInputError(`${what}; got ${v}`);
  return v;
}

/** Reads a required positive integer. */
export function readPositiveInteger(handler: string, input: HandlerInput, field: string): number {
  const v = input[field];
  const what = `${handler}: "${field}" must be a positive integer`;
  if (v === undefined) throw new HandlerInputError(`${what}; it is missing`);
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new HandlerInputError(`${what}; got ${describeValue(v)}`);
  return v;
}

/** Reads a string field restricted to `choices`, with a default. */
export function readChoice<T extends string>(handler: string, input: HandlerInput, field: string, choices: readonly T[], fallback: T): T {
  const v = input[field];
  if (v === undefined) return fallback;
  if (typeof v !== "string" || !(choices as readonly string[]).includes(v)) {
    throw new HandlerInputError(`${handler}: "${field}" must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")}; got ${describeValue(v)}`);
  }
  return v as T;
}

/** The shard's position in the whole input (0 when run whole); set by split. */
export function readIndexOffset(handler: string, input: HandlerInput): number {
  return readNumber(handler, input, "indexOffset", { default: 0, min: 0, integer: true });
}

/** Reads a JSON object field of a partial or global (scatter-gather state). */
export function asRecord(handler: string, value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HandlerInputError(`${handler}: ${what} must be an object; got ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Reads a finite number field of scatter-gather state. */
export function stateNumber(handler: string, state: Record<string, unknown>, field: string, what: string): number {
  const v = state[field];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new HandlerInputError(`${handler}: ${what} field "${field}" must be a finite number; got ${describeValue(v)}`);
  }
  return v;
}
