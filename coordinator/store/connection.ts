// The two kinds of connection the store opens besides the checking one: the commit worker's writer and the main
// thread's reader. Kept apart from open-database.ts so the worker loads nothing it does not need.
import Database from "better-sqlite3";
import { StoreOpenError } from "./store-errors.js";

/**
 * A read-write connection in WAL mode with synchronous = FULL: every commit fsyncs the WAL, so an acknowledged
 * write survives power loss, not only a process crash. `mustExist`: refuse to create the file (the commit worker
 * opens what openDatabase checked).
 */
export function openWriter(path: string, busyTimeoutMs: number, mustExist: boolean): Database.Database {
  const db = new Database(path, { timeout: busyTimeoutMs, fileMustExist: mustExist });
  try {
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal")
      throw new StoreOpenError(path, `cannot switch ${path} to WAL mode (got "${String(mode)}"); put the data directory on a local file system`);
    db.pragma("synchronous = FULL");
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/** A read-only connection for reads that need the file (WAL lets it read while the commit worker writes). */
export function openReader(path: string): Database.Database {
  return new Database(path, { readonly: true, fileMustExist: true });
}
