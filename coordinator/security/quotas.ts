// Per-token quotas on submissions: tasks queued or running at once, submissions per second (a token bucket) and the
// largest input of one task. Checked before a task is accepted; a task already accepted is never dropped to make
// room. Counts live in memory, rebuilt from the store's active tasks at start; the clock is injected.
import { ResourceExhaustedError } from "../errors.js";
import { isTerminal, type TaskRecord } from "../tasks/types.js";
import type { QuotaLimits } from "./auth-store.js";
import type { Principal } from "./principal.js";

/** Coordinator-wide defaults, from the --quota-* flags; 0 means unlimited. */
export interface QuotaDefaults {
  maxActiveTasks: number;
  submitRate: number;
  submitBurst: number;
  maxInputBytes: number;
}

export type ResolvedQuota = Required<QuotaLimits>;

interface Bucket {
  tokens: number;
  at: number;
}

export class Quotas {
  /** Non-terminal tasks per owner (principal id). */
  private readonly active = new Map<string, Set<string>>();
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly defaults: QuotaDefaults,
    private readonly now: () => number,
  ) {}

  /** The limits that apply to a token: its own where set (non-zero), else the defaults. */
  limits(q: QuotaLimits): ResolvedQuota {
    const pick = (own: number | undefined, dflt: number) => (own && own > 0 ? own : dflt);
    return {
      maxActiveTasks: pick(q.maxActiveTasks, this.defaults.maxActiveTasks),
      submitRate: pick(q.submitRate, this.defaults.submitRate),
      submitBurst: pick(q.submitBurst, this.defaults.submitBurst),
      maxInputBytes: pick(q.maxInputBytes, this.defaults.maxInputBytes),
    };
  }

  /** Follows every task change (TaskManager.onChange) so the active counts stay exact. */
  observe(t: TaskRecord): void {
    if (!t.owner) return;
    let set = this.active.get(t.owner);
    if (isTerminal(t.state)) {
      set?.delete(t.id);
      if (set && set.size === 0) this.active.delete(t.owner);
      return;
    }
    if (!set) this.active.set(t.owner, (set = new Set()));
    set.add(t.id);
  }

  activeCount(owner: string): number {
    return this.active.get(owner)?.size ?? 0;
  }

  /**
   * Starts checking the tasks of one Submit call: `admit` throws ResourceExhaustedError for a task that would go over
   * a limit (the call's earlier tasks count against max_active_tasks before they are submitted). Principals without
   * a token (insecure mode) have no quotas.
   */
  batch(p: Principal): { admit(inputBytes: number): void } {
    if (p.kind !== "token") return { admit: () => {} };
    const limits = this.limits(p.token.quota);
    const owner = p.id;
    let admitted = 0;
    return {
      admit: (inputBytes: number) => {
        if (limits.maxInputBytes > 0 && inputBytes > limits.maxInputBytes) {
          throw new ResourceExhaustedError(
            `task input is ${inputBytes} bytes; token ${p.token.id} may submit inputs of at most ${limits.maxInputBytes} bytes (its max_input_bytes quota)`,
          );
        }
        if (limits.maxActiveTasks > 0 && this.activeCount(owner) + admitted >= limits.maxActiveTasks) {
          throw new ResourceExhaustedError(
            `token ${p.token.id} already has ${this.activeCount(owner) + admitted} tasks queued or running, its limit of ${limits.maxActiveTasks} (max_active_tasks quota); wait for some to finish, then submit again`,
          );
        }
        if (limits.submitRate > 0) this.take(p.token.id, limits);
        admitted++;
      },
    };
  }

  private take(tokenId: string, l: ResolvedQuota): void {
    const now = this.now();
    const burst = Math.max(1, l.submitBurst || Math.ceil(l.submitRate));
    const b = this.buckets.get(tokenId) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * l.submitRate);
    b.at = now;
    if (b.tokens < 1) {
      this.buckets.set(tokenId, b);
      const waitMs = Math.ceil(((1 - b.tokens) / l.submitRate) * 1000);
      throw new ResourceExhaustedError(
        `token ${tokenId} may submit ${l.submitRate} tasks per second (bursts of ${burst}; submit_rate / submit_burst quota); retry in ${waitMs} ms`,
      );
    }
    b.tokens -= 1;
    this.buckets.set(tokenId, b);
  }
}
