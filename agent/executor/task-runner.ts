// Runs one attempt inside a worker: builds the handler input, calls the handler with an abortable,
// memory-sampling context, and turns every outcome into a ResultMessage. Never throws, never exits the
// thread, never touches parentPort (worker.ts owns the channel).

import { performance } from "node:perf_hooks";
import { getHeapStatistics } from "node:v8";
import { buildHandlerInput, type PackedSeries } from "../../lib/analytics/input.js";
import { HandlerInputError, isHandlerInputError } from "../../lib/analytics/errors.js";
import type { Handler, HandlerContext, HandlerInput, JsonValue } from "../../lib/analytics/types.js";
import type { ShardStep } from "./types.js";
import { ABORT_KIND, ABORT_KIND_CODES, ABORT_SEQ, type AbortKind, type FailureKind, type ResultMessage, type RunMessage } from "./protocol.js";

/** The reason ctx.signal aborts with; a handler that lets it propagate ends as cancelled/timed-out. */
export class RunAbortedError extends Error {
  override readonly name = "AbortError";
  readonly kind: AbortKind;
  constructor(kind: AbortKind, reason: string) {
    super(kind === "timed-out" ? `deadline reached: ${reason}` : `cancelled: ${reason}`);
    this.kind = kind;
  }
}

/** This isolate's used V8 heap plus external (ArrayBuffer) memory: what peakMemoryBytes reports. */
export function isolateMemoryInUse(): number {
  const h = getHeapStatistics();
  return h.used_heap_size + h.external_memory;
}

const abortedGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, "aborted")?.get as (this: AbortSignal) => boolean;
const throwIfAborted = AbortSignal.prototype.throwIfAborted;

/**
 * An AbortSignal that also notices the shared flag: a synchronous handler never yields to the event loop,
 * so `aborted` and `throwIfAborted()` poll the flag themselves and abort the controller on the spot.
 */
function flagAwareSignal(controller: AbortController, flag: Int32Array, seq: number): AbortSignal {
  const signal = controller.signal;
  const poll = () => {
    if (abortedGetter.call(signal) || Atomics.load(flag, ABORT_SEQ) !== seq) return;
    const kind: AbortKind = Atomics.load(flag, ABORT_KIND) === ABORT_KIND_CODES["timed-out"] ? "timed-out" : "cancelled";
    controller.abort(new RunAbortedError(kind, "requested by the agent"));
  };
  Object.defineProperty(signal, "aborted", {
    configurable: true,
    get() {
      poll();
      return abortedGetter.call(signal);
    },
  });
  Object.defineProperty(signal, "throwIfAborted", {
    configurable: true,
    value() {
      poll();
      throwIfAborted.call(signal);
    },
  });
  return signal;
}

/** A running attempt: `abort` is called when the agent's abort message arrives (async handlers need the event). */
export interface TaskRun {
  abort(kind: AbortKind, reason: string): void;
  readonly result: Promise<ResultMessage>;
}

export function startTask(registry: ReadonlyMap<string, Handler>, msg: RunMessage, flag: Int32Array): TaskRun {
  const controller = new AbortController();
  const signal = flagAwareSignal(controller, flag, msg.seq);
  let peak = 0;
  const sample = () => {
    const used = isolateMemoryInUse();
    if (used > peak) peak = used;
  };
  const ctx: HandlerContext = {
    signal,
    checkpoint() {
      signal.throwIfAborted();
      sample();
    },
  };
  const run = async (): Promise<ResultMessage> => {
    const startedAt = Date.now();
    const t0 = performance.now();
    const done = (body: { ok: true; output: unknown } | { ok: false; kind: FailureKind; error: string; stack?: string }): ResultMessage => {
      sample();
      return { type: "result", seq: msg.seq, processingMs: performance.now() - t0, peakMemoryBytes: peak, startedAt, finishedAt: Date.now(), ...body };
    };
    sample();
    const handler = registry.get(msg.handler);
    if (!handler) {
      const known = [...registry.keys()].sort().join(", ");
      return done({ ok: false, kind: "unknown-handler", error: `unknown handler "${msg.handler}"; this agent runs: ${known}` });
    }
    try {
      const series: PackedSeries | undefined = msg.values ? { values: msg.values, timestamps: msg.timestamps } : undefined;
      const input = buildHandlerInput(msg.input, series);
      sample();
      const output = (await (msg.shard ? runShardStep(handler, input, ctx, msg.shard) : handler.run(input, ctx))) ?? null;
      const problem = jsonProblem(output);
      if (problem) {
        return done({
          ok: false,
          kind: "output",
          error: `handler "${handler.name}" returned a value that is not JSON: ${problem} (return plain objects, arrays, strings, finite numbers, booleans or null)`,
        });
      }
      return done({ ok: true, output });
    } catch (err) {
      if (abortedGetter.call(signal) || err instanceof RunAbortedError) {
        return done({ ok: false, kind: "aborted", error: err instanceof Error ? err.message : String(err) });
      }
      if (isHandlerInputError(err)) return done({ ok: false, kind: "input", error: (err as Error).message });
      return done({ ok: false, kind: "handler", error: describeError(err), stack: err instanceof Error ? err.stack : undefined });
    }
  };
  return {
    abort(kind, reason) {
      if (!abortedGetter.call(signal)) controller.abort(new RunAbortedError(kind, reason));
    },
    result: run(),
  };
}

/** One scatter-gather step of a sharded task (see ShardStep); the coordinator only sends steps the handler has. */
export function runShardStep(handler: Handler, input: HandlerInput, ctx: HandlerContext, step: ShardStep): JsonValue | Promise<JsonValue> {
  const global = step.global as JsonValue | undefined;
  // buildHandlerInput made this object for the run: set in place, keeping its non-enumerable packed-series view.
  if (input.indexOffset === undefined) (input as Record<string, unknown>).indexOffset = step.offset;
  const shard = input;
  switch (step.phase) {
    case "prepare":
      if (!handler.prepare) throw new HandlerInputError(`handler "${handler.name}" has no prepare step`);
      return handler.prepare(shard, ctx, step.round, global);
    case "partial":
      return handler.runPartial ? handler.runPartial(shard, ctx, global) : handler.run(shard, ctx);
    case "merge": {
      if (!handler.merge) throw new HandlerInputError(`handler "${handler.name}" has no merge function`);
      const partials = (input as { partials?: unknown }).partials;
      if (!Array.isArray(partials)) throw new HandlerInputError(`merge step: input needs a "partials" array`);
      return handler.merge(partials as JsonValue[], global);
    }
    default: {
      const never: never = step.phase;
      throw new HandlerInputError(`unknown shard phase ${String(never)}`);
    }
  }
}

/** The thrown message verbatim; the class name too when it says something (TypeError, RangeError, ...). */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.name && err.name !== "Error" ? `${err.name}: ${err.message}` : err.message;
  return `handler threw a non-Error value: ${typeof err === "string" ? err : (safeJson(err) ?? String(err))}`;
}

function safeJson(v: unknown): string | undefined {
  try {
    return JSON.stringify(v);
  } catch {
    return undefined;
  }
}

const MAX_DEPTH = 256;

/** Where `value` stops being JSON (e.g. "$.windows[3].mean is NaN"), or undefined when it is JSON. */
export function jsonProblem(value: unknown, path = "$", depth = 0): string | undefined {
  if (value === null || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `${path} is ${value}`;
  if (depth >= MAX_DEPTH) return `${path} is nested more than ${MAX_DEPTH} levels deep (or cyclic)`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = jsonProblem(value[i], `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return `${path} is a ${value.constructor?.name ?? "non-plain object"}`;
    for (const [k, v] of Object.entries(value)) {
      const p = jsonProblem(v, `${path}.${k}`, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  return `${path} is ${typeof value === "undefined" ? "undefined" : `a ${typeof value}`}`;
}
