// The handler contract shared by the built-ins, operators' custom handler modules and the executor's worker.
// Types only: no runtime code, no I/O.

/** A JSON value: what a handler returns and what travels in google.protobuf.Value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Numbers as handlers receive them: a packed series arrives as a Float64Array, JSON input as a plain array. */
export type NumberArray = Float64Array | readonly number[];

/**
 * What a handler receives: the task's JSON input object (`{}` when the task had none), plus, when the task
 * carried a packed numeric series, `values` (a Float64Array) and, if it had timestamps, `timestamps`
 * (a Float64Array, epoch ms, one per value) and a lazily built `samples` getter (`[{t, v}]`, same points).
 * The packed series replaces any JSON `values`/`timestamps`/`samples`. Everything else is untrusted JSON:
 * handlers validate what they read and throw HandlerInputError saying what to fix.
 */
export type HandlerInput = Readonly<Record<string, unknown>>;

/** What a running handler may use besides its input. */
export interface HandlerContext {
  /**
   * Aborts when the task is cancelled or its deadline passes. Inside the executor's workers, reading
   * `signal.aborted` or calling `signal.throwIfAborted()` observes the abort even from a synchronous loop
   * (the event loop is blocked there, so an 'abort' event alone would never arrive).
   */
  readonly signal: AbortSignal;
  /**
   * Call from long loops (the built-ins call it every 65 536 elements): throws if the task was aborted,
   * records memory use for the task's peakMemoryBytes, and throws if the worker's memory budget is exceeded.
   */
  checkpoint(): void;
}

/**
 * A named computation. `run` is all a custom handler must provide.
 *
 * Scatter-gather protocol (for distributed mode; `runShards` in scatter-gather.ts is the reference driver):
 *   shards  = split(input, k)                              — contiguous shards, each carrying `indexOffset`
 *   global  = undefined; for r in 0 ..< prepareRounds(input):
 *               global = combine(shards.map(s => prepare(s, ctx, r, global)), r, global)
 *   partials = shards.map(s => (runPartial ?? run)(s, ctx, global))
 *   result   = merge(partials, global)                      — equals run(input) (see each handler's bounds)
 * Every value crossing a shard boundary (prepared, global, partials) is plain JSON.
 */
export interface Handler {
  readonly name: string;
  run(input: HandlerInput, ctx: HandlerContext): JsonValue | Promise<JsonValue>;
  /** Combines shard partials (runPartial's, or run's when there is no runPartial) into the whole-input result. */
  merge?(partials: JsonValue[], global?: JsonValue): JsonValue;
  /** Splits an input into at most `count` contiguous shards. Default: splitInput in split.ts. */
  split?(input: HandlerInput, count: number): HandlerInput[];
  /** A shard's mergeable partial state; `global` is the last combine's result when prepareRounds > 0. */
  runPartial?(shard: HandlerInput, ctx: HandlerContext, global?: JsonValue): JsonValue;
  /** Rounds of global preparation needed before runPartial (e.g. anomaly needs global statistics). Default 0. */
  prepareRounds?(input: HandlerInput): number;
  prepare?(shard: HandlerInput, ctx: HandlerContext, round: number, global: JsonValue | undefined): JsonValue;
  combine?(prepared: JsonValue[], round: number, global: JsonValue | undefined): JsonValue;
}

/** A built-in: synchronous, and implements the whole scatter-gather protocol. */
export interface BuiltinHandler extends Handler {
  run(input: HandlerInput, ctx: HandlerContext): JsonValue;
  merge(partials: JsonValue[], global?: JsonValue): JsonValue;
  split(input: HandlerInput, count: number): HandlerInput[];
  runPartial(shard: HandlerInput, ctx: HandlerContext, global?: JsonValue): JsonValue;
}
