import { describe, expect, it } from "vitest";
import { backoffCeiling, backoffDelay } from "../../lib/backoff.js";

const o = { baseMs: 100, maxMs: 5000 };

describe("backoff", () => {
  it("doubles the ceiling per failure up to the maximum", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffCeiling(n, o))).toEqual([100, 200, 400, 800, 1600, 3200, 5000]);
    expect(backoffCeiling(10_000, o)).toBe(5000);
    expect(backoffCeiling(0, o)).toBe(0);
  });

  it("draws the delay from [ceiling/2, ceiling] with the injected random source", () => {
    expect(backoffDelay(3, o, () => 0)).toBe(200);
    expect(backoffDelay(3, o, () => 1)).toBe(400);
    expect(backoffDelay(3, o, () => 0.5)).toBe(300);
  });

  it("spreads delays (jitter): 1,000 draws are not all equal and stay in range", () => {
    const ds = Array.from({ length: 1000 }, () => backoffDelay(4, o));
    expect(new Set(ds).size).toBeGreaterThan(100);
    expect(Math.min(...ds)).toBeGreaterThanOrEqual(400);
    expect(Math.max(...ds)).toBeLessThanOrEqual(800);
  });
});
