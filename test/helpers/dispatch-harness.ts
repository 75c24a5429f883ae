// An in-process harness for the dispatcher, in the style of Nomad's scheduler Harness: a real TaskManager, registry
// and Dispatcher over a fake clock, a store whose commits the test releases, and agent sessions that record what the
// coordinator sends them. No sockets, no real timers.
import { AgentSession, type OutboundMessage } from "../../coordinator/dispatch/session.js";
import { Dispatcher, type DispatcherOptions } from "../../coordinator/dispatch/dispatcher.js";
import { NodeRegistry, type NodeRecord, type RegisterInfo } from "../../coordinator/nodes/registry.js";
import { MemoryTaskStore } from "../../coordinator/store/memory-store.js";
import { TaskManager, type AttemptReport } from "../../coordinator/tasks/task-manager.js";
import type { TaskRecord, TaskSpec } from "../../coordinator/tasks/types.js";
import { silentLogger } from "../../lib/log.js";
import { spec as baseSpec } from "./task-fixtures.js";
import { FakeClock } from "./fake-clock.js";

const MB = 1024 * 1024;

/**
 * A memory store whose writes become durable only when the test says (`commit()`), or at once in `auto` mode.
 * Like the SQLite store, a task's insert stays pending (joinable by later writes) until a commit takes it.
 */
export class ControlledStore extends MemoryTaskStore {
  auto = true;
  commits = 0;
  private waiters: (() => void)[] = [];
  private uncommitted = new Set<string>();
  private dirty = false;

  override insert(tasks: readonly TaskRecord[]): void {
    super.insert(tasks);
    for (const t of tasks) this.uncommitted.add(t.id);
    this.dirty = true;
  }

  override put(task: TaskRecord): void {
    super.put(task);
    this.dirty = true;
  }

  pendingInsert(id: string): boolean {
    return this.uncommitted.has(id);
  }

  override flush(): Promise<void> {
    if (!this.dirty && this.waiters.length === 0) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.auto) queueMicrotask(() => this.commit());
    return p;
  }

  /** Makes every write so far durable and resolves the flushes waiting for it. */
  commit(): void {
    this.commits++;
    this.dirty = false;
    this.uncommitted.clear();
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}

/** A session that keeps a copy of everything sent on it. */
export class RecordingSession extends AgentSession {
  readonly sent: OutboundMessage[] = [];
  override send(m: OutboundMessage): boolean {
    const ok = super.send(m);
    if (ok) this.sent.push(m);
    return ok;
  }
}

export const DEFAULT_HARNESS_OPTIONS: DispatcherOptions = {
  healthThreshold: 0.7,
  dispatchAckTimeoutMs: 10_000,
  disconnectWindowMs: 30_000,
  // Harness nodes send no heartbeats: only tests about silence set a real timeout.
  heartbeatTimeoutMs: 3_600_000,
  sweepIntervalMs: 1000,
};

/** A task spec as the harness submits it: 64 MiB, no cpu reservation (a slot only), `over` applied. */
export function spec(over: Partial<TaskSpec> = {}): TaskSpec {
  return baseSpec({ name: "", memoryBytes: 64 * MB, cpuMillis: 0, input: null, ...over });
}

export class DispatchHarness {
  readonly clock = new FakeClock();
  readonly store = new ControlledStore();
  readonly tasks: TaskManager;
  readonly nodes: NodeRegistry;
  readonly dispatcher: Dispatcher;
  readonly sessions = new Map<string, RecordingSession>();
  private sessionSeq = 0;

  constructor(options: Partial<DispatcherOptions> = {}) {
    this.tasks = new TaskManager(this.store, { now: () => this.clock.wall(), retryBaseMs: 500, retryMaxMs: 500, random: () => 1, timers: this.clock });
    this.nodes = new NodeRegistry(this.clock);
    this.dispatcher = new Dispatcher({
      tasks: this.tasks,
      nodes: this.nodes,
      clock: this.clock,
      timers: this.clock,
      log: silentLogger(),
      durable: () => this.store.flush(),
      options: { ...DEFAULT_HARNESS_OPTIONS, ...options },
    });
    this.dispatcher.start();
  }

  /** Registers a node and opens its stream, as an agent connecting would (reporting `running` as still running). */
  connect(id: string, over: Partial<RegisterInfo> = {}, running: { taskId: string; attempt: number }[] = []): RecordingSession {
    const sessionId = `s${++this.sessionSeq}`;
    const node = this.nodes.registerNode({
      nodeId: id,
      clusterId: "c1",
      tier: "edge",
      labels: {},
      deviceIds: [],
      handlers: ["stats"],
      totalCpuMillis: 2000,
      totalMemoryBytes: 1024 * MB,
      freeCpuMillis: 2000,
      freeMemoryBytes: 1024 * MB,
      maxConcurrent: 2,
      sessionId,
      address: "test",
      ...over,
    });
    const session = new RecordingSession(id, sessionId, this.clock);
    this.sessions.set(id, session);
    this.dispatcher.attach(session);
    this.dispatcher.reconcile(node, running);
    return session;
  }

  /** The node's stream closes. */
  disconnect(id: string, reason = "test closed the stream"): void {
    this.dispatcher.detach(this.sessions.get(id)!, reason);
  }

  node(id: string): NodeRecord {
    return this.nodes.getNode(id);
  }

  submit(over: Partial<TaskSpec> = {}): string {
    const [{ task }] = this.tasks.submit([{ spec: spec(over), idempotencyKey: "" }]);
    this.dispatcher.pass();
    return task.id;
  }

  task(id: string): TaskRecord {
    return this.tasks.get(id);
  }

  /** Lets coalesced work (passes, batches) and promise callbacks run, without moving the clock. */
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      this.clock.runSoon();
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Moves the clock, then settles. */
  async advance(ms: number): Promise<void> {
    this.clock.advance(ms);
    await this.settle();
  }

  sent(nodeId: string, type?: OutboundMessage["type"]): OutboundMessage[] {
    const all = this.sessions.get(nodeId)?.sent ?? [];
    return type ? all.filter((m) => m.type === type) : all;
  }

  /** Task ids dispatched to a node so far, in order. */
  dispatched(nodeId: string): string[] {
    return this.sent(nodeId, "dispatch").map((m) => (m.type === "dispatch" ? m.task.id : ""));
  }

  /** `taskId#attempt` of every cancel sent to a node. */
  cancels(nodeId: string): string[] {
    return this.sent(nodeId, "cancel").map((m) => (m.type === "cancel" ? `${m.taskId}#${m.attempt}` : ""));
  }

  /** The agent accepts the attempt it was sent. */
  accept(nodeId: string, taskId: string): void {
    this.dispatcher.fromAgent(this.sessions.get(nodeId)!, [{ taskId, attempt: this.task(taskId).attempt }], []);
  }

  /** The agent reports the attempt's result. */
  report(nodeId: string, taskId: string, over: Partial<AttemptReport> = {}): void {
    const attempt = over.attempt ?? this.task(taskId).attempt;
    this.dispatcher.fromAgent(
      this.sessions.get(nodeId)!,
      [],
      [
        {
          taskId,
          attempt,
          outcome: "succeeded",
          output: { ok: true },
          error: "",
          processingMs: 1,
          peakMemoryBytes: 1,
          startedAt: undefined,
          finishedAt: undefined,
          ...over,
        },
      ],
    );
  }
}
