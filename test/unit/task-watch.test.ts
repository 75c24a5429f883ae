// What watching clients see (coordinator/tasks/task-watch.ts through TaskManager.watch): durable changes only, in
// order, lazy ones let through behind what precedes them, each task once per batch when coalescing.
import { describe, expect, it } from "vitest";
import { DispatchHarness } from "../helpers/dispatch-harness.js";

function watcher(h: DispatchHarness, follow: Parameters<DispatchHarness["tasks"]["watch"]>[0]) {
  let ready = 0;
  const { subscription, current } = h.tasks.watch(follow, () => ready++);
  return {
    subscription,
    current,
    ready: () => ready,
    take: (coalesce = false) => subscription.take(coalesce).map((t) => `${t.id === current[0]?.id ? "" : t.id + ":"}${t.state}`),
  };
}

describe("task watches see durable changes only", () => {
  it("a change is held until its commit; then delivered in order", async () => {
    const h = new DispatchHarness();
    h.connect("n1");
    const id = h.submit();
    await h.settle();
    h.store.auto = false;
    const w = watcher(h, { ids: [id] });
    expect(w.take()).toEqual(["dispatched"]);
    h.report("n1", id, { outcome: "failed", error: "x" });
    await h.settle();
    expect(w.take()).toEqual([]);
    h.store.commit();
    await h.settle();
    expect(w.take()).toEqual(["queued"]);
    expect(w.ready()).toBeGreaterThan(0);
  });

  it("a lazy change (running) needs no commit of its own, but never overtakes a change that waits for one", async () => {
    const h = new DispatchHarness();
    h.connect("n1");
    const id = h.submit();
    await h.settle();
    const w = watcher(h, { ids: [id] });
    await h.settle();
    expect(w.take()).toEqual(["dispatched"]);
    h.store.auto = false;
    h.accept("n1", id);
    await h.settle();
    expect(w.take()).toEqual(["running"]);
    h.report("n1", id);
    h.tasks.watch({ ids: [id] }, () => {}); // a second watcher does not disturb the first
    await h.settle();
    expect(w.take()).toEqual([]);
    h.store.commit();
    await h.settle();
    expect(w.take()).toEqual(["succeeded"]);
  });

  it("the current state read at subscription waits for durability too", async () => {
    const h = new DispatchHarness();
    h.store.auto = false;
    const id = h.submit();
    const w = watcher(h, { ids: [id] });
    expect(w.take()).toEqual([]);
    h.store.commit();
    await h.settle();
    expect(w.take()).toEqual(["queued"]);
  });

  it("a predicate watch follows matching tasks from the call on, coalescing to the newest state per task", async () => {
    const h = new DispatchHarness();
    h.connect("n1", { maxConcurrent: 4 });
    const before = h.submit({ labels: { batch: "b" } });
    await h.settle();
    const w = watcher(h, { match: (t) => t.spec.labels.batch === "b" });
    const a = h.submit({ labels: { batch: "b" } });
    h.submit({ labels: { batch: "other" } });
    h.accept("n1", a);
    h.report("n1", a);
    await h.settle();
    expect(w.subscription.take(true).map((t) => [t.id, t.state])).toEqual([[a, "succeeded"]]);
    h.report("n1", before);
    await h.settle();
    expect(w.subscription.take(true).map((t) => [t.id, t.state])).toEqual([[before, "succeeded"]]);
  });

  it("unknown ids are NOT_FOUND, and a closed subscription gets nothing more", async () => {
    const h = new DispatchHarness();
    expect(() => h.tasks.watch({ ids: ["t-nope"] }, () => {})).toThrow(/t-nope not found/);
    const id = h.submit();
    const w = watcher(h, { ids: [id] });
    w.subscription.close();
    h.connect("n1");
    await h.settle();
    expect(w.subscription.take()).toEqual([]);
  });
});
