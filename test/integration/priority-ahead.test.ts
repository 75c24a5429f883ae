// A HIGH or CRITICAL task submitted behind a NORMAL backlog on a real fleet (coordinator and agent processes) runs long before
// the backlog is done, although dispatch-ahead keeps the agent's slot and its ahead queue full of NORMAL work: while
// it waits, the coordinator sends no more NORMAL work ahead to that node, so the queue drains and it gets the slot.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Priority, TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { Fleet, ROOT, submitRequest } from "../helpers/fleet.js";

let fleet: Fleet;
afterEach(async () => fleet?.stop());

describe("priority with dispatch-ahead", () => {
  it.each([
    ["HIGH", Priority.HIGH],
    ["CRITICAL", Priority.CRITICAL],
  ])(
    "a %s task behind 100 NORMAL 50 ms tasks on a one-slot agent runs while most of them still wait",
    async (_name, priority) => {
      fleet = new Fleet();
      // Four attempts ahead whatever their length (no bound in time): the agent's queue is never empty.
      await fleet.startCoordinator(["--dispatch-ahead", "4", "--dispatch-ahead-time", "0"]);
      await fleet.startAgent("site-a", ["--workers", "1", "--devices", "sensor-1", "--handlers", join(ROOT, "test/fixtures/handlers")]);
      const normal = Array.from({ length: 100 }, () => submitRequest({ handler: "busy", input: { ms: 50 }, deviceId: "sensor-1" }));
      await fleet.clients.tasks.submitTasks({ tasks: normal });
      const high = await fleet.submit({ handler: "busy", input: { ms: 1 }, deviceId: "sensor-1", priority });
      const done = await fleet.finish(high, 60_000);
      expect(done.state).toBe(TaskState.SUCCEEDED);
      // Without the rule the agent's queue was refilled with NORMAL work after every result, and the task (CRITICAL
      // preempts only LOW and BACKGROUND work) got a
      // slot only once the backlog was through (about 5 s; nothing left queued). With it, it waits for the queue ahead
      // of it (a running task and at most 4 queued, about 250 ms).
      const { queuedTasks } = await fleet.clients.clusters.getStatus({});
      expect(Number(queuedTasks)).toBeGreaterThan(50);
    },
    120_000,
  );
});
