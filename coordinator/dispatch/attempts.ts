// The one way an attempt leaves its node: release its reservation, tell the agent to stop it when it may still run
// it, and, if it is still the task's current attempt, decide what becomes of the task. Every requeue, preemption,
// drain move, ack timeout and node loss goes through moveAttempt; nothing else releases reservations of live work.
import type { Logger } from "../../lib/log.js";
import type { NodeRegistry } from "../nodes/registry.js";
import type { TaskManager } from "../tasks/task-manager.js";
import { priorityRank, type TaskRecord } from "../tasks/types.js";
import type { AgentSession } from "./session.js";

/** The agent sessions by node id, as the attempt logic needs them. */
export interface SessionLookup {
  get(nodeId: string): AgentSession | undefined;
}

/** What becomes of the task when the moved attempt is still its current one. */
export type AfterMove =
  /** Queued again at once for a new attempt, no retry used (the move was not the task's fault). */
  | { type: "requeue" }
  /** Queued again at once while the old attempt stays live: its node may still finish it, and the first result wins. */
  | { type: "requeue-keep-live" }
  /** Queued again for a CRITICAL task, counted as a preemption, no retry used. */
  | { type: "preempt"; by: string }
  /** The task stays as it is (the caller has already decided about it, e.g. cancelled or expired it). */
  | { type: "leave" };

export interface MoveOptions {
  /** Why, recorded on the attempt (and sent to the agent with a cancel). */
  reason: string;
  then: AfterMove;
  /** Tell the node's agent to stop the attempt; false when the node is gone or the agent already said it ended. */
  cancelOnAgent: boolean;
}

/** True when `attempt` is the task's current, live attempt. */
export function isCurrent(t: TaskRecord | undefined, attempt: number): t is TaskRecord {
  return t !== undefined && t.attempt === attempt && (t.state === "dispatched" || t.state === "running");
}

export class Attempts {
  constructor(
    private readonly tasks: TaskManager,
    private readonly nodes: NodeRegistry,
    private readonly sessions: SessionLookup,
    private readonly log: Logger,
  ) {}

  /** Moves one attempt off its node (see the top). Returns the task when it was still current, else undefined. */
  moveAttempt(nodeId: string, taskId: string, attempt: number, o: MoveOptions): TaskRecord | undefined {
    this.nodes.release(nodeId, taskId, attempt);
    if (o.cancelOnAgent) this.stopOnAgent(nodeId, taskId, attempt, o.reason);
    const t = this.tasks.reader.get(taskId);
    if (!isCurrent(t, attempt)) return undefined;
    switch (o.then.type) {
      case "requeue":
        return this.tasks.requeue(taskId, { reason: o.reason, consumeRetry: false });
      case "requeue-keep-live":
        return this.tasks.requeue(taskId, { reason: o.reason, consumeRetry: false, keepLive: true });
      case "preempt":
        this.log.warn({ task: taskId, attempt, node: nodeId, by: o.then.by }, "preempted for a CRITICAL task");
        return this.tasks.preempt(taskId, o.then.by);
      case "leave":
        return t;
      default: {
        const never: never = o.then;
        throw new Error(`unknown move ${JSON.stringify(never)}`);
      }
    }
  }

  /** Moves every attempt a node holds (the node is gone, or disconnected with no window). */
  moveAll(nodeId: string, o: MoveOptions): number {
    const node = this.nodes.findNode(nodeId);
    if (!node) return 0;
    let moved = 0;
    for (const r of [...node.reservations.values()]) if (this.moveAttempt(nodeId, r.taskId, r.attempt, o)) moved++;
    return moved;
  }

  /** Asks the agent to stop an attempt (best effort: a closed session means the agent is not running it for us). */
  stopOnAgent(nodeId: string, taskId: string, attempt: number, reason: string): void {
    this.sessions.get(nodeId)?.send({ type: "cancel", taskId, attempt, reason });
  }

  /** The reservation a new attempt holds on its node. */
  reserve(t: TaskRecord, nodeId: string, at: number): void {
    this.nodes.reserve(nodeId, {
      taskId: t.id,
      attempt: t.attempt,
      cpuMillis: t.spec.cpuMillis,
      memoryBytes: t.spec.memoryBytes,
      rank: priorityRank(t.spec.priority),
      dispatchedAt: at,
      estimatedMs: t.spec.estimatedMs,
    });
  }
}
