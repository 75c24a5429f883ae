// Schema of the coordinator's SQLite database, as ordered migrations: step i takes `PRAGMA user_version` from i to
// i + 1. Steps are append-only: never edit or reorder a released step, add a new one (a database records its version).
//
// Layout (reads are served from memory, so indexes serve later SQL-side queries and retention, not today's reads):
// - `tasks`: one row per task. Indexed columns for what is filtered or ordered, plus `record`: the whole TaskRecord
//   except its spec, as JSON. Rewritten on every transition, so it stays small (attempts included).
// - `task_specs`: what the client submitted, written once at insert. Kept apart because an input may be up to
//   --max-input-bytes (100 MB by default) and SQLite rewrites a whole row on UPDATE: a transition must not copy it.
//   A numeric series is stored as two BLOBs of little-endian float64 (8 bytes per number, exact, NaN and ±Infinity
//   kept) instead of JSON (about 18 bytes per number, and JSON turns NaN into null). A 1,000,000-point series with
//   timestamps is 16 MB on disk and, once loaded, about as much in memory. A shard of a split task whose series is
//   a slice of its parent's stores `seriesRef` ({parentId, start, end, timestamps}) in its spec JSON instead
//   (version 2): the points are on disk once, in the parent's row.
// - `clusters`: the declared and discovered clusters of the node registry.
// - `meta`: key/value facts about the database itself (coordinator_id, created_at).

export interface Migration {
  /** What the step does, for the log line at start-up. */
  name: string;
  sql: string;
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
];

/** The schema version this code writes: a database with a higher `user_version` is refused. */
export const SCHEMA_VERSION = MIGRATIONS.length;
