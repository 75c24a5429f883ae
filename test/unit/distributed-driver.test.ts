// The shard driver (coordinator/distributed/driver.ts) with a real TaskManager: how a split task's record follows its
// shard tasks — progress, retries, failure, cancellation, the remote merge of custom handlers, listing.
import { describe, expect, it } from "vitest";
import type { Handler } from "../../lib/analytics/types.js";
import { checkSplittable } from "../../coordinator/distributed/validate.js";
import { InvalidArgumentError } from "../../coordinator/errors.js";
import { ShardSim, simNode, simSpec } from "../helpers/shard-sim.js";

const three = () => [simNode("a", "c1", { deviceIds: new Set(["d1"]) }), simNode("b", "c1"), simNode("c", "c1")];
const values = Array.from({ length: 300 }, (_, i) => (i * 7919) % 101);

describe("ShardDriver", () => {
  it("splits over the cluster's nodes, records shards and progress, and completes the parent with the merged result", () => {
    const sim = new ShardSim(three());
    const id = sim.submit(simSpec({ input: { values }, deviceId: "d1" }));
    const states: string[] = [];
    sim.tasks.onChange((t) => t.id === id && states.push(`${t.state}:${t.split?.done ?? 0}/${t.split?.total ?? 0}`));
    const parent = sim.run(id);
    expect(parent.state).toBe("succeeded");
    expect(parent.split!.shards.map((s) => [s.nodeId, s.start, s.end, s.state, s.attempts])).toEqual([
      ["a", 0, 100, "succeeded", 1],
      ["b", 100, 200, "succeeded", 1],
      ["c", 200, 300, "succeeded", 1],
    ]);
    expect(parent.assignedCluster).toBe("c1");
    expect(parent.assignedNode).toBe("a,b,c");
    expect((parent.output as { count: number }).count).toBe(300);
    // Watchers saw it split, run and count shards up to 3/3.
    expect(states[0]).toBe("dispatched:0/3");
    expect(states).toContain("running:1/3");
    expect(states.at(-1)).toBe("succeeded:3/3");
    // Shard tasks are hidden from listings unless asked for.
    expect(sim.tasks.reader.list({}, 100, "").tasks.map((t) => t.id)).toEqual([id]);
    expect(sim.shardsOf(id)).toHaveLength(3);
  });

  it("retries a failed shard on its own; the others run once", () => {
    const sim = new ShardSim(three());
    const id = sim.submit(simSpec({ input: { values } }));
    let failures = 0;
    const parent = sim.run(id, (t) => (t.shard!.index === 1 && failures++ === 0 ? "disk on fire" : undefined));
    expect(parent.state).toBe("succeeded");
    expect(parent.split!.shards.map((s) => s.attempts)).toEqual([1, 2, 1]);
  });

  it("fails the parent when a shard fails for good, and cancels the shards still running", () => {
    const sim = new ShardSim(three());
    const id = sim.submit(simSpec({ input: { values }, maxRetries: 0 }));
    sim.driver.tick();
    const shards = sim.shardsOf(id);
    // b and c are running on their agents; a fails.
    for (const t of shards) sim.tasks.accepted(t.id, sim.tasks.dispatched(t.id, t.shard!.preferNode, "c1").attempt);
    sim.tasks.report({
      taskId: shards[0].id,
      attempt: 1,
      outcome: "failed",
      output: undefined,
      error: "bad sensor",
      processingMs: 1,
      peakMemoryBytes: 0,
      startedAt: undefined,
      finishedAt: undefined,
    });
    const parent = sim.tasks.get(id);
    expect(parent.state).toBe("failed");
    expect(parent.error).toMatch(/^shard 0 \(points 0\.\.100\) failed: bad sensor/);
    expect(sim.cancelled.sort()).toEqual([shards[1].id, shards[2].id].sort());
  });

  it("cancelling the parent cancels its shards", () => {
    const sim = new ShardSim(three());
    const id = sim.submit(simSpec({ input: { values } }));
    sim.driver.tick();
    sim.tasks.cancel(id, "not needed");
    expect(sim.shardsOf(id).map((t) => t.state)).toEqual(["cancelled", "cancelled", "cancelled"]);
  });

  it("waits while no node can take a shard, and splits once one can", () => {
    const sim = new ShardSim([]);
    const id = sim.submit(simSpec({ input: { values }, clusterId: "c1" }));
    sim.driver.tick();
    expect(sim.tasks.get(id).state).toBe("queued");
    expect(sim.driver.waitReason(id)).toMatch(/no ready node/);
    sim.nodes = three();
    expect(sim.run(id).state).toBe("succeeded");
  });

  it("anomaly runs its prepare round on the shards before scoring (2 steps × 3 shards)", () => {
    const sim = new ShardSim(three());
    const id = sim.submit(simSpec({ handler: "anomaly", input: { values: [...values, 1000], threshold: 3 } }));
    const parent = sim.run(id);
    expect(parent.state).toBe("succeeded");
    expect(parent.split!.total).toBe(6);
    expect(sim.shardsOf(id).map((t) => t.shard!.phase)).toEqual(["prepare", "prepare", "prepare", "partial", "partial", "partial"]);
    expect((parent.output as { anomalies: { index: number }[] }).anomalies.map((a) => a.index)).toEqual([300]);
  });

  it("a custom handler's merge runs as one more task on an agent", () => {
    const double: Handler = {
      name: "double",
      run: (input) => ({ values: Array.from(input.values as number[], (v) => v * 2) }),
      merge: (partials) => ({ values: partials.flatMap((p) => (p as { values: number[] }).values) }),
    };
    const nodes = three().map((n) => ({ ...n, handlers: new Set(["double"]) }));
    const sim = new ShardSim(nodes, undefined, [double]);
    const id = sim.submit(simSpec({ handler: "double", input: { values: [1, 2, 3, 4, 5] } }));
    const parent = sim.run(id);
    expect(parent.state, parent.error).toBe("succeeded");
    expect(parent.output).toEqual({ values: [2, 4, 6, 8, 10] });
    expect(parent.split!.remoteMerge).toBe(true);
    expect(parent.split!.total).toBe(4);
  });
});

describe("checkSplittable", () => {
  it("refuses a handler without merge, and an input without points, with INVALID_ARGUMENT saying what to do", () => {
    const ok = new Set(["stats"]);
    expect(() => checkSplittable(simSpec({ handler: "plain", input: { values: [1] } }), ok)).toThrow(InvalidArgumentError);
    expect(() => checkSplittable(simSpec({ handler: "plain", input: { values: [1] } }), ok)).toThrow(
      /"plain" cannot run in PROCESSING_MODE_DISTRIBUTED: it exports no merge function/,
    );
    expect(() => checkSplittable(simSpec({ handler: "stats", input: { x: 1 } }), ok)).toThrow(/needs a non-empty series, "values" array or "samples" array/);
    expect(() => checkSplittable(simSpec({ handler: "stats", input: { values: [1] } }), ok)).not.toThrow();
  });
});
