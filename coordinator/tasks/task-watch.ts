// What clients watching tasks get to see: each subscription receives the changes of the tasks it follows, in order,
// only once they are durable (a client never sees a state a coordinator crash could take back). Lazy changes
// (dispatched → running, which a restart can do without) are let through without waiting, behind what precedes them.
// Owns no timers: the task manager says when changes happen and when the store made them durable.
import type { TaskRecord } from "./types.js";

interface Item {
  task: TaskRecord;
  /** The change count that must be durable before this item may be delivered (0: deliverable at once). */
  gate: number;
}

export interface WatchSubscription {
  /** Changes deliverable now, oldest first; with `coalesce` each task at most once (its newest state among them). */
  take(coalesce?: boolean): TaskRecord[];
  /** Changes waiting for this subscription, deliverable now or not. */
  readonly backlog: number;
  close(): void;
}

class Sub implements WatchSubscription {
  items: Item[] = [];
  closed = false;
  constructor(
    readonly hub: TaskWatchHub,
    readonly ids: ReadonlySet<string> | undefined,
    readonly match: ((t: TaskRecord) => boolean) | undefined,
    readonly onReady: () => void,
  ) {}

  get backlog(): number {
    return this.items.length;
  }

  take(coalesce = true): TaskRecord[] {
    const durable = this.hub.durable;
    let n = 0;
    while (n < this.items.length && this.items[n].gate <= durable) n++;
    if (n === 0) return [];
    const ready = this.items.splice(0, n);
    if (!coalesce) return ready.map((i) => i.task);
    // Newest state per task, in the order tasks first appear.
    const newest = new Map<string, TaskRecord>();
    for (const { task } of ready) {
      newest.delete(task.id);
      newest.set(task.id, task);
    }
    return [...newest.values()];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.items = [];
    this.hub.remove(this);
  }
}

export class TaskWatchHub {
  /** Changes published so far; the durable ones are those up to `durable`. */
  changes = 0;
  durable = 0;
  private readonly byId = new Map<string, Set<Sub>>();
  private readonly byMatch = new Set<Sub>();
  /** Subscriptions holding changes that are not durable yet: the only ones a commit needs to wake. */
  private readonly waiting = new Set<Sub>();

  /**
   * Follows the tasks with these ids, or those `match` accepts. `initial` records (the current state of the
   * followed tasks, read by the caller right now) come first, delivered once what they show is durable.
   * `onReady` is told when something may be taken.
   */
  subscribe(
    follow: { ids: ReadonlySet<string> } | { match: (t: TaskRecord) => boolean },
    initial: readonly TaskRecord[],
    onReady: () => void,
  ): WatchSubscription {
    const sub = "ids" in follow ? new Sub(this, follow.ids, undefined, onReady) : new Sub(this, undefined, follow.match, onReady);
    for (const t of initial) sub.items.push({ task: t, gate: this.changes });
    if (initial.length > 0 && this.changes > this.durable) this.waiting.add(sub);
    if (sub.ids) {
      for (const id of sub.ids) {
        let set = this.byId.get(id);
        if (!set) this.byId.set(id, (set = new Set()));
        set.add(sub);
      }
    } else this.byMatch.add(sub);
    if (initial.length > 0 && this.changes <= this.durable) onReady();
    return sub;
  }

  /** A task changed; `lazy` changes need not wait for durability. Returns the change's number. */
  publish(t: TaskRecord, lazy: boolean): number {
    const n = ++this.changes;
    const gate = lazy ? 0 : n;
    const subs = this.byId.get(t.id);
    if (subs) for (const s of subs) this.add(s, t, gate);
    for (const s of this.byMatch) if (s.match!(t)) this.add(s, t, gate);
    return n;
  }

  /** Every change up to `upTo` is durable now. */
  madeDurable(upTo: number): void {
    if (upTo <= this.durable) return;
    this.durable = upTo;
    for (const s of this.waiting) {
      if (s.items.length === 0 || s.items[s.items.length - 1].gate <= upTo) this.waiting.delete(s);
      if (s.items.length > 0 && s.items[0].gate <= upTo) s.onReady();
    }
  }

  remove(sub: Sub): void {
    this.waiting.delete(sub);
    if (sub.ids) {
      for (const id of sub.ids) {
        const set = this.byId.get(id);
        set?.delete(sub);
        if (set?.size === 0) this.byId.delete(id);
      }
    } else this.byMatch.delete(sub);
  }

  private add(s: Sub, task: TaskRecord, gate: number): void {
    s.items.push({ task, gate });
    if (gate > this.durable) this.waiting.add(s);
    else if (s.items[0].gate <= this.durable) s.onReady();
  }
}
