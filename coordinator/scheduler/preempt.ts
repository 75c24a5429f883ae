// Preemption planning for a CRITICAL task that fits nowhere: which running LOW/BACKGROUND attempts on one node to
// move so it fits. Pure: no I/O, no timers; the dispatcher carries the plan out.
import type { NodeView } from "./place.js";
import type { QueuedTask } from "./queue.js";

/** Lowest priority rank that may be preempted: LOW (3) and BACKGROUND (4). */
export const PREEMPTIBLE_FROM_RANK = 3;
/** Only CRITICAL (rank 0) tasks preempt. */
export const PREEMPTING_RANK = 0;

export interface RunningAttempt {
  taskId: string;
  rank: number;
  cpuMillis: number;
  memoryBytes: number;
  /** When it was dispatched: among equals, the youngest attempt (least work lost) goes first. */
  dispatchedAt: number;
}

export interface PreemptionPlan {
  nodeId: string;
  clusterId: string;
  victims: string[];
}

/**
 * Picks the node where the fewest preemptions (BACKGROUND before LOW, youngest first) make the task fit, in
 * slots, cpu and memory. Nodes that cannot run the handler, or whose cluster is excluded, are skipped.
 */
export function planPreemption(
  task: QueuedTask,
  nodes: readonly NodeView[],
  running: ReadonlyMap<string, readonly RunningAttempt[]>,
  eligibleCluster: (clusterId: string) => boolean,
): PreemptionPlan | undefined {
  if (task.rank !== PREEMPTING_RANK) return undefined;
  let best: PreemptionPlan | undefined;
  for (const n of nodes) {
    if (!n.handlers.has(task.handler) || !eligibleCluster(n.clusterId)) continue;
    if (task.clusterId && n.clusterId !== task.clusterId) continue;
    if (task.memoryBytes > n.totalMemoryBytes || task.cpuMillis > n.totalCpuMillis) continue;
    const victims = [...(running.get(n.id) ?? [])]
      .filter((r) => r.rank >= PREEMPTIBLE_FROM_RANK)
      .sort((a, b) => b.rank - a.rank || b.dispatchedAt - a.dispatchedAt);
    let cpu = n.freeCpuMillis, mem = n.freeMemoryBytes, slots = n.maxConcurrent - n.inFlight;
    const chosen: string[] = [];
    const fits = () => slots >= 1 && mem >= task.memoryBytes && (cpu >= task.cpuMillis || slots === n.maxConcurrent);
    for (const v of victims) {
      if (fits()) break;
      chosen.push(v.taskId);
      cpu += v.cpuMillis;
      mem += v.memoryBytes;
      slots += 1;
    }
    if (!fits() || chosen.length === 0) continue;
    if (!best || chosen.length < best.victims.length) best = { nodeId: n.id, clusterId: n.clusterId, victims: chosen };
  }
  return best;
}
