import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../lib/log.js";
import { InvalidArgumentError } from "../../coordinator/errors.js";
import { MemoryTaskStore } from "../../coordinator/store/memory-store.js";
import { SCHEMA_VERSION } from "../../coordinator/store/migrations.js";
import {
  SqliteTaskStore,
  StoreConflictError,
  StoreCorruptError,
  StoreOpenError,
  StoreVersionError,
  StoreWriteError,
  type StoreLogger,
} from "../../coordinator/store/sqlite-store.js";
import type { TaskStore } from "../../coordinator/store/store.js";
import { spec, task } from "../helpers/task-fixtures.js";
import type { TaskRecord, TaskSpec, TaskState } from "../../coordinator/tasks/types.js";

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const dirs: string[] = [];
const stores: SqliteTaskStore[] = [];
const handles: Database.Database[] = [];

afterEach(async () => {
  for (const h of handles.splice(0)) if (h.open) h.close();
  for (const s of stores.splice(0)) {
    try {
      await s.close();
    } catch {
      // a test that made commits fail may leave writes it could not save
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "edgeplane-store-"));
  dirs.push(d);
  return d;
}

function open(dir: string, opts: Parameters<typeof SqliteTaskStore.open>[1] = {}): SqliteTaskStore {
  const s = SqliteTaskStore.open(dir, opts);
  stores.push(s);
  return s;
}

async function reopen(s: SqliteTaskStore, dir: string): Promise<SqliteTaskStore> {
  await s.close();
  return open(dir);
}

/** A second connection to the same file, as another process would have (read-only unless asked). */
function peek(dir: string, readonly = true): Database.Database {
  const h = new Database(join(dir, "edgeplane.db"), { readonly });
  handles.push(h);
  return h;
}

/** Every field set, with undefined and null in the places where they mean different things. */
function fullRecord(): TaskRecord {
  return {
    id: "t-full",
    seq: 7,
    state: "running",
    attempt: 2,
    assignedCluster: "site-a",
    assignedNode: "n-2",
    output: { mean: 1.5, tags: ["a", null], nested: { empty: {}, none: null } },
    error: "attempt 1 failed: boom",
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_900,
    finishedAt: undefined,
    idempotencyKey: "key-full",
    queuedAt: 1_700_000_000_500,
    queuedMs: 420,
    notBefore: 1_700_000_000_600,
    preemptions: 1,
    spec: {
      name: "full",
      handler: "moments",
      deviceId: "sensor-9",
      priority: "high",
      mode: "hybrid",
      input: null,
      series: {
        values: [1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, 5e-324, -1e308],
        timestamps: [1, 2, 3, 4, 5, 6, 7, 2 ** 53 - 1],
      },
      memoryBytes: 64 * 1024 * 1024,
      cpuMillis: 250,
      estimatedMs: 1500,
      deadline: 1_700_000_060_000,
      maxRetries: 3,
      clusterId: "site-a",
      labels: { zone: "north", "ü-key": "välue" },
      disconnectWindowMs: undefined,
    },
    attempts: [
      {
        attempt: 1,
        nodeId: "n-1",
        clusterId: "site-a",
        outcome: "failed",
        error: "boom",
        dispatchedAt: 1_700_000_000_100,
        startedAt: 1_700_000_000_150,
        finishedAt: 1_700_000_000_400,
        processingMs: 250,
        peakMemoryBytes: 1234,
        placementReason: "least loaded",
      },
      {
        attempt: 2,
        nodeId: "n-2",
        clusterId: "site-a",
        outcome: undefined,
        error: "",
        dispatchedAt: 1_700_000_000_800,
        startedAt: undefined,
        finishedAt: undefined,
        processingMs: 0,
        peakMemoryBytes: 0,
        placementReason: "",
        stillLive: true,
      },
    ],
  };
}

function recordingLogger(): StoreLogger & { lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: "info", msg, obj }),
    error: (obj, msg) => lines.push({ level: "error", msg, obj }),
  };
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

const allPages = (s: TaskStore, filter: Parameters<TaskStore["list"]>[0], size: number): string[] => {
  const ids: string[] = [];
  let cursor = "";
  for (let guard = 0; guard < 10_000; guard++) {
    const page = s.list(filter, size, cursor);
    ids.push(...page.tasks.map((t) => t.id));
    if (!page.next) return ids;
    cursor = page.next;
  }
  throw new Error("pagination did not end");
};

// ---------------------------------------------------------------------------------------------------------------
// The same behaviour checks against both stores

const factories: [string, () => TaskStore][] = [
  ["MemoryTaskStore", () => new MemoryTaskStore()],
  // pino's Logger, what main.ts has, fits StoreLogger.
  ["SqliteTaskStore", () => open(tempDir(), { logger: silentLogger() })],
];

describe.each(factories)("TaskStore behaviour: %s", (_name, make) => {
  it("get() sees an inserted task and, right after put(), its new version", () => {
    const s = make();
    const t = task();
    s.insert([t]);
    expect(s.get(t.id)).toEqual(t);
    const next: TaskRecord = { ...t, state: "dispatched", attempt: 1, assignedNode: "n1", assignedCluster: "c1" };
    s.put(next);
    expect(s.get(t.id)).toEqual(next);
    expect(s.get("t-nope")).toBeUndefined();
  });

  it('list() pages newest first with an opaque cursor, and the last page has next = ""', () => {
    const s = make();
    const ts = Array.from({ length: 10 }, () => task());
    s.insert(ts);
    const first = s.list({}, 3, "");
    expect(first.tasks.map((t) => t.id)).toEqual([ts[9].id, ts[8].id, ts[7].id]);
    expect(first.next).not.toBe("");
    expect(allPages(s, {}, 3)).toEqual(ts.map((t) => t.id).reverse());
    expect(s.list({}, 10, "").next).toBe("");
  });

  it("a cursor stays valid while newer tasks arrive: the next page continues where the last one stopped", () => {
    const s = make();
    const ts = Array.from({ length: 6 }, () => task());
    s.insert(ts);
    const first = s.list({}, 3, "");
    s.insert([task(), task()]);
    expect(s.list({}, 3, first.next).tasks.map((t) => t.id)).toEqual([ts[2].id, ts[1].id, ts[0].id]);
  });

  it("list() filters by state, priority, device and cluster (assigned or requested)", () => {
    const s = make();
    const a = task({}, { priority: "high", deviceId: "d1" });
    const b = task({ state: "running", assignedCluster: "c1" }, { priority: "low" });
    const c = task({ state: "succeeded" }, { clusterId: "c1", deviceId: "d1" });
    const d = task({}, { priority: "high", clusterId: "c2" });
    s.insert([a, b, c, d]);
    const ids = (f: Parameters<TaskStore["list"]>[0]) => s.list(f, 100, "").tasks.map((t) => t.id);
    expect(ids({ states: new Set<TaskState>(["queued"]) })).toEqual([d.id, a.id]);
    expect(ids({ states: new Set<TaskState>(["running", "succeeded"]) })).toEqual([c.id, b.id]);
    expect(ids({ priority: "high" })).toEqual([d.id, a.id]);
    expect(ids({ deviceId: "d1" })).toEqual([c.id, a.id]);
    expect(ids({ clusterId: "c1" })).toEqual([c.id, b.id]);
    expect(ids({ clusterId: "c1", states: new Set<TaskState>(["running"]) })).toEqual([b.id]);
    expect(ids({ states: new Set<TaskState>() })).toEqual([d.id, c.id, b.id, a.id]);
  });

  it("list() refuses a cursor it did not issue", () => {
    const s = make();
    s.insert([task()]);
    expect(() => s.list({}, 10, "not-a-cursor!")).toThrow(InvalidArgumentError);
    expect(() => s.list({}, 10, "zz")).toThrow(InvalidArgumentError);
  });

  it("active() lists every non-terminal task, oldest first by seq", () => {
    const s = make();
    const ts = (["queued", "succeeded", "running", "failed", "dispatched", "cancelled", "expired", "queued"] as TaskState[]).map((state) => task({ state }));
    s.insert(ts);
    expect(s.active().map((t) => t.id)).toEqual([ts[0], ts[2], ts[4], ts[7]].map((t) => t.id));
    s.put({ ...ts[0], state: "cancelled" });
    expect(s.active().map((t) => t.id)).toEqual([ts[2], ts[4], ts[7]].map((t) => t.id));
  });

  it("findByIdempotencyKey() finds the task by its key, and an empty key is never indexed", () => {
    const s = make();
    const a = task({ idempotencyKey: "k-1" });
    const b = task();
    s.insert([a, b]);
    expect(s.findByIdempotencyKey("k-1")?.id).toBe(a.id);
    s.put({ ...a, state: "running" });
    expect(s.findByIdempotencyKey("k-1")?.state).toBe("running");
    expect(s.findByIdempotencyKey("")).toBeUndefined();
    expect(s.findByIdempotencyKey("k-2")).toBeUndefined();
  });

  it("flush() resolves", async () => {
    const s = make();
    s.insert([task()]);
    await expect(s.flush()).resolves.toBeUndefined();
  });
});

describe("SqliteTaskStore answers like MemoryTaskStore", () => {
  it("gives the same pages, active list and key lookups for a random workload, before and after a reopen", async () => {
    const dir = tempDir();
    const mem = new MemoryTaskStore();
    let sql = open(dir);
    let seed = 42;
    const rnd = (n: number) => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n;
    const states: TaskState[] = ["queued", "dispatched", "running", "succeeded", "failed", "cancelled", "expired"];
    const live: TaskRecord[] = [];
    let keys = 0;
    for (let turn = 0; turn < 20; turn++) {
      const batch = Array.from({ length: 1 + rnd(30) }, () =>
        task(
          { idempotencyKey: rnd(3) === 0 ? `k-${keys++}` : "" },
          { priority: (["critical", "high", "normal", "low", "background"] as const)[rnd(5)], deviceId: `d${rnd(4)}`, clusterId: rnd(2) ? "" : `c${rnd(3)}` },
        ),
      );
      mem.insert(batch);
      sql.insert(batch);
      live.push(...batch);
      for (let i = 0; i < 25; i++) {
        const t = live[rnd(live.length)];
        const next: TaskRecord = { ...mem.get(t.id)!, state: states[rnd(states.length)], assignedCluster: `c${rnd(3)}`, updatedAt: 5000 + i };
        mem.put(next);
        sql.put(next);
      }
      await sql.flush();
    }
    const compare = (s: SqliteTaskStore) => {
      const filters: Parameters<TaskStore["list"]>[0][] = [
        {},
        { priority: "high" },
        { deviceId: "d1" },
        { clusterId: "c1" },
        { states: new Set<TaskState>(["queued", "running"]) },
        { states: new Set<TaskState>(["succeeded"]), clusterId: "c2" },
      ];
      for (const f of filters) {
        for (const size of [1, 7, 50]) expect(allPages(s, f, size)).toEqual(allPages(mem, f, size));
        expect(s.list(f, 7, "").next).toBe(mem.list(f, 7, "").next);
      }
      expect(s.active()).toEqual(mem.active());
      for (const t of live) {
        // A finished task's payload may live on disk only: withPayload() is the whole record.
        expect(s.withPayload(s.get(t.id)!)).toStrictEqual(mem.get(t.id));
        if (t.idempotencyKey) expect(s.findByIdempotencyKey(t.idempotencyKey)?.id).toBe(t.id);
      }
    };
    compare(sql);
    sql = await reopen(sql, dir);
    compare(sql);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Durability

describe("SqliteTaskStore", () => {
  it("round-trips a full record through close and reopen: every field, attempts, series (NaN, ±Infinity, -0), undefined apart from null", async () => {
    const dir = tempDir();
    const s = open(dir);
    const rec = fullRecord();
    s.insert([rec]);
    const withOutput: TaskRecord = {
      ...task({ output: null, finishedAt: 5 }, { input: { a: [1, "x", null, true] }, series: { values: [], timestamps: [] }, disconnectWindowMs: 30_000 }),
    };
    s.insert([withOutput]);
    await s.flush();
    const again = await reopen(s, dir);
    expect(again.get(rec.id)).toStrictEqual(rec);
    expect(again.get(withOutput.id)).toStrictEqual(withOutput);
    expect(Object.is(again.get(rec.id)!.spec.series!.values[1], -0)).toBe(true);
    expect(again.findByIdempotencyKey("key-full")?.id).toBe(rec.id);
  });

  it("lets go of a finished task's input and series once committed; withPayload() reads them back, also after a reopen", async () => {
    const dir = tempDir();
    const s = open(dir);
    const series = { values: Array.from({ length: 5000 }, (_, i) => Math.sin(i)), timestamps: Array.from({ length: 5000 }, (_, i) => 1_700_000_000_000 + i) };
    const done = task({}, { input: { windowMs: 10, note: "kept" }, series });
    const live = task({}, { input: { v: 1 }, series });
    s.insert([done, live]);
    const finished: TaskRecord = { ...done, state: "succeeded", output: { count: 5000 }, finishedAt: 9 };
    s.put(finished);
    // Not committed yet: memory still has everything.
    expect(s.get(done.id)!.spec.series).toBe(series);
    await s.flush();
    const light = s.get(done.id)!;
    expect(light.spec.input).toBeUndefined();
    expect(light.spec.series).toBeUndefined();
    expect({ ...light.spec, input: undefined, series: undefined }).toStrictEqual({ ...done.spec, input: undefined, series: undefined });
    expect(s.withPayload(light)).toStrictEqual(finished);
    expect(s.get(live.id)!.spec.series).toBe(series); // unfinished tasks keep theirs
    expect(s.withPayload(s.get(live.id)!)).toBe(s.get(live.id));

    // A later put built from the light record (what task-manager does) must not overwrite the stored payload.
    s.put({ ...light, error: "note added later", updatedAt: 10 });
    await s.flush();
    const again = await reopen(s, dir);
    const loaded = again.get(done.id)!;
    expect(loaded.spec.series).toBeUndefined();
    expect(loaded.error).toBe("note added later");
    expect(again.withPayload(loaded)).toStrictEqual({ ...finished, error: "note added later", updatedAt: 10 });
    expect(again.get(live.id)).toStrictEqual(live);
  });

  it("stores a shard whose series is a slice of its parent's as a reference, not a second copy, and reads it back", async () => {
    const dir = tempDir();
    let s = open(dir);
    const n = 10_000;
    const values = Array.from({ length: n }, (_, i) => (i === 7 ? Number.NaN : i === 8 ? -0 : Math.sin(i) * 1e3));
    const timestamps = values.map((_, i) => 1_700_000_000_000 + i);
    const parent = task({}, { mode: "distributed", series: { values, timestamps } });
    s.insert([parent]);
    await s.flush();
    const shardOf = (start: number, end: number, series: TaskSpec["series"]): TaskRecord =>
      task(
        { shard: { parentId: parent.id, index: start, count: 3, start, end, offset: start, phase: "partial", round: 0, global: undefined, preferNode: "n1" } },
        { mode: "distributed", input: { indexOffset: start }, series },
      );
    const a = shardOf(0, 4000, { values: values.slice(0, 4000), timestamps: timestamps.slice(0, 4000) });
    const b = shardOf(4000, n, { values: values.slice(4000), timestamps: timestamps.slice(4000) });
    // Claims to be points [0, 3) but holds other numbers: stored in full.
    const odd = shardOf(0, 3, { values: [1, 2, 3], timestamps: timestamps.slice(0, 3) });
    s.insert([a, b, odd]);
    await s.flush();
    const rows = peek(dir).prepare("SELECT id, series_values IS NULL AS ref, spec FROM task_specs").all() as { id: string; ref: number; spec: string }[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect([a, b, odd, parent].map((t) => byId.get(t.id)!.ref)).toEqual([1, 1, 0, 0]);
    expect(JSON.parse(byId.get(a.id)!.spec).seriesRef).toEqual({ parentId: parent.id, start: 0, end: 4000, timestamps: true });

    s = await reopen(s, dir);
    // Since schema version 3 even shard.global: undefined is kept (version 2 dropped the key).
    for (const t of [parent, a, b, odd]) expect(s.get(t.id)).toStrictEqual(t);
    for (const t of [parent, a, b, odd]) expect(s.get(t.id)!.spec.series).toStrictEqual(t.spec.series);
    expect(Object.is(s.get(a.id)!.spec.series!.values[8], -0)).toBe(true);

    // Finished, all of them: memory lets go of the payloads, and withPayload() rebuilds the slices from the file.
    for (const t of [parent, a, b, odd]) s.put({ ...s.get(t.id)!, state: "succeeded", finishedAt: 5 });
    await s.flush();
    expect(s.get(b.id)!.spec.series).toBeUndefined();
    expect(s.withPayload(s.get(b.id)!).spec.series).toStrictEqual(b.spec.series);
    s = await reopen(s, dir);
    expect(s.withPayload(s.get(a.id)!).spec.series).toStrictEqual(a.spec.series);
    expect(s.withPayload(s.get(odd.id)!).spec.series).toStrictEqual(odd.spec.series);
  });

  it("keeps the newest version of a task across reopen, and a put that changes the spec rewrites it", async () => {
    const dir = tempDir();
    const s = open(dir);
    const t = task({}, { input: { v: 1 } });
    s.insert([t]);
    await s.flush();
    s.put({ ...t, state: "dispatched", attempt: 1 });
    await s.flush();
    s.put({ ...t, state: "running", attempt: 1, spec: { ...t.spec, input: { v: 2 } } });
    const again = await reopen(s, dir);
    expect(again.get(t.id)?.state).toBe("running");
    expect(again.get(t.id)?.spec.input).toEqual({ v: 2 });
  });

  it("stores 10,000 tasks inserted in one batch, and their puts, in one commit each, and loads them all back", async () => {
    const dir = tempDir();
    // A budget above the puts' 10,000 rows (the default is smaller: see the commit budget test in store-commit).
    const s = open(dir, { maxCommitRows: 20_000 });
    const ts = Array.from({ length: 10_000 }, (_, i) =>
      task({ idempotencyKey: i % 2 ? `key-${i}` : "" }, { series: { values: [i, i + 0.5], timestamps: [] } }),
    );
    s.insert(ts);
    await s.flush();
    expect(s.stats()).toMatchObject({ commits: 1, pendingWrites: 0 });
    for (const t of ts) s.put({ ...t, state: "dispatched", attempt: 1, assignedNode: "n1", assignedCluster: "c1" });
    await s.flush();
    expect(s.stats().commits).toBe(2);
    const again = await reopen(s, dir);
    expect(again.list({}, 20_000, "").tasks).toHaveLength(10_000);
    expect(again.active().map((t) => t.id)).toEqual(ts.map((t) => t.id));
    expect(again.get(ts[4321].id)).toStrictEqual({ ...ts[4321], state: "dispatched", attempt: 1, assignedNode: "n1", assignedCluster: "c1" });
    expect(again.findByIdempotencyKey("key-9999")?.id).toBe(ts[9999].id);
    expect(again.list({ clusterId: "c1" }, 5, "").tasks.map((t) => t.id)).toEqual(
      ts
        .slice(-5)
        .reverse()
        .map((t) => t.id),
    );
  });

  it("flush() resolves only once the write is committed: another connection sees the row then, not before", async () => {
    const dir = tempDir();
    const s = open(dir);
    const other = peek(dir);
    const row = other.prepare("SELECT state FROM tasks WHERE id = ?").pluck();
    const t = task();
    s.insert([t]);
    expect(s.get(t.id)).toBeDefined();
    expect(row.get(t.id)).toBeUndefined();
    await s.flush();
    expect(row.get(t.id)).toBe("queued");
    s.put({ ...t, state: "dispatched" });
    expect(row.get(t.id)).toBe("queued");
    await s.flush();
    expect(row.get(t.id)).toBe("dispatched");
  });

  it("group commit: 1,000 puts in one turn are one transaction, and a put does not rewrite the spec", async () => {
    const dir = tempDir();
    const s = open(dir);
    const ts = Array.from({ length: 1000 }, () => task());
    s.insert(ts);
    await s.flush();
    const before = s.stats();
    for (const t of ts) s.put({ ...t, state: "dispatched" });
    for (const t of ts) s.put({ ...t, state: "running" }); // collapses onto the first put of the same task
    expect(s.stats().pendingWrites).toBe(1000);
    await s.flush();
    const after = s.stats();
    expect(after.commits - before.commits).toBe(1);
    expect(after.rowsWritten - before.rowsWritten).toBe(1000);
    expect(peek(dir).prepare("SELECT count(*) FROM tasks WHERE state = 'running'").pluck().get()).toBe(1000);
  });

  it("flush() with nothing queued resolves at once, with no commit", async () => {
    const s = open(tempDir());
    await s.flush();
    expect(s.stats().commits).toBe(0);
  });

  it("a failed commit rejects flush(), keeps the writes queued and commits them on the next attempt", async () => {
    const dir = tempDir();
    const log = recordingLogger();
    const s = open(dir, { busyTimeoutMs: 10, logger: log });
    const blocker = peek(dir, false);
    blocker.exec("BEGIN IMMEDIATE"); // holds the write lock, as a stuck backup would
    const t = task();
    s.insert([t]);
    const err = await s.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreWriteError);
    expect((err as StoreWriteError).message).toContain(s.path);
    expect(((err as Error).cause as { code?: string }).code).toBe("SQLITE_BUSY");
    expect(s.stats()).toMatchObject({ failedCommits: 1, pendingWrites: 1, commits: 0 });
    expect(s.get(t.id)).toEqual(t);
    expect(log.lines.filter((l) => l.level === "error").map((l) => l.msg)).toEqual(["task store commit failed; the writes stay queued and are retried"]);
    blocker.exec("COMMIT");
    s.put({ ...t, state: "dispatched" });
    await s.flush();
    expect(s.stats()).toMatchObject({ commits: 1, pendingWrites: 0 });
    const again = await reopen(s, dir);
    expect(again.get(t.id)?.state).toBe("dispatched");
  });

  it("refuses a write that could never commit, changing nothing: duplicate id, seq or key, put of an unknown task", () => {
    const s = open(tempDir());
    const a = task({ idempotencyKey: "k" });
    s.insert([a]);
    const fresh = task();
    expect(() => s.insert([fresh, { ...a }])).toThrow(StoreConflictError);
    expect(() => s.insert([fresh, task({ seq: a.seq, id: "t-other" })])).toThrow(/seq/);
    expect(() => s.insert([fresh, task({ idempotencyKey: "k" })])).toThrow(/idempotency key/);
    expect(() => s.insert([fresh, { ...fresh }])).toThrow(StoreConflictError);
    expect(s.get(fresh.id)).toBeUndefined();
    expect(() => s.put(task())).toThrow(StoreConflictError);
    expect(() => s.put({ ...a, seq: 999_999 })).toThrow(StoreConflictError);
    expect(s.stats().pendingWrites).toBe(1);
  });

  it("maxSeq() counts finished tasks too, across a reopen", async () => {
    const dir = tempDir();
    const s = open(dir);
    s.insert([task({ seq: 3, id: "a" }), task({ seq: 9, id: "b", state: "succeeded" })]);
    expect(s.maxSeq()).toBe(9);
    const again = await reopen(s, dir);
    expect(again.active().map((t) => t.seq)).toEqual([3]);
    expect(again.maxSeq()).toBe(9);
  });

  it("persists clusters and meta with the same group commit; coordinator_id is chosen once", async () => {
    const dir = tempDir();
    const s = open(dir);
    const id = s.getMeta("coordinator_id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(s.getMeta("created_at"))).toBeGreaterThan(0);
    s.saveCluster({ id: "site-b", tier: "cloud", labels: { region: "eu" }, declared: false, createdAt: 5 });
    s.saveCluster({ id: "site-a", tier: "edge", labels: {}, declared: false, createdAt: 6 });
    s.saveCluster({ id: "site-b", tier: "cloud", labels: { region: "eu" }, declared: true, createdAt: 5 });
    s.setMeta("note", "hello");
    const again = await reopen(s, dir);
    expect(again.loadClusters()).toEqual([
      { id: "site-a", tier: "edge", labels: {}, declared: false, createdAt: 6 },
      { id: "site-b", tier: "cloud", labels: { region: "eu" }, declared: true, createdAt: 5 },
    ]);
    expect(again.getMeta("coordinator_id")).toBe(id);
    expect(again.getMeta("note")).toBe("hello");
  });

  it("creates the data directory and a database at the current schema version in WAL mode", () => {
    const dir = join(tempDir(), "nested", "data");
    const log = recordingLogger();
    const s = open(dir, { logger: log });
    expect(log.lines.map((l) => l.msg)).toEqual(["task store schema migrated", "task store opened"]);
    expect(existsSync(join(dir, "edgeplane.db"))).toBe(true);
    const h = peek(dir);
    expect(h.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(h.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(s.path).toBe(resolve(dir, "edgeplane.db"));
  });

  it("refuses a second store on a data directory that is in use, and allows it once the first is closed", async () => {
    const dir = tempDir();
    const s = open(dir);
    expect(() => open(dir)).toThrow(StoreOpenError);
    expect(() => open(dir)).toThrow(/in use by another edgeplane coordinator/);
    await s.close();
    expect(open(dir).active()).toEqual([]);
  });

  it("refuses writes after close()", async () => {
    const s = open(tempDir());
    await s.close();
    expect(() => s.insert([task()])).toThrow(/closed/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Crash safety: a real process, killed with SIGKILL right after its flushes

// The child runs the built module (node cannot load the TypeScript sources): `npm test` builds first; after
// `npx vitest run` alone, run `npm run build` when these sources changed.
const DIST_MODULE = resolve("dist/coordinator/store/sqlite-store.js");

function assertBuilt(): void {
  if (!existsSync(DIST_MODULE)) throw new Error(`${DIST_MODULE} is missing: run \`npm run build\` (npm test does it first)`);
}

const CHILD = `
const [moduleUrl, dir] = process.argv.slice(-2);
const { SqliteTaskStore } = await import(moduleUrl);
const turn = () => new Promise((r) => setImmediate(r));
const spec = { name: "t", handler: "stats", deviceId: "d", priority: "normal", mode: "local", input: { n: 1 }, series: undefined,
  memoryBytes: 1, cpuMillis: 1, estimatedMs: 0, deadline: undefined, maxRetries: 0, clusterId: "", labels: {}, disconnectWindowMs: undefined };
const mk = (seq) => ({ id: "t-" + seq, spec, state: "queued", attempt: 0, assignedCluster: "", assignedNode: "", output: undefined,
  error: "", createdAt: seq, updatedAt: seq, finishedAt: undefined, attempts: [], idempotencyKey: "k-" + seq, queuedAt: seq,
  queuedMs: 0, notBefore: 0, seq, preemptions: 0 });
const store = SqliteTaskStore.open(dir);
let seq = 0;
for (let b = 0; b < 5; b++) {
  const batch = Array.from({ length: 200 }, () => mk(++seq));
  store.insert(batch);
  await store.flush();
  console.log("flushed " + batch.map((t) => t.id).join(","));
  await turn();
}
for (let i = 1; i <= 200; i++) store.put({ ...store.get("t-" + i), state: "dispatched", attempt: 1, assignedNode: "n1" });
await store.flush();
console.log("dispatched 200");
store.insert(Array.from({ length: 50 }, () => mk(++seq))); // queued, never flushed: may or may not survive
process.kill(process.pid, "SIGKILL");
`;

describe("SqliteTaskStore crash safety", () => {
  it("a process killed with SIGKILL right after flush() loses none of the flushed tasks", () => {
    assertBuilt();
    const dir = tempDir();
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD, pathToFileURL(DIST_MODULE).href, dir], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(child.signal, child.stderr).toBe("SIGKILL");
    const lines = child.stdout.trim().split("\n");
    const flushed = lines.filter((l) => l.startsWith("flushed ")).flatMap((l) => l.slice("flushed ".length).split(","));
    expect(flushed).toHaveLength(1000);
    expect(lines.at(-1)).toBe("dispatched 200");
    expect(existsSync(join(dir, "edgeplane.db-wal"))).toBe(true); // no clean close: recovery goes through the WAL

    const s = open(dir);
    for (const id of flushed) expect(s.get(id), id).toBeDefined();
    expect(s.get("t-1")?.state).toBe("dispatched");
    expect(s.get("t-200")?.assignedNode).toBe("n1");
    expect(s.get("t-201")?.state).toBe("queued");
    expect(s.findByIdempotencyKey("k-1000")?.id).toBe("t-1000");
    expect(s.maxSeq()).toBeGreaterThanOrEqual(1000);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Damaged or foreign files: refuse, name the file, leave it as found

describe("SqliteTaskStore refuses a database it cannot trust", () => {
  async function populated(n: number): Promise<{ dir: string; db: string }> {
    const dir = tempDir();
    const s = open(dir);
    s.insert(Array.from({ length: n }, () => task({}, { input: { text: "x".repeat(200) } })));
    await s.flush();
    await s.close(); // checkpoints the WAL into edgeplane.db and removes it
    return { dir, db: join(dir, "edgeplane.db") };
  }

  function expectRefusal(dir: string, db: string, kind: new (...a: never[]) => Error): Error {
    const before = sha256(db);
    let err: unknown;
    try {
      open(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(kind);
    expect((err as Error).message).toContain(db);
    expect((err as Error).name).toBe(kind.name);
    expect(sha256(db)).toBe(before);
    return err as Error;
  }

  it("a file of random bytes: StoreCorruptError naming the file and what to do; the file is untouched", () => {
    const dir = tempDir();
    const db = join(dir, "edgeplane.db");
    writeFileSync(db, randomBytes(64 * 1024));
    const err = expectRefusal(dir, db, StoreCorruptError);
    expect(err.message).toMatch(/will not start over it/);
    expect((err.cause as { code?: string }).code).toBe("SQLITE_NOTADB");
  });

  it("a valid database with garbage written over its middle pages: StoreCorruptError, file untouched", async () => {
    const { dir, db } = await populated(3000);
    const size = statSync(db).size;
    const page = 4096;
    const fd = openSync(db, "r+");
    const start = Math.floor(size / 2 / page) * page;
    writeSync(fd, randomBytes(4 * page), 0, 4 * page, start);
    closeSync(fd);
    expect(expectRefusal(dir, db, StoreCorruptError).message).toMatch(/damaged/);
  });

  it("a truncated database: StoreCorruptError, file untouched", async () => {
    const { dir, db } = await populated(3000);
    truncateSync(db, Math.floor(statSync(db).size * 0.6));
    expectRefusal(dir, db, StoreCorruptError);
  });

  it("a row whose record is not JSON: StoreCorruptError naming the task", async () => {
    const { dir, db } = await populated(3);
    const h = new Database(db);
    h.prepare("UPDATE tasks SET record = '{not json' WHERE seq = (SELECT min(seq) FROM tasks)").run();
    h.close();
    expect(() => open(dir)).toThrow(/task t-\d+: /);
    expect(() => open(dir)).toThrow(StoreCorruptError);
  });

  it("a database from a newer edgeplane (higher schema version): StoreVersionError, file untouched", async () => {
    const { dir, db } = await populated(3);
    const h = new Database(db);
    h.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    h.close();
    const err = expectRefusal(dir, db, StoreVersionError);
    expect(err.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(err.message).toContain(`up to ${SCHEMA_VERSION}`);
  });

  it("an SQLite database that is not edgeplane's: StoreVersionError, file untouched", () => {
    const dir = tempDir();
    const db = join(dir, "edgeplane.db");
    const h = new Database(db);
    h.exec("CREATE TABLE other (x)");
    h.close();
    expect(expectRefusal(dir, db, StoreVersionError).message).toMatch(/not an edgeplane one/);
  });
});
