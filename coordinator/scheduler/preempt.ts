// Preemption planning for a CRITICAL task that fits nowhere: which running LOW/BACKGROUND attempts on one node to
// move so it fits (rules.ts decides "fits"); attempts queued ahead on the node's agent are not moved (see below).
// Pure: no I/O, no timers; the dispatcher carries the plan out.
import type { QueuedTask } from "./queue.js";
import { fits, type Capacity, type NodeTraits } from "./rules.js";

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

/** A node the task is eligible for (rules.ts `eligible`), its room now and what runs there. */
export interface PreemptionCandidate {
  node: NodeTraits;
  room: Capacity;
  running: readonly RunningAttempt[];
}

export interface PreemptionPlan {
  nodeId: string;
  victims: string[];
}

/**
 * Picks the node where the fewest preemptions (BACKGROUND before LOW, youngest first) make the task fit, in
 * slots, cpu and memory. Undefined when the task is not CRITICAL or no node can make room.
 */
export function planPreemption(task: QueuedTask, candidates: readonly PreemptionCandidate[]): PreemptionPlan | undefined {
  if (task.rank !== PREEMPTING_RANK) return undefined;
  let best: PreemptionPlan | undefined;
  for (const { node, room, running } of candidates) {
    // Attempts beyond the node's slots (dispatch-ahead) wait on its agent, which starts queued work in priority
    // order: the CRITICAL task goes before them, so they hold no slot it needs and are left alone. The youngest are
    // the queued ones (the agent starts its queue oldest first within a priority).
    const byAge = [...running].sort((a, b) => a.dispatchedAt - b.dispatchedAt);
    const holding = byAge.slice(0, node.maxConcurrent);
    const queued = byAge.slice(node.maxConcurrent);
    const victims = holding.filter((r) => r.rank >= PREEMPTIBLE_FROM_RANK).sort((a, b) => b.rank - a.rank || b.dispatchedAt - a.dispatchedAt);
    const after: Capacity = { ...room };
    for (const q of queued) {
      after.freeCpu += q.cpuMillis;
      after.freeMem += q.memoryBytes;
      after.inFlight -= 1;
    }
    const chosen: string[] = [];
    for (const v of victims) {
      if (fits(task, node, after)) break;
      chosen.push(v.taskId);
      after.freeCpu += v.cpuMillis;
      after.freeMem += v.memoryBytes;
      after.inFlight -= 1;
    }
    if (chosen.length === 0 || !fits(task, node, after)) continue;
    if (!best || chosen.length < best.victims.length) best = { nodeId: node.id, victims: chosen };
  }
  return best;
}
