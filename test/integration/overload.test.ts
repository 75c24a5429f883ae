// One client connection flooding the coordinator: every call is either accepted or refused at once with
// RESOURCE_EXHAUSTED (nothing done), the connection survives, and every accepted task still runs to the end.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SubmitTaskRequestSchema } from "../../gen/edgeplane/v1/task_pb.js";
import { TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { Fleet, submitRequest } from "../helpers/fleet.js";

let fleet: Fleet;
beforeAll(async () => {
  fleet = new Fleet();
  await fleet.startCoordinator(["--max-calls-per-connection", "100"]);
  await fleet.startAgent("site-a", ["--workers", "4"]);
});
afterAll(async () => fleet.stop());

describe("a flood on one connection", () => {
  it("gets RESOURCE_EXHAUSTED past --max-calls-per-connection, never a killed connection; accepted work is not lost", async () => {
    const label = { flood: String(Date.now()) };
    const req = () => {
      const r = submitRequest({ handler: "stats", input: { values: [1, 2, 3, 4] } });
      r.task!.labels = label;
      return create(SubmitTaskRequestSchema, r);
    };
    const outcomes = await Promise.all(
      Array.from({ length: 3000 }, async (): Promise<{ id: string } | { err: ConnectError }> => {
        try {
          return { id: (await fleet.clients.tasks.submitTask(req())).taskId };
        } catch (err) {
          return { err: ConnectError.from(err) };
        }
      }),
    );
    const accepted = outcomes.flatMap((o) => ("id" in o ? [o.id] : []));
    const refused = outcomes.flatMap((o) => ("err" in o ? [o.err] : []));
    expect(accepted.length).toBeGreaterThanOrEqual(100);
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) {
      expect(e.code).toBe(Code.ResourceExhausted);
      expect(e.rawMessage).toMatch(/calls in flight.*--max-calls-per-connection/);
    }
    // The same connection still works, and everything accepted runs to the end.
    expect((await fleet.clients.clusters.getStatus({})).nodes).toBeGreaterThan(0);
    const done = new Map<string, TaskState>();
    for await (const res of fleet.clients.tasks.watchTasks({ taskIds: accepted, terminalOnly: true })) for (const t of res.tasks) done.set(t.id, t.state);
    expect(done.size).toBe(accepted.length);
    expect([...done.values()].every((s) => s === TaskState.SUCCEEDED)).toBe(true);
  }, 120_000);
});
