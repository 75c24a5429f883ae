// Schema of the coordinator's SQLite database, as ordered migrations: step i takes `PRAGMA user_version` from i to
// i + 1. Steps are append-only: never edit or reorder a released step, add a new one (a database records its version).
//
// Layout (reads are served from memory, so indexes serve later SQL-side queries and retention, not today's reads):
// - `tasks`: one row per task. Since version 3 a column for each mutable field (state, attempt, assigned node,
//   error, timestamps, output, shard, split: coordinator/store/columns.ts lists them), so a transition updates
//   only what changed; `record` holds, as JSON, the fields that have no column (any added to TaskRecord later)
//   and the rare values a column cannot hold. (Up to version 2, `record` was the whole record, rewritten on every
//   transition.) Indexed: seq, idempotency key, priority, device, target cluster, created_at: columns fixed at
//   insert. Version 3 dropped the indexes on state, assigned cluster and updated_at, which every transition rewrote;
//   a later SQL-side query (retention) adds the index it needs with its migration.
// - `attempts` (version 3): one row per attempt of a task, keyed by (task, index in its attempts list): inserted
//   at dispatch, updated when the agent accepts and reports. Unknown fields go to its `extra` JSON.
// - `task_specs`: what the client submitted, written once at insert. Since version 4 an input that arrived over RPC
//   is kept as the google.protobuf.Value bytes it came as (`input`), not in the spec JSON; likewise `tasks.output`
//   holds a result's Value bytes (a BLOB) where it has them, else JSON text. Kept apart because an input may be up to
//   --max-input-bytes (100 MB by default) and SQLite rewrites a whole row on UPDATE: a transition must not copy it.
//   A numeric series is stored as two BLOBs of little-endian float64 (8 bytes per number, exact, NaN and ±Infinity
//   kept) instead of JSON (about 18 bytes per number, and JSON turns NaN into null). A 1,000,000-point series with
//   timestamps is 16 MB on disk and, once loaded, about as much in memory. A shard of a split task whose series is
//   a slice of its parent's stores `seriesRef` ({parentId, start, end, timestamps}) in its spec JSON instead
//   (version 2): the points are on disk once, in the parent's row.
// - `clusters`: the declared and discovered clusters of the node registry.
// - `meta`: key/value facts about the database itself (coordinator_id, created_at).
import type Database from "better-sqlite3";
import type { AttemptRecord, TaskRecord } from "../tasks/types.js";
import { ATTEMPT_COLUMNS, TASK_FIELDS } from "./columns.js";
import { StoreCorruptError } from "./store-errors.js";
import { encodeAttemptRow, restoreTopLevel, taskFieldColumns } from "./task-row.js";

export interface Migration {
  /** What the step does, for the log line at start-up. */
  name: string;
  sql: string;
  /** Row rewrites SQL cannot express, run after `sql` in the same transaction. Throws StoreCorruptError on a bad row. */
  run?: (db: Database.Database, path: string) => void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    name: "tasks, task specs, clusters and meta",
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE tasks (
        id              TEXT PRIMARY KEY,
        seq             INTEGER NOT NULL UNIQUE,
        state           TEXT NOT NULL,
        priority        TEXT NOT NULL,
        device_id       TEXT NOT NULL,
        -- assigned cluster ("" until the first dispatch)
        cluster         TEXT NOT NULL,
        -- spec.clusterId: the list filter matches a task on either cluster column
        target_cluster  TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        record          TEXT NOT NULL
      );
      CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key <> '';
      CREATE INDEX tasks_state ON tasks (state);
      CREATE INDEX tasks_priority ON tasks (priority);
      CREATE INDEX tasks_device_id ON tasks (device_id) WHERE device_id <> '';
      CREATE INDEX tasks_cluster ON tasks (cluster) WHERE cluster <> '';
      CREATE INDEX tasks_target_cluster ON tasks (target_cluster) WHERE target_cluster <> '';
      CREATE INDEX tasks_created_at ON tasks (created_at);
      CREATE INDEX tasks_updated_at ON tasks (updated_at);

      CREATE TABLE task_specs (
        id                TEXT PRIMARY KEY REFERENCES tasks (id),
        spec              TEXT NOT NULL,
        series_values     BLOB,
        series_timestamps BLOB
      );

      CREATE TABLE clusters (
        id         TEXT PRIMARY KEY,
        tier       TEXT NOT NULL,
        labels     TEXT NOT NULL,
        declared   INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    // No table changes: from this version on, a shard task's spec may hold `seriesRef` (its [start, end) of the
    // parent's series) instead of its own copy in the BLOB columns. Older coordinators would read such a shard as
    // having no series, so the version goes up and they refuse the file.
    name: "shard specs may reference their parent's series instead of copying it",
    sql: "SELECT 1;",
  },
  {
    // Every row is rewritten once: its record JSON is split into the new columns, its attempts into `attempts`,
    // and `record` keeps only what has no column. Task order (seq) and ids do not change.
    name: "a column per mutable task field and a row per attempt, so a transition writes only what changed",
    sql: `
      -- Indexes on columns that change with every transition cost each one a delete and an insert per index, for
      -- queries nothing runs (reads are served from memory). Those on columns fixed at insert stay.
      DROP INDEX tasks_state;
      DROP INDEX tasks_cluster;
      DROP INDEX tasks_updated_at;

      ALTER TABLE tasks ADD COLUMN attempt INTEGER;
      ALTER TABLE tasks ADD COLUMN assigned_node TEXT;
      ALTER TABLE tasks ADD COLUMN output TEXT;
      ALTER TABLE tasks ADD COLUMN error TEXT;
      ALTER TABLE tasks ADD COLUMN finished_at INTEGER;
      ALTER TABLE tasks ADD COLUMN queued_at INTEGER;
      ALTER TABLE tasks ADD COLUMN queued_ms INTEGER;
      ALTER TABLE tasks ADD COLUMN not_before INTEGER;
      ALTER TABLE tasks ADD COLUMN preemptions INTEGER;
      ALTER TABLE tasks ADD COLUMN shard TEXT;
      ALTER TABLE tasks ADD COLUMN split TEXT;

      CREATE TABLE attempts (
        task_id           TEXT NOT NULL,
        -- position in the task's attempts list
        idx               INTEGER NOT NULL,
        attempt           INTEGER,
        node_id           TEXT,
        cluster_id        TEXT,
        outcome           TEXT,
        error             TEXT,
        dispatched_at     INTEGER,
        started_at        INTEGER,
        finished_at       INTEGER,
        processing_ms     INTEGER,
        peak_memory_bytes INTEGER,
        placement_reason  TEXT,
        still_live        INTEGER,
        -- fields without a column, as JSON (NULL: none)
        extra             TEXT,
        PRIMARY KEY (task_id, idx)
      ) WITHOUT ROWID;
    `,
    run: splitRecordsIntoColumns,
  },
  {
    // Version 3 → 4. Inputs and outputs arrive as google.protobuf.Value bytes; writing those bytes costs a copy,
    // writing JSON text costs turning every number into decimal digits (in the 4 × 1 benchmark the largest single
    // item of the store's work on the event loop). Rows written before stay JSON and read as before.
    name: "inputs and outputs kept as the google.protobuf.Value bytes they arrived as",
    sql: `
      -- The spec's input as an encoded google.protobuf.Value (its key is then absent from the spec JSON); NULL: the
      -- input, if any, is in the spec JSON. tasks.output likewise holds JSON text or (a BLOB) Value bytes.
      ALTER TABLE task_specs ADD COLUMN input BLOB;
    `,
  },
];

/** The schema version this code writes: a database with a higher `user_version` is refused. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Version 2 → 3. Uses today's TASK_FIELDS: if that list ever grows, give this step a frozen copy of the 17 fields
 * it had when version 3 was released (the columns its SQL creates).
 */
function splitRecordsIntoColumns(db: Database.Database, path: string): void {
  // Pages by rowid: better-sqlite3 allows no other statement on the connection while a SELECT is being iterated.
  const page = db.prepare("SELECT rowid, id, record FROM tasks WHERE rowid > ? ORDER BY rowid LIMIT 500").raw();
  const update = db.prepare(`UPDATE tasks SET ${TASK_FIELDS.map((f) => `${f.col} = ?`).join(", ")}, record = ? WHERE id = ?`);
  const insertAttempt = db.prepare(`INSERT INTO attempts (${ATTEMPT_COLUMNS.join(", ")}) VALUES (${ATTEMPT_COLUMNS.map(() => "?").join(", ")})`);
  let after = 0;
  for (;;) {
    const rows = page.all(after) as [number, string, string][];
    if (rows.length === 0) return;
    for (const [rowid, id, record] of rows) {
      after = rowid;
      let rec: Omit<TaskRecord, "spec">;
      try {
        rec = decodeV2Record(record);
      } catch (e) {
        throw new StoreCorruptError(path, `task ${id}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      const { record: rest, values } = taskFieldColumns(rec);
      update.run(...values, rest, id);
      rec.attempts.forEach((a, i) => insertAttempt.run(...encodeAttemptRow(id, i, a)));
    }
  }
}

/** A version 2 `record`: the whole record but its spec, undefined-valued keys listed at the top and in each attempt. */
export function decodeV2Record(record: string): Omit<TaskRecord, "spec"> {
  const r = restoreTopLevel(JSON.parse(record)) as unknown as Omit<TaskRecord, "spec">;
  if (!Array.isArray(r.attempts)) throw new Error("attempts is not an array");
  return { ...r, attempts: r.attempts.map((a) => restoreTopLevel(a) as unknown as AttemptRecord) };
}
