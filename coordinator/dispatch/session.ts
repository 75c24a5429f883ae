// One agent's stream as the dispatcher sees it: an outbox of domain messages, sent one batch per event-loop turn
// (everything said to the agent in a turn leaves in one write), except that a CRITICAL or HIGH dispatch leaves at
// once. rpc/agent-service.ts owns the wire.
import { AsyncQueue } from "../../lib/async-queue.js";
import type { Timers } from "../../lib/clock.js";
import { priorityRank, type TaskRecord } from "../tasks/types.js";

/** Dispatches of this rank or more urgent (CRITICAL 0, HIGH 1) do not wait for the end of the turn. */
export const URGENT_DISPATCH_RANK = 1;

export type OutboundMessage =
  | { type: "dispatch"; task: TaskRecord; attempt: number }
  | { type: "cancel"; taskId: string; attempt: number; reason: string }
  | { type: "drain"; graceMs: number }
  | { type: "heartbeat-ack"; sequence: bigint }
  | { type: "registered"; heartbeatIntervalMs: number }
  | { type: "result-ack"; taskId: string; attempt: number }
  /** A renewed node certificate (security/), or why the renewal was refused. */
  | { type: "certificate"; certificatePem: string; caPem: string; notAfter: number; error: string };

export class AgentSession {
  /** One entry per turn in which something was sent, in order. */
  readonly outbox = new AsyncQueue<OutboundMessage[]>();
  private pending: OutboundMessage[] = [];

  constructor(
    readonly nodeId: string,
    readonly sessionId: string,
    private readonly timers: Pick<Timers, "soon">,
  ) {}

  get isClosed(): boolean {
    return this.outbox.isClosed;
  }

  /**
   * Queues a message for this turn's batch; false once the session is closed (the message is dropped). A CRITICAL
   * or HIGH dispatch is not held to the end of the turn: it leaves now, with what this turn queued before it (so
   * the order holds, e.g. the cancel of the attempt it preempts). Under load the rest of a turn, and the write's own
   * hop to the next one, were part of such a task's way to its agent (behind a backlog about 1-2 ms of a 6 ms p50).
   */
  send(m: OutboundMessage): boolean {
    if (this.outbox.isClosed) return false;
    this.pending.push(m);
    if (m.type === "dispatch" && priorityRank(m.task.spec.priority) <= URGENT_DISPATCH_RANK) this.flush();
    else if (this.pending.length === 1) this.timers.soon(() => this.flush());
    return true;
  }

  /** Ends the stream after what was already sent this turn. */
  close(): void {
    this.flush();
    this.outbox.close();
  }

  private flush(): void {
    if (this.pending.length === 0 || this.outbox.isClosed) return;
    const batch = this.pending;
    this.pending = [];
    this.outbox.push(batch);
  }
}
