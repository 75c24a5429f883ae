// Conversions between the agent's wire messages and the executor (agent/convert.ts).
import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, timestampMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DispatchSchema, ShardPhase, TaskResultSchema } from "../../gen/edgeplane/v1/agent_pb.js";
import { readValueField } from "../../lib/value-wire.js";
import { AttemptOutcome, NumericSeriesSchema, Priority, Tier } from "../../gen/edgeplane/v1/types_pb.js";
import { batchMessage, execRequestFromDispatch, heartbeatMessage, refusedResult, registerMessage, taskResultFromExec } from "../../agent/convert.js";
import type { ExecResult } from "../../agent/executor/types.js";

const cap = { totalCpuMillis: 2000, totalMemoryBytes: 8e9, freeCpuMillis: 1500, freeMemoryBytes: 4e9, load: 0.25 };
const times = { processingMs: 12.5, peakMemoryBytes: 1048576.4, startedAt: 1_700_000_000_000, finishedAt: 1_700_000_000_013 };

describe("Dispatch → executor request", () => {
  it("carries input, series, memory limit, deadline and priority rank", () => {
    const d = create(DispatchSchema, {
      taskId: "t-1",
      attempt: 3,
      handler: "stats",
      input: fromJson(ValueSchema, { window: 5, tags: ["a"] }),
      series: create(NumericSeriesSchema, { values: [1.5, 2.5], timestamps: [10n, 20n] }),
      memoryLimitBytes: 64n * 1024n * 1024n,
      deadline: timestampFromMs(1_700_000_000_123),
      priority: Priority.LOW,
    });
    expect(execRequestFromDispatch(d)).toEqual({
      taskId: "t-1",
      attempt: 3,
      handler: "stats",
      input: { window: 5, tags: ["a"] },
      series: { values: [1.5, 2.5], timestamps: [10, 20] },
      memoryLimitBytes: 64 * 1024 * 1024,
      deadline: 1_700_000_000_123,
      shard: undefined,
      rank: 3,
    });
    // No priority on the wire: NORMAL.
    expect(execRequestFromDispatch(create(DispatchSchema, { taskId: "t-1", attempt: 1, handler: "stats" })).rank).toBe(2);
    expect(execRequestFromDispatch(create(DispatchSchema, { taskId: "t-1", attempt: 1, handler: "stats", priority: Priority.CRITICAL })).rank).toBe(0);
  });

  it("leaves out what the dispatch does not have (no input, an empty series, no deadline)", () => {
    const d = create(DispatchSchema, { taskId: "t-2", attempt: 1, handler: "stats", series: create(NumericSeriesSchema, {}) });
    const r = execRequestFromDispatch(d);
    expect(r.input).toBeUndefined();
    expect(r.series).toBeUndefined();
    expect(r.deadline).toBeUndefined();
    expect(r.memoryLimitBytes).toBe(0);
  });

  it("keeps a Float64Array of values as it is (the stream decodes big series into one)", () => {
    const values = new Float64Array([1, 2, 3]);
    const d = create(DispatchSchema, { taskId: "t", attempt: 1, handler: "stats" });
    d.series = create(NumericSeriesSchema, { values: [] });
    (d.series as { values: unknown }).values = values;
    expect(execRequestFromDispatch(d).series?.values).toBe(values);
  });

  it("maps each shard phase and its context", () => {
    const base = { taskId: "t-s", attempt: 1, handler: "anomaly" };
    const shard = (phase: ShardPhase) =>
      execRequestFromDispatch(
        create(DispatchSchema, {
          ...base,
          shard: { parentId: "t-p", shardIndex: 1, shardCount: 3, offset: 500n, phase, round: 2, global: fromJson(ValueSchema, { mean: 4 }) },
        }),
      ).shard;
    expect(shard(ShardPhase.PREPARE)).toEqual({ phase: "prepare", round: 2, offset: 500, global: { mean: 4 } });
    expect(shard(ShardPhase.PARTIAL)).toEqual({ phase: "partial", round: 2, offset: 500, global: { mean: 4 } });
    expect(shard(ShardPhase.MERGE)?.phase).toBe("merge");
    expect(shard(ShardPhase.UNSPECIFIED)?.phase).toBe("partial");
  });
});

describe("executor result → TaskResult", () => {
  it("reports a completed attempt with its output and measurements", () => {
    const r = taskResultFromExec("t-1", 2, { type: "completed", output: { mean: 2, n: [1, 2] }, ...times });
    expect(r.taskId).toBe("t-1");
    expect(r.attempt).toBe(2);
    expect(r.outcome).toBe(AttemptOutcome.SUCCEEDED);
    expect(r.error).toBe("");
    expect(readValueField(r, TaskResultSchema.field.output)).toEqual({ mean: 2, n: [1, 2] });
    // and it is a Value on the wire
    expect(toJson(ValueSchema, fromBinary(TaskResultSchema, toBinary(TaskResultSchema, r)).output!)).toEqual({ mean: 2, n: [1, 2] });
    expect(r.processingTime!.seconds).toBe(0n);
    expect(r.processingTime!.nanos).toBe(12_500_000);
    expect(r.peakMemoryBytes).toBe(1048576n);
    expect(timestampMs(r.startedAt!)).toBe(times.startedAt);
    expect(timestampMs(r.finishedAt!)).toBe(times.finishedAt);
    expect(r.permanent).toBe(false);
  });

  it("maps failed (permanent or not), cancelled and timed-out", () => {
    const cases: [ExecResult, AttemptOutcome, string, boolean][] = [
      [{ type: "failed", error: "bad input: values missing", permanent: true, ...times }, AttemptOutcome.FAILED, "bad input: values missing", true],
      [{ type: "failed", error: "worker crashed", ...times }, AttemptOutcome.FAILED, "worker crashed", false],
      [{ type: "cancelled", reason: "attempt superseded", ...times }, AttemptOutcome.CANCELLED, "attempt superseded", false],
      [{ type: "timed-out", ...times }, AttemptOutcome.TIMED_OUT, "deadline reached while running", false],
    ];
    for (const [res, outcome, error, permanent] of cases) {
      const r = taskResultFromExec("t", 1, res);
      expect([r.outcome, r.error, r.permanent, readValueField(r, TaskResultSchema.field.output)], res.type).toEqual([outcome, error, permanent, undefined]);
    }
  });

  it("reports output that is not JSON as a failure saying why", () => {
    const r = taskResultFromExec("t", 1, { type: "completed", output: { n: 10n }, ...times });
    expect(r.outcome).toBe(AttemptOutcome.FAILED);
    expect(r.error).toMatch(/^handler output is not JSON-serialisable: /);
    expect(readValueField(r, TaskResultSchema.field.output)).toBeUndefined();
  });

  it("a refused dispatch is a cancelled result with nothing measured", () => {
    const r = refusedResult({ taskId: "t", attempt: 4 }, "node n1 is draining", 1_700_000_000_000);
    expect([r.taskId, r.attempt, r.outcome, r.error, r.peakMemoryBytes, durationMs(r.processingTime!)]).toEqual([
      "t",
      4,
      AttemptOutcome.CANCELLED,
      "node n1 is draining",
      0n,
      0,
    ]);
  });
});

describe("messages the agent sends", () => {
  it("register carries the node's facts, measured capacity and what still runs", () => {
    const m = registerMessage(
      {
        nodeId: "n1",
        clusterId: "site-a",
        tier: "cloud",
        labels: { rack: "3" },
        deviceIds: ["d1"],
        handlers: ["stats"],
        distributable: ["stats"],
        maxConcurrentTasks: 4,
        agentVersion: "9.9.9",
        running: [{ taskId: "t-1", attempt: 2 }],
        draining: true,
      },
      cap,
    );
    expect(m.msg.case).toBe("register");
    const r = m.msg.value as Extract<typeof m.msg, { case: "register" }>["value"];
    expect([
      r.nodeId,
      r.clusterId,
      r.tier,
      r.labels,
      r.deviceIds,
      r.handlers,
      r.distributableHandlers,
      r.maxConcurrentTasks,
      r.agentVersion,
      r.draining,
    ]).toEqual(["n1", "site-a", Tier.CLOUD, { rack: "3" }, ["d1"], ["stats"], ["stats"], 4, "9.9.9", true]);
    expect([r.totalCpuMillis, r.totalMemoryBytes, r.freeCpuMillis, r.freeMemoryBytes]).toEqual([2000, 8_000_000_000n, 1500, 4_000_000_000n]);
    expect(r.running.map((x) => [x.taskId, x.attempt])).toEqual([["t-1", 2]]);
  });

  it("a heartbeat carries the devices only when they changed", () => {
    const same = heartbeatMessage({ sequence: 5n, capacity: cap, lastRttMs: 1.25 }, [{ taskId: "t", attempt: 1 }], undefined);
    const hb = same.msg.value as Extract<typeof same.msg, { case: "heartbeat" }>["value"];
    expect([hb.sequence, hb.freeCpuMillis, hb.freeMemoryBytes, hb.load, hb.deviceIds, hb.deviceIdsChanged]).toEqual([
      5n,
      1500,
      4_000_000_000n,
      0.25,
      [],
      false,
    ]);
    expect(hb.lastRtt!.nanos).toBe(1_250_000);
    expect(hb.running.map((x) => x.taskId)).toEqual(["t"]);
    const changed = heartbeatMessage({ sequence: 6n, capacity: cap, lastRttMs: undefined }, [], []);
    const hb2 = changed.msg.value as typeof hb;
    expect([hb2.deviceIds, hb2.deviceIdsChanged, hb2.lastRtt]).toEqual([[], true, undefined]);
  });

  it("a batch lists accepts and results", () => {
    const r = taskResultFromExec("t-2", 1, { type: "timed-out", ...times });
    const m = batchMessage([{ taskId: "t-1", attempt: 1 }], [r]);
    const b = m.msg.value as Extract<typeof m.msg, { case: "batch" }>["value"];
    expect(b.accepted.map((a) => [a.taskId, a.attempt])).toEqual([["t-1", 1]]);
    expect(b.results).toEqual([r]);
  });
});
