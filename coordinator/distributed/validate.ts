// Submit-time checks for DISTRIBUTED and HYBRID tasks: the handler can merge shards and the input can be split.
// Pure: the set of distributable handlers is passed in.
import { InvalidArgumentError } from "../errors.js";
import type { TaskSpec } from "../tasks/types.js";
import { inputLength } from "./shards.js";

/** Throws InvalidArgumentError, naming the field and what to do, unless the task can run as shards. */
export function checkSplittable(spec: TaskSpec, distributable: ReadonlySet<string>, field = "task"): void {
  const mode = spec.mode.toUpperCase();
  if (!distributable.has(spec.handler)) {
    throw new InvalidArgumentError(
      `${field}.handler: "${spec.handler}" cannot run in PROCESSING_MODE_${mode}: it exports no merge function, so shard results cannot be combined; ` +
        `export merge(partials) from the handler module, or submit with PROCESSING_MODE_LOCAL or PROCESSING_MODE_CLOUD_FALLBACK ` +
        `(distributable handlers: ${[...distributable].sort().join(", ")})`,
    );
  }
  const n = inputLength(spec);
  if (n === undefined || n === 0) {
    throw new InvalidArgumentError(
      `${field}.input: PROCESSING_MODE_${mode} splits the input by points, so it needs a non-empty series, "values" array or "samples" array; this task has none`,
    );
  }
}
