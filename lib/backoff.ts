// Exponential backoff with "equal jitter" (half the ceiling fixed, half random): pure, the random source is injected.

export interface BackoffOptions {
  /** Delay cap for the first failure, in ms. */
  baseMs: number;
  /** No delay is ever longer than this, in ms. */
  maxMs: number;
}

/** Upper bound of the delay after `failures` consecutive failures (1 = first failure). */
export function backoffCeiling(failures: number, o: BackoffOptions): number {
  if (failures < 1) return 0;
  // 2^(failures-1) overflows to Infinity past ~1024; clamp the exponent first.
  return Math.min(o.maxMs, o.baseMs * 2 ** Math.min(failures - 1, 30));
}

/** A delay drawn uniformly from [ceiling/2, ceiling]: jittered, but never collapsing to zero. */
export function backoffDelay(failures: number, o: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(failures, o);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
