// Heartbeat pacing (agent/heartbeat.ts) on a hand-driven clock: a beat per tick, one in flight at most, the latest
// held beat wins, capacity sampled on the tick only.
import { describe, expect, it } from "vitest";
import type { Capacity } from "../../agent/capacity.js";
import { Heartbeats, MIN_HEARTBEAT_INTERVAL_MS, type Beat, type HeartbeatClock } from "../../agent/heartbeat.js";

class FakeClock implements HeartbeatClock {
  t = 0;
  private timers: { id: number; every: number; next: number; fn: () => void }[] = [];
  private seq = 0;
  now(): number {
    return this.t;
  }
  every(ms: number, fn: () => void): () => void {
    const id = ++this.seq;
    this.timers.push({ id, every: ms, next: this.t + ms, fn });
    return () => (this.timers = this.timers.filter((x) => x.id !== id));
  }
  get active(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.next <= end).sort((a, b) => a.next - b.next)[0];
      if (!due) break;
      this.t = due.next;
      due.next += due.every;
      due.fn();
    }
    this.t = end;
  }
}

function cap(freeCpuMillis: number): Capacity {
  return { totalCpuMillis: 2000, totalMemoryBytes: 1e9, freeCpuMillis, freeMemoryBytes: 5e8, load: 0.1 };
}

function harness(opts: { sendOk?: () => boolean } = {}) {
  const clock = new FakeClock();
  const sent: Beat[] = [];
  let samples = 0;
  const hb = new Heartbeats({
    clock,
    sample: () => cap(100 * ++samples),
    send: (b) => {
      if (opts.sendOk && !opts.sendOk()) return false;
      sent.push(b);
      return true;
    },
  });
  return { clock, sent, hb, samples: () => samples };
}

describe("heartbeats", () => {
  it("beats once per tick with a fresh sample, and not before the first tick", () => {
    const h = harness();
    h.hb.start(1000, cap(7));
    h.clock.advance(999);
    expect(h.sent).toEqual([]);
    h.clock.advance(1);
    expect(h.sent.map((b) => [b.sequence, b.capacity.freeCpuMillis])).toEqual([[1n, 100]]);
    expect(h.samples()).toBe(1);
    h.hb.ack(1n);
    h.clock.advance(1000);
    expect(h.sent.map((b) => b.sequence)).toEqual([1n, 2n]);
  });

  it("keeps one beat in flight: ticks while it is out are held, and only the latest goes out on the ack", () => {
    const h = harness();
    h.hb.start(1000, cap(7));
    h.clock.advance(1000); // beat 1 out
    h.clock.advance(3000); // three ticks while it is out
    expect(h.sent).toHaveLength(1);
    expect(h.samples()).toBe(4);
    h.clock.advance(5);
    h.hb.ack(1n);
    // One beat, with the figures of the last tick (the 4th sample), and the first beat's round trip.
    expect(h.sent.map((b) => [b.sequence, b.capacity.freeCpuMillis, b.lastRttMs])).toEqual([
      [1n, 100, undefined],
      [2n, 400, 3005],
    ]);
    h.hb.ack(2n);
    expect(h.sent).toHaveLength(2);
  });

  it("ignores stale and duplicate acks", () => {
    const h = harness();
    h.hb.start(1000, cap(7));
    h.clock.advance(1000);
    h.clock.advance(1000); // held
    h.hb.ack(99n);
    expect(h.sent).toHaveLength(1);
    h.hb.ack(1n);
    h.hb.ack(1n);
    expect(h.sent.map((b) => b.sequence)).toEqual([1n, 2n]);
  });

  it("request() beats at once with the latest figures without sampling, or is held while a beat is out", () => {
    const h = harness();
    h.hb.request(); // not started: nothing to send on
    expect(h.sent).toEqual([]);
    h.hb.start(1000, cap(7));
    h.hb.request();
    expect(h.sent.map((b) => [b.sequence, b.capacity.freeCpuMillis])).toEqual([[1n, 7]]);
    expect(h.samples()).toBe(0);
    h.hb.request();
    h.hb.request();
    expect(h.sent).toHaveLength(1);
    h.hb.ack(1n);
    expect(h.sent).toHaveLength(2);
    expect(h.samples()).toBe(0);
  });

  it("stop() ends the ticks and forgets a beat in flight; start() on a new stream begins afresh", () => {
    const h = harness();
    h.hb.start(1000, cap(7));
    h.clock.advance(1000);
    h.hb.stop();
    expect(h.clock.active).toBe(0);
    h.clock.advance(5000);
    expect(h.sent).toHaveLength(1);
    h.hb.start(1000, cap(8));
    expect(h.clock.active).toBe(1);
    // The old beat is not waited for: the next tick beats.
    h.clock.advance(1000);
    expect(h.sent.map((b) => b.sequence)).toEqual([1n, 2n]);
  });

  it("a beat that could not be sent is not in flight: the next tick beats again", () => {
    let ok = false;
    const h = harness({ sendOk: () => ok });
    h.hb.start(1000, cap(7));
    h.clock.advance(1000);
    expect(h.sent).toEqual([]);
    ok = true;
    h.clock.advance(1000);
    expect(h.sent.map((b) => b.sequence)).toEqual([1n]);
  });

  it("raises an interval below the minimum", () => {
    const h = harness();
    h.hb.start(0, cap(7));
    h.clock.advance(MIN_HEARTBEAT_INTERVAL_MS - 1);
    expect(h.sent).toEqual([]);
    h.clock.advance(1);
    expect(h.sent).toHaveLength(1);
  });
});
