import { describe, expect, it } from "vitest";
import { planPreemption, type PreemptionCandidate, type RunningAttempt } from "../../coordinator/scheduler/preempt.js";
import type { NodeView } from "../../coordinator/scheduler/place.js";
import type { QueuedTask } from "../../coordinator/scheduler/queue.js";
import { eligible } from "../../coordinator/scheduler/rules.js";

const MB = 1 << 20;
const task = (over: Partial<QueuedTask> = {}): QueuedTask => ({
  id: "crit",
  rank: 0,
  deadline: undefined,
  seq: 1,
  notBefore: 0,
  handler: "stats",
  memoryBytes: 64 * MB,
  cpuMillis: 100,
  mode: "local",
  deviceId: "",
  clusterId: "",
  estimatedMs: 0,
  ...over,
});
const node = (id: string, over: Partial<NodeView> = {}): NodeView => ({
  id,
  clusterId: "c",
  tier: "edge",
  handlers: new Set(["stats"]),
  deviceIds: new Set(),
  freeCpuMillis: 0,
  freeMemoryBytes: 0,
  totalCpuMillis: 2000,
  totalMemoryBytes: 1024 * MB,
  inFlight: 2,
  maxConcurrent: 2,
  ...over,
});
/** The node as a preemption candidate: its room from the view, what runs there from `running`. */
const cand = (nodes: NodeView[], running: Map<string, RunningAttempt[]>): PreemptionCandidate[] =>
  nodes.map((n) => ({ node: n, room: { freeCpu: n.freeCpuMillis, freeMem: n.freeMemoryBytes, inFlight: n.inFlight }, running: running.get(n.id) ?? [] }));
const run = (taskId: string, rank: number, dispatchedAt = 0): RunningAttempt => ({ taskId, rank, cpuMillis: 100, memoryBytes: 64 * MB, dispatchedAt });

describe("planPreemption", () => {
  it("moves a BACKGROUND attempt before a LOW one, and never NORMAL or higher", () => {
    const running = new Map([["n1", [run("low", 3), run("bg", 4)]]]);
    expect(planPreemption(task(), cand([node("n1")], running))).toEqual({ nodeId: "n1", victims: ["bg"] });
    const normalOnly = new Map([["n1", [run("a", 2), run("b", 1)]]]);
    expect(planPreemption(task(), cand([node("n1")], normalOnly))).toBeUndefined();
  });

  it("picks the node needing the fewest preemptions", () => {
    const running = new Map([
      ["n1", [run("a", 4), run("b", 4)]],
      ["n2", [run("c", 4), run("d", 2)]],
    ]);
    const nodes = [node("n1", { freeMemoryBytes: 0 }), node("n2", { freeMemoryBytes: 0 })];
    expect(planPreemption(task({ memoryBytes: 128 * MB }), cand(nodes, running))?.victims).toEqual(["a", "b"]);
    expect(planPreemption(task({ memoryBytes: 64 * MB }), cand(nodes, running))?.victims).toHaveLength(1);
  });

  it("only CRITICAL tasks preempt, and only on nodes it is eligible for", () => {
    const running = new Map([["n1", [run("bg", 4)]]]);
    expect(planPreemption(task({ rank: 1 }), cand([node("n1")], running))).toBeUndefined();
    expect(planPreemption(task(), [])).toBeUndefined();
    // Which nodes are candidates is the rules table's eligibility, the same one placement uses.
    const ctx = { healthy: new Set(["c"]), deviceClusters: () => undefined };
    expect(eligible(task({ handler: "fft" }), node("n1"), ctx)).toBe(false);
    expect(eligible(task(), node("n1"), { ...ctx, healthy: new Set<string>() })).toBe(false);
    expect(eligible(task(), node("n1"), ctx)).toBe(true);
  });

  it("the youngest of equal-priority attempts goes first (least work lost)", () => {
    const running = new Map([["n1", [run("old", 4, 100), run("young", 4, 200)]]]);
    expect(planPreemption(task(), cand([node("n1")], running))?.victims).toEqual(["young"]);
  });
});
