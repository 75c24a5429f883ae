// Split planning for DISTRIBUTED and HYBRID tasks: input length + the target cluster's schedulable nodes → shard
// boundaries, one shard per node, sized to each node's free capacity. Pure: no I/O, no clock, never mutates its input.
import type { ClusterView, NodeView } from "../scheduler/place.js";

export interface SplitPlanOptions {
  /** A cluster below this health takes no new work (as in scheduler/place.ts). Default 0.7. */
  healthThreshold: number;
  /**
   * Points one fully free core processes per ms, to turn free capacity into time. Only the ratio to
   * `shardOverheadMs` matters (it decides how much a HYBRID device node keeps). Default 10,000 (stats, measured).
   */
  pointsPerCoreMs: number;
  /** Fixed cost of sending a shard to another node and hearing back, in ms (HYBRID sizing). Default 15. */
  shardOverheadMs: number;
  /** Most shards per round. Default 64. */
  maxShards: number;
}

export const DEFAULT_SPLIT_OPTIONS: Readonly<SplitPlanOptions> = {
  healthThreshold: 0.7,
  pointsPerCoreMs: 10_000,
  shardOverheadMs: 15,
  maxShards: 64,
};

export interface SplitRequest {
  mode: "distributed" | "hybrid";
  handler: string;
  /** Points in the input (values or samples). */
  length: number;
  /** "" = none. */
  deviceId: string;
  /** The task's cluster restriction ("" = the device's cluster, else the freest edge cluster). */
  clusterId: string;
  /** At most this many shards (the task's `edgeplane.io/max-shards` label); undefined = no limit of its own. */
  maxShards?: number;
}

/** Task label that caps the shards of a DISTRIBUTED / HYBRID task, e.g. "2" (benchmarks, or sharing a site fairly). */
export const MAX_SHARDS_LABEL = "edgeplane.io/max-shards";

export interface PlannedShard {
  index: number;
  nodeId: string;
  /** Points [start, end). */
  start: number;
  end: number;
}

export type SplitPlan = { type: "planned"; clusterId: string; reason: string; shards: PlannedShard[] } | { type: "wait"; reason: string };

/** Speed of a node in points per ms: its free cores, at most one (a shard runs on one worker thread). */
function rate(n: NodeView, o: SplitPlanOptions): number {
  const cores = Math.min(1, Math.max(0.1, n.freeCpuMillis / 1000));
  return cores * o.pointsPerCoreMs;
}

const freeShare = (n: { free: number; total: number }) => (n.total > 0 ? Math.max(0, n.free) / n.total : 0);

/** The cluster the shards run in: the task's, the device's, or the edge cluster with the most free cpu. */
function targetCluster(r: SplitRequest, nodes: readonly NodeView[], healthy: ReadonlySet<string>): { id: string; why: string } | undefined {
  if (r.clusterId) return { id: r.clusterId, why: `cluster ${r.clusterId} named by the task` };
  if (r.deviceId) {
    const served = nodes.filter((n) => n.deviceIds.has(r.deviceId)).sort((a, b) => (a.id < b.id ? -1 : 1))[0];
    if (served) return { id: served.clusterId, why: `device ${r.deviceId}'s cluster ${served.clusterId}` };
  }
  const byCluster = new Map<string, { free: number; total: number }>();
  for (const n of nodes) {
    if (n.tier !== "edge" || !healthy.has(n.clusterId) || !n.handlers.has(r.handler)) continue;
    const c = byCluster.get(n.clusterId) ?? { free: 0, total: 0 };
    c.free += n.freeCpuMillis;
    c.total += n.totalCpuMillis;
    byCluster.set(n.clusterId, c);
  }
  let best: string | undefined;
  for (const [id, c] of byCluster) {
    const b = best === undefined ? undefined : byCluster.get(best)!;
    if (!b || freeShare(c) > freeShare(b) || (freeShare(c) === freeShare(b) && id < best!)) best = id;
  }
  return best === undefined ? undefined : { id: best, why: `edge cluster ${best} most free` };
}

/**
 * Integer sizes summing to `n` in proportion to `weights` (largest remainder), every size at least 1.
 * Needs n >= weights.length and positive weights.
 */
export function apportion(n: number, weights: readonly number[]): number[] {
  const total = weights.reduce((a, w) => a + w, 0);
  const k = weights.length;
  const spare = n - k; // one point each first, so no shard is empty
  const exact = weights.map((w) => (spare * w) / total);
  const sizes = exact.map((x) => 1 + Math.floor(x));
  let left = n - sizes.reduce((a, s) => a + s, 0);
  const order = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (let j = 0; left > 0; j = (j + 1) % k, left--) sizes[order[j].i]++;
  return sizes;
}

/**
 * DISTRIBUTED: one shard per schedulable node of the target cluster that serves the handler (nodes with a free
 * slot; all of them when none has one), sized in proportion to each node's free cpu — equal finishing times.
 * HYBRID: the node serving the device pays no shard overhead (its share runs where the data belongs), so with
 * speed rᵢ and overhead c the balanced finish time T solves n = r_d·T + Σ rᵢ·(T − c): the device node takes
 * r_d·T points — everything when n ≤ r_d·c, the point where spreading stops paying — and the rest is spread as in
 * DISTRIBUTED. Without a device node in the cluster, HYBRID spreads like DISTRIBUTED.
 * "wait" when no node can take a shard now; the caller tries again on the next placement pass.
 */
export function planSplit(
  r: SplitRequest,
  nodes: readonly NodeView[],
  clusters: readonly ClusterView[],
  o: SplitPlanOptions = DEFAULT_SPLIT_OPTIONS,
): SplitPlan {
  if (!(r.length >= 1)) return { type: "wait", reason: "the input has no points to split" };
  const healthy = new Set(clusters.filter((c) => c.health >= o.healthThreshold).map((c) => c.id));
  const target = targetCluster(r, nodes, healthy);
  if (!target) return { type: "wait", reason: `no healthy edge cluster has a node serving handler "${r.handler}"` };
  if (!healthy.has(target.id)) return { type: "wait", reason: `${target.why} is not healthy enough for new work` };
  const serving = nodes.filter((n) => n.clusterId === target.id && n.handlers.has(r.handler));
  if (serving.length === 0) return { type: "wait", reason: `${target.why} has no ready node serving handler "${r.handler}"` };
  const withSlot = serving.filter((n) => n.inFlight < n.maxConcurrent);
  const pool = (withSlot.length > 0 ? withSlot : serving).slice().sort((a, b) => rate(b, o) - rate(a, o) || (a.id < b.id ? -1 : 1));

  const device = r.mode === "hybrid" && r.deviceId ? serving.filter((n) => n.deviceIds.has(r.deviceId)).sort((a, b) => (a.id < b.id ? -1 : 1))[0] : undefined;
  const cap = Math.max(1, Math.min(o.maxShards, r.maxShards ?? Infinity));
  const k = Math.max(1, Math.min(pool.length, cap, r.length));

  if (!device) {
    const chosen = pool.slice(0, k);
    const sizes = apportion(
      r.length,
      chosen.map((n) => rate(n, o)),
    );
    const lead = r.mode === "hybrid" ? `hybrid: device ${r.deviceId || "(none)"} has no node in ${target.id}; spread` : "distributed";
    return planned(target.id, `${lead}: ${target.why}; ${chosen.length} node(s) sized by free cpu`, chosen, sizes);
  }

  const rd = rate(device, o);
  const c = o.shardOverheadMs;
  const remotes = pool.filter((n) => n.id !== device.id).slice(0, Math.max(0, Math.min(cap, r.length) - 1));
  const sumR = remotes.reduce((a, n) => a + rate(n, o), 0);
  let deviceShare = r.length;
  if (remotes.length > 0 && r.length > rd * c) {
    const T = (r.length + c * sumR) / (rd + sumR);
    deviceShare = Math.round(rd * T);
  }
  // Each remote shard must have at least one point; drop the slowest remotes while there are too few points.
  let rest = r.length - deviceShare;
  let used = remotes.slice(0, Math.min(remotes.length, rest));
  if (rest > 0 && used.length === 0) {
    deviceShare = r.length;
    rest = 0;
  }
  if (rest === 0) used = [];
  const sizes = [
    deviceShare,
    ...(used.length > 0
      ? apportion(
          rest,
          used.map((n) => rate(n, o)),
        )
      : []),
  ];
  const pct = Math.round((100 * deviceShare) / r.length);
  const why =
    used.length === 0
      ? `hybrid: device ${r.deviceId}'s node ${device.id} takes all ${r.length} points (too few to pay for spreading)`
      : `hybrid: device ${r.deviceId}'s node ${device.id} takes ${pct}% (no shard overhead); ${used.length} more node(s) sized by free cpu`;
  return planned(target.id, why, [device, ...used], sizes);
}

function planned(clusterId: string, reason: string, nodes: readonly NodeView[], sizes: readonly number[]): SplitPlan {
  const shards: PlannedShard[] = [];
  let start = 0;
  nodes.forEach((n, index) => {
    shards.push({ index, nodeId: n.id, start, end: start + sizes[index] });
    start += sizes[index];
  });
  return { type: "planned", clusterId, reason, shards };
}
