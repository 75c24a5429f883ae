// The task state machine: which transitions are legal. Pure: no I/O, no clock.
import type { TaskState } from "./types.js";

const ALLOWED: Record<TaskState, readonly TaskState[]> = {
  queued: ["dispatched", "cancelled", "expired", "failed"],
  // dispatched → queued: the agent was lost or never acknowledged; a result may arrive before the ack.
  dispatched: ["running", "queued", "succeeded", "failed", "cancelled", "expired"],
  running: ["queued", "succeeded", "failed", "cancelled", "expired"],
  succeeded: [],
  failed: [],
  cancelled: [],
  expired: [],
};

export class IllegalTransitionError extends Error {
  constructor(
    readonly taskId: string,
    readonly from: TaskState,
    readonly to: TaskState,
  ) {
    super(`task ${taskId}: illegal transition ${from} → ${to}`);
    this.name = "IllegalTransitionError";
  }
}

export function canTransition(from: TaskState, to: TaskState): boolean {
  return ALLOWED[from].includes(to);
}

export function assertTransition(taskId: string, from: TaskState, to: TaskState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(taskId, from, to);
}
