// edgeplane as a SystemRun: a fresh fleet per run, orders as LOCAL `stats` tasks carrying a run label, completions
// from one WatchTasks stream on that label (terminal_only), opened and proven live before the first order.
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { timestampMs, type Value } from "@bufbuild/protobuf/wkt";
import type { EdgeplaneClients } from "../../cli/client.js";
import type { GetStatusResponse } from "../../gen/edgeplane/v1/cluster_pb.js";
import { SubmitTaskRequestSchema, type SubmitTaskRequest } from "../../gen/edgeplane/v1/task_pb.js";
import { NodeState, Priority, ProcessingMode, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import type { BenchFleet } from "../fleet.js";
import { fmtInt, fmtMs, fmtSummary, summarize } from "../measure.js";
import type { ResultRow, ScenarioContext } from "../scenario.js";
import { describeFailure, errorText, jsonValuesInput, outputOf } from "../tasks.js";
import { fmtTimelines, nodeTurnarounds, timelineOf, type Timeline } from "../timeline.js";
import { INPUTS, VALUES_PER_TASK, type BatchResult, type Completion, type Order, type SystemRun, type SystemRunOptions } from "./system.js";

/** Label key every task of a run carries; the run's WatchTasks stream selects on it. */
export const RUN_LABEL = "bench-run";

/** How long a probe task may take to come back on the watch before the run is given up. */
const PROBE_TIMEOUT_MS = 20_000;
/** A probe not back after this long is followed by another (the first may have finished before the watch began). */
const PROBE_EVERY_MS = 2_000;

const PRIORITY: Record<Order["priority"], Priority> = { low: Priority.LOW, normal: Priority.NORMAL, critical: Priority.CRITICAL };

/** A run of edgeplane; `insecure`: a plaintext fleet (--insecure), to measure what TLS + auth cost. */
export async function openEdgeplane(ctx: ScenarioContext, o: SystemRunOptions, insecure = false): Promise<SystemRun> {
  const fleet = await ctx.startFleet(
    { agents: o.agents, workers: o.slots },
    `${o.label.replace(/\s+/g, "-")}-edgeplane${insecure ? "-insecure" : ""}`,
    insecure ? "insecure" : undefined,
  );
  try {
    return await EdgeplaneRun.open(ctx, fleet, o, insecure);
  } catch (err) {
    await ctx.stopFleet(fleet);
    throw err;
  }
}

class EdgeplaneRun implements SystemRun {
  readonly system: "edgeplane" | "edgeplane-insecure";
  readonly title: string;
  private readonly runId = randomUUID().slice(0, 8);
  private readonly inputs: Value[] = INPUTS.map((v) => jsonValuesInput(v));
  private readonly lanes: EdgeplaneClients[];
  private readonly stop = new AbortController();
  private readonly timelines: Timeline[] = [];
  /** Per completed task (epoch ms): createdAt, and attempt 1's dispatchedAt and startedAt. */
  private readonly stamps = new Map<string, { received: number; dispatched: number; started: number }>();
  private problem: string | undefined;
  private watching: Promise<void> | undefined;
  private readonly deliver: (c: Completion) => void;
  private base: GetStatusResponse | undefined;
  private closed = false;

  private constructor(
    private readonly ctx: ScenarioContext,
    private readonly fleet: BenchFleet,
    private readonly o: SystemRunOptions,
    insecure: boolean,
  ) {
    this.system = insecure ? "edgeplane-insecure" : "edgeplane";
    this.title = insecure ? "edgeplane --insecure" : "edgeplane";
    // Submissions go on connections of their own: the watch's connection carries only the watch.
    this.lanes = Array.from({ length: Math.max(1, o.lanes) }, () => fleet.newClients());
    this.deliver = o.onCompletion;
  }

  static async open(ctx: ScenarioContext, fleet: BenchFleet, o: SystemRunOptions, insecure: boolean): Promise<EdgeplaneRun> {
    const run = new EdgeplaneRun(ctx, fleet, o, insecure);
    await run.startWatch();
    return run;
  }

  private request(o: Order): SubmitTaskRequest {
    const agents = this.fleet.agents;
    return create(SubmitTaskRequestSchema, {
      task: {
        handler: "stats",
        deviceId: agents.length > 0 ? agents[o.device % agents.length].deviceIds[0] : "",
        priority: PRIORITY[o.priority],
        processingMode: ProcessingMode.LOCAL,
        input: this.inputs[o.input % this.inputs.length],
        labels: { [RUN_LABEL]: this.runId },
      },
    });
  }

  /**
   * Opens the label watch, then sends probe tasks (another every PROBE_EVERY_MS, in case one finished before the
   * watch was subscribed) until one comes back on it: from then on no completion of the run can be missed.
   * Probes are never delivered to the scenario.
   */
  private async startWatch(): Promise<void> {
    const signal = AbortSignal.any([this.ctx.signal, this.stop.signal]);
    const probes = new Set<string>();
    // While probing nothing else of the run exists: every completion is a probe's, even one that arrives before
    // its SubmitTask response (and so before its id is in `probes`).
    let probing = true,
      probeBack = false;
    let wake: (() => void) | undefined;
    this.watching = (async () => {
      try {
        const stream = this.fleet.clients.tasks.watchTasks({ labels: { [RUN_LABEL]: this.runId }, terminalOnly: true }, { signal });
        for await (const res of stream) {
          const at = performance.now(),
            seenAt = Date.now();
          for (const t of res.tasks) {
            if (probing || probes.has(t.id)) {
              if (t.state !== TaskState.SUCCEEDED) this.problem ??= `a probe task did not succeed: ${describeFailure(t)}`;
              probeBack = true;
              wake?.();
            } else this.deliver(this.completion(t, at, seenAt));
          }
        }
        if (!this.stop.signal.aborted) this.problem ??= "the WatchTasks stream ended before the run did";
      } catch (err) {
        if (!this.stop.signal.aborted && !this.ctx.signal.aborted) this.problem ??= `the WatchTasks stream failed: ${errorText(err)}`;
      }
      wake?.();
    })();
    const end = performance.now() + PROBE_TIMEOUT_MS;
    while (!probeBack && !this.problem && performance.now() < end) {
      signal.throwIfAborted();
      const { taskId } = await this.lanes[0].tasks.submitTask(this.request({ input: 0, priority: "normal", device: 0 }), {
        signal,
        timeoutMs: this.o.callTimeoutMs,
      });
      probes.add(taskId);
      await new Promise<void>((res) => {
        wake = res;
        setTimeout(res, PROBE_EVERY_MS);
      });
      wake = undefined;
    }
    probing = false;
    if (this.problem) throw new Error(this.problem);
    if (!probeBack) throw new Error(`no probe task came back on WatchTasks within ${PROBE_TIMEOUT_MS} ms (${probes.size} sent)`);
    this.base = await this.fleet.clients.clusters.getStatus({}, { signal, timeoutMs: this.o.callTimeoutMs });
  }

  private completion(t: Task, at: number, seenAt: number): Completion {
    const first = t.attempts[0];
    if (first?.dispatchedAt && first.startedAt && t.createdAt)
      this.stamps.set(t.id, { received: timestampMs(t.createdAt), dispatched: timestampMs(first.dispatchedAt), started: timestampMs(first.startedAt) });
    const tl = timelineOf(t, seenAt);
    if (tl) this.timelines.push(tl);
    if (t.state !== TaskState.SUCCEEDED) return { id: t.id, at, ok: false, problem: describeFailure(t) };
    const count = outputOf(t)?.count;
    if (count !== VALUES_PER_TASK) return { id: t.id, at, ok: false, problem: `task ${t.id} output count ${String(count)}, expected ${VALUES_PER_TASK}` };
    return { id: t.id, at, ok: true };
  }

  async submitOne(o: Order, lane: number, signal: AbortSignal): Promise<string> {
    const res = await this.lanes[lane % this.lanes.length].tasks.submitTask(this.request(o), { signal, timeoutMs: this.o.callTimeoutMs });
    return res.taskId;
  }

  async submitBatch(orders: readonly Order[], lane: number, signal: AbortSignal): Promise<BatchResult> {
    const res = await this.lanes[lane % this.lanes.length].tasks.submitTasks(
      { tasks: orders.map((o) => this.request(o)) },
      { signal, timeoutMs: this.o.callTimeoutMs },
    );
    if (res.results.length !== orders.length) throw new Error(`SubmitTasks returned ${res.results.length} results for ${orders.length} tasks`);
    const rejected: string[] = [];
    const ids = res.results.map((r) => {
      if (r.accepted) return r.accepted.taskId;
      rejected.push(`${r.errorCode}: ${r.errorMessage}`);
      return undefined;
    });
    return { ids, rejected };
  }

  async startTimes(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const id of ids) {
      const at = this.stamps.get(id)?.started;
      if (at !== undefined) out.set(id, at);
    }
    return out;
  }

  async stageTimes(ids: readonly string[]): Promise<Map<string, { received: number; dispatched: number }>> {
    const out = new Map<string, { received: number; dispatched: number }>();
    for (const id of ids) {
      const s = this.stamps.get(id);
      if (s) out.set(id, { received: s.received, dispatched: s.dispatched });
    }
    return out;
  }

  streamProblem(): string | undefined {
    return this.problem;
  }

  async verify(succeeded: number): Promise<string[]> {
    const problems: string[] = [];
    if (this.problem) problems.push(this.problem);
    try {
      const end = await this.fleet.clients.clusters.getStatus({}, { signal: this.ctx.signal, timeoutMs: this.o.callTimeoutMs });
      const got = this.base ? Number(end.succeeded - this.base.succeeded) : Number.NaN;
      if (!(got >= succeeded)) {
        const d = (k: "failed" | "cancelled" | "expired") => (this.base ? Number(end[k] - this.base[k]) : Number.NaN);
        problems.push(
          `GetStatus counts ${fmtInt(got)} tasks succeeded in this run where the watch saw ${fmtInt(succeeded)}: failed ${d("failed")}, cancelled ${d("cancelled")}, expired ${d("expired")}, queued ${end.queuedTasks}, active ${end.activeTasks}`,
        );
      }
    } catch (err) {
      problems.push(`GetStatus after the run failed: ${errorText(err)}`);
    }
    return problems;
  }

  async diagnose(): Promise<string> {
    const parts: string[] = [];
    try {
      const opts = { signal: this.ctx.signal, timeoutMs: 5_000 };
      const s = await this.fleet.clients.clusters.getStatus({}, opts);
      parts.push(`queued ${s.queuedTasks}, active ${s.activeTasks}, succeeded ${s.succeeded}, failed ${s.failed}`);
      const { tasks } = await this.fleet.clients.tasks.listTasks({ states: [TaskState.DISPATCHED, TaskState.RUNNING], pageSize: 5 }, opts);
      const now = Date.now();
      for (const t of tasks) {
        const age = t.updatedAt ? `${fmtMs(now - timestampMs(t.updatedAt))} ms` : "?";
        parts.push(`task ${t.id} ${TaskState[t.state]} on ${t.assignedNode} attempt ${t.attempt} for ${age}`);
      }
      const { nodes } = await this.fleet.clients.clusters.listNodes({}, opts);
      for (const n of nodes)
        parts.push(`node ${n.id} ${NodeState[n.state]} running ${n.runningTaskIds.length}/${n.maxConcurrentTasks} free cpu ${n.freeCpuMillis}m`);
    } catch (err) {
      parts.push(`(diagnosis failed: ${errorText(err)})`);
    }
    return parts.join("; ");
  }

  async insights(): Promise<ResultRow[]> {
    const rows: ResultRow[] = [
      { metric: "where the time went, every task of the run (coordinator and agent timestamps, whole ms)", value: fmtTimelines(this.timelines) },
    ];
    const turnarounds = this.o.slots === 1 ? nodeTurnarounds(this.timelines) : [];
    if (turnarounds.length > 0) {
      rows.push({
        metric: "node turnaround: handler end → next dispatch to that node, while tasks waited (1 slot per agent)",
        value: fmtSummary(summarize(turnarounds)),
      });
    }
    return rows;
  }

  cpuSeconds(): Record<string, number> {
    let coordinator = 0,
      agents = 0;
    for (const [name, s] of this.fleet.cpuSeconds()) {
      if (name === "coordinator") coordinator += s;
      else agents += s;
    }
    return { coordinator, agents };
  }

  notes(): string[] {
    return [
      `edgeplane: ${this.o.agents} agents × ${this.o.slots} worker thread(s), ${this.fleet.storeDescription()}; LOCAL stats tasks, devices round-robin; completions from one WatchTasks stream (labels {${RUN_LABEL}: …}, terminal_only); fleet ${this.fleet.dir}.`,
    ];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stop.abort();
    await Promise.race([this.watching, sleep(2_000)]);
    await this.ctx.stopFleet(this.fleet);
  }
}
