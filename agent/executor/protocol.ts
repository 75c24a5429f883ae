// Messages between the executor (agent thread) and a worker, and the shared abort flag's layout.
// Types and constants only: no I/O.
//
// Why a shared flag as well as an abort message: built-in and most custom handlers are synchronous, so the
// worker's event loop is blocked while they run and an abort message would only arrive after they finish.
// The worker's ctx.signal polls the flag whenever a handler reads `aborted` or calls throwIfAborted().

import type { ShardStep } from "./types.js";

/** Handed to each worker at start (workerData). */
export interface WorkerInit {
  handlersDir: string | undefined;
  /** Int32Array view: [ABORT_SEQ] = seq of the aborted run, [ABORT_KIND] = its AbortKind code. */
  abortFlag: SharedArrayBuffer;
}

export type AbortKind = "cancelled" | "timed-out";

export const ABORT_SEQ = 0;
export const ABORT_KIND = 1;
export const ABORT_KIND_CODES: Record<AbortKind, number> = { cancelled: 1, "timed-out": 2 };
export const ABORT_FLAG_BYTES = 8;

/** Agent → worker: run one attempt. `seq` is unique per worker and ties results and aborts to it. */
export interface RunMessage {
  type: "run";
  seq: number;
  handler: string;
  input: unknown;
  /** Transferred, not copied. */
  values?: Float64Array;
  timestamps?: Float64Array;
  /** The scatter-gather step to run instead of `run` (sharded tasks). */
  shard?: ShardStep;
}

/** Agent → worker: stop run `seq` (aborts ctx.signal; the flag was set first). */
export interface AbortMessage {
  type: "abort";
  seq: number;
  kind: AbortKind;
  reason: string;
}

export type ToWorker = RunMessage | AbortMessage;

/** Worker → agent: handlers loaded, ready for runs. */
export interface ReadyMessage {
  type: "ready";
  handlers: string[];
}

/** Worker → agent: loading handlers failed; the worker exits. */
export interface InitFailedMessage {
  type: "init-failed";
  error: string;
}

/** Why a run failed: bad input, unknown handler, the handler threw, it returned non-JSON, or it was aborted. */
export type FailureKind = "input" | "unknown-handler" | "handler" | "output" | "aborted";

export type ResultMessage = {
  type: "result";
  seq: number;
  processingMs: number;
  peakMemoryBytes: number;
  startedAt: number;
  finishedAt: number;
} & ({ ok: true; output: unknown } | { ok: false; kind: FailureKind; error: string; stack?: string });

export type FromWorker = ReadyMessage | InitFailedMessage | ResultMessage;
