// The open-loop scenario's arithmetic: the fixed arrival schedule and the "kept up" rule. Pure: no clocks, no I/O.

/** When arrival k (0-based) is meant to be sent: `start + k / rate`, in ms; independent of every completion. */
export const intendedAt = (start: number, ratePerS: number, k: number): number => start + (k * 1000) / ratePerS;

/** What a run's figures must satisfy to count as keeping up. */
export interface KeptUpRule {
  /** Completion rate at least this share of the offered rate. Default 0.98. */
  rateShare: number;
  /** The backlog (sent, not yet terminal) back to 0 within this long after the last intended arrival, in ms. Default 1000. */
  drainMs: number;
}

export const DEFAULT_KEPT_UP_RULE: KeptUpRule = { rateShare: 0.98, drainMs: 1_000 };

export interface OpenLoopFigures {
  offeredPerS: number;
  /** Arrivals the schedule had. */
  arrivals: number;
  /** Arrivals actually sent (fewer when the run stopped its schedule early). */
  sent: number;
  accepted: number;
  /** Accepted tasks seen terminal and successful. */
  succeeded: number;
  /** Accepted tasks seen terminal at all. */
  completed: number;
  /** performance.now() of the first and the last intended arrival, and of the last completion seen. */
  firstIntendedAt: number;
  lastIntendedAt: number;
  lastCompletionAt: number;
}

export interface OpenLoopVerdict {
  keptUp: boolean;
  /** Successful completions per second from the first intended arrival to the last completion; NaN if none. */
  completionRate: number;
  /** Last completion − last intended arrival, in ms: how long the backlog took to clear; NaN unless every task came back. */
  drainMs: number;
  /** Why it did not keep up (empty when it did). */
  reasons: string[];
}

/**
 * Kept up = every arrival was sent, accepted and succeeded, the completion rate is at least `rateShare` of the
 * offered rate, and the last completion arrived within `drainMs` of the last intended arrival.
 */
export function judgeOpenLoop(f: OpenLoopFigures, rule: KeptUpRule = DEFAULT_KEPT_UP_RULE): OpenLoopVerdict {
  const reasons: string[] = [];
  const spanS = (f.lastCompletionAt - f.firstIntendedAt) / 1000;
  const completionRate = f.succeeded > 0 && spanS > 0 ? f.succeeded / spanS : Number.NaN;
  const allBack = f.sent === f.arrivals && f.accepted === f.sent && f.completed === f.accepted;
  const drainMs = allBack ? f.lastCompletionAt - f.lastIntendedAt : Number.NaN;
  if (f.sent < f.arrivals) reasons.push(`the schedule was stopped after ${f.sent} of ${f.arrivals} arrivals`);
  if (f.accepted < f.sent) reasons.push(`${f.sent - f.accepted} submissions were not accepted`);
  if (f.completed < f.accepted) reasons.push(`${f.accepted - f.completed} accepted tasks never came back terminal`);
  if (f.succeeded < f.completed) reasons.push(`${f.completed - f.succeeded} tasks did not succeed`);
  if (!(completionRate >= rule.rateShare * f.offeredPerS)) {
    reasons.push(
      `completion rate ${Number.isFinite(completionRate) ? completionRate.toFixed(0) : "n/a"}/s is below ${(rule.rateShare * 100).toFixed(0)}% of the ${f.offeredPerS}/s offered`,
    );
  }
  if (allBack && !(drainMs <= rule.drainMs))
    reasons.push(`the backlog took ${drainMs.toFixed(0)} ms after the last arrival to clear (limit ${rule.drainMs} ms)`);
  return { keptUp: reasons.length === 0, completionRate, drainMs, reasons };
}
