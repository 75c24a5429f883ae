// The dispatcher through its harness (test/helpers/dispatch-harness.ts): fake clock, recorded sends, a store whose
// commits the test controls. Each test names the failure-handling rule it proves.
import { describe, expect, it } from "vitest";
import { DispatchHarness } from "../helpers/dispatch-harness.js";

describe("dispatch and durability", () => {
  it("a task's first dispatch joins its submission's commit and leaves at once", async () => {
    const h = new DispatchHarness();
    h.store.auto = false;
    h.connect("n1");
    const id = h.submit();
    await h.settle();
    expect(h.task(id).state).toBe("dispatched");
    expect(h.dispatched("n1")).toEqual([id]);
    expect(h.store.commits).toBe(0);
  });

  it("a requeued task is dispatched only once its new attempt is durable", async () => {
    const h = new DispatchHarness();
    h.connect("n1");
    const id = h.submit();
    await h.settle();
    h.accept("n1", id);
    h.store.auto = false;
    h.report("n1", id, { outcome: "failed", error: "boom" });
    await h.advance(500); // retry backoff (base 500 ms)
    expect(h.task(id).state).toBe("dispatched");
    expect(h.task(id).attempt).toBe(2);
    expect(h.dispatched("n1")).toEqual([id]);
    h.store.commit();
    await h.settle();
    expect(h.dispatched("n1")).toEqual([id, id]);
  });

  it("acks results only once they are durable, in one batch per agent message", async () => {
    const h = new DispatchHarness();
    h.connect("n1");
    const a = h.submit();
    const b = h.submit();
    await h.settle();
    h.store.auto = false;
    h.dispatcher.fromAgent(
      h.sessions.get("n1")!,
      [],
      [a, b].map((taskId) => ({
        taskId,
        attempt: 1,
        outcome: "succeeded" as const,
        output: 1,
        error: "",
        processingMs: 1,
        peakMemoryBytes: 1,
        startedAt: undefined,
        finishedAt: undefined,
      })),
    );
    await h.settle();
    expect(h.sent("n1", "result-ack")).toEqual([]);
    h.store.commit();
    await h.settle();
    expect(h.sent("n1", "result-ack").map((m) => (m.type === "result-ack" ? m.taskId : ""))).toEqual([a, b]);
  });

  it("an attempt its agent does not accept in time is cancelled there and requeued without using a retry", async () => {
    const h = new DispatchHarness({ dispatchAckTimeoutMs: 2000 });
    h.connect("n1", { maxConcurrent: 1 });
    const id = h.submit();
    await h.settle();
    await h.advance(1999);
    expect(h.task(id).state).toBe("dispatched");
    await h.advance(1);
    expect(h.cancels("n1")).toEqual([`${id}#1`]);
    // Requeued at once (no retry used) and placed again on the only node.
    expect(h.task(id).attempts[0]).toMatchObject({ outcome: "cancelled", error: expect.stringMatching(/did not accept attempt 1 within 2000 ms/) });
    expect(h.task(id).attempt).toBe(2);
    expect(h.dispatched("n1")).toEqual([id, id]);
  });
});

describe("slots are the unit of capacity for small tasks", () => {
  it("an 8-slot node whose measured idle cpu is 0 still runs 8 tasks that reserve no cpu, and no more", async () => {
    const h = new DispatchHarness();
    h.connect("n1", { maxConcurrent: 8, freeCpuMillis: 0 });
    const ids = Array.from({ length: 10 }, () => h.submit({ cpuMillis: 0 }));
    await h.settle();
    expect(h.dispatched("n1")).toEqual(ids.slice(0, 8));
    expect(ids.slice(8).map((id) => h.task(id).state)).toEqual(["queued", "queued"]);
    h.report("n1", ids[0]);
    await h.settle();
    expect(h.dispatched("n1")).toEqual(ids.slice(0, 9));
  });

  it("a task that asks for cpu still needs it free (beyond the one-task starvation guard)", async () => {
    const h = new DispatchHarness();
    h.connect("n1", { maxConcurrent: 8, freeCpuMillis: 0 });
    const ids = Array.from({ length: 3 }, () => h.submit({ cpuMillis: 500 }));
    await h.settle();
    expect(h.dispatched("n1")).toEqual([ids[0]]);
  });
});

describe("dispatch-ahead", () => {
  it("a node holds one NORMAL attempt beyond its slots, queued on its agent, and no more", async () => {
    const h = new DispatchHarness({ dispatchAhead: 1 });
    h.connect("n1", { maxConcurrent: 1 });
    const ids = [h.submit(), h.submit(), h.submit()];
    await h.settle();
    expect(h.dispatched("n1")).toEqual(ids.slice(0, 2));
    expect(h.task(ids[2]).state).toBe("queued");
    h.report("n1", ids[0]);
    await h.settle();
    expect(h.dispatched("n1")).toEqual(ids);
  });

  it("CRITICAL and HIGH work needs a slot free now: it never waits in an agent's queue behind running work", async () => {
    const h = new DispatchHarness({ dispatchAhead: 1 });
    h.connect("n1", { maxConcurrent: 1 });
    const normal = h.submit();
    await h.settle();
    const high = h.submit({ priority: "high" });
    const crit = h.submit({ priority: "critical" });
    await h.settle();
    expect(h.dispatched("n1")).toEqual([normal]);
    expect([h.task(high).state, h.task(crit).state]).toEqual(["queued", "queued"]);
    // NORMAL work is not preempted; once the slot frees, CRITICAL goes first.
    expect(h.cancels("n1")).toEqual([]);
    h.report("n1", normal);
    await h.settle();
    expect(h.dispatched("n1")).toEqual([normal, crit]);
  });

  it("preempting for a CRITICAL task frees a real slot, not just an ahead place", async () => {
    const h = new DispatchHarness({ dispatchAhead: 1 });
    h.connect("n1", { maxConcurrent: 1 });
    const bg = [h.submit({ priority: "background" }), h.submit({ priority: "background" })];
    await h.settle();
    expect(h.dispatched("n1")).toEqual(bg);
    const crit = h.submit({ priority: "critical" });
    await h.settle();
    // The running attempt (the older) is moved; the one queued ahead stays, behind the CRITICAL task on the agent
    // (which starts its queue in priority order).
    expect(h.cancels("n1")).toEqual([`${bg[0]}#1`]);
    expect(h.task(bg[1])).toMatchObject({ state: "dispatched", assignedNode: "n1" });
    expect(h.task(crit)).toMatchObject({ state: "dispatched", assignedNode: "n1" });
  });
});

describe("preemption", () => {
  it("a CRITICAL task on a full node moves the youngest BACKGROUND attempt off it and starts in the same pass", async () => {
    const h = new DispatchHarness();
    h.connect("n1", { maxConcurrent: 2 });
    const old = h.submit({ priority: "background" });
    await h.advance(10);
    const young = h.submit({ priority: "background" });
    await h.settle();
    h.accept("n1", old);
    h.accept("n1", young);
    const crit = h.submit({ priority: "critical" });
    await h.settle();
    expect(h.cancels("n1")).toEqual([`${young}#1`]);
    expect(h.task(young)).toMatchObject({ state: "queued", preemptions: 1 });
    expect(h.task(young).attempts[0]).toMatchObject({ outcome: "cancelled", error: `preempted by CRITICAL task ${crit}` });
    expect(h.task(crit)).toMatchObject({ state: "dispatched", assignedNode: "n1" });
    expect(h.task(crit).attempts[0].placementReason).toMatch(/preempted 1 lower-priority attempt/);
    expect(h.task(old).state).toBe("running");
    // The preempted task runs again once a slot frees, without having used a retry.
    h.report("n1", crit);
    await h.settle();
    expect(h.task(young)).toMatchObject({ state: "dispatched", attempt: 2 });
    expect(h.tasks.counters.preemptions).toBe(1);
  });

  it("never preempts NORMAL or higher work", async () => {
    const h = new DispatchHarness();
    h.connect("n1", { maxConcurrent: 1 });
    const normal = h.submit({ priority: "normal" });
    await h.settle();
    const crit = h.submit({ priority: "critical" });
    await h.settle();
    expect(h.cancels("n1")).toEqual([]);
    expect(h.task(normal).state).toBe("dispatched");
    expect(h.task(crit).state).toBe("queued");
  });
});

describe("reconcile on re-registration", () => {
  it("keeps current attempts the agent still runs, cancels superseded ones, requeues current ones it forgot", async () => {
    const h = new DispatchHarness({ disconnectWindowMs: 60_000 });
    h.connect("n1", { maxConcurrent: 3 });
    const kept = h.submit();
    const forgotten = h.submit();
    await h.settle();
    h.disconnect("n1");
    // The agent comes back listing `kept`, and an attempt of a task the coordinator never had.
    const s = h.connect("n1", { maxConcurrent: 3 }, [
      { taskId: kept, attempt: 1 },
      { taskId: "t-unknown", attempt: 4 },
    ]);
    await h.settle();
    expect(h.task(kept)).toMatchObject({ state: "dispatched", attempt: 1, assignedNode: "n1" });
    expect(h.cancels("n1")).toContain("t-unknown#4");
    expect(h.task(forgotten).attempts[0].error).toMatch(/restarted without attempt 1/);
    // Requeued and placed again on the reconnected node.
    expect(h.task(forgotten)).toMatchObject({ state: "dispatched", attempt: 2 });
    expect(s.sent.filter((m) => m.type === "dispatch").map((m) => (m.type === "dispatch" ? m.task.id : ""))).toEqual([forgotten]);
  });
});

describe("drain", () => {
  it("takes no new work; what still runs after the grace is cancelled there and moved without a retry", async () => {
    const h = new DispatchHarness();
    h.connect("n1", { maxConcurrent: 1 });
    h.connect("n2", { maxConcurrent: 1 });
    const id = h.submit();
    await h.settle();
    const on = h.task(id).assignedNode;
    const other = on === "n1" ? "n2" : "n1";
    h.accept(on, id);
    expect(h.dispatcher.drain(on, 5000).state).toBe("draining");
    expect(h.sent(on, "drain")).toEqual([{ type: "drain", graceMs: 5000 }]);
    await h.advance(4999);
    expect(h.task(id).state).toBe("running");
    await h.advance(1);
    expect(h.cancels(on)).toEqual([`${id}#1`]);
    expect(h.node(on).state).toBe("drained");
    expect(h.task(id)).toMatchObject({ state: "dispatched", attempt: 2, assignedNode: other });
    expect(h.task(id).attempts[0].error).toMatch(/drain deadline passed/);
  });

  it("a node with nothing running is drained at once and gets nothing new", async () => {
    const h = new DispatchHarness();
    h.connect("n1");
    expect(h.dispatcher.drain("n1", 5000).state).toBe("drained");
    const id = h.submit();
    await h.settle();
    expect(h.task(id).state).toBe("queued");
  });
});

describe("disconnect window", () => {
  it("a disconnected node keeps its attempts for the window, then they move as new attempts", async () => {
    const h = new DispatchHarness({ disconnectWindowMs: 5000, sweepIntervalMs: 100 });
    h.connect("n1", { maxConcurrent: 1 });
    const id = h.submit();
    await h.settle();
    h.accept("n1", id);
    h.disconnect("n1");
    expect(h.node("n1").state).toBe("disconnected");
    // Another cluster: c1 with its only node away is below the health threshold.
    h.connect("n2", { maxConcurrent: 1, clusterId: "c2" });
    await h.advance(4900);
    expect(h.task(id)).toMatchObject({ state: "running", assignedNode: "n1" });
    await h.advance(200);
    expect(h.node("n1").state).toBe("down");
    expect(h.task(id)).toMatchObject({ state: "dispatched", attempt: 2, assignedNode: "n2" });
    expect(h.task(id).attempts[0].error).toMatch(/disconnected for more than/);
    // A move for the node's sake uses no retry.
    expect(h.task(id).attempts[0].outcome).toBe("cancelled");
  });

  it("with a window of 0 the attempts move as soon as the stream closes", async () => {
    const h = new DispatchHarness({ disconnectWindowMs: 0, healthThreshold: 0 });
    h.connect("n1", { maxConcurrent: 1 });
    h.connect("n2", { maxConcurrent: 1 });
    const id = h.submit();
    await h.settle();
    const first = h.task(id).assignedNode;
    h.disconnect(first);
    await h.settle();
    expect(h.task(id)).toMatchObject({ state: "dispatched", attempt: 2 });
    expect(h.task(id).assignedNode).not.toBe(first);
  });

  it("a silent node is disconnected after the heartbeat timeout, measured on the monotonic clock", async () => {
    const h = new DispatchHarness({ heartbeatTimeoutMs: 3000, sweepIntervalMs: 500 });
    h.connect("n1");
    await h.advance(3000);
    expect(h.node("n1").state).toBe("ready");
    await h.advance(600);
    expect(h.node("n1").state).toBe("disconnected");
  });

  it("an urgent task whose deadline cannot wait out the window starts again at once; the first result wins", async () => {
    const h = new DispatchHarness({ disconnectWindowMs: 60_000, sweepIntervalMs: 100 });
    h.connect("n1", { maxConcurrent: 1 });
    const id = h.submit({ priority: "high", deadline: h.clock.wall() + 10_000 });
    await h.settle();
    h.accept("n1", id);
    h.disconnect("n1");
    h.connect("n2", { maxConcurrent: 1, clusterId: "c2" });
    await h.advance(100);
    expect(h.task(id)).toMatchObject({ state: "dispatched", attempt: 2, assignedNode: "n2" });
    expect(h.task(id).attempts[0].stillLive).toBe(true);
    // The first attempt's node comes back and finishes first: it wins and the second attempt is cancelled.
    h.connect("n1", { maxConcurrent: 1 }, [{ taskId: id, attempt: 1 }]);
    h.report("n1", id, { attempt: 1 });
    await h.settle();
    expect(h.task(id)).toMatchObject({ state: "succeeded", assignedNode: "n1" });
    expect(h.cancels("n2")).toEqual([`${id}#2`]);
  });
});

describe("deadlines", () => {
  it("a queued task whose deadline passes is expired", async () => {
    const h = new DispatchHarness();
    const id = h.submit({ deadline: h.clock.wall() + 1000 });
    await h.advance(999);
    expect(h.task(id).state).toBe("queued");
    await h.advance(1);
    expect(h.task(id).state).toBe("expired");
    expect(h.task(id).error).toMatch(/before the task could be placed/);
  });

  it("a running task whose deadline passes is expired and its agent told to stop", async () => {
    const h = new DispatchHarness();
    h.connect("n1");
    const id = h.submit({ deadline: h.clock.wall() + 1000 });
    await h.settle();
    h.accept("n1", id);
    await h.advance(1000);
    expect(h.task(id).state).toBe("expired");
    expect(h.cancels("n1")).toEqual([`${id}#1`]);
  });

  it("a finished task's deadline leaves no timer behind", async () => {
    const h = new DispatchHarness();
    h.connect("n1");
    const id = h.submit({ deadline: h.clock.wall() + 60_000 });
    await h.settle();
    h.report("n1", id);
    await h.advance(60_000);
    expect(h.task(id).state).toBe("succeeded");
  });
});

describe("dispatch-ahead bounded by time", () => {
  const report = (h: DispatchHarness, id: string, processingMs: number) => h.report("n1", id, { processingMs });

  it("a node is sent as many attempts ahead as its slots get through in dispatchAheadMs, at least one, at most dispatchAhead", async () => {
    const h = new DispatchHarness({ dispatchAhead: 8, dispatchAheadMs: 20 });
    h.connect("n1", { maxConcurrent: 1 });
    // Before any result: at most 4 ahead.
    expect(h.dispatcher.aheadFor(1)).toBe(4);
    const ids = Array.from({ length: 20 }, () => h.submit());
    await h.settle();
    expect(h.dispatched("n1")).toEqual(ids.slice(0, 5));
    // Results of 10 ms each: 20 ms of queued work is 2 attempts per slot.
    for (const id of ids.slice(0, 5)) report(h, id, 10);
    await h.settle();
    expect(h.dispatcher.aheadFor(1)).toBe(2);
    expect(h.dispatcher.aheadFor(4)).toBe(8);
    expect(h.dispatched("n1")).toEqual(ids.slice(0, 8)); // one running and two ahead
    // Long attempts still leave one ahead; tiny ones are capped at dispatchAhead.
    const long = new DispatchHarness({ dispatchAhead: 8, dispatchAheadMs: 20 });
    long.connect("n1", { maxConcurrent: 1 });
    const [a] = [long.submit()];
    await long.settle();
    long.report("n1", a, { processingMs: 5_000 });
    expect(long.dispatcher.aheadFor(1)).toBe(1);
    const tiny = new DispatchHarness({ dispatchAhead: 8, dispatchAheadMs: 20 });
    tiny.connect("n1", { maxConcurrent: 1 });
    const b = tiny.submit();
    await tiny.settle();
    tiny.report("n1", b, { processingMs: 0 });
    expect(tiny.dispatcher.aheadFor(1)).toBe(8);
  });

  it("without dispatchAheadMs the count alone applies", () => {
    expect(new DispatchHarness({ dispatchAhead: 3 }).dispatcher.aheadFor(1)).toBe(3);
    expect(new DispatchHarness({ dispatchAhead: 0, dispatchAheadMs: 20 }).dispatcher.aheadFor(1)).toBe(0);
  });
});
