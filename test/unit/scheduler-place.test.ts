import { describe, it, expect } from "vitest";
import { TaskQueue, type QueuedTask } from "../../coordinator/scheduler/queue.js";
import { fitsAnywhereEver, maxNodeMemory, planPass, type ClusterView, type NodeView, type Placement } from "../../coordinator/scheduler/place.js";

const MB = 1024 * 1024;
const NOW = 1_000_000;
const OPTS = { healthThreshold: 0.7, maxScan: 1000 };

let nextSeq = 0;
function task(id: string, over: Partial<QueuedTask> = {}): QueuedTask {
  return {
    id,
    rank: 2,
    deadline: undefined,
    seq: nextSeq++,
    notBefore: 0,
    handler: "avg",
    memoryBytes: 64 * MB,
    cpuMillis: 100,
    mode: "local",
    deviceId: "",
    clusterId: "",
    estimatedMs: 0,
    ...over,
  };
}

function node(id: string, clusterId: string, over: Partial<NodeView> = {}): NodeView {
  return {
    id,
    clusterId,
    tier: "edge",
    handlers: new Set(["avg"]),
    deviceIds: new Set<string>(),
    freeCpuMillis: 1000,
    freeMemoryBytes: 1024 * MB,
    totalCpuMillis: 1000,
    totalMemoryBytes: 1024 * MB,
    inFlight: 0,
    maxConcurrent: 4,
    ...over,
  };
}

const cluster = (id: string, over: Partial<ClusterView> = {}): ClusterView => ({ id, tier: "edge", health: 1, ...over });

function queueOf(...tasks: QueuedTask[]): TaskQueue {
  const q = new TaskQueue();
  for (const t of tasks) q.push(t);
  return q;
}

const ids = (q: TaskQueue): string[] => [...q.ordered()].map((t) => t.id);

interface PlaceOptions {
  healthThreshold: number;
  maxScan: number;
  onWait?: (taskId: string, recheckAt: number, nodeId: string) => void;
  deviceClusters?: ReadonlyMap<string, string>;
}

/** One pass as the dispatcher runs it: plan, then take the placed tasks out of the queue. */
function place(q: TaskQueue, nodes: NodeView[], clusters: ClusterView[], now: number, opts: PlaceOptions): Placement[] {
  const before = ids(q);
  const plan = planPass(q, { now, nodes, clusters, deviceClusters: opts.deviceClusters }, opts);
  // Planning never changes the queue: the caller applies the plan.
  expect(ids(q)).toEqual(before);
  for (const w of plan.waits) opts.onWait?.(w.taskId, w.recheckAt, w.nodeId);
  for (const p of plan.placements) q.remove(p.taskId);
  return plan.placements;
}

describe("planPass feasibility", () => {
  it("places only where memory, cpu, handler and a free slot all fit", () => {
    const nodes = [
      node("small-mem", "c1", { freeMemoryBytes: 32 * MB }),
      node("busy-cpu", "c1", { freeCpuMillis: 50, inFlight: 1 }),
      node("no-handler", "c1", { handlers: new Set(["other"]) }),
      node("full", "c1", { inFlight: 4, maxConcurrent: 4 }),
      node("ok", "c1", { freeMemoryBytes: 900 * MB }),
    ];
    const q = queueOf(task("t"));
    const placed = place(q, nodes, [cluster("c1")], NOW, OPTS);
    expect(placed.map((p) => [p.taskId, p.nodeId, p.clusterId])).toEqual([["t", "ok", "c1"]]);
    expect(q.size).toBe(0);
  });

  it("leaves a task queued when nothing fits and returns no placement", () => {
    const q = queueOf(task("big", { memoryBytes: 4096 * MB }));
    expect(place(q, [node("n1", "c1")], [cluster("c1")], NOW, OPTS)).toEqual([]);
    expect(ids(q)).toEqual(["big"]);
  });

  it("starvation guard: an idle node takes one task whose cpu fits its total cpu", () => {
    // Other load makes measured idle cpu low, but nothing of ours is running there.
    const n = node("n1", "c1", { freeCpuMillis: 100, totalCpuMillis: 1000 });
    const q = queueOf(task("a", { cpuMillis: 800 }), task("b", { cpuMillis: 800 }));
    const placed = place(q, [n], [cluster("c1")], NOW, OPTS);
    expect(placed.map((p) => p.taskId)).toEqual(["a"]);
    expect(ids(q)).toEqual(["b"]);
    // A node already running one of ours does not get the exception.
    const q2 = queueOf(task("c", { cpuMillis: 800 }));
    expect(place(q2, [{ ...n, inFlight: 1 }], [cluster("c1")], NOW, OPTS)).toEqual([]);
  });

  it("starvation guard still requires memory to fit free memory", () => {
    const n = node("n1", "c1", { freeCpuMillis: 0, freeMemoryBytes: 10 * MB });
    expect(place(queueOf(task("a")), [n], [cluster("c1")], NOW, OPTS)).toEqual([]);
  });

  it("deducts placed work within a pass without mutating the caller's node views", () => {
    const n = node("n1", "c1", { freeMemoryBytes: 150 * MB, maxConcurrent: 10 });
    const snapshot = { ...n };
    const q = queueOf(task("a"), task("b"), task("c"));
    const placed = place(q, [n], [cluster("c1")], NOW, OPTS);
    expect(placed.map((p) => p.taskId)).toEqual(["a", "b"]);
    expect(ids(q)).toEqual(["c"]);
    expect(n).toEqual(snapshot);
  });

  it("respects slots: never more placements on a node than maxConcurrent - inFlight", () => {
    const n = node("n1", "c1", { inFlight: 1, maxConcurrent: 3, freeCpuMillis: 10_000, totalCpuMillis: 10_000 });
    const q = queueOf(...Array.from({ length: 5 }, (_, i) => task(`t${i}`)));
    expect(place(q, [n], [cluster("c1")], NOW, OPTS)).toHaveLength(2);
    expect(q.size).toBe(3);
  });

  it("skips tasks in retry backoff and places them once notBefore has passed", () => {
    const q = queueOf(task("waiting", { rank: 0, notBefore: NOW + 500 }), task("ready", { rank: 3 }));
    const first = place(q, [node("n1", "c1")], [cluster("c1")], NOW, OPTS);
    expect(first.map((p) => p.taskId)).toEqual(["ready"]);
    expect(ids(q)).toEqual(["waiting"]);
    const later = place(q, [node("n1", "c1")], [cluster("c1")], NOW + 500, OPTS);
    expect(later.map((p) => p.taskId)).toEqual(["waiting"]);
  });

  it("places in priority order when capacity is scarce", () => {
    const q = queueOf(task("low", { rank: 3 }), task("crit", { rank: 0 }), task("normal", { rank: 2 }));
    const placed = place(q, [node("n1", "c1", { maxConcurrent: 1 })], [cluster("c1")], NOW, OPTS);
    expect(placed.map((p) => p.taskId)).toEqual(["crit"]);
    expect(ids(q)).toEqual(["normal", "low"]);
  });
});

describe("planPass clusters and strategy", () => {
  it("sends no new work to a cluster below the health threshold", () => {
    const q = queueOf(task("t"));
    const nodes = [node("sick", "c1"), node("well", "c2", { freeCpuMillis: 200 })];
    const placed = place(q, nodes, [cluster("c1", { health: 0.5 }), cluster("c2", { health: 0.7 })], NOW, OPTS);
    expect(placed.map((p) => p.nodeId)).toEqual(["well"]);
    const q2 = queueOf(task("t2"));
    expect(place(q2, [node("sick", "c1")], [cluster("c1", { health: 0.69 })], NOW, OPTS)).toEqual([]);
  });

  it("treats a node whose cluster is unknown as unschedulable", () => {
    expect(place(queueOf(task("t")), [node("n1", "ghost")], [cluster("c1")], NOW, OPTS)).toEqual([]);
  });

  it("honours the task's clusterId restriction", () => {
    const q = queueOf(task("t", { clusterId: "c2", rank: 0 }));
    const nodes = [node("a", "c1"), node("b", "c2", { freeCpuMillis: 200, freeMemoryBytes: 100 * MB })];
    const placed = place(q, nodes, [cluster("c1"), cluster("c2")], NOW, OPTS);
    expect(placed.map((p) => p.nodeId)).toEqual(["b"]);
  });

  const mixed = (): NodeView[] => [
    node("c1-busy", "c1", { freeCpuMillis: 200, freeMemoryBytes: 200 * MB, inFlight: 2 }),
    node("c1-idle", "c1", { freeCpuMillis: 900, freeMemoryBytes: 900 * MB }),
    node("c2-free", "c2", { freeCpuMillis: 1000, freeMemoryBytes: 1024 * MB }),
    node("c2-half", "c2", { freeCpuMillis: 500, freeMemoryBytes: 512 * MB, inFlight: 1 }),
  ];
  const both = [cluster("c1"), cluster("c2")];

  it("spreads critical and high tasks to the most free cluster, then its most free node", () => {
    for (const rank of [0, 1]) {
      const placed = place(queueOf(task("t", { rank })), mixed(), both, NOW, OPTS);
      expect(placed[0]).toMatchObject({ nodeId: "c2-free", clusterId: "c2" });
      expect(placed[0].reason).toMatch(/^spread: cluster c2 most free/);
    }
  });

  it("binpacks normal and lower tasks onto the most utilized cluster and node that fit", () => {
    for (const rank of [2, 3, 4]) {
      const placed = place(queueOf(task("t", { rank })), mixed(), both, NOW, OPTS);
      expect(placed[0]).toMatchObject({ nodeId: "c1-busy", clusterId: "c1" });
      expect(placed[0].reason).toMatch(/^binpack: cluster c1 most utilized/);
    }
  });

  it("spreads a burst of critical tasks across clusters as earlier ones consume capacity", () => {
    const nodes = [node("a", "c1", { maxConcurrent: 8 }), node("b", "c2", { maxConcurrent: 8 })];
    const q = queueOf(...Array.from({ length: 4 }, (_, i) => task(`t${i}`, { rank: 0, cpuMillis: 200 })));
    const placed = place(q, nodes, both, NOW, OPTS);
    expect(placed.map((p) => p.nodeId).sort()).toEqual(["a", "a", "b", "b"]);
  });
});

describe("planPass processing modes", () => {
  const twoClusters = [cluster("c1"), cluster("c2")];

  it("local: prefers the node serving the device when it fits", () => {
    const nodes = [node("other", "c1"), node("dev", "c2", { deviceIds: new Set(["d1"]), freeCpuMillis: 300 })];
    const placed = place(queueOf(task("t", { deviceId: "d1", rank: 0 })), nodes, twoClusters, NOW, OPTS);
    expect(placed[0]).toMatchObject({ nodeId: "dev", clusterId: "c2", reason: "local: node serving device d1" });
  });

  it("local: stays in the device's cluster when the device's node is full", () => {
    const nodes = [node("free-elsewhere", "c1"), node("dev", "c2", { deviceIds: new Set(["d1"]), inFlight: 4 }), node("peer", "c2", { freeCpuMillis: 300 })];
    const placed = place(queueOf(task("t", { deviceId: "d1" })), nodes, twoClusters, NOW, OPTS);
    expect(placed[0]).toMatchObject({ nodeId: "peer", clusterId: "c2" });
    expect(placed[0].reason).toMatch(/^local: device d1's node busy/);
  });

  it("local: waits rather than leave the device's cluster when nothing there fits", () => {
    const nodes = [node("free-elsewhere", "c1"), node("dev", "c2", { deviceIds: new Set(["d1"]), inFlight: 4 })];
    const q = queueOf(task("t", { deviceId: "d1" }));
    expect(place(q, nodes, twoClusters, NOW, OPTS)).toEqual([]);
    expect(ids(q)).toEqual(["t"]);
  });

  it("local: an unknown device puts no restriction beyond clusterId", () => {
    const placed = place(queueOf(task("t", { deviceId: "nobody" })), [node("n", "c1")], twoClusters, NOW, OPTS);
    expect(placed.map((p) => p.nodeId)).toEqual(["n"]);
  });

  it("distributed/hybrid: whole task anywhere in the device's cluster, no node preference", () => {
    for (const mode of ["distributed", "hybrid"] as const) {
      const nodes = [node("free-elsewhere", "c1"), node("dev", "c2", { deviceIds: new Set(["d1"]), freeCpuMillis: 300 }), node("peer", "c2")];
      const placed = place(queueOf(task("t", { deviceId: "d1", mode, rank: 0 })), nodes, twoClusters, NOW, OPTS);
      expect(placed[0]).toMatchObject({ nodeId: "peer", clusterId: "c2" });
      expect(placed[0].reason.startsWith(`${mode}: device d1's cluster`)).toBe(true);
    }
  });

  it("shard: goes to its planned node even when another node is freer", () => {
    const nodes = [node("planned", "c1", { freeCpuMillis: 200 }), node("freer", "c1")];
    const placed = place(queueOf(task("s", { mode: "distributed", clusterId: "c1", preferNode: "planned", rank: 0 })), nodes, twoClusters, NOW, OPTS);
    expect(placed[0]).toMatchObject({ nodeId: "planned", reason: "shard: planned node planned" });
  });

  it("shard: falls back to the rest of its cluster when the planned node is full or gone, never elsewhere", () => {
    const nodes = [node("planned", "c1", { inFlight: 4 }), node("peer", "c1", { freeCpuMillis: 100 }), node("other", "c2")];
    const placed = place(queueOf(task("s", { mode: "hybrid", clusterId: "c1", preferNode: "planned", rank: 0 })), nodes, twoClusters, NOW, OPTS);
    expect(placed[0]).toMatchObject({ nodeId: "peer", clusterId: "c1" });
    expect(placed[0].reason).toMatch(/^shard: planned node planned busy or gone; /);
    const gone = place(
      queueOf(task("s2", { mode: "distributed", clusterId: "c1", preferNode: "vanished", rank: 0 })),
      [node("other", "c2")],
      twoClusters,
      NOW,
      OPTS,
    );
    expect(gone).toEqual([]);
  });

  it("cloud_fallback: prefers an edge node even when a cloud node is freer", () => {
    const nodes = [node("cloud", "cc", { tier: "cloud", totalCpuMillis: 64_000, freeCpuMillis: 64_000 }), node("edge", "c1", { freeCpuMillis: 200 })];
    const clusters = [cluster("c1"), cluster("cc", { tier: "cloud" })];
    const placed = place(queueOf(task("t", { mode: "cloud_fallback", rank: 0 })), nodes, clusters, NOW, OPTS);
    expect(placed[0]).toMatchObject({ nodeId: "edge" });
    expect(placed[0].reason).toMatch(/^edge first/);
  });

  it("cloud_fallback: tries the device's edge cluster before other edge clusters", () => {
    const nodes = [node("edge-other", "c1"), node("edge-dev", "c2", { deviceIds: new Set(["d1"]), freeCpuMillis: 300 })];
    const t = task("t", { mode: "cloud_fallback", deviceId: "d1", rank: 0 });
    const placed = place(queueOf(t), nodes, twoClusters, NOW, OPTS);
    expect(placed[0]).toMatchObject({ nodeId: "edge-dev" });
    expect(placed[0].reason).toMatch(/^edge first: device cluster/);
  });

  describe("cloud_fallback with a deadline: waits for an edge node expected to free up in time", () => {
    // The edge node is full: one slot, taken by a task expected to end at NOW + 1000 (freeing its memory).
    const full = (releases: NodeView["expectedReleases"], over: Partial<NodeView> = {}) => [
      node("cloud", "cc", { tier: "cloud" }),
      node("edge", "c1", { maxConcurrent: 1, inFlight: 1, freeMemoryBytes: 0, expectedReleases: releases, ...over }),
    ];
    const clusters = [cluster("c1"), cluster("cc", { tier: "cloud" })];
    const plan = (t: QueuedTask, nodes: NodeView[]) => {
      const waits: { taskId: string; at: number; nodeId: string }[] = [];
      const q = queueOf(t);
      const placed = place(q, nodes, clusters, NOW, { ...OPTS, onWait: (taskId, at, nodeId) => waits.push({ taskId, at, nodeId }) });
      return { placed, waits, queued: ids(q) };
    };
    const release = { at: NOW + 1000, cpuMillis: 100, memoryBytes: 512 * MB };

    it("stays queued for the edge when the edge frees in time for the deadline (its own estimate counted)", () => {
      const r = plan(task("t", { mode: "cloud_fallback", deadline: NOW + 5000, estimatedMs: 2000 }), full([release]));
      expect(r.placed).toEqual([]);
      expect(r.queued).toEqual(["t"]);
      expect(r.waits).toEqual([{ taskId: "t", at: NOW + 1000, nodeId: "edge" }]);
    });

    it("goes to the cloud when the edge would free too late for the deadline", () => {
      const r = plan(task("t", { mode: "cloud_fallback", deadline: NOW + 2500, estimatedMs: 2000 }), full([release]));
      expect(r.placed).toMatchObject([{ taskId: "t", nodeId: "cloud" }]);
      expect(r.placed[0].reason).toMatch(/^cloud fallback: no edge node fits, nor is one expected to free up in time for the deadline/);
      expect(r.waits).toEqual([]);
    });

    it("goes to the cloud when nothing on the edge is expected to end: no estimate, or an estimate run out", () => {
      for (const releases of [[], [{ ...release, at: NOW - 1 }]]) {
        const r = plan(task("t", { mode: "cloud_fallback", deadline: NOW + 60_000 }), full(releases));
        expect(r.placed).toMatchObject([{ nodeId: "cloud" }]);
      }
    });

    it("keeps waiting, until a recheck time, for a task running a little past its estimate", () => {
      const overrun = { ...release, at: NOW, until: NOW + 500 };
      const r = plan(task("t", { mode: "cloud_fallback", deadline: NOW + 5000, estimatedMs: 100 }), full([overrun]));
      expect(r.placed).toEqual([]);
      expect(r.waits).toEqual([{ taskId: "t", at: NOW + 500, nodeId: "edge" }]);
      // Past that recheck time it is no longer expected: the cloud.
      expect(plan(task("t", { mode: "cloud_fallback", deadline: NOW + 5000 }), full([{ ...overrun, until: NOW - 1 }])).placed).toMatchObject([
        { nodeId: "cloud" },
      ]);
    });

    it("goes to the cloud without a deadline (as before), and when what frees up is still not enough", () => {
      expect(plan(task("t", { mode: "cloud_fallback" }), full([release])).placed).toMatchObject([{ nodeId: "cloud" }]);
      const tooBig = plan(task("t", { mode: "cloud_fallback", deadline: NOW + 60_000, memoryBytes: 768 * MB }), full([release]));
      expect(tooBig.placed).toMatchObject([{ nodeId: "cloud" }]);
      // A node that lacks the handler is no reason to wait.
      expect(
        plan(task("t", { mode: "cloud_fallback", deadline: NOW + 60_000, handler: "other" }), [
          node("cloud", "cc", { tier: "cloud", handlers: new Set(["other"]) }),
          ...full([release]).slice(1),
        ]).placed,
      ).toMatchObject([{ nodeId: "cloud" }]);
    });

    it("picks the edge node expected to free first, and an identical task with a tighter deadline still goes to the cloud", () => {
      const nodes = [
        ...full([{ ...release, at: NOW + 3000 }]),
        node("edge2", "c1", { maxConcurrent: 1, inFlight: 1, freeMemoryBytes: 0, expectedReleases: [release] }),
      ];
      const waits: { taskId: string; at: number; nodeId: string }[] = [];
      const q = queueOf(
        task("late", { mode: "cloud_fallback", deadline: NOW + 9000, estimatedMs: 100 }),
        task("tight", { mode: "cloud_fallback", deadline: NOW + 900, estimatedMs: 100 }),
      );
      const placed = place(q, nodes, clusters, NOW, { ...OPTS, onWait: (taskId, at, nodeId) => waits.push({ taskId, at, nodeId }) });
      expect(waits).toEqual([{ taskId: "late", at: NOW + 1000, nodeId: "edge2" }]);
      expect(placed).toMatchObject([{ taskId: "tight", nodeId: "cloud" }]);
    });
  });

  it("cloud_fallback: uses a cloud node when no edge node fits", () => {
    const nodes = [node("cloud", "cc", { tier: "cloud" }), node("edge", "c1", { freeMemoryBytes: 10 * MB })];
    const clusters = [cluster("c1"), cluster("cc", { tier: "cloud" })];
    const placed = place(queueOf(task("t", { mode: "cloud_fallback" })), nodes, clusters, NOW, OPTS);
    expect(placed[0]).toMatchObject({ nodeId: "cloud", clusterId: "cc" });
    expect(placed[0].reason).toMatch(/^cloud fallback: no edge node fits/);
  });
});

// Counts how many tasks the pass actually looks at: each visit reads notBefore exactly once.
function withVisitCounter(tasks: QueuedTask[]): { visits: () => number } {
  let visits = 0;
  for (const t of tasks) {
    const notBefore = t.notBefore;
    Object.defineProperty(t, "notBefore", {
      get: () => {
        visits++;
        return notBefore;
      },
    });
  }
  return { visits: () => visits };
}

class CountingSet extends Set<string> {
  calls = 0;
  override has(value: string): boolean {
    this.calls++;
    return super.has(value);
  }
}

describe("planPass queue effects and efficiency", () => {
  it("removes placed tasks and keeps unplaced ones in exactly their original order", () => {
    const q = queueOf(
      task("big1", { rank: 0, memoryBytes: 2048 * MB }),
      task("fit1", { rank: 1 }),
      task("big2", { rank: 2, deadline: 5, memoryBytes: 2048 * MB }),
      task("noh", { rank: 2, handler: "missing" }),
      task("fit2", { rank: 3 }),
      task("big3", { rank: 4, memoryBytes: 2048 * MB }),
    );
    const before = ids(q).filter((id) => !id.startsWith("fit"));
    expect(before).toEqual(["big1", "big2", "noh", "big3"]);
    const placed = place(q, [node("n", "c1")], [cluster("c1")], NOW, OPTS);
    expect(placed.map((p) => p.taskId)).toEqual(["fit1", "fit2"]);
    expect(ids(q)).toEqual(before);
    expect(q.size).toBe(4);
  });

  it("stops walking as soon as no node has a free slot (5,000 queued, 8 slots)", () => {
    const tasks = Array.from({ length: 5000 }, (_, i) => task(`t${i}`, { seq: i, memoryBytes: 1, cpuMillis: 1 }));
    const q = queueOf(...tasks);
    const counter = withVisitCounter(tasks);
    const nodes = [node("a", "c1", { maxConcurrent: 4 }), node("b", "c1", { maxConcurrent: 4 })];
    const placed = place(q, nodes, [cluster("c1")], NOW, OPTS);
    expect(placed.map((p) => p.taskId)).toEqual(Array.from({ length: 8 }, (_, i) => `t${i}`));
    expect(counter.visits()).toBe(8);
    expect(q.size).toBe(4992);
  });

  it("visits no task when every node is already at its slot limit", () => {
    const tasks = Array.from({ length: 5000 }, (_, i) => task(`t${i}`, { seq: i }));
    const q = queueOf(...tasks);
    const counter = withVisitCounter(tasks);
    expect(place(q, [node("a", "c1", { inFlight: 4 })], [cluster("c1")], NOW, OPTS)).toEqual([]);
    expect(counter.visits()).toBe(0);
    expect(q.size).toBe(5000);
  });

  it("skips identical tasks whose shape already failed in this pass without checking nodes", () => {
    const q = new TaskQueue();
    for (let i = 0; i < 5000; i++) q.push(task(`big${i}`, { seq: i, memoryBytes: 4096 * MB }));
    q.push(task("small", { seq: 9999, rank: 4 }));
    const handlers = new CountingSet(["avg"]);
    const placed = place(q, [node("n", "c1", { handlers })], [cluster("c1")], NOW, { ...OPTS, maxScan: Infinity });
    expect(placed.map((p) => p.taskId)).toEqual(["small"]);
    // One check for the first big task, one for "small": the other 4,999 never reach a node.
    expect(handlers.calls).toBe(2);
    expect(q.size).toBe(5000);
  });
});

describe("submit-time feasibility helpers", () => {
  const nodes = [node("a", "c1", { totalMemoryBytes: 512 * MB }), node("b", "c2", { totalMemoryBytes: 2048 * MB, totalCpuMillis: 500 })];

  it("maxNodeMemory is the largest total memory of any node", () => {
    expect(maxNodeMemory(nodes)).toBe(2048 * MB);
    expect(maxNodeMemory([])).toBe(0);
  });

  it("fitsAnywhereEver needs one node whose totals cover both cpu and memory", () => {
    expect(fitsAnywhereEver({ cpuMillis: 400, memoryBytes: 1024 * MB, clusterId: "" }, nodes)).toBe(true);
    expect(fitsAnywhereEver({ cpuMillis: 800, memoryBytes: 1024 * MB, clusterId: "" }, nodes)).toBe(false);
    expect(fitsAnywhereEver({ cpuMillis: 100, memoryBytes: 1024 * MB, clusterId: "c1" }, nodes)).toBe(false);
    expect(fitsAnywhereEver({ cpuMillis: 100, memoryBytes: 4096 * MB, clusterId: "" }, nodes)).toBe(false);
  });
});

describe("cloud tier is fallback capacity", () => {
  it("a LOCAL task without a device never lands on a cloud node, even when the cloud is emptier", () => {
    const q = queueOf(task("t1"));
    const nodes = [node("cloud-1", "cloud", { tier: "cloud", freeCpuMillis: 1000 }), node("edge-1", "site", { freeCpuMillis: 100 })];
    const plan = place(q, nodes, [cluster("cloud", { tier: "cloud" }), cluster("site")], NOW, OPTS);
    expect(plan.map((p) => p.nodeId)).toEqual(["edge-1"]);
  });

  it("waits rather than use the cloud when no edge node fits", () => {
    const q = queueOf(task("t1"));
    const nodes = [node("cloud-1", "cloud", { tier: "cloud" })];
    expect(place(q, nodes, [cluster("cloud", { tier: "cloud" })], NOW, OPTS)).toEqual([]);
    expect(ids(q)).toEqual(["t1"]);
  });

  it("a task that names a cloud cluster runs there", () => {
    const q = queueOf(task("t1", { clusterId: "cloud" }));
    const nodes = [node("cloud-1", "cloud", { tier: "cloud" })];
    expect(place(q, nodes, [cluster("cloud", { tier: "cloud" })], NOW, OPTS).map((p) => p.nodeId)).toEqual(["cloud-1"]);
  });
});

describe("bounded backfill and O(1) bookkeeping", () => {
  it("ends a pass after maxScan unplaceable tasks in a row; tasks deeper wait for the head to move", () => {
    const big = Array.from({ length: 50 }, (_, i) => task(`big${i}`, { seq: i, memoryBytes: 4096 * MB, handler: `h${i}` }));
    const small = task("small", { seq: 100 });
    const q = queueOf(...big, small);
    const nodes = [node("a", "c1", { handlers: new Set(["avg", ...big.map((b) => b.handler)]) })];
    expect(place(q, nodes, [cluster("c1")], NOW, { healthThreshold: 0.7, maxScan: 10 })).toEqual([]);
    expect(place(q, nodes, [cluster("c1")], NOW, { healthThreshold: 0.7, maxScan: 100 }).map((p) => p.taskId)).toEqual(["small"]);
  });

  it("position of the newest task without a deadline matches the O(n) count", () => {
    const q = new TaskQueue();
    for (let i = 0; i < 300; i++) q.push(task(`t${i}`, { seq: i, rank: i % 5, deadline: i % 4 === 0 ? NOW + i : undefined }));
    q.remove("t7");
    const newest = task("new", { seq: 1000, rank: 2 });
    q.push(newest);
    const slow = [...q.ordered()].findIndex((t) => t.id === "new");
    expect(q.position("new")).toBe(slow);
  });

  it("nextNotBefore ignores removed and already-due tasks", () => {
    const q = queueOf(task("a", { seq: 1, notBefore: NOW + 50 }), task("b", { seq: 2, notBefore: NOW + 10 }), task("c", { seq: 3, notBefore: NOW - 5 }));
    expect(q.nextNotBefore(NOW)).toBe(NOW + 10);
    q.remove("b");
    expect(q.nextNotBefore(NOW)).toBe(NOW + 50);
    expect(q.nextNotBefore(NOW + 60)).toBeUndefined();
  });
});

describe("LOCAL work stays in its device's cluster while the device's node is away", () => {
  it("uses the registry's device → cluster lookup when the serving node is not schedulable", () => {
    const q = queueOf(task("t1", { deviceId: "sensor-9" }));
    const nodes = [node("other-site", "site-b"), node("same-site", "site-a")];
    const plan = place(q, nodes, [cluster("site-a"), cluster("site-b")], NOW, { ...OPTS, deviceClusters: new Map([["sensor-9", "site-a"]]) });
    expect(plan.map((p) => p.nodeId)).toEqual(["same-site"]);
  });

  it("waits rather than leave the cluster when no node of it fits", () => {
    const q = queueOf(task("t1", { deviceId: "sensor-9" }));
    const plan = place(q, [node("other-site", "site-b")], [cluster("site-b")], NOW, { ...OPTS, deviceClusters: new Map([["sensor-9", "site-a"]]) });
    expect(plan).toEqual([]);
  });
});

describe("planPass: early stop by shape", () => {
  it("ends the pass once every shape in the queue failed, even with free slots and no maxScan bound", () => {
    const tasks = Array.from({ length: 5000 }, (_, i) => task(`big${i}`, { seq: i, memoryBytes: 4096 * MB }));
    const q = queueOf(...tasks);
    const counter = withVisitCounter(tasks);
    expect(place(q, [node("n", "c1")], [cluster("c1")], NOW, { ...OPTS, maxScan: Infinity })).toEqual([]);
    expect(counter.visits()).toBe(1);
  });

  it("keeps walking while some shape in the queue has not been tried", () => {
    const big = Array.from({ length: 100 }, (_, i) => task(`big${i}`, { seq: i, memoryBytes: 4096 * MB }));
    const q = queueOf(...big, task("small", { seq: 1000 }));
    expect(place(q, [node("n", "c1")], [cluster("c1")], NOW, { ...OPTS, maxScan: Infinity }).map((p) => p.taskId)).toEqual(["small"]);
  });
});

describe("planPass: preemption is part of the plan", () => {
  const run = (taskId: string, rank: number, dispatchedAt = 0) => ({ taskId, rank, cpuMillis: 100, memoryBytes: 64 * MB, dispatchedAt });
  const full = (id: string, clusterId: string, running: ReturnType<typeof run>[], over: Partial<NodeView> = {}) =>
    node(id, clusterId, { inFlight: running.length, maxConcurrent: running.length, running, ...over });

  it("a CRITICAL task that fits nowhere gets the node where the fewest LOW/BACKGROUND attempts move", () => {
    const q = queueOf(task("crit", { rank: 0 }), task("normal", { rank: 2 }));
    const nodes = [full("a", "c1", [run("bg1", 4), run("n1", 2)]), full("b", "c1", [run("low1", 3), run("bg2", 4)])];
    const plan = planPass(q, { now: NOW, nodes, clusters: [cluster("c1")] }, OPTS);
    expect(plan.placements).toEqual([]);
    expect(plan.preemptions).toEqual([
      { taskId: "crit", nodeId: "a", clusterId: "c1", victims: ["bg1"], reason: "preempted 1 lower-priority attempt(s) on a" },
    ]);
    // Only CRITICAL preempts: the NORMAL task waits.
    expect(ids(q)).toEqual(["crit", "normal"]);
  });

  it("two CRITICAL tasks in one pass account for each other: the second takes the next victim", () => {
    const q = queueOf(task("c1", { rank: 0 }), task("c2", { rank: 0 }));
    const nodes = [full("a", "x", [run("bg1", 4, 1), run("bg2", 4, 2)])];
    const plan = planPass(q, { now: NOW, nodes, clusters: [cluster("x")] }, OPTS);
    expect(plan.preemptions.map((p) => [p.taskId, p.victims])).toEqual([
      ["c1", ["bg2"]],
      ["c2", ["bg1"]],
    ]);
  });

  it("obeys the same eligibility as placement: LOCAL stays in its device's cluster, the cloud is only a fallback", () => {
    const q = queueOf(task("crit", { rank: 0, deviceId: "d1" }));
    const nodes = [
      full("other-site", "c2", [run("bg", 4)]),
      full("cloud", "cc", [run("bg-c", 4)], { tier: "cloud" }),
      full("dev", "c1", [run("n", 2)], { deviceIds: new Set(["d1"]) }),
    ];
    const plan = planPass(q, { now: NOW, nodes, clusters: [cluster("c1"), cluster("c2"), cluster("cc", { tier: "cloud" })] }, OPTS);
    expect(plan.preemptions).toEqual([]);
    const q2 = queueOf(task("crit2", { rank: 0, deviceId: "d1" }));
    const withVictim = [...nodes.slice(0, 2), full("dev", "c1", [run("bg-dev", 4)], { deviceIds: new Set(["d1"]) })];
    expect(
      planPass(q2, { now: NOW, nodes: withVictim, clusters: [cluster("c1"), cluster("c2"), cluster("cc", { tier: "cloud" })] }, OPTS).preemptions.map(
        (p) => p.nodeId,
      ),
    ).toEqual(["dev"]);
  });

  it("never preempts for a task in retry backoff, nor when a slot is free", () => {
    const backoff = queueOf(task("crit", { rank: 0, notBefore: NOW + 1000 }));
    expect(planPass(backoff, { now: NOW, nodes: [full("a", "c1", [run("bg", 4)])], clusters: [cluster("c1")] }, OPTS).preemptions).toEqual([]);
    const free = queueOf(task("crit", { rank: 0 }));
    const plan = planPass(free, { now: NOW, nodes: [full("a", "c1", [run("bg", 4)], { maxConcurrent: 2 })], clusters: [cluster("c1")] }, OPTS);
    expect(plan.placements.map((p) => p.taskId)).toEqual(["crit"]);
    expect(plan.preemptions).toEqual([]);
  });
});

describe("planPass: dispatch-ahead is used only when no slot is free anywhere", () => {
  it("LOCAL work takes a free peer slot in the device's cluster before the device node's ahead queue", () => {
    const nodes = [node("dev", "c1", { deviceIds: new Set(["d1"]), maxConcurrent: 1, inFlight: 1, ahead: 4 }), node("peer", "c1", { maxConcurrent: 1 })];
    const placed = place(queueOf(task("t", { deviceId: "d1" })), nodes, [cluster("c1")], NOW, OPTS);
    expect(placed.map((p) => p.nodeId)).toEqual(["peer"]);
    // With no free slot left, the device's node queues it ahead, and says so.
    const full = [nodes[0], { ...nodes[1], inFlight: 1 }];
    const ahead = place(queueOf(task("t2", { deviceId: "d1" })), full, [cluster("c1")], NOW, OPTS);
    expect(ahead[0]).toMatchObject({ nodeId: "dev" });
    expect(ahead[0].reason).toMatch(/sent ahead/);
  });

  it("while a HIGH or CRITICAL task waits for a slot, lower-priority work is not sent ahead to the nodes it could use", () => {
    // One slot, taken, and 3 of 4 ahead places used: a NORMAL backlog would keep the node full for as long as it lasts.
    const full = node("a", "c1", { maxConcurrent: 1, inFlight: 4, ahead: 4 });
    const other = node("b", "c2", { maxConcurrent: 1, inFlight: 4, ahead: 4 });
    const clusters = [cluster("c1"), cluster("c2")];
    expect(place(queueOf(task("n0"), task("n1")), [full], clusters, NOW, OPTS).map((p) => p.taskId)).toEqual(["n0"]);
    for (const rank of [0, 1]) {
      const waiting = task(`urgent-${rank}`, { rank, clusterId: "c1" });
      // The queue drains instead: the urgent task takes the slot that frees first.
      expect(place(queueOf(waiting, task("n2"), task("n3")), [full], clusters, NOW, OPTS)).toEqual([]);
      // A node the urgent task cannot use still takes work ahead.
      expect(place(queueOf(waiting, task("n4", { clusterId: "c2" })), [full, other], clusters, NOW, OPTS).map((p) => p.nodeId)).toEqual(["b"]);
    }
    const freed = node("a", "c1", { maxConcurrent: 1, inFlight: 0, ahead: 4 });
    expect(place(queueOf(task("h", { rank: 1 }), task("n5")), [freed], clusters, NOW, OPTS).map((p) => p.taskId)).toEqual(["h", "n5"]);
  });

  it("CLOUD_FALLBACK goes to a free cloud slot rather than an edge ahead queue; HIGH work is never sent ahead", () => {
    const nodes = [node("edge", "c1", { maxConcurrent: 1, inFlight: 1, ahead: 4 }), node("cloud", "cc", { tier: "cloud" })];
    const clusters = [cluster("c1"), cluster("cc", { tier: "cloud" })];
    expect(place(queueOf(task("t", { mode: "cloud_fallback" })), nodes, clusters, NOW, OPTS).map((p) => p.nodeId)).toEqual(["cloud"]);
    expect(place(queueOf(task("h", { rank: 1 })), [nodes[0]], [cluster("c1")], NOW, OPTS)).toEqual([]);
    expect(place(queueOf(task("n", { rank: 2 })), [nodes[0]], [cluster("c1")], NOW, OPTS).map((p) => p.nodeId)).toEqual(["edge"]);
  });
});
