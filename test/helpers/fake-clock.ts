// A Clock and Timers that move only when a test says so: advance(ms) fires due timers in time order, and runs
// what was scheduled with soon() after each one (as the event loop would after a turn).
import type { Clock, Timers } from "../../lib/clock.js";

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock, Timers {
  private monoNow = 0;
  private seq = 0;
  private timers: Pending[] = [];
  private soonQueue: (() => void)[] = [];

  constructor(private wallStart = 1_700_000_000_000) {}

  mono(): number {
    return this.monoNow;
  }

  wall(): number {
    return this.wallStart + this.monoNow;
  }

  after(ms: number, fn: () => void): () => void {
    const p: Pending = { at: this.monoNow + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(p);
    return () => {
      p.cancelled = true;
    };
  }

  soon(fn: () => void): void {
    this.soonQueue.push(fn);
  }

  /** Runs everything scheduled with soon(), including what those callbacks schedule. */
  runSoon(): void {
    for (let guard = 0; this.soonQueue.length > 0; guard++) {
      if (guard > 100_000) throw new Error("soon() callbacks keep scheduling more: a loop?");
      const q = this.soonQueue;
      this.soonQueue = [];
      for (const fn of q) fn();
    }
  }

  /** Moves time forward by `ms`, firing due timers in order (each followed by the soon() work it caused). */
  advance(ms: number): void {
    const end = this.monoNow + ms;
    this.runSoon();
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.monoNow = Math.max(this.monoNow, due.at);
      due.cancelled = true;
      due.fn();
      this.runSoon();
    }
    this.timers = this.timers.filter((t) => !t.cancelled);
    this.monoNow = end;
  }

  /** Timers still armed (for tests that check nothing is left behind). */
  get armed(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}
