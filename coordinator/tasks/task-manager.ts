// Owns every task's state: applies legal transitions through the store and publishes change events.
// Never talks to agents or the scheduler: dispatch/ reacts to the events it publishes.
import { randomBytes } from "node:crypto";
import { backoffDelay } from "../../lib/backoff.js";
import { systemTimers, type Timers } from "../../lib/clock.js";
import { FailedPreconditionError, NotFoundError } from "../errors.js";
import { assertTransition } from "./state-machine.js";
import type { PutOptions, TaskStore } from "../store/store.js";
import { TaskWatchHub, type WatchSubscription } from "./task-watch.js";
import {
  isTerminal,
  newTaskRecord,
  PRIORITIES,
  type AttemptOutcome,
  type AttemptRecord,
  type JsonValue,
  type ShardAssignment,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
} from "./types.js";

export type TaskListener = (task: TaskRecord, previous: TaskState | undefined) => void;

export interface TaskManagerOptions {
  now: () => number;
  retryBaseMs: number;
  retryMaxMs: number;
  random?: () => number;
  /** Where "after this turn" and retry delays come from. Default: the system's. */
  timers?: Timers;
}

/** How a task goes back to the queue for a new attempt. */
export interface RequeueOptions {
  /** Why, recorded on the task and its attempt. */
  reason: string;
  /** The failure was the task's own: it uses up a retry and waits out a backoff. Otherwise it is placed again at once. */
  consumeRetry: boolean;
  /** The attempt's node is away and may still finish it: the attempt stays live and the first terminal result wins. */
  keepLive?: boolean;
  /** Records the attempt's outcome from a result, instead of marking the attempt cancelled. */
  record?: (x: TaskRecord) => void;
  /** Failed attempts so far, which sizes the backoff. Default 1. */
  failures?: number;
}

export interface AttemptReport {
  taskId: string;
  attempt: number;
  outcome: AttemptOutcome;
  output: JsonValue | undefined;
  error: string;
  processingMs: number;
  peakMemoryBytes: number;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  /** The failure is in the task itself (bad input): it fails now instead of being retried. */
  permanent?: boolean;
}

/** What happened to a reported result: applied, or ignored because its attempt was superseded (fencing). */
export type ReportVerdict = { type: "applied"; task: TaskRecord; superseded?: { nodeId: string; attempt: number } } | { type: "stale"; reason: string };

export interface TaskCounters {
  byState: Record<TaskState, number>;
  queuedByPriority: number[];
  processedSinceStart: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  expired: number;
  processingMsTotal: number;
  processingSamples: number;
  peakMemoryBytes: number;
  preemptions: number;
}

/** Random bytes drawn a pool at a time: one system call per 585 ids instead of one each. */
const ID_POOL_BYTES = 4095;
const ID_RANDOM_BYTES = 7;
let idPool = Buffer.alloc(0);
let idPoolAt = 0;

/** base64url's 64 characters in ASCII order, so that ids compare (as SQLite TEXT does, bytewise) as their bits do. */
const SORTABLE_B64 = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/**
 * A new task id: `t-` and 16 url-safe characters, the first 7 the creation time (42 bits of Unix ms, enough until
 * 2109), the other 9 54 random bits. Ids made later sort later, so the store's id-keyed tables and indexes take new
 * rows at their end: a random id dirtied a page of each per insert (bench/store-bench.ts measures both). Collision-free
 * at fleet scale: two ids can only meet within one millisecond, where 54 random bits keep the odds near n²/2⁵⁵.
 */
export function newTaskId(nowMs: number = Date.now()): string {
  if (idPoolAt + ID_RANDOM_BYTES > idPool.length) {
    idPool = randomBytes(ID_POOL_BYTES);
    idPoolAt = 0;
  }
  const p = idPool;
  const r = idPoolAt;
  idPoolAt += ID_RANDOM_BYTES;
  const t = nowMs > 0 ? nowMs : 0;
  let id = "t-";
  for (let k = 6; k >= 0; k--) id += SORTABLE_B64[Math.floor(t / 64 ** k) % 64];
  return id + chars24((p[r] << 16) | (p[r + 1] << 8) | p[r + 2]) + chars24((p[r + 3] << 16) | (p[r + 4] << 8) | p[r + 5]) + SORTABLE_B64[p[r + 6] & 63];
}

const chars24 = (v: number): string => SORTABLE_B64[(v >>> 18) & 63] + SORTABLE_B64[(v >>> 12) & 63] + SORTABLE_B64[(v >>> 6) & 63] + SORTABLE_B64[v & 63];

export class TaskManager {
  private readonly listeners = new Set<TaskListener>();
  /** What clients watching tasks see: durable changes only (task-watch.ts). */
  private readonly watchHub = new TaskWatchHub();
  private durabilityCheck = false;
  private readonly timers: Timers;
  private seq = 0;
  readonly counters: TaskCounters;

  constructor(
    private readonly store: TaskStore,
    private readonly opts: TaskManagerOptions,
  ) {
    this.timers = opts.timers ?? systemTimers;
    this.counters = {
      byState: { queued: 0, dispatched: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, expired: 0 },
      queuedByPriority: PRIORITIES.map(() => 0),
      processedSinceStart: 0,
      succeeded: 0,
      failed: 0,
      cancelled: 0,
      expired: 0,
      processingMsTotal: 0,
      processingSamples: 0,
      peakMemoryBytes: 0,
      preemptions: 0,
    };
    this.seq = store.maxSeq();
    for (const t of store.active()) this.count(t, undefined);
  }

  get reader(): Pick<TaskStore, "get" | "list" | "findByIdempotencyKey" | "withPayload"> {
    return this.store;
  }

  /** Every change of every task, as it happens, durable or not (for dispatch/ and other internal reactions). */
  onChange(l: TaskListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /**
   * Follows tasks for a client: by ids (their current states first) or by a predicate (changes from now on). A
   * client sees a change only once it is durable (task-watch.ts); `onReady` says when there is something to take.
   * Unknown ids are NOT_FOUND.
   */
  watch(
    follow: { ids: readonly string[] } | { match: (t: TaskRecord) => boolean },
    onReady: () => void,
  ): { subscription: WatchSubscription; current: TaskRecord[] } {
    if ("ids" in follow) {
      const current = follow.ids.map((id) => this.get(id));
      return { subscription: this.watchHub.subscribe({ ids: new Set(follow.ids) }, current, onReady), current };
    }
    return { subscription: this.watchHub.subscribe(follow, [], onReady), current: [] };
  }

  /**
   * True while the task's own submission is not yet handed to a commit: its first dispatch may then go out at once,
   * since a crash before that commit leaves no trace of the task (it was never acknowledged) and so no attempt of
   * it can be handed out twice.
   */
  insertPending(id: string): boolean {
    return this.store.pendingInsert?.(id) ?? false;
  }

  get(id: string): TaskRecord {
    const t = this.store.get(id);
    if (!t) throw new NotFoundError(`task ${id} not found`);
    return t;
  }

  /** Creates tasks in one store commit. A known idempotency key returns the original task instead. */
  submit(items: readonly { spec: TaskSpec; idempotencyKey: string; shard?: ShardAssignment; owner?: string }[]): { task: TaskRecord; created: boolean }[] {
    const now = this.opts.now();
    const out: { task: TaskRecord; created: boolean }[] = [];
    const fresh: TaskRecord[] = [];
    const keysInBatch = new Map<string, TaskRecord>();
    for (const { spec, idempotencyKey, shard, owner } of items) {
      const existing = idempotencyKey ? (keysInBatch.get(idempotencyKey) ?? this.store.findByIdempotencyKey(idempotencyKey)) : undefined;
      if (existing) {
        out.push({ task: existing, created: false });
        continue;
      }
      const task = newTaskRecord({ id: newTaskId(now), spec, now, seq: ++this.seq, idempotencyKey });
      if (shard) task.shard = shard;
      if (owner) task.owner = owner;
      if (idempotencyKey) keysInBatch.set(idempotencyKey, task);
      fresh.push(task);
      out.push({ task, created: true });
    }
    if (fresh.length > 0) this.store.insert(fresh);
    for (const t of fresh) this.publish(t, undefined);
    return out;
  }

  /**
   * A split (DISTRIBUTED / HYBRID) task's own record: its split, progress and outcome, written by distributed/.
   * `to` moves it (queued → dispatched once split, → running once a shard runs, → succeeded | failed); undefined
   * keeps its state and still publishes the change, so WatchTask shows progress.
   */
  applySplit(id: string, to: TaskState | undefined, mutate: (t: TaskRecord) => void): TaskRecord {
    const prev = this.get(id);
    if (to !== undefined && to !== prev.state) return this.update(id, to, mutate);
    if (isTerminal(prev.state)) return prev; // terminal records never change
    const next: TaskRecord = { ...prev, updatedAt: this.opts.now() };
    mutate(next);
    this.store.put(next);
    this.publish(next, prev.state, prev);
    return next;
  }

  /** queued → dispatched: a new attempt on a node. */
  dispatched(id: string, nodeId: string, clusterId: string, placementReason = ""): TaskRecord {
    const now = this.opts.now();
    return this.update(id, "dispatched", (t) => {
      t.attempt += 1;
      t.assignedNode = nodeId;
      t.assignedCluster = clusterId;
      t.queuedMs += Math.max(0, now - t.queuedAt);
      t.attempts = [
        ...t.attempts,
        {
          attempt: t.attempt,
          nodeId,
          clusterId,
          outcome: undefined,
          error: "",
          dispatchedAt: now,
          startedAt: undefined,
          finishedAt: undefined,
          processingMs: 0,
          peakMemoryBytes: 0,
          placementReason,
        },
      ];
    });
  }

  /** dispatched → running, when the agent accepts the current attempt. Stale acks are ignored. */
  accepted(id: string, attempt: number): ReportVerdict {
    const t = this.store.get(id);
    if (!t) return { type: "stale", reason: "unknown task" };
    if (t.attempt !== attempt || t.state !== "dispatched")
      return { type: "stale", reason: `attempt ${attempt} is not the current dispatched attempt (${t.attempt}, ${t.state})` };
    const now = this.opts.now();
    // Lazy: a restart treats a dispatched attempt exactly like a running one (it waits for its agent to report), so
    // this change needs no commit of its own; it goes to disk with the next one.
    return {
      type: "applied",
      task: this.update(
        id,
        "running",
        (x) => {
          x.attempts = x.attempts.map((a) => (a.attempt === attempt ? { ...a, startedAt: a.startedAt ?? now } : a));
        },
        { lazy: true },
      ),
    };
  }

  /**
   * Applies an agent's result for one attempt. Fencing: only the current attempt of an active task counts;
   * anything else is stale and changes nothing.
   */
  report(r: AttemptReport): ReportVerdict {
    const t = this.store.get(r.taskId);
    if (!t) return { type: "stale", reason: "unknown task" };
    if (isTerminal(t.state)) return { type: "stale", reason: `task already ${t.state}` };
    if (t.attempt !== r.attempt || (t.state !== "dispatched" && t.state !== "running")) {
      // An attempt requeued early for its deadline may still win: the first terminal result counts.
      const live = t.attempts.find((a) => a.attempt === r.attempt && a.stillLive);
      if (live && r.outcome === "succeeded") {
        const superseded = t.state === "dispatched" || t.state === "running" ? { nodeId: t.assignedNode, attempt: t.attempt } : undefined;
        const now = this.opts.now();
        const task = this.update(t.id, "succeeded", (x) => {
          x.attempts = x.attempts.map((a): AttemptRecord => {
            if (a.attempt === r.attempt) {
              return {
                ...a,
                outcome: "succeeded",
                error: "",
                processingMs: r.processingMs,
                peakMemoryBytes: r.peakMemoryBytes,
                startedAt: r.startedAt ?? a.startedAt,
                finishedAt: r.finishedAt ?? now,
                stillLive: false,
              };
            }
            return !a.outcome ? { ...a, outcome: "cancelled", error: `attempt ${r.attempt} finished first`, finishedAt: now } : a;
          });
          x.output = r.output;
          x.error = "";
          x.finishedAt = now;
          x.assignedNode = live.nodeId;
          x.assignedCluster = live.clusterId;
        });
        return { type: "applied", task, superseded };
      }
      return { type: "stale", reason: `attempt ${r.attempt} was superseded by attempt ${t.attempt} (${t.state})` };
    }
    const now = this.opts.now();
    const record = (x: TaskRecord) => {
      x.attempts = x.attempts.map((a): AttemptRecord =>
        a.attempt !== r.attempt
          ? a
          : {
              ...a,
              outcome: r.outcome,
              error: r.error,
              processingMs: r.processingMs,
              peakMemoryBytes: r.peakMemoryBytes,
              startedAt: r.startedAt ?? a.startedAt,
              finishedAt: r.finishedAt ?? now,
            },
      );
    };
    if (r.processingMs > 0) {
      this.counters.processingMsTotal += r.processingMs;
      this.counters.processingSamples += 1;
    }
    this.counters.peakMemoryBytes = Math.max(this.counters.peakMemoryBytes, r.peakMemoryBytes);
    switch (r.outcome) {
      case "succeeded":
        return {
          type: "applied",
          task: this.update(t.id, "succeeded", (x) => {
            record(x);
            x.output = r.output;
            x.error = "";
            x.finishedAt = now;
          }),
        };
      case "timed_out":
        if (t.spec.deadline !== undefined && now >= t.spec.deadline - 5) {
          return {
            type: "applied",
            task: this.update(t.id, "expired", (x) => {
              record(x);
              x.error = `deadline ${new Date(t.spec.deadline!).toISOString()} passed while attempt ${r.attempt} ran`;
              x.finishedAt = now;
            }),
          };
        }
        return { type: "applied", task: this.retryOrFail(t, `attempt ${r.attempt} timed out`, record) };
      case "failed":
        if (r.permanent) {
          return {
            type: "applied",
            task: this.update(t.id, "failed", (x) => {
              record(x);
              x.error = `${r.error || `attempt ${r.attempt} failed`} (bad input: not retried)`;
              x.finishedAt = now;
            }),
          };
        }
        return { type: "applied", task: this.retryOrFail(t, r.error || `attempt ${r.attempt} failed`, record) };
      case "cancelled":
        // The agent gave the attempt up without being asked (drain, shutdown): run it again, no retry used.
        return {
          type: "applied",
          task: this.requeue(t.id, { reason: r.error || `attempt ${r.attempt} was cancelled on the agent`, consumeRetry: false, record }),
        };
      default: {
        const never: never = r.outcome;
        throw new Error(`unknown outcome ${String(never)}`);
      }
    }
  }

  private retryOrFail(t: TaskRecord, error: string, record: (x: TaskRecord) => void): TaskRecord {
    const failures = t.attempts.filter((a) => a.outcome === "failed" || a.outcome === "timed_out").length + 1;
    if (failures > t.spec.maxRetries) {
      return this.update(t.id, "failed", (x) => {
        record(x);
        x.error = t.spec.maxRetries > 0 ? `${error} (gave up after ${failures} failed attempts)` : error;
        x.finishedAt = this.opts.now();
      });
    }
    return this.requeue(t.id, { reason: error, consumeRetry: true, record, failures });
  }

  /**
   * Puts an active task back in the queue for a new attempt. A retry adds exponential backoff; a task moved for
   * reasons not its own (node lost, preempted) is placed again at once.
   */
  requeue(id: string, o: RequeueOptions): TaskRecord {
    const now = this.opts.now();
    return this.update(id, "queued", (x) => {
      if (o.record) o.record(x);
      else {
        x.attempts = x.attempts.map((a) => {
          if (a.attempt !== x.attempt || a.outcome) return a;
          return o.keepLive ? { ...a, stillLive: true, error: o.reason } : { ...a, outcome: "cancelled", error: o.reason, finishedAt: now };
        });
      }
      x.error = o.reason;
      x.assignedNode = "";
      x.queuedAt = now;
      x.notBefore = o.consumeRetry ? now + backoffDelay(o.failures ?? 1, { baseMs: this.opts.retryBaseMs, maxMs: this.opts.retryMaxMs }, this.opts.random) : 0;
    });
  }

  /** Moves a running attempt off its node for a CRITICAL task: requeued at once, no retry used. */
  preempt(id: string, by: string): TaskRecord {
    this.counters.preemptions += 1;
    return this.update(id, "queued", (x) => {
      const now = this.opts.now();
      const reason = `preempted by CRITICAL task ${by}`;
      x.attempts = x.attempts.map((a) => (a.attempt !== x.attempt || a.outcome ? a : { ...a, outcome: "cancelled", error: reason, finishedAt: now }));
      x.error = reason;
      x.assignedNode = "";
      x.queuedAt = now;
      x.notBefore = 0;
      x.preemptions += 1;
    });
  }

  /** Cancels a task in any non-terminal state; returns the attempt that an agent may still be running. */
  cancel(id: string, reason: string): { task: TaskRecord; running: { nodeId: string; attempt: number } | undefined } {
    const t = this.get(id);
    if (isTerminal(t.state)) throw new FailedPreconditionError(`task ${id} is already ${t.state}; only queued, dispatched or running tasks can be cancelled`);
    const running = t.state === "dispatched" || t.state === "running" ? { nodeId: t.assignedNode, attempt: t.attempt } : undefined;
    const task = this.update(id, "cancelled", (x) => {
      x.error = reason ? `cancelled: ${reason}` : "cancelled";
      x.finishedAt = this.opts.now();
      x.attempts = x.attempts.map((a) => (a.attempt === x.attempt && !a.outcome ? { ...a, outcome: "cancelled", finishedAt: this.opts.now() } : a));
    });
    return { task, running };
  }

  /** The deadline passed: the task is expired whether queued or running. */
  expire(id: string): { task: TaskRecord; running: { nodeId: string; attempt: number } | undefined } | undefined {
    const t = this.store.get(id);
    if (!t || isTerminal(t.state)) return undefined;
    const running = t.state === "dispatched" || t.state === "running" ? { nodeId: t.assignedNode, attempt: t.attempt } : undefined;
    const task = this.update(id, "expired", (x) => {
      x.error = `deadline ${new Date(t.spec.deadline ?? 0).toISOString()} passed ${t.state === "queued" ? "before the task could be placed" : `while attempt ${t.attempt} was ${t.state}`}`;
      x.finishedAt = this.opts.now();
      x.attempts = x.attempts.map((a) => (a.attempt === x.attempt && !a.outcome ? { ...a, outcome: "timed_out", finishedAt: this.opts.now() } : a));
    });
    return { task, running };
  }

  private update(id: string, to: TaskState, mutate: (t: TaskRecord) => void, opts: PutOptions = {}): TaskRecord {
    const prev = this.get(id);
    assertTransition(id, prev.state, to);
    const next: TaskRecord = { ...prev, state: to, updatedAt: this.opts.now() };
    mutate(next);
    this.store.put(next, opts);
    this.publish(next, prev.state, prev, opts.lazy === true);
    return next;
  }

  private count(t: TaskRecord, prev: TaskRecord | undefined): void {
    const c = this.counters;
    if (prev) {
      c.byState[prev.state] -= 1;
      if (prev.state === "queued") c.queuedByPriority[PRIORITIES.indexOf(prev.spec.priority)] -= 1;
    }
    c.byState[t.state] += 1;
    if (t.state === "queued") c.queuedByPriority[PRIORITIES.indexOf(t.spec.priority)] += 1;
    if (prev && isTerminal(t.state)) {
      c.processedSinceStart += 1;
      if (t.state === "succeeded") c.succeeded += 1;
      else if (t.state === "failed") c.failed += 1;
      else if (t.state === "cancelled") c.cancelled += 1;
      else if (t.state === "expired") c.expired += 1;
    }
  }

  private publish(t: TaskRecord, previous: TaskState | undefined, prevRecord?: TaskRecord, lazy = false): void {
    this.count(t, prevRecord);
    for (const l of this.listeners) l(t, previous);
    this.watchHub.publish(t, lazy);
    // A lazy change is shown at once (behind what waits before it); asking the store to flush for it would
    // force the very commit a lazy write is meant to save.
    if (!lazy) this.checkDurabilityAfterTurn();
  }

  /** Once per turn with changes: when the store says they are durable, watching clients may see them. */
  private checkDurabilityAfterTurn(): void {
    if (this.durabilityCheck) return;
    this.durabilityCheck = true;
    this.timers.soon(() => {
      const upTo = this.watchHub.changes;
      this.store.flush().then(
        () => {
          this.durabilityCheck = false;
          this.watchHub.madeDurable(upTo);
          if (this.watchHub.changes > upTo) this.checkDurabilityAfterTurn();
        },
        // The store keeps the writes and retries the commit; look again a little later.
        () =>
          this.timers.after(100, () => {
            this.durabilityCheck = false;
            this.checkDurabilityAfterTurn();
          }),
      );
    });
  }
}
