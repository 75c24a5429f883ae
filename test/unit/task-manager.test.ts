import { describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../../coordinator/errors.js";
import { MemoryTaskStore } from "../../coordinator/store/memory-store.js";
import { IllegalTransitionError } from "../../coordinator/tasks/state-machine.js";
import { newTaskId, TaskManager, type AttemptReport } from "../../coordinator/tasks/task-manager.js";
import { spec } from "../helpers/task-fixtures.js";
import type { TaskSpec, TaskState } from "../../coordinator/tasks/types.js";

function setup() {
  let now = 1000;
  const tm = new TaskManager(new MemoryTaskStore(), { now: () => now, retryBaseMs: 100, retryMaxMs: 1000, random: () => 0 });
  const events: [string, TaskState | undefined, TaskState][] = [];
  tm.onChange((t, prev) => events.push([t.id, prev, t.state]));
  return { tm, events, advance: (ms: number) => (now += ms), now: () => now };
}

const report = (taskId: string, attempt: number, outcome: AttemptReport["outcome"], extra: Partial<AttemptReport> = {}): AttemptReport => ({
  taskId,
  attempt,
  outcome,
  output: { ok: true },
  error: outcome === "failed" ? "boom" : "",
  processingMs: 5,
  peakMemoryBytes: 100,
  startedAt: undefined,
  finishedAt: undefined,
  ...extra,
});

describe("newTaskId", () => {
  it("is t- and 16 url-safe characters, unique, and sorts (bytewise, as SQLite compares TEXT) by creation time", () => {
    const start = Date.UTC(2026, 11, 3);
    // 20 ids per millisecond over 2,000 ms, made in order.
    const ids = Array.from({ length: 40_000 }, (_, i) => newTaskId(start + Math.floor(i / 20)));
    expect(ids.filter((id) => !/^t-[A-Za-z0-9_-]{16}$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    const bytewise = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
    // Across milliseconds, every id sorts after every earlier one.
    const outOfOrder = ids.filter((id, i) => i % 20 === 0 && i > 0 && bytewise(ids[i - 1], id) >= 0);
    expect(outOfOrder).toEqual([]);
    // A later millisecond sorts later however far apart; a clock before 1970 (a broken fake clock) still gives an id.
    expect(bytewise(newTaskId(start), newTaskId(start + 1))).toBeLessThan(0);
    expect(bytewise(newTaskId(1), newTaskId(2 ** 41))).toBeLessThan(0);
    expect(newTaskId(-5)).toMatch(/^t--------[A-Za-z0-9_-]{9}$/);
  });
});

describe("TaskManager", () => {
  it("walks queued → dispatched → running → succeeded and publishes each transition", () => {
    const { tm, events, advance } = setup();
    const [{ task }] = tm.submit([{ spec: spec(), idempotencyKey: "" }]);
    advance(50);
    tm.dispatched(task.id, "n1", "c1");
    tm.accepted(task.id, 1);
    const v = tm.report(report(task.id, 1, "succeeded"));
    expect(v.type).toBe("applied");
    const t = tm.get(task.id);
    expect(t.state).toBe("succeeded");
    expect(t.queuedMs).toBe(50);
    expect(t.output).toEqual({ ok: true });
    expect(events.map((e) => [e[1], e[2]])).toEqual([
      [undefined, "queued"],
      ["queued", "dispatched"],
      ["dispatched", "running"],
      ["running", "succeeded"],
    ]);
    expect(tm.counters.succeeded).toBe(1);
    expect(tm.counters.byState.succeeded).toBe(1);
    expect(tm.counters.byState.queued).toBe(0);
  });

  it("retries a failed attempt with exponential backoff, then fails after maxRetries", () => {
    const { tm, now } = setup();
    const [{ task }] = tm.submit([{ spec: spec({ maxRetries: 2 }), idempotencyKey: "" }]);
    const backoffs: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      tm.dispatched(task.id, "n1", "c1");
      tm.report(report(task.id, attempt, "failed"));
      const t = tm.get(task.id);
      if (attempt < 3) {
        expect(t.state).toBe("queued");
        backoffs.push(t.notBefore - now());
      }
    }
    expect(backoffs).toEqual([50, 100]); // random() = 0 → half the ceiling: 100/2, 200/2
    const t = tm.get(task.id);
    expect(t.state).toBe("failed");
    expect(t.attempts).toHaveLength(3);
    expect(t.error).toMatch(/gave up after 3 failed attempts/);
  });

  it("fences results: a superseded attempt's result changes nothing", () => {
    const { tm } = setup();
    const [{ task }] = tm.submit([{ spec: spec(), idempotencyKey: "" }]);
    tm.dispatched(task.id, "n1", "c1");
    tm.requeue(task.id, { reason: "node lost", consumeRetry: false });
    tm.dispatched(task.id, "n2", "c1");
    const stale = tm.report(report(task.id, 1, "succeeded", { output: { from: "n1" } }));
    expect(stale.type).toBe("stale");
    expect(tm.get(task.id).state).toBe("dispatched");
    tm.report(report(task.id, 2, "succeeded", { output: { from: "n2" } }));
    expect(tm.get(task.id).output).toEqual({ from: "n2" });
    expect(tm.report(report(task.id, 2, "failed")).type).toBe("stale");
  });

  it("requeue for a lost node does not use up a retry or wait for backoff", () => {
    const { tm, now } = setup();
    const [{ task }] = tm.submit([{ spec: spec({ maxRetries: 0 }), idempotencyKey: "" }]);
    tm.dispatched(task.id, "n1", "c1");
    const t = tm.requeue(task.id, { reason: "node lost", consumeRetry: false });
    expect(t.notBefore).toBeLessThanOrEqual(now());
    tm.dispatched(task.id, "n2", "c1");
    tm.report(report(task.id, 2, "succeeded"));
    expect(tm.get(task.id).state).toBe("succeeded");
  });

  it("cancels in every non-terminal state and refuses a terminal one", () => {
    const { tm } = setup();
    const ids = tm.submit([0, 1, 2].map(() => ({ spec: spec(), idempotencyKey: "" }))).map((x) => x.task.id);
    tm.dispatched(ids[1], "n1", "c1");
    tm.dispatched(ids[2], "n1", "c1");
    tm.accepted(ids[2], 1);
    expect(tm.cancel(ids[0], "").running).toBeUndefined();
    expect(tm.cancel(ids[1], "").running).toEqual({ nodeId: "n1", attempt: 1 });
    expect(tm.cancel(ids[2], "why").task.error).toBe("cancelled: why");
    expect(() => tm.cancel(ids[2], "")).toThrow(FailedPreconditionError);
  });

  it("expires queued and running tasks, telling the caller which attempt runs", () => {
    const { tm } = setup();
    const [a, b] = tm.submit([
      { spec: spec({ deadline: 5000 }), idempotencyKey: "" },
      { spec: spec({ deadline: 5000 }), idempotencyKey: "" },
    ]);
    tm.dispatched(b.task.id, "n1", "c1");
    expect(tm.expire(a.task.id)?.running).toBeUndefined();
    expect(tm.expire(b.task.id)?.running).toEqual({ nodeId: "n1", attempt: 1 });
    expect(tm.get(a.task.id).state).toBe("expired");
    expect(tm.expire(a.task.id)).toBeUndefined();
  });

  it("an idempotency key seen before returns the original task, also within one batch", () => {
    const { tm } = setup();
    const [a] = tm.submit([{ spec: spec(), idempotencyKey: "k" }]);
    const [b, c] = tm.submit([
      { spec: spec(), idempotencyKey: "k" },
      { spec: spec(), idempotencyKey: "j" },
    ]);
    const [d] = tm.submit([{ spec: spec(), idempotencyKey: "j" }]);
    expect(b.created).toBe(false);
    expect(b.task.id).toBe(a.task.id);
    expect(d.task.id).toBe(c.task.id);
  });

  it("refuses illegal transitions", () => {
    const { tm } = setup();
    const [{ task }] = tm.submit([{ spec: spec(), idempotencyKey: "" }]);
    expect(() => tm.requeue(task.id, { reason: "x", consumeRetry: false })).toThrow(IllegalTransitionError);
  });

  it("an attempt requeued early for its deadline stays live: its success wins if it comes first", () => {
    const { tm } = setup();
    const [{ task }] = tm.submit([{ spec: spec({ priority: "critical" }), idempotencyKey: "" }]);
    tm.dispatched(task.id, "n1", "c1");
    tm.accepted(task.id, 1);
    tm.requeue(task.id, { reason: "node disconnected", consumeRetry: false, keepLive: true });
    tm.dispatched(task.id, "n2", "c1");
    const v = tm.report(report(task.id, 1, "succeeded", { output: { from: "n1" } }));
    expect(v).toMatchObject({ type: "applied", superseded: { nodeId: "n2", attempt: 2 } });
    const t = tm.get(task.id);
    expect(t.state).toBe("succeeded");
    expect(t.output).toEqual({ from: "n1" });
    expect(t.attempts.map((a) => a.outcome)).toEqual(["succeeded", "cancelled"]);
    // The replacement's late result changes nothing.
    expect(tm.report(report(task.id, 2, "succeeded")).type).toBe("stale");
  });

  it("a fenced (not live) superseded attempt never wins", () => {
    const { tm } = setup();
    const [{ task }] = tm.submit([{ spec: spec(), idempotencyKey: "" }]);
    tm.dispatched(task.id, "n1", "c1");
    tm.requeue(task.id, { reason: "node down", consumeRetry: false });
    expect(tm.report(report(task.id, 1, "succeeded")).type).toBe("stale");
    expect(tm.get(task.id).state).toBe("queued");
  });

  it("preemption requeues at once, counts, and uses up no retry", () => {
    const { tm, now } = setup();
    const [{ task }] = tm.submit([{ spec: spec({ maxRetries: 0, priority: "background" }), idempotencyKey: "" }]);
    tm.dispatched(task.id, "n1", "c1");
    const t = tm.preempt(task.id, "t-crit");
    expect(t.state).toBe("queued");
    expect(t.preemptions).toBe(1);
    expect(t.notBefore).toBeLessThanOrEqual(now());
    expect(tm.counters.preemptions).toBe(1);
    tm.dispatched(task.id, "n1", "c1");
    tm.report(report(task.id, 2, "succeeded"));
    expect(tm.get(task.id).state).toBe("succeeded");
  });
});
