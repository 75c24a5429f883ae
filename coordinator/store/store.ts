// The task store interface: every task state change goes through put(), and subscribers see it.
// Implementations persist; they never decide transitions (tasks/task-manager.ts does).
import type { Priority, TaskRecord, TaskState } from "../tasks/types.js";

export interface TaskFilter {
  states?: ReadonlySet<TaskState>;
  priority?: Priority;
  clusterId?: string;
  deviceId?: string;
  /** Also list shard tasks of split (DISTRIBUTED / HYBRID) tasks; hidden by default. */
  includeShards?: boolean;
}

export interface TaskPage {
  tasks: TaskRecord[];
  /** Opaque cursor for the next page, "" when there is none. */
  next: string;
}

/** Read-only view used by the RPC layer and status figures. */
export interface TaskReader {
  /**
   * A finished task's input and series may be left out of what get() returns (a store may keep them on disk
   * only): this returns `t` with them, read back where needed. For GetTask; nothing else needs a finished
   * task's data.
   */
  withPayload(t: TaskRecord): TaskRecord;
  get(id: string): TaskRecord | undefined;
  findByIdempotencyKey(key: string): TaskRecord | undefined;
  /** Newest first. */
  list(filter: TaskFilter, pageSize: number, cursor: string): TaskPage;
  /** Every task not in a terminal state, oldest first (for restore). */
  active(): TaskRecord[];
  /** Highest submission sequence ever stored (0 when empty): new tasks continue after it. */
  maxSeq(): number;
}

export interface PutOptions {
  /**
   * Queue the write without asking for a commit of its own: it reaches the disk with the next commit that
   * anything else asks for (a non-lazy write, a flush), or at the latest after the store's lazy bound
   * (SqliteTaskStoreOptions.lazyFlushMs, default 200 ms). A crash before that finds the task's previous version.
   * Only for changes a restart handles the same either way (dispatched → running: a restart waits for the agent
   * of a dispatched attempt exactly as for a running one). A later non-lazy write of the task supersedes it.
   * Default false.
   */
  lazy?: boolean;
}

export interface TaskWriter {
  /** Inserts new tasks atomically (a batch is one commit). */
  insert(tasks: readonly TaskRecord[]): void;
  /**
   * Replaces a task's record with its new version. Records are values: pass a new object, and a new object for
   * every part that changed (attempts, split, shard, output): a store may find what changed by comparing with the
   * previous version by reference, so never mutate a record, or anything in it, once it was stored.
   */
  put(task: TaskRecord, opts?: PutOptions): void;
  /**
   * True while the task's insert has not yet been handed to a commit: a write of it made now joins that same commit
   * (so a first dispatch can leave before the commit: a crash before it leaves no trace of the task). Absent: never.
   */
  pendingInsert?(id: string): boolean;
  /**
   * Resolves once every write made before the call (lazy ones included) is durable: committed and fsynced
   * (at once for the memory store). Rejects with StoreWriteError if that commit fails; the writes stay queued.
   */
  flush(): Promise<void>;
}

export interface TaskStore extends TaskReader, TaskWriter {
  /** Commits what is queued and releases the store (and its data directory). */
  close(): Promise<void>;
}
