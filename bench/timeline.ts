// Where a task's time went, from the timestamps the coordinator and the agent put on it. Every process of the
// benchmark runs on one machine, so their wall clocks agree; the timestamps are whole milliseconds.
// Pure: no RPCs.
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AttemptOutcome, type Task } from "../gen/edgeplane/v1/types_pb.js";
import { fmtMs, summarize } from "./measure.js";

/** A successful task's path, in ms per step. */
export interface Timeline {
  /** Node that ran the successful attempt. */
  nodeId: string;
  /** Created → dispatched (waiting in the queue, placement). */
  placed: number;
  /** Dispatched → handler started in the agent's worker (dispatch message, accept, hand-off to the worker). */
  delivered: number;
  /** Handler start → end, as the agent's worker stamped them. */
  handler: number;
  /** Handler end → the coordinator recorded the result (result message, state change). */
  reported: number;
  /** Result recorded → the client saw the terminal state on WatchTask; undefined when the client did not watch. */
  notified: number | undefined;
  /** Epoch ms of the successful attempt's dispatch and handler end, for per-node sequences. */
  dispatchedAt: number;
  agentFinishedAt: number;
  createdAt: number;
}

const ms = (t: Timestamp | undefined): number => (t ? timestampMs(t) : Number.NaN);

/** The timeline of a succeeded task; `seenAt` is when the client saw it (epoch ms). Undefined if it did not succeed. */
export function timelineOf(t: Task, seenAt?: number): Timeline | undefined {
  const a = t.attempts.find((x) => x.outcome === AttemptOutcome.SUCCEEDED);
  if (!a) return undefined;
  return {
    nodeId: a.nodeId,
    placed: ms(a.dispatchedAt) - ms(t.createdAt),
    delivered: ms(a.startedAt) - ms(a.dispatchedAt),
    handler: ms(a.finishedAt) - ms(a.startedAt),
    reported: ms(t.finishedAt) - ms(a.finishedAt),
    notified: seenAt === undefined ? undefined : seenAt - ms(t.finishedAt),
    dispatchedAt: ms(a.dispatchedAt),
    agentFinishedAt: ms(a.finishedAt),
    createdAt: ms(t.createdAt),
  };
}

/** Medians of each step, in one table cell. */
export function fmtTimelines(ts: readonly Timeline[]): string {
  if (ts.length === 0) return "no samples";
  const med = (f: (t: Timeline) => number | undefined): string => {
    const xs = ts.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length ? fmtMs(summarize(xs).p50) : "n/a";
  };
  const parts = [
    `created → dispatched ${med((t) => t.placed)}`,
    `→ handler start ${med((t) => t.delivered)}`,
    `→ handler end ${med((t) => t.handler)}`,
    `→ result recorded ${med((t) => t.reported)}`,
  ];
  if (ts.some((t) => t.notified !== undefined)) parts.push(`→ client saw it ${med((t) => t.notified)}`);
  return `${parts.join(" ")} ms (medians, n=${ts.length})`;
}

/**
 * Node turnaround: for consecutive attempts on one node where the next task was already waiting when the previous
 * handler ended, the time from that handler's end to the next dispatch — how long a busy fleet leaves a slot idle.
 * Only meaningful with one slot per node.
 */
export function nodeTurnarounds(ts: readonly Timeline[]): number[] {
  const byNode = new Map<string, Timeline[]>();
  for (const t of ts) {
    const list = byNode.get(t.nodeId);
    if (list) list.push(t);
    else byNode.set(t.nodeId, [t]);
  }
  const out: number[] = [];
  for (const list of byNode.values()) {
    list.sort((a, b) => a.dispatchedAt - b.dispatchedAt);
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1],
        next = list[i];
      if (next.createdAt <= prev.agentFinishedAt && next.dispatchedAt >= prev.agentFinishedAt) out.push(next.dispatchedAt - prev.agentFinishedAt);
    }
  }
  return out;
}
