// The queue of tasks waiting for placement: strict priority, then earliest deadline, then FIFO.
// Pure: no timers, no I/O, no clock of its own (`now` is always passed in).
import { Heap } from "./heap.js";
import { shapeKey } from "./rules.js";
import type { ProcessingMode } from "../tasks/types.js";

/** Number of priority levels (rank 0 = critical … 4 = background). */
export const RANK_COUNT = 5;

/** What the scheduler needs to know about a queued task. */
export interface QueuedTask {
  id: string;
  /** priorityRank(priority): 0..4. */
  rank: number;
  /** Epoch ms, undefined for none (ordered after every task that has one). */
  deadline: number | undefined;
  /** FIFO tiebreak (monotonic, unique). */
  seq: number;
  /** Retry backoff: not placeable before this epoch ms (0 = now). */
  notBefore: number;
  handler: string;
  memoryBytes: number;
  cpuMillis: number;
  mode: ProcessingMode;
  /** "" = none. */
  deviceId: string;
  /** "" = any cluster; else placement is restricted to it. */
  clusterId: string;
  /** 0 = unknown. */
  estimatedMs: number;
  /**
   * A shard of a DISTRIBUTED / HYBRID task: the node its size was planned for. Placement tries it first, then the
   * rest of the task's cluster (a shard whose node is busy or gone still runs). "" or absent = none.
   */
  preferNode?: string;
}

/** Dequeue order: rank, then deadline (none last), then seq. A total order when seqs are unique. */
export function compareQueued(a: QueuedTask, b: QueuedTask): number {
  if (a.rank !== b.rank) return a.rank - b.rank;
  if (a.deadline !== b.deadline) {
    if (a.deadline === undefined) return 1;
    if (b.deadline === undefined) return -1;
    return a.deadline - b.deadline;
  }
  return a.seq - b.seq;
}

// One heap entry per push, so a removed-then-re-pushed id leaves only a stale entry behind.
interface Entry {
  readonly task: QueuedTask;
  /** rules.ts shapeKey: tasks of one shape fare the same in a pass. */
  readonly shape: string;
}

const compareEntries = (a: Entry, b: Entry): number => compareQueued(a.task, b.task);

// Compact a level once its dead entries outnumber the live ones (plus slack for tiny heaps).
const COMPACT_SLACK = 32;

export class TaskQueue {
  private readonly levels: Heap<Entry>[] = Array.from({ length: RANK_COUNT }, () => new Heap(compareEntries));
  private readonly live = new Map<string, Entry>();
  private readonly liveByRank: number[] = new Array<number>(RANK_COUNT).fill(0);
  /** Walks in progress (`ordered()`): removals stay lazy meanwhile so the walk stays valid. */
  private walks = 0;
  /** Entries in retry backoff, earliest notBefore first (lazy: dead or due entries are dropped on read). */
  private readonly backoff = new Heap<Entry>((a, b) => a.task.notBefore - b.task.notBefore);
  /** Highest seq pushed per rank among tasks without a deadline: such a task is last in its level. */
  private readonly newestNoDeadline: number[] = new Array<number>(RANK_COUNT).fill(-Infinity);
  /** Live tasks per shape: a pass can stop once every shape present has failed to find a node. */
  private readonly shapes = new Map<string, number>();

  /** Exact number of live tasks. */
  get size(): number {
    return this.live.size;
  }

  /** Distinct shapes (rules.ts shapeKey) among the live tasks. */
  get shapeCount(): number {
    return this.shapes.size;
  }

  /** The shape of a live task, as the queue counts it. */
  shapeOf(id: string): string | undefined {
    return this.live.get(id)?.shape;
  }

  /** Live tasks per rank, index 0 = critical. */
  sizeByRank(): number[] {
    return [...this.liveByRank];
  }

  has(id: string): boolean {
    return this.live.has(id);
  }

  get(id: string): QueuedTask | undefined {
    return this.live.get(id)?.task;
  }

  /** O(log n). Throws on a duplicate id or a rank outside 0..4. */
  push(task: QueuedTask): void {
    if (!Number.isInteger(task.rank) || task.rank < 0 || task.rank >= RANK_COUNT) {
      throw new RangeError(`task ${task.id}: rank ${task.rank} outside 0..${RANK_COUNT - 1}`);
    }
    if (this.live.has(task.id)) throw new Error(`task ${task.id} is already queued`);
    const entry: Entry = { task, shape: shapeKey(task) };
    this.live.set(task.id, entry);
    this.shapes.set(entry.shape, (this.shapes.get(entry.shape) ?? 0) + 1);
    this.liveByRank[task.rank]++;
    const level = this.levels[task.rank];
    level.push(entry);
    if (task.notBefore > 0) this.backoff.push(entry);
    if (task.deadline === undefined) this.newestNoDeadline[task.rank] = Math.max(this.newestNoDeadline[task.rank], task.seq);
    if (level.size - this.liveByRank[task.rank] > this.liveByRank[task.rank] + COMPACT_SLACK) {
      level.retain((e) => this.isLive(e));
    }
  }

  /**
   * O(log n) amortized: dead entries at the front are dropped at once, others lazily. Safe during `ordered()`.
   * Returns false when the id was not queued.
   */
  remove(id: string): boolean {
    const entry = this.live.get(id);
    if (entry === undefined) return false;
    this.live.delete(id);
    const left = (this.shapes.get(entry.shape) ?? 1) - 1;
    if (left === 0) this.shapes.delete(entry.shape);
    else this.shapes.set(entry.shape, left);
    const rank = entry.task.rank;
    this.liveByRank[rank]--;
    // Placed tasks leave from the front: drop dead entries there now, or every later walk in order would step
    // over all of them (a pass would slow down with every task ever placed). Dead entries deeper in the heap
    // are compacted once they outnumber the live ones.
    const level = this.levels[rank];
    if (this.walks > 0) return true; // stay lazy while someone walks the heap in order
    this.dropDeadTop(level);
    if (level.size - this.liveByRank[rank] > this.liveByRank[rank] + COMPACT_SLACK) level.retain((e) => this.isLive(e));
    return true;
  }

  /** The task `pop()` would return. */
  peek(): QueuedTask | undefined {
    for (const level of this.levels) {
      this.dropDeadTop(level);
      const top = level.peek();
      if (top !== undefined) return top.task;
    }
    return undefined;
  }

  /** O(log n) amortized. Ignores notBefore: the placement pass is what honours backoff. */
  pop(): QueuedTask | undefined {
    const task = this.peek();
    if (task !== undefined) {
      this.levels[task.rank].pop();
      this.remove(task.id);
    }
    return task;
  }

  /**
   * Live tasks in dequeue order, without removing them: O(k log k) for the first k.
   * `remove()` may be called while walking; `push`/`pop`/`peek` invalidate the walk (it throws).
   */
  *ordered(): Generator<QueuedTask, void, undefined> {
    this.walks++;
    try {
      for (const level of this.levels) {
        for (const entry of level.ordered()) {
          if (this.isLive(entry)) yield entry.task;
        }
      }
    } finally {
      this.walks--;
    }
  }

  /**
   * How many live tasks dequeue before `id`; -1 when not queued. O(1) for the newest task without a deadline
   * at its level (the common case at submit: it is last in its level), O(n) otherwise.
   */
  position(id: string): number {
    const entry = this.live.get(id);
    if (entry === undefined) return -1;
    const t = entry.task;
    if (t.deadline === undefined && t.seq === this.newestNoDeadline[t.rank]) {
      let ahead = this.liveByRank[t.rank] - 1;
      for (let r = 0; r < t.rank; r++) ahead += this.liveByRank[r];
      return ahead;
    }
    let ahead = 0;
    for (const other of this.live.values()) {
      if (compareQueued(other.task, entry.task) < 0) ahead++;
    }
    return ahead;
  }

  /**
   * position() of each of `ids`, tasks just pushed together (one submission, so consecutive seqs): O(k) for those
   * without a deadline that are the newest of their level (the common case), position() for the rest. Ids not
   * queued are left out.
   */
  positionsOfNewest(ids: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    const byRank = new Map<number, QueuedTask[]>();
    for (const id of ids) {
      const t = this.live.get(id)?.task;
      if (!t) continue;
      if (t.deadline !== undefined) {
        out.set(id, this.position(id));
        continue;
      }
      let list = byRank.get(t.rank);
      if (!list) byRank.set(t.rank, (list = []));
      list.push(t);
    }
    for (const [rank, list] of byRank) {
      list.sort((x, y) => y.seq - x.seq);
      if (list[0].seq !== this.newestNoDeadline[rank]) {
        for (const t of list) out.set(t.id, this.position(t.id));
        continue;
      }
      // The newest of the level and consecutive seqs: every live task of the level newer than one of them is one
      // of them, so each is behind all but the ones after it in the list.
      let ahead = this.liveByRank[rank] - 1;
      for (let r = 0; r < rank; r++) ahead += this.liveByRank[r];
      list.forEach((t, i) => out.set(t.id, ahead - i));
    }
    return out;
  }

  /** Earliest notBefore strictly after `now`, so the caller can arm one backoff timer. O(log n) amortized. */
  nextNotBefore(now: number): number | undefined {
    for (let top = this.backoff.peek(); top !== undefined; top = this.backoff.peek()) {
      if (this.isLive(top) && top.task.notBefore > now) return top.task.notBefore;
      this.backoff.pop();
    }
    return undefined;
  }

  private isLive(entry: Entry): boolean {
    return this.live.get(entry.task.id) === entry;
  }

  private dropDeadTop(level: Heap<Entry>): void {
    for (let top = level.peek(); top !== undefined && !this.isLive(top); top = level.peek()) level.pop();
  }
}
