// Keyed one-shot timers on wall-clock instants (deadlines, dispatch acks, drain graces, wake-ups), all served by
// one armed timer of the injected Timers port. Setting a key again replaces it; clearing is O(1) (lazy in the heap).
// Never calls a callback for a key that was cleared or replaced.
import type { Clock, Timers } from "../../lib/clock.js";
import { MAX_TIMER_MS } from "../../lib/clock.js";
import { MinHeap } from "../../lib/min-heap.js";

interface Entry {
  key: string;
  at: number;
  fire: () => void;
}

export class DueTimers {
  private readonly byKey = new Map<string, Entry>();
  private readonly heap = new MinHeap<Entry>((a, b) => a.at < b.at);
  private cancelArmed: (() => void) | undefined;
  private armedAt = Infinity;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly timers: Timers,
  ) {}

  get size(): number {
    return this.byKey.size;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Calls `fire` at epoch ms `at` (at once if that has passed, on the next timer tick). */
  set(key: string, at: number, fire: () => void): void {
    if (this.closed) return;
    const e: Entry = { key, at, fire };
    this.byKey.set(key, e);
    this.heap.push(e);
    this.arm();
  }

  clear(key: string): void {
    this.byKey.delete(key);
  }

  close(): void {
    this.closed = true;
    this.byKey.clear();
    this.cancelArmed?.();
    this.cancelArmed = undefined;
  }

  private arm(): void {
    const next = this.peekLive();
    if (!next || next.at >= this.armedAt) return;
    this.cancelArmed?.();
    this.armedAt = next.at;
    this.cancelArmed = this.timers.after(Math.min(MAX_TIMER_MS, Math.max(0, next.at - this.clock.wall())), () => this.fireDue());
  }

  private fireDue(): void {
    this.cancelArmed = undefined;
    this.armedAt = Infinity;
    const now = this.clock.wall();
    for (let e = this.peekLive(); e && e.at <= now && !this.closed; e = this.peekLive()) {
      this.heap.pop();
      this.byKey.delete(e.key);
      e.fire();
    }
    if (!this.closed) this.arm();
  }

  /** The earliest entry still current, dropping replaced and cleared ones from the top. */
  private peekLive(): Entry | undefined {
    for (let top = this.heap.peek(); top; top = this.heap.peek()) {
      if (this.byKey.get(top.key) === top) return top;
      this.heap.pop();
    }
    return undefined;
  }
}
