// One agent's stream as the dispatcher sees it: an outbox of domain messages. rpc/agent-service.ts owns the wire.
import { AsyncQueue } from "../../lib/async-queue.js";
import type { TaskRecord } from "../tasks/types.js";

export type OutboundMessage =
  | { type: "dispatch"; task: TaskRecord; attempt: number }
  | { type: "cancel"; taskId: string; attempt: number; reason: string }
  | { type: "drain"; graceMs: number }
  | { type: "heartbeat-ack"; sequence: bigint }
  | { type: "registered"; heartbeatIntervalMs: number }
  | { type: "result-ack"; taskId: string; attempt: number };

export class AgentSession {
  readonly outbox = new AsyncQueue<OutboundMessage>();
  constructor(readonly nodeId: string, readonly sessionId: string) {}

  send(m: OutboundMessage): boolean {
    if (this.outbox.isClosed) return false;
    this.outbox.push(m);
    return true;
  }

  close(): void {
    this.outbox.close();
  }
}
