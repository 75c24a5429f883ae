// The executor's public contract: what the agent asks to run and the result union it gets back.
// Types only: no runtime code.

/** One attempt of a task, as the agent received it in a Dispatch. */
export interface ExecRequest {
  taskId: string;
  attempt: number;
  handler: string;
  /** The task's JSON input (undefined when the task had none). Must be a JSON object for the built-ins. */
  input: unknown;
  /**
   * Packed numeric input; handlers see it as `values` (and `timestamps`) without a JSON round trip.
   * The executor copies it into a Float64Array whose buffer it transfers: the caller's arrays are never
   * detached, so the agent may keep the dispatch (e.g. to retry).
   */
  series?: { values: number[] | Float64Array; timestamps: number[] };
  /**
   * The attempt's memory limit. Enforced on the worker's V8 heap at the memory class (the limit rounded up
   * to a power-of-two MiB, at least 32 MiB); inputs obviously bigger than the limit fail up front.
   * 0, negative or non-finite means the task default, 64 MiB.
   */
  memoryLimitBytes: number;
  /** Epoch ms; the attempt is aborted at this time (also while still queued). Undefined: no deadline. */
  deadline?: number;
  /** Set when the attempt is one step of a sharded (DISTRIBUTED / HYBRID) task: which protocol step to run. */
  shard?: ShardStep;
  /**
   * The task's priority rank, 0 (CRITICAL) to 4 (BACKGROUND): queued attempts start in rank order, oldest first
   * within a rank, so urgent work never waits behind queued less urgent work. Undefined: NORMAL (2).
   */
  rank?: number;
}

/** ExecRequest.rank of NORMAL, the rank of an attempt that gives none. */
export const NORMAL_RANK = 2;

/**
 * A scatter-gather step (lib/analytics/types.ts): `prepare` runs handler.prepare(input, ctx, round, global),
 * `partial` handler.runPartial(input, ctx, global) (run when there is none), `merge` handler.merge(input.partials,
 * global). The input holds only the shard's points; `offset` becomes its indexOffset when it has none.
 */
export interface ShardStep {
  phase: "prepare" | "partial" | "merge";
  round: number;
  offset: number;
  global: unknown;
}

/**
 * How an attempt ended. `run` never throws: every failure, including worker crashes, is one of these.
 * - processingMs: wall time around the handler call, measured inside the worker (performance.now). When the
 *   worker had to be terminated it is measured in the agent from hand-over to the worker's exit; 0 when the
 *   attempt never reached a worker.
 * - peakMemoryBytes: the largest sample of the worker isolate's used V8 heap + external (ArrayBuffer) memory,
 *   sampled before and after the handler and at every ctx.checkpoint(). Nothing is subtracted: it includes
 *   the worker's baseline (~8 MiB: runtime and loaded handlers), the input (a series counts 8 bytes per
 *   value and per timestamp) and garbage not yet collected; it misses spikes between samples. Workers run a
 *   full GC between tasks once memory grew 4 MiB past their start-up level, so an earlier task's garbage
 *   rarely counts. 0 when nothing was measured (never started, or terminated before reporting); the heap
 *   limit when the worker ran out of memory.
 * - startedAt / finishedAt: epoch ms around the handler call (the worker's clock is the agent's).
 */
export type ExecResult =
  | { type: "completed"; output: unknown; processingMs: number; peakMemoryBytes: number; startedAt: number; finishedAt: number }
  | {
      type: "failed";
      error: string;
      /** The input is bad: a retry would fail the same way. */ permanent?: boolean;
      processingMs: number;
      peakMemoryBytes: number;
      startedAt: number;
      finishedAt: number;
    }
  | { type: "cancelled"; reason: string; processingMs: number; peakMemoryBytes: number; startedAt: number; finishedAt: number }
  | { type: "timed-out"; processingMs: number; peakMemoryBytes: number; startedAt: number; finishedAt: number };

/** The log methods the executor uses; a pino Logger satisfies it. */
export interface ExecutorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Executor options; each is resolved once by createExecutor. */
export interface ExecutorOptions {
  /** Worker threads, i.e. attempts run at once; more wait in a FIFO. Default os.availableParallelism(). */
  size?: number;
  /** Directory of custom handler modules (.js/.mjs), loaded in the agent (to list names) and in each worker. Default none. */
  handlersDir?: string;
  /**
   * The worker entry script. Default: the compiled `worker.js` next to this module; when this module runs
   * from TypeScript sources (vitest), the build output `dist/agent/executor/worker.js` instead.
   */
  workerUrl?: URL;
  /** Default: no logging. */
  logger?: ExecutorLogger;
  /**
   * After cancel or deadline, how long a handler has to stop on its own (cooperative handlers watch
   * ctx.signal) before its worker is terminated and replaced. Default 250 ms.
   */
  abortGraceMs?: number;
  /** Workers started, and awaited, by createExecutor so the first tasks skip worker start-up. Default: size. */
  prewarm?: number;
  /** Memory limit whose class the prewarmed workers get. Default 64 MiB (the task default). */
  prewarmMemoryBytes?: number;
  /**
   * A built-in handler whose input is at most this many bytes (estimated) runs inline on the agent's main thread
   * instead of a worker: for a 100-value `stats` the handler takes microseconds and the hop to a worker and back
   * costs far more. Built-ins are the project's own code, bounded in time and memory by their input, so nothing a
   * worker isolates them from can happen at this size. Custom handlers always run in workers. 0 = never inline.
   * Default 64 KiB (about 8,000 numbers).
   */
  inlineMaxBytes?: number;
}

export interface Executor {
  /** Attempts run at once (worker threads). */
  readonly size: number;
  /** Names of every handler this executor runs (built-ins and custom), sorted. */
  handlers(): string[];
  /** Handlers that can run as shards: built-ins, and custom handlers with merge and no prepare rounds; sorted. */
  distributable(): string[];
  /** Attempts holding a worker now (queued ones excluded). */
  running(): number;
  /** Attempts run inline on the agent's main thread so far (ExecutorOptions.inlineMaxBytes). */
  readonly inlineRuns: number;
  /** Runs one attempt; aborting `signal` cancels it. Never throws. */
  run(req: ExecRequest, signal: AbortSignal): Promise<ExecResult>;
  /** Cancels queued and running attempts (their results resolve as cancelled), then stops every worker. */
  close(): Promise<void>;
}
