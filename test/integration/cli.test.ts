// The operator's CLI against a real coordinator and agent: every command, tables and --json, exit codes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "../helpers/fleet.js";

let fleet: Fleet;
let nodeId: string;
beforeAll(async () => {
  fleet = new Fleet();
  await fleet.startCoordinator();
  ({ nodeId } = await fleet.startAgent("site-a", ["--workers", "2", "--devices", "sensor-1"]));
});
afterAll(async () => fleet.stop());

describe("edgeplane CLI", () => {
  it("submit --wait prints the computed result and exits 0", async () => {
    const { code, out } = await fleet.cli(["submit", "--handler", "stats", "--values", "2,4,4,4,5,5,7,9", "--device", "sensor-1", "--wait"]);
    expect(code).toBe(0);
    expect(out).toMatch(/succeeded/);
    expect(out).toMatch(/"mean": 5/);
    expect(out).toMatch(/"stddev": 2\b/);
  });

  it("submit --json from a file of SubmitTaskRequests in the proto JSON shape, then task/tasks/watch show it", async () => {
    const file = join(fleet.dir, "tasks.json");
    writeFileSync(
      file,
      JSON.stringify([
        {
          task: {
            name: "from-file-1",
            handler: "aggregate",
            priority: "PRIORITY_HIGH",
            processingMode: "PROCESSING_MODE_LOCAL",
            input: {
              samples: [
                { t: 0, v: 1 },
                { t: 10, v: 3 },
              ],
              windowMs: 100,
            },
          },
        },
        { task: { name: "from-file-2", handler: "stats", priority: "PRIORITY_LOW", processingMode: "PROCESSING_MODE_LOCAL", input: { values: [1] } } },
      ]),
    );
    const sub = await fleet.cli(["submit", "--file", file, "--json"]);
    expect(sub.code).toBe(0);
    const ids = [...sub.out.matchAll(/"taskId":\s*"(t-[^"]+)"/g)].map((m) => m[1]);
    expect(ids).toHaveLength(2);
    for (const id of ids) await fleet.finish(id);

    const watch = await fleet.cli(["watch", ids[0]]);
    expect(watch.code).toBe(0);
    expect(watch.out).toMatch(/succeeded/);

    const task = await fleet.cli(["task", ids[0]]);
    expect(task.code).toBe(0);
    expect(task.out).toMatch(/from-file-1/);
    expect(task.out).toMatch(new RegExp(nodeId));
    expect(task.out).toMatch(/"mean": 2/);

    const list = await fleet.cli(["tasks", "--json"]);
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.out);
    const names = (listed.tasks ?? listed).map((t: { spec: { name: string } }) => t.spec.name);
    expect(names).toEqual(expect.arrayContaining(["from-file-1", "from-file-2"]));

    const table = await fleet.cli(["tasks", "--state", "succeeded", "--priority", "high"]);
    expect(table.out).toMatch(/ID\s+NAME\s+HANDLER\s+PRIORITY\s+STATE/);
    expect(table.out).toMatch(/from-file-1/);
    expect(table.out).not.toMatch(/from-file-2/);
  });

  it("nodes, clusters and status print tables and JSON with measured figures", async () => {
    const nodes = await fleet.cli(["nodes"]);
    expect(nodes.code).toBe(0);
    expect(nodes.out).toMatch(new RegExp(`${nodeId}\\s+site-a\\s+edge\\s+ready`));
    const nodesJson = JSON.parse((await fleet.cli(["nodes", "--json"])).out);
    expect((nodesJson.nodes ?? nodesJson)[0].deviceIds).toEqual(["sensor-1"]);

    const clusters = await fleet.cli(["clusters"]);
    expect(clusters.out).toMatch(/site-a\s+edge\s+1\/1/);

    const status = JSON.parse((await fleet.cli(["status", "--json"])).out);
    expect(Number(status.totalProcessed)).toBeGreaterThanOrEqual(3);
    expect(status.clusterHealth[0]).toMatchObject({ clusterId: "site-a", health: 1 });
  });

  it("cluster register declares a cluster; a duplicate exits non-zero with ALREADY_EXISTS", async () => {
    expect((await fleet.cli(["cluster", "register", "cloud-eu", "--tier", "cloud", "--label", "region=eu"])).code).toBe(0);
    const dup = await fleet.cli(["cluster", "register", "cloud-eu", "--tier", "cloud"]);
    expect(dup.code).not.toBe(0);
    expect(dup.out).toMatch(/ALREADY_EXISTS/);
  });

  it("bad input exits non-zero with the coordinator's explanation", async () => {
    const bad = await fleet.cli(["submit", "--handler", "nope", "--values", "1"]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/INVALID_ARGUMENT: task\.handler: unknown handler "nope"/);
    const unreachable = await fleet.cli(["status", "--coordinator", "127.0.0.1:1"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.out).toMatch(/cannot reach coordinator at 127\.0\.0\.1:1/);
  });

  it("cancel stops a queued task and drain takes a node out of placement", async () => {
    const drained = await fleet.cli(["drain", nodeId]);
    expect(drained.code).toBe(0);
    expect(drained.out).toMatch(/drain/);
    const sub = await fleet.cli(["submit", "--handler", "stats", "--values", "1", "--json"]);
    const id = /"taskId":\s*"(t-[^"]+)"/.exec(sub.out)![1];
    const cancel = await fleet.cli(["cancel", id, "--reason", "test"]);
    expect(cancel.code).toBe(0);
    expect(cancel.out).toMatch(/cancelled/);
    const history = await fleet.cli(["nodes", "--history"]);
    expect(history.out).toMatch(/drained/);
  });
});
