// Turns queued tasks into running attempts: mirrors queued tasks into the scheduler's queue, runs placement passes
// on events (never on a polling loop), sends dispatches and cancels to agent sessions, and applies what agents report.
// Owns the timers of the task lifecycle (backoff, deadlines, dispatch acks); never decides transitions itself.
import type { Logger } from "../../lib/log.js";
import { MinHeap } from "../../lib/min-heap.js";
import { reservationKey, type Clock, type NodeRecord, type NodeRegistry } from "../nodes/registry.js";
import { planPlacements, type ClusterView, type ExpectedRelease, type NodeView } from "../scheduler/place.js";
import { planPreemption, type RunningAttempt } from "../scheduler/preempt.js";
import { TaskQueue, type QueuedTask } from "../scheduler/queue.js";
import type { AttemptReport, TaskManager } from "../tasks/task-manager.js";
import { priorityRank, type TaskRecord } from "../tasks/types.js";
import { isSplitTask, ShardDriver } from "../distributed/driver.js";
import type { SplitPlanOptions } from "../distributed/plan.js";
import type { AgentSession } from "./session.js";

export interface DispatcherOptions {
  healthThreshold: number;
  dispatchAckTimeoutMs: number;
  /** How long a disconnected node keeps its tasks before they move (0 = at once). */
  disconnectWindowMs: number;
  /** Shard sizing for DISTRIBUTED / HYBRID tasks (distributed/plan.ts has the defaults). */
  split?: Partial<Omit<SplitPlanOptions, "healthThreshold">>;
}

interface Timer { at: number; taskId: string }

const MAX_TIMER_MS = 2 ** 31 - 1;

export class Dispatcher {
  readonly queue = new TaskQueue();
  private readonly sessions = new Map<string, AgentSession>();
  private readonly ackTimers = new Map<string, NodeJS.Timeout>();
  private readonly deadlines = new MinHeap<Timer>((a, b) => a.at < b.at);
  private deadlineTimer: NodeJS.Timeout | undefined;
  private deadlineTimerAt = Infinity;
  private backoffTimer: NodeJS.Timeout | undefined;
  private backoffTimerAt = Infinity;
  private kickPending = false;
  private closed = false;
  /** Placement passes run, for status and tests. */
  passes = 0;
  /** Splits DISTRIBUTED / HYBRID tasks into shard tasks, which this dispatcher then places like any task. */
  readonly split: ShardDriver;

  constructor(
    private readonly tasks: TaskManager,
    private readonly nodes: NodeRegistry,
    private readonly clock: Clock,
    private readonly opts: DispatcherOptions,
    private readonly log: Logger,
    private readonly flush: () => Promise<void> = () => Promise.resolve(),
  ) {
    tasks.onChange((t, prev) => this.onTaskChange(t, prev));
    this.split = new ShardDriver({
      tasks,
      cancel: (id, reason) => void this.cancel(id, reason),
      snapshot: () => ({ nodes: this.nodeViews(), clusters: this.clusterViews() }),
      now: () => clock.wall(),
      // A child of the dispatcher's logger, which already binds `component`: a second `component` would repeat the key.
      log: log.child({ part: "split" }),
      options: { ...opts.split, healthThreshold: opts.healthThreshold },
    });
  }

  /** Loads active tasks after a restart: queued ones go back in the queue. */
  restore(active: readonly TaskRecord[]): void {
    this.split.restore(active);
    for (const t of active) {
      if (t.state === "queued") {
        this.onTaskChange(t, undefined);
        continue;
      }
      if (t.spec.deadline !== undefined) this.trackDeadline(t.id, t.spec.deadline);
      if (t.assignedNode) {
        this.nodes.restoreAssignment(t.assignedNode, t.assignedCluster, { taskId: t.id, attempt: t.attempt, cpuMillis: t.spec.cpuMillis, memoryBytes: t.spec.memoryBytes });
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
    if (prev === "dispatched" && t.state !== "dispatched") this.clearAck(t.id);
  }

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

  /**
   * Per-task decisions while nodes are disconnected (called by main.ts's sweep): a task whose own disconnect
   * window has passed moves now; a CRITICAL or HIGH task whose deadline would be missed by waiting out the
   * window moves at once, its original attempt kept live so that the first terminal result wins.
   */
  checkDisconnected(): void {
    const mono = this.clock.mono();
    const now = this.clock.wall();
    for (const n of this.nodes.listNodes()) {
      if (n.state !== "disconnected") continue;
      const away = mono - n.disconnectedAtMono;
      for (const r of [...n.reservations.values()]) {
        const t = this.tasks.reader.get(r.taskId);
        if (!t || t.attempt !== r.attempt || (t.state !== "dispatched" && t.state !== "running")) continue;
        const window = t.spec.disconnectWindowMs ?? this.opts.disconnectWindowMs;
        if (away >= window) {
          this.nodes.release(n.id, r.taskId, r.attempt);
          this.tasks.requeue(t.id, `node ${n.id} disconnected for more than the task's window of ${window} ms`, false);
          continue;
        }
        const urgent = priorityRank(t.spec.priority) <= 1 && t.spec.deadline !== undefined && now + (window - away) + t.spec.estimatedMs > t.spec.deadline;
        if (urgent && !t.attempts.some((a) => a.stillLive)) {
          this.nodes.release(n.id, r.taskId, r.attempt);
          this.log.warn({ task: t.id, node: n.id, attempt: r.attempt }, "deadline cannot wait for the disconnected node; starting another attempt, the first to finish wins");
          this.tasks.requeue(t.id, `node ${n.id} disconnected and waiting would miss the deadline`, false, undefined, 1, true);
        }
      }
    }
  }

  /** Moves every attempt held by a node that is gone (down, or disconnected with no window) to a new attempt. */
  nodeLost(node: NodeRecord, reason: string): void {
    for (const r of [...node.reservations.values()]) {
      this.nodes.release(node.id, r.taskId, r.attempt);
      const t = this.tasks.reader.get(r.taskId);
      if (t && t.attempt === r.attempt && (t.state === "dispatched" || t.state === "running")) {
        this.log.warn({ task: t.id, attempt: r.attempt, node: node.id }, "requeuing task from lost node");
        this.tasks.requeue(t.id, reason, false);
      }
    }
    this.kick();
  }

  /**
   * The agent (re-)registered listing what it still runs. Attempts it runs that are still current stay;
   * superseded ones are cancelled on the agent; current attempts it no longer knows are requeued.
   */
  reconcile(node: NodeRecord, running: readonly { taskId: string; attempt: number }[]): void {
    const reported = new Set(running.map((r) => reservationKey(r.taskId, r.attempt)));
    for (const r of running) {
      const t = this.tasks.reader.get(r.taskId);
      const current = t && t.attempt === r.attempt && t.assignedNode === node.id && (t.state === "dispatched" || t.state === "running");
      if (current) {
        if (!node.reservations.has(reservationKey(r.taskId, r.attempt))) {
          this.nodes.reserve(node.id, { taskId: t.id, attempt: t.attempt, cpuMillis: t.spec.cpuMillis, memoryBytes: t.spec.memoryBytes });
        }
      } else if (!t || t.state !== "succeeded" || t.attempt !== r.attempt) {
        // Superseded or finished elsewhere: the agent must not keep burning capacity on it.
        this.sessions.get(node.id)?.send({ type: "cancel", taskId: r.taskId, attempt: r.attempt, reason: "attempt superseded" });
      }
    }
    for (const r of [...node.reservations.values()]) {
      if (!reported.has(reservationKey(r.taskId, r.attempt))) {
        this.nodes.release(node.id, r.taskId, r.attempt);
        const t = this.tasks.reader.get(r.taskId);
        if (t && t.attempt === r.attempt && (t.state === "dispatched" || t.state === "running")) {
          this.tasks.requeue(t.id, `node ${node.id} restarted without attempt ${r.attempt}`, false);
        }
      }
    }
  }

  accepted(nodeId: string, taskId: string, attempt: number): void {
    const v = this.tasks.accepted(taskId, attempt);
    if (v.type === "stale") this.log.debug({ node: nodeId, task: taskId, attempt, reason: v.reason }, "ignoring stale accept");
  }

  /**
   * An agent's result for one attempt; the reservation is released whatever the verdict. Once the outcome is
   * durable the agent gets an ack and drops the result from its journal (a stale result is acked too: the
   * coordinator has decided about it for good).
   */
  result(nodeId: string, report: AttemptReport, session: AgentSession): void {
    this.nodes.release(nodeId, report.taskId, report.attempt);
    const v = this.tasks.report(report);
    if (v.type === "stale") {
      this.log.info({ node: nodeId, task: report.taskId, attempt: report.attempt, reason: v.reason }, "ignoring result of superseded attempt");
    } else if (v.superseded) {
      // An earlier, still-live attempt won: stop the one that was started to replace it.
      this.nodes.release(v.superseded.nodeId, report.taskId, v.superseded.attempt);
      this.sessions.get(v.superseded.nodeId)?.send({ type: "cancel", taskId: report.taskId, attempt: v.superseded.attempt, reason: `attempt ${report.attempt} finished first` });
      this.log.info({ task: report.taskId, winner: report.attempt, cancelled: v.superseded.attempt }, "first terminal result wins");
    }
    // Place the next task now, so the freed slot's dispatch shares this result's commit (one fsync, not two).
    this.pass();
    this.durable().then(
      () => session.send({ type: "result-ack", taskId: report.taskId, attempt: report.attempt }),
      (err) => this.log.error({ err, task: report.taskId }, "could not persist a result; the agent will resend it"),
    );
  }

  /** Resolves when every state change so far is durable. */
  durable(): Promise<void> {
    return this.flush();
  }

  cancel(taskId: string, reason: string): TaskRecord {
    const { task, running } = this.tasks.cancel(taskId, reason);
    if (running) this.sessions.get(running.nodeId)?.send({ type: "cancel", taskId, attempt: running.attempt, reason: reason || "cancelled by request" });
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
    if (node.state === "draining") {
      const timer = setTimeout(() => {
        const n = this.nodes.findNode(nodeId);
        if (!n || n.state !== "draining") return;
        for (const r of [...n.reservations.values()]) {
          const t = this.tasks.reader.get(r.taskId);
          this.nodes.release(nodeId, r.taskId, r.attempt);
          if (t && t.attempt === r.attempt && (t.state === "dispatched" || t.state === "running")) {
            this.sessions.get(nodeId)?.send({ type: "cancel", taskId: r.taskId, attempt: r.attempt, reason: "node drain deadline passed" });
            this.tasks.requeue(r.taskId, `node ${nodeId} drain deadline passed; moved`, false);
            this.log.warn({ task: r.taskId, node: nodeId }, "moved a task off a draining node after its grace");
          }
        }
        this.kick();
      }, Math.min(MAX_TIMER_MS, graceMs));
      timer.unref();
    }
    return node;
  }

  /** Schedules one placement pass for the end of this event-loop turn; many events coalesce into one pass. */
  kick(): void {
    if (this.kickPending || this.closed) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      this.pass();
    });
  }

  /** One placement pass: the pure planner decides, this applies its plan. */
  pass(): void {
    if (this.closed) return;
    this.split.tick();
    if (this.queue.size === 0) return;
    this.passes += 1;
    const now = this.clock.wall();
    const views = this.nodeViews(now);
    let wakeAt = Infinity;
    if (views.length > 0) {
      const clusters = this.clusterViews();
      const plan = planPlacements(this.queue, views, clusters, now, {
        healthThreshold: this.opts.healthThreshold, maxScan: 1000, deviceCluster: (d) => this.nodes.nodeForDevice(d)?.clusterId,
        // A CLOUD_FALLBACK task waiting for an edge node expected to free up: look again just after it should have.
        onWait: (_id, recheckAt) => { wakeAt = Math.min(wakeAt, recheckAt + 1); },
      });
      for (const p of plan) this.send(p.taskId, p.nodeId, p.clusterId, p.reason);
      this.preemptFor(now, clusters);
    }
    this.armBackoffTimer(now, wakeAt);
  }

  /**
   * A CRITICAL task still queued after the pass fits nowhere: move the lowest-priority attempts off one node
   * (BACKGROUND first, then LOW) and start it there in this same pass. The moved tasks go back to the queue
   * without using a retry.
   */
  private preemptFor(now: number, clusters: ClusterView[]): void {
    const healthy = new Set(clusters.filter((c) => c.health >= this.opts.healthThreshold).map((c) => c.id));
    const critical: QueuedTask[] = [];
    for (const t of this.queue.ordered()) {
      if (t.rank !== 0) break;
      if (t.notBefore <= now) critical.push(t);
    }
    for (const t of critical) {
      const views = this.nodeViews();
      const running = new Map<string, RunningAttempt[]>();
      for (const n of this.nodes.listNodes()) {
        running.set(n.id, [...n.reservations.values()].flatMap((r) => {
          const rec = this.tasks.reader.get(r.taskId);
          if (!rec || rec.attempt !== r.attempt) return [];
          return [{ taskId: r.taskId, rank: priorityRank(rec.spec.priority), cpuMillis: r.cpuMillis, memoryBytes: r.memoryBytes, dispatchedAt: rec.attempts.at(-1)?.dispatchedAt ?? 0 }];
        }));
      }
      // Preemption obeys the same limits as placement: the task's cluster, its device's cluster for LOCAL work,
      // and the cloud tier only for CLOUD_FALLBACK tasks or tasks naming a cloud cluster.
      const deviceCluster = t.deviceId ? this.nodes.nodeForDevice(t.deviceId)?.clusterId : undefined;
      const allowed = views.filter((n) =>
        (t.mode !== "local" || !deviceCluster || n.clusterId === deviceCluster) &&
        (t.mode === "cloud_fallback" || t.clusterId !== "" || n.tier === "edge"));
      const plan = planPreemption(t, allowed, running, (c) => healthy.has(c));
      if (!plan) continue;
      for (const victimId of plan.victims) {
        const v = this.tasks.reader.get(victimId)!;
        const attempt = v.attempt;
        this.nodes.release(plan.nodeId, victimId, attempt);
        this.sessions.get(plan.nodeId)?.send({ type: "cancel", taskId: victimId, attempt, reason: `preempted by CRITICAL task ${t.id}` });
        this.tasks.preempt(victimId, t.id);
        this.log.warn({ task: victimId, attempt, node: plan.nodeId, by: t.id }, "preempted for a CRITICAL task");
      }
      this.queue.remove(t.id);
      this.send(t.id, plan.nodeId, plan.clusterId, `preempted ${plan.victims.length} lower-priority attempt(s) on ${plan.nodeId}`);
    }
  }

  private clusterViews(): ClusterView[] {
    return this.nodes.listClusters().map((c) => ({ id: c.id, tier: c.tier, health: this.nodes.health(c.id) }));
  }

  private nodeViews(now = this.clock.wall()): NodeView[] {
    const views: NodeView[] = [];
    const releasesOf = (n: NodeRecord): ExpectedRelease[] => this.expectedReleases(n, now);
    for (const n of this.nodes.listNodes()) {
      if (n.state !== "ready" || !this.sessions.has(n.id)) continue;
      const free = this.nodes.free(n);
      let releases: ExpectedRelease[] | undefined;
      views.push({
        id: n.id, clusterId: n.clusterId, tier: n.tier, handlers: n.handlers, deviceIds: n.deviceIds,
        freeCpuMillis: free.cpuMillis, freeMemoryBytes: free.memoryBytes,
        totalCpuMillis: n.totalCpuMillis, totalMemoryBytes: n.totalMemoryBytes,
        inFlight: n.reservations.size, maxConcurrent: n.maxConcurrent,
        // Only a CLOUD_FALLBACK task with a deadline and no edge room asks: computed then, once per pass and node.
        get expectedReleases() {
          return (releases ??= releasesOf(n));
        },
      });
    }
    return views;
  }

  /**
   * When the attempts on a node that gave an estimatedComputeTime should end (start + estimate). Estimates are
   * rough: one that has run past its estimate is still expected any moment for a grace of a quarter of the
   * estimate (at least 200 ms), then no longer.
   */
  private expectedReleases(n: NodeRecord, now: number): ExpectedRelease[] {
    const out: ExpectedRelease[] = [];
    for (const r of n.reservations.values()) {
      const t = this.tasks.reader.get(r.taskId);
      if (!t || t.attempt !== r.attempt || t.spec.estimatedMs <= 0) continue;
      const a = t.attempts.at(-1);
      if (!a || a.attempt !== r.attempt) continue;
      const end = (a.startedAt ?? a.dispatchedAt) + t.spec.estimatedMs;
      const until = end + Math.max(200, t.spec.estimatedMs / 4);
      if (until >= now) out.push({ at: Math.max(end, now), until, cpuMillis: r.cpuMillis, memoryBytes: r.memoryBytes });
    }
    return out;
  }

  private send(taskId: string, nodeId: string, clusterId: string, reason: string): void {
    const session = this.sessions.get(nodeId);
    const t0 = this.tasks.reader.get(taskId);
    if (!t0 || t0.state !== "queued") return;
    if (!session) {
      // The planner only sees nodes with sessions, so this is a race with a close in the same turn.
      this.queue.push(toQueued(t0));
      return;
    }
    const task = this.tasks.dispatched(taskId, nodeId, clusterId, reason);
    this.nodes.reserve(nodeId, { taskId, attempt: task.attempt, cpuMillis: task.spec.cpuMillis, memoryBytes: task.spec.memoryBytes });
    this.log.debug({ task: taskId, attempt: task.attempt, node: nodeId, reason }, "dispatching");
    // The attempt is durable before the agent hears of it, so a coordinator restart can never hand the same
    // attempt number out twice (which would run a task twice). All dispatches of a pass share one commit.
    this.durable().then(
      () => {
        const t = this.tasks.reader.get(taskId);
        if (t && t.attempt === task.attempt && t.state === "dispatched") session.send({ type: "dispatch", task: t, attempt: task.attempt });
      },
      (err) => this.log.error({ err, task: taskId }, "could not persist a dispatch; it will be retried after the ack timeout"),
    );
    const timer = setTimeout(() => {
      this.ackTimers.delete(taskId);
      const t = this.tasks.reader.get(taskId);
      if (t && t.state === "dispatched" && t.attempt === task.attempt) {
        this.log.warn({ task: taskId, attempt: task.attempt, node: nodeId }, "agent did not accept the dispatch in time; requeuing");
        this.nodes.release(nodeId, taskId, task.attempt);
        this.sessions.get(nodeId)?.send({ type: "cancel", taskId, attempt: task.attempt, reason: "not accepted in time" });
        this.tasks.requeue(taskId, `node ${nodeId} did not accept attempt ${task.attempt} within ${this.opts.dispatchAckTimeoutMs} ms`, false);
      }
    }, this.opts.dispatchAckTimeoutMs);
    timer.unref();
    this.ackTimers.set(taskId, timer);
  }

  private clearAck(taskId: string): void {
    const t = this.ackTimers.get(taskId);
    if (t) {
      clearTimeout(t);
      this.ackTimers.delete(taskId);
    }
  }

  /** Plans again when the next retry backoff ends, or at `alsoAt` (epoch ms) if that is sooner. */
  private armBackoffTimer(now: number, alsoAt = Infinity): void {
    const next = Math.min(this.queue.nextNotBefore(now) ?? Infinity, alsoAt);
    if (next === Infinity || next >= this.backoffTimerAt) return;
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimerAt = next;
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.backoffTimerAt = Infinity;
      this.kick();
    }, Math.min(MAX_TIMER_MS, Math.max(0, next - now)));
    this.backoffTimer.unref();
  }

  private trackDeadline(taskId: string, at: number): void {
    this.deadlines.push({ at, taskId });
    this.armDeadlineTimer();
  }

  private armDeadlineTimer(): void {
    const next = this.deadlines.peek();
    if (!next || next.at >= this.deadlineTimerAt) return;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimerAt = next.at;
    // setTimeout holds at most 2^31-1 ms (~24.8 days); a later deadline re-arms when this one fires.
    this.deadlineTimer = setTimeout(() => this.expireDue(), Math.min(MAX_TIMER_MS, Math.max(0, next.at - this.clock.wall())));
    this.deadlineTimer.unref();
  }

  private expireDue(): void {
    this.deadlineTimer = undefined;
    this.deadlineTimerAt = Infinity;
    const now = this.clock.wall();
    while (this.deadlines.size > 0 && this.deadlines.peek()!.at <= now) {
      const { taskId } = this.deadlines.pop()!;
      const r = this.tasks.expire(taskId);
      if (r?.running) {
        this.sessions.get(r.running.nodeId)?.send({ type: "cancel", taskId, attempt: r.running.attempt, reason: "deadline passed" });
      }
      if (r) this.log.info({ task: taskId, was: r.running ? "running" : "queued" }, "task expired");
    }
    this.armDeadlineTimer();
  }

  close(): void {
    this.closed = true;
    for (const t of this.ackTimers.values()) clearTimeout(t);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    for (const s of this.sessions.values()) s.close();
  }
}

export function toQueued(t: TaskRecord): QueuedTask {
  return {
    id: t.id, rank: priorityRank(t.spec.priority), deadline: t.spec.deadline, seq: t.seq, notBefore: t.notBefore,
    handler: t.spec.handler, memoryBytes: t.spec.memoryBytes, cpuMillis: t.spec.cpuMillis, mode: t.spec.mode,
    deviceId: t.spec.deviceId, clusterId: t.spec.clusterId, estimatedMs: t.spec.estimatedMs,
    preferNode: t.shard?.preferNode ?? "",
  };
}
