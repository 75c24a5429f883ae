// The agent's behaviour on its stream (agent/node-agent.ts) with a fake stream, executor, journal and clock: what
// goes out per turn, the order a CoordinatorBatch is applied in, redelivery after registering, heartbeats that are
// not sent per task, drain and stop. No sockets, no worker threads.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConnectResponseSchema, RegisteredSchema, TaskResultSchema, type ConnectRequest, type TaskResult } from "../../gen/edgeplane/v1/agent_pb.js";
import { AttemptOutcome } from "../../gen/edgeplane/v1/types_pb.js";
import { durationFromMillis } from "../../lib/duration.js";
import { silentLogger } from "../../lib/log.js";
import type { Capacity } from "../../agent/capacity.js";
import type { ExecRequest, ExecResult } from "../../agent/executor/types.js";
import type { HeartbeatClock } from "../../agent/heartbeat.js";
import { NodeAgent } from "../../agent/node-agent.js";

const ZERO = { processingMs: 1, peakMemoryBytes: 0, startedAt: 1, finishedAt: 2 };
const CAP: Capacity = { totalCpuMillis: 2000, totalMemoryBytes: 1e9, freeCpuMillis: 1000, freeMemoryBytes: 5e8, load: 0 };

class FakeClock implements HeartbeatClock {
  t = 0;
  private ticks: { every: number; next: number; fn: () => void }[] = [];
  now(): number {
    return this.t;
  }
  every(ms: number, fn: () => void): () => void {
    const x = { every: ms, next: this.t + ms, fn };
    this.ticks.push(x);
    return () => (this.ticks = this.ticks.filter((y) => y !== x));
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (let x = this.due(end); x; x = this.due(end)) {
      this.t = x.next;
      x.next += x.every;
      x.fn();
    }
    this.t = end;
  }
  private due(end: number) {
    return this.ticks.filter((x) => x.next <= end).sort((a, b) => a.next - b.next)[0];
  }
}

/** What crossed each port, in one order. */
type Event = string;

function describeSent(m: ConnectRequest): Event {
  switch (m.msg.case) {
    case "batch":
      return `send batch accepted=[${m.msg.value.accepted.map((a) => a.taskId)}] results=[${m.msg.value.results.map((r) => `${r.taskId}:${AttemptOutcome[r.outcome]}`)}]`;
    case "heartbeat":
      return `send heartbeat ${m.msg.value.sequence} running=[${m.msg.value.running.map((r) => r.taskId)}]${m.msg.value.deviceIdsChanged ? ` devices=[${m.msg.value.deviceIds}]` : ""}`;
    default:
      return `send ${m.msg.case}`;
  }
}

function harness(opts: { recovered?: TaskResult[] } = {}) {
  const events: Event[] = [];
  const sent: ConnectRequest[] = [];
  const turn: (() => void)[] = [];
  const clock = new FakeClock();
  const runs = new Map<string, { req: ExecRequest; signal: AbortSignal; finish(r: ExecResult): void }>();
  let samples = 0;
  let up = true;
  let devices = ["d1"];
  const agent = new NodeAgent({
    nodeId: "n1",
    clusterId: "site-a",
    tier: "edge",
    labels: {},
    agentVersion: "test",
    executor: {
      size: 2,
      handlers: () => ["stats"],
      distributable: () => ["stats"],
      run: (req, signal) =>
        new Promise<ExecResult>((resolve) => {
          events.push(`run ${req.taskId}`);
          runs.set(req.taskId, { req, signal, finish: resolve });
          signal.addEventListener("abort", () => {
            events.push(`abort ${req.taskId}`);
            resolve({ type: "cancelled", reason: (signal.reason as Error).message, ...ZERO });
          });
        }),
      close: async () => void events.push("executor closed"),
    },
    journal: {
      appendAll: (rs) => {
        for (const r of rs) events.push(`journal ${r.taskId}`);
      },
      ack: (taskId) => (events.push(`journal ack ${taskId}`), true),
      close: async () => void events.push("journal closed"),
    },
    link: {
      send: (m) => {
        if (!up) return false;
        sent.push(m);
        events.push(describeSent(m));
        return true;
      },
      stop: async () => void events.push("stream stopped"),
    },
    sampler: { sample: () => (samples++, CAP) },
    devices: () => devices,
    recovered: opts.recovered ?? [],
    announceDrain: async () => void events.push("drain announced"),
    log: silentLogger(),
    heartbeatClock: clock,
    now: () => 1_700_000_000_000,
    defer: (fn) => turn.push(fn),
  });
  const endTurn = () => {
    while (turn.length > 0) turn.splice(0).forEach((fn) => fn());
  };
  const receive = (m: MessageInitShape<typeof ConnectResponseSchema>["msg"]) => agent.onMessage(create(ConnectResponseSchema, { msg: m }));
  const register = () => {
    agent.register();
    agent.onRegistered(create(RegisteredSchema, { sessionId: "s1", heartbeatInterval: durationFromMillis(1000) }));
  };
  const dispatch = (taskId: string) => ({ taskId, attempt: 1, handler: "stats" });
  return {
    agent,
    events,
    sent,
    clock,
    runs,
    endTurn,
    receive,
    register,
    dispatch,
    samples: () => samples,
    setUp: (v: boolean) => (up = v),
    setDevices: (d: string[]) => (devices = d),
    take: () => events.splice(0),
  };
}

/** Lets executor promises settle (their .then callbacks). */
const settle = () => new Promise((r) => setImmediate(r));
const result = (taskId: string) => create(TaskResultSchema, { taskId, attempt: 1, outcome: AttemptOutcome.SUCCEEDED });

describe("node agent: what goes on the stream", () => {
  it("lists unacknowledged results at registration and delivers them once per registration, in one batch", () => {
    const h = harness({ recovered: [result("t-old1"), result("t-old2")] });
    const reg = h.agent.register();
    expect(reg.msg.case === "register" && reg.msg.value.running.map((r) => r.taskId)).toEqual(["t-old1", "t-old2"]);
    expect(h.agent.state).toBe("starting");
    h.agent.onRegistered(create(RegisteredSchema, { sessionId: "s1" }));
    expect(h.agent.state).toBe("running");
    h.endTurn();
    expect(h.take()).toEqual(["send batch accepted=[] results=[t-old1:SUCCEEDED,t-old2:SUCCEEDED]"]);
    h.endTurn();
    expect(h.take()).toEqual([]);
    // One is acknowledged; the stream drops; the other goes again after the next registration.
    h.receive({ case: "resultAck", value: { taskId: "t-old1", attempt: 1 } });
    h.agent.onClosed("network");
    expect(h.agent.state).toBe("running");
    h.register();
    h.endTurn();
    expect(h.take()).toEqual(["journal ack t-old1", "send batch accepted=[] results=[t-old2:SUCCEEDED]"]);
  });

  it("accepts a turn's dispatches in one batch; journals each turn's results (one write) before sending them; results of one turn share a batch", async () => {
    const h = harness();
    h.register();
    h.endTurn();
    h.receive({ case: "batch", value: { dispatches: [h.dispatch("t-1"), h.dispatch("t-2")], cancels: [], resultAcks: [] } });
    h.receive({ case: "dispatch", value: h.dispatch("t-3") });
    expect(h.take()).toEqual(["run t-1", "run t-2", "run t-3"]);
    h.endTurn();
    expect(h.take()).toEqual(["send batch accepted=[t-1,t-2,t-3] results=[]"]);
    h.runs.get("t-1")!.finish({ type: "completed", output: { ok: true }, ...ZERO });
    h.runs.get("t-3")!.finish({ type: "failed", error: "boom", ...ZERO });
    await settle();
    // Journaled at the end of the turn, in one write with the turn's other results, right before they are sent.
    expect(h.take()).toEqual([]);
    h.endTurn();
    expect(h.take()).toEqual(["journal t-1", "journal t-3", "send batch accepted=[] results=[t-1:SUCCEEDED,t-3:FAILED]"]);
  });

  it("applies a CoordinatorBatch in order: result acks, then dispatches, then cancels (a cancel right after its dispatch stops it)", async () => {
    const h = harness({ recovered: [result("t-done")] });
    h.register();
    h.receive({ case: "dispatch", value: h.dispatch("t-run") });
    h.endTurn();
    h.take();
    h.receive({
      case: "batch",
      value: {
        dispatches: [h.dispatch("t-new")],
        cancels: [{ taskId: "t-run", attempt: 1, reason: "preempted" }],
        resultAcks: [{ taskId: "t-done", attempt: 1 }],
      },
    });
    expect(h.take()).toEqual(["journal ack t-done", "run t-new", "abort t-run"]);
    await settle();
    h.endTurn();
    expect(h.take()).toEqual(["journal t-run", "send batch accepted=[t-new] results=[t-run:CANCELLED]"]);
  });

  it("sends no heartbeat when a task finishes, and samples capacity only at registration and on heartbeat ticks", async () => {
    const h = harness();
    h.register();
    expect(h.samples()).toBe(1);
    for (let i = 0; i < 5; i++) h.receive({ case: "dispatch", value: h.dispatch(`t-${i}`) });
    for (let i = 0; i < 5; i++) h.runs.get(`t-${i}`)!.finish({ type: "completed", output: i, ...ZERO });
    await settle();
    h.endTurn();
    expect(h.sent.filter((m) => m.msg.case === "heartbeat")).toEqual([]);
    expect(h.samples()).toBe(1);
    h.clock.advance(1000);
    expect(h.sent.filter((m) => m.msg.case === "heartbeat")).toHaveLength(1);
    expect(h.samples()).toBe(2);
  });

  it("sends what the turn accepted before a heartbeat that lists it running", () => {
    const h = harness();
    h.register();
    h.endTurn();
    h.receive({ case: "dispatch", value: h.dispatch("t-9") });
    h.take();
    h.clock.advance(1000);
    expect(h.take()).toEqual(["send batch accepted=[t-9] results=[]", "send heartbeat 1 running=[t-9]"]);
  });

  it("keeps one heartbeat in flight on the stream, and sends changed devices with the next one", () => {
    const h = harness();
    h.register();
    h.clock.advance(3000);
    expect(h.take().filter((e) => e.startsWith("send heartbeat"))).toEqual(["send heartbeat 1 running=[]"]);
    h.setDevices(["d1", "d2"]);
    h.agent.devicesUpdated();
    expect(h.take()).toEqual([]);
    h.receive({ case: "heartbeatAck", value: { sequence: 1n } });
    expect(h.take()).toEqual(["send heartbeat 2 running=[] devices=[d1,d2]"]);
    h.receive({ case: "heartbeatAck", value: { sequence: 2n } });
    h.clock.advance(1000);
    expect(h.take()).toEqual(["send heartbeat 3 running=[]"]);
  });

  it("a duplicate dispatch is not run twice: a running one is ignored, a finished one gets its result again", async () => {
    const h = harness();
    h.register();
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    h.endTurn();
    expect(h.take()).toEqual(["run t-1", "send batch accepted=[t-1] results=[]"]);
    h.runs.get("t-1")!.finish({ type: "completed", output: 1, ...ZERO });
    await settle();
    h.endTurn();
    h.take();
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    h.endTurn();
    expect(h.take()).toEqual(["send batch accepted=[] results=[t-1:SUCCEEDED]"]);
  });

  it("while draining, answers a dispatch with a cancelled result and does not run it", () => {
    const h = harness();
    h.register();
    h.receive({ case: "drain", value: {} });
    expect(h.agent.state).toBe("draining");
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    h.endTurn();
    expect(h.take()).toEqual(["journal t-1", "send batch accepted=[] results=[t-1:CANCELLED]"]);
    const last = h.sent.at(-1)!.msg;
    expect(last.case === "batch" && last.value.results[0].error).toBe("node n1 is draining");
    // A re-registration tells the coordinator it is draining.
    const reg = h.agent.register();
    expect(reg.msg.case === "register" && reg.msg.value.draining).toBe(true);
  });

  it("results finished while the stream is down are journaled and delivered after the next registration", async () => {
    const h = harness();
    h.register();
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    h.endTurn();
    h.agent.onClosed("coordinator went away");
    h.setUp(false);
    h.runs.get("t-1")!.finish({ type: "completed", output: 1, ...ZERO });
    await settle();
    h.endTurn();
    h.take();
    h.setUp(true);
    const reg = h.agent.register();
    expect(reg.msg.case === "register" && reg.msg.value.running.map((r) => r.taskId)).toEqual(["t-1"]);
    h.agent.onRegistered(create(RegisteredSchema, { sessionId: "s2" }));
    h.endTurn();
    expect(h.take()).toEqual(["send batch accepted=[] results=[t-1:SUCCEEDED]"]);
  });
});

describe("node agent: drain and stop", () => {
  it("drain announces itself, waits for running attempts, sends their results, then closes stream, executor and journal", async () => {
    const h = harness();
    h.register();
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    h.endTurn();
    h.take();
    const drained = h.agent.drain(60_000);
    await settle();
    expect(h.agent.state).toBe("draining");
    expect(h.take()).toEqual(["drain announced"]);
    h.runs.get("t-1")!.finish({ type: "completed", output: 1, ...ZERO });
    await drained;
    expect(h.take()).toEqual(["journal t-1", "send batch accepted=[] results=[t-1:SUCCEEDED]", "stream stopped", "executor closed", "journal closed"]);
    expect(h.agent.state).toBe("stopped");
  });

  it("stop cancels running attempts and reports them before closing; stopping twice is one stop", async () => {
    const h = harness();
    h.register();
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    h.endTurn();
    h.take();
    const a = h.agent.stop();
    const b = h.agent.stop();
    expect(b).toBe(a);
    await a;
    expect(h.take()).toEqual([
      "abort t-1",
      "journal t-1",
      "send batch accepted=[] results=[t-1:CANCELLED]",
      "stream stopped",
      "executor closed",
      "journal closed",
    ]);
    expect(h.agent.state).toBe("stopped");
    // A message arriving after the stop is ignored.
    h.receive({ case: "dispatch", value: h.dispatch("t-2") });
    expect(h.take()).toEqual([]);
  });

  it("stop during a drain cuts the grace short", async () => {
    const h = harness();
    h.register();
    h.receive({ case: "dispatch", value: h.dispatch("t-1") });
    const drained = h.agent.drain(3_600_000);
    await settle();
    await h.agent.stop();
    await drained;
    expect(h.events).toContain("abort t-1");
    expect(h.agent.state).toBe("stopped");
  });
});
