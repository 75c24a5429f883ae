// Drives DISTRIBUTED and HYBRID tasks: splits a parent into shard tasks (ordinary tasks with `shard` set, placed and
// retried by the normal dispatcher), runs the prepare rounds, merges, and keeps the parent's record (state, progress,
// split) up to date from its shards' change events. Owns no timers and sends nothing to agents itself; all state
// lives in task records, so a restarted coordinator picks up where it was.
import { performance } from "node:perf_hooks";
import type { Logger } from "../../lib/log.js";
import type { ClusterView, NodeView } from "../scheduler/place.js";
import type { TaskManager } from "../tasks/task-manager.js";
import { isTerminal, type JsonValue, type ShardAssignment, type ShardPhase, type SplitRecord, type TaskRecord, type TaskSpec } from "../tasks/types.js";
import { DEFAULT_SPLIT_OPTIONS, MAX_SHARDS_LABEL, planSplit, type SplitPlanOptions } from "./plan.js";
import { builtin, combineRound, inputLength, mergePartials, prepareRounds, sliceInput } from "./shards.js";

/** A task the driver splits: DISTRIBUTED or HYBRID, and not itself a shard. */
export const isSplitTask = (t: TaskRecord): boolean => !t.shard && (t.spec.mode === "distributed" || t.spec.mode === "hybrid");

export interface ShardDriverDeps {
  tasks: TaskManager;
  /** Cancels a task and whatever attempt of it an agent runs (the dispatcher's cancel). */
  cancel(taskId: string, reason: string): void;
  /** Schedulable nodes and clusters now, as the placement pass sees them. */
  snapshot(): { nodes: readonly NodeView[]; clusters: readonly ClusterView[] };
  now(): number;
  log: Logger;
  options?: Partial<SplitPlanOptions>;
}

export class ShardDriver {
  /** Split tasks still waiting for a plan (no node could take a shard yet). */
  private readonly waiting = new Map<string, string>();
  private readonly opts: SplitPlanOptions;

  constructor(private readonly d: ShardDriverDeps) {
    this.opts = { ...DEFAULT_SPLIT_OPTIONS, ...d.options };
    d.tasks.onChange((t, prev) => this.onChange(t, prev));
  }

  /** After a restart: queued split tasks wait for a plan again; running ones continue from their records. */
  restore(active: readonly TaskRecord[]): void {
    const resume: string[] = [];
    for (const t of active) {
      if (!isSplitTask(t)) continue;
      if (t.state === "queued") this.waiting.set(t.id, "");
      else if (t.split) resume.push(t.id);
    }
    // A crash can fall between a step's last shard finishing and the step's follow-up (next round, merge):
    // redo the follow-up from the recorded shard tasks once the coordinator is wired.
    if (resume.length > 0) setImmediate(() => resume.forEach((id) => this.resume(id)));
  }

  private resume(parentId: string): void {
    const parent = this.d.tasks.reader.get(parentId);
    if (!parent || isTerminal(parent.state) || !parent.split) return;
    const split = parent.split;
    if (split.phase === "merge") {
      const m = split.mergeTaskId ? this.d.tasks.reader.get(split.mergeTaskId) : undefined;
      if (m && isTerminal(m.state)) this.onShard(m);
      return;
    }
    const children = split.shards.map((sh) => (sh.taskId ? this.d.tasks.reader.get(sh.taskId) : undefined));
    const failed = children.find((c) => c && (c.state === "failed" || c.state === "expired" || c.state === "cancelled"));
    if (failed) {
      this.onShard(failed);
      return;
    }
    if (children.length > 0 && children.every((c) => c?.state === "succeeded")) {
      this.d.log.info({ task: parentId, phase: split.phase, round: split.round }, "resuming a split task whose step finished before the restart");
      const next = this.d.tasks.applySplit(parentId, undefined, (x) => {
        x.split = { ...x.split!, shards: x.split!.shards.map((sh) => ({ ...sh, state: "succeeded" as const })) };
      });
      this.stepDone(next);
    }
  }

  /** Why a queued split task is not split yet, for status. */
  waitReason(taskId: string): string | undefined {
    return this.waiting.get(taskId) || undefined;
  }

  /** Plans every waiting split task that can be planned now (called at the start of each placement pass). */
  tick(): void {
    if (this.waiting.size === 0) return;
    const { nodes, clusters } = this.d.snapshot();
    for (const id of [...this.waiting.keys()]) {
      const t = this.d.tasks.reader.get(id);
      if (!t || t.state !== "queued") {
        this.waiting.delete(id);
        continue;
      }
      if (t.notBefore > this.d.now()) continue;
      try {
        this.start(t, nodes, clusters);
      } catch (err) {
        this.waiting.delete(id);
        this.fail(t.id, `cannot split the task: ${(err as Error).message}`);
      }
    }
  }

  private onChange(t: TaskRecord, prev: TaskRecord["state"] | undefined): void {
    if (t.shard) {
      this.onShard(t);
      return;
    }
    if (!isSplitTask(t)) return;
    if (t.state === "queued" && prev === undefined) this.waiting.set(t.id, "");
    if (isTerminal(t.state) && prev !== undefined && !isTerminal(prev)) {
      this.waiting.delete(t.id);
      this.cancelShards(t, `task ${t.id} is ${t.state}`);
    }
  }

  private start(t: TaskRecord, nodes: readonly NodeView[], clusters: readonly ClusterView[]): void {
    const length = inputLength(t.spec) ?? 0;
    const cap = Number.parseInt(t.spec.labels[MAX_SHARDS_LABEL] ?? "", 10);
    const plan = planSplit(
      {
        mode: t.spec.mode as "distributed" | "hybrid",
        handler: t.spec.handler,
        length,
        deviceId: t.spec.deviceId,
        clusterId: t.spec.clusterId,
        maxShards: cap > 0 ? cap : undefined,
      },
      nodes,
      clusters,
      this.opts,
    );
    if (plan.type === "wait") {
      this.waiting.set(t.id, plan.reason);
      return;
    }
    this.waiting.delete(t.id);
    const rounds = prepareRounds(t.spec);
    const remoteMerge = builtin(t.spec.handler) === undefined;
    const k = plan.shards.length;
    const split: SplitRecord = {
      clusterId: plan.clusterId,
      reason: plan.reason,
      prepareRounds: rounds,
      remoteMerge,
      phase: rounds > 0 ? "prepare" : "partial",
      round: 0,
      done: 0,
      total: k * (rounds + 1) + (remoteMerge ? 1 : 0),
      shards: plan.shards.map((s) => ({
        index: s.index,
        taskId: "",
        nodeId: s.nodeId,
        start: s.start,
        end: s.end,
        state: "queued",
        processingMs: 0,
        queuedMs: 0,
        attempts: 0,
      })),
      global: undefined,
      mergeMs: 0,
    };
    const now = this.d.now();
    this.d.tasks.applySplit(t.id, "dispatched", (x) => {
      x.split = split;
      x.assignedCluster = plan.clusterId;
      x.queuedMs += Math.max(0, now - x.queuedAt);
    });
    this.d.log.info(
      { task: t.id, mode: t.spec.mode, cluster: plan.clusterId, shards: plan.shards.map((s) => `${s.nodeId}[${s.start},${s.end})`), reason: plan.reason },
      "split task into shards",
    );
    this.launch(t.id, split.phase as ShardPhase, 0, undefined);
  }

  /** Submits one round of shard tasks over the recorded split and records their ids on the parent. */
  private launch(parentId: string, phase: ShardPhase, round: number, global: JsonValue | undefined): void {
    const parent = this.d.tasks.get(parentId);
    const split = parent.split!;
    const base = parent.spec;
    const label = phase === "prepare" ? `prepare${round}` : phase;
    const items: { spec: TaskSpec; idempotencyKey: string; shard: ShardAssignment }[] = split.shards.map((s) => {
      const data = sliceInput(base, s.start, s.end);
      return {
        spec: shardSpec(base, split.clusterId, `${base.name}#${label}.${s.index}`, data.input, data.series),
        idempotencyKey: "",
        shard: {
          parentId,
          index: s.index,
          count: split.shards.length,
          start: s.start,
          end: s.end,
          offset: offsetOf(data.input),
          phase,
          round,
          global,
          preferNode: s.nodeId,
        },
      };
    });
    this.submitRound(parentId, phase, round, items);
  }

  /** The merge step of a custom handler: one task on an agent that has the handler, fed every partial. */
  private launchMerge(parent: TaskRecord, partials: JsonValue[]): void {
    const split = parent.split!;
    const input: JsonValue = split.global === undefined ? { partials } : { partials, global: split.global };
    const item = {
      spec: shardSpec(parent.spec, split.clusterId, `${parent.spec.name}#merge`, input, undefined),
      idempotencyKey: "",
      shard: { parentId: parent.id, index: 0, count: 1, start: 0, end: 0, offset: 0, phase: "merge" as const, round: 0, global: split.global, preferNode: "" },
    };
    this.submitRound(parent.id, "merge", 0, [item]);
  }

  private submitRound(parentId: string, phase: ShardPhase, round: number, items: { spec: TaskSpec; idempotencyKey: string; shard: ShardAssignment }[]): void {
    // Record the phase first: the shard events that follow submission are matched against it.
    this.d.tasks.applySplit(parentId, undefined, (x) => {
      x.split = { ...x.split!, phase, round, mergeTaskId: undefined };
    });
    const created = this.d.tasks.submit(items).map((r) => r.task);
    this.d.tasks.applySplit(parentId, undefined, (x) => {
      const s = x.split!;
      if (phase === "merge") {
        x.split = { ...s, mergeTaskId: created[0].id };
      } else {
        x.split = { ...s, shards: s.shards.map((sh, i) => ({ ...sh, taskId: created[i].id, state: created[i].state })) };
      }
    });
  }

  private onShard(c: TaskRecord): void {
    const a = c.shard!;
    const parent = this.d.tasks.reader.get(a.parentId);
    if (!parent || isTerminal(parent.state) || !parent.split) return;
    const split = parent.split;
    if (a.phase !== split.phase || a.round !== split.round) return; // a shard of an earlier step (cancelled late)
    const mergeStep = a.phase === "merge";
    if (!mergeStep && split.shards[a.index]?.taskId !== c.id) return;

    if (c.state === "failed" || c.state === "expired" || c.state === "cancelled") {
      const where = mergeStep ? "the merge step" : `shard ${a.index} (points ${a.start}..${a.end})`;
      const reason = `${where} ${c.state}: ${c.error || "no reason given"}`;
      if (c.state === "expired") this.d.tasks.expire(parent.id);
      else this.fail(parent.id, reason, c);
      return;
    }

    const toRunning = parent.state === "dispatched" && (c.state === "running" || c.state === "succeeded");
    if (mergeStep) {
      if (c.state === "succeeded") {
        this.d.tasks.applySplit(parent.id, "succeeded", (x) => {
          x.split = { ...x.split!, phase: "done", done: x.split!.done + 1 };
          x.output = c.output;
          x.error = "";
          x.finishedAt = this.d.now();
        });
      }
      return;
    }

    // Record the shard's node and state; figures are added once the step is over.
    const next = this.d.tasks.applySplit(parent.id, toRunning ? "running" : undefined, (x) => {
      const s = x.split!;
      const shards = s.shards.slice();
      shards[a.index] = { ...shards[a.index], state: c.state, nodeId: c.assignedNode || shards[a.index].nodeId };
      x.split = { ...s, shards, done: s.done + (c.state === "succeeded" ? 1 : 0) };
      if (x.state !== "queued") x.assignedNode = [...new Set(shards.map((sh) => sh.nodeId))].join(",");
    });
    if (c.state === "succeeded" && next.split!.shards.every((s) => s.state === "succeeded")) this.stepDone(next);
  }

  /** Every shard of the current step succeeded: fold in their figures, then combine and go on, or merge and finish. */
  private stepDone(parent: TaskRecord): void {
    const split = parent.split!;
    const shardTasks = split.shards.map((s) => this.d.tasks.get(s.taskId));
    const outputs = shardTasks.map((t) => t.output ?? null);
    const t0 = performance.now();
    try {
      if (split.phase === "prepare") {
        const global = combineRound(parent.spec.handler, outputs, split.round, split.global);
        const ms = performance.now() - t0;
        this.foldFigures(parent.id, shardTasks, ms, global);
        const nextRound = split.round + 1;
        if (nextRound < split.prepareRounds) this.launch(parent.id, "prepare", nextRound, global);
        else this.launch(parent.id, "partial", 0, global);
        return;
      }
      if (split.remoteMerge) {
        this.foldFigures(parent.id, shardTasks, 0, split.global);
        this.launchMerge(this.d.tasks.get(parent.id), outputs);
        return;
      }
      const output = mergePartials(parent.spec.handler, outputs, split.global);
      const ms = performance.now() - t0;
      this.foldFigures(parent.id, shardTasks, ms, split.global);
      this.d.tasks.applySplit(parent.id, "succeeded", (x) => {
        x.split = { ...x.split!, phase: "done" };
        x.output = output;
        x.error = "";
        x.finishedAt = this.d.now();
      });
      this.d.log.info({ task: parent.id, shards: split.shards.length, mergeMs: Math.round((performance.now() - t0) * 1000) / 1000 }, "merged shard results");
    } catch (err) {
      this.fail(
        parent.id,
        `${split.phase === "prepare" ? `combining prepare round ${split.round}` : "merging shard results"} failed: ${(err as Error).message}`,
      );
    }
  }

  /** Adds a finished step's per-shard figures (processing, queued time, attempts) and the coordinator's own time. */
  private foldFigures(parentId: string, shardTasks: TaskRecord[], mergeMs: number, global: JsonValue | undefined): void {
    this.d.tasks.applySplit(parentId, undefined, (x) => {
      const s = x.split!;
      x.split = {
        ...s,
        global,
        mergeMs: s.mergeMs + mergeMs,
        shards: s.shards.map((sh, i) => {
          const t = shardTasks[i];
          const ok = t.attempts.find((at) => at.outcome === "succeeded");
          return {
            ...sh,
            nodeId: t.assignedNode || sh.nodeId,
            processingMs: sh.processingMs + (ok?.processingMs ?? 0),
            queuedMs: sh.queuedMs + t.queuedMs,
            attempts: sh.attempts + t.attempts.length,
          };
        }),
      };
    });
  }

  private fail(parentId: string, error: string, shard?: TaskRecord): void {
    const p = this.d.tasks.reader.get(parentId);
    if (!p || isTerminal(p.state)) return;
    this.d.log.warn({ task: parentId, shard: shard?.id, error }, "split task failed");
    this.d.tasks.applySplit(parentId, "failed", (x) => {
      x.error = error;
      x.finishedAt = this.d.now();
      if (shard && x.split && shard.shard && shard.shard.phase !== "merge") {
        const shards = x.split.shards.slice();
        const i = shard.shard.index;
        shards[i] = { ...shards[i], state: shard.state, attempts: shards[i].attempts + shard.attempts.length };
        x.split = { ...x.split, shards };
      }
    });
  }

  private cancelShards(parent: TaskRecord, reason: string): void {
    const split = parent.split;
    if (!split) return;
    const ids = [...split.shards.map((s) => s.taskId), split.mergeTaskId ?? ""].filter((id) => id !== "");
    for (const id of ids) {
      const t = this.d.tasks.reader.get(id);
      if (t && !isTerminal(t.state)) this.d.cancel(id, reason);
    }
  }
}

/** A shard task's spec: the parent's, with the shard's data, restricted to the split's cluster. */
function shardSpec(base: TaskSpec, clusterId: string, name: string, input: JsonValue, series: TaskSpec["series"]): TaskSpec {
  return { ...base, name, input, series, clusterId, labels: { ...base.labels } };
}

const offsetOf = (input: JsonValue): number => {
  const o = input as Record<string, JsonValue>;
  return typeof o.indexOffset === "number" ? o.indexOffset : 0;
};
