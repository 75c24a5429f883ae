// Batches what the agent reports on its stream: the accepts and results of one event-loop turn go out as a single
// AgentBatch, sent once after the turn (setImmediate). An attempt that was accepted and finished in the same turn
// (a small task run inline) goes out as its result alone: the result says all the accept would (the coordinator
// takes a result for a dispatched attempt, with the attempt's startedAt from it), and the coordinator is spared a
// transition to running that the next item of the same message undoes. Holds nothing across a lost stream: results
// are kept (and re-sent after registration) by the agent, accepts are covered by the register message's running
// list.
import type { ConnectRequest, TaskResult } from "../gen/edgeplane/v1/agent_pb.js";
import { batchMessage, type AttemptRef } from "./convert.js";
import { resultKey } from "./journal.js";

export interface OutboxDeps {
  /** Puts a message on the stream; false when there is none (the batch is then dropped, see the top). */
  send(m: ConnectRequest): boolean;
  /** Journals the turn's results (one write) just before they are sent. Default: nothing. */
  journal?: (results: readonly TaskResult[]) => void;
  /** Runs `fn` once the current turn is over. Default setImmediate. */
  defer?: (fn: () => void) => void;
}

export class Outbox {
  private accepted: AttemptRef[] = [];
  private results: TaskResult[] = [];
  /** Of `results`, the new ones (the rest are sent again, and already journaled). */
  private fresh: TaskResult[] = [];
  private scheduled = false;
  private readonly defer: (fn: () => void) => void;

  constructor(private readonly d: OutboxDeps) {
    this.defer = d.defer ?? ((fn) => setImmediate(fn));
  }

  /** Items waiting for the end of the turn. */
  get size(): number {
    return this.accepted.length + this.results.length;
  }

  accept(a: AttemptRef): void {
    this.accepted.push({ taskId: a.taskId, attempt: a.attempt });
    this.schedule();
  }

  /** A result for this turn's batch; `journal`: a new result, journaled (with the turn's others) before it is sent. */
  result(r: TaskResult, o: { journal?: boolean } = {}): void {
    this.results.push(r);
    if (o.journal) this.fresh.push(r);
    this.schedule();
  }

  /**
   * Sends what is waiting now, as one message. Called at the end of the turn, and before anything else goes on the
   * stream (a heartbeat, the half-close) so the coordinator sees an accept before a heartbeat that lists it running.
   */
  flush(): void {
    if (this.size === 0) return;
    if (this.fresh.length > 0) this.d.journal?.(this.fresh);
    const m = batchMessage(withoutFinished(this.accepted, this.results), this.results);
    this.accepted = [];
    this.results = [];
    this.fresh = [];
    this.d.send(m);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      this.flush();
    });
  }
}

/** The accepts whose attempt has no result among `results`. */
function withoutFinished(accepted: AttemptRef[], results: readonly TaskResult[]): AttemptRef[] {
  if (accepted.length === 0 || results.length === 0) return accepted;
  const done = new Set(results.map((r) => resultKey(r.taskId, r.attempt)));
  return accepted.filter((a) => !done.has(resultKey(a.taskId, a.attempt)));
}
