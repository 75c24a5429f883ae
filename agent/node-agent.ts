// What the agent does on its stream: takes dispatches and runs them in the executor, journals and reports exactly
// one result per attempt (re-sent after every registration until acknowledged), heartbeats, drains and stops.
// Opens no socket, file or timer of its own: the stream, executor, journal and clock come in as narrow ports.
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Cancel, ConnectRequest, ConnectResponse, Dispatch, Registered, ResultAck, TaskResult } from "../gen/edgeplane/v1/agent_pb.js";
import type { Logger } from "../lib/log.js";
import type { Capacity } from "./capacity.js";
import type { ConnectionHandlers } from "./connection.js";
import { execRequestFromDispatch, heartbeatMessage, refusedResult, registerMessage, shardStep, taskResultFromExec, type AttemptRef } from "./convert.js";
import type { ExecResult, Executor } from "./executor/types.js";
import { Heartbeats, systemHeartbeatClock, type HeartbeatClock } from "./heartbeat.js";
import { resultKey } from "./journal.js";
import { Lifecycle, type AgentState } from "./lifecycle.js";
import { Outbox } from "./outbox.js";

/** The coordinator's heartbeat interval when its Registered message names none, in ms. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;

/** The stream, as the agent uses it. */
export interface AgentLink {
  /** Sends on the open stream; false when there is none. */
  send(m: ConnectRequest): boolean;
  /** Half-closes the stream and stops reconnecting. */
  stop(): Promise<void>;
}

/** The result journal, as the agent uses it (journal.ts). */
export interface AgentJournal {
  appendAll(rs: readonly TaskResult[]): void;
  ack(taskId: string, attempt: number): boolean;
  close(): Promise<void>;
}

export interface NodeAgentDeps {
  nodeId: string;
  clusterId: string;
  tier: "edge" | "cloud";
  labels: Record<string, string>;
  agentVersion: string;
  executor: Pick<Executor, "size" | "handlers" | "distributable" | "run" | "close">;
  journal: AgentJournal;
  link: AgentLink;
  /** Measures capacity: at each registration and heartbeat tick only. */
  sampler: { sample(): Capacity };
  /** The devices served now. */
  devices(): readonly string[];
  /** Results journaled before this start and not yet acknowledged, oldest first: delivered after registering. */
  recovered: readonly TaskResult[];
  /** Tells the coordinator, outside the stream, to stop placing work here (best effort) before a drain waits. */
  announceDrain(): Promise<void>;
  log: Logger;
  /** Default: performance.now() and setInterval. */
  heartbeatClock?: HeartbeatClock;
  /** Wall clock for the times on refused results. Default Date.now. */
  now?: () => number;
  /** End-of-turn scheduling for the outbox. Default setImmediate. */
  defer?: (fn: () => void) => void;
}

interface Running {
  taskId: string;
  attempt: number;
  controller: AbortController;
  done: Promise<void>;
}

export class NodeAgent implements ConnectionHandlers {
  private readonly lifecycle = new Lifecycle();
  private readonly running = new Map<string, Running>();
  /** Results journaled but not yet acknowledged by the coordinator; (re)sent after every registration. */
  private readonly pending = new Map<string, TaskResult>();
  private readonly outbox: Outbox;
  private readonly heartbeats: Heartbeats;
  private readonly log: Logger;
  private readonly now: () => number;
  private registerCapacity: Capacity | undefined;
  /** The devices changed since the last beat or registration: the next beat carries them. */
  private devicesChanged = false;
  private stopping: Promise<void> | undefined;
  /** stop() during a drain cuts the grace short. */
  private readonly hurry = new AbortController();

  constructor(private readonly d: NodeAgentDeps) {
    this.log = d.log;
    this.now = d.now ?? Date.now;
    for (const r of d.recovered) this.pending.set(resultKey(r.taskId, r.attempt), r);
    this.outbox = new Outbox({
      send: (m) => d.link.send(m),
      defer: d.defer,
      // The turn's results reach the journal in one write, just before they are sent.
      journal: (results) => {
        try {
          d.journal.appendAll(results);
        } catch (err) {
          // Still deliverable while this process lives; only a restart would lose them.
          this.log.error({ err: (err as Error).message, results: results.length }, "could not journal results");
        }
      },
    });
    this.heartbeats = new Heartbeats({
      clock: d.heartbeatClock ?? systemHeartbeatClock,
      sample: () => d.sampler.sample(),
      send: (beat) => {
        // Whatever this turn accepted or finished goes first: a beat must not list work the coordinator has not heard of.
        this.outbox.flush();
        const changed = this.devicesChanged ? d.devices() : undefined;
        const sent = d.link.send(heartbeatMessage(beat, this.runningList(), changed));
        if (sent) this.devicesChanged = false;
        return sent;
      },
    });
  }

  get state(): AgentState {
    return this.lifecycle.state;
  }

  /** Attempts running now. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Results not yet acknowledged. */
  get pendingCount(): number {
    return this.pending.size;
  }

  // ── the stream ──────────────────────────────────────────────────────────────

  register(): ConnectRequest {
    const cap = this.d.sampler.sample();
    this.registerCapacity = cap;
    // The register message carries the current list.
    this.devicesChanged = false;
    return registerMessage(
      {
        nodeId: this.d.nodeId,
        clusterId: this.d.clusterId,
        tier: this.d.tier,
        labels: this.d.labels,
        deviceIds: this.d.devices(),
        handlers: this.d.executor.handlers(),
        distributable: this.d.executor.distributable(),
        maxConcurrentTasks: this.d.executor.size,
        agentVersion: this.d.agentVersion,
        running: this.runningList(),
        draining: this.lifecycle.state === "draining",
      },
      cap,
    );
  }

  onRegistered(r: Registered): void {
    const intervalMs = r.heartbeatInterval ? durationMs(r.heartbeatInterval) : DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.log.info({ session: r.sessionId, heartbeatIntervalMs: intervalMs, redelivering: this.pending.size }, "registered with coordinator");
    if (this.lifecycle.state === "starting") this.lifecycle.to("running");
    this.heartbeats.start(intervalMs, this.registerCapacity ?? this.d.sampler.sample());
    for (const res of this.pending.values()) this.outbox.result(res);
  }

  onMessage(m: ConnectResponse): void {
    if (this.lifecycle.state === "stopped") return;
    switch (m.msg.case) {
      case "dispatch":
        this.onDispatch(m.msg.value);
        break;
      case "cancel":
        this.onCancel(m.msg.value);
        break;
      case "resultAck":
        this.onResultAck(m.msg.value);
        break;
      case "batch": {
        // In the order the coordinator documents: result acks, dispatches, then cancels (a cancel sent right after
        // its dispatch still stops it).
        const b = m.msg.value;
        for (const a of b.resultAcks) this.onResultAck(a);
        for (const x of b.dispatches) this.onDispatch(x);
        for (const c of b.cancels) this.onCancel(c);
        break;
      }
      case "drain":
        this.log.info({ graceMs: m.msg.value.grace ? durationMs(m.msg.value.grace) : undefined }, "coordinator asked this node to drain");
        if (this.lifecycle.state === "running") this.lifecycle.to("draining");
        break;
      case "heartbeatAck":
        this.heartbeats.ack(m.msg.value.sequence);
        break;
      case "registered": // handled by the connection (onRegistered)
      case "certificate": // identity renewal: handled by the connection (agent/identity/)
      case undefined:
        break;
      default: {
        const never: never = m.msg;
        this.log.warn({ msg: never }, "unknown coordinator message");
      }
    }
  }

  onClosed(reason: string): void {
    this.heartbeats.stop();
    this.log.warn({ reason, running: this.running.size }, "lost the coordinator; running tasks continue");
  }

  /** The devices served changed: the next heartbeat (as soon as none is in flight) says so. */
  devicesUpdated(): void {
    this.devicesChanged = true;
    this.heartbeats.request();
  }

  // ── work ────────────────────────────────────────────────────────────────────

  private onDispatch(d: Dispatch): void {
    const k = resultKey(d.taskId, d.attempt);
    if (this.running.has(k)) return; // a duplicate dispatch of an attempt running here
    const done = this.pending.get(k);
    if (done) {
      // Already ran here: the one result goes out again instead of a second run.
      this.outbox.result(done);
      return;
    }
    if (this.lifecycle.state !== "running") {
      this.deliver(refusedResult(d, `node ${this.d.nodeId} is ${this.lifecycle.state}`, this.now()));
      return;
    }
    this.outbox.accept(d);
    const controller = new AbortController();
    const entry: Running = { taskId: d.taskId, attempt: d.attempt, controller, done: Promise.resolve() };
    this.running.set(k, entry);
    if (this.log.isLevelEnabled("debug")) {
      const shard = d.shard
        ? { parent: d.shard.parentId, shard: `${d.shard.shardIndex + 1}/${d.shard.shardCount}`, phase: shardStep(d)?.phase, round: d.shard.round }
        : {};
      this.log.debug({ task: d.taskId, attempt: d.attempt, handler: d.handler, ...shard }, d.shard ? "running shard" : "running task");
    }
    entry.done = this.d.executor.run(execRequestFromDispatch(d), controller.signal).then((res) => this.finished(d, k, res));
  }

  private finished(d: Dispatch, k: string, res: ExecResult): void {
    this.running.delete(k);
    if (this.log.isLevelEnabled("debug")) {
      this.log.debug(
        {
          task: d.taskId,
          attempt: d.attempt,
          handler: d.handler,
          outcome: res.type,
          processingMs: res.processingMs,
          peakMemoryBytes: res.peakMemoryBytes,
          ...(res.type === "failed" ? { error: res.error } : {}),
        },
        "task finished",
      );
    }
    // No early heartbeat: the result itself tells the coordinator the slot is free.
    this.deliver(taskResultFromExec(d.taskId, d.attempt, res));
  }

  private onCancel(c: Cancel): void {
    const r = this.running.get(resultKey(c.taskId, c.attempt));
    if (!r) return;
    this.log.info({ task: r.taskId, attempt: r.attempt, reason: c.reason }, "cancelling task");
    r.controller.abort(new Error(c.reason || "cancelled by coordinator"));
  }

  private onResultAck(a: ResultAck): void {
    this.pending.delete(resultKey(a.taskId, a.attempt));
    this.d.journal.ack(a.taskId, a.attempt);
  }

  /** Sends a result with this turn's batch, journaled with the turn's others just before (one write; flushed in the background). */
  private deliver(r: TaskResult): void {
    this.pending.set(resultKey(r.taskId, r.attempt), r);
    this.outbox.result(r, { journal: true });
  }

  private runningList(): AttemptRef[] {
    const out: AttemptRef[] = [];
    for (const r of this.running.values()) out.push({ taskId: r.taskId, attempt: r.attempt });
    for (const r of this.pending.values()) out.push({ taskId: r.taskId, attempt: r.attempt });
    return out;
  }

  // ── shutdown ────────────────────────────────────────────────────────────────

  /** Takes no new work, lets running attempts finish (up to graceMs), delivers their results, then stops. */
  drain(graceMs: number): Promise<void> {
    return this.shutdown(graceMs);
  }

  /** Stops at once: running attempts are cancelled and reported as such while the stream is up. */
  stop(): Promise<void> {
    this.hurry.abort();
    return this.shutdown(undefined);
  }

  private shutdown(graceMs: number | undefined): Promise<void> {
    this.stopping ??= (async () => {
      if (this.lifecycle.state !== "draining") this.lifecycle.to("draining");
      if (graceMs !== undefined && this.running.size > 0) {
        // Tell the coordinator first so no new work arrives while we finish.
        await this.d.announceDrain();
        this.log.info({ running: this.running.size, graceMs }, "draining: waiting for running tasks");
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all([...this.running.values()].map((r) => r.done)),
          new Promise((r) => (timer = setTimeout(r, graceMs))),
          new Promise((r) => this.hurry.signal.addEventListener("abort", r, { once: true })),
        ]);
        clearTimeout(timer);
      }
      for (const r of this.running.values()) r.controller.abort(new Error(`node ${this.d.nodeId} shutting down`));
      await Promise.all([...this.running.values()].map((r) => r.done));
      // The last results out on the open stream before the half-close; acks arriving meanwhile still reach the journal.
      this.outbox.flush();
      this.heartbeats.stop();
      await this.d.link.stop();
      await this.d.executor.close();
      await this.d.journal.close();
      this.lifecycle.to("stopped");
      if (this.pending.size > 0)
        this.log.warn(
          { results: this.pending.size },
          "stopped with results the coordinator has not acknowledged; they are journaled and go out at the next start",
        );
      this.log.info("agent stopped");
    })();
    return this.stopping;
  }
}
