// The task store interface: every task state change goes through put(), and subscribers see it.
// Implementations persist; they never decide transitions (task-manager.ts does).
import type { Priority, TaskRecord, TaskState } from "./types.js";

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

export interface TaskWriter {
  /** Inserts new tasks atomically (a batch is one commit). */
  insert(tasks: readonly TaskRecord[]): void;
  /**
   * Replaces a task's record with its new version. `lazy`: the change needs no commit of its own (a restart can do
   * without it, e.g. dispatched → running); it goes to disk with the next commit.
   */
  put(task: TaskRecord, opts?: { lazy?: boolean }): void;
  /** True while the task's insert has not yet been handed to a commit (a later write joins that same commit). */
  pendingInsert?(id: string): boolean;
  /** Resolves once every write made before the call is durable (a no-op for the memory store). */
  flush(): Promise<void>;
}

export interface TaskStore extends TaskReader, TaskWriter {
  close(): void;
}
