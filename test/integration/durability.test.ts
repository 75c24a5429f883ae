// Nothing accepted is ever lost: the coordinator is killed and restarted under real load, with a real SQLite
// store, and every acknowledged task reaches a terminal state exactly once.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Priority, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import { readJournal } from "../../agent/journal.js";
import { Fleet, ROOT, isTerminalState, submitRequest, waitFor } from "../helpers/fleet.js";

const FIXTURES = join(ROOT, "test/fixtures/handlers");
let fleet: Fleet;
afterEach(async () => fleet?.stop());

async function restartCoordinator(signal: NodeJS.Signals = "SIGKILL", extra: string[] = []): Promise<void> {
  fleet.coordinator!.kill(signal);
  await fleet.coordinator!.exited;
  await fleet.startCoordinator(extra);
}

async function terminal(ids: string[], timeoutMs = 60_000): Promise<Task[]> {
  return waitFor(
    `${ids.length} tasks terminal`,
    async () => {
      const tasks = await Promise.all(ids.map(async (taskId) => (await fleet.clients.tasks.getTask({ taskId })).task!));
      return tasks.every((t) => isTerminalState(t.state)) ? tasks : undefined;
    },
    timeoutMs,
    200,
  );
}

describe("coordinator crash and restart", () => {
  it("kill -9 during a stream of submissions: every acknowledged task ends once, side effects counted once", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.startAgent("site-a", ["--workers", "2", "--handlers", FIXTURES]);
    const file = join(fleet.dir, "tally.txt");
    writeFileSync(file, "");
    const acked = new Map<string, string>(); // token → task id
    let stop = false;
    let n = 0;
    const submitter = async () => {
      while (!stop) {
        const token = `tok-${n++}`;
        try {
          const id = await fleet.submit({ handler: "tally", input: { file, token } });
          acked.set(token, id);
        } catch {
          // Not acknowledged: the coordinator died mid-call. Such a task may or may not exist; it is not counted.
          await sleep(20);
        }
      }
    };
    const loops = Array.from({ length: 6 }, submitter);
    await waitFor("some tasks acknowledged", () => acked.size >= 150 || undefined);
    fleet.coordinator!.kill("SIGKILL");
    await fleet.coordinator!.exited;
    await sleep(300);
    await fleet.startCoordinator();
    await sleep(500);
    stop = true;
    await Promise.all(loops);

    const tasks = await terminal([...acked.values()]);
    expect(tasks.filter((t) => t.state !== TaskState.SUCCEEDED)).toEqual([]);
    const counts = new Map<string, number>();
    for (const line of readFileSync(file, "utf8").split("\n").filter(Boolean)) counts.set(line, (counts.get(line) ?? 0) + 1);
    for (const token of acked.keys()) expect(counts.get(token), token).toBe(1);
    expect([...counts.values()].filter((c) => c > 1)).toEqual([]);
  }, 180_000);

  it("agent keeps running while the coordinator is down; its results arrive after the restart and are recorded once", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    // Debug logs: "task finished" is a per-task line, at debug level.
    const a = await fleet.startAgent("site-a", ["--workers", "2", "--handlers", FIXTURES, "--reconnect-max", "500ms", "--log-level", "debug"]);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await fleet.submit({ handler: "busy", input: { ms: 1500 } }));
    // How many run at once depends on the CPU the node measures free; one is enough to prove the point.
    const runningIds = await waitFor("a task running", async () => {
      const ts = await Promise.all(ids.map(async (taskId) => (await fleet.clients.tasks.getTask({ taskId })).task!));
      const r = ts.filter((t) => t.state === TaskState.RUNNING).map((t) => t.id);
      return r.length > 0 ? r : undefined;
    });
    fleet.coordinator!.kill("SIGTERM");
    await fleet.coordinator!.exited;
    // While the coordinator is away the running attempts finish on the agent and wait in its journal.
    await waitFor("agent finished offline", () => (a.p.output().match(/"msg":"task finished"/g) ?? []).length >= runningIds.length || undefined, 20_000);
    await fleet.startCoordinator();
    const tasks = await terminal(ids);
    expect(tasks.map((t) => t.state)).toEqual(ids.map(() => TaskState.SUCCEEDED));
    for (const t of tasks) expect(t.attempts).toHaveLength(1);
  }, 120_000);

  it("a result journaled while the coordinator was away survives an agent kill -9: the restarted agent delivers it, nothing runs twice", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const args = ["--workers", "1", "--handlers", FIXTURES, "--reconnect-max", "500ms", "--log-level", "debug"];
    const first = await fleet.startAgent("site-a", args, { nodeId: "site-a-journal" });
    const id = await fleet.submit({ handler: "busy", input: { ms: 1500 } });
    await waitFor("the task running", async () => (await fleet.clients.tasks.getTask({ taskId: id })).task!.state === TaskState.RUNNING || undefined);
    fleet.coordinator!.kill("SIGTERM");
    await fleet.coordinator!.exited;
    // Finished offline: its result is a record in the agent's journal (appended before it is sent), unacknowledged.
    const journalDir = join(fleet.dir, "agent-site-a-journal");
    await waitFor("the result journaled", () => readJournal(journalDir).results.some((r) => r.taskId === id) || undefined, 20_000);
    expect(readJournal(journalDir).results.map((r) => [r.taskId, r.attempt])).toEqual([[id, 1]]);
    // The result is only in the agent's journal now: kill the agent before it can deliver it.
    first.p.kill("SIGKILL");
    await first.p.exited;
    await fleet.startCoordinator();
    // Same node id, so the same --data-dir and journal.
    const second = await fleet.startAgent("site-a", args, { nodeId: "site-a-journal" });
    const [t] = await terminal([id]);
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(t.attempts).toHaveLength(1);
    expect(second.p.output()).toMatch(/"redelivering":1,"msg":"registered with coordinator"/);
    const runs = [first, second].map(
      (a) =>
        a.p
          .output()
          .split("\n")
          .filter((l) => l.includes(`"task":"${id}"`) && l.includes('"msg":"running task"')).length,
    );
    expect(runs).toEqual([1, 0]);
  }, 120_000);

  it("a backlog of 10,000 queued tasks of mixed priority is dispatched in the same order after a restart", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const prios = [Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW, Priority.BACKGROUND];
    const now = Date.now();
    const expected: { id: string; rank: number; deadline: number; i: number }[] = [];
    for (let b = 0; b < 10; b++) {
      const batch = Array.from({ length: 1000 }, (_, k) => {
        const i = b * 1000 + k;
        const rank = (i * 7) % 5;
        const deadline = i % 3 === 0 ? now + 3_600_000 + ((i * 37) % 1000) * 1000 : Infinity;
        return { rank, deadline, i };
      });
      const { results } = await fleet.clients.tasks.submitTasks({
        tasks: batch.map((x) =>
          submitRequest({
            handler: "stats",
            input: { values: [x.i] },
            priority: prios[x.rank],
            deadlineMs: Number.isFinite(x.deadline) ? x.deadline : undefined,
          }),
        ),
      });
      results.forEach((r, k) => expected.push({ id: r.accepted!.taskId, ...batch[k] }));
    }
    await restartCoordinator("SIGKILL");
    const status = await fleet.clients.clusters.getStatus({});
    expect(status.queuedTasks).toBe(10_000n);
    expected.sort((x, y) => x.rank - y.rank || x.deadline - y.deadline || x.i - y.i);
    // Debug logs: "running task" is a per-task line, at debug level.
    const a = await fleet.startAgent("site-a", ["--workers", "1", "--log-level", "debug"]);
    const K = 150;
    await waitFor(`${K} tasks run`, () => (a.p.output().match(/"msg":"running task"/g) ?? []).length >= K || undefined, 60_000);
    const order = [...a.p.output().matchAll(/"task":"(t-[^"]+)","attempt":1,"handler":"stats","msg":"running task"/g)].map((m) => m[1]).slice(0, K);
    expect(order).toEqual(expected.slice(0, K).map((x) => x.id));
  }, 180_000);

  it("the same idempotency key returns the original task across a restart", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    const a = await fleet.submit({ handler: "stats", input: { values: [1] }, idempotencyKey: "order-42" });
    await restartCoordinator("SIGKILL");
    const b = await fleet.submit({ handler: "stats", input: { values: [2] }, idempotencyKey: "order-42" });
    expect(b).toBe(a);
    const { clusters } = await fleet.clients.clusters.listClusters({});
    expect(clusters).toEqual([]);
  });

  it("clusters declared before a restart are still there after it", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.clients.clusters.registerCluster({ clusterId: "plant-7", tier: 2, labels: { site: "lyon" } });
    await sleep(50);
    await restartCoordinator("SIGKILL");
    const { clusters } = await fleet.clients.clusters.listClusters({});
    expect(clusters.map((c) => [c.id, c.labels.site, c.declared])).toEqual([["plant-7", "lyon", true]]);
  });

  it("a corrupt database stops the coordinator with a clear error and is left untouched", async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
    await fleet.submit({ handler: "stats", input: { values: [1] } });
    fleet.coordinator!.kill("SIGTERM");
    await fleet.coordinator!.exited;
    const db = join(fleet.dir, "coordinator", "edgeplane.db");
    expect(existsSync(db)).toBe(true);
    const garbage = randomBytes(64 * 1024);
    writeFileSync(db, garbage);
    const r = await fleet.cli(["coordinator", "--listen", "127.0.0.1:0", "--data-dir", join(fleet.dir, "coordinator")]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(db);
    expect(r.out).toMatch(/corrupt|not a database|unreadable/i);
    expect(readFileSync(db).equals(garbage)).toBe(true);
  });
});
