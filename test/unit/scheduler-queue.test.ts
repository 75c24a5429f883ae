import { describe, it, expect } from "vitest";
import { Heap } from "../../coordinator/scheduler/heap.js";
import { TaskQueue, compareQueued, type QueuedTask } from "../../coordinator/scheduler/queue.js";
import { rng } from "../helpers/rng.js";

let nextSeq = 0;
function task(id: string, over: Partial<QueuedTask> = {}): QueuedTask {
  return {
    id,
    rank: 2,
    deadline: undefined,
    seq: nextSeq++,
    notBefore: 0,
    handler: "h",
    memoryBytes: 0,
    cpuMillis: 0,
    mode: "local",
    deviceId: "",
    clusterId: "",
    estimatedMs: 0,
    ...over,
  };
}

function drain(q: TaskQueue): string[] {
  const out: string[] = [];
  for (let t = q.pop(); t !== undefined; t = q.pop()) out.push(t.id);
  return out;
}

describe("Heap", () => {
  it("pops in comparator order and walks in order without consuming", () => {
    const h = new Heap<number>((a, b) => a - b);
    const xs = [5, 3, 9, 1, 7, 2, 8, 6, 4, 0];
    for (const x of xs) h.push(x);
    expect([...h.ordered()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(h.size).toBe(10);
    const popped: number[] = [];
    while (h.size > 0) popped.push(h.pop() as number);
    expect(popped).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("throws when the heap changes during an ordered walk", () => {
    const h = new Heap<number>((a, b) => a - b);
    h.push(1);
    h.push(2);
    expect(() => {
      for (const x of h.ordered()) h.push(x + 10);
    }).toThrow(/changed during ordered walk/);
  });
});

describe("TaskQueue ordering", () => {
  it("serves strict priority: every higher rank before any lower rank", () => {
    const q = new TaskQueue();
    q.push(task("bg", { rank: 4, deadline: 1 }));
    q.push(task("low", { rank: 3 }));
    q.push(task("crit", { rank: 0 }));
    q.push(task("normal", { rank: 2, deadline: 1 }));
    q.push(task("high", { rank: 1 }));
    expect(drain(q)).toEqual(["crit", "high", "normal", "low", "bg"]);
  });

  it("serves earliest deadline first within a level, tasks without deadline last", () => {
    const q = new TaskQueue();
    q.push(task("none", { deadline: undefined }));
    q.push(task("late", { deadline: 3000 }));
    q.push(task("early", { deadline: 1000 }));
    q.push(task("mid", { deadline: 2000 }));
    expect(drain(q)).toEqual(["early", "mid", "late", "none"]);
  });

  it("breaks ties FIFO by seq", () => {
    const q = new TaskQueue();
    q.push(task("b", { seq: 2, deadline: 5 }));
    q.push(task("c", { seq: 3, deadline: 5 }));
    q.push(task("a", { seq: 1, deadline: 5 }));
    q.push(task("e", { seq: 5 }));
    q.push(task("d", { seq: 4 }));
    expect(drain(q)).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("peek returns what pop will return without removing it", () => {
    const q = new TaskQueue();
    q.push(task("x", { rank: 3 }));
    q.push(task("y", { rank: 1 }));
    expect(q.peek()?.id).toBe("y");
    expect(q.size).toBe(2);
    expect(q.pop()?.id).toBe("y");
    expect(q.peek()?.id).toBe("x");
  });

  it("rejects duplicate ids and ranks outside 0..4", () => {
    const q = new TaskQueue();
    q.push(task("a"));
    expect(() => q.push(task("a"))).toThrow(/already queued/);
    expect(() => q.push(task("b", { rank: 5 }))).toThrow(RangeError);
    expect(() => q.push(task("c", { rank: -1 }))).toThrow(RangeError);
    expect(q.size).toBe(1);
  });
});

describe("TaskQueue remove, lookup and counts", () => {
  it("remove keeps size exact and removed tasks are never returned", () => {
    const q = new TaskQueue();
    for (const id of ["a", "b", "c", "d"]) q.push(task(id, { rank: 0 }));
    expect(q.remove("a")).toBe(true);
    expect(q.remove("c")).toBe(true);
    expect(q.remove("c")).toBe(false);
    expect(q.remove("nope")).toBe(false);
    expect(q.size).toBe(2);
    expect(q.has("a")).toBe(false);
    expect(q.get("b")?.id).toBe("b");
    expect(q.sizeByRank()).toEqual([2, 0, 0, 0, 0]);
    expect(drain(q)).toEqual(["b", "d"]);
    expect(q.size).toBe(0);
  });

  it("a removed id can be queued again (e.g. retry) and appears exactly once", () => {
    const q = new TaskQueue();
    q.push(task("a", { rank: 2 }));
    q.push(task("b", { rank: 2 }));
    q.remove("a");
    q.push(task("a", { rank: 0 }));
    expect([...q.ordered()].map((t) => t.id)).toEqual(["a", "b"]);
    expect(drain(q)).toEqual(["a", "b"]);
  });

  it("sizeByRank counts live tasks per level", () => {
    const q = new TaskQueue();
    q.push(task("a", { rank: 0 }));
    q.push(task("b", { rank: 4 }));
    q.push(task("c", { rank: 4 }));
    q.remove("b");
    expect(q.sizeByRank()).toEqual([1, 0, 0, 0, 1]);
  });

  it("position counts the live tasks ahead in dequeue order", () => {
    const q = new TaskQueue();
    q.push(task("n1", { rank: 2 }));
    q.push(task("c1", { rank: 0 }));
    q.push(task("n2", { rank: 2 }));
    q.push(task("n0", { rank: 2, deadline: 10 }));
    expect(q.position("c1")).toBe(0);
    expect(q.position("n0")).toBe(1);
    expect(q.position("n1")).toBe(2);
    expect(q.position("n2")).toBe(3);
    q.remove("n0");
    expect(q.position("n2")).toBe(2);
    expect(q.position("missing")).toBe(-1);
  });

  it("nextNotBefore gives the earliest backoff expiry strictly after now", () => {
    const q = new TaskQueue();
    expect(q.nextNotBefore(100)).toBeUndefined();
    q.push(task("ready", { notBefore: 0 }));
    q.push(task("past", { notBefore: 50 }));
    q.push(task("later", { notBefore: 500 }));
    q.push(task("soon", { notBefore: 200 }));
    expect(q.nextNotBefore(100)).toBe(200);
    q.remove("soon");
    expect(q.nextNotBefore(100)).toBe(500);
    expect(q.nextNotBefore(500)).toBeUndefined();
  });

  it("ordered walks in dequeue order without consuming and tolerates remove mid-walk", () => {
    const q = new TaskQueue();
    q.push(task("n", { rank: 2 }));
    q.push(task("c", { rank: 0 }));
    q.push(task("h", { rank: 1 }));
    q.push(task("b", { rank: 4 }));
    const seen: string[] = [];
    for (const t of q.ordered()) {
      seen.push(t.id);
      if (t.id === "c") q.remove("n");
    }
    expect(seen).toEqual(["c", "h", "b"]);
    expect(q.size).toBe(3);
  });

  it("stays correct when removals far outnumber live tasks (dead entries are compacted)", () => {
    const q = new TaskQueue();
    for (let i = 0; i < 1000; i++) q.push(task(`a${i}`, { rank: 1, seq: 1000 - i }));
    for (let i = 0; i < 1000; i++) if (i % 100 !== 0) q.remove(`a${i}`);
    for (let i = 0; i < 50; i++) q.push(task(`b${i}`, { rank: 1, seq: 5000 + i }));
    const expected = [900, 800, 700, 600, 500, 400, 300, 200, 100, 0].map((i) => `a${i}`);
    expect(q.size).toBe(60);
    expect(drain(q)).toEqual([...expected, ...Array.from({ length: 50 }, (_, i) => `b${i}`)]);
  });

  it("ordered throws if a task is pushed mid-walk instead of silently misordering", () => {
    const q = new TaskQueue();
    q.push(task("a", { rank: 0 }));
    q.push(task("b", { rank: 0 }));
    expect(() => {
      for (const t of q.ordered()) if (t.id === "a") q.push(task("z", { rank: 0 }));
    }).toThrow();
  });
});

describe("TaskQueue against a naive sorted-array model", () => {
  it("agrees on pop, peek, size, position and order over 10k random operations", () => {
    const rand = rng(42);
    const q = new TaskQueue();
    let model: QueuedTask[] = [];
    let seq = 0;
    let nextId = 0;
    const sortModel = (): void => {
      model.sort(compareQueued);
    };
    for (let op = 0; op < 10_000; op++) {
      const r = rand();
      if (r < 0.5 || model.length === 0) {
        const t = task(`t${nextId++}`, {
          rank: Math.floor(rand() * 5),
          // Few distinct deadlines so ties exercise the FIFO tiebreak.
          deadline: rand() < 0.4 ? undefined : Math.floor(rand() * 20),
          seq: seq++,
        });
        q.push(t);
        model.push(t);
        sortModel();
      } else if (r < 0.7) {
        const victim = model[Math.floor(rand() * model.length)];
        expect(q.remove(victim.id)).toBe(true);
        model = model.filter((t) => t !== victim);
      } else if (r < 0.9) {
        expect(q.pop()?.id).toBe(model.shift()?.id);
      } else if (r < 0.97) {
        expect(q.peek()?.id).toBe(model[0]?.id);
        const i = Math.floor(rand() * model.length);
        expect(q.position(model[i].id)).toBe(i);
      } else {
        expect([...q.ordered()].map((t) => t.id)).toEqual(model.map((t) => t.id));
      }
      expect(q.size).toBe(model.length);
    }
    const byRank = [0, 0, 0, 0, 0];
    for (const t of model) byRank[t.rank]++;
    expect(q.sizeByRank()).toEqual(byRank);
    expect(drain(q)).toEqual(model.map((t) => t.id));
  });
});

describe("TaskQueue.positionsOfNewest", () => {
  it("equals position() for a batch just pushed, with and without deadlines, over random queues", () => {
    const rand = rng(7);
    for (let round = 0; round < 50; round++) {
      const q = new TaskQueue();
      let seq = 0;
      for (let i = 0; i < 200; i++)
        q.push(task(`old${round}-${i}`, { seq: seq++, rank: Math.floor(rand() * 5), deadline: rand() < 0.2 ? Math.floor(rand() * 50) : undefined }));
      for (let i = 0; i < 30; i++) if (rand() < 0.5) q.remove(`old${round}-${Math.floor(rand() * 200)}`);
      const batch = Array.from({ length: 40 }, (_, i) =>
        task(`new${round}-${i}`, { seq: seq++, rank: Math.floor(rand() * 5), deadline: rand() < 0.1 ? 25 : undefined }),
      );
      for (const t of batch) q.push(t);
      const fast = q.positionsOfNewest(batch.map((t) => t.id));
      for (const t of batch) expect(fast.get(t.id), t.id).toBe(q.position(t.id));
    }
  });
});
