// Device locality: agents announce the devices they serve, the coordinator knows which node serves each device,
// and a change on the node (devices file + SIGHUP) reaches the coordinator through the heartbeat.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Fleet, waitFor } from "../helpers/fleet.js";

const fleet = new Fleet();
afterAll(async () => fleet.stop());

const servedBy = async (deviceId: string) => (await fleet.clients.clusters.listNodes({ deviceId })).nodes.map((n) => n.id);

describe("device locality", () => {
  it("looks up the node serving a device, and follows a device moving to another node", async () => {
    await fleet.startCoordinator(["--heartbeat-interval", "200ms"]);
    const file = join(fleet.dir, "devices.txt");
    writeFileSync(file, "pump-1, pump-2\n# spare: pump-9\n");
    const a = await fleet.startAgent("plant", ["--devices-file", file]);
    const b = await fleet.startAgent("plant", ["--devices", "valve-1"]);
    expect(await servedBy("pump-2")).toEqual([a.nodeId]);
    expect(await servedBy("valve-1")).toEqual([b.nodeId]);
    expect(await servedBy("pump-9")).toEqual([]);

    writeFileSync(file, "pump-2\npump-3\n");
    a.p.kill("SIGHUP");
    await waitFor("pump-3 served by a", async () => (await servedBy("pump-3")).includes(a.nodeId) || undefined, 10_000);
    expect(await servedBy("pump-1")).toEqual([]);
    // The CLI shows the same lookup.
    const { out } = await fleet.cli(["nodes", "--device", "pump-3"]);
    expect(out).toContain(a.nodeId);
    expect(out).not.toContain(b.nodeId);
  });
});
