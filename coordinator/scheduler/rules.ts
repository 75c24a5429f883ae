// The one table of placement rules: whether a node may take a task at all (eligibility) and whether it has room
// for it now (fit). Placement, preemption and the CLOUD_FALLBACK wait all ask these; nothing else decides fit.
// Pure: no I/O, no clock; capacity is passed in, so callers can ask "would it fit after these releases?".
import type { ProcessingMode, Tier } from "../tasks/types.js";

/** What the rules look at in a task (a QueuedTask fits). */
export interface TaskDemand {
  /** Priority rank, 0 = critical … 4 = background. */
  rank: number;
  handler: string;
  cpuMillis: number;
  memoryBytes: number;
  mode: ProcessingMode;
  /** "" = any cluster. */
  clusterId: string;
  /** "" = none. */
  deviceId: string;
}

/** What the rules look at in a node (a NodeView fits). */
export interface NodeTraits {
  id: string;
  clusterId: string;
  tier: Tier;
  handlers: ReadonlySet<string>;
  totalCpuMillis: number;
  totalMemoryBytes: number;
  /** Slots (worker pool size). */
  maxConcurrent: number;
  /**
   * Attempts it may hold beyond its slots, queued on its agent for the next free slot (dispatch-ahead). Only NORMAL
   * and lower work uses them: CRITICAL and HIGH work must find a slot that is free now, not wait behind a running
   * task. Default 0.
   */
  ahead?: number;
}

/** Rank from which tasks may be sent ahead (NORMAL = 2). */
export const AHEAD_FROM_RANK = 2;

/**
 * How many attempts a node may hold for a task: its slots, plus its ahead queue when `ahead` (placement asks for
 * that only once no node has a free slot for the task) and the task is NORMAL or lower.
 */
export const holdLimit = (t: { rank: number }, n: NodeTraits, ahead: boolean): number =>
  n.maxConcurrent + (ahead && t.rank >= AHEAD_FROM_RANK ? (n.ahead ?? 0) : 0);

/** A node's room at some moment: what is free and how many of its slots are taken. */
export interface Capacity {
  freeCpu: number;
  freeMem: number;
  inFlight: number;
}

/** Facts about the fleet the eligibility rules need, fixed for one pass. */
export interface RuleContext {
  /** Clusters at or above the health threshold. */
  healthy: ReadonlySet<string>;
  /** Clusters a device's work is bound to (its node's cluster, wherever that node is now). */
  deviceClusters(deviceId: string): ReadonlySet<string> | undefined;
}

interface Rule<Args extends unknown[]> {
  /** Short name, used in explanations ("no node: memory"). */
  name: string;
  ok: (...args: Args) => boolean;
}

/**
 * Whether a node may ever take the task in this pass, whatever it runs now. LOCAL work stays in its device's
 * cluster (even while the device's node is away); cloud-tier capacity is a fallback that only CLOUD_FALLBACK tasks
 * and tasks naming a cloud cluster use.
 */
export const ELIGIBILITY_RULES: readonly Rule<[TaskDemand, NodeTraits, RuleContext]>[] = [
  { name: "cluster health", ok: (_t, n, ctx) => ctx.healthy.has(n.clusterId) },
  { name: "task's cluster", ok: (t, n) => t.clusterId === "" || n.clusterId === t.clusterId },
  { name: "tier", ok: (t, n) => n.tier === "edge" || t.mode === "cloud_fallback" || t.clusterId !== "" },
  {
    name: "device's cluster",
    ok: (t, n, ctx) => {
      if (t.mode !== "local" || t.deviceId === "") return true;
      const bound = ctx.deviceClusters(t.deviceId);
      return bound === undefined || bound.size === 0 || bound.has(n.clusterId);
    },
  },
  { name: "handler", ok: (t, n) => n.handlers.has(t.handler) },
  { name: "size", ok: (t, n) => t.cpuMillis <= n.totalCpuMillis && t.memoryBytes <= n.totalMemoryBytes },
];

/**
 * Whether a node has room for the task now. The cpu rule has a starvation guard: measured idle cpu can sit below
 * a task's request for ever because of load that is not ours, so a node with nothing of ours in flight takes one
 * task whose cpu fits its *total* cpu; memory must still fit what is free.
 */
export const FIT_RULES: readonly Rule<[TaskDemand, NodeTraits, Capacity, boolean]>[] = [
  { name: "slot", ok: (t, n, c, ahead) => c.inFlight < holdLimit(t, n, ahead) },
  { name: "memory", ok: (t, _n, c) => t.memoryBytes <= c.freeMem },
  { name: "cpu", ok: (t, n, c) => t.cpuMillis <= c.freeCpu || (c.inFlight === 0 && t.cpuMillis <= n.totalCpuMillis) },
];

export function eligible(t: TaskDemand, n: NodeTraits, ctx: RuleContext): boolean {
  for (const r of ELIGIBILITY_RULES) if (!r.ok(t, n, ctx)) return false;
  return true;
}

/** Whether the node has room for the task now; `ahead`: counting its ahead queue (see holdLimit). */
export function fits(t: TaskDemand, n: NodeTraits, c: Capacity, ahead = false): boolean {
  for (const r of FIT_RULES) if (!r.ok(t, n, c, ahead)) return false;
  return true;
}

/** Tasks of one shape fare the same in a pass: a shape that found no node is skipped for the rest of it. */
export function shapeKey(t: TaskDemand & { preferNode?: string }): string {
  // Whether the task may use a node's ahead queue is part of its shape (holdLimit).
  const ahead = t.rank >= AHEAD_FROM_RANK ? "a" : "s";
  return `${t.handler}\0${t.cpuMillis}\0${t.memoryBytes}\0${t.mode}\0${t.clusterId}\0${t.deviceId}\0${t.preferNode ?? ""}\0${ahead}`;
}
