// One placement pass: queued tasks + schedulable nodes → placements (feasibility → rank → plan).
// Pure: never mutates the caller's node views, never reads a clock, never does I/O.
import type { Tier } from "../tasks/types.js";
import type { QueuedTask, TaskQueue } from "./queue.js";

/** A schedulable node as the caller sees it now (disconnected/draining nodes are filtered out). */
export interface NodeView {
  id: string;
  clusterId: string;
  tier: Tier;
  handlers: ReadonlySet<string>;
  deviceIds: ReadonlySet<string>;
  /** Current free capacity, already net of in-flight dispatches. */
  freeCpuMillis: number;
  freeMemoryBytes: number;
  totalCpuMillis: number;
  totalMemoryBytes: number;
  /** Tasks dispatched or running on it. */
  inFlight: number;
  /** Slots (worker pool size). */
  maxConcurrent: number;
  /**
   * When tasks in flight on it are expected to end (their start + estimatedComputeTime) and what each then frees;
   * only those with an estimate that has not run out. Lets a CLOUD_FALLBACK task with a deadline wait for an edge
   * node that frees up in time instead of going to the cloud. Default: none known.
   */
  expectedReleases?: readonly ExpectedRelease[];
}

export interface ExpectedRelease {
  /** When it is expected to end, epoch ms (now, for one running a little past its estimate). */
  at: number;
  /** When to stop expecting it if it has not ended, epoch ms (>= at). Default: at. */
  until?: number;
  cpuMillis: number;
  memoryBytes: number;
}

export interface ClusterView {
  id: string;
  tier: Tier;
  /** Share of healthy nodes, 0..1. */
  health: number;
}

export interface Placement {
  taskId: string;
  nodeId: string;
  clusterId: string;
  /** Short human explanation, e.g. "spread: cluster c1 most free". */
  reason: string;
}

export interface PlanOptions {
  /** A cluster with health below this takes no new work. Default 0.7. */
  healthThreshold: number;
  /** Tasks a pass looks at in a row without placing one before it stops (bounded backfill). Default 1000. */
  maxScan: number;
  /** The cluster of the node serving a device, whatever that node's state (registry lookup). */
  deviceCluster?: (deviceId: string) => string | undefined;
  /**
   * Told of each CLOUD_FALLBACK task left queued because an edge node is expected to have room for it early
   * enough for its deadline: plan again at `recheckAt` (if the node frees up before, the pass its result triggers
   * places the task; if not, that later pass no longer expects it and sends the task to the cloud).
   */
  onWait?: (taskId: string, recheckAt: number, nodeId: string) => void;
}

export const DEFAULT_PLAN_OPTIONS: Readonly<PlanOptions> = { healthThreshold: 0.7, maxScan: 1000 };

/** Largest total memory of any node: a task asking for more can never run. */
export function maxNodeMemory(nodes: readonly NodeView[]): number {
  let max = 0;
  for (const n of nodes) max = Math.max(max, n.totalMemoryBytes);
  return max;
}

/**
 * Whether some node could hold the task when completely idle (total cpu and memory, and the
 * task's cluster restriction). Handlers and health are not checked: they change at run time.
 */
export function fitsAnywhereEver(
  task: Pick<QueuedTask, "cpuMillis" | "memoryBytes" | "clusterId">,
  nodes: readonly NodeView[],
): boolean {
  return nodes.some(
    (n) =>
      (task.clusterId === "" || n.clusterId === task.clusterId) &&
      task.cpuMillis <= n.totalCpuMillis &&
      task.memoryBytes <= n.totalMemoryBytes,
  );
}

// Mutable per-pass copy of a node; `cluster` is the shared aggregate for its cluster.
interface NodeState {
  view: NodeView;
  freeCpu: number;
  freeMem: number;
  inFlight: number;
  cluster: ClusterState;
}

interface ClusterState {
  id: string;
  freeCpu: number;
  totalCpu: number;
  freeMem: number;
  totalMem: number;
}

type Strategy = "spread" | "binpack";

// One step of a task's fallback chain: the nodes it may use, and how to explain a hit there.
interface Stage {
  allow: (n: NodeState) => boolean;
  reason: (strategy: string) => string;
  /** The cloud step of CLOUD_FALLBACK: taken only if no edge node is expected to free up in time. */
  cloud?: true;
}

const share = (free: number, total: number): number => (total > 0 ? Math.min(1, Math.max(0, free / total)) : 0);

/** Normalized free capacity: mean of free cpu share and free memory share. */
const freeScore = (freeCpu: number, totalCpu: number, freeMem: number, totalMem: number): number =>
  (share(freeCpu, totalCpu) + share(freeMem, totalMem)) / 2;

const nodeScore = (n: NodeState): number =>
  freeScore(n.freeCpu, n.view.totalCpuMillis, n.freeMem, n.view.totalMemoryBytes);

// Summed over the cluster's schedulable nodes, so big nodes weigh more than small ones.
const clusterScore = (c: ClusterState): number => freeScore(c.freeCpu, c.totalCpu, c.freeMem, c.totalMem);

function fits(n: NodeState, t: QueuedTask): boolean {
  if (n.inFlight >= n.view.maxConcurrent) return false;
  if (!n.view.handlers.has(t.handler)) return false;
  if (t.memoryBytes > n.freeMem) return false;
  // Starvation guard: measured idle cpu can sit below a task's request for ever because of
  // load that is not ours. An idle node (nothing of ours in flight) therefore accepts one task
  // whose cpu fits its *total* cpu; memory must still fit what is free.
  return t.cpuMillis <= n.freeCpu || (n.inFlight === 0 && t.cpuMillis <= n.view.totalCpuMillis);
}

/** Picks the cluster, then the node in it: most free for spread, most utilized for binpack. */
function choose(candidates: NodeState[], strategy: Strategy): NodeState {
  const sign = strategy === "spread" ? 1 : -1;
  // Higher is better after applying `sign`; ties go to the lower id for determinism.
  const better = (a: number, b: number, aId: string, bId: string): boolean =>
    sign * a > sign * b || (a === b && aId < bId);
  let best = candidates[0];
  for (const n of candidates) {
    const a = clusterScore(n.cluster);
    const b = clusterScore(best.cluster);
    if (n.cluster !== best.cluster) {
      if (better(a, b, n.cluster.id, best.cluster.id)) best = n;
    } else if (better(nodeScore(n), nodeScore(best), n.view.id, best.view.id)) {
      best = n;
    }
  }
  return best;
}

function describe(strategy: Strategy, n: NodeState): string {
  return strategy === "spread" ? `spread: cluster ${n.cluster.id} most free` : `binpack: cluster ${n.cluster.id} most utilized`;
}

/**
 * The earliest time an edge node (of `nodes`, already limited to healthy clusters and the task's cluster) is
 * expected to have room for `t`, from the expected ends of the tasks it runs; only if `t` would still finish by its
 * deadline starting then (its own estimate counted). Undefined without a deadline or without such a node.
 */
function edgeStartInTime(t: QueuedTask, nodes: readonly NodeState[], now: number): { at: number; recheckAt: number; nodeId: string } | undefined {
  if (t.deadline === undefined) return undefined;
  let best: { at: number; recheckAt: number; nodeId: string } | undefined;
  for (const n of nodes) {
    const v = n.view;
    if (v.tier !== "edge" || !v.handlers.has(t.handler) || t.cpuMillis > v.totalCpuMillis || t.memoryBytes > v.totalMemoryBytes) continue;
    const releases = (v.expectedReleases ?? []).filter((r) => (r.until ?? r.at) >= now).sort((a, b) => a.at - b.at);
    let cpu = n.freeCpu, mem = n.freeMem, inFlight = n.inFlight;
    for (const r of releases) {
      if (best && r.at >= best.at) break;
      cpu += r.cpuMillis;
      mem += r.memoryBytes;
      inFlight -= 1;
      // As fits(): a free slot, the memory, and the cpu (or an otherwise idle node).
      if (inFlight < v.maxConcurrent && t.memoryBytes <= mem && (t.cpuMillis <= cpu || (inFlight === 0 && t.cpuMillis <= v.totalCpuMillis))) {
        best = { at: Math.max(now, r.at), recheckAt: Math.max(now, r.until ?? r.at), nodeId: v.id };
        break;
      }
    }
  }
  return best && best.at + t.estimatedMs <= t.deadline ? best : undefined;
}

/** The ordered fallback chain for a task: the first stage with a fitting node wins. */
function stagesFor(t: QueuedTask, deviceNodes: readonly NodeState[] | undefined, opts: PlanOptions): Stage[] {
  const deviceClusters = new Set((deviceNodes ?? []).map((n) => n.view.clusterId));
  // The device's node may be away (not among the schedulable nodes): its cluster still binds LOCAL work.
  const known = t.deviceId ? opts.deviceCluster?.(t.deviceId) : undefined;
  if (known) deviceClusters.add(known);
  const inDeviceCluster = (n: NodeState): boolean => deviceClusters.has(n.view.clusterId);
  // Cloud-tier capacity is a fallback: only CLOUD_FALLBACK tasks, or tasks that name a cloud cluster, use it.
  const any = (n: NodeState): boolean => n.view.tier === "edge" || t.clusterId !== "";
  const plain = (s: string): string => s;
  if (t.preferNode) {
    // A shard: its size was planned for this node. Its cluster restriction (clusterId) still applies.
    const planned = t.preferNode;
    return [
      { allow: (n) => n.view.id === planned, reason: () => `shard: planned node ${planned}` },
      { allow: (n) => n.view.id !== planned && any(n), reason: (s) => `shard: planned node ${planned} busy or gone; ${s}` },
    ];
  }
  switch (t.mode) {
    case "local":
      if (deviceClusters.size === 0) return [{ allow: any, reason: plain }];
      return [
        { allow: (n) => n.view.deviceIds.has(t.deviceId), reason: () => `local: node serving device ${t.deviceId}` },
        { allow: inDeviceCluster, reason: (s) => `local: device ${t.deviceId}'s node busy; ${s}` },
      ];
    case "distributed":
    case "hybrid":
      // Split tasks never reach the queue (distributed/ places their shards); this is for a task placed whole.
      if (deviceClusters.size === 0) return [{ allow: any, reason: (s) => `${t.mode}: ${s}` }];
      return [{ allow: inDeviceCluster, reason: (s) => `${t.mode}: device ${t.deviceId}'s cluster; ${s}` }];
    case "cloud_fallback": {
      const edge = (n: NodeState): boolean => n.view.tier === "edge";
      const stages: Stage[] = [];
      if (deviceClusters.size > 0) {
        stages.push({ allow: (n) => edge(n) && inDeviceCluster(n), reason: (s) => `edge first: device cluster; ${s}` });
      }
      stages.push({ allow: edge, reason: (s) => `edge first: ${s}` });
      const why = t.deadline === undefined ? "no edge node fits" : "no edge node fits, nor is one expected to free up in time for the deadline";
      stages.push({ allow: (n) => !edge(n), reason: (s) => `cloud fallback: ${why}; ${s}`, cloud: true });
      return stages;
    }
    default: {
      const never: never = t.mode;
      throw new Error(`unknown processing mode ${String(never)}`);
    }
  }
}

/**
 * Walks the queue in priority order and places what fits, removing placed tasks from the queue
 * (unplaced tasks keep their order). Skips tasks in retry backoff (notBefore > now).
 * Rank ≤ 1 spreads (most free cluster, then node); the rest binpack (most utilized first).
 * Nodes whose cluster is missing from `clusters` or below `opts.healthThreshold` take no work.
 */
export function planPlacements(
  queue: TaskQueue,
  nodes: NodeView[],
  clusters: ClusterView[],
  now: number,
  opts: PlanOptions = DEFAULT_PLAN_OPTIONS,
): Placement[] {
  const healthy = new Set(clusters.filter((c) => c.health >= opts.healthThreshold).map((c) => c.id));
  const clusterStates = new Map<string, ClusterState>();
  const states: NodeState[] = nodes.map((view) => {
    let cluster = clusterStates.get(view.clusterId);
    if (cluster === undefined) {
      cluster = { id: view.clusterId, freeCpu: 0, totalCpu: 0, freeMem: 0, totalMem: 0 };
      clusterStates.set(view.clusterId, cluster);
    }
    const freeCpu = Math.max(0, view.freeCpuMillis);
    const freeMem = Math.max(0, view.freeMemoryBytes);
    cluster.freeCpu += freeCpu;
    cluster.totalCpu += view.totalCpuMillis;
    cluster.freeMem += freeMem;
    cluster.totalMem += view.totalMemoryBytes;
    return { view, freeCpu, freeMem, inFlight: view.inFlight, cluster };
  });
  // Device affinity looks at every node passed in, even one whose cluster is unhealthy.
  const byDevice = new Map<string, NodeState[]>();
  for (const n of states) {
    for (const d of n.view.deviceIds) {
      const list = byDevice.get(d);
      if (list === undefined) byDevice.set(d, [n]);
      else list.push(n);
    }
  }
  const usable = states.filter((n) => healthy.has(n.view.clusterId));
  let openSlots = usable.reduce((sum, n) => sum + Math.max(0, n.view.maxConcurrent - n.inFlight), 0);

  // Capacity only shrinks during a pass, so a shape that found no node stays unplaceable
  // until the next pass: identical tasks behind it are skipped with one map lookup.
  const failedShapes = new Set<string>();
  const placements: Placement[] = [];
  // Bounded backfill: after this many tasks in a row that could not be placed, the pass ends. A deep queue of
  // unplaceable work would otherwise be walked on every event; what lies deeper is reached as the head moves.
  let unplacedInARow = 0;

  for (const t of queue.ordered()) {
    if (openSlots === 0 || unplacedInARow >= opts.maxScan) break;
    unplacedInARow++;
    if (t.notBefore > now) continue;
    const shape = `${t.handler}\0${t.cpuMillis}\0${t.memoryBytes}\0${t.mode}\0${t.clusterId}\0${t.deviceId}\0${t.preferNode ?? ""}`;
    if (failedShapes.has(shape)) continue;

    const strategy: Strategy = t.rank <= 1 ? "spread" : "binpack";
    const deviceNodes = t.deviceId === "" ? undefined : byDevice.get(t.deviceId);
    let chosen: NodeState | undefined;
    let reason = "";
    let waiting = false;
    const allowed = (n: NodeState): boolean => t.clusterId === "" || n.view.clusterId === t.clusterId;
    for (const stage of stagesFor(t, deviceNodes, opts)) {
      if (stage.cloud) {
        const wait = edgeStartInTime(t, usable.filter(allowed), now);
        if (wait) {
          opts.onWait?.(t.id, wait.recheckAt, wait.nodeId);
          waiting = true;
          break;
        }
      }
      const candidates = usable.filter((n) => allowed(n) && stage.allow(n) && fits(n, t));
      if (candidates.length > 0) {
        chosen = choose(candidates, strategy);
        reason = stage.reason(describe(strategy, chosen));
        break;
      }
    }
    if (chosen === undefined) {
      // A waiting task's outcome depends on its deadline, which the shape leaves out.
      if (!waiting) failedShapes.add(shape);
      continue;
    }

    const cpu = Math.min(t.cpuMillis, chosen.freeCpu); // the starvation guard may exceed free cpu
    chosen.freeCpu -= cpu;
    chosen.freeMem -= t.memoryBytes;
    chosen.inFlight++;
    chosen.cluster.freeCpu -= cpu;
    chosen.cluster.freeMem -= t.memoryBytes;
    openSlots--;
    unplacedInARow = 0;
    placements.push({ taskId: t.id, nodeId: chosen.view.id, clusterId: chosen.view.clusterId, reason });
  }

  for (const p of placements) queue.remove(p.taskId);
  return placements;
}
