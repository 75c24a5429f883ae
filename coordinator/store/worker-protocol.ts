// Messages between the store (main thread) and its commit worker. Plain data that structured clone carries; a
// series BLOB is a view of a SharedArrayBuffer, so it crosses without a copy. Types only, no behaviour.
import type { SqlValue } from "./columns.js";
import type { SpecRow } from "./task-row.js";

/**
 * One row write, applied in order inside a transaction. Every op sets absolute values (an upsert, an UPDATE to
 * given values, a DELETE), so a batch that may or may not have committed before the worker died can be run again.
 */
export type Op =
  /** Upsert of a whole `tasks` row (TASK_COLUMNS order). */
  | { t: "task"; row: SqlValue[] }
  /** UPDATE tasks SET <cols, comma-separated> = vals WHERE id. */
  | { t: "update"; id: string; cols: string; vals: SqlValue[] }
  | { t: "spec"; row: SpecRow }
  /** Upsert of a whole `attempts` row (ATTEMPT_COLUMNS order). */
  | { t: "attempt"; row: SqlValue[] }
  /** DELETE FROM attempts WHERE task_id = id AND idx >= from. */
  | { t: "trunc"; id: string; from: number }
  /** Upsert of a `clusters` row (CLUSTER_COLUMNS order). */
  | { t: "cluster"; row: SqlValue[] }
  | { t: "meta"; key: string; value: string };

/**
 * Faults the worker can be told to simulate, for tests: fail the next commit (as a disk error would), or die in
 * the middle of the next one, before or after its COMMIT (as a crash would).
 */
export type WorkerFault = "fail-next-commit" | "crash-before-commit" | "crash-after-commit";

export interface WorkerInit {
  /** Absolute path of edgeplane.db, already checked and migrated by the main thread. */
  path: string;
  busyTimeoutMs: number;
  /** The version the file must have: the worker refuses any other. */
  schemaVersion: number;
}

export type ToWorker =
  | { type: "commit"; id: number; ops: Op[] }
  | { type: "fault"; fault: WorkerFault }
  /** Close the connection (the last one checkpoints the WAL into the file) and end. */
  | { type: "close" };

export interface WireError {
  name: string;
  message: string;
  /** SQLite's error code (SQLITE_BUSY, SQLITE_IOERR_…), when it has one. */
  code?: string;
}

export type FromWorker =
  | { type: "ready" }
  | { type: "open-failed"; error: WireError }
  /** rows: rows changed (SQLite's count); bytes: bytes of the values bound; ms: BEGIN to COMMIT, fsync included. */
  | { type: "committed"; id: number; rows: number; bytes: number; ms: number }
  | { type: "failed"; id: number; error: WireError }
  | { type: "closed"; error?: WireError };
