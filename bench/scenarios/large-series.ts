// One big `stats` task over a packed series (no JSON), e.g. 1,000,000 values, in a given processing mode: wall time
// submit → result next to the agent-measured processing time, so the coordination overhead shows on its own.
// A factory: DISTRIBUTED or HYBRID runs are one more entry in the scenario list (see run.ts).
import { performance } from "node:perf_hooks";
import { ProcessingMode, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import { fmtInt, fmtMs, fmtSummary, Failures, summarize } from "../measure.js";
import type { BenchFleet } from "../fleet.js";
import type { Scenario, ScenarioContext, ScenarioResult, TargetId } from "../scenario.js";
import { describeFailure, errorText, outputOf, processingMs, readings, seriesStatsRequest, watchUntilTerminal } from "../tasks.js";
import { fmtTimelines, timelineOf, type Timeline } from "../timeline.js";

export interface LargeSeriesOptions {
  mode: ProcessingMode;
  /** Values in the packed series. */
  values: number;
  /** Measured runs (full / --quick). */
  runs: { full: number; quick: number };
  /** Unmeasured runs first (full / --quick). */
  warmup: { full: number; quick: number };
  /** Device of the task: the agent serving it is where LOCAL work runs. Default: the first agent's first device. */
  deviceId?: string;
  /** The design target its times are compared with. */
  target: TargetId;
  /** Per-call deadline, in ms. */
  callTimeoutMs: number;
}

export function largeSeriesScenario(o: LargeSeriesOptions): Scenario {
  const mode = ProcessingMode[o.mode];
  const id = `large-series-${mode.toLowerCase()}`;
  return {
    id,
    title: `${mode}: ${fmtInt(o.values)}-value stats, packed series`,
    async run(ctx): Promise<ScenarioResult> {
      const fleet = await ctx.startFleet(ctx.defaultShape, id);
      try {
        return await measure(ctx, fleet);
      } finally {
        await ctx.stopFleet(fleet);
      }
    },
  };

  async function measure(ctx: ScenarioContext, fleet: BenchFleet): Promise<ScenarioResult> {
    const runs = ctx.quick ? o.runs.quick : o.runs.full;
    const warmup = ctx.quick ? o.warmup.quick : o.warmup.full;
    const failures = new Failures(id);
    const deviceId = o.deviceId ?? fleet.agents[0].deviceIds[0];
    const values = readings(o.values);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const req = seriesStatsRequest(values, o.mode, deviceId);
    const wall: number[] = [],
      proc: number[] = [],
      overhead: number[] = [],
      submit: number[] = [];
    const timelines: Timeline[] = [];

    for (let i = 0; i < warmup + runs && !ctx.signal.aborted; i++) {
      try {
        const t0 = performance.now();
        const { taskId } = await fleet.clients.tasks.submitTask(req, { signal: ctx.signal, timeoutMs: o.callTimeoutMs });
        const t1 = performance.now();
        const { task, at: t2, seenAt } = await watchUntilTerminal(fleet.clients, taskId, ctx.signal, o.callTimeoutMs);
        check(task, o.values, mean);
        ctx.progress(`${id}: run ${i + 1}/${warmup + runs} ${fmtMs(t2 - t0)} ms`);
        if (i < warmup) continue;
        const p = processingMs(task) ?? Number.NaN;
        wall.push(t2 - t0);
        submit.push(t1 - t0);
        proc.push(p);
        overhead.push(t2 - t0 - p);
        const tl = timelineOf(task, seenAt);
        if (tl) timelines.push(tl);
      } catch (err) {
        if (ctx.signal.aborted) break;
        failures.add(errorText(err));
      }
    }

    const w = summarize(wall),
      p = summarize(proc);
    if (!ctx.signal.aborted && w.n < runs) failures.add(`measured ${w.n} of ${runs} runs`);
    const nodes = [...new Set(timelines.map((t) => t.nodeId))];
    return {
      rows: [
        { metric: "Submit → result wall time (WatchTask)", value: fmtSummary(w) },
        { metric: "Agent processing time (attempt processingTime)", value: fmtSummary(p) },
        { metric: "Coordination overhead (wall − processing)", value: fmtSummary(summarize(overhead)) },
        { metric: `SubmitTask round trip (${fmtInt((o.values * 8) / 1e6)} MB request)`, value: fmtSummary(summarize(submit)) },
        { metric: "Where the time went (coordinator and agent timestamps, whole ms)", value: fmtTimelines(timelines) },
      ],
      checks: [
        { target: o.target, measure: `${mode} ${fmtInt(o.values)}-value stats, agent processing time, median`, value: p.p50 },
        { target: o.target, measure: `${mode} ${fmtInt(o.values)}-value stats, submit → result wall, median`, value: w.p50 },
      ],
      failures: failures.list(),
      notes: [
        `${runs} measured runs after ${warmup} warm-up; series of ${fmtInt(o.values)} doubles for device ${deviceId}; ran on ${nodes.join(", ") || "no node"}. WatchTask updates leave the series out (GetTask has it).`,
      ],
    };
  }
}

/** Throws unless the task succeeded with the right count and mean. */
function check(task: Task, count: number, mean: number): void {
  if (task.state !== TaskState.SUCCEEDED) throw new Error(describeFailure(task));
  const out = outputOf(task);
  if (out?.count !== count) throw new Error(`task ${task.id} output count ${String(out?.count)}, expected ${count}`);
  if (typeof out.mean !== "number" || Math.abs(out.mean - mean) > 1e-9 * Math.max(1, Math.abs(mean))) {
    throw new Error(`task ${task.id} output mean ${String(out.mean)}, expected ${mean}`);
  }
}
