// Failure handling with real processes and real faults: SIGKILL, SIGSTOP/SIGCONT, preemption and drain.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { NodeState, Priority, TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { Fleet, ROOT, waitFor } from "../helpers/fleet.js";

const FIXTURES = join(ROOT, "test/fixtures/handlers");
const FAST = ["--heartbeat-interval", "200ms", "--heartbeat-miss-limit", "3"];
let fleet: Fleet;
afterEach(async () => fleet?.stop());

const running = (id: string) => async () => {
  const t = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
  return t.state === TaskState.RUNNING ? t : undefined;
};

describe("agent killed mid-task", () => {
  it("with a disconnect window, the task stays with the node for the window, then moves as a new attempt", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator([...FAST, "--disconnect-window", "2s"]);
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 6000 } });
    await waitFor("running on a", running(id));
    const b = await fleet.startAgent("site-b", ["--workers", "1", "--handlers", FIXTURES]);
    a.p.kill("SIGKILL");
    await fleet.waitNodeState(a.nodeId, NodeState.DISCONNECTED, undefined, 5000);
    // Inside the window the task is still assigned to the lost node.
    const during = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
    expect(during.assignedNode).toBe(a.nodeId);
    expect(during.attempt).toBe(1);
    const t = await fleet.finish(id, 30_000);
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(t.attempts.map((x) => x.nodeId)).toEqual([a.nodeId, b.nodeId]);
    expect(t.attempts[0].error).toMatch(/disconnected for more than .*2000 ms/);
  });
});

describe("agent paused with SIGSTOP", () => {
  it("resumed inside the window: the attempt finishes where it ran, nothing runs twice", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator([...FAST, "--disconnect-window", "20s"]);
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    await fleet.startAgent("site-b", ["--workers", "1", "--handlers", FIXTURES]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 1500 }, clusterId: "site-a" });
    await waitFor("running on a", running(id));
    a.p.kill("SIGSTOP");
    await fleet.waitNodeState(a.nodeId, NodeState.DISCONNECTED, undefined, 10_000);
    await sleep(1000);
    a.p.kill("SIGCONT");
    const t = await fleet.finish(id, 30_000);
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0].nodeId).toBe(a.nodeId);
    await fleet.waitNodeState(a.nodeId, NodeState.READY);
  });

  it("resumed after the window: the task ran elsewhere, the late result is ignored, one successful attempt", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator([...FAST, "--disconnect-window", "1s"]);
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 5000 } });
    await waitFor("running on a", running(id));
    const b = await fleet.startAgent("site-b", ["--workers", "1", "--handlers", FIXTURES]);
    a.p.kill("SIGSTOP");
    const t = await fleet.finish(id, 30_000);
    expect(t.state).toBe(TaskState.SUCCEEDED);
    a.p.kill("SIGCONT");
    // The paused agent finishes its attempt and reports it; the coordinator ignores it (fencing).
    await waitFor("coordinator ignores the late result", () => /ignoring result of superseded attempt/.test(fleet.coordinator!.output()) || undefined, 20_000);
    const after = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
    expect(after.attempts.filter((x) => x.outcome === 1 /* SUCCEEDED */)).toHaveLength(1);
    expect(after.assignedNode).toBe(b.nodeId);
    expect(after.attempts.map((x) => x.nodeId)).toEqual([a.nodeId, b.nodeId]);
  });
});

describe("preemption", () => {
  it("a CRITICAL task on a cluster full of BACKGROUND work starts at once; the preempted task completes later", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.startAgent("site-a", ["--workers", "2", "--handlers", FIXTURES]);
    const bg = [
      await fleet.submit({ handler: "busy", input: { ms: 2500 }, priority: Priority.BACKGROUND }),
      await fleet.submit({ handler: "busy", input: { ms: 2500 }, priority: Priority.BACKGROUND }),
    ];
    for (const id of bg) await waitFor("background running", running(id));
    const crit = await fleet.submit({ handler: "stats", input: { values: [1, 2, 3] }, priority: Priority.CRITICAL });
    const c = await fleet.finish(crit);
    expect(c.state).toBe(TaskState.SUCCEEDED);
    expect(c.placementReason).toMatch(/preempted 1 lower-priority attempt/);
    const done = await Promise.all(bg.map((id) => fleet.finish(id, 30_000)));
    expect(done.map((t) => t.state)).toEqual([TaskState.SUCCEEDED, TaskState.SUCCEEDED]);
    const preempted = done.filter((t) => t.preemptions === 1);
    expect(preempted).toHaveLength(1);
    expect(preempted[0].attempts).toHaveLength(2);
    expect(preempted[0].attempts[0].error).toMatch(/preempted by CRITICAL task/);
    // The CRITICAL task finished before the preempted one's second attempt did.
    const status = await fleet.clients.clusters.getStatus({});
    expect(status.preemptions).toBe(1n);
  });
});

describe("drain", () => {
  it("a drained node takes no new work; its running task finishes; then it is drained", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    const b = await fleet.startAgent("site-b", ["--workers", "1", "--handlers", FIXTURES]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 1500 }, clusterId: "site-a" });
    await waitFor("running on a", running(id));
    const res = await fleet.clients.clusters.drainNode({ nodeId: a.nodeId });
    expect(res.node!.state).toBe(NodeState.DRAINING);
    const other = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [1] } }));
    expect(other.assignedNode).toBe(b.nodeId);
    expect((await fleet.finish(id)).attempts.map((x) => x.nodeId)).toEqual([a.nodeId]);
    await fleet.waitNodeState(a.nodeId, NodeState.DRAINED);
    const { nodes } = await fleet.clients.clusters.listNodes({ clusterId: "site-a" });
    expect(nodes[0].history.map((h) => h.state)).toEqual([NodeState.READY, NodeState.DRAINING, NodeState.DRAINED]);
  });

  it("a task still running at the drain deadline is moved to another node", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator(["--drain-grace", "500ms"]);
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 6000 } });
    await waitFor("running on a", running(id));
    const b = await fleet.startAgent("site-b", ["--workers", "1", "--handlers", FIXTURES]);
    await fleet.clients.clusters.drainNode({ nodeId: a.nodeId });
    const t = await fleet.finish(id, 30_000);
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(t.attempts.map((x) => x.nodeId)).toEqual([a.nodeId, b.nodeId]);
    expect(t.attempts[0].error).toMatch(/drain deadline passed/);
    await fleet.waitNodeState(a.nodeId, NodeState.DRAINED);
  });
});

describe("agent shutdown", () => {
  it("SIGTERM drains the agent: it takes no new work, finishes its running task, then exits 0", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", FIXTURES, "--drain-grace", "30s"]);
    const id = await fleet.submit({ handler: "busy", input: { ms: 1500 } });
    await waitFor("running", running(id));
    a.p.kill("SIGTERM");
    await fleet.waitNodeState(a.nodeId, NodeState.DRAINING, undefined, 5000);
    expect(await a.p.exited).toBe(0);
    const t = (await fleet.clients.tasks.getTask({ taskId: id })).task!;
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(t.attempts).toHaveLength(1);
  });
});
