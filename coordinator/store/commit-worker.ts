// The store's commit worker (a worker thread): owns the write connection to edgeplane.db and runs the main
// thread's batches as transactions with synchronous = FULL, so the fsync of each commit, and the WAL checkpoints
// that follow some of them, happen here and not on the coordinator's event loop. Never decides what to write: it
// applies each batch's ops in order, all of them or none, and reports the outcome.
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import type Database from "better-sqlite3";
import { ATTEMPT_COLUMNS, CLUSTER_COLUMNS, SPEC_ROW_COLUMNS, TASK_COLUMNS, UPDATABLE_TASK_COLUMNS, type SqlValue } from "./columns.js";
import { openWriter } from "./connection.js";
import type { FromWorker, Op, ToWorker, WireError, WorkerFault, WorkerInit } from "./worker-protocol.js";

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (m: FromWorker) => port.postMessage(m);

function wire(e: unknown): WireError {
  const code = (e as { code?: unknown } | null)?.code;
  return {
    name: e instanceof Error ? e.name : "Error",
    message: e instanceof Error ? e.message : String(e),
    ...(typeof code === "string" ? { code } : {}),
  };
}

const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");
const upsert = (table: string, cols: readonly string[], key: readonly string[]) =>
  `INSERT INTO ${table} (${cols.join(", ")}) VALUES (${placeholders(cols.length)}) ON CONFLICT (${key.join(", ")}) DO UPDATE SET ` +
  cols
    .filter((c) => !key.includes(c))
    .map((c) => `${c} = excluded.${c}`)
    .join(", ");

/**
 * A Uint8Array (a series in shared memory, or Value bytes, from the main thread: a Buffer arrives as a plain
 * Uint8Array) as the Buffer better-sqlite3 binds as a BLOB.
 */
const blob = (v: SqlValue): SqlValue => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v);

/** The row with its BLOBs as Buffers, in place (rows come fresh from structured clone). */
function blobs(row: SqlValue[]): SqlValue[] {
  for (let i = 0; i < row.length; i++) if (row[i] instanceof Uint8Array) row[i] = blob(row[i]);
  return row;
}

function bytesOf(vals: readonly SqlValue[]): number {
  let n = 0;
  for (const v of vals) n += v === null ? 1 : typeof v === "number" ? 8 : typeof v === "string" ? v.length : v.byteLength;
  return n;
}

class Committer {
  private readonly upsertTask: Database.Statement;
  private readonly upsertSpec: Database.Statement;
  private readonly upsertAttempt: Database.Statement;
  private readonly truncAttempts: Database.Statement;
  private readonly upsertCluster: Database.Statement;
  private readonly upsertMeta: Database.Statement;
  /** UPDATE statements by their column list: a handful of shapes (one per kind of transition) in practice. */
  private readonly updates = new Map<string, Database.Statement>();
  private readonly txn: Database.Transaction<(ops: Op[]) => { rows: number; bytes: number }>;
  fault: WorkerFault | undefined;

  constructor(private readonly db: Database.Database) {
    this.upsertTask = db.prepare(upsert("tasks", TASK_COLUMNS, ["id"]));
    this.upsertSpec = db.prepare(upsert("task_specs", SPEC_ROW_COLUMNS, ["id"]));
    this.upsertAttempt = db.prepare(upsert("attempts", ATTEMPT_COLUMNS, ["task_id", "idx"]));
    this.truncAttempts = db.prepare("DELETE FROM attempts WHERE task_id = ? AND idx >= ?");
    this.upsertCluster = db.prepare(upsert("clusters", CLUSTER_COLUMNS, ["id"]));
    this.upsertMeta = db.prepare(upsert("meta", ["key", "value"], ["key"]));
    this.txn = db.transaction((ops: Op[]) => {
      let rows = 0;
      let bytes = 0;
      for (const op of ops) {
        const [changes, b] = this.apply(op);
        rows += changes;
        bytes += b;
      }
      if (this.fault === "crash-before-commit") process.exit(70); // the transaction never commits
      return { rows, bytes };
    });
  }

  private apply(op: Op): [number, number] {
    switch (op.t) {
      case "task":
        return [this.upsertTask.run(blobs(op.row)).changes, bytesOf(op.row)];
      case "update":
        return [this.update(op.cols).run(...blobs(op.vals), op.id).changes, bytesOf(op.vals)];
      case "spec":
        return [this.upsertSpec.run(op.row.map(blob)).changes, bytesOf(op.row)];
      case "attempt":
        return [this.upsertAttempt.run(op.row).changes, bytesOf(op.row)];
      case "trunc":
        return [this.truncAttempts.run(op.id, op.from).changes, 0];
      case "cluster":
        return [this.upsertCluster.run(op.row).changes, bytesOf(op.row)];
      case "meta":
        return [this.upsertMeta.run(op.key, op.value).changes, op.key.length + op.value.length];
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  private update(cols: string): Database.Statement {
    let s = this.updates.get(cols);
    if (!s) {
      const names = cols.split(",");
      for (const c of names) if (!UPDATABLE_TASK_COLUMNS.has(c)) throw new Error(`not a column of tasks: ${JSON.stringify(c)}`);
      s = this.db.prepare(`UPDATE tasks SET ${names.map((c) => `${c} = ?`).join(", ")} WHERE id = ?`);
      this.updates.set(cols, s);
    }
    return s;
  }

  commit(id: number, ops: Op[]): void {
    if (this.fault === "fail-next-commit") {
      this.fault = undefined;
      send({ type: "failed", id, error: { name: "SqliteError", message: "disk I/O error (injected fault)", code: "SQLITE_IOERR" } });
      return;
    }
    const started = performance.now();
    let r: { rows: number; bytes: number };
    try {
      // IMMEDIATE: take the write lock up front, so a busy database fails the commit before any work.
      r = this.txn.immediate(ops);
    } catch (e) {
      send({ type: "failed", id, error: wire(e) });
      return;
    }
    const ms = performance.now() - started;
    if (this.fault === "crash-after-commit") process.exit(70); // committed, but the main thread never hears of it
    send({ type: "committed", id, rows: r.rows, bytes: r.bytes, ms });
  }
}

function start(): void {
  let db: Database.Database;
  let committer: Committer;
  try {
    db = openWriter(init.path, init.busyTimeoutMs, true);
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version !== init.schemaVersion) {
      db.close();
      throw new Error(
        `${init.path} has schema version ${version}, not ${init.schemaVersion} as when the coordinator opened it; something else changed the file`,
      );
    }
    committer = new Committer(db);
  } catch (e) {
    send({ type: "open-failed", error: wire(e) });
    port.close();
    return;
  }
  port.on("message", (m: ToWorker) => {
    switch (m.type) {
      case "commit":
        committer.commit(m.id, m.ops);
        break;
      case "fault":
        committer.fault = m.fault;
        break;
      case "close": {
        let error: WireError | undefined;
        try {
          db.close();
        } catch (e) {
          error = wire(e);
        }
        send({ type: "closed", ...(error ? { error } : {}) });
        port.close();
        break;
      }
      default: {
        const never: never = m;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
  });
  send({ type: "ready" });
}

start();
