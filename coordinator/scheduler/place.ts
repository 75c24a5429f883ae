// One placement pass: a snapshot of the fleet and the queue's order in, a plan out (placements, CLOUD_FALLBACK
// waits, preemptions for CRITICAL work), each with its reason. Pure: never mutates the queue or the snapshot, never
// reads a clock or does I/O; every fit question goes to rules.ts. dispatch/ carries the plan out.
import type { Tier } from "../tasks/types.js";
import { planPreemption, type RunningAttempt } from "./preempt.js";
import type { QueuedTask } from "./queue.js";
import { AHEAD_FROM_RANK, eligible, fits, shapeKey, type Capacity, type RuleContext } from "./rules.js";

/** A schedulable node as the caller sees it now (disconnected/draining nodes are left out of the snapshot). */
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
  /** Attempts it may hold beyond its slots for NORMAL and lower work (rules.ts holdLimit). Default 0. */
  ahead?: number;
  /** The attempts in flight on it, for preemption. Default: none known (nothing can be preempted there). */
  running?: readonly RunningAttempt[];
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

/** The fleet as one pass sees it. */
export interface Snapshot {
  /** Epoch ms: retry backoff and deadlines are compared with it. */
  now: number;
  nodes: readonly NodeView[];
  clusters: readonly ClusterView[];
  /**
   * The cluster of the node serving a device, whatever that node's state (a read-only lookup that does not change
   * during the pass; a Map fits). Default: none known.
   */
  deviceClusters?: { get(deviceId: string): string | undefined };
}

export interface Placement {
  taskId: string;
  nodeId: string;
  clusterId: string;
  /** Short human explanation, e.g. "spread: cluster c1 most free". */
  reason: string;
}

/**
 * A CLOUD_FALLBACK task left queued because an edge node is expected to have room for it early enough for its
 * deadline: plan again at `recheckAt` (if the node frees up before, the pass its result triggers places the task;
 * if not, that later pass no longer expects it and sends the task to the cloud).
 */
export interface Wait {
  taskId: string;
  nodeId: string;
  recheckAt: number;
  reason: string;
}

/** A CRITICAL task that fits nowhere, started on `nodeId` once `victims` (running attempts there) are moved off. */
export interface Preemption {
  taskId: string;
  nodeId: string;
  clusterId: string;
  victims: string[];
  reason: string;
}

export interface Plan {
  placements: Placement[];
  waits: Wait[];
  preemptions: Preemption[];
}

export interface PlanOptions {
  /** A cluster with health below this takes no new work. Default 0.7. */
  healthThreshold: number;
  /**
   * Tasks a pass looks at in a row without placing one before it stops (bounded backfill). Default 1000. A pass
   * also stops as soon as every task shape in the queue failed to find a node, or no node has a free slot.
   */
  maxScan: number;
}

export const DEFAULT_PLAN_OPTIONS: Readonly<PlanOptions> = { healthThreshold: 0.7, maxScan: 1000 };

/** The walk a pass takes: the queue's tasks in dequeue order, and how many distinct shapes it holds. */
export interface QueueWalk {
  ordered(): Iterable<QueuedTask>;
  /** Distinct task shapes (rules.ts shapeKey) in the queue; undefined = unknown (no early stop by shape). */
  readonly shapeCount?: number;
}

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
export function fitsAnywhereEver(task: Pick<QueuedTask, "cpuMillis" | "memoryBytes" | "clusterId">, nodes: readonly NodeView[]): boolean {
  return nodes.some(
    (n) => (task.clusterId === "" || n.clusterId === task.clusterId) && task.cpuMillis <= n.totalCpuMillis && task.memoryBytes <= n.totalMemoryBytes,
  );
}

// Mutable per-pass copy of a node's capacity; `cluster` is the shared aggregate for its cluster.
interface NodeState extends Capacity {
  view: NodeView;
  cluster: ClusterState;
  /** Attempts that may be preempted (those in flight before this pass), shrinking as they are. */
  running: RunningAttempt[];
}

interface ClusterState {
  id: string;
  freeCpu: number;
  totalCpu: number;
  freeMem: number;
  totalMem: number;
}

type Strategy = "spread" | "binpack";

// One step of a task's fallback chain: the nodes it prefers at this step, and how to explain a hit there.
interface Stage {
  allow: (n: NodeState) => boolean;
  reason: (strategy: string) => string;
  /** The cloud step of CLOUD_FALLBACK: taken only if no edge node is expected to free up in time. */
  cloud?: true;
}

const share = (free: number, total: number): number => (total > 0 ? Math.min(1, Math.max(0, free / total)) : 0);

/** Normalized free capacity: mean of free cpu share and free memory share. */
const freeScore = (freeCpu: number, totalCpu: number, freeMem: number, totalMem: number): number => (share(freeCpu, totalCpu) + share(freeMem, totalMem)) / 2;

const nodeScore = (n: NodeState): number => freeScore(n.freeCpu, n.view.totalCpuMillis, n.freeMem, n.view.totalMemoryBytes);

// Summed over the cluster's schedulable nodes, so big nodes weigh more than small ones.
const clusterScore = (c: ClusterState): number => freeScore(c.freeCpu, c.totalCpu, c.freeMem, c.totalMem);

/** Picks the cluster, then the node in it: most free for spread, most utilized for binpack. */
function choose(candidates: NodeState[], strategy: Strategy): NodeState {
  const sign = strategy === "spread" ? 1 : -1;
  // Higher is better after applying `sign`; ties go to the lower id for determinism.
  const better = (a: number, b: number, aId: string, bId: string): boolean => sign * a > sign * b || (a === b && aId < bId);
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
 * The earliest time an edge node (of `nodes`, already eligible for `t`) is expected to have room for `t`, from the
 * expected ends of the tasks it runs; only if `t` would still finish by its deadline starting then (its own
 * estimate counted). Undefined without a deadline or without such a node.
 */
function edgeStartInTime(t: QueuedTask, nodes: readonly NodeState[], now: number): { at: number; recheckAt: number; nodeId: string } | undefined {
  if (t.deadline === undefined) return undefined;
  let best: { at: number; recheckAt: number; nodeId: string } | undefined;
  for (const n of nodes) {
    const v = n.view;
    if (v.tier !== "edge") continue;
    const releases = (v.expectedReleases ?? []).filter((r) => (r.until ?? r.at) >= now).sort((a, b) => a.at - b.at);
    const room: Capacity = { freeCpu: n.freeCpu, freeMem: n.freeMem, inFlight: n.inFlight };
    for (const r of releases) {
      if (best && r.at >= best.at) break;
      room.freeCpu += r.cpuMillis;
      room.freeMem += r.memoryBytes;
      room.inFlight -= 1;
      if (fits(t, v, room)) {
        best = { at: Math.max(now, r.at), recheckAt: Math.max(now, r.until ?? r.at), nodeId: v.id };
        break;
      }
    }
  }
  return best && best.at + t.estimatedMs <= t.deadline ? best : undefined;
}

/** The ordered fallback chain for a task (its preferences among eligible nodes): the first stage with room wins. */
function stagesFor(t: QueuedTask, deviceNodes: readonly NodeState[] | undefined, deviceClusters: ReadonlySet<string>): Stage[] {
  const inDeviceCluster = (n: NodeState): boolean => deviceClusters.has(n.view.clusterId);
  const plain = (s: string): string => s;
  const every = (): boolean => true;
  if (t.preferNode) {
    // A shard: its size was planned for this node. Its cluster restriction (clusterId) still applies.
    const planned = t.preferNode;
    return [
      { allow: (n) => n.view.id === planned, reason: () => `shard: planned node ${planned}` },
      { allow: (n) => n.view.id !== planned, reason: (s) => `shard: planned node ${planned} busy or gone; ${s}` },
    ];
  }
  switch (t.mode) {
    case "local":
      if (deviceClusters.size === 0) return [{ allow: every, reason: plain }];
      return [
        { allow: (n) => (deviceNodes ?? []).includes(n), reason: () => `local: node serving device ${t.deviceId}` },
        { allow: inDeviceCluster, reason: (s) => `local: device ${t.deviceId}'s node busy; ${s}` },
      ];
    case "distributed":
    case "hybrid":
      // Split tasks never reach the queue (distributed/ places their shards); this is for a task placed whole.
      if (deviceClusters.size === 0) return [{ allow: every, reason: (s) => `${t.mode}: ${s}` }];
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
 * Walks the queue in priority order and plans what fits, without changing the queue (the caller removes what it
 * places). Skips tasks in retry backoff (notBefore > now). Rank ≤ 1 spreads (most free cluster, then node); the
 * rest binpack (most utilized first). Nodes whose cluster is missing from the snapshot or below
 * `opts.healthThreshold` take no work. A CRITICAL task that fits nowhere gets a preemption if one node can make room
 * by moving LOW and BACKGROUND attempts.
 */
export function planPass(queue: QueueWalk, snap: Snapshot, opts: PlanOptions = DEFAULT_PLAN_OPTIONS): Plan {
  const plan: Plan = { placements: [], waits: [], preemptions: [] };
  if (snap.nodes.length === 0) return plan;
  const now = snap.now;
  const healthy = new Set(snap.clusters.filter((c) => c.health >= opts.healthThreshold).map((c) => c.id));
  const clusterStates = new Map<string, ClusterState>();
  const states: NodeState[] = snap.nodes.map((view) => {
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
    return { view, freeCpu, freeMem, inFlight: view.inFlight, cluster, running: [...(view.running ?? [])] };
  });
  // Device affinity looks at every node in the snapshot, even one whose cluster is unhealthy.
  const byDevice = new Map<string, NodeState[]>();
  for (const n of states) {
    for (const d of n.view.deviceIds) {
      const list = byDevice.get(d);
      if (list === undefined) byDevice.set(d, [n]);
      else list.push(n);
    }
  }
  const deviceClusterCache = new Map<string, ReadonlySet<string>>();
  const deviceClustersOf = (deviceId: string): ReadonlySet<string> => {
    let set = deviceClusterCache.get(deviceId);
    if (set === undefined) {
      const s = new Set((byDevice.get(deviceId) ?? []).map((n) => n.view.clusterId));
      // The device's node may be away (not in the snapshot): its cluster still binds LOCAL work.
      const known = snap.deviceClusters?.get(deviceId);
      if (known) s.add(known);
      deviceClusterCache.set(deviceId, (set = s));
    }
    return set;
  };
  const ctx: RuleContext = { healthy, deviceClusters: deviceClustersOf };
  const usable = states.filter((n) => healthy.has(n.view.clusterId));
  const hasAhead = usable.some((n) => (n.view.ahead ?? 0) > 0);
  let openSlots = usable.reduce((sum, n) => sum + Math.max(0, n.view.maxConcurrent + (n.view.ahead ?? 0) - n.inFlight), 0);

  const take = (n: NodeState, t: QueuedTask): void => {
    const cpu = Math.min(t.cpuMillis, n.freeCpu); // the starvation guard may exceed free cpu
    n.freeCpu -= cpu;
    n.freeMem -= t.memoryBytes;
    n.inFlight++;
    n.cluster.freeCpu -= cpu;
    n.cluster.freeMem -= t.memoryBytes;
  };

  // Capacity only shrinks during a pass, so a shape that found no node stays unplaceable until the next pass:
  // identical tasks behind it are skipped with one lookup, and once every shape in the queue has failed the pass ends.
  const failedShapes = new Set<string>();
  const shapes = queue.shapeCount ?? Infinity;
  // Bounded backfill: after this many tasks in a row that could not be placed, the pass ends. A deep queue of
  // unplaceable work would otherwise be walked on every event; what lies deeper is reached as the head moves.
  let unplacedInARow = 0;
  // Nodes a HIGH or CRITICAL task found no free slot on in this pass: their ahead queues take nothing more in it.
  // Otherwise lower-priority work queued ahead would keep every slot taken, and the task would wait until the
  // backlog behind it was gone; this way those queues drain and it gets the next slot that frees.
  const aheadClosed = new Set<NodeState>();

  for (const t of queue.ordered()) {
    if (openSlots === 0 || unplacedInARow >= opts.maxScan || failedShapes.size >= shapes) break;
    unplacedInARow++;
    if (t.notBefore > now) continue;
    const shape = shapeKey(t);
    if (failedShapes.has(shape)) continue;

    const strategy: Strategy = t.rank <= 1 ? "spread" : "binpack";
    const candidates = usable.filter((n) => eligible(t, n.view, ctx));
    let chosen: NodeState | undefined;
    let reason = "";
    let waiting = false;
    const stages = stagesFor(t, t.deviceId === "" ? undefined : byDevice.get(t.deviceId), t.deviceId === "" ? new Set() : deviceClustersOf(t.deviceId));
    // A free slot anywhere in the chain first; a node's ahead queue (rules.ts holdLimit) only when there is none.
    for (const ahead of t.rank >= AHEAD_FROM_RANK && hasAhead ? [false, true] : [false]) {
      for (const stage of stages) {
        if (stage.cloud && !ahead) {
          const wait = edgeStartInTime(t, candidates, now);
          if (wait) {
            plan.waits.push({
              taskId: t.id,
              nodeId: wait.nodeId,
              recheckAt: wait.recheckAt,
              reason: `waiting for edge node ${wait.nodeId}, expected to have room at ${new Date(wait.at).toISOString()}`,
            });
            waiting = true;
            break;
          }
        }
        const room = candidates.filter((n) => stage.allow(n) && !(ahead && aheadClosed.has(n)) && fits(t, n.view, n, ahead));
        if (room.length > 0) {
          chosen = choose(room, strategy);
          reason = stage.reason(describe(strategy, chosen)) + (ahead ? "; sent ahead (queued on the agent for its next free slot)" : "");
          break;
        }
      }
      if (chosen !== undefined || waiting) break;
    }
    if (chosen === undefined) {
      // A waiting task's outcome depends on its deadline, which the shape leaves out.
      if (!waiting) failedShapes.add(shape);
      if (t.rank < AHEAD_FROM_RANK) for (const n of candidates) aheadClosed.add(n);
      continue;
    }
    take(chosen, t);
    openSlots--;
    unplacedInARow = 0;
    plan.placements.push({ taskId: t.id, nodeId: chosen.view.id, clusterId: chosen.view.clusterId, reason });
  }

  // CRITICAL tasks still waiting (the walk may have stopped before reaching some: no free slot is the usual reason
  // to preempt) get a preemption if one node can make room.
  const placed = new Set(plan.placements.map((p) => p.taskId));
  const stuckCritical: QueuedTask[] = [];
  for (const t of queue.ordered()) {
    if (t.rank !== 0) break;
    if (t.notBefore <= now && !placed.has(t.id) && !plan.waits.some((w) => w.taskId === t.id)) stuckCritical.push(t);
  }
  for (const t of stuckCritical) {
    const candidates = states.filter((n) => eligible(t, n.view, ctx));
    const p = planPreemption(
      t,
      candidates.map((n) => ({ node: n.view, room: n, running: n.running })),
    );
    if (!p) continue;
    const n = candidates.find((c) => c.view.id === p.nodeId)!;
    for (const id of p.victims) {
      const i = n.running.findIndex((r) => r.taskId === id);
      const v = n.running[i];
      n.running.splice(i, 1);
      n.freeCpu += v.cpuMillis;
      n.freeMem += v.memoryBytes;
      n.inFlight -= 1;
    }
    take(n, t);
    plan.preemptions.push({
      taskId: t.id,
      nodeId: p.nodeId,
      clusterId: n.view.clusterId,
      victims: p.victims,
      reason: `preempted ${p.victims.length} lower-priority attempt(s) on ${p.nodeId}`,
    });
  }
  return plan;
}
