// Schema version 2 (a whole record as JSON per task, rewritten on every transition) → 3 (a column per field, a
// row per attempt): a database written by version 2's code opens with today's, every task deep-equal.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS, SCHEMA_VERSION } from "../../coordinator/store/migrations.js";
import { StoreCorruptError } from "../../coordinator/store/sqlite-store.js";
import type { TaskRecord } from "../../coordinator/tasks/types.js";
import { cleanUp, dispatched, openStore, peek, recordingLogger, running, succeeded, task, tempDir } from "../helpers/store-fixtures.js";

afterEach(cleanUp);

// ---------------------------------------------------------------------------------------------------------------
// Version 2's writer, as coordinator/store/task-row.ts and sqlite-store.ts had it at schema version 2 (98dff78).

const UNDEFINED_KEYS = "~undefined";
function markUndefined<T extends object>(o: T): T {
  const keys = Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] === undefined);
  return keys.length === 0 ? o : { ...o, [UNDEFINED_KEYS]: keys };
}
function packFloat64(xs: readonly number[]): Buffer {
  const f = Float64Array.from(xs);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength);
}
interface V2Ref {
  parentId: string;
  start: number;
  end: number;
  timestamps: boolean;
}

function writeV2(dir: string, tasks: { t: TaskRecord; ref?: V2Ref }[]): string {
  const path = join(dir, "edgeplane.db");
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.transaction(() => {
    db.exec(MIGRATIONS[0].sql);
    db.exec(MIGRATIONS[1].sql);
    db.pragma("user_version = 2");
    db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)").run("coordinator_id", "c0ffee00-0000-4000-8000-000000000000");
    const upsertTask =
      db.prepare(`INSERT INTO tasks (id, seq, state, priority, device_id, cluster, target_cluster, idempotency_key, created_at, updated_at, record)
      VALUES (@id, @seq, @state, @priority, @device_id, @cluster, @target_cluster, @idempotency_key, @created_at, @updated_at, @record)`);
    const upsertSpec = db.prepare("INSERT INTO task_specs (id, spec, series_values, series_timestamps) VALUES (?, ?, ?, ?)");
    for (const { t, ref } of tasks) {
      const { spec, ...rest } = t;
      const stored = { ...markUndefined(rest), attempts: rest.attempts.map(markUndefined) };
      upsertTask.run({
        id: t.id,
        seq: t.seq,
        state: t.state,
        priority: spec.priority,
        device_id: spec.deviceId,
        cluster: t.assignedCluster,
        target_cluster: spec.clusterId,
        idempotency_key: t.idempotencyKey,
        created_at: t.createdAt,
        updated_at: t.updatedAt,
        record: JSON.stringify(stored),
      });
      const { series, ...specRest } = spec;
      if (series && ref) upsertSpec.run(t.id, JSON.stringify(markUndefined({ ...specRest, seriesRef: ref })), null, null);
      else if (series)
        upsertSpec.run(
          t.id,
          JSON.stringify(markUndefined({ ...specRest, seriesLength: { values: series.values.length, timestamps: series.timestamps.length } })),
          packFloat64(series.values),
          packFloat64(series.timestamps),
        );
      else upsertSpec.run(t.id, JSON.stringify(markUndefined(specRest)), null, null);
    }
  })();
  db.close();
  return path;
}

const sha256 = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

/** Every kind of record version 2 held: attempts with undefined and stillLive, a split parent and its shards, finished ones. */
function v2Workload(): { t: TaskRecord; ref?: V2Ref }[] {
  const values = Array.from({ length: 1000 }, (_, i) => (i === 3 ? Number.NaN : Math.cos(i)));
  const timestamps = values.map((_, i) => 1_700_000_000_000 + i);
  const parent: TaskRecord = {
    ...task({ state: "running", attempt: 0 }, { mode: "distributed", series: { values, timestamps }, priority: "high" }),
    split: {
      clusterId: "c1",
      reason: "2 nodes",
      prepareRounds: 0,
      remoteMerge: false,
      phase: "partial",
      round: 0,
      done: 0,
      total: 2,
      global: { mean: 1 },
      mergeMs: 0,
      shards: [{ index: 0, taskId: "t-shard-a", nodeId: "n1", start: 0, end: 600, state: "running", processingMs: 0, queuedMs: 0, attempts: 1 }],
    },
  };
  const shard: TaskRecord = running(
    dispatched(
      task(
        {
          id: "t-shard-a",
          shard: { parentId: parent.id, index: 0, count: 2, start: 0, end: 600, offset: 0, phase: "partial", round: 0, global: { mean: 1 }, preferNode: "n1" },
        },
        { mode: "distributed", series: { values: values.slice(0, 600), timestamps: timestamps.slice(0, 600) }, input: { indexOffset: 0 } },
      ),
    ),
  );
  const retried = dispatched(
    {
      ...dispatched(task({ idempotencyKey: "key-retried" }, { deadline: 1_800_000_000_000, labels: { zone: "north" } })),
      state: "queued",
      error: "attempt 1 failed: boom",
      notBefore: 5000,
      queuedMs: 12,
    },
    "n2",
  );
  retried.attempts = [
    { ...retried.attempts[0], outcome: "failed", error: "boom", finishedAt: 99, stillLive: false },
    { ...retried.attempts[1], stillLive: true },
  ];
  const done = succeeded(running(dispatched(task({}, { input: { text: "kept on disk" }, series: { values: [1, 2, 3], timestamps: [] } }))));
  const withLaterField = { ...task({ output: null, finishedAt: 7, state: "cancelled" }), laterField: { team: "ops" } } as TaskRecord;
  const queued = Array.from({ length: 20 }, (_, i) => task({ idempotencyKey: i % 3 === 0 ? `k-${i}` : "" }, { priority: i % 2 ? "low" : "normal" }));
  return [
    { t: parent },
    { t: shard, ref: { parentId: parent.id, start: 0, end: 600, timestamps: true } },
    { t: retried },
    { t: done },
    { t: withLaterField },
    ...queued.map((t) => ({ t })),
  ];
}

describe("schema version 2 → 3", () => {
  it("opens a version 2 database with every task deep-equal, queued tasks in their order, and writes version 3 rows from then on", async () => {
    const dir = tempDir();
    const work = v2Workload();
    writeV2(dir, work);
    const log = recordingLogger();
    let s = openStore(dir, { logger: log });
    expect(log.lines.find((l) => l.msg === "task store schema migrated")?.obj).toMatchObject({ from: 2, to: SCHEMA_VERSION });
    const check = () => {
      for (const { t } of work) expect(s.withPayload(s.get(t.id)!), t.id).toStrictEqual(t);
      expect(s.active().map((t) => t.id)).toEqual(
        work
          .map((w) => w.t)
          .filter((t) => ["queued", "dispatched", "running"].includes(t.state))
          .map((t) => t.id),
      );
      expect(s.findByIdempotencyKey("key-retried")?.id).toBe(work[2].t.id);
      expect(s.maxSeq()).toBe(Math.max(...work.map((w) => w.t.seq)));
      expect(s.getMeta("coordinator_id")).toBe("c0ffee00-0000-4000-8000-000000000000");
    };
    check();
    const h = peek(dir);
    expect(h.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(h.prepare("SELECT count(*) FROM attempts").pluck().get()).toBe(work.reduce((n, w) => n + w.t.attempts.length, 0));
    // What has a column is no longer in `record`; what has none (laterField) is.
    const records = h.prepare("SELECT id, record FROM tasks").all() as { id: string; record: string }[];
    for (const r of records)
      expect(
        Object.keys(JSON.parse(r.record)).filter((k) => k !== "laterField"),
        r.id,
      ).toEqual([]);
    expect(JSON.parse(records.find((r) => r.id === work[4].t.id)!.record)).toEqual({ laterField: { team: "ops" } });
    h.close();

    // Migrated rows take deltas like any other, and the file reopens at version 3 without migrating again.
    const next = running(dispatched(work[2].t, "n3"));
    s.put(next);
    work[2] = { t: next };
    await s.close();
    log.lines.length = 0;
    s = openStore(dir, { logger: log });
    expect(log.lines.map((l) => l.msg)).toEqual(["task store opened"]);
    check();
  });

  it("a version 2 row that is not JSON: StoreCorruptError naming the task, and the file is left at version 2, byte for byte", () => {
    const dir = tempDir();
    const work = v2Workload().slice(0, 5);
    const path = writeV2(dir, work);
    const h = new Database(path);
    h.prepare("UPDATE tasks SET record = '{not json' WHERE id = ?").run(work[3].t.id);
    h.close();
    const before = sha256(path);
    expect(() => openStore(dir)).toThrow(StoreCorruptError);
    expect(() => openStore(dir)).toThrow(`task ${work[3].t.id}: `);
    expect(sha256(path)).toBe(before);
    expect(peek(dir).pragma("user_version", { simple: true })).toBe(2);
  });
});
