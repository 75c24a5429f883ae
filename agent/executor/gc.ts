// Full garbage collection for a worker between tasks, so one task's garbage neither counts toward the next
// task's peakMemoryBytes nor sits in a warm worker. Worker threads only; never called while a handler runs.
//
// Why the flag dance: Worker execArgv rejects V8 flags, so --expose-gc cannot be passed at start. Setting it
// at run time only installs `gc` in contexts created afterwards (here, one throwaway vm context).

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Returns a full-GC function, or undefined when this V8 does not allow it (then nothing is collected early). */
export function loadCollector(): (() => void) | undefined {
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? () => void gc() : undefined;
  } catch {
    return undefined;
  }
}
