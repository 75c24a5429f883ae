// BullMQ as a SystemRun, for the side-by-side comparison: a fresh queue per run on the shared Redis or on the
// benchmark's fsyncing one, worker child processes running the repository's `stats` handler, one Queue instance
// (its own Redis connection) per client lane, completions from QueueEvents proven live by a probe job. Removes the
// queue (obliterate) when the run closes, so the shared Redis keeps nothing.
import { fork, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Job, Queue, QueueEvents, type JobsOptions } from "bullmq";
import { tail } from "../fleet.js";
import { fmtMs, fmtSummary, summarize } from "../measure.js";
import { processCpuSeconds } from "../proc.js";
import type { ResultRow, ScenarioContext } from "../scenario.js";
import { errorText } from "../tasks.js";
import type { FsyncRedis, RedisTarget } from "./redis.js";
import { INPUTS, VALUES_PER_TASK, type BatchResult, type Completion, type Order, type SystemId, type SystemRun, type SystemRunOptions } from "./system.js";

/** The built worker script next to this file (dist/bench/systems/). */
const WORKER = resolve(import.meta.dirname, "bullmq-worker.js");
/** How long a probe job may take to come back on QueueEvents. */
const PROBE_TIMEOUT_MS = 20_000;
const PROBE_EVERY_MS = 2_000;
/** Events kept in the queue's event stream: more than a run produces, so QueueEvents can never fall off its end. */
const EVENTS_MAX_LEN = 1_000_000;
/** Jobs sampled at the end of a run for where their time went. */
const SAMPLE = 1_000;

/** BullMQ's priorities: 1 is the highest; jobs without one go first of all, which NORMAL orders use. */
const PRIORITY: Record<Order["priority"], number | undefined> = { critical: 1, normal: undefined, low: 10 };

/** What the runner prepared for BullMQ runs (`--compare-bullmq`). */
export interface BullmqSetup {
  /** Installed bullmq version. */
  version: string;
  /** The shared Redis (`--redis`, default 127.0.0.1:6379), checked at start. */
  shared: RedisTarget;
  /** The benchmark's own redis-server with appendfsync always; undefined with `--no-redis-fsync`. */
  fsync: FsyncRedis | undefined;
}

/** The BullMQ systems a comparing scenario runs after edgeplane in each round. */
export function bullmqSystems(setup: BullmqSetup | undefined): SystemId[] {
  if (!setup) return [];
  return setup.fsync ? ["bullmq", "bullmq-fsync"] : ["bullmq"];
}

/** The installed bullmq version, from its package.json. */
export function bullmqVersion(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve("bullmq");
  // .../node_modules/bullmq/dist/cjs/index.js → .../node_modules/bullmq/package.json
  const root = main.slice(0, main.lastIndexOf("/node_modules/bullmq/") + "/node_modules/bullmq/".length);
  return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
}

export async function openBullmq(ctx: ScenarioContext, system: "bullmq" | "bullmq-fsync", o: SystemRunOptions): Promise<SystemRun> {
  const setup = ctx.bullmq;
  if (!setup) throw new Error("BullMQ comparison is off (--no-compare-bullmq)");
  const target = system === "bullmq" ? setup.shared : setup.fsync?.target;
  if (!target) throw new Error(`${system}: the benchmark's fsyncing redis-server is not running`);
  const run = new BullmqRun(ctx, system, target, setup.version, o);
  try {
    await run.open();
    return run;
  } catch (err) {
    await run.close();
    throw err;
  }
}

interface WorkerChild {
  proc: ChildProcess;
  log: string;
  exited: Promise<void>;
  finalCpu?: number;
}

class BullmqRun implements SystemRun {
  readonly title: string;
  private readonly queueName: string;
  private readonly dir: string;
  private readonly connection: { host: string; port: number };
  private admin: Queue | undefined;
  private events: QueueEvents | undefined;
  private lanes: Queue[] = [];
  private workers: WorkerChild[] = [];
  private readonly probes = new Set<string>();
  /** While probing nothing else of the run exists: every event is a probe's (even one ahead of its add's reply). */
  private probing = true;
  private probeBack = false;
  private wakeProbe: (() => void) | undefined;
  private problem: string | undefined;
  private closed = false;
  private readonly jobOpts: JobsOptions = { removeOnComplete: false, removeOnFail: false, attempts: 1 };

  constructor(
    private readonly ctx: ScenarioContext,
    readonly system: "bullmq" | "bullmq-fsync",
    private readonly redis: RedisTarget,
    private readonly version: string,
    private readonly o: SystemRunOptions,
  ) {
    this.title = `BullMQ ${version} (${system === "bullmq" ? `Redis at ${redis.host}:${redis.port} as configured` : "own Redis, appendfsync always"})`;
    const slug = `${o.label.replace(/[^A-Za-z0-9]+/g, "-")}-${system}-${Math.random().toString(36).slice(2, 8)}`;
    this.queueName = `edgeplane-bench-${slug}`;
    this.dir = join(ctx.runDir, `bullmq-${slug}`);
    this.connection = { host: redis.host, port: redis.port };
  }

  async open(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const queueOpts = { connection: this.connection, streams: { events: { maxLen: EVENTS_MAX_LEN } }, defaultJobOptions: this.jobOpts };
    this.admin = new Queue(this.queueName, queueOpts);
    this.admin.on("error", (err) => (this.problem ??= `BullMQ queue error: ${err.message}`));
    await this.admin.waitUntilReady();
    this.events = new QueueEvents(this.queueName, { connection: this.connection });
    this.events.on("error", (err) => (this.problem ??= `QueueEvents error: ${err.message}`));
    this.events.on("completed", ({ jobId, returnvalue }) => this.onEvent(jobId, true, returnvalue));
    this.events.on("failed", ({ jobId, failedReason }) => this.onEvent(jobId, false, failedReason));
    await this.events.waitUntilReady();
    for (let i = 0; i < this.o.lanes; i++) {
      const q = new Queue(this.queueName, queueOpts);
      q.on("error", (err) => (this.problem ??= `BullMQ queue error: ${err.message}`));
      this.lanes.push(q);
    }
    await Promise.all(this.lanes.map((q) => q.waitUntilReady()));
    await this.startWorkers();
    await this.probe();
  }

  private onEvent(jobId: string, completed: boolean, payload: unknown): void {
    const at = performance.now();
    if (this.probing || this.probes.has(jobId)) {
      if (!completed) this.problem ??= `the probe job failed: ${String(payload)}`;
      this.probeBack = true;
      this.wakeProbe?.();
      return;
    }
    let c: Completion;
    if (!completed) c = { id: jobId, at, ok: false, problem: `job ${jobId} failed: ${String(payload)}` };
    else {
      let count: unknown;
      try {
        const v = typeof payload === "string" ? JSON.parse(payload) : payload;
        count = (v as { count?: unknown } | null)?.count;
      } catch {
        count = undefined;
      }
      c =
        count === VALUES_PER_TASK
          ? { id: jobId, at, ok: true }
          : { id: jobId, at, ok: false, problem: `job ${jobId} returned count ${String(count)}, expected ${VALUES_PER_TASK}` };
    }
    this.o.onCompletion(c);
  }

  private async startWorkers(): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let i = 1; i <= this.o.agents; i++) {
      const log = join(this.dir, `worker-${i}.log`);
      const fd = openSync(log, "a");
      const proc = fork(
        WORKER,
        ["--host", this.connection.host, "--port", String(this.connection.port), "--queue", this.queueName, "--concurrency", String(this.o.slots)],
        {
          stdio: ["ignore", fd, fd, "ipc"],
          execArgv: [],
        },
      );
      closeSync(fd);
      LIVE.add(proc);
      const exited = new Promise<void>((res) => {
        proc.once("exit", () => res());
        proc.once("error", () => res());
      }).then(() => void LIVE.delete(proc));
      const w: WorkerChild = { proc, log, exited };
      this.workers.push(w);
      ready.push(
        new Promise<void>((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`BullMQ worker ${i} not ready within 20 s; log ${log}:\n${tail(log)}`)), 20_000);
          proc.once("message", (m) => {
            clearTimeout(timer);
            if (m === "ready") res();
            else rej(new Error(`BullMQ worker ${i} sent ${JSON.stringify(m)}`));
          });
          void exited.then(() => {
            clearTimeout(timer);
            rej(new Error(`BullMQ worker ${i} exited (${proc.exitCode ?? proc.signalCode}) before it was ready; log ${log}:\n${tail(log)}`));
          });
        }),
      );
    }
    await Promise.all(ready);
  }

  /** Adds probe jobs until one comes back on QueueEvents (which reads only events after it began reading). */
  private async probe(): Promise<void> {
    const end = performance.now() + PROBE_TIMEOUT_MS;
    while (!this.probeBack && !this.problem && performance.now() < end) {
      this.ctx.signal.throwIfAborted();
      const job = await this.admin!.add("probe", { values: INPUTS[0] }, this.jobOpts);
      if (job.id) this.probes.add(job.id);
      await new Promise<void>((res) => {
        this.wakeProbe = res;
        setTimeout(res, PROBE_EVERY_MS);
      });
      this.wakeProbe = undefined;
    }
    this.probing = false;
    if (this.problem) throw new Error(this.problem);
    if (!this.probeBack) throw new Error(`no probe job came back on QueueEvents within ${PROBE_TIMEOUT_MS} ms (${this.probes.size} sent)`);
  }

  private job(o: Order): { name: string; data: { values: readonly number[] }; opts: JobsOptions } {
    const priority = PRIORITY[o.priority];
    return { name: "stats", data: { values: INPUTS[o.input % INPUTS.length] }, opts: priority === undefined ? this.jobOpts : { ...this.jobOpts, priority } };
  }

  async submitOne(o: Order, lane: number, _signal: AbortSignal): Promise<string> {
    const j = this.job(o);
    const job = await this.lanes[lane % this.lanes.length].add(j.name, j.data, j.opts);
    if (!job.id) throw new Error("Queue.add returned a job without an id");
    return job.id;
  }

  async submitBatch(orders: readonly Order[], lane: number, _signal: AbortSignal): Promise<BatchResult> {
    const jobs = await this.lanes[lane % this.lanes.length].addBulk(orders.map((o) => this.job(o)));
    if (jobs.length !== orders.length) throw new Error(`addBulk returned ${jobs.length} jobs for ${orders.length}`);
    const rejected: string[] = [];
    return { ids: jobs.map((j) => (j.id ? j.id : (rejected.push("addBulk returned a job without an id"), undefined))), rejected };
  }

  async startTimes(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const id of ids) {
      const job = await Job.fromId(this.admin!, id);
      if (job?.processedOn !== undefined) out.set(id, job.processedOn);
    }
    return out;
  }

  streamProblem(): string | undefined {
    return this.problem;
  }

  private async counts(): Promise<Record<string, number>> {
    return this.admin!.getJobCounts("completed", "failed", "active", "waiting", "prioritized", "delayed");
  }

  async verify(succeeded: number): Promise<string[]> {
    const problems: string[] = [];
    if (this.problem) problems.push(this.problem);
    try {
      const c = await this.counts();
      const completed = (c.completed ?? 0) - this.probes.size;
      if (completed < succeeded) problems.push(`BullMQ counts ${completed} jobs completed where QueueEvents reported ${succeeded}`);
      if ((c.failed ?? 0) > 0) problems.push(`BullMQ counts ${c.failed} failed jobs`);
    } catch (err) {
      problems.push(`getJobCounts after the run failed: ${errorText(err)}`);
    }
    for (const [i, w] of this.workers.entries()) {
      if (w.proc.exitCode !== null || w.proc.signalCode !== null)
        problems.push(`BullMQ worker ${i + 1} exited during the run (${w.proc.exitCode ?? w.proc.signalCode}); log ${w.log}:\n${tail(w.log)}`);
    }
    return problems;
  }

  async diagnose(): Promise<string> {
    try {
      return `BullMQ job counts ${JSON.stringify(await this.counts())}`;
    } catch (err) {
      return `(getJobCounts failed: ${errorText(err)})`;
    }
  }

  /** Where a job's time went: its add (timestamp) → a worker took it (processedOn) → finished (finishedOn), newest jobs. */
  async insights(): Promise<ResultRow[]> {
    try {
      const jobs = await this.admin!.getJobs(["completed"], 0, SAMPLE - 1, false);
      const wait: number[] = [],
        run: number[] = [];
      for (const j of jobs) {
        if (this.probes.has(j.id ?? "") || j.processedOn === undefined || j.finishedOn === undefined) continue;
        wait.push(j.processedOn - j.timestamp);
        run.push(j.finishedOn - j.processedOn);
      }
      const med = (xs: number[]) => fmtMs(summarize(xs).p50);
      return [
        {
          metric: `where the time went, newest ${SAMPLE} jobs (job timestamps, whole ms)`,
          value: `added → taken by a worker ${med(wait)} → finished ${med(run)} ms (medians, n=${wait.length}); taken → finished ${fmtSummary(summarize(run))}`,
        },
      ];
    } catch (err) {
      return [{ metric: "where the time went", value: `could not read jobs: ${errorText(err)}` }];
    }
  }

  cpuSeconds(): Record<string, number> {
    const workers = this.workers.reduce((a, w) => a + (w.finalCpu ?? processCpuSeconds(w.proc.pid)), 0);
    return { "BullMQ workers": workers, redis: processCpuSeconds(this.redis.pid) };
  }

  notes(): string[] {
    return [
      `${this.title}: ${this.o.agents} worker processes × concurrency ${this.o.slots}, the processor inline in each worker's main thread (statsHandler from lib/analytics/); ${this.redis.description}; queue ${this.queueName}; jobs kept with their results (removeOnComplete: false, removeOnFail: false, attempts 1); ${this.o.lanes} Queue instance(s), each its own Redis connection, for submissions; completions from QueueEvents.`,
    ];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.workers) {
      w.finalCpu = processCpuSeconds(w.proc.pid);
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill("SIGTERM");
    }
    await Promise.race([Promise.all(this.workers.map((w) => w.exited)), sleep(5_000)]);
    for (const w of this.workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill("SIGKILL");
    const quietly = async (p: Promise<unknown> | undefined) => {
      try {
        await p;
      } catch {
        // closing anyway
      }
    };
    await quietly(this.events?.close());
    await Promise.all(this.lanes.map((q) => quietly(q.close())));
    if (this.admin) {
      // Remove everything of this queue (jobs, results, events) from the Redis: it may be shared.
      await quietly(this.admin.obliterate({ force: true }));
      await quietly(this.admin.close());
    }
  }
}

/** Every BullMQ worker process still running, for the synchronous last resort at exit. */
const LIVE = new Set<ChildProcess>();

/** SIGKILLs every BullMQ worker still running (from a process `exit` handler). */
export function killBullmqWorkersNow(): void {
  for (const p of LIVE) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
}
