// Heartbeat pacing on the agent's stream: one beat per interval tick, never more than one awaiting its ack; a beat
// asked for while one is out is held, and only the latest held one goes out when the ack comes (latest wins).
// Capacity is sampled on the tick only. Builds no messages and touches no socket: `send` does that.
import type { Capacity } from "./capacity.js";

/** The clock heartbeats run on; injected so unit tests drive it by hand. */
export interface HeartbeatClock {
  /** Monotonic milliseconds (performance.now()). */
  now(): number;
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const systemHeartbeatClock: HeartbeatClock = {
  now: () => performance.now(),
  every: (ms, fn) => {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
};

/** One beat to send: its sequence, the latest capacity sample, and the round trip of the previous beat. */
export interface Beat {
  sequence: bigint;
  capacity: Capacity;
  lastRttMs: number | undefined;
}

export interface HeartbeatDeps {
  clock: HeartbeatClock;
  /** Measures capacity (os.cpus(), /proc): called once per tick, never elsewhere. */
  sample(): Capacity;
  /** Puts the beat on the stream; false when there is none (then nothing is in flight). */
  send(beat: Beat): boolean;
}

/** Intervals shorter than this are raised to it (a misconfigured coordinator cannot make agents spin). */
export const MIN_HEARTBEAT_INTERVAL_MS = 10;

/** idle (no stream) → beating (ticks; at most one beat in flight) → idle on stop (stream lost or agent stopped). */
export type HeartbeatState = "idle" | "beating";

export class Heartbeats {
  private cancelTicks: (() => void) | undefined;
  private sequence = 0n;
  private inFlight: { sequence: bigint; sentAt: number } | undefined;
  /** A beat was asked for while one was in flight: sent (with the latest figures) when the ack arrives. */
  private held = false;
  private latest: Capacity | undefined;
  private rttMs: number | undefined;

  constructor(private readonly d: HeartbeatDeps) {}

  get state(): HeartbeatState {
    return this.cancelTicks ? "beating" : "idle";
  }

  /** Round trip of the last acknowledged beat, in ms. */
  get lastRttMs(): number | undefined {
    return this.rttMs;
  }

  /**
   * Starts beating on a freshly registered stream. `initial` (the capacity measured for the register message)
   * stands in as the latest figures until the first tick. A beat in flight on an older stream is forgotten.
   */
  start(intervalMs: number, initial: Capacity): void {
    this.stop();
    this.latest = initial;
    this.cancelTicks = this.d.clock.every(Math.max(MIN_HEARTBEAT_INTERVAL_MS, intervalMs), () => this.tick());
  }

  /** Stops beating (stream lost or agent stopping); a beat in flight will never be acked and is forgotten. */
  stop(): void {
    this.cancelTicks?.();
    this.cancelTicks = undefined;
    this.inFlight = undefined;
    this.held = false;
  }

  /** The coordinator acknowledged `sequence`: measures the round trip and sends the held beat, if any. */
  ack(sequence: bigint): void {
    if (!this.inFlight || this.inFlight.sequence !== sequence) return; // stale or duplicate ack
    this.rttMs = this.d.clock.now() - this.inFlight.sentAt;
    this.inFlight = undefined;
    if (this.held) {
      this.held = false;
      this.beat();
    }
  }

  /** Asks for a beat with the latest figures as soon as none is in flight (e.g. the devices changed). Does not sample. */
  request(): void {
    if (this.state !== "beating") return;
    if (this.inFlight) {
      this.held = true;
      return;
    }
    this.beat();
  }

  private tick(): void {
    this.latest = this.d.sample();
    this.request();
  }

  private beat(): void {
    if (!this.latest) return;
    const sequence = this.sequence + 1n;
    const sentAt = this.d.clock.now();
    if (!this.d.send({ sequence, capacity: this.latest, lastRttMs: this.rttMs })) return;
    this.sequence = sequence;
    this.inFlight = { sequence, sentAt };
  }
}
