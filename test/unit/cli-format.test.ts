// Output helpers and views: human units, enum names from the generated descriptors, tables, task and fleet views.
import { create, fromJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { durationFromMs, timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { CliError, grpcCodeName, isUnreachable, reportError, toCliError, UsageError } from "../../cli/errors.js";
import {
  enumLabel,
  formatAge,
  formatBytes,
  formatCpu,
  formatLabels,
  formatMs,
  formatPercent,
  formatTimestamp,
  renderKeyValues,
  renderTable,
  truncate,
} from "../../cli/format.js";
import { renderClusterTable, renderNodeTable, renderStatus } from "../../cli/fleet-view.js";
import { renderTaskDetail, renderTaskTable, renderTransition } from "../../cli/task-view.js";
import { ClusterSchema, GetStatusResponseSchema, NodeSchema } from "../../gen/edgeplane/v1/cluster_pb.js";
import {
  AttemptOutcome,
  NodeState,
  NodeStateSchema,
  Priority,
  PrioritySchema,
  ProcessingModeSchema,
  TaskSchema,
  TaskState,
  TaskStateSchema,
  Tier,
} from "../../gen/edgeplane/v1/types_pb.js";

const now = new Date("2030-01-01T00:10:00.000Z");
const ago = (ms: number) => timestampFromDate(new Date(now.getTime() - ms));

describe("enumLabel", () => {
  it("drops the prefix and lower-cases, from the generated descriptor", () => {
    expect(enumLabel(PrioritySchema, Priority.HIGH)).toBe("high");
    expect(enumLabel(TaskStateSchema, TaskState.RUNNING)).toBe("running");
    expect(enumLabel(ProcessingModeSchema, 4)).toBe("cloud_fallback");
    expect(enumLabel(NodeStateSchema, NodeState.DRAINING)).toBe("draining");
  });

  it("prints values it does not know as numbers", () => {
    expect(enumLabel(PrioritySchema, 42)).toBe("42");
  });
});

describe("human units", () => {
  it.each([
    [0, "0 B"],
    [512, "512 B"],
    [1536, "1.5 KiB"],
    [64 * 1024 ** 2, "64 MiB"],
    [1.25 * 1024 ** 3, "1.3 GiB"],
    [12 * 1024 ** 3, "12 GiB"],
  ])("formatBytes(%d) = %s", (n, s) => {
    expect(formatBytes(n)).toBe(s);
    expect(formatBytes(BigInt(Math.round(n)))).toBe(s);
  });

  it.each([
    [0, "0s"],
    [0.42, "420µs"],
    [3.25, "3.3ms"],
    [250, "250ms"],
    [2500, "2.5s"],
    [12_345, "12.3s"],
    [60_000, "1m"],
    [330_000, "5m30s"],
    [7_500_000, "2h5m"],
    [273_600_000, "3d4h"],
  ])("formatMs(%d) = %s", (ms, s) => {
    expect(formatMs(ms)).toBe(s);
  });

  it("formats CPU like Kubernetes", () => {
    expect(formatCpu(250)).toBe("250m");
    expect(formatCpu(1500)).toBe("1.5");
    expect(formatCpu(4000)).toBe("4");
  });

  it("formats ages kubectl style, never negative", () => {
    expect(formatAge(new Date(now.getTime() - 5_000), now)).toBe("5s");
    expect(formatAge(new Date(now.getTime() - 3 * 60_000), now)).toBe("3m");
    expect(formatAge(new Date(now.getTime() - 2 * 3_600_000), now)).toBe("2h");
    expect(formatAge(new Date(now.getTime() - 4 * 86_400_000), now)).toBe("4d");
    expect(formatAge(new Date(now.getTime() + 5_000), now)).toBe("0s");
  });

  it("formats timestamps with their distance from now", () => {
    expect(formatTimestamp(ago(5_000), now)).toBe("2030-01-01T00:09:55.000Z (5s ago)");
    expect(formatTimestamp(ago(-30_000), now)).toBe("2030-01-01T00:10:30.000Z (in 30s)");
    expect(formatTimestamp(undefined, now)).toBe("-");
  });

  it("formats shares, labels and long text", () => {
    expect(formatPercent(0.256)).toBe("26%");
    expect(formatLabels({ b: "2", a: "1" })).toBe("a=1,b=2");
    expect(formatLabels({})).toBe("-");
    expect(truncate("abcdef", 4)).toBe("abc…");
  });
});

describe("renderTable and renderKeyValues", () => {
  it("prints a borderless table with aligned columns and no trailing spaces", () => {
    expect(
      renderTable(
        ["ID", "STATE"],
        [
          ["t-1", "queued"],
          ["t-long-id", "ok"],
        ],
      ),
    ).toBe(["ID         STATE", "t-1        queued", "t-long-id  ok"].join("\n"));
  });

  it("aligns values and indents continuation lines", () => {
    expect(
      renderKeyValues([
        ["a", "1"],
        ["long key", "x\ny"],
      ]),
    ).toBe("a         1\nlong key  x\n          y");
  });
});

function sampleTask() {
  return create(TaskSchema, {
    id: "t-1",
    spec: {
      name: "nightly",
      handler: "stats",
      deviceId: "sensor-1",
      priority: Priority.HIGH,
      processingMode: 1,
      input: fromJson(ValueSchema, { values: [1, 2, 3] }),
      requiredMemoryBytes: 64n * 1024n * 1024n,
      maxRetries: 2,
      labels: { zone: "eu" },
    },
    state: TaskState.SUCCEEDED,
    attempt: 2,
    assignedCluster: "site-a",
    assignedNode: "site-a-1",
    output: fromJson(ValueSchema, { mean: 2 }),
    createdAt: ago(120_000),
    updatedAt: ago(60_000),
    finishedAt: ago(60_000),
    queuedTime: durationFromMs(3),
    processingTime: durationFromMs(12),
    peakMemoryBytes: 2n * 1024n * 1024n,
    attempts: [
      { attempt: 1, nodeId: "site-a-2", clusterId: "site-a", outcome: AttemptOutcome.FAILED, error: "worker crashed", dispatchedAt: ago(119_000) },
      {
        attempt: 2,
        nodeId: "site-a-1",
        clusterId: "site-a",
        outcome: AttemptOutcome.SUCCEEDED,
        processingTime: durationFromMs(12),
        peakMemoryBytes: 2n * 1024n * 1024n,
      },
    ],
  });
}

describe("task views", () => {
  it("lists tasks with the documented columns", () => {
    const lines = renderTaskTable([sampleTask()], now).split("\n");
    expect(lines[0].split(/\s+/)).toEqual(["ID", "NAME", "HANDLER", "PRIORITY", "STATE", "ATTEMPT", "NODE", "AGE"]);
    expect(lines[1].split(/\s+/)).toEqual(["t-1", "nightly", "stats", "high", "succeeded", "2", "site-a-1", "2m"]);
  });

  it("shows spec, attempts, timings and pretty output in the detail view", () => {
    const text = renderTaskDetail(sampleTask(), now);
    expect(text).toMatch(/^State\s+succeeded$/m);
    expect(text).toMatch(/^Attempt\s+2 of 3$/m);
    expect(text).toMatch(/^Requires\s+memory 64 MiB, cpu default$/m);
    expect(text).toMatch(/^Queued time\s+3ms$/m);
    expect(text).toMatch(/^Processing time\s+12ms$/m);
    expect(text).toMatch(/^Peak memory\s+2 MiB$/m);
    expect(text).toMatch(/^1\s+site-a-2\s+site-a\s+failed\s+1m ago\s+-\s+-\s+worker crashed$/m);
    expect(text).toMatch(/^2\s+site-a-1\s+site-a\s+succeeded\s+-\s+12ms\s+2 MiB\s+-$/m);
    expect(text).toContain('Output:\n{\n  "mean": 2\n}');
  });

  it("prints one watch line with time, state, attempt and node", () => {
    expect(renderTransition(sampleTask())).toBe("2030-01-01T00:09:00.000Z  succeeded   attempt 2  node site-a-1");
  });
});

describe("fleet views", () => {
  it("lists nodes with free/total capacity in human units", () => {
    const node = create(NodeSchema, {
      id: "site-a-1",
      clusterId: "site-a",
      tier: Tier.EDGE,
      state: NodeState.READY,
      deviceIds: ["sensor-1", "sensor-2"],
      totalCpuMillis: 4000,
      freeCpuMillis: 1500,
      totalMemoryBytes: 8n * 1024n ** 3n,
      freeMemoryBytes: 2n * 1024n ** 3n,
      runningTaskIds: ["t-1"],
      maxConcurrentTasks: 4,
      lastHeartbeat: ago(2_000),
      heartbeatRtt: durationFromMs(3),
    });
    const [head, row] = renderNodeTable([node], now).split("\n");
    expect(head).toMatch(/^ID\s+CLUSTER\s+TIER\s+STATE\s+CPU\s+MEM\s+RUNNING\s+DEVICES\s+LAST HEARTBEAT\s+RTT$/);
    expect(row).toMatch(/^site-a-1\s+site-a\s+edge\s+ready\s+1\.5\/4\s+2 GiB\/8 GiB\s+1\/4\s+sensor-1,sensor-2\s+2s ago\s+3ms$/);
  });

  it("lists clusters with ready/total nodes and percentages", () => {
    const c = create(ClusterSchema, {
      id: "site-a",
      tier: Tier.EDGE,
      nodeCount: 3,
      readyNodeCount: 2,
      health: 2 / 3,
      utilization: 0.25,
      totalCpuMillis: 8000,
      freeCpuMillis: 6000,
      networkLatency: durationFromMs(4),
    });
    expect(renderClusterTable([c]).split("\n")[1]).toMatch(/^site-a\s+edge\s+2\/3\s+67%\s+6\/8\s+0 B\/0 B\s+25%\s+4ms$/);
  });

  it("summarises status and lists per-cluster health", () => {
    const s = create(GetStatusResponseSchema, {
      clusters: 1,
      nodes: 2,
      nodesByState: [{ state: NodeState.READY, count: 2 }],
      queuedTasks: 3n,
      queuedByPriority: [
        { priority: Priority.CRITICAL, count: 1n },
        { priority: Priority.LOW, count: 2n },
      ],
      totalProcessed: 5n,
      succeeded: 4n,
      failed: 1n,
      clusterUtilization: 0.5,
      startedAt: ago(300_000),
      clusterHealth: [{ clusterId: "site-a", tier: Tier.EDGE, health: 1, utilization: 0.5, acceptingWork: true }],
    });
    const text = renderStatus(s, "127.0.0.1:50051", now);
    expect(text).toMatch(/^Coordinator\s+127\.0\.0\.1:50051 \(up 5m, since /m);
    expect(text).toMatch(/^Nodes\s+2 \(2 ready\)$/m);
    expect(text).toMatch(/^Queued tasks\s+3 \(critical 1, low 2\)$/m);
    expect(text).toMatch(/^site-a\s+edge\s+100%\s+50%\s+yes$/m);
  });
});

describe("errors", () => {
  it("names gRPC codes as gRPC does", () => {
    expect(grpcCodeName(Code.InvalidArgument)).toBe("INVALID_ARGUMENT");
    expect(grpcCodeName(Code.NotFound)).toBe("NOT_FOUND");
    expect(grpcCodeName(Code.Canceled)).toBe("CANCELLED");
    expect(grpcCodeName(Code.DeadlineExceeded)).toBe("DEADLINE_EXCEEDED");
  });

  it("turns a ConnectError into `CODE: raw message`", () => {
    const e = toCliError(new ConnectError("task t-9 not found", Code.NotFound), "h:1");
    expect(e).toBeInstanceOf(CliError);
    expect(e.message).toBe("NOT_FOUND: task t-9 not found");
  });

  it("recognises a refused connection anywhere in the cause chain", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    const wrapped = new ConnectError("unavailable", Code.Unavailable, undefined, undefined, refused);
    expect(isUnreachable(wrapped)).toBe(true);
    expect(toCliError(wrapped, "127.0.0.1:1").message).toBe("cannot reach coordinator at 127.0.0.1:1 (is it running? set --coordinator or EDGEPLANE_ADDR)");
    expect(isUnreachable(new ConnectError("x", Code.Unavailable))).toBe(false);
  });

  it("reports `error: …` with exit 1 for failures and 2 for usage errors", () => {
    let err = "";
    expect(reportError(new CliError("NOT_FOUND: gone"), (t) => (err += t))).toBe(1);
    expect(reportError(new UsageError("--memory: bad"), (t) => (err += t))).toBe(2);
    expect(reportError(new ConnectError("bad", Code.InvalidArgument), (t) => (err += t))).toBe(1);
    expect(err).toBe("error: NOT_FOUND: gone\nerror: --memory: bad\nerror: INVALID_ARGUMENT: bad\n");
  });
});
