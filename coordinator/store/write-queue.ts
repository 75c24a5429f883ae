// The store's writes that are not yet committed, in order, as segments: writes go to the last segment, where a
// later write of the same row replaces (merges into) an earlier one; a segment is closed once it holds a commit's
// budget of rows or bytes. A commit takes whole segments from the front, so what is on disk is always the state
// after some write, never a mix. Pure: no I/O, no timers.
import { TASK_COLUMNS, type SqlValue } from "./columns.js";
import { sqlBytes, type SpecRow, type TaskDelta } from "./task-row.js";
import type { Op } from "./worker-protocol.js";

export interface CommitBudget {
  /** Rows one transaction may write. Segments close at this size; one insert() batch is never split. */
  maxRows: number;
  /** Bytes of values one transaction may write; likewise. */
  maxBytes: number;
}

interface PendingTask {
  /** The whole row, when the task is new in this segment: later changes in the segment are applied to it. */
  insert: SqlValue[] | undefined;
  /** Columns to update, when it is not. */
  cols: Map<string, SqlValue>;
  spec: SpecRow | undefined;
  attempts: Map<number, SqlValue[]>;
  truncateFrom: number | undefined;
}

class Segment {
  readonly tasks = new Map<string, PendingTask>();
  readonly clusters = new Map<string, SqlValue[]>();
  readonly meta = new Map<string, string>();
  rows = 0;
  bytes = 0;
  /** Number of the last write in it. */
  lastSeq = 0;

  get writes(): number {
    return this.tasks.size + this.clusters.size + this.meta.size;
  }
}

/** Segments taken for one commit, and the ops that write them. */
export interface Batch {
  readonly segments: readonly Segment[];
  readonly ops: Op[];
  /** Number of the last write it holds: once committed, every write up to it is durable. */
  readonly lastSeq: number;
  /** Writes (task, cluster and meta rows, merged) it holds. */
  readonly writes: number;
}

/** A new task's rows, for insertGroup(). */
export interface TaskInsert {
  id: string;
  row: SqlValue[];
  spec: SpecRow;
  attempts: SqlValue[][];
}

const COLUMN_INDEX: ReadonlyMap<string, number> = new Map(TASK_COLUMNS.map((c, i) => [c, i]));
const ATTEMPT_IDX = 1;

function rowBytes(vals: readonly SqlValue[]): number {
  let n = 0;
  for (const v of vals) n += sqlBytes(v);
  return n;
}

export class WriteQueue {
  private readonly segments: Segment[] = [new Segment()];
  /** Segments (queued or in flight) holding a write of each task: its payload may be let go once this reaches 0. */
  private readonly pendingByTask = new Map<string, number>();
  private seq = 0;
  private inFlightWrites = 0;

  constructor(private readonly budget: CommitBudget) {}

  /** Number of the last write queued (0 before any). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Writes not yet committed: queued, and in the commit in flight. */
  get pendingWrites(): number {
    let n = this.inFlightWrites;
    for (const s of this.segments) n += s.writes;
    return n;
  }

  get inFlight(): number {
    return this.inFlightWrites;
  }

  /** Whether a write of this task is queued or in flight. */
  hasPending(id: string): boolean {
    return this.pendingByTask.has(id);
  }

  /** New tasks, all in one segment (so in one transaction). */
  insertGroup(tasks: readonly TaskInsert[]): number {
    let rows = 0;
    let bytes = 0;
    for (const t of tasks) {
      rows += 2 + t.attempts.length;
      bytes += rowBytes(t.row) + rowBytes(t.spec);
      for (const a of t.attempts) bytes += rowBytes(a);
    }
    const seg = this.tail(rows, bytes);
    for (const t of tasks) {
      const p = this.entry(seg, t.id, t.row);
      p.spec = t.spec;
      for (const a of t.attempts) p.attempts.set(a[ATTEMPT_IDX] as number, a);
    }
    seg.rows += rows;
    seg.bytes += bytes;
    return this.wrote(seg);
  }

  /** A change of a stored task: its delta, and its spec row when the spec itself changed. */
  update(id: string, delta: TaskDelta | undefined, spec: SpecRow | undefined, specCols: readonly [string, string, string] | undefined): number {
    let rows = 0;
    let bytes = 0;
    if (delta) {
      bytes += rowBytes(delta.vals);
      rows += delta.attempts.length + (delta.truncateFrom === undefined ? 0 : 1);
      for (const a of delta.attempts) bytes += rowBytes(a);
    }
    if (spec) {
      rows += 1;
      bytes += rowBytes(spec);
    }
    // A write of a task whose insert is still queued in the last segment joins it, whatever the budget: the first
    // dispatch of a new task must land in its insert's commit (see pendingInsert).
    const last = this.segments.at(-1)!;
    const seg = last.tasks.get(id)?.insert ? last : this.tail(rows + 1, bytes);
    const had = seg.tasks.get(id);
    const p = had ?? this.entry(seg, id, undefined);
    if (!had) rows += delta && delta.cols.length > 0 ? 1 : 0;
    if (delta) {
      for (let i = 0; i < delta.cols.length; i++) this.setColumn(p, delta.cols[i], delta.vals[i]);
      if (delta.truncateFrom !== undefined) {
        const from = delta.truncateFrom;
        for (const idx of [...p.attempts.keys()]) if (idx >= from) p.attempts.delete(idx);
        p.truncateFrom = Math.min(p.truncateFrom ?? from, from);
      }
      for (const a of delta.attempts) p.attempts.set(a[ATTEMPT_IDX] as number, a);
    }
    if (spec && specCols) {
      p.spec = spec;
      this.setColumn(p, "priority", specCols[0]);
      this.setColumn(p, "device_id", specCols[1]);
      this.setColumn(p, "target_cluster", specCols[2]);
    }
    seg.rows += rows;
    seg.bytes += bytes;
    return this.wrote(seg);
  }

  cluster(id: string, row: SqlValue[]): number {
    const seg = this.tail(1, rowBytes(row));
    if (!seg.clusters.has(id)) seg.rows += 1;
    seg.clusters.set(id, row);
    seg.bytes += rowBytes(row);
    return this.wrote(seg);
  }

  meta(key: string, value: string): number {
    const seg = this.tail(1, key.length + value.length);
    if (!seg.meta.has(key)) seg.rows += 1;
    seg.meta.set(key, value);
    seg.bytes += key.length + value.length;
    return this.wrote(seg);
  }

  /**
   * True while the task's insert is queued in the last segment, not yet taken by a commit: any write of the task made
   * now goes into that same segment, so into the insert's transaction.
   */
  pendingInsert(id: string): boolean {
    return this.segments.at(-1)!.tasks.get(id)?.insert !== undefined;
  }

  /** Takes segments from the front up to the budget (at least one), for the next commit; undefined when nothing is queued. */
  take(): Batch | undefined {
    if (this.segments[0].writes === 0) return undefined;
    const taken: Segment[] = [];
    let rows = 0;
    let bytes = 0;
    while (this.segments.length > 0 && this.segments[0].writes > 0) {
      const s = this.segments[0];
      if (taken.length > 0 && (rows + s.rows > this.budget.maxRows || bytes + s.bytes > this.budget.maxBytes)) break;
      taken.push(this.segments.shift()!);
      rows += s.rows;
      bytes += s.bytes;
    }
    if (this.segments.length === 0) this.segments.push(new Segment());
    const ops: Op[] = [];
    let writes = 0;
    for (const s of taken) {
      writes += s.writes;
      for (const [id, p] of s.tasks) {
        if (p.insert) ops.push({ t: "task", row: p.insert });
        else if (p.cols.size > 0) ops.push({ t: "update", id, cols: [...p.cols.keys()].join(","), vals: [...p.cols.values()] });
        if (p.spec) ops.push({ t: "spec", row: p.spec });
        if (p.truncateFrom !== undefined) ops.push({ t: "trunc", id, from: p.truncateFrom });
        for (const a of [...p.attempts.values()].sort((x, y) => (x[ATTEMPT_IDX] as number) - (y[ATTEMPT_IDX] as number))) ops.push({ t: "attempt", row: a });
      }
      for (const row of s.clusters.values()) ops.push({ t: "cluster", row });
      for (const [key, value] of s.meta) ops.push({ t: "meta", key, value });
    }
    this.inFlightWrites += writes;
    return { segments: taken, ops, lastSeq: taken.at(-1)!.lastSeq, writes };
  }

  /** A batch whose commit failed goes back to the front, as it was: it is the next to commit. */
  putBack(b: Batch): void {
    this.inFlightWrites -= b.writes;
    if (this.segments.length === 1 && this.segments[0].writes === 0) this.segments.length = 0;
    this.segments.unshift(...b.segments);
  }

  /** A batch is on disk. Returns the tasks it held that have no other write pending. */
  committed(b: Batch): string[] {
    this.inFlightWrites -= b.writes;
    const settled: string[] = [];
    for (const s of b.segments) {
      for (const id of s.tasks.keys()) {
        const n = (this.pendingByTask.get(id) ?? 1) - 1;
        if (n > 0) {
          this.pendingByTask.set(id, n);
        } else {
          this.pendingByTask.delete(id);
          settled.push(id);
        }
      }
    }
    return settled;
  }

  /** The segment a write of this size goes to: the last one, or a new one if it would overflow the budget. */
  private tail(rows: number, bytes: number): Segment {
    const last = this.segments.at(-1)!;
    if (last.writes > 0 && (last.rows + rows > this.budget.maxRows || last.bytes + bytes > this.budget.maxBytes)) {
      const s = new Segment();
      this.segments.push(s);
      return s;
    }
    return last;
  }

  private entry(seg: Segment, id: string, insert: SqlValue[] | undefined): PendingTask {
    const p: PendingTask = { insert, cols: new Map(), spec: undefined, attempts: new Map(), truncateFrom: undefined };
    seg.tasks.set(id, p);
    this.pendingByTask.set(id, (this.pendingByTask.get(id) ?? 0) + 1);
    return p;
  }

  private setColumn(p: PendingTask, col: string, v: SqlValue): void {
    if (p.insert) p.insert[COLUMN_INDEX.get(col)!] = v;
    else p.cols.set(col, v);
  }

  private wrote(seg: Segment): number {
    seg.lastSeq = ++this.seq;
    return this.seq;
  }
}
