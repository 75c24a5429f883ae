// The benchmark's pure rules: percentiles, target verdicts, the open-loop schedule and "kept up", flag parsing and
// scenario selection, and the completion log the scenarios wait on.
import { describe, expect, it } from "vitest";
import { CompletionLog } from "../../bench/compare.js";
import { logProblems, type Child } from "../../bench/fleet.js";
import { percentile, summarize } from "../../bench/measure.js";
import { intendedAt, judgeOpenLoop, type OpenLoopFigures } from "../../bench/open-loop-rule.js";
import { parseBenchOptions, selectScenarios } from "../../bench/options.js";
import type { Scenario } from "../../bench/scenario.js";
import { targetById, verdict } from "../../bench/targets.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("percentiles", () => {
  it("are nearest-rank observed values, p99.9 included", () => {
    const xs = Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentile(xs, 0.5)).toBe(500);
    expect(percentile(xs, 0.99)).toBe(990);
    const s = summarize(xs.reverse());
    expect(s.p999).toBe(999);
    expect(s.max).toBe(1000);
  });

  it("put tasks that never came back (Infinity) in the tail", () => {
    const xs = [...Array.from({ length: 98 }, () => 1), Infinity, Infinity];
    expect(summarize(xs).p99).toBe(Infinity);
    expect(summarize(xs).p50).toBe(1);
  });
});

describe("target verdicts", () => {
  it("say how many times a lower-is-better limit was missed", () => {
    const t = targetById("light-load-p50");
    expect(verdict(t, 1)).toBe("met");
    expect(verdict(t, 2.5)).toBe("missed ×2.50");
    expect(verdict(t, Number.NaN)).toBe("not measured");
  });

  it("say how many times short a higher-is-better limit was", () => {
    const t = targetById("throughput-4x1");
    expect(verdict(t, 3000)).toBe("met");
    expect(verdict(t, 1500)).toBe("missed ×2.00");
    expect(verdict(t, 0)).toBe("missed");
  });

  it("judge yes/no targets by the boolean", () => {
    const t = targetById("open-loop-kept-up");
    expect(verdict(t, true)).toBe("met");
    expect(verdict(t, false)).toBe("missed");
    expect(verdict(t, 1)).toBe("not measured");
  });

  it("apply a design target's aim separately", () => {
    const t = targetById("submission");
    expect(verdict(t, 2)).toBe("met");
    expect(verdict(t, 2, t.aim)).toBe("missed ×2.00");
  });
});

describe("open loop", () => {
  it("schedules arrival k at start + k / rate, whatever happened before", () => {
    expect(intendedAt(100, 2000, 0)).toBe(100);
    expect(intendedAt(100, 2000, 1)).toBe(100.5);
    expect(intendedAt(100, 2000, 2000)).toBe(1100);
  });

  const base: OpenLoopFigures = {
    offeredPerS: 2000,
    arrivals: 40_000,
    sent: 40_000,
    accepted: 40_000,
    succeeded: 40_000,
    completed: 40_000,
    firstIntendedAt: 0,
    lastIntendedAt: 19_999.5,
    lastCompletionAt: 20_005,
  };

  it("keeps up when everything came back fast", () => {
    const v = judgeOpenLoop(base);
    expect(v.keptUp).toBe(true);
    expect(v.reasons).toEqual([]);
    expect(v.drainMs).toBeCloseTo(5.5);
    expect(v.completionRate).toBeCloseTo(40_000 / 20.005);
  });

  it("does not keep up when the backlog takes over a second to clear", () => {
    const v = judgeOpenLoop({ ...base, lastCompletionAt: 21_200 });
    expect(v.keptUp).toBe(false);
    expect(v.reasons.join()).toMatch(/backlog took 1201 ms/);
  });

  it("does not keep up when the rate falls below 98% of offered", () => {
    const v = judgeOpenLoop({ ...base, lastCompletionAt: 20_600, lastIntendedAt: 19_999.5 }, { rateShare: 0.98, drainMs: 10_000 });
    expect(v.keptUp).toBe(false);
    expect(v.reasons.join()).toMatch(/below 98% of the 2000\/s offered/);
  });

  it("does not keep up when tasks are missing, failed or the schedule stopped", () => {
    expect(judgeOpenLoop({ ...base, completed: 39_999, succeeded: 39_999 }).keptUp).toBe(false);
    expect(judgeOpenLoop({ ...base, succeeded: 39_999 }).reasons.join()).toMatch(/1 tasks did not succeed/);
    expect(judgeOpenLoop({ ...base, sent: 10_000, accepted: 10_000, completed: 10_000, succeeded: 10_000 }).reasons.join()).toMatch(/stopped after 10000/);
    expect(judgeOpenLoop({ ...base, completed: 39_000, succeeded: 39_000 }).drainMs).toBeNaN();
  });
});

describe("flags", () => {
  it("compare with BullMQ by default, also with --quick, and run 2 rounds (1 quick)", () => {
    const full = parseBenchOptions([]);
    const quick = parseBenchOptions(["--quick"]);
    if (full === "help" || quick === "help") throw new Error("help");
    expect(full.compareBullmq).toBe(true);
    expect(quick.compareBullmq).toBe(true);
    expect(full.rounds).toBe(2);
    expect(quick.rounds).toBe(1);
    expect(full.redis).toEqual({ host: "127.0.0.1", port: 6379 });
    // The product's default (TLS + tokens), with a plaintext run alongside to show what security costs.
    expect(full.security).toBe("secure");
    expect(full.securityCost).toBe(true);
    const plain = parseBenchOptions(["--insecure"]);
    if (plain === "help") throw new Error("help");
    expect(plain).toMatchObject({ security: "insecure", securityCost: false });
  });

  it("parse --only, --no-compare-bullmq, --profile and reject nonsense with a message", () => {
    const o = parseBenchOptions(["--only", "light-load, throughput", "--no-compare-bullmq", "--profile", "--rounds", "3"]);
    if (o === "help") throw new Error("help");
    expect(o.only).toEqual(["light-load", "throughput"]);
    expect(o.compareBullmq).toBe(false);
    expect(o.profile).toBe(true);
    expect(o.rounds).toBe(3);
    expect(() => parseBenchOptions(["--rounds", "0"])).toThrow(/--rounds must be an integer from 1 to 10/);
    expect(() => parseBenchOptions(["--redis", "localhost"])).toThrow(/--redis must be HOST:PORT/);
    expect(() => parseBenchOptions(["--only", ","])).toThrow(/--only needs/);
    expect(() => parseBenchOptions(["--compare-bullmq", "--no-compare-bullmq"])).toThrow(/not both/);
    expect(() => parseBenchOptions(["--bogus"])).toThrow();
  });

  it("select scenarios by id or group, in list order, and name the known ones on a typo", () => {
    const s = (id: string, group?: string): Scenario => ({ id, group, title: id, run: () => Promise.reject(new Error("not run")) });
    const all = [s("light-load"), s("throughput-4x1", "throughput"), s("throughput-4x8", "throughput"), s("idle-agent-rss")];
    expect(selectScenarios(all, []).map((x) => x.id)).toEqual(all.map((x) => x.id));
    expect(selectScenarios(all, ["idle-agent-rss", "throughput"]).map((x) => x.id)).toEqual(["throughput-4x1", "throughput-4x8", "idle-agent-rss"]);
    expect(() => selectScenarios(all, ["through"])).toThrow(/unknown scenario through; known: light-load, throughput-4x1, throughput/);
  });
});

describe("completion log", () => {
  it("resolves a waiter when the task arrives, or at once if it already has, and counts duplicates", async () => {
    const log = new CompletionLog();
    const signal = new AbortController().signal;
    const waiting = log.waitFor("a", 1_000, signal);
    log.add({ id: "a", at: 5, ok: true });
    await expect(waiting).resolves.toMatchObject({ id: "a", at: 5 });
    log.add({ id: "b", at: 7, ok: false, problem: "boom" });
    await expect(log.waitFor("b", 1_000, signal)).resolves.toMatchObject({ ok: false });
    log.add({ id: "a", at: 9, ok: true });
    expect(log.duplicates).toBe(1);
    expect(log.ok).toBe(1);
    expect(log.size).toBe(2);
    expect(log.lastAt).toBe(7);
  });

  it("rejects a waiter after its timeout and on abort", async () => {
    const log = new CompletionLog();
    await expect(log.waitFor("x", 10, new AbortController().signal)).rejects.toThrow(/not seen terminal within 10 ms/);
    const ac = new AbortController();
    const w = log.waitFor("y", 10_000, ac.signal);
    ac.abort(new Error("stop"));
    await expect(w).rejects.toThrow("stop");
  });
});

describe("child log problems", () => {
  it("count pino errors and crashes as errors, Node's process warnings as warnings", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-log-"));
    const file = join(dir, "c.log");
    writeFileSync(
      file,
      [
        JSON.stringify({ level: 30, msg: "fine" }),
        JSON.stringify({ level: 40, msg: "node disconnected" }),
        "(node:123) MaxListenersExceededWarning: Possible EventTarget memory leak detected.",
        "(Use `node --trace-warnings ...` to show where the warning was created)",
        JSON.stringify({ level: 50, msg: "store failed" }),
        "TypeError: x is not a function",
        "",
      ].join("\n"),
    );
    try {
      const p = logProblems({ name: "coordinator", logFile: file } as Child);
      expect(p.warnings).toBe(3);
      expect(p.errors).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
