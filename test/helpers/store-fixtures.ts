// Fixtures for the task store tests: temp data directories, stores that are closed after each test, records with
// every field set, and a second SQLite connection to look at what is on disk.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { SqliteTaskStore, type SqliteTaskStoreOptions, type StoreLogger } from "../../coordinator/store/sqlite-store.js";
import type { TaskRecord, TaskSpec } from "../../coordinator/tasks/types.js";

const dirs: string[] = [];
const stores: SqliteTaskStore[] = [];
const handles: Database.Database[] = [];

/** Call from afterEach: closes every store and connection these helpers opened and removes their directories. */
export async function cleanUp(): Promise<void> {
  for (const h of handles.splice(0)) if (h.open) h.close();
  for (const s of stores.splice(0)) {
    try {
      await s.close();
    } catch {
      // a test that made commits fail may leave writes it could not save
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "edgeplane-store-"));
  dirs.push(d);
  return d;
}

export function openStore(dir: string, opts: SqliteTaskStoreOptions = {}): SqliteTaskStore {
  const s = SqliteTaskStore.open(dir, opts);
  stores.push(s);
  return s;
}

/** A second connection to the same file, as another process would have (read-only unless asked). */
export function peek(dir: string, readonly = true): Database.Database {
  const h = new Database(join(dir, "edgeplane.db"), { readonly });
  handles.push(h);
  return h;
}

export { spec, task } from "./task-fixtures.js";
import { task } from "./task-fixtures.js";

/** What task-manager does at dispatch: a new attempt appended, the others kept as they are (same objects). */
export function dispatched(t: TaskRecord, node = "n1", at = t.updatedAt + 1): TaskRecord {
  const attempt = t.attempt + 1;
  return {
    ...t,
    state: "dispatched",
    attempt,
    assignedNode: node,
    assignedCluster: "c1",
    updatedAt: at,
    attempts: [
      ...t.attempts,
      {
        attempt,
        nodeId: node,
        clusterId: "c1",
        outcome: undefined,
        error: "",
        dispatchedAt: at,
        startedAt: undefined,
        finishedAt: undefined,
        processingMs: 0,
        peakMemoryBytes: 0,
        placementReason: "least loaded",
      },
    ],
  };
}

/** dispatched → running: the current attempt replaced by a copy with startedAt. */
export function running(t: TaskRecord, at = t.updatedAt + 1): TaskRecord {
  return { ...t, state: "running", updatedAt: at, attempts: t.attempts.map((a) => (a.attempt === t.attempt ? { ...a, startedAt: at } : a)) };
}

/** running → succeeded, with an output. */
export function succeeded(t: TaskRecord, at = t.updatedAt + 1): TaskRecord {
  return {
    ...t,
    state: "succeeded",
    updatedAt: at,
    finishedAt: at,
    output: { mean: 1.5 },
    attempts: t.attempts.map((a) => (a.attempt === t.attempt ? { ...a, outcome: "succeeded", finishedAt: at, processingMs: 12, peakMemoryBytes: 4096 } : a)),
  };
}

export function recordingLogger(): StoreLogger & { lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: "info", msg, obj }),
    error: (obj, msg) => lines.push({ level: "error", msg, obj }),
  };
}

/** Polls until `fn` returns something other than undefined/false. Not a timing assertion: the limit is generous. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** One event-loop turn: what the store queued in this one has been handed on (or not) by the time it resolves. */
export const turn = () => new Promise<void>((r) => setImmediate(r));
