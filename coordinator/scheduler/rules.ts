// The one table of placement rules: whether a node may take a task at all (eligibility) and whether it has room
// for it now (fit). Placement, preemption and the CLOUD_FALLBACK wait all ask these; nothing else decides fit.
// Pure: no I/O, no clock; capacity is passed in, so callers can ask "would it fit after these releases?".
import type { ProcessingMode, Tier } from "../tasks/types.js";

/** What the rules look at in a task (a QueuedTask fits). */
export interface TaskDemand {
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
}

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
export const FIT_RULES: readonly Rule<[TaskDemand, NodeTraits, Capacity]>[] = [
  { name: "slot", ok: (_t, n, c) => c.inFlight < n.maxConcurrent },
  { name: "memory", ok: (t, _n, c) => t.memoryBytes <= c.freeMem },
  { name: "cpu", ok: (t, n, c) => t.cpuMillis <= c.freeCpu || (c.inFlight === 0 && t.cpuMillis <= n.totalCpuMillis) },
];

export function eligible(t: TaskDemand, n: NodeTraits, ctx: RuleContext): boolean {
  for (const r of ELIGIBILITY_RULES) if (!r.ok(t, n, ctx)) return false;
  return true;
}

export function fits(t: TaskDemand, n: NodeTraits, c: Capacity): boolean {
  for (const r of FIT_RULES) if (!r.ok(t, n, c)) return false;
  return true;
}

/** The first rule a node breaks for the task, for explanations; undefined when it fits. */
export function misfit(t: TaskDemand, n: NodeTraits, c: Capacity, ctx: RuleContext): string | undefined {
  for (const r of ELIGIBILITY_RULES) if (!r.ok(t, n, ctx)) return r.name;
  for (const r of FIT_RULES) if (!r.ok(t, n, c)) return r.name;
  return undefined;
}

/** Tasks of one shape fare the same in a pass: a shape that found no node is skipped for the rest of it. */
export function shapeKey(t: TaskDemand & { preferNode?: string }): string {
  return `${t.handler}\0${t.cpuMillis}\0${t.memoryBytes}\0${t.mode}\0${t.clusterId}\0${t.deviceId}\0${t.preferNode ?? ""}`;
}
