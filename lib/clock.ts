// Time as a port: what the coordinator's logic may ask of the clock and the timer wheel. Production code gets the
// system ones; unit tests inject a fake (test/helpers/fake-clock.ts) and advance it by hand. Nothing else here.
import { performance } from "node:perf_hooks";

export interface Clock {
  /** Monotonic ms, for timeouts and liveness. */
  mono(): number;
  /** Wall-clock epoch ms, for display and deadlines. */
  wall(): number;
}

export interface Timers {
  /** Calls `fn` once after `ms` (monotonic); returns a function that cancels it. Never keeps the process alive. */
  after(ms: number, fn: () => void): () => void;
  /** Calls `fn` once after the current event-loop turn: where the events of one turn coalesce. */
  soon(fn: () => void): void;
}

export const systemClock: Clock = { mono: () => performance.now(), wall: () => Date.now() };

/** setTimeout holds at most 2^31-1 ms (~24.8 days); a longer wait is re-armed when this much has passed. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemTimers: Timers = {
  after(ms, fn) {
    const t = setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    t.unref();
    return () => clearTimeout(t);
  },
  soon(fn) {
    setImmediate(fn);
  },
};
