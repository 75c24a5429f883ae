// In-memory task store (`--store memory`): for tests and throwaway runs; loses everything on exit.
import { InvalidArgumentError } from "../errors.js";
import { isTerminal, type TaskRecord } from "../tasks/types.js";
import type { PutOptions, TaskFilter, TaskPage, TaskStore } from "./store.js";

export class MemoryTaskStore implements TaskStore {
  private readonly byId = new Map<string, TaskRecord>();
  /** Ids in submission order (seq ascending), for newest-first pagination. */
  private readonly order: string[] = [];
  private readonly byKey = new Map<string, string>();

  get(id: string): TaskRecord | undefined {
    return this.byId.get(id);
  }

  /** Everything stays in memory here: `t` already has its payload. */
  withPayload(t: TaskRecord): TaskRecord {
    return t;
  }

  findByIdempotencyKey(key: string): TaskRecord | undefined {
    const id = this.byKey.get(key);
    return id === undefined ? undefined : this.byId.get(id);
  }

  insert(tasks: readonly TaskRecord[]): void {
    for (const t of tasks) {
      this.byId.set(t.id, t);
      this.order.push(t.id);
      if (t.idempotencyKey) this.byKey.set(t.idempotencyKey, t.id);
    }
  }

  /** Nothing is written anywhere, so a lazy put is like any other. */
  put(task: TaskRecord, _opts?: PutOptions): void {
    this.byId.set(task.id, task);
  }

  list(filter: TaskFilter, pageSize: number, cursor: string): TaskPage {
    let start = this.order.length - 1;
    if (cursor) {
      const n = Number.parseInt(cursor, 36);
      if (!Number.isInteger(n) || n < 0 || n > this.order.length) {
        throw new InvalidArgumentError(`page_token "${cursor}" is not a token this coordinator issued; pass next_page_token from the previous response`);
      }
      start = n - 1;
    }
    const tasks: TaskRecord[] = [];
    let i = start;
    for (; i >= 0 && tasks.length < pageSize; i--) {
      const t = this.byId.get(this.order[i])!;
      if (matches(t, filter)) tasks.push(t);
    }
    return { tasks, next: i >= 0 && tasks.length === pageSize ? (i + 1).toString(36) : "" };
  }

  active(): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (const id of this.order) {
      const t = this.byId.get(id)!;
      if (!isTerminal(t.state)) out.push(t);
    }
    return out;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  maxSeq(): number {
    const last = this.order.at(-1);
    return last === undefined ? 0 : this.byId.get(last)!.seq;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export function matches(t: TaskRecord, f: TaskFilter): boolean {
  if (f.states && f.states.size > 0 && !f.states.has(t.state)) return false;
  if (f.priority && t.spec.priority !== f.priority) return false;
  if (f.clusterId && t.assignedCluster !== f.clusterId && t.spec.clusterId !== f.clusterId) return false;
  if (f.deviceId && t.spec.deviceId !== f.deviceId) return false;
  if (t.shard && !f.includeShards) return false;
  return true;
}
