// Processing modes over real processes: DISTRIBUTED scatter-gather across a cluster's agents (and surviving an agent
// killed mid-shard), LOCAL staying in the device's cluster, CLOUD_FALLBACK reaching the cloud tier only when the edge is full.
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ProcessingMode, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import { Fleet, ROOT, waitFor } from "../helpers/fleet.js";

const FIXTURES = join(ROOT, "test/fixtures/handlers");
const SHARD_FIXTURES = join(ROOT, "test/fixtures/shard-handlers");
let fleet: Fleet;
afterEach(async () => fleet?.stop());

type Stats = { count: number; mean: number; min: number; max: number; stddev: number; p50: number; p95: number; p99: number };

function statsOf(t: Task): Stats {
  expect(t.state, t.error).toBe(TaskState.SUCCEEDED);
  const v = t.output!;
  if (v.kind.case !== "structValue") throw new Error(`output is ${v.kind.case}`);
  const f = v.kind.value.fields;
  const n = (k: string) => (f[k].kind.case === "numberValue" ? (f[k].kind.value as number) : NaN);
  return { count: n("count"), mean: n("mean"), min: n("min"), max: n("max"), stddev: n("stddev"), p50: n("p50"), p95: n("p95"), p99: n("p99") };
}

/**
 * Equal to the LOCAL result: moments up to rounding; percentiles exactly when every shard has at most 1025 values,
 * else within the documented rank bound [x(⌊h⌋-E), x(⌊h⌋+1)] with E = Σ (⌈(nᵢ-1)/1024⌉ - 1) (lib/analytics/README.md).
 */
function expectSameStats(a: Stats, b: Stats, values: number[], t: Task): void {
  expect(a.count).toBe(b.count);
  expect(a.min).toBe(b.min);
  expect(a.max).toBe(b.max);
  expect(Math.abs(a.mean - b.mean)).toBeLessThanOrEqual(1e-9 * Math.abs(b.mean));
  expect(Math.abs(a.stddev - b.stddev)).toBeLessThanOrEqual(1e-9 * Math.abs(b.stddev));
  const e = t.shards.reduce((sum, s) => {
    const n = Number(s.end - s.start);
    return sum + (n <= 1025 ? 0 : Math.ceil((n - 1) / 1024) - 1);
  }, 0);
  const sorted = [...values].sort((x, y) => x - y);
  for (const [got, want, q] of [
    [a.p50, b.p50, 0.5],
    [a.p95, b.p95, 0.95],
    [a.p99, b.p99, 0.99],
  ]) {
    if (e === 0) {
      expect(got).toBe(want);
    } else {
      const lo = Math.floor(q * (sorted.length - 1));
      expect(got).toBeGreaterThanOrEqual(sorted[Math.max(0, lo - e)]);
      expect(got).toBeLessThanOrEqual(sorted[Math.min(sorted.length - 1, lo + 1)]);
    }
  }
}

const readings = (n: number) => Array.from({ length: n }, (_, i) => Math.round(1000 * Math.sin(i * 0.37) + (i % 17) * 3) / 10);

describe("DISTRIBUTED scatter-gather", () => {
  it("a stats task over a 3-agent cluster runs one shard on each node and equals the LOCAL result", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    // Debug logs: the per-shard "running shard" lines are at debug level.
    const agents = [
      await fleet.startAgent("site-a", ["--workers", "2", "--device", "dev-a", "--log-level", "debug"]),
      await fleet.startAgent("site-a", ["--workers", "2", "--log-level", "debug"]),
      await fleet.startAgent("site-a", ["--workers", "2", "--log-level", "debug"]),
    ];
    await fleet.startAgent("site-b", ["--workers", "2"]);
    const values = readings(3000);
    const localId = await fleet.submit({ handler: "stats", input: { values }, deviceId: "dev-a" });
    const id = await fleet.submit({ handler: "stats", input: { values }, deviceId: "dev-a", mode: ProcessingMode.DISTRIBUTED });
    const [local, dist] = [await fleet.finish(localId), await fleet.finish(id)];
    expectSameStats(statsOf(dist), statsOf(local), values, dist);

    // The record says how it was split: 3 shards, one per node of dev-a's cluster, covering the input.
    expect(dist.assignedCluster).toBe("site-a");
    expect(dist.shardsTotal).toBe(3);
    expect(dist.shardsDone).toBe(3);
    expect(dist.splitPhase).toBe("done");
    expect(dist.placementReason).toMatch(/^distributed: device dev-a's cluster site-a; 3 node/);
    expect(new Set(dist.shards.map((s) => s.nodeId))).toEqual(new Set(agents.map((a) => a.nodeId)));
    expect(dist.shards.map((s) => [Number(s.start), Number(s.end)]).flat()[0]).toBe(0);
    expect(Number(dist.shards.at(-1)!.end)).toBe(3000);
    for (const s of dist.shards) expect(s.state).toBe(TaskState.SUCCEEDED);

    // Each agent's log shows it ran a shard of this task.
    for (const a of agents) expect(a.p.output()).toMatch(new RegExp(`"parent":"${id}"[^\\n]*"msg":"running shard"`));

    // Shard tasks are real tasks, hidden from ListTasks unless asked for.
    const listed = (await fleet.clients.tasks.listTasks({ pageSize: 100 })).tasks.map((t) => t.id);
    expect(listed.sort()).toEqual([localId, id].sort());
    const all = (await fleet.clients.tasks.listTasks({ pageSize: 100, includeShards: true })).tasks;
    const shardTasks = all.filter((t) => t.parentId === id);
    expect(shardTasks).toHaveLength(3);
    expect(new Set(shardTasks.map((t) => t.assignedNode))).toEqual(new Set(agents.map((a) => a.nodeId)));
    // The operator's view: `edgeplane task ID` shows the split, one row per shard with its node.
    const view = await fleet.cli(["task", id]);
    expect(view.code).toBe(0);
    expect(view.out).toMatch(/Split\s+3\/3 shards done/);
    for (const a of agents) expect(view.out).toContain(a.nodeId);
  });

  it("the coordinator's --max-shards caps how many nodes a task is split over", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator(["--max-shards", "2"]);
    for (let i = 0; i < 3; i++) await fleet.startAgent("site-a", ["--workers", "2"]);
    const values = readings(3000);
    const dist = await fleet.finish(await fleet.submit({ handler: "stats", input: { values }, mode: ProcessingMode.DISTRIBUTED }));
    expect(dist.state).toBe(TaskState.SUCCEEDED);
    expect(dist.shardsTotal).toBe(2);
    expect(statsOf(dist).count).toBe(3000);
  });

  it("survives an agent killed mid-shard: the shard moves to another node and the merged result is still right", { timeout: 120_000 }, async () => {
    fleet = new Fleet();
    // One of three nodes down leaves the cluster at 2/3 health: below the default 0.7, it would take no new work.
    await fleet.startCoordinator(["--disconnect-window", "0", "--health-threshold", "0.5"]);
    const agents = [];
    for (let i = 0; i < 3; i++) agents.push(await fleet.startAgent("site-a", ["--workers", "2", "--handlers", SHARD_FIXTURES]));
    const values = readings(3000);

    // A custom handler without merge is refused in DISTRIBUTED with a clear message.
    const refused = await fleet.submit({ handler: "plain", input: { values }, mode: ProcessingMode.DISTRIBUTED }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.InvalidArgument);
    expect((refused as ConnectError).message).toMatch(/"plain" cannot run in PROCESSING_MODE_DISTRIBUTED: it exports no merge function/);

    const localId = await fleet.submit({ handler: "stats", input: { values } });
    const id = await fleet.submit({ handler: "slowstats", input: { values, delayMs: 2500 }, clusterId: "site-a", mode: ProcessingMode.DISTRIBUTED });
    const running = await waitFor("every shard running", async () => {
      const t = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
      return t.shards.length === 3 && t.shards.every((s) => s.state === TaskState.RUNNING) ? t : undefined;
    });
    const victimId = running.shards[1].nodeId;
    const victim = agents.find((a) => a.nodeId === victimId)!;
    victim.p.kill("SIGKILL");

    const dist = await fleet.finish(id, 60_000);
    expectSameStats(statsOf(dist), statsOf(await fleet.finish(localId)), values, dist);
    const moved = dist.shards[1];
    expect(moved.nodeId).not.toBe(victimId);
    expect(moved.attempts).toBeGreaterThanOrEqual(2);
    expect(dist.shardsTotal).toBe(4); // 3 shards + the merge step, which runs on an agent for a custom handler
    const shardTask = (await fleet.clients.tasks.getTask({ taskId: moved.taskId })).task!;
    expect(shardTask.attempts[0].nodeId).toBe(victimId);
    expect(shardTask.attempts[0].error).toMatch(/disconnected/);
    // Placed again on its planned node, or on a peer when that one is busy or is the one that died.
    expect(shardTask.attempts.at(-1)!.nodeId).not.toBe(victimId);
    expect(shardTask.attempts.at(-1)!.placementReason).toMatch(/^shard: planned node /);
  });

  it("survives a coordinator kill -9 mid-split: the restarted coordinator takes the shards' results and merges them", { timeout: 120_000 }, async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    for (let i = 0; i < 3; i++) await fleet.startAgent("site-a", ["--workers", "2", "--handlers", SHARD_FIXTURES, "--reconnect-max", "500ms"]);
    const values = readings(3000);
    const localId = await fleet.submit({ handler: "stats", input: { values } });
    const local = await fleet.finish(localId);
    const id = await fleet.submit({ handler: "slowstats", input: { values, delayMs: 2500 }, clusterId: "site-a", mode: ProcessingMode.DISTRIBUTED });
    await waitFor("every shard running", async () => {
      const t = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
      return (t.shards.length === 3 && t.shards.every((s) => s.state === TaskState.RUNNING)) || undefined;
    });
    fleet.coordinator!.kill("SIGKILL");
    await fleet.coordinator!.exited;
    await fleet.startCoordinator();
    const dist = await fleet.finish(id, 60_000);
    expect(dist.state).toBe(TaskState.SUCCEEDED);
    expectSameStats(statsOf(dist), statsOf(local), values, dist);
    // The agents came back inside the disconnect window with their shards' results: nothing ran twice.
    for (const sh of dist.shards.slice(0, 3)) expect(sh.attempts).toBe(1);
  });
});

describe("HYBRID", () => {
  it("the device's node keeps a share (all of a small input), the rest is spread, one merged result equal to LOCAL", async () => {
    fleet = new Fleet();
    // A 1 ms shard overhead instead of 15 ms makes 30,000 points worth spreading on any machine.
    await fleet.startCoordinator(["--split-shard-overhead", "1ms"]);
    const device = await fleet.startAgent("site-a", ["--workers", "2", "--device", "dev-h"]);
    for (let i = 0; i < 2; i++) await fleet.startAgent("site-a", ["--workers", "2"]);
    const values = readings(30_000);
    const local = await fleet.finish(await fleet.submit({ handler: "stats", input: { values }, deviceId: "dev-h" }));
    const hybrid = await fleet.finish(await fleet.submit({ handler: "stats", input: { values }, deviceId: "dev-h", mode: ProcessingMode.HYBRID }));
    expect(hybrid.state).toBe(TaskState.SUCCEEDED);
    expectSameStats(statsOf(hybrid), statsOf(local), values, hybrid);
    expect(hybrid.placementReason).toMatch(new RegExp(`^hybrid: device dev-h's node ${device.nodeId} takes \\d+% \\(no shard overhead\\); [12] more node`));
    expect(hybrid.shards[0].nodeId).toBe(device.nodeId);
    expect(hybrid.shards.length).toBeGreaterThanOrEqual(2);
    expect(hybrid.shards.map((sh) => [Number(sh.start), Number(sh.end)])).toEqual(
      hybrid.shards.map((_, i) => [i === 0 ? 0 : Number(hybrid.shards[i - 1].end), Number(hybrid.shards[i].end)]),
    );
    expect(Number(hybrid.shards.at(-1)!.end)).toBe(30_000);

    // Too few points to pay for shipping: all of it stays on the device's node.
    const few = readings(200);
    const small = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: few }, deviceId: "dev-h", mode: ProcessingMode.HYBRID }));
    expect(small.state).toBe(TaskState.SUCCEEDED);
    expect(small.placementReason).toMatch(/takes all 200 points/);
    expect(small.shards.map((sh) => sh.nodeId)).toEqual([device.nodeId]);
    expect(statsOf(small).count).toBe(200);
  });
});

describe("LOCAL", () => {
  it("never leaves the device's cluster, even when it is busy and another cluster is idle", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.startAgent("site-a", ["--workers", "1", "--device", "dev-a", "--handlers", FIXTURES]);
    await fleet.startAgent("site-b", ["--workers", "4", "--handlers", FIXTURES]);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await fleet.submit({ handler: "busy", input: { ms: 400 }, deviceId: "dev-a" }));
    for (const id of ids) {
      const t = await fleet.finish(id);
      expect(t.state).toBe(TaskState.SUCCEEDED);
      expect(t.assignedCluster).toBe("site-a");
      expect(t.placementReason).toMatch(/^local: node serving device dev-a/);
    }
  });
});

describe("CLOUD_FALLBACK", () => {
  it("stays on the edge when a node fits, and goes to the cloud tier when the edge is full; the reason is recorded", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    const cloud = await fleet.startAgent("cloud", ["--workers", "2", "--tier", "cloud", "--handlers", FIXTURES]);

    const onEdge = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [1, 2, 3] }, mode: ProcessingMode.CLOUD_FALLBACK }));
    expect(onEdge.state).toBe(TaskState.SUCCEEDED);
    expect(onEdge.assignedCluster).toBe("site-a");
    expect(onEdge.placementReason).toMatch(/^edge first/);

    const blocker = await fleet.submit({ handler: "busy", input: { ms: 3000 } });
    await waitFor("the edge node busy", async () => (await fleet.clients.tasks.getTask({ taskId: blocker })).task!.state === TaskState.RUNNING);
    const toCloud = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [1, 2, 3] }, mode: ProcessingMode.CLOUD_FALLBACK }));
    expect(toCloud.state).toBe(TaskState.SUCCEEDED);
    expect(toCloud.assignedCluster).toBe("cloud");
    expect(toCloud.assignedNode).toBe(cloud.nodeId);
    expect(toCloud.placementReason).toMatch(/^cloud fallback: no edge node fits/);
    expect((await fleet.finish(blocker)).assignedCluster).toBe("site-a");
  });

  it("with a deadline, waits for an edge node expected to free up in time; goes to the cloud when it would not", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    await fleet.startAgent("cloud", ["--workers", "2", "--tier", "cloud", "--handlers", FIXTURES]);
    // The edge node's only slot is taken by a task that says (rightly) it needs 4 s.
    const blocker = await fleet.submit({ handler: "busy", input: { ms: 4000 }, estimatedMs: 4000 });
    await waitFor("the edge node busy", async () => (await fleet.clients.tasks.getTask({ taskId: blocker })).task!.state === TaskState.RUNNING);
    const stats = { handler: "stats", input: { values: [1, 2, 3] }, mode: ProcessingMode.CLOUD_FALLBACK, estimatedMs: 100 };
    // Due before the edge frees up: the cloud, at once.
    const tight = await fleet.submit({ ...stats, deadlineMs: Date.now() + 1500 });
    // Due long after: it waits for the edge node and runs there once the blocker ends.
    const patient = await fleet.submit({ ...stats, deadlineMs: Date.now() + 60_000 });
    const t = await fleet.finish(tight);
    expect(t.assignedCluster).toBe("cloud");
    expect(t.placementReason).toMatch(/^cloud fallback: no edge node fits, nor is one expected to free up in time for the deadline/);
    const p = await fleet.finish(patient);
    expect(p.state).toBe(TaskState.SUCCEEDED);
    expect(p.assignedCluster).toBe("site-a");
    expect(p.placementReason).toMatch(/^edge first/);
    const b = await fleet.finish(blocker);
    // It started only once the blocker was done.
    expect(timestampDate(p.attempts[0].dispatchedAt!).getTime()).toBeGreaterThanOrEqual(timestampDate(b.attempts[0].finishedAt!).getTime() - 50);
  });
});
