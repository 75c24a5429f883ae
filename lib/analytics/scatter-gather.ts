// In-process reference driver of the scatter-gather protocol described in types.ts. A distributed
// coordinator runs the same steps with shards on different nodes; this module is the executable spec
// and what the merge property tests use. Pure: no I/O; synchronous handlers only.

import type { Handler, HandlerContext, HandlerInput, JsonValue } from "./types.js";
import { splitInput } from "./split.js";

function sync(value: JsonValue | Promise<JsonValue>, handler: string): JsonValue {
  if (value instanceof Promise) throw new Error(`handler "${handler}" is asynchronous; runShards drives synchronous handlers only`);
  return value;
}

/** Runs the protocol over given shards (any contiguous cut of the input, each with its `indexOffset`). */
export function runShards(handler: Handler, shards: readonly HandlerInput[], ctx: HandlerContext): JsonValue {
  if (!handler.merge) throw new Error(`handler "${handler.name}" has no merge: it cannot run sharded`);
  if (shards.length === 0) throw new Error(`runShards: no shards`);
  const rounds = handler.prepareRounds?.(shards[0]) ?? 0;
  let global: JsonValue | undefined;
  for (let round = 0; round < rounds; round++) {
    const prepared = shards.map((s) => (handler.prepare as NonNullable<Handler["prepare"]>)(s, ctx, round, global));
    global = (handler.combine as NonNullable<Handler["combine"]>)(prepared, round, global);
  }
  const partials = shards.map((s) => (handler.runPartial ? handler.runPartial(s, ctx, global) : sync(handler.run(s, ctx), handler.name)));
  return handler.merge(partials, global);
}

/** Splits `input` into `count` shards with the handler's split (default splitInput) and runs them. */
export function runScatterGather(handler: Handler, input: HandlerInput, count: number, ctx: HandlerContext): JsonValue {
  const shards = (handler.split ?? splitInput)(input, count);
  return runShards(handler, shards, ctx);
}
