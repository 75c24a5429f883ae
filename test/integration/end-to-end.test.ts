// A task flows client → coordinator → priority scheduler → agent process → result, for every built-in
// handler and a custom one, checked against values computed independently here.
import { fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, Code } from "@connectrpc/connect";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Priority, ProcessingMode, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import { Fleet, ROOT } from "../helpers/fleet.js";

let fleet: Fleet;
beforeAll(async () => {
  fleet = new Fleet();
  await fleet.startCoordinator();
  await fleet.startAgent("site-a", ["--workers", "2", "--handlers", join(ROOT, "test/fixtures/handlers"), "--devices", "sensor-1,sensor-2"]);
  await fleet.startAgent("site-a", ["--workers", "2", "--handlers", join(ROOT, "test/fixtures/handlers")]);
});
afterAll(async () => fleet.stop());

const output = (t: Task) => (t.output ? toJson(ValueSchema, t.output) : undefined) as Record<string, any>;

function percentile(sorted: number[], p: number): number {
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank),
    hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

describe("submit → result over real processes", () => {
  it("stats computes count, mean, min, max, population stddev and interpolated percentiles", async () => {
    const values = Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 100 + i / 10);
    const t = await fleet.finish(await fleet.submit({ handler: "stats", deviceId: "sensor-1", input: { values } }));
    expect(t.state).toBe(TaskState.SUCCEEDED);
    const o = output(t);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    const sorted = [...values].sort((a, b) => a - b);
    expect(o.count).toBe(1001);
    expect(o.mean).toBeCloseTo(mean, 9);
    expect(o.min).toBe(sorted[0]);
    expect(o.max).toBe(sorted.at(-1));
    expect(o.stddev).toBeCloseTo(sd, 9);
    expect(o.p50).toBeCloseTo(percentile(sorted, 50), 9);
    expect(o.p95).toBeCloseTo(percentile(sorted, 95), 9);
    expect(o.p99).toBeCloseTo(percentile(sorted, 99), 9);
    // The agent measured the attempt.
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0].processingTime).toBeDefined();
    expect(Number(t.attempts[0].peakMemoryBytes)).toBeGreaterThan(0);
  });

  it("anomaly flags exactly the points whose z-score exceeds the threshold", async () => {
    const values = [10, 11, 9, 10, 12, 10, 95, 11, 10, 9, -60, 10];
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    const expected = values.map((v, i) => ({ i, v, z: Math.abs(v - mean) / sd })).filter((x) => x.z > 2);
    const t = await fleet.finish(await fleet.submit({ handler: "anomaly", input: { values, threshold: 2 } }));
    expect(t.state).toBe(TaskState.SUCCEEDED);
    const o = output(t);
    expect(o.count).toBe(expected.length);
    expect(o.anomalies.map((a: any) => a.index)).toEqual(expected.map((x) => x.i));
    expect(o.anomalies.map((a: any) => a.value)).toEqual(expected.map((x) => x.v));
    o.anomalies.forEach((a: any, k: number) => expect(Math.abs(a.score)).toBeCloseTo(expected[k].z, 9));
  });

  it("aggregate groups samples into aligned tumbling windows", async () => {
    const samples = [
      { t: 1_000, v: 1 },
      { t: 1_500, v: 3 },
      { t: 2_100, v: 10 },
      { t: 4_999, v: -2 },
      { t: 4_000, v: 4 },
      { t: 1_999, v: 2 },
    ];
    const t = await fleet.finish(await fleet.submit({ handler: "aggregate", input: { samples, windowMs: 1000 } }));
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(output(t).windows).toEqual([
      { start: 1000, count: 3, mean: 2, min: 1, max: 3 },
      { start: 2000, count: 1, mean: 10, min: 10, max: 10 },
      { start: 4000, count: 2, mean: 1, min: -2, max: 4 },
    ]);
  });

  it("threshold raises one alert per point and rule that matches, in input order", async () => {
    const values = [5, 20, 7, 30];
    const rules = [
      { name: "high", op: ">=", value: 20 },
      { name: "exact7", op: "==", value: 7 },
    ];
    const t = await fleet.finish(await fleet.submit({ handler: "threshold", input: { values, rules } }));
    expect(t.state).toBe(TaskState.SUCCEEDED);
    const alerts = output(t).alerts.map((a: any) => [a.rule, a.index, a.value]);
    expect(alerts).toEqual([
      ["high", 1, 20],
      ["exact7", 2, 7],
      ["high", 3, 30],
    ]);
  });

  it("runs a custom handler loaded from --handlers", async () => {
    const t = await fleet.finish(await fleet.submit({ handler: "double", input: { values: [1, 2.5, -3] } }));
    expect(t.state).toBe(TaskState.SUCCEEDED);
    expect(output(t)).toEqual({ values: [2, 5, -6] });
  });

  it("bad handler input is a failed task with the handler's message, and the agent keeps serving", async () => {
    const t = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [1, "x", 3] } }));
    expect(t.state).toBe(TaskState.FAILED);
    expect(t.error).toMatch(/values/);
    // Bad input fails the same way everywhere: one attempt, not maxRetries + 1.
    expect(t.attempts).toHaveLength(1);
    expect(t.error).toMatch(/bad input: not retried/);
    const again = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [4] } }));
    expect(again.state).toBe(TaskState.SUCCEEDED);
  });

  it("a failing attempt is retried up to maxRetries and then fails with every attempt recorded", async () => {
    const t = await fleet.finish(await fleet.submit({ handler: "boom", input: {}, maxRetries: 2 }), 60_000);
    expect(t.state).toBe(TaskState.FAILED);
    expect(t.attempts).toHaveLength(3);
    expect(t.error).toMatch(/gave up after 3 failed attempts/);
  });

  it("WatchTask streams the current state first, then every transition, and closes after the terminal one", async () => {
    const id = await fleet.submit({ handler: "stats", input: { values: [1, 2, 3] } });
    const states: TaskState[] = [];
    for await (const r of fleet.clients.tasks.watchTask({ taskId: id })) states.push(r.task!.state);
    expect(states.at(-1)).toBe(TaskState.SUCCEEDED);
    // Whatever state the first message caught, the rest follow the lifecycle in order with no gaps.
    const order = [TaskState.QUEUED, TaskState.DISPATCHED, TaskState.RUNNING, TaskState.SUCCEEDED];
    const first = order.indexOf(states[0]);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(states).toEqual(order.slice(first));
  });
});

describe("validation over the wire", () => {
  const reject = async (init: Parameters<Fleet["submit"]>[0]) => {
    try {
      await fleet.submit(init);
    } catch (e) {
      return ConnectError.from(e);
    }
    throw new Error("expected the submission to be rejected");
  };

  it("names the field and what to fix", async () => {
    let e = await reject({ handler: "nope" });
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/task\.handler: unknown handler "nope".*known handlers: .*stats/);

    e = await reject({ handler: "stats", priority: Priority.UNSPECIFIED });
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/task\.priority is required: one of PRIORITY_CRITICAL/);

    e = await reject({ handler: "stats", priority: 42 as Priority });
    expect(e.rawMessage).toMatch(/task\.priority: unknown value 42/);

    e = await reject({ handler: "stats", mode: ProcessingMode.UNSPECIFIED });
    expect(e.rawMessage).toMatch(/task\.processingMode is required/);

    e = await reject({ handler: "stats", requiredMemoryBytes: 0n });
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/requiredMemoryBytes: must be a positive number/);

    e = await reject({ handler: "stats", requiredCpuMillis: -5 });
    expect(e.rawMessage).toMatch(/requiredCpuMillis: must be a whole number of millicores >= 0/);

    e = await reject({ handler: "stats", deadlineMs: Date.now() - 1000 });
    expect(e.rawMessage).toMatch(/deadline: .* is already past/);

    e = await reject({ handler: "stats", requiredMemoryBytes: 1n << 50n });
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.rawMessage).toMatch(/more than any node in the fleet has/);
  });

  it("NOT_FOUND for an unknown task and FAILED_PRECONDITION for cancelling a finished one", async () => {
    const e = await fleet.clients.tasks.getTask({ taskId: "t-missing" }).catch((x) => ConnectError.from(x));
    expect((e as ConnectError).code).toBe(Code.NotFound);
    const t = await fleet.finish(await fleet.submit({ handler: "stats", input: { values: [1] } }));
    const c = await fleet.clients.tasks.cancelTask({ taskId: t.id }).catch((x) => ConnectError.from(x));
    expect((c as ConnectError).code).toBe(Code.FailedPrecondition);
  });

  it("a batch validates each task on its own and accepts the good ones", async () => {
    const { results } = await fleet.clients.tasks.submitTasks({
      tasks: [
        { task: { handler: "stats", priority: Priority.NORMAL, processingMode: ProcessingMode.LOCAL } },
        { task: { handler: "zzz", priority: Priority.NORMAL, processingMode: ProcessingMode.LOCAL } },
      ],
    });
    expect(results[0].accepted?.taskId).toMatch(/^t-/);
    expect(results[1].errorCode).toBe("INVALID_ARGUMENT");
    expect(results[1].errorMessage).toMatch(/tasks\[1\]\.task\.handler/);
  });

  it("the same idempotency key returns the original task", async () => {
    const a = await fleet.submit({ handler: "stats", input: { values: [1] }, idempotencyKey: "k-1" });
    const b = await fleet.submit({ handler: "stats", input: { values: [2] }, idempotencyKey: "k-1" });
    expect(b).toBe(a);
  });
});

// Last: it restarts the coordinator.
describe("a finished task's data", () => {
  it("GetTask returns a finished task's input and series, also after a coordinator restart; listings and watches leave them out", async () => {
    const values = Array.from({ length: 20_000 }, (_, i) => Math.cos(i) * 7);
    const timestamps = values.map((_, i) => BigInt(1_700_000_000_000 + i));
    const { taskId } = await fleet.clients.tasks.submitTask({
      task: {
        handler: "stats",
        priority: Priority.NORMAL,
        processingMode: ProcessingMode.LOCAL,
        series: { values, timestamps },
        input: fromJson(ValueSchema, { note: "kept" }),
      },
    });
    const watched = await fleet.finish(taskId);
    expect(watched.state).toBe(TaskState.SUCCEEDED);
    expect(watched.spec?.series).toBeUndefined();
    const check = async () => {
      const t = (await fleet.clients.tasks.getTask({ taskId })).task!;
      expect(t.state).toBe(TaskState.SUCCEEDED);
      expect(t.spec?.series?.values).toEqual(values);
      expect(t.spec?.series?.timestamps).toEqual(timestamps);
      expect(toJson(ValueSchema, t.spec!.input!)).toEqual({ note: "kept" });
      const listed = (await fleet.clients.tasks.listTasks({ pageSize: 1000 })).tasks.find((x) => x.id === taskId)!;
      expect(listed.spec?.series).toBeUndefined();
      expect(listed.spec?.input).toBeUndefined();
    };
    await check();
    // The coordinator keeps a finished task's payload on disk only; a restart reads the same back.
    fleet.coordinator!.kill("SIGTERM");
    await fleet.coordinator!.exited;
    await fleet.startCoordinator();
    await check();
  });
});
