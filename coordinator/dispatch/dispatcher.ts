// Turns queued tasks into running attempts: event → pass → apply. Task changes, agent messages and timers are
// events; each turn's events coalesce into one placement pass, in which the pure planner (scheduler/) turns a
// snapshot of the fleet into a plan, and this applies the plan (dispatches, preemptions, wake-ups). Owns the
// timers of the task lifecycle (deadlines, dispatch acks, drain graces, wake-ups) on an injected clock; every
// attempt that leaves its node goes through attempts.ts. Never decides task transitions itself (tasks/ does).
import type { Clock, Timers } from "../../lib/clock.js";
import type { Logger } from "../../lib/log.js";
import { reservationKey, type NodeRecord, type NodeRegistry } from "../nodes/registry.js";
import { planPass, type Plan } from "../scheduler/place.js";
import { TaskQueue, type QueuedTask } from "../scheduler/queue.js";
import type { AttemptReport, TaskManager } from "../tasks/task-manager.js";
import { isTerminal, priorityRank, type TaskRecord } from "../tasks/types.js";
import { isSplitTask, ShardDriver } from "../distributed/driver.js";
import type { SplitPlanOptions } from "../distributed/plan.js";
import { Attempts, isCurrent } from "./attempts.js";
import { DueTimers } from "./due-timers.js";
import type { AgentSession } from "./session.js";
import { fleetSnapshot } from "./snapshot.js";

/** Dispatch-ahead until the first result tells how long attempts take (DispatcherOptions.dispatchAheadMs). */
const AHEAD_BEFORE_ANY_RESULT = 4;
/** Weight of the newest result in the mean processing time. */
const PROCESSING_EWMA = 0.05;
/** Processing times are counted as at least this (an agent's own per-attempt work): tiny tasks do not divide by 0. */
const MIN_PROCESSING_MS = 0.05;

export interface DispatcherOptions {
  /** A cluster whose share of healthy nodes is below this takes no new work. */
  healthThreshold: number;
  /** A dispatched attempt its agent has not accepted within this many ms is cancelled there and requeued. */
  dispatchAckTimeoutMs: number;
  /** How long a disconnected node keeps its tasks before they move (0 = at once). */
  disconnectWindowMs: number;
  /** A node silent for longer than this (ms) is disconnected. */
  heartbeatTimeoutMs: number;
  /** How often liveness is checked (missed heartbeats, disconnect windows), in ms. */
  sweepIntervalMs: number;
  /** Tasks a pass looks at in a row without placing one before it stops. Default 1000. */
  maxScan?: number;
  /**
   * Attempts a node may hold beyond its slots, queued on its agent until a slot frees (so the slot does not wait for
   * the coordinator's round trip and commit). Default 0.
   */
  dispatchAhead?: number;
  /**
   * Caps dispatch-ahead by time: a node is sent at most as many attempts beyond its slots as its slots get through in
   * this many ms at the recent mean processing time (at least one, at most `dispatchAhead`), so a node never holds
   * more queued work than that and a HIGH or CRITICAL task behind it waits about this long at most. Until a result
   * has been seen, at most 4. Undefined or 0: `dispatchAhead` alone.
   */
  dispatchAheadMs?: number;
  /** Shard sizing for DISTRIBUTED / HYBRID tasks (distributed/plan.ts has the defaults). */
  split?: Partial<Omit<SplitPlanOptions, "healthThreshold">>;
}

export interface DispatcherDeps {
  tasks: TaskManager;
  nodes: NodeRegistry;
  clock: Clock;
  timers: Timers;
  log: Logger;
  /** Resolves once every state change made so far is durable (the store's flush). */
  durable: () => Promise<void>;
  options: DispatcherOptions;
}

export class Dispatcher {
  readonly queue = new TaskQueue();
  /** Splits DISTRIBUTED / HYBRID tasks into shard tasks, which this dispatcher then places like any task. */
  readonly split: ShardDriver;
  /** Placement passes run, for status and tests. */
  passes = 0;
  private readonly sessions = new Map<string, AgentSession>();
  private readonly attempts: Attempts;
  private readonly due: DueTimers;
  private readonly tasks: TaskManager;
  private readonly nodes: NodeRegistry;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly log: Logger;
  private readonly opts: DispatcherOptions;
  /** Epoch ms of the armed wake-up (retry backoff ending, a CLOUD_FALLBACK recheck). */
  private wakeAt = Infinity;
  /** Recent mean processing time of an attempt, in ms (exponentially weighted); undefined until a result is in. */
  private meanProcessingMs: number | undefined;
  private kickPending = false;
  private stopSweep: (() => void) | undefined;
  private closed = false;

  constructor(private readonly d: DispatcherDeps) {
    ({ tasks: this.tasks, nodes: this.nodes, clock: this.clock, timers: this.timers, log: this.log, options: this.opts } = d);
    this.attempts = new Attempts(this.tasks, this.nodes, this.sessions, this.log);
    this.due = new DueTimers(this.clock, this.timers);
    this.tasks.onChange((t, prev) => this.onTaskChange(t, prev));
    this.split = new ShardDriver({
      tasks: this.tasks,
      cancel: (id, reason) => void this.cancel(id, reason),
      snapshot: () => fleetSnapshot(this.nodes, (id) => this.sessions.has(id), this.clock.wall()),
      now: () => this.clock.wall(),
      // A child of the dispatcher's logger, which already binds `component`: a second `component` would repeat the key.
      log: this.log.child({ part: "split" }),
      options: { ...this.opts.split, healthThreshold: this.opts.healthThreshold },
    });
  }

  /** Starts the liveness sweep (missed heartbeats, disconnect windows). */
  start(): void {
    const tick = () => {
      if (this.closed) return;
      this.sweep();
      this.stopSweep = this.timers.after(this.opts.sweepIntervalMs, tick);
    };
    this.stopSweep = this.timers.after(this.opts.sweepIntervalMs, tick);
  }

  /** Loads active tasks after a restart: queued ones go back in the queue, dispatched and running ones to their node. */
  restore(active: readonly TaskRecord[]): void {
    this.split.restore(active);
    for (const t of active) {
      if (t.state === "queued") {
        this.onTaskChange(t, undefined);
        continue;
      }
      if (t.spec.deadline !== undefined) this.trackDeadline(t.id, t.spec.deadline);
      if (t.assignedNode) {
        const a = t.attempts.at(-1);
        this.nodes.restoreAssignment(t.assignedNode, t.assignedCluster, {
          taskId: t.id,
          attempt: t.attempt,
          cpuMillis: t.spec.cpuMillis,
          memoryBytes: t.spec.memoryBytes,
          rank: priorityRank(t.spec.priority),
          dispatchedAt: a?.dispatchedAt ?? t.updatedAt,
          startedAt: a?.startedAt,
          estimatedMs: t.spec.estimatedMs,
        });
      }
    }
  }

  private onTaskChange(t: TaskRecord, prev: TaskRecord["state"] | undefined): void {
    if (t.state === "queued") {
      if (prev === undefined && t.spec.deadline !== undefined) this.trackDeadline(t.id, t.spec.deadline);
      // A split task never runs whole: the shard driver splits it at the next pass.
      if (!isSplitTask(t) && !this.queue.has(t.id)) this.queue.push(toQueued(t));
      this.kick();
    } else if (prev === "queued") {
      this.queue.remove(t.id);
    }
    if (prev === "dispatched" && t.state !== "dispatched") this.due.clear(ackKey(t.id));
    if (isTerminal(t.state)) this.due.clear(deadlineKey(t.id));
  }

  // ── agent streams ────────────────────────────────────────────────────────────────────────────────────────────

  attach(session: AgentSession): void {
    const old = this.sessions.get(session.nodeId);
    if (old && old !== session) old.close();
    this.sessions.set(session.nodeId, session);
    this.kick();
  }

  detach(session: AgentSession, reason: string): void {
    if (this.sessions.get(session.nodeId) !== session) return;
    this.sessions.delete(session.nodeId);
    session.close();
    const node = this.nodes.streamClosed(session.nodeId, session.sessionId, reason);
    if (node) {
      this.log.warn({ node: node.id, reason }, "node disconnected");
      if (this.opts.disconnectWindowMs === 0) this.nodeLost(node, `node ${node.id} disconnected: ${reason}`);
    }
  }

  /** Whether the node's agent has a stream open. */
  connected(nodeId: string): boolean {
    return this.sessions.has(nodeId);
  }

  /**
   * The agent (re-)registered listing what it still runs. Attempts it runs that are still current stay;
   * superseded ones are cancelled on the agent; current attempts it no longer knows are requeued.
   */
  reconcile(node: NodeRecord, running: readonly { taskId: string; attempt: number }[]): void {
    const now = this.clock.wall();
    const reported = new Set(running.map((r) => reservationKey(r.taskId, r.attempt)));
    for (const r of running) {
      const t = this.tasks.reader.get(r.taskId);
      if (isCurrent(t, r.attempt) && t.assignedNode === node.id) {
        if (!node.reservations.has(reservationKey(r.taskId, r.attempt))) this.attempts.reserve(t, node.id, now);
      } else if (!t || t.state !== "succeeded" || t.attempt !== r.attempt) {
        // Superseded or finished elsewhere: the agent must not keep burning capacity on it.
        this.attempts.stopOnAgent(node.id, r.taskId, r.attempt, "attempt superseded");
      }
    }
    for (const r of [...node.reservations.values()]) {
      if (!reported.has(reservationKey(r.taskId, r.attempt))) {
        this.attempts.moveAttempt(node.id, r.taskId, r.attempt, {
          reason: `node ${node.id} restarted without attempt ${r.attempt}`,
          then: { type: "requeue" },
          cancelOnAgent: false,
        });
      }
    }
  }

  /**
   * What an agent reported in one message: accepted attempts (dispatched → running), then results. A result's
   * reservation is released whatever the verdict; the freed slots are refilled in a pass right away, so their
   * dispatches share the results' commit (one fsync, not two). Once the outcomes are durable the agent gets the acks
   * and drops the results from its journal (a stale result is acked too: the coordinator has decided about it).
   */
  fromAgent(session: AgentSession, accepted: readonly { taskId: string; attempt: number }[], results: readonly AttemptReport[]): void {
    const nodeId = session.nodeId;
    const now = this.clock.wall();
    for (const a of accepted) {
      const v = this.tasks.accepted(a.taskId, a.attempt);
      if (v.type === "stale") this.log.debug({ node: nodeId, task: a.taskId, attempt: a.attempt, reason: v.reason }, "ignoring stale accept");
      else this.nodes.started(nodeId, a.taskId, a.attempt, now);
    }
    if (results.length === 0) return;
    for (const report of results) this.applyResult(nodeId, report);
    this.pass();
    this.d.durable().then(
      () => {
        for (const r of results) session.send({ type: "result-ack", taskId: r.taskId, attempt: r.attempt });
      },
      (err) => this.log.error({ err, results: results.length }, "could not persist results; the agent will resend them"),
    );
  }

  private applyResult(nodeId: string, report: AttemptReport): void {
    this.nodes.release(nodeId, report.taskId, report.attempt);
    if (Number.isFinite(report.processingMs) && report.processingMs >= 0) {
      const ms = Math.max(report.processingMs, MIN_PROCESSING_MS);
      this.meanProcessingMs = this.meanProcessingMs === undefined ? ms : this.meanProcessingMs + (ms - this.meanProcessingMs) * PROCESSING_EWMA;
    }
    const v = this.tasks.report(report);
    if (v.type === "stale") {
      this.log.info({ node: nodeId, task: report.taskId, attempt: report.attempt, reason: v.reason }, "ignoring result of superseded attempt");
    } else if (v.superseded) {
      // An earlier, still-live attempt won: stop the one that was started to replace it.
      const { nodeId: other, attempt } = v.superseded;
      this.attempts.moveAttempt(other, report.taskId, attempt, {
        reason: `attempt ${report.attempt} finished first`,
        then: { type: "leave" },
        cancelOnAgent: true,
      });
      this.log.info({ task: report.taskId, winner: report.attempt, cancelled: attempt }, "first terminal result wins");
    }
  }

  /** Resolves once every state change so far is durable. */
  durable(): Promise<void> {
    return this.d.durable();
  }

  // ── requests ─────────────────────────────────────────────────────────────────────────────────────────────────

  /** Cancels a task in any non-terminal state and stops the attempt an agent may still be running. */
  cancel(taskId: string, reason: string): TaskRecord {
    const { task, running } = this.tasks.cancel(taskId, reason);
    if (running) this.attempts.stopOnAgent(running.nodeId, taskId, running.attempt, reason || "cancelled by request");
    return task;
  }

  /**
   * Drains a node: no new work; its running attempts finish, and whatever still runs after `graceMs` is cancelled
   * there and requeued elsewhere without using a retry. The node is drained once nothing runs on it.
   */
  drain(nodeId: string, graceMs: number): NodeRecord {
    const before = this.nodes.getNode(nodeId).state;
    const node = this.nodes.drain(nodeId);
    if (before === "draining" || before === "drained") return node;
    this.sessions.get(nodeId)?.send({ type: "drain", graceMs });
    if (node.state === "draining") this.due.set(drainKey(nodeId), this.clock.wall() + graceMs, () => this.drainGraceOver(nodeId));
    return node;
  }

  private drainGraceOver(nodeId: string): void {
    const n = this.nodes.findNode(nodeId);
    if (!n || n.state !== "draining") return;
    for (const r of [...n.reservations.values()]) {
      const moved = this.attempts.moveAttempt(nodeId, r.taskId, r.attempt, {
        reason: `node ${nodeId} drain deadline passed; moved`,
        then: { type: "requeue" },
        cancelOnAgent: true,
      });
      if (moved) this.log.warn({ task: r.taskId, node: nodeId }, "moved a task off a draining node after its grace");
    }
    this.kick();
  }

  // ── liveness ─────────────────────────────────────────────────────────────────────────────────────────────────

  /** One liveness check: silent nodes are disconnected, per-task windows and node windows are applied. */
  sweep(): void {
    for (const n of this.nodes.sweep(this.opts.heartbeatTimeoutMs)) {
      this.log.warn({ node: n.id }, "node missed heartbeats; disconnected");
      if (this.opts.disconnectWindowMs === 0) this.nodeLost(n, `node ${n.id} missed heartbeats`);
    }
    this.checkDisconnected();
    for (const n of this.nodes.expireDisconnected(this.opts.disconnectWindowMs)) {
      this.log.warn({ node: n.id, windowMs: this.opts.disconnectWindowMs }, "node down; moving its tasks");
      this.nodeLost(n, `node ${n.id} down: disconnected for more than ${this.opts.disconnectWindowMs} ms`);
    }
  }

  /**
   * Per-task decisions while nodes are disconnected: a task whose own disconnect window has passed moves now; a
   * CRITICAL or HIGH task whose deadline would be missed by waiting out the window moves at once, its original
   * attempt kept live so that the first terminal result wins.
   */
  private checkDisconnected(): void {
    const mono = this.clock.mono();
    const now = this.clock.wall();
    for (const n of this.nodes.listNodes()) {
      if (n.state !== "disconnected") continue;
      const away = mono - n.disconnectedAtMono;
      for (const r of [...n.reservations.values()]) {
        const t = this.tasks.reader.get(r.taskId);
        if (!isCurrent(t, r.attempt)) continue;
        const window = t.spec.disconnectWindowMs ?? this.opts.disconnectWindowMs;
        if (away >= window) {
          this.attempts.moveAttempt(n.id, t.id, r.attempt, {
            reason: `node ${n.id} disconnected for more than the task's window of ${window} ms`,
            then: { type: "requeue" },
            cancelOnAgent: false,
          });
          continue;
        }
        const urgent = priorityRank(t.spec.priority) <= 1 && t.spec.deadline !== undefined && now + (window - away) + t.spec.estimatedMs > t.spec.deadline;
        if (urgent && !t.attempts.some((a) => a.stillLive)) {
          this.log.warn(
            { task: t.id, node: n.id, attempt: r.attempt },
            "deadline cannot wait for the disconnected node; starting another attempt, the first to finish wins",
          );
          this.attempts.moveAttempt(n.id, t.id, r.attempt, {
            reason: `node ${n.id} disconnected and waiting would miss the deadline`,
            then: { type: "requeue-keep-live" },
            cancelOnAgent: false,
          });
        }
      }
    }
  }

  /** Moves every attempt held by a node that is gone (down, or disconnected with no window) to a new attempt. */
  nodeLost(node: NodeRecord, reason: string): void {
    const moved = this.attempts.moveAll(node.id, { reason, then: { type: "requeue" }, cancelOnAgent: false });
    if (moved > 0) this.log.warn({ node: node.id, tasks: moved }, "requeued tasks from lost node");
    this.kick();
  }

  // ── placement ────────────────────────────────────────────────────────────────────────────────────────────────

  /** Schedules one placement pass for the end of this event-loop turn; many events coalesce into one pass. */
  kick(): void {
    if (this.kickPending || this.closed) return;
    this.kickPending = true;
    this.timers.soon(() => {
      this.kickPending = false;
      this.pass();
    });
  }

  /** Attempts a node with `slots` slots may hold beyond them now (DispatcherOptions.dispatchAhead, dispatchAheadMs). */
  aheadFor(slots: number): number {
    const cap = this.opts.dispatchAhead ?? 0;
    const budget = this.opts.dispatchAheadMs ?? 0;
    if (cap === 0 || !(budget > 0)) return cap;
    if (this.meanProcessingMs === undefined) return Math.min(cap, AHEAD_BEFORE_ANY_RESULT);
    return Math.max(1, Math.min(cap, Math.floor((budget * Math.max(1, slots)) / this.meanProcessingMs)));
  }

  /** One placement pass: the pure planner decides, this applies its plan. */
  pass(): void {
    if (this.closed) return;
    this.split.tick();
    if (this.queue.size === 0) return;
    this.passes += 1;
    const now = this.clock.wall();
    const plan = planPass(
      this.queue,
      fleetSnapshot(
        this.nodes,
        (id) => this.sessions.has(id),
        now,
        (n) => this.aheadFor(n.maxConcurrent),
      ),
      {
        healthThreshold: this.opts.healthThreshold,
        maxScan: this.opts.maxScan ?? 1000,
      },
    );
    this.apply(plan, now);
  }

  private apply(plan: Plan, now: number): void {
    const later: { session: AgentSession; taskId: string; attempt: number }[] = [];
    for (const p of plan.placements) this.dispatch(p.taskId, p.nodeId, p.clusterId, p.reason, now, later);
    for (const p of plan.preemptions) {
      for (const victim of p.victims) {
        const v = this.tasks.reader.get(victim);
        if (v)
          this.attempts.moveAttempt(p.nodeId, victim, v.attempt, {
            reason: `preempted by CRITICAL task ${p.taskId}`,
            then: { type: "preempt", by: p.taskId },
            cancelOnAgent: true,
          });
      }
      this.dispatch(p.taskId, p.nodeId, p.clusterId, p.reason, now, later);
    }
    if (later.length > 0) {
      // The attempts are durable before their agents hear of them, so a coordinator restart can never hand the same
      // attempt out twice (which would run a task twice). All dispatches of a pass share one commit.
      this.d.durable().then(
        () => {
          for (const x of later) {
            const t = this.tasks.reader.get(x.taskId);
            if (t && t.attempt === x.attempt && t.state === "dispatched") x.session.send({ type: "dispatch", task: t, attempt: x.attempt });
          }
        },
        (err) => this.log.error({ err, tasks: later.length }, "could not persist dispatches; they are retried after the ack timeout"),
      );
    }
    // Look again when the next retry backoff ends, or when a CLOUD_FALLBACK task's wait should be over.
    let wake = this.queue.nextNotBefore(now) ?? Infinity;
    for (const w of plan.waits) wake = Math.min(wake, w.recheckAt + 1);
    this.wakeUpAt(wake);
  }

  private dispatch(
    taskId: string,
    nodeId: string,
    clusterId: string,
    reason: string,
    now: number,
    later: { session: AgentSession; taskId: string; attempt: number }[],
  ): void {
    const session = this.sessions.get(nodeId);
    const queued = this.tasks.reader.get(taskId);
    if (!session || !queued || queued.state !== "queued") return;
    // Decided before the attempt is written: the first dispatch of a task whose submission is not committed yet
    // joins that commit, and may leave at once (a crash before it leaves no trace of the task at all).
    const withItsSubmission = this.tasks.insertPending(taskId);
    const task = this.tasks.dispatched(taskId, nodeId, clusterId, reason);
    this.attempts.reserve(task, nodeId, now);
    this.log.debug({ task: taskId, attempt: task.attempt, node: nodeId, reason }, "dispatching");
    if (withItsSubmission) session.send({ type: "dispatch", task, attempt: task.attempt });
    else later.push({ session, taskId, attempt: task.attempt });
    this.due.set(ackKey(taskId), now + this.opts.dispatchAckTimeoutMs, () => this.ackTimedOut(taskId, task.attempt, nodeId));
  }

  private ackTimedOut(taskId: string, attempt: number, nodeId: string): void {
    const t = this.tasks.reader.get(taskId);
    if (!t || t.state !== "dispatched" || t.attempt !== attempt) return;
    this.log.warn({ task: taskId, attempt, node: nodeId }, "agent did not accept the dispatch in time; requeuing");
    this.attempts.moveAttempt(nodeId, taskId, attempt, {
      reason: `node ${nodeId} did not accept attempt ${attempt} within ${this.opts.dispatchAckTimeoutMs} ms`,
      then: { type: "requeue" },
      cancelOnAgent: true,
    });
  }

  private wakeUpAt(at: number): void {
    if (at === Infinity || at >= this.wakeAt) return;
    this.wakeAt = at;
    this.due.set(WAKE_KEY, at, () => {
      this.wakeAt = Infinity;
      this.kick();
    });
  }

  // ── deadlines ────────────────────────────────────────────────────────────────────────────────────────────────

  private trackDeadline(taskId: string, at: number): void {
    this.due.set(deadlineKey(taskId), at, () => this.expire(taskId));
  }

  private expire(taskId: string): void {
    const r = this.tasks.expire(taskId);
    if (!r) return;
    if (r.running) this.attempts.stopOnAgent(r.running.nodeId, taskId, r.running.attempt, "deadline passed");
    this.log.info({ task: taskId, was: r.running ? "running" : "queued" }, "task expired");
  }

  close(): void {
    this.closed = true;
    this.stopSweep?.();
    this.due.close();
    for (const s of this.sessions.values()) s.close();
  }
}

const WAKE_KEY = "wake";
const ackKey = (taskId: string): string => `ack:${taskId}`;
const deadlineKey = (taskId: string): string => `deadline:${taskId}`;
const drainKey = (nodeId: string): string => `drain:${nodeId}`;

export function toQueued(t: TaskRecord): QueuedTask {
  return {
    id: t.id,
    rank: priorityRank(t.spec.priority),
    deadline: t.spec.deadline,
    seq: t.seq,
    notBefore: t.notBefore,
    handler: t.spec.handler,
    memoryBytes: t.spec.memoryBytes,
    cpuMillis: t.spec.cpuMillis,
    mode: t.spec.mode,
    deviceId: t.spec.deviceId,
    clusterId: t.spec.clusterId,
    estimatedMs: t.spec.estimatedMs,
    preferNode: t.shard?.preferNode ?? "",
  };
}
