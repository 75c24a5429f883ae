// The executor: a pool of warm worker threads sized to the node, a FIFO of attempts waiting for one, and
// the attempt lifecycle (run → completed | failed | cancelled | timed-out). It never throws from `run`, and a
// worker's crash, hang or out-of-memory never takes the agent down: the worker is replaced.

import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { builtinHandlers, createRegistry } from "../../lib/analytics/registry.js";
import type { Handler } from "../../lib/analytics/types.js";
import { loadCustomHandlers } from "../handlers/custom-loader.js";
import { DEFAULT_MEMORY_LIMIT_BYTES, estimateInputBytes, memoryClassMb, MIB, normalizeMemoryLimit } from "./memory.js";
import type { AbortKind, ResultMessage, RunMessage } from "./protocol.js";
import { isolateMemoryInUse, startTask } from "./task-runner.js";
import type { ExecRequest, ExecResult, Executor, ExecutorLogger, ExecutorOptions } from "./types.js";
import { NORMAL_RANK } from "./types.js";
import { type SlotExit, WorkerSlot } from "./worker-slot.js";

export type { ExecRequest, ExecResult, Executor, ExecutorLogger, ExecutorOptions } from "./types.js";

export const DEFAULT_ABORT_GRACE_MS = 250;

/** Executor lifecycle: running → closing → closed. */
export type ExecutorState = "running" | "closing" | "closed";

/**
 * queued → assigned (holds a worker that is starting) → running (posted to it) → done; queued, assigned or
 * running → done directly on abort when no worker is involved; running → aborting (abort sent, grace timer
 * armed) → done when the worker answers or has been terminated.
 */
type JobState = "queued" | "assigned" | "running" | "aborting" | "done";

interface Job {
  readonly req: ExecRequest;
  readonly limitBytes: number;
  readonly classMb: number;
  state: JobState;
  resolve(result: ExecResult): void;
  slot?: WorkerSlot<Job>;
  abort?: { kind: AbortKind; reason: string };
  /** performance.now() / Date.now() when posted to the worker. */
  postedAt?: number;
  postedEpoch?: number;
  timers: NodeJS.Timeout[];
  unlisten?: () => void;
  /** Set when it runs inline (ExecutorOptions.inlineMaxBytes): the built-in, and its input's estimated bytes. */
  inline?: { handler: Handler; inputBytes: number };
}

const NOOP_LOGGER: ExecutorLogger = { info() {}, warn() {}, error() {} };
/** setTimeout fires at once for delays above this (2^31-1 ms); longer deadlines re-arm. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Starts an executor: loads custom handlers here (to list names, and so a broken module fails start-up,
 * not the first task), then starts `prewarm` workers and waits until they have loaded the handlers too.
 * Throws when the worker script is missing, a handler module is broken, or a worker cannot start.
 */
export async function createExecutor(opts: ExecutorOptions = {}): Promise<Executor> {
  const size = opts.size ?? availableParallelism();
  if (!Number.isInteger(size) || size < 1) throw new Error(`executor: size must be a positive integer; got ${size}`);
  const workerUrl = opts.workerUrl ?? defaultWorkerUrl();
  if (workerUrl.protocol === "file:" && !existsSync(fileURLToPath(workerUrl))) {
    throw new Error(`executor: worker script ${fileURLToPath(workerUrl)} does not exist; build the agent first (npm run build)`);
  }
  const registry = createRegistry(opts.handlersDir ? await loadCustomHandlers(opts.handlersDir) : []);
  const executor = new PoolExecutor({
    size,
    workerUrl,
    handlersDir: opts.handlersDir,
    handlerNames: [...registry.keys()].sort(),
    distributable: [...registry.values()]
      .filter(isDistributable)
      .map((h) => h.name)
      .sort(),
    logger: opts.logger ?? NOOP_LOGGER,
    abortGraceMs: opts.abortGraceMs ?? DEFAULT_ABORT_GRACE_MS,
    inlineMaxBytes: opts.inlineMaxBytes ?? DEFAULT_INLINE_MAX_BYTES,
    inline: builtinHandlers,
  });
  try {
    await executor.prewarm(Math.min(size, opts.prewarm ?? size), opts.prewarmMemoryBytes ?? DEFAULT_MEMORY_LIMIT_BYTES);
  } catch (err) {
    await executor.close();
    throw new Error(`executor: a worker could not start: ${(err as Error).message}`, { cause: err });
  }
  return executor;
}

/**
 * Whether the coordinator can run a handler as shards: it must merge; and since the coordinator cannot run a custom
 * handler's combine, a custom handler with prepare rounds is not distributable (built-ins combine in the coordinator).
 */
function isDistributable(h: Handler): boolean {
  if (typeof h.merge !== "function") return false;
  return builtinHandlers.has(h.name) || (h.prepareRounds === undefined && h.prepare === undefined);
}

/**
 * The compiled worker next to this module; when this module is the TypeScript source (vitest), the build
 * output for it under dist/ — there is no worker.js beside the .ts file, and workers cannot run .ts.
 */
export function defaultWorkerUrl(): URL {
  const beside = new URL("./worker.js", import.meta.url);
  if (!import.meta.url.endsWith(".ts")) return beside;
  return new URL("../../dist/agent/executor/worker.js", import.meta.url);
}

interface PoolConfig {
  size: number;
  workerUrl: URL;
  handlersDir: string | undefined;
  handlerNames: string[];
  distributable: string[];
  logger: ExecutorLogger;
  abortGraceMs: number;
  /** See ExecutorOptions.inlineMaxBytes. */
  inlineMaxBytes: number;
  /** Handlers that may run inline: the built-ins (a custom handler cannot take a built-in's name). */
  inline: ReadonlyMap<string, Handler>;
}

/** Inline runs never see an abort flag from the agent: their seq never matches the flag's. */
const NO_ABORT_FLAG = new Int32Array(new SharedArrayBuffer(8));
/** Default ExecutorOptions.inlineMaxBytes. */
export const DEFAULT_INLINE_MAX_BYTES = 64 * 1024;

class PoolExecutor implements Executor {
  readonly size: number;
  private state: ExecutorState = "running";
  private readonly queue: Job[] = [];
  /** Jobs holding a worker (assigned, running or aborting). */
  private readonly active = new Set<Job>();
  private readonly slots = new Set<WorkerSlot<Job>>();
  private readonly known: ReadonlySet<string>;
  private nextSlotId = 1;
  private pumping = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly cfg: PoolConfig) {
    this.size = cfg.size;
    this.known = new Set(cfg.handlerNames);
  }

  handlers(): string[] {
    return [...this.cfg.handlerNames];
  }

  distributable(): string[] {
    return [...this.cfg.distributable];
  }

  running(): number {
    return this.active.size;
  }

  inlineRuns = 0;

  async prewarm(count: number, memoryBytes: number): Promise<void> {
    const classMb = memoryClassMb(memoryBytes);
    const started = Array.from({ length: count }, () => this.spawn(classMb));
    // Held while createExecutor awaits them (an unref'd worker alone would let the process exit mid-await).
    for (const s of started) s.hold(true);
    try {
      await Promise.all(started.map((s) => s.ready));
    } finally {
      for (const s of started) if (s.job === undefined) s.hold(false);
    }
  }

  run(req: ExecRequest, signal: AbortSignal): Promise<ExecResult> {
    try {
      return this.admit(req, signal);
    } catch (err) {
      // A bug here must still not throw into the agent's loop.
      this.cfg.logger.error({ task: req.taskId, attempt: req.attempt, err }, "executor failed to admit an attempt");
      return Promise.resolve(failed(`executor error: ${(err as Error).message}`));
    }
  }

  private admit(req: ExecRequest, signal: AbortSignal): Promise<ExecResult> {
    if (this.state !== "running") return Promise.resolve(cancelled("executor is closed"));
    if (!this.known.has(req.handler)) {
      return Promise.resolve(failed(`unknown handler "${req.handler}"; this agent runs: ${this.cfg.handlerNames.join(", ")}`));
    }
    const limitBytes = normalizeMemoryLimit(req.memoryLimitBytes);
    const estimate = estimateInputBytes(req.input, req.series, limitBytes);
    if (estimate > limitBytes) {
      return Promise.resolve(failed(`input needs at least ${estimate} bytes, more than the memory limit of ${limitBytes} bytes`));
    }
    if (req.series && req.series.timestamps.length > 0 && req.series.timestamps.length !== req.series.values.length) {
      return Promise.resolve(
        failed(`series has ${req.series.values.length} values but ${req.series.timestamps.length} timestamps; send one timestamp per value, or none`),
      );
    }
    if (signal.aborted) return Promise.resolve(cancelled(reasonOf(signal)));
    if (req.deadline !== undefined && req.deadline <= Date.now()) return Promise.resolve(timedOut());

    let resolve!: (r: ExecResult) => void;
    const promise = new Promise<ExecResult>((r) => (resolve = r));
    const builtin = this.cfg.inline.get(req.handler);
    const inline = builtin && estimate <= this.cfg.inlineMaxBytes ? { handler: builtin, inputBytes: estimate } : undefined;
    const job: Job = { req, limitBytes, classMb: memoryClassMb(limitBytes), state: "queued", resolve, timers: [], inline };
    const onAbort = () => this.abortJob(job, "cancelled", reasonOf(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    job.unlisten = () => signal.removeEventListener("abort", onAbort);
    if (req.deadline !== undefined) this.armDeadline(job, req.deadline);
    // In rank order, oldest first within a rank (see ExecRequest.rank).
    const rank = req.rank ?? NORMAL_RANK;
    let at = this.queue.length;
    while (at > 0 && (this.queue[at - 1].req.rank ?? NORMAL_RANK) > rank) at--;
    this.queue.splice(at, 0, job);
    this.pump();
    return promise;
  }

  /**
   * A small built-in attempt, run here rather than in a worker (ExecutorOptions.inlineMaxBytes). The same runner as
   * a worker's, so outcomes are identical; peak memory is what the run added to this heap plus its input estimate.
   */
  private async runInline(job: Job, handler: Handler, inputBytes: number): Promise<void> {
    const req = job.req;
    const msg: RunMessage = {
      type: "run",
      seq: 1,
      handler: req.handler,
      input: req.input,
      shard: req.shard,
      values: req.series && req.series.values.length > 0 ? Float64Array.from(req.series.values) : undefined,
      timestamps: req.series && req.series.timestamps.length > 0 ? Float64Array.from(req.series.timestamps) : undefined,
    };
    const before = isolateMemoryInUse();
    const m = await startTask(new Map([[req.handler, handler]]), msg, NO_ABORT_FLAG).result;
    const measured = {
      processingMs: m.processingMs,
      peakMemoryBytes: Math.max(0, m.peakMemoryBytes - before) + inputBytes,
      startedAt: m.startedAt,
      finishedAt: m.finishedAt,
    };
    // A cancel or deadline that came first already finished the job (finish ignores this then).
    if (m.ok) return this.finish(job, { type: "completed", output: m.output, ...measured });
    if (m.kind === "handler")
      this.cfg.logger.warn({ task: req.taskId, attempt: req.attempt, handler: req.handler, error: m.error, stack: m.stack }, "handler threw");
    this.finish(job, { type: "failed", error: m.error, permanent: m.kind === "input", ...measured });
  }

  private armDeadline(job: Job, deadline: number): void {
    const left = deadline - Date.now();
    const timer = setTimeout(
      () => (left > MAX_TIMER_MS ? this.armDeadline(job, deadline) : this.abortJob(job, "timed-out", "deadline reached")),
      Math.max(0, Math.min(left, MAX_TIMER_MS)),
    );
    timer.unref(); // the pending job holds its worker; a bare timer must not keep the process up
    job.timers.push(timer);
  }

  /** Hands queued jobs to workers, oldest first, while fewer than `size` hold one. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.state === "running" && this.queue.length > 0 && this.active.size < this.size) {
        const job = this.queue.shift() as Job;
        if (job.inline) {
          // Holds one of the `size` places while it runs, like a worker's job, but on this thread.
          job.state = "running";
          this.active.add(job);
          this.inlineRuns++;
          void this.runInline(job, job.inline.handler, job.inline.inputBytes);
          continue;
        }
        const slot = this.acquire(job.classMb);
        job.state = "assigned";
        job.slot = slot;
        slot.job = job;
        slot.hold(true);
        this.active.add(job);
        if (slot.state === "idle") this.start(job, slot);
        // else: the slot's ready event starts it
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * A free worker of the class: a warm idle one (most recently used), one still starting, or a new one —
   * evicting the least recently used free worker of another class when the pool is full. Fewer than
   * `size` jobs hold workers whenever this runs, so with a full pool at least one live worker is free.
   */
  private acquire(classMb: number): WorkerSlot<Job> {
    const free = [...this.slots].filter((s) => s.live && s.job === undefined);
    const sameClass = free.filter((s) => s.classMb === classMb);
    const warm = sameClass.filter((s) => s.state === "idle").sort((a, b) => b.lastUsed - a.lastUsed)[0];
    if (warm) return warm;
    const starting = sameClass.find((s) => s.state === "starting");
    if (starting) return starting;
    const live = [...this.slots].filter((s) => s.live).length;
    if (live >= this.size) {
      const victim = free.sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (victim) {
        victim.retiring = true;
        void victim.terminate();
      }
    }
    return this.spawn(classMb);
  }

  private spawn(classMb: number): WorkerSlot<Job> {
    const slot: WorkerSlot<Job> = new WorkerSlot<Job>(
      this.nextSlotId++,
      classMb,
      { workerUrl: this.cfg.workerUrl, handlersDir: this.cfg.handlersDir },
      {
        ready: (s) => this.onReady(s),
        result: (s, m) => this.onResult(s, m),
        exit: (s, info) => this.onExit(s, info),
      },
    );
    this.slots.add(slot);
    return slot;
  }

  private onReady(slot: WorkerSlot<Job>): void {
    const job = slot.job;
    if (job && job.state === "assigned") this.start(job, slot);
    else this.pump(); // a replacement or a slot whose job was cancelled while it started
  }

  private start(job: Job, slot: WorkerSlot<Job>): void {
    const { req } = job;
    job.state = "running";
    job.postedAt = performance.now();
    job.postedEpoch = Date.now();
    // Copies (one memcpy each) so transferring never detaches the caller's arrays.
    const values = req.series && req.series.values.length > 0 ? new Float64Array(req.series.values) : undefined;
    const timestamps = values && req.series && req.series.timestamps.length > 0 ? new Float64Array(req.series.timestamps) : undefined;
    try {
      slot.run(req.handler, req.input, values, timestamps, req.shard);
    } catch (err) {
      this.release(slot);
      this.finish(job, failed(`input cannot be sent to a worker: ${(err as Error).message}`));
    }
  }

  private onResult(slot: WorkerSlot<Job>, m: ResultMessage): void {
    const job = slot.job;
    if (!job) return;
    if (slot.state === "idle") this.release(slot);
    else slot.job = undefined; // stopping: it exits; no reuse
    const measured = { processingMs: m.processingMs, peakMemoryBytes: m.peakMemoryBytes, startedAt: m.startedAt, finishedAt: m.finishedAt };
    if (job.abort) {
      // Once cancel or the deadline fired the outcome is decided, even if the handler finished in the grace period.
      this.finish(job, aborted(job.abort, measured));
    } else if (m.ok) {
      this.finish(job, { type: "completed", output: m.output, ...measured });
    } else {
      if (m.kind === "handler") {
        this.cfg.logger.warn({ task: job.req.taskId, attempt: job.req.attempt, handler: job.req.handler, error: m.error, stack: m.stack }, "handler threw");
      }
      // Bad input fails the same way on every node: the coordinator must not retry it.
      this.finish(job, { type: "failed", error: m.error, permanent: m.kind === "input", ...measured });
    }
  }

  private onExit(slot: WorkerSlot<Job>, info: SlotExit): void {
    this.slots.delete(slot);
    const job = slot.job;
    slot.job = undefined;
    if (job && job.state !== "done") {
      const now = Date.now();
      const ran = job.postedAt !== undefined;
      const measured = {
        processingMs: ran ? performance.now() - (job.postedAt as number) : 0,
        peakMemoryBytes: info.outOfMemory ? slot.classMb * MIB : 0,
        startedAt: job.postedEpoch ?? now,
        finishedAt: now,
      };
      if (job.abort) {
        this.finish(job, aborted(job.abort, measured));
      } else if (info.outOfMemory) {
        this.finish(job, {
          type: "failed",
          error: `exceeded memory limit of ${job.limitBytes} bytes (worker heap limited to ${slot.classMb} MiB)`,
          ...measured,
        });
      } else if (!info.wasReady) {
        this.finish(job, { type: "failed", error: `worker failed to start: ${info.error ?? `exit code ${info.code}`}`, ...measured });
      } else {
        this.finish(job, { type: "failed", error: `worker crashed: ${info.error ?? `exited with code ${info.code}`}`, ...measured });
      }
    }
    const expected = slot.retiring || this.state !== "running";
    const fields = { worker: slot.id, code: info.code, outOfMemory: info.outOfMemory, error: info.error, task: job?.req.taskId };
    if (!expected && !info.wasReady) {
      // Not replaced: a worker that cannot load the handlers would fail again, in a tight loop.
      this.cfg.logger.error(fields, "worker failed to start");
    } else if (!expected) {
      this.cfg.logger.warn(fields, "worker exited; replacing it");
      // Keeps the pool warm; queued work would start one anyway, idle capacity would not.
      if ([...this.slots].filter((s) => s.live).length < this.size) this.spawn(slot.classMb);
    }
    this.pump();
  }

  private release(slot: WorkerSlot<Job>): void {
    slot.job = undefined;
    slot.lastUsed = performance.now();
    slot.hold(false);
  }

  /** Cancel or deadline: settles queued/starting jobs at once; asks a running handler to stop, then terminates. */
  private abortJob(job: Job, kind: AbortKind, reason: string): void {
    if (job.state === "done" || job.abort) return;
    job.abort = { kind, reason };
    const now = Date.now();
    const nothingRan = { processingMs: 0, peakMemoryBytes: 0, startedAt: now, finishedAt: now };
    switch (job.state) {
      case "queued":
        this.queue.splice(this.queue.indexOf(job), 1);
        this.finish(job, aborted(job.abort, nothingRan));
        return;
      case "assigned": {
        const slot = job.slot as WorkerSlot<Job>;
        this.release(slot); // it keeps starting and joins the pool as a warm worker
        this.finish(job, aborted(job.abort, nothingRan));
        return;
      }
      case "running": {
        if (job.inline) {
          // It ends within this turn anyway; the outcome is decided now.
          this.finish(job, aborted(job.abort, nothingRan));
          return;
        }
        const slot = job.slot as WorkerSlot<Job>;
        job.state = "aborting";
        slot.abort(kind, reason);
        const grace = setTimeout(() => {
          if (job.state !== "aborting") return;
          this.cfg.logger.warn(
            { task: job.req.taskId, attempt: job.req.attempt, handler: job.req.handler, graceMs: this.cfg.abortGraceMs },
            "handler ignored abort; terminating its worker",
          );
          void slot.terminate();
        }, this.cfg.abortGraceMs);
        job.timers.push(grace);
        return;
      }
      case "aborting":
        return;
    }
  }

  private finish(job: Job, result: ExecResult): void {
    if (job.state === "done") return;
    job.state = "done";
    for (const t of job.timers) clearTimeout(t);
    job.unlisten?.();
    this.active.delete(job);
    job.slot = undefined;
    job.resolve(result);
    this.pump();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = "closing";
      for (const job of [...this.queue]) this.abortJob(job, "cancelled", "executor closed");
      const pending = [...this.active].map(
        (job) =>
          new Promise<void>((r) => {
            const resolve = job.resolve;
            job.resolve = (res) => {
              resolve(res);
              r();
            };
          }),
      );
      for (const job of [...this.active]) this.abortJob(job, "cancelled", "executor closed");
      await Promise.all(pending);
      await Promise.all(
        [...this.slots].map((s) => {
          s.retiring = true;
          return s.terminate();
        }),
      );
      this.state = "closed";
    })();
    return this.closing;
  }
}

function reasonOf(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r.message;
  if (typeof r === "string" && r !== "") return r;
  return "cancelled";
}

function failed(error: string): ExecResult {
  const now = Date.now();
  return { type: "failed", error, processingMs: 0, peakMemoryBytes: 0, startedAt: now, finishedAt: now };
}

function cancelled(reason: string): ExecResult {
  const now = Date.now();
  return { type: "cancelled", reason, processingMs: 0, peakMemoryBytes: 0, startedAt: now, finishedAt: now };
}

function timedOut(): ExecResult {
  const now = Date.now();
  return { type: "timed-out", processingMs: 0, peakMemoryBytes: 0, startedAt: now, finishedAt: now };
}

function aborted(
  abort: { kind: AbortKind; reason: string },
  measured: { processingMs: number; peakMemoryBytes: number; startedAt: number; finishedAt: number },
): ExecResult {
  return abort.kind === "timed-out" ? { type: "timed-out", ...measured } : { type: "cancelled", reason: abort.reason, ...measured };
}
