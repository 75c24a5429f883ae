// WatchTasks over a real coordinator and agent: one stream follows many tasks, by ids or by labels, and says
// clearly what is wrong with a bad request.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SubmitTasksRequestSchema } from "../../gen/edgeplane/v1/task_pb.js";
import { TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import { Fleet, isTerminalState, submitRequest } from "../helpers/fleet.js";

let fleet: Fleet;
beforeAll(async () => {
  fleet = new Fleet();
  await fleet.startCoordinator();
  await fleet.startAgent("site-a", ["--workers", "2"]);
});
afterAll(async () => fleet.stop());

async function submitBatch(n: number, labels: Record<string, string> = {}): Promise<string[]> {
  const reqs = Array.from({ length: n }, (_, i) => {
    const r = submitRequest({ handler: "stats", input: { values: [i, i + 1, i + 2] } });
    r.task!.labels = labels;
    return r;
  });
  const res = await fleet.clients.tasks.submitTasks(create(SubmitTasksRequestSchema, { tasks: reqs }));
  return res.results.map((r) => r.accepted!.taskId);
}

describe("WatchTasks", () => {
  it("by ids: starts with the current states, ends once every task is terminal, newest state per task", async () => {
    const ids = await submitBatch(50);
    const seen = new Map<string, Task>();
    let messages = 0;
    for await (const res of fleet.clients.tasks.watchTasks({ taskIds: ids })) {
      messages++;
      const inMessage = new Set<string>();
      for (const t of res.tasks) {
        expect(inMessage.has(t.id)).toBe(false);
        inMessage.add(t.id);
        expect(t.spec?.input).toBeUndefined();
        seen.set(t.id, t);
      }
    }
    expect(new Set(seen.keys())).toEqual(new Set(ids));
    for (const t of seen.values()) expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(messages).toBeLessThan(50 * 4);
  });

  it("terminal_only: one update per task, each terminal", async () => {
    const ids = await submitBatch(20);
    const updates: Task[] = [];
    for await (const res of fleet.clients.tasks.watchTasks({ taskIds: ids, terminalOnly: true })) updates.push(...res.tasks);
    expect(updates.map((t) => t.id).sort()).toEqual([...ids].sort());
    expect(updates.every((t) => isTerminalState(t.state))).toBe(true);
  });

  it("by labels: reports tasks submitted after the call that carry every label, and no others", async () => {
    const ac = new AbortController();
    const stream = fleet.clients.tasks.watchTasks({ labels: { batch: "b-1", site: "x" }, terminalOnly: true }, { signal: ac.signal });
    const it = stream[Symbol.asyncIterator]();
    const first = it.next();
    // The watch is registered once the server has the call; a short settle keeps the test honest about "after".
    await new Promise((r) => setTimeout(r, 200));
    await submitBatch(5, { batch: "b-2", site: "x" });
    const mine = await submitBatch(10, { batch: "b-1", site: "x" });
    const got = new Set<string>();
    let r = await first;
    while (!r.done) {
      for (const t of r.value.tasks) {
        expect(mine).toContain(t.id);
        got.add(t.id);
      }
      if (got.size === mine.length) break;
      r = await it.next();
    }
    ac.abort();
    expect(got).toEqual(new Set(mine));
  });

  it("refuses a request naming neither ids nor labels, or both, and unknown ids", async () => {
    const code = async (req: Parameters<typeof fleet.clients.tasks.watchTasks>[0]) => {
      try {
        for await (const _ of fleet.clients.tasks.watchTasks(req)) void _;
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      }
    };
    const none = await code({});
    expect(none?.code).toBe(Code.InvalidArgument);
    expect(none?.rawMessage).toMatch(/task_ids or labels/);
    expect((await code({ taskIds: ["t-x"], labels: { a: "b" } }))?.code).toBe(Code.InvalidArgument);
    const unknown = await code({ taskIds: ["t-does-not-exist"] });
    expect(unknown?.code).toBe(Code.NotFound);
    expect(unknown?.rawMessage).toMatch(/t-does-not-exist/);
  });
});
