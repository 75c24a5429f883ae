import { describe, expect, it } from "vitest";
import { AlreadyExistsError, InvalidArgumentError } from "../../coordinator/errors.js";
import { NodeRegistry, reservationKey, type RegisterInfo } from "../../coordinator/nodes/registry.js";

function setup() {
  let mono = 0,
    wall = 1_000_000;
  const reg = new NodeRegistry({ mono: () => mono, wall: () => wall });
  return {
    reg,
    tick: (ms: number) => {
      mono += ms;
      wall += ms;
    },
  };
}

const info = (over: Partial<RegisterInfo> = {}): RegisterInfo => ({
  nodeId: "n1",
  clusterId: "c1",
  tier: "edge",
  labels: {},
  deviceIds: ["d1"],
  handlers: ["stats"],
  totalCpuMillis: 2000,
  totalMemoryBytes: 4000,
  freeCpuMillis: 1500,
  freeMemoryBytes: 3000,
  maxConcurrent: 2,
  sessionId: "s1",
  address: "peer",
  ...over,
});

const hb = (free: number, mem: number, running: string[] = []) => ({
  freeCpuMillis: free,
  freeMemoryBytes: mem,
  load: 0.1,
  runningTaskIds: new Set(running),
  rttMs: 2,
  deviceIds: undefined,
});

describe("NodeRegistry", () => {
  it("creates a cluster when an agent first names it, and refuses a duplicate or empty declaration", () => {
    const { reg } = setup();
    reg.registerNode(info());
    expect(reg.getCluster("c1")?.declared).toBe(false);
    expect(reg.registerCluster("c1", "edge", {}).declared).toBe(true);
    expect(() => reg.registerCluster("c1", "edge", {})).toThrow(AlreadyExistsError);
    expect(() => reg.registerCluster("", "edge", {})).toThrow(InvalidArgumentError);
  });

  it("free capacity is the last report minus what was dispatched since", () => {
    const { reg } = setup();
    const n = reg.registerNode(info());
    reg.reserve("n1", { taskId: "t1", attempt: 1, cpuMillis: 500, memoryBytes: 1000, rank: 2, dispatchedAt: 0, estimatedMs: 0 });
    expect(reg.free(n)).toEqual({ cpuMillis: 1000, memoryBytes: 2000 });
    // The next heartbeat lists t1: its use is inside the measured figure now, not subtracted twice.
    reg.heartbeat("n1", "s1", hb(900, 1900, [reservationKey("t1", 1)]));
    expect(reg.free(n)).toEqual({ cpuMillis: 900, memoryBytes: 1900 });
    reg.release("n1", "t1", 1);
    expect(n.reservations.size).toBe(0);
  });

  it("marks a silent node disconnected, then down after the window; a heartbeat brings a disconnected node back", () => {
    const { reg, tick } = setup();
    const n = reg.registerNode(info());
    tick(2999);
    expect(reg.sweep(3000)).toEqual([]);
    tick(2);
    expect(reg.sweep(3000).map((x) => x.id)).toEqual(["n1"]);
    expect(n.state).toBe("disconnected");
    reg.heartbeat("n1", "s1", hb(1, 1));
    expect(n.state).toBe("ready");
    reg.streamClosed("n1", "s1", "closed");
    tick(500);
    expect(reg.expireDisconnected(1000)).toEqual([]);
    tick(500);
    expect(reg.expireDisconnected(1000).map((x) => x.id)).toEqual(["n1"]);
    expect(n.state).toBe("down");
    expect(n.history.map((h) => h.state)).toEqual(["ready", "disconnected", "ready", "disconnected", "down"]);
  });

  it("ignores a close from an old session after the node re-registered", () => {
    const { reg } = setup();
    reg.registerNode(info());
    reg.registerNode(info({ sessionId: "s2" }));
    expect(reg.streamClosed("n1", "s1", "old stream")).toBeUndefined();
    expect(reg.getNode("n1").state).toBe("ready");
  });

  it("health is the share of a cluster's nodes that are healthy", () => {
    const { reg } = setup();
    for (const id of ["a", "b", "c", "d"]) reg.registerNode(info({ nodeId: id, sessionId: id }));
    reg.streamClosed("a", "a", "x");
    expect(reg.health("c1")).toBe(0.75);
  });

  it("drain: a busy node is draining until its last task ends, an idle one is drained at once", () => {
    const { reg } = setup();
    reg.registerNode(info({ nodeId: "busy", sessionId: "1" }));
    reg.registerNode(info({ nodeId: "idle", sessionId: "2" }));
    reg.reserve("busy", { taskId: "t", attempt: 1, cpuMillis: 1, memoryBytes: 1, rank: 2, dispatchedAt: 0, estimatedMs: 0 });
    expect(reg.drain("busy").state).toBe("draining");
    expect(reg.drain("idle").state).toBe("drained");
    reg.release("busy", "t", 1);
    expect(reg.getNode("busy").state).toBe("drained");
  });

  it("knows which node serves a device, following heartbeat updates", () => {
    const { reg } = setup();
    reg.registerNode(info());
    expect(reg.nodeForDevice("d1")?.id).toBe("n1");
    reg.heartbeat("n1", "s1", { ...hb(1, 1), deviceIds: ["d2"] });
    expect(reg.nodeForDevice("d1")).toBeUndefined();
    expect(reg.nodeForDevice("d2")?.id).toBe("n1");
  });

  it("a node down for longer than the memory no longer holds its cluster's health down", () => {
    let mono = 0;
    const reg = new NodeRegistry({ mono: () => mono, wall: () => mono }, () => {}, 60_000);
    for (const id of ["a", "b"]) reg.registerNode(info({ nodeId: id, sessionId: id }));
    reg.streamClosed("a", "a", "gone");
    reg.expireDisconnected(0);
    expect(reg.health("c1")).toBe(0.5);
    mono += 60_001;
    reg.heartbeat("b", "b", hb(1, 1));
    expect(reg.health("c1")).toBe(1);
    expect(reg.getNode("a").state).toBe("down");
  });
});
