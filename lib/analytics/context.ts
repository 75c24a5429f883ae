// A HandlerContext for running handlers in-process (tests, scatter-gather drivers). No I/O, no timers.

import type { HandlerContext } from "./types.js";

/** How many loop iterations the built-ins run between checkpoints. */
export const CHECKPOINT_EVERY = 65_536;

/** A context whose checkpoint only honours the signal (memory is measured by the executor's worker, not here). */
export function plainContext(signal: AbortSignal = new AbortController().signal): HandlerContext {
  return {
    signal,
    checkpoint() {
      signal.throwIfAborted();
    },
  };
}
