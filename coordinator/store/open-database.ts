// Opens the coordinator's SQLite database in its data directory: takes the directory lock, checks the file on a
// read-only connection, then opens it for writing (WAL, synchronous = FULL) and applies missing migrations.
// Never deletes, truncates or recreates a database it cannot read, and never writes to one that failed its check.
// The commit worker then opens its own write connection, and the main thread reads through a read-only one.
import { randomUUID } from "node:crypto";
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { openWriter } from "./connection.js";
import { MIGRATIONS, SCHEMA_VERSION } from "./migrations.js";
import { StoreCorruptError, StoreOpenError, StoreVersionError } from "./store-errors.js";

export const DB_FILE = "edgeplane.db";
/** An empty SQLite file held in exclusive locking mode: the OS drops the lock when the process dies, even on SIGKILL. */
export const LOCK_FILE = "edgeplane.lock";

export interface OpenedDatabase {
  db: Database.Database;
  /** Absolute path of edgeplane.db. */
  path: string;
  /** `user_version` found on disk (0 for a new file) and after migrating. */
  fromVersion: number;
  version: number;
  /** Closes `db`, the connection that checked and migrated the file (the lock stays). */
  closeConnection(): void;
  /** Closes `db` if still open and releases the directory lock. */
  close(): void;
}

export function openDatabase(dataDir: string, busyTimeoutMs: number): OpenedDatabase {
  const dir = resolve(dataDir);
  const path = join(dir, DB_FILE);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new StoreOpenError(dir, `cannot create the data directory ${dir}: ${(e as Error).message}; check the path and its permissions`, { cause: e });
  }
  const lock = acquireLock(dir);
  let db: Database.Database | undefined;
  try {
    // A file with content is checked before anything may write to it (even a WAL checkpoint on close).
    if (fileSize(path) > 0 || fileSize(`${path}-wal`) > 0) inspect(path);
    db = openWriter(path, busyTimeoutMs, false);
    const fromVersion = migrate(db, path);
    const opened = db;
    return {
      db: opened,
      path,
      fromVersion,
      version: SCHEMA_VERSION,
      closeConnection() {
        if (opened.open) opened.close();
      },
      close() {
        if (opened.open) opened.close();
        lock.close();
      },
    };
  } catch (e) {
    db?.close();
    lock.close();
    throw classify(e, path);
  }
}

const fileSize = (p: string): number => statSync(p, { throwIfNoEntry: false })?.size ?? 0;

function acquireLock(dir: string): Database.Database {
  const lockPath = join(dir, LOCK_FILE);
  let lock: Database.Database | undefined;
  try {
    lock = new Database(lockPath, { timeout: 0 });
    lock.pragma("locking_mode = EXCLUSIVE");
    // In exclusive locking mode the lock taken here is kept until the connection closes.
    lock.exec("BEGIN EXCLUSIVE; COMMIT;");
    return lock;
  } catch (e) {
    lock?.close();
    if (sqliteCode(e) === "SQLITE_BUSY") {
      throw new StoreOpenError(
        lockPath,
        `the data directory ${dir} is in use by another edgeplane coordinator (${lockPath} is locked); stop it, or give this coordinator its own data directory`,
        { cause: e },
      );
    }
    throw new StoreOpenError(lockPath, `cannot lock the data directory ${dir} through ${lockPath}: ${(e as Error).message}; check its permissions`, {
      cause: e,
    });
  }
}

/** Read-only look at an existing file: a connection that never writes, so a damaged file stays byte for byte as found. */
function inspect(path: string): void {
  const ro = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const version = ro.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new StoreVersionError(
        path,
        `${path} has schema version ${version}, but this edgeplane knows versions up to ${SCHEMA_VERSION}: it was written by a newer edgeplane. Run that version (or newer) on this data directory; downgrading in place is not supported.`,
      );
    }
    const problems = (ro.pragma("quick_check(5)") as { quick_check: string }[]).map((r) => r.quick_check);
    if (problems.length !== 1 || problems[0] !== "ok") {
      throw new StoreCorruptError(path, `quick_check: ${problems.join("; ").replace(/\s*\n\s*/g, "; ")}`);
    }
    if (version === 0) {
      const tables = ro.prepare("SELECT count(*) FROM sqlite_schema").pluck().get() as number;
      if (tables > 0)
        throw new StoreVersionError(
          path,
          `${path} is an SQLite database but not an edgeplane one (no schema version, ${tables} schema objects); point the coordinator at its own data directory`,
        );
    }
  } finally {
    ro.close();
  }
}

function migrate(db: Database.Database, path: string): number {
  const from = db.pragma("user_version", { simple: true }) as number;
  if (from > SCHEMA_VERSION) {
    throw new StoreVersionError(
      path,
      `${path} has schema version ${from}, but this edgeplane knows versions up to ${SCHEMA_VERSION}: it was written by a newer edgeplane. Run that version (or newer) on this data directory.`,
    );
  }
  db.transaction(() => {
    for (let v = from; v < SCHEMA_VERSION; v++) {
      db.exec(MIGRATIONS[v].sql);
      MIGRATIONS[v].run?.(db, path);
    }
    // user_version lives in the file header, which is part of the transaction: all steps land, or none.
    if (from !== SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
    const seed = db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)");
    seed.run("coordinator_id", randomUUID());
    seed.run("created_at", String(Date.now()));
  })();
  return from;
}

function sqliteCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

/** SQLITE_CORRUPT (and its extended codes) or SQLITE_NOTADB: the bytes on disk are not a sound database. */
export function isCorruption(e: unknown): boolean {
  const code = sqliteCode(e);
  return code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB";
}

/** Store errors pass through; SQLite's are turned into one that names the file and says what to do. */
export function classify(e: unknown, path: string): Error {
  if (e instanceof StoreCorruptError || e instanceof StoreVersionError || e instanceof StoreOpenError) return e;
  if (isCorruption(e)) return new StoreCorruptError(path, `${sqliteCode(e)}: ${(e as Error).message}`, { cause: e });
  const what = e instanceof Error ? e.message : String(e);
  const code = sqliteCode(e);
  return new StoreOpenError(path, `cannot open the task store ${path}${code ? ` (${code})` : ""}: ${what}; check the file's permissions and the disk`, {
    cause: e,
  });
}
