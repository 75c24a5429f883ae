// The executor against real worker threads (the built dist/agent/executor/worker.js): built-in and custom
// handlers, failures, memory limits, cancellation, deadlines, runaway handlers, pool size and FIFO order.
// Handlers that must be observed mid-run use SharedArrayBuffer gates, so no assertion depends on timing.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createExecutor, type ExecRequest, type ExecResult, type Executor, type ExecutorOptions } from "../../agent/executor/executor.js";
import { HandlerLoadError, plainContext, runAggregate, runAnomaly, runStats, runThreshold } from "../../lib/analytics/index.js";

const WORKER_URL = new URL("../../dist/agent/executor/worker.js", import.meta.url);
const FIXTURES = fileURLToPath(new URL("../fixtures/handlers/", import.meta.url));
const MIB = 1024 * 1024;
const ctx = plainContext();
const noSignal = new AbortController().signal;

beforeAll(() => {
  if (!existsSync(fileURLToPath(WORKER_URL))) {
    throw new Error(`${fileURLToPath(WORKER_URL)} is missing: run \`npm run build\` first (\`npm test\` does)`);
  }
});

let open: Executor[] = [];
afterEach(async () => {
  await Promise.all(open.map((e) => e.close()));
  open = [];
});

async function executor(opts: ExecutorOptions = {}): Promise<Executor> {
  const ex = await createExecutor({ size: 2, workerUrl: WORKER_URL, handlersDir: FIXTURES, ...opts });
  open.push(ex);
  return ex;
}

let nextTask = 1;
function req(handler: string, input: unknown, extra: Partial<ExecRequest> = {}): ExecRequest {
  return { taskId: `task-${nextTask++}`, attempt: 1, handler, input, memoryLimitBytes: 64 * MIB, ...extra };
}

/** Shared flags for gate.mjs: `started[i]` is set by the handler, `release(i)` lets it return. */
function gates(n: number) {
  const started = new SharedArrayBuffer(4 * n);
  const release = new SharedArrayBuffer(4 * n);
  return {
    input: (slot: number) => ({ started, release, slot }),
    isStarted: (slot: number) => Atomics.load(new Int32Array(started), slot) === 1,
    release(slot: number) {
      Atomics.store(new Int32Array(release), slot, 1);
      Atomics.notify(new Int32Array(release), slot);
    },
  };
}

const waitUntil = (cond: () => boolean) => vi.waitFor(() => expect(cond()).toBe(true), { timeout: 5000, interval: 5 });

function expectCompleted(res: ExecResult): unknown {
  if (res.type !== "completed") throw new Error(`expected completed, got ${JSON.stringify(res)}`);
  expect(res.processingMs).toBeGreaterThanOrEqual(0);
  expect(res.peakMemoryBytes).toBeGreaterThan(0);
  expect(res.finishedAt).toBeGreaterThanOrEqual(res.startedAt);
  return res.output;
}

async function whoami(ex: Executor, memoryLimitBytes = 64 * MIB): Promise<{ threadId: number; runs: number }> {
  return expectCompleted(await ex.run(req("whoami", {}, { memoryLimitBytes }), noSignal)) as { threadId: number; runs: number };
}

describe("executor: running handlers", () => {
  it("runs every built-in in a worker thread, returning exactly what the handler computes", async () => {
    const ex = await executor();
    const values = Array.from({ length: 5000 }, (_, i) => Math.sin(i) * 10 + (i % 97 === 0 ? 80 : 0));
    const samples = values.map((v, i) => ({ t: 1.7e12 + i * 1000, v }));
    const rules = [{ name: "spike", op: ">", value: 50 }];
    const cases: [string, Record<string, unknown>, unknown][] = [
      ["stats", { values }, runStats({ values }, ctx)],
      ["anomaly", { values }, runAnomaly({ values }, ctx)],
      ["anomaly", { values, method: "mad", threshold: 5 }, runAnomaly({ values, method: "mad", threshold: 5 }, ctx)],
      ["aggregate", { samples, windowMs: 60_000 }, runAggregate({ samples, windowMs: 60_000 }, ctx)],
      ["threshold", { samples, rules }, runThreshold({ samples, rules }, ctx)],
    ];
    const results = await Promise.all(cases.map(([h, input]) => ex.run(req(h, input), noSignal)));
    results.forEach((res, i) => expect(expectCompleted(res)).toEqual(cases[i][2]));
  });

  it("hands a packed series to the handler, without detaching the caller's arrays", async () => {
    const ex = await executor();
    const values = Float64Array.from({ length: 100_000 }, (_, i) => Math.cos(i));
    const timestamps = Array.from({ length: values.length }, (_, i) => 1.7e12 + i * 10);
    const stats = await ex.run(req("stats", {}, { series: { values, timestamps: [] } }), noSignal);
    expect(expectCompleted(stats)).toEqual(runStats({ values: Array.from(values) }, ctx));
    expect(values.length).toBe(100_000); // still attached: the executor transferred a copy
    const agg = await ex.run(req("aggregate", { windowMs: 5000 }, { series: { values: Array.from(values), timestamps } }), noSignal);
    expect(expectCompleted(agg)).toEqual(runAggregate({ values: Array.from(values), timestamps, windowMs: 5000 }, ctx));
  });

  it("lists built-in and custom handlers, and runs a custom one", async () => {
    const ex = await executor();
    const names = ex.handlers();
    expect(names).toEqual(expect.arrayContaining(["aggregate", "anomaly", "boom", "double", "stats", "threshold", "whoami"]));
    expect(names).toEqual([...names].sort());
    expect(expectCompleted(await ex.run(req("double", { values: [1, 2.5] }), noSignal))).toEqual({ values: [2, 5] });
  });

  it("finds the built worker by default when running from the TypeScript sources", async () => {
    const ex = await createExecutor({ size: 1 });
    open.push(ex);
    expect(ex.size).toBe(1);
    expect(expectCompleted(await ex.run(req("stats", { values: [1, 2, 3] }), noSignal))).toMatchObject({ count: 3, mean: 2 });
  });
});

describe("executor: failures", () => {
  it("fails with the handler's own message, and input errors verbatim", async () => {
    const ex = await executor();
    const boom = await ex.run(req("boom", {}), noSignal);
    expect(boom).toMatchObject({ type: "failed", error: "boom: the sensor calibration table is missing" });
    const bad = await ex.run(req("stats", { values: [1, 2, 3, "x"] }), noSignal);
    expect(bad).toMatchObject({ type: "failed", error: 'stats: "values" must be a non-empty array of finite numbers; element 3 is "x"' });
    const notObject = await ex.run(req("stats", [1, 2]), noSignal);
    expect(notObject).toMatchObject({ type: "failed", error: "input must be a JSON object (or absent); got an array" });
  });

  it("fails unknown handlers (listing the known ones) and non-JSON output", async () => {
    const ex = await executor();
    const unknown = await ex.run(req("nope", {}), noSignal);
    expect(unknown).toMatchObject({ type: "failed", error: `unknown handler "nope"; this agent runs: ${ex.handlers().join(", ")}` });
    const nan = await ex.run(req("nan", {}), noSignal);
    expect(nan.type).toBe("failed");
    expect((nan as { error: string }).error).toMatch(/^handler "nan" returned a value that is not JSON: \$\.ratio is NaN/);
  });

  it("fails a handler that exceeds its memory limit, then keeps serving on a replacement worker", async () => {
    const ex = await executor({ size: 1 });
    const before = await whoami(ex, 32 * MIB);
    const res = await ex.run(req("hog", {}, { memoryLimitBytes: 32 * MIB }), noSignal);
    expect(res).toMatchObject({ type: "failed", error: "exceeded memory limit of 33554432 bytes (worker heap limited to 32 MiB)", peakMemoryBytes: 32 * MIB });
    const after = await whoami(ex, 32 * MIB);
    expect(after.threadId).not.toBe(before.threadId);
    expect(after.runs).toBe(1);
  });

  it("rejects up front an input that cannot fit in its memory limit", async () => {
    const ex = await executor();
    const values = Array.from({ length: 200_000 }, () => 1);
    const json = await ex.run(req("stats", { values }, { memoryLimitBytes: MIB }), noSignal);
    expect(json).toMatchObject({ type: "failed", processingMs: 0 });
    expect((json as { error: string }).error).toMatch(/^input needs at least \d+ bytes, more than the memory limit of 1048576 bytes$/);
    const packed = await ex.run(req("stats", {}, { memoryLimitBytes: MIB, series: { values, timestamps: [] } }), noSignal);
    expect(packed).toMatchObject({ type: "failed", error: "input needs at least 1600000 bytes, more than the memory limit of 1048576 bytes" });
  });

  it("fails only the attempt whose worker dies, and replaces the worker", async () => {
    const ex = await executor({ size: 1 });
    const before = await whoami(ex);
    expect(await ex.run(req("crash", {}), noSignal)).toMatchObject({ type: "failed", error: "worker crashed: exited with code 3" });
    const after = await whoami(ex);
    expect(after.threadId).not.toBe(before.threadId);
  });
});

describe("executor: cancel and deadline", () => {
  it("cancels a cooperative synchronous handler through ctx.signal; the worker answers and stays warm", async () => {
    const ex = await executor({ size: 1 });
    const first = await whoami(ex);
    const g = gates(1);
    const ac = new AbortController();
    const pending = ex.run(req("gate", g.input(0)), ac.signal);
    await waitUntil(() => g.isStarted(0));
    ac.abort(new Error("operator cancelled the task"));
    const res = await pending;
    expect(res).toMatchObject({ type: "cancelled", reason: "operator cancelled the task" });
    expect(res.peakMemoryBytes).toBeGreaterThan(0); // measured by the worker: it stopped by itself
    expect(await whoami(ex)).toEqual({ threadId: first.threadId, runs: 2 });
  });

  it("cancels an asynchronous handler through the signal's abort event", async () => {
    const ex = await executor({ size: 1 });
    const first = await whoami(ex);
    const started = new SharedArrayBuffer(4);
    const ac = new AbortController();
    const pending = ex.run(req("sleepy", { started }), ac.signal);
    await waitUntil(() => Atomics.load(new Int32Array(started), 0) === 1);
    ac.abort("no longer needed");
    expect(await pending).toMatchObject({ type: "cancelled", reason: "no longer needed" });
    expect(await whoami(ex)).toEqual({ threadId: first.threadId, runs: 2 });
  });

  it("times out a running attempt at its deadline", async () => {
    const ex = await executor();
    const g = gates(1);
    const res = await ex.run(req("gate", g.input(0), { deadline: Date.now() + 500 }), noSignal);
    expect(g.isStarted(0)).toBe(true);
    expect(res.type).toBe("timed-out");
    expect(res.peakMemoryBytes).toBeGreaterThan(0);
  });

  it("terminates and replaces a worker whose handler ignores the deadline or a cancel", async () => {
    const ex = await executor({ size: 1, abortGraceMs: 50 });
    const first = await whoami(ex);
    const timedOut = await ex.run(req("spin", {}, { deadline: Date.now() + 100 }), noSignal);
    expect(timedOut).toMatchObject({ type: "timed-out", peakMemoryBytes: 0 });
    expect(timedOut.processingMs).toBeGreaterThan(0);
    const second = await whoami(ex);
    expect(second.threadId).not.toBe(first.threadId);

    const ac = new AbortController();
    const pending = ex.run(req("spin", {}), ac.signal);
    setTimeout(() => ac.abort(new Error("stop spinning")), 50);
    expect(await pending).toMatchObject({ type: "cancelled", reason: "stop spinning", peakMemoryBytes: 0 });
    expect((await whoami(ex)).threadId).not.toBe(second.threadId);
  });

  it("settles at once, without a worker, attempts already cancelled or past their deadline", async () => {
    const ex = await executor();
    const ac = new AbortController();
    ac.abort(new Error("cancelled before dispatch"));
    expect(await ex.run(req("stats", { values: [1] }), ac.signal)).toMatchObject({ type: "cancelled", reason: "cancelled before dispatch", processingMs: 0 });
    expect(await ex.run(req("stats", { values: [1] }, { deadline: Date.now() - 1 }), noSignal)).toMatchObject({ type: "timed-out", processingMs: 0 });
  });

  it("cancels and times out attempts still waiting in the queue", async () => {
    const ex = await executor({ size: 1 });
    const g = gates(1);
    const blocker = ex.run(req("gate", g.input(0)), noSignal);
    await waitUntil(() => g.isStarted(0));
    const ac = new AbortController();
    const queuedCancel = ex.run(req("stats", { values: [1] }), ac.signal);
    const queuedDeadline = ex.run(req("stats", { values: [1] }, { deadline: Date.now() + 50 }), noSignal);
    ac.abort(new Error("changed my mind"));
    expect(await queuedCancel).toMatchObject({ type: "cancelled", reason: "changed my mind", processingMs: 0 });
    expect(await queuedDeadline).toMatchObject({ type: "timed-out", processingMs: 0 });
    g.release(0);
    expect(expectCompleted(await blocker)).toEqual({ slot: 0 });
  });
});

describe("executor: pool", () => {
  it("runs at most `size` attempts at once; the rest wait and start in FIFO order", async () => {
    const ex = await executor({ size: 2 });
    const g = gates(4);
    const results = [0, 1, 2, 3].map((slot) => ex.run(req("gate", g.input(slot)), noSignal));
    await waitUntil(() => g.isStarted(0) && g.isStarted(1));
    expect(ex.running()).toBe(2);
    await new Promise((r) => setTimeout(r, 100)); // give a wrong implementation the chance to start more
    expect([g.isStarted(2), g.isStarted(3)]).toEqual([false, false]);

    g.release(0);
    await waitUntil(() => g.isStarted(2));
    expect(g.isStarted(3)).toBe(false);
    g.release(1);
    await waitUntil(() => g.isStarted(3));
    g.release(2);
    g.release(3);
    expect((await Promise.all(results)).map(expectCompleted)).toEqual([0, 1, 2, 3].map((slot) => ({ slot })));
    expect(ex.running()).toBe(0);
  });

  it("starts queued attempts in priority order (oldest first within a priority), so urgent work skips the queue", async () => {
    const ex = await executor({ size: 1 });
    const g = gates(4);
    // Slot 0 runs; 1 (LOW) and 2 (NORMAL) queue; 3 (CRITICAL) arrives last and goes first.
    const results = [
      ex.run(req("gate", g.input(0), { rank: 2 }), noSignal),
      ex.run(req("gate", g.input(1), { rank: 3 }), noSignal),
      ex.run(req("gate", g.input(2)), noSignal),
      ex.run(req("gate", g.input(3), { rank: 0 }), noSignal),
    ];
    await waitUntil(() => g.isStarted(0));
    g.release(0);
    await waitUntil(() => g.isStarted(3));
    expect([g.isStarted(1), g.isStarted(2)]).toEqual([false, false]);
    g.release(3);
    await waitUntil(() => g.isStarted(2));
    expect(g.isStarted(1)).toBe(false);
    g.release(2);
    await waitUntil(() => g.isStarted(1));
    g.release(1);
    expect((await Promise.all(results)).map(expectCompleted)).toEqual([0, 1, 2, 3].map((slot) => ({ slot })));
  });

  it("reuses warm workers, one set per memory class", async () => {
    const ex = await executor({ size: 1 });
    const a1 = await whoami(ex, 64 * MIB);
    expect(await whoami(ex, 50 * MIB)).toEqual({ threadId: a1.threadId, runs: a1.runs + 1 }); // same 64 MiB class
    const b1 = await whoami(ex, 256 * MIB);
    expect(b1.threadId).not.toBe(a1.threadId);
    expect(await whoami(ex, 200 * MIB)).toEqual({ threadId: b1.threadId, runs: b1.runs + 1 }); // same 256 MiB class
  });

  it("close cancels running and queued attempts, and refuses new ones", async () => {
    const ex = await executor({ size: 1 });
    const g = gates(1);
    const running = ex.run(req("gate", g.input(0)), noSignal);
    const queued = ex.run(req("stats", { values: [1] }), noSignal);
    await waitUntil(() => g.isStarted(0));
    await ex.close();
    expect(await running).toMatchObject({ type: "cancelled", reason: "executor closed" });
    expect(await queued).toMatchObject({ type: "cancelled", reason: "executor closed" });
    expect(await ex.run(req("stats", { values: [1] }), noSignal)).toMatchObject({ type: "cancelled", reason: "executor is closed" });
    expect(ex.running()).toBe(0);
  });
});

describe("executor: small built-in attempts run inline", () => {
  const values = Array.from({ length: 500 }, (_, i) => Math.sin(i) * 100);

  it("gives the same outcome inline as in a worker, and takes no worker for it", async () => {
    const inline = await executor({ size: 1 });
    const workers = await executor({ size: 1, inlineMaxBytes: 0 });
    for (const [handler, input] of [
      ["stats", { values }],
      ["anomaly", { values, threshold: 2 }],
      ["stats", { values: "not numbers" }],
    ] as const) {
      const a = await inline.run(req(handler, input), noSignal);
      const b = await workers.run(req(handler, input), noSignal);
      expect(a.type).toBe(b.type);
      if (a.type === "completed" && b.type === "completed") expect(a.output).toEqual(b.output);
      if (a.type === "failed" && b.type === "failed") expect([a.error, a.permanent]).toEqual([b.error, b.permanent]);
    }
    expect(inline.inlineRuns).toBe(3);
    expect(workers.inlineRuns).toBe(0);
  });

  it("respects the pool size: an inline attempt waits while every place is taken, and a big input goes to a worker", async () => {
    const ex = await executor({ size: 1, inlineMaxBytes: 4096 });
    const g = gates(1);
    const blocker = ex.run(req("gate", g.input(0)), noSignal);
    await waitUntil(() => g.isStarted(0));
    let done = false;
    const small = ex.run(req("stats", { values: [1, 2, 3] }), noSignal).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    g.release(0);
    expect(expectCompleted(await small)).toMatchObject({ count: 3 });
    await blocker;
    const many = Array.from({ length: 2000 }, (_, i) => i);
    const big = await ex.run(req("stats", { values: many }), noSignal);
    expect(expectCompleted(big)).toMatchObject({ count: 2000 });
    expect(ex.inlineRuns).toBe(1);
  });
});

describe("createExecutor", () => {
  it("fails with a clear error when the worker script is missing", async () => {
    await expect(createExecutor({ size: 1, workerUrl: new URL("file:///nonexistent/worker.js") })).rejects.toThrow(
      "executor: worker script /nonexistent/worker.js does not exist; build the agent first (npm run build)",
    );
  });

  it("fails naming the file when a custom handler module is broken", async () => {
    const err = await createExecutor({ size: 1, workerUrl: WORKER_URL, handlersDir: join(FIXTURES, "no-run") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandlerLoadError);
    expect((err as Error).message).toContain(join(FIXTURES, "no-run", "norun.mjs"));
  });
});
