// An in-process fleet for the coordinator's split path: a real TaskManager and ShardDriver, and "agents" that run
// each shard task the way the executor's worker does (buildHandlerInput + runShardStep), with every value crossing a
// process boundary passed through JSON as google.protobuf.Value would. No sockets, no timers.
import { buildHandlerInput, plainContext } from "../../lib/analytics/index.js";
import { createRegistry } from "../../lib/analytics/registry.js";
import type { Handler } from "../../lib/analytics/types.js";
import { runShardStep } from "../../agent/executor/task-runner.js";
import { ShardDriver } from "../../coordinator/distributed/driver.js";
import type { SplitPlanOptions } from "../../coordinator/distributed/plan.js";
import type { ClusterView, NodeView } from "../../coordinator/scheduler/place.js";
import { MemoryTaskStore } from "../../coordinator/store/memory-store.js";
import { TaskManager } from "../../coordinator/tasks/task-manager.js";
import { isTerminal, type JsonValue, type TaskRecord, type TaskSpec } from "../../coordinator/tasks/types.js";
import { silentLogger } from "../../lib/log.js";

const MB = 1024 * 1024;

export const simSpec = (over: Partial<TaskSpec> = {}): TaskSpec => ({
  name: "t",
  handler: "stats",
  deviceId: "",
  priority: "normal",
  mode: "distributed",
  input: null,
  series: undefined,
  memoryBytes: 64 * MB,
  cpuMillis: 100,
  estimatedMs: 0,
  deadline: undefined,
  maxRetries: 2,
  clusterId: "",
  labels: {},
  disconnectWindowMs: undefined,
  ...over,
});

export function simNode(id: string, clusterId: string, over: Partial<NodeView> = {}): NodeView {
  return {
    id,
    clusterId,
    tier: "edge",
    handlers: new Set(["stats", "anomaly", "aggregate", "threshold"]),
    deviceIds: new Set<string>(),
    freeCpuMillis: 1000,
    freeMemoryBytes: 1024 * MB,
    totalCpuMillis: 4000,
    totalMemoryBytes: 4096 * MB,
    inFlight: 0,
    maxConcurrent: 2,
    ...over,
  };
}

const viaJson = <T>(v: T): T => (v === undefined ? v : JSON.parse(JSON.stringify(v)));

/** What a simulated agent does with one shard attempt; return a string to fail the attempt with it. */
export type ShardHook = (t: TaskRecord) => string | undefined;

export class ShardSim {
  now = 1_000_000;
  readonly tasks = new TaskManager(new MemoryTaskStore(), { now: () => this.now, retryBaseMs: 1, retryMaxMs: 1, random: () => 0 });
  readonly driver: ShardDriver;
  readonly cancelled: string[] = [];
  private readonly handlers: ReadonlyMap<string, Handler>;

  constructor(
    public nodes: NodeView[],
    public clusters: ClusterView[] = [{ id: "c1", tier: "edge", health: 1 }],
    custom: Handler[] = [],
    options: Partial<SplitPlanOptions> = {},
  ) {
    this.handlers = createRegistry(custom);
    this.driver = new ShardDriver({
      tasks: this.tasks,
      cancel: (id, reason) => {
        this.cancelled.push(id);
        this.tasks.cancel(id, reason);
      },
      snapshot: () => ({ nodes: this.nodes, clusters: this.clusters }),
      now: () => this.now,
      log: silentLogger(),
      options,
    });
  }

  submit(spec: TaskSpec): string {
    return this.tasks.submit([{ spec, idempotencyKey: "" }])[0].task.id;
  }

  shardsOf(parentId: string): TaskRecord[] {
    return this.tasks.reader
      .list({ includeShards: true }, 10_000, "")
      .tasks.filter((t) => t.shard?.parentId === parentId)
      .reverse();
  }

  /** Runs queued shards (one step at a time, on their planned node) until the parent is terminal or nothing is left. */
  run(parentId: string, hook: ShardHook = () => undefined, maxSteps = 1000): TaskRecord {
    for (let step = 0; step < maxSteps; step++) {
      this.driver.tick();
      const parent = this.tasks.get(parentId);
      if (isTerminal(parent.state)) return parent;
      const queued = this.shardsOf(parentId).filter((t) => t.state === "queued");
      if (queued.length === 0) return parent;
      this.now += 1;
      for (const t of queued) this.execute(t, hook);
    }
    throw new Error("simulation did not finish");
  }

  private execute(t: TaskRecord, hook: ShardHook): void {
    const a = t.shard!;
    const node = a.preferNode || this.nodes[0].id;
    const d = this.tasks.dispatched(t.id, node, "c1", "sim");
    this.tasks.accepted(t.id, d.attempt);
    const failure = hook(this.tasks.get(t.id));
    const base = { taskId: t.id, attempt: d.attempt, processingMs: 1, peakMemoryBytes: 1, startedAt: undefined, finishedAt: undefined };
    if (failure !== undefined) {
      this.tasks.report({ ...base, outcome: "failed", output: undefined, error: failure });
      return;
    }
    try {
      const spec = t.spec;
      const series = spec.series
        ? { values: Float64Array.from(spec.series.values), timestamps: spec.series.timestamps.length ? Float64Array.from(spec.series.timestamps) : undefined }
        : undefined;
      const input = buildHandlerInput(viaJson(spec.input), series);
      const out = runShardStep(this.handlers.get(spec.handler)!, input, plainContext(), {
        phase: a.phase,
        round: a.round,
        offset: a.offset,
        global: viaJson(a.global),
      });
      if (out instanceof Promise) throw new Error("async handlers are not simulated");
      this.tasks.report({ ...base, outcome: "succeeded", output: viaJson(out as JsonValue), error: "" });
    } catch (err) {
      this.tasks.report({ ...base, outcome: "failed", output: undefined, error: (err as Error).message });
    }
  }
}
