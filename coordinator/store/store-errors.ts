// Errors of the persistent store. Each message names the file and says what the operator should do;
// the SQLite error, when there is one, is kept in `cause`. None of them is a client's fault: rpc/ maps them to
// UNAVAILABLE or INTERNAL, never to a client-facing code.

abstract class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The database file is damaged (failed `PRAGMA quick_check`, "file is not a database", unreadable rows).
 * The store has not modified it and refuses to start over it.
 */
export class StoreCorruptError extends StoreError {
  constructor(
    readonly path: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `task store ${path} is damaged (${detail}). The coordinator will not start over it and has not changed it. ` +
        `Stop the coordinator, copy the file and any ${path}-wal next to it somewhere safe, then restore a backup ` +
        `or salvage what is readable with \`sqlite3 ${path} .recover\`; to start with no tasks instead, move the data directory aside.`,
      options,
    );
  }
}

/** The database was written by a newer edgeplane (schema version above ours), or is not an edgeplane database. */
export class StoreVersionError extends StoreError {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** The data directory or database cannot be opened: permissions, I/O error, or another coordinator holds it. */
export class StoreOpenError extends StoreError {
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A commit failed (disk full, I/O error). The writes stay queued and are retried; nothing was dropped. */
export class StoreWriteError extends StoreError {
  constructor(
    readonly path: string,
    readonly pendingWrites: number,
    options: { cause: unknown },
  ) {
    const code = (options.cause as { code?: unknown } | undefined)?.code;
    const what = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(
      `could not commit ${pendingWrites} queued writes to ${path} (${typeof code === "string" ? `${code}: ` : ""}${what}); they stay queued and are retried`,
      options,
    );
  }
}

/**
 * A write breaks an invariant the store relies on (duplicate id, seq or idempotency key; put of an unknown task).
 * Thrown synchronously, before anything changes: a write that could never commit is refused rather than queued.
 */
export class StoreConflictError extends StoreError {}
