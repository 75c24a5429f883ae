// One worker thread as the executor sees it: start-up handshake, one run at a time, abort, terminate.
// Knows nothing of queues or results' meaning; it must never throw from a worker event (it reports them).

import type { ShardStep } from "./types.js";
import { Worker } from "node:worker_threads";
import { resourceLimitsFor } from "./memory.js";
import {
  ABORT_FLAG_BYTES,
  ABORT_KIND,
  ABORT_KIND_CODES,
  ABORT_SEQ,
  type AbortKind,
  type FromWorker,
  type ResultMessage,
  type RunMessage,
  type ToWorker,
  type WorkerInit,
} from "./protocol.js";

/**
 * starting → idle ⇄ busy; any live state → stopping (terminate requested) → exited; a worker that dies on
 * its own goes straight to exited. Illegal transitions throw: they would mean two runs on one worker.
 */
export type SlotState = "starting" | "idle" | "busy" | "stopping" | "exited";

const TRANSITIONS: Record<SlotState, readonly SlotState[]> = {
  starting: ["idle", "stopping", "exited"],
  idle: ["busy", "stopping", "exited"],
  busy: ["idle", "stopping", "exited"],
  stopping: ["exited"],
  exited: [],
};

/** How a worker ended. */
export interface SlotExit {
  code: number;
  /** It hit its V8 heap limit (ERR_WORKER_OUT_OF_MEMORY). */
  outOfMemory: boolean;
  /** It had finished loading handlers (a replacement is worth starting). */
  wasReady: boolean;
  /** What went wrong, when something did: an uncaught error, a failed handler load, an undeliverable message. */
  error: string | undefined;
}

export interface SlotListener<J> {
  ready(slot: WorkerSlot<J>): void;
  result(slot: WorkerSlot<J>, msg: ResultMessage): void;
  exit(slot: WorkerSlot<J>, info: SlotExit): void;
}

export interface SlotOptions {
  workerUrl: URL;
  handlersDir: string | undefined;
}

export class WorkerSlot<J> {
  /** The job holding this worker (set by the executor while starting or running it). */
  job: J | undefined;
  /** performance.now() when it last finished a run (for least-recently-used eviction). */
  lastUsed = 0;
  /** Terminated on purpose (eviction, close): no replacement. */
  retiring = false;
  /** Handler names the worker reported; rejects when it could not start. */
  readonly ready: Promise<string[]>;
  private current: SlotState = "starting";
  private seq = 0;
  private error: string | undefined;
  private outOfMemory = false;
  private wasReady = false;
  private readonly worker: Worker;
  private readonly flag: Int32Array;
  private readonly exitedPromise: Promise<void>;

  constructor(
    readonly id: number,
    readonly classMb: number,
    opts: SlotOptions,
    listener: SlotListener<J>,
  ) {
    const abortFlag = new SharedArrayBuffer(ABORT_FLAG_BYTES);
    this.flag = new Int32Array(abortFlag);
    const workerData: WorkerInit = { handlersDir: opts.handlersDir, abortFlag };
    this.worker = new Worker(opts.workerUrl, { workerData, resourceLimits: resourceLimitsFor(classMb) });
    let resolveReady!: (names: string[]) => void;
    let rejectReady!: (err: Error) => void;
    this.ready = new Promise<string[]>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready.catch(() => {}); // reported through listener.exit as well; nobody has to await it

    this.worker.on("message", (m: FromWorker) => {
      switch (m.type) {
        case "ready":
          if (this.current !== "starting") return;
          this.wasReady = true;
          this.transition("idle");
          resolveReady(m.handlers);
          listener.ready(this);
          return;
        case "init-failed":
          this.error = m.error;
          return;
        case "result":
          if (this.current === "busy" && m.seq === this.seq) {
            this.transition("idle");
            listener.result(this, m);
          } else if (this.current === "stopping" && m.seq === this.seq) {
            listener.result(this, m);
          }
          return;
        default: {
          const never: never = m;
          this.error = `unexpected message from worker: ${JSON.stringify(never)}`;
        }
      }
    });
    this.worker.on("messageerror", (err) => {
      this.error = `a message from the worker could not be deserialized: ${err.message}`;
      void this.terminate();
    });
    this.worker.on("error", (err: Error & { code?: string }) => {
      if (err.code === "ERR_WORKER_OUT_OF_MEMORY") this.outOfMemory = true;
      this.error ??= err.message;
    });
    this.exitedPromise = new Promise<void>((resolve) => {
      this.worker.once("exit", (code) => {
        this.current = "exited";
        rejectReady(new Error(this.error ?? `worker exited with code ${code} before it was ready`));
        listener.exit(this, { code, outOfMemory: this.outOfMemory, wasReady: this.wasReady, error: this.error });
        resolve();
      });
    });
    // Idle workers must not keep the agent's process alive; the executor holds a worker while a job needs it.
    // After the listeners: adding a 'message' listener refs the port again.
    this.worker.unref();
  }

  get state(): SlotState {
    return this.current;
  }

  /** Live: started or running, not on its way out. */
  get live(): boolean {
    return this.current === "starting" || this.current === "idle" || this.current === "busy";
  }

  /** Keeps the process alive while a job depends on this worker. */
  hold(on: boolean): void {
    if (on) this.worker.ref();
    else this.worker.unref();
  }

  /** Starts a run on an idle worker; the series buffers are transferred (detached here). Returns its seq. */
  run(handler: string, input: unknown, values?: Float64Array, timestamps?: Float64Array, shard?: ShardStep): number {
    this.transition("busy");
    this.seq = (this.seq + 1) | 0 || 1; // never 0: the flag starts at 0
    const msg: RunMessage = shard
      ? { type: "run", seq: this.seq, handler, input, values, timestamps, shard }
      : { type: "run", seq: this.seq, handler, input, values, timestamps };
    const transfer = [values?.buffer, timestamps?.buffer].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
    try {
      this.worker.postMessage(msg satisfies ToWorker, transfer);
    } catch (err) {
      this.transition("idle");
      throw err;
    }
    return this.seq;
  }

  /** Asks the running handler to stop: the flag for synchronous loops, a message for async handlers. */
  abort(kind: AbortKind, reason: string): void {
    Atomics.store(this.flag, ABORT_KIND, ABORT_KIND_CODES[kind]);
    Atomics.store(this.flag, ABORT_SEQ, this.seq);
    this.worker.postMessage({ type: "abort", seq: this.seq, kind, reason } satisfies ToWorker);
  }

  /** Stops the thread at once, even mid-loop. Resolves when it has exited. */
  terminate(): Promise<void> {
    if (this.live) {
      this.transition("stopping");
      void this.worker.terminate();
    }
    return this.exitedPromise;
  }

  private transition(to: SlotState): void {
    if (!TRANSITIONS[this.current].includes(to)) {
      throw new Error(`worker ${this.id}: illegal transition ${this.current} → ${to}`);
    }
    this.current = to;
  }
}
