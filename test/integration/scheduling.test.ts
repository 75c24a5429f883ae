// Scheduling over real processes: priority under backlog, memory-aware placement, retry after an agent dies,
// and cancel and deadline reaching a running task.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { NodeState, Priority, TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { Fleet, ROOT, submitRequest, waitFor } from "../helpers/fleet.js";

const FIXTURES = join(ROOT, "test/fixtures/handlers");
let fleet: Fleet;
afterEach(async () => fleet?.stop());

describe("priority under backlog", () => {
  it("100 CRITICAL tasks submitted behind 5,000 BACKGROUND tasks all start before the backlog drains", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.startAgent("site-a", ["--workers", "2"]);
    const values = Array.from({ length: 200 }, (_, i) => i);
    const background: string[] = [];
    for (let b = 0; b < 5; b++) {
      const { results } = await fleet.clients.tasks.submitTasks({
        tasks: Array.from({ length: 1000 }, () => submitRequest({ handler: "stats", priority: Priority.BACKGROUND, input: { values } })),
      });
      background.push(...results.map((r) => r.accepted!.taskId));
    }
    const { results } = await fleet.clients.tasks.submitTasks({
      tasks: Array.from({ length: 100 }, () => submitRequest({ handler: "stats", priority: Priority.CRITICAL, input: { values } })),
    });
    const critical = results.map((r) => r.accepted!.taskId);
    expect(critical).toHaveLength(100);

    // When the last CRITICAL task has finished, most of the backlog must still be waiting.
    for (const id of critical) expect((await fleet.finish(id, 120_000)).state).toBe(TaskState.SUCCEEDED);
    const { tasks: stillQueued } = await fleet.clients.tasks.listTasks({ states: [TaskState.QUEUED], pageSize: 1000 });
    expect(stillQueued.length).toBeGreaterThan(0);

    // And by dispatch time: every CRITICAL attempt was dispatched before the last BACKGROUND one.
    const dispatchedAt = async (id: string) => {
      const t = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
      return t.attempts[0]?.dispatchedAt ? timestampMs(t.attempts[0].dispatchedAt) : Infinity;
    };
    const lastCritical = Math.max(...(await Promise.all(critical.map(dispatchedAt))));
    const lastBackground = await dispatchedAt(background.at(-1)!);
    expect(lastCritical).toBeLessThan(lastBackground);
  }, 240_000);
});

describe("placement", () => {
  it("places a task only on a node whose free memory fits it", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const small = await fleet.startAgent("site-a", ["--workers", "2", "--max-memory", "1Gi"]);
    const big = await fleet.startAgent("site-a", ["--workers", "2", "--max-memory", "8Gi"]);
    for (let i = 0; i < 4; i++) {
      const t = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [1, 2] }, requiredMemoryBytes: 3n << 30n }));
      expect(t.state).toBe(TaskState.SUCCEEDED);
      expect(t.attempts.map((a) => a.nodeId)).toEqual([big.nodeId]);
    }
    // Small tasks may go to either; the small node is still used.
    expect(small.nodeId).not.toBe(big.nodeId);
  });
});

describe("faults", () => {
  it("an agent killed mid-task gets its task retried on another node", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator(["--disconnect-window", "0"]);
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 4000 } });
    await waitFor("task running on the first agent", async () => {
      const t = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
      return t.state === TaskState.RUNNING && t.assignedNode === a.nodeId;
    });
    const b = await fleet.startAgent("site-b", ["--workers", "1", "--handlers", FIXTURES]);
    a.p.kill("SIGKILL");
    const t = await fleet.finish(id, 60_000);
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(t.attempts.map((x) => x.nodeId)).toEqual([a.nodeId, b.nodeId]);
    // With no disconnect window the lost node goes straight through disconnected to down.
    const { nodes } = await fleet.clients.clusters.listNodes({});
    const lost = nodes.find((n) => n.id === a.nodeId)!;
    expect(lost.state).toBe(NodeState.DOWN);
    expect(lost.history.map((h) => h.state)).toEqual([NodeState.READY, NodeState.DISCONNECTED, NodeState.DOWN]);
  });

  it("CancelTask reaches the agent running the task", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES, "--log-level", "debug"]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 60_000 } });
    await waitFor("running", async () => (await fleet.clients.tasks.getTask({ taskId: id })).task!.state === TaskState.RUNNING);
    const res = await fleet.clients.tasks.cancelTask({ taskId: id, reason: "operator changed their mind" });
    expect(res.task!.state).toBe(TaskState.CANCELLED);
    await waitFor("agent log shows the attempt cancelled", () => /"outcome":"cancelled"/.test(a.p.output()) || undefined);
    // The slot is free again: a new task runs on the single worker.
    expect((await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [1] } }))).state).toBe(TaskState.SUCCEEDED);
  });

  it("a deadline expires a running task and the agent stops it", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES, "--log-level", "debug"]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 60_000 }, deadlineMs: Date.now() + 1500 });
    const t = await fleet.finish(id);
    expect(t.state).toBe(TaskState.EXPIRED);
    expect(t.error).toMatch(/deadline/);
    await waitFor("agent stopped the attempt", () => /"outcome":"(cancelled|timed-out)"/.test(a.p.output()) || undefined);
  });

  it("a queued task whose deadline passes before any node can take it is expired", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const id = await fleet.submit({ handler: "stats", input: { values: [1] }, deadlineMs: Date.now() + 500 });
    const t = await fleet.finish(id);
    expect(t.state).toBe(TaskState.EXPIRED);
    expect(t.error).toMatch(/before the task could be placed/);
  });
});
