// Which record fields have a column of their own in schema version 3 (and 4), and of what kind: shared by the row codec
// (main thread) and the commit worker (which builds its SQL from these names). Pure data: no database access.

/** A value bound to or read from SQLite. */
export type SqlValue = string | number | null | Uint8Array;

/**
 * How a field's value is held in its column. text/num/bool: as is (bool as 0/1); json: JSON.stringify, or (schema
 * version 4) a BLOB of the google.protobuf.Value bytes the value arrived as, when the coordinator has them;
 * marked-json: JSON that keeps undefined apart from missing keys at any depth (marked-json.ts).
 */
export type FieldKind = "text" | "num" | "bool" | "json" | "marked-json";

export interface Field {
  /** Property of the record. */
  key: string;
  /** Column in the table. */
  col: string;
  kind: FieldKind;
  /** The property is often missing (an optional field): a NULL column then means "no such key", not undefined. */
  optional?: true;
  /** The column is NOT NULL (schema version 1): a value kept in the rest JSON leaves "" or 0 here. */
  notNull?: true;
}

/**
 * TaskRecord fields with a column in `tasks`. A transition updates only the columns whose field changed. Fields not
 * listed here (any added to TaskRecord later) are kept in the `record` column, as JSON, with nothing to migrate.
 * Append-only once released: a new entry needs a migration that adds its column and moves the values there.
 */
export const TASK_FIELDS: readonly Field[] = [
  { key: "seq", col: "seq", kind: "num", notNull: true },
  { key: "idempotencyKey", col: "idempotency_key", kind: "text", notNull: true },
  { key: "state", col: "state", kind: "text", notNull: true },
  { key: "attempt", col: "attempt", kind: "num" },
  { key: "assignedCluster", col: "cluster", kind: "text", notNull: true },
  { key: "assignedNode", col: "assigned_node", kind: "text" },
  { key: "output", col: "output", kind: "json" },
  { key: "error", col: "error", kind: "text" },
  { key: "createdAt", col: "created_at", kind: "num", notNull: true },
  { key: "updatedAt", col: "updated_at", kind: "num", notNull: true },
  { key: "finishedAt", col: "finished_at", kind: "num" },
  { key: "queuedAt", col: "queued_at", kind: "num" },
  { key: "queuedMs", col: "queued_ms", kind: "num" },
  { key: "notBefore", col: "not_before", kind: "num" },
  { key: "preemptions", col: "preemptions", kind: "num" },
  { key: "shard", col: "shard", kind: "marked-json", optional: true },
  { key: "split", col: "split", kind: "marked-json", optional: true },
];

/** Columns of `tasks` that come from the spec (for indexes and SQL-side queries; the spec JSON is the truth). */
export const SPEC_COLUMNS = ["priority", "device_id", "target_cluster"] as const;

/** Every column of `tasks`, in the order of an inserted row. */
export const TASK_COLUMNS: readonly string[] = ["id", ...SPEC_COLUMNS, "record", ...TASK_FIELDS.map((f) => f.col)];

/** AttemptRecord fields with a column in `attempts`; the rest (stillLive's absence aside) goes to its `extra` JSON. */
export const ATTEMPT_FIELDS: readonly Field[] = [
  { key: "attempt", col: "attempt", kind: "num" },
  { key: "nodeId", col: "node_id", kind: "text" },
  { key: "clusterId", col: "cluster_id", kind: "text" },
  { key: "outcome", col: "outcome", kind: "text" },
  { key: "error", col: "error", kind: "text" },
  { key: "dispatchedAt", col: "dispatched_at", kind: "num" },
  { key: "startedAt", col: "started_at", kind: "num" },
  { key: "finishedAt", col: "finished_at", kind: "num" },
  { key: "processingMs", col: "processing_ms", kind: "num" },
  { key: "peakMemoryBytes", col: "peak_memory_bytes", kind: "num" },
  { key: "placementReason", col: "placement_reason", kind: "text" },
  { key: "stillLive", col: "still_live", kind: "bool", optional: true },
];

/** Every column of `attempts`, in the order of a written row: the task, the attempt's index in `attempts`, its fields. */
export const ATTEMPT_COLUMNS: readonly string[] = ["task_id", "idx", ...ATTEMPT_FIELDS.map((f) => f.col), "extra"];

/** Columns an UPDATE of `tasks` may set (the commit worker refuses any other name). */
export const UPDATABLE_TASK_COLUMNS: ReadonlySet<string> = new Set(TASK_COLUMNS.filter((c) => c !== "id"));

export const SPEC_ROW_COLUMNS = ["id", "spec", "series_values", "series_timestamps", "input"] as const;
export const CLUSTER_COLUMNS = ["id", "tier", "labels", "declared", "created_at"] as const;
