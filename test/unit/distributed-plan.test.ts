// Split planning (coordinator/distributed/plan.ts): which cluster, which nodes, and how big each shard is.
import { describe, expect, it } from "vitest";
import { apportion, planSplit, DEFAULT_SPLIT_OPTIONS, type SplitRequest } from "../../coordinator/distributed/plan.js";
import type { ClusterView, NodeView } from "../../coordinator/scheduler/place.js";

const MB = 1024 * 1024;
function node(id: string, clusterId: string, over: Partial<NodeView> = {}): NodeView {
  return {
    id,
    clusterId,
    tier: "edge",
    handlers: new Set(["stats"]),
    deviceIds: new Set<string>(),
    freeCpuMillis: 1000,
    freeMemoryBytes: 1024 * MB,
    totalCpuMillis: 4000,
    totalMemoryBytes: 4096 * MB,
    inFlight: 0,
    maxConcurrent: 2,
    ...over,
  };
}
const cluster = (id: string, over: Partial<ClusterView> = {}): ClusterView => ({ id, tier: "edge", health: 1, ...over });
const req = (over: Partial<SplitRequest> = {}): SplitRequest => ({ mode: "distributed", handler: "stats", length: 1000, deviceId: "", clusterId: "", ...over });

function sizes(p: ReturnType<typeof planSplit>): Record<string, number> {
  if (p.type !== "planned") throw new Error(`not planned: ${p.reason}`);
  return Object.fromEntries(p.shards.map((s) => [s.nodeId, s.end - s.start]));
}

describe("apportion", () => {
  it("sums to n, gives every part at least one, and follows the weights", () => {
    expect(apportion(10, [1, 1])).toEqual([5, 5]);
    expect(apportion(3, [100, 1, 1])).toEqual([1, 1, 1]);
    expect(apportion(1000, [3, 1])).toEqual([750, 250]);
    for (let n = 3; n < 200; n += 7) expect(apportion(n, [0.3, 2, 5]).reduce((a, b) => a + b, 0)).toBe(n);
  });
});

describe("planSplit", () => {
  const clusters = [cluster("c1"), cluster("c2")];

  it("distributed: one contiguous shard per node of the device's cluster, sized by free cpu", () => {
    const nodes = [
      node("a", "c1", { deviceIds: new Set(["d1"]), freeCpuMillis: 1000 }),
      node("b", "c1", { freeCpuMillis: 500 }),
      node("c", "c1", { freeCpuMillis: 500 }),
      node("x", "c2"),
    ];
    const p = planSplit(req({ deviceId: "d1" }), nodes, clusters);
    expect(p.type).toBe("planned");
    if (p.type !== "planned") return;
    expect(p.clusterId).toBe("c1");
    expect(sizes(p)).toEqual({ a: 500, b: 250, c: 250 });
    // Contiguous cover of [0, n).
    expect(p.shards[0].start).toBe(0);
    for (let i = 1; i < p.shards.length; i++) expect(p.shards[i].start).toBe(p.shards[i - 1].end);
    expect(p.shards.at(-1)!.end).toBe(1000);
    expect(p.reason).toMatch(/^distributed: device d1's cluster c1; 3 node\(s\)/);
  });

  it("uses the task's cluster over the device's, and skips nodes without the handler or a free slot", () => {
    const nodes = [
      node("a", "c1", { deviceIds: new Set(["d1"]) }),
      node("b", "c2"),
      node("c", "c2", { handlers: new Set(["other"]) }),
      node("d", "c2", { inFlight: 2 }),
    ];
    const p = planSplit(req({ deviceId: "d1", clusterId: "c2" }), nodes, clusters);
    expect(sizes(p)).toEqual({ b: 1000 });
  });

  it("never makes more shards than points", () => {
    const nodes = ["a", "b", "c", "d"].map((id) => node(id, "c1"));
    const p = planSplit(req({ length: 2, clusterId: "c1" }), nodes, clusters);
    expect(Object.values(sizes(p))).toEqual([1, 1]);
  });

  it("honours the task's shard cap", () => {
    const nodes = ["a", "b", "c", "d"].map((id) => node(id, "c1"));
    expect(Object.keys(sizes(planSplit(req({ clusterId: "c1", maxShards: 2 }), nodes, clusters)))).toEqual(["a", "b"]);
  });

  it("waits when the target cluster is unhealthy or has no node for the handler", () => {
    expect(planSplit(req({ clusterId: "c1" }), [node("a", "c1")], [cluster("c1", { health: 0.5 })]).type).toBe("wait");
    expect(planSplit(req({ clusterId: "c2" }), [node("a", "c1")], clusters).type).toBe("wait");
    expect(planSplit(req({ handler: "nope" }), [node("a", "c1")], clusters).type).toBe("wait");
  });

  it("without a device or cluster picks the freest healthy edge cluster, never a cloud one", () => {
    const nodes = [
      node("busy", "c1", { freeCpuMillis: 100 }),
      node("idle", "c2", { freeCpuMillis: 4000 }),
      node("cloud", "cc", { tier: "cloud", freeCpuMillis: 64_000, totalCpuMillis: 64_000 }),
    ];
    const p = planSplit(req(), nodes, [...clusters, cluster("cc", { tier: "cloud" })]);
    expect(p.type === "planned" && p.clusterId).toBe("c2");
  });

  it("hybrid: the device's node keeps everything when spreading would not pay", () => {
    const nodes = [node("dev", "c1", { deviceIds: new Set(["d1"]) }), node("b", "c1"), node("c", "c1")];
    const few = DEFAULT_SPLIT_OPTIONS.pointsPerCoreMs * DEFAULT_SPLIT_OPTIONS.shardOverheadMs; // what dev does in the overhead
    const p = planSplit(req({ mode: "hybrid", deviceId: "d1", length: few }), nodes, clusters);
    expect(sizes(p)).toEqual({ dev: few });
    expect(p.type === "planned" && p.reason).toMatch(/takes all/);
  });

  it("hybrid: the device's node takes a bigger share than equal peers (it pays no shard overhead), the rest spread", () => {
    const nodes = [node("dev", "c1", { deviceIds: new Set(["d1"]) }), node("b", "c1"), node("c", "c1")];
    const n = 1_000_000;
    const s = sizes(planSplit(req({ mode: "hybrid", deviceId: "d1", length: n }), nodes, clusters));
    expect(s.dev + s.b + s.c).toBe(n);
    expect(s.dev).toBeGreaterThan(s.b);
    expect(Math.abs(s.b - s.c)).toBeLessThanOrEqual(1);
    // Balanced finish: dev's time equals a peer's time plus the overhead.
    const r = DEFAULT_SPLIT_OPTIONS.pointsPerCoreMs;
    expect(Math.abs(s.dev / r - (s.b / r + DEFAULT_SPLIT_OPTIONS.shardOverheadMs))).toBeLessThan(0.01);
  });

  it("hybrid: a device node with little free cpu takes less than its idle peers", () => {
    const nodes = [node("dev", "c1", { deviceIds: new Set(["d1"]), freeCpuMillis: 200 }), node("b", "c1")];
    const s = sizes(planSplit(req({ mode: "hybrid", deviceId: "d1", length: 1_000_000 }), nodes, clusters));
    expect(s.dev).toBeLessThan(s.b);
  });

  it("hybrid without a device node in the cluster spreads like distributed", () => {
    const nodes = [node("b", "c1"), node("c", "c1")];
    const p = planSplit(req({ mode: "hybrid", deviceId: "d9", clusterId: "c1" }), nodes, clusters);
    expect(sizes(p)).toEqual({ b: 500, c: 500 });
    expect(p.type === "planned" && p.reason).toMatch(/^hybrid: device d9 has no node in c1; spread/);
  });
});
