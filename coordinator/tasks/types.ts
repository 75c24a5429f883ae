// Domain types of the coordinator: plain data, no generated protobuf types, no I/O.
// rpc/convert.ts is the only place that maps these to and from the wire.

/** Priority levels, highest first. The numeric rank (0 = CRITICAL) orders the queue. */
export const PRIORITIES = ["critical", "high", "normal", "low", "background"] as const;
export type Priority = (typeof PRIORITIES)[number];
export const priorityRank = (p: Priority): number => PRIORITIES.indexOf(p);

export const MODES = ["local", "distributed", "hybrid", "cloud_fallback"] as const;
export type ProcessingMode = (typeof MODES)[number];

export type Tier = "edge" | "cloud";

/**
 * Task lifecycle. queued → dispatched → running → succeeded | failed | cancelled | expired;
 * a failed attempt with retries left goes back to queued. Terminal states never change.
 */
export const TASK_STATES = ["queued", "dispatched", "running", "succeeded", "failed", "cancelled", "expired"] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set(["succeeded", "failed", "cancelled", "expired"]);
export const isTerminal = (s: TaskState): boolean => TERMINAL_STATES.has(s);

export type AttemptOutcome = "succeeded" | "failed" | "cancelled" | "timed_out";

/** JSON value as carried in a google.protobuf.Value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Packed numeric input: values with optional epoch-ms timestamps (one per value). */
export interface NumericSeries {
  values: number[];
  timestamps: number[];
}

/** What a client asked to run, validated and with defaults applied. */
export interface TaskSpec {
  name: string;
  handler: string;
  deviceId: string;
  priority: Priority;
  mode: ProcessingMode;
  input: JsonValue | undefined;
  series: NumericSeries | undefined;
  memoryBytes: number;
  cpuMillis: number;
  /** Expected processing time in ms (0 when not given). */
  estimatedMs: number;
  /** Epoch ms, or undefined for no deadline. */
  deadline: number | undefined;
  maxRetries: number;
  /** Restricts placement to this cluster ("" = any). */
  clusterId: string;
  labels: Record<string, string>;
  /** Overrides the coordinator's disconnect window for this task, in ms. */
  disconnectWindowMs: number | undefined;
}

export interface AttemptRecord {
  attempt: number;
  nodeId: string;
  clusterId: string;
  outcome: AttemptOutcome | undefined;
  error: string;
  dispatchedAt: number;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  processingMs: number;
  peakMemoryBytes: number;
  /** Why the scheduler chose this node. */
  placementReason: string;
  /**
   * Set when the task was requeued early because waiting for the attempt's disconnected node would miss the
   * deadline: the attempt may still finish, and its result counts if it is the first terminal one.
   */
  stillLive?: boolean;
}

export interface TaskRecord {
  id: string;
  spec: TaskSpec;
  state: TaskState;
  /** Number of the current (or last) attempt; 0 before the first dispatch. */
  attempt: number;
  assignedCluster: string;
  assignedNode: string;
  output: JsonValue | undefined;
  error: string;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | undefined;
  attempts: AttemptRecord[];
  idempotencyKey: string;
  /** Epoch ms when the task last entered the queue (creation or retry). */
  queuedAt: number;
  /** Time spent queued, summed over attempts, in ms. */
  queuedMs: number;
  /** Retry backoff: not placed before this epoch ms. */
  notBefore: number;
  /** Monotonic submission sequence: FIFO order within a priority and deadline. */
  seq: number;
  /** Attempts moved off a node for a higher-priority task (they use up no retry). */
  preemptions: number;
  /** Set on a shard task of a DISTRIBUTED / HYBRID task: which part of the parent's work it runs. */
  shard?: ShardAssignment;
  /** Set on a DISTRIBUTED / HYBRID task once it is split: the split and its progress (distributed/ owns it). */
  split?: SplitRecord;
  /** Principal id of the submitter (e.g. `token:ab12cd34ef`); unset for tasks submitted without authentication. */
  owner?: string;
}

/** A just-submitted task's record: queued, no attempts yet, created and queued at `now`. */
export function newTaskRecord(f: { id: string; spec: TaskSpec; now: number; seq: number; idempotencyKey: string }): TaskRecord {
  return {
    id: f.id,
    spec: f.spec,
    state: "queued",
    attempt: 0,
    assignedCluster: "",
    assignedNode: "",
    output: undefined,
    error: "",
    createdAt: f.now,
    updatedAt: f.now,
    finishedAt: undefined,
    attempts: [],
    idempotencyKey: f.idempotencyKey,
    queuedAt: f.now,
    queuedMs: 0,
    notBefore: 0,
    seq: f.seq,
    preemptions: 0,
  };
}

/** Scatter-gather steps a shard task can run (lib/analytics/types.ts has the protocol). */
export type ShardPhase = "prepare" | "partial" | "merge";

/** What one shard task runs: its parent, its place in the split, and the step. */
export interface ShardAssignment {
  parentId: string;
  index: number;
  count: number;
  /** Points [start, end) of the parent's input. */
  start: number;
  end: number;
  /** Index of the shard's first point in whole-input terms (the input's own indexOffset + start). */
  offset: number;
  phase: ShardPhase;
  /** Prepare round, 0-based (0 for the other phases). */
  round: number;
  /** Combined global context of the previous prepare rounds. */
  global: JsonValue | undefined;
  /** The node the plan sized this shard for: placement prefers it, and falls back to the rest of the cluster. */
  preferNode: string;
}

/** One shard of a split task as recorded on the parent: small, no input. */
export interface ShardSummary {
  index: number;
  /** Shard task of the current (or last) round. */
  taskId: string;
  /** Node that runs (ran) it, or the planned node before dispatch. */
  nodeId: string;
  start: number;
  end: number;
  state: TaskState;
  /** Summed over rounds: processing of successful attempts, time queued, attempts made. */
  processingMs: number;
  queuedMs: number;
  attempts: number;
}

/** How a DISTRIBUTED / HYBRID task was split and how far it got. */
export interface SplitRecord {
  clusterId: string;
  /** Why the shards are sized as they are, e.g. "hybrid: device node n1 takes 60%; 2 more nodes". */
  reason: string;
  /** Prepare rounds before the partial round. */
  prepareRounds: number;
  /** Whether a merge shard runs on an agent (custom handlers) rather than in the coordinator. */
  remoteMerge: boolean;
  /** Step now: "prepare" (with `round`), "partial", "merge" or "done". */
  phase: ShardPhase | "done";
  round: number;
  /** Shard tasks succeeded over all steps, and the number the whole run needs. */
  done: number;
  total: number;
  shards: ShardSummary[];
  /** The merge step's task, when the merge runs on an agent. */
  mergeTaskId?: string;
  /** Global context from the last combine (small: e.g. mean and stddev). */
  global: JsonValue | undefined;
  /** Time spent in the coordinator's combine and merge steps. */
  mergeMs: number;
}
