// Submit-to-result latency at light load: one task in flight, SubmitTask then WatchTask to the terminal state,
// the way a client waits for a result. Also times SubmitTask alone (the submission overhead).
import { performance } from "node:perf_hooks";
import { TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { fmtMs, fmtSummary, Failures, summarize } from "../measure.js";
import type { Scenario, ScenarioResult } from "../scenario.js";
import { describeFailure, errorText, jsonStatsRequest, jsonValuesInput, outputOf, processingMs, readings, watchUntilTerminal } from "../tasks.js";
import { fmtTimelines, timelineOf, type Timeline } from "../timeline.js";

export interface SubmitLatencyOptions {
  /** Measured tasks (full / --quick). */
  n: { full: number; quick: number };
  /** Tasks run first and not measured, so connections, JIT and warm workers settle. */
  warmup: { full: number; quick: number };
  /** Values in each task's JSON input. */
  values: number;
  /** The whole scenario stops after this long, in ms. */
  budgetMs: number;
  /** Per-call deadline, in ms. */
  callTimeoutMs: number;
}

/** Consecutive failed tasks after which the scenario gives up: the fleet is broken, not slow. */
const GIVE_UP_AFTER = 10;

export function submitLatencyScenario(o: SubmitLatencyOptions): Scenario {
  return {
    id: "submit-latency",
    title: `Light load: ${o.values}-value stats, one in flight`,
    async run(ctx): Promise<ScenarioResult> {
      const n = ctx.quick ? o.n.quick : o.n.full;
      const warmup = ctx.quick ? o.warmup.quick : o.warmup.full;
      const failures = new Failures("submit-latency");
      const submitMs: number[] = [], totalMs: number[] = [], procMs: number[] = [], overheadMs: number[] = [];
      const timelines: Timeline[] = [];
      // A few distinct inputs, built once: building requests is not what is measured.
      const inputs = Array.from({ length: 8 }, (_, k) => jsonValuesInput(readings(o.values, k * 1000)));
      const end = performance.now() + o.budgetMs;
      let consecutive = 0;

      for (let i = 0; i < warmup + n; i++) {
        if (ctx.signal.aborted) break;
        if (performance.now() > end) {
          failures.add(`time budget of ${o.budgetMs} ms used up after ${i} of ${warmup + n} tasks`);
          break;
        }
        if (consecutive >= GIVE_UP_AFTER) {
          failures.add(`gave up after ${GIVE_UP_AFTER} consecutive failed tasks`);
          break;
        }
        const device = ctx.agents[i % ctx.agents.length].deviceIds[0];
        const req = jsonStatsRequest(inputs[i % inputs.length], device);
        try {
          const t0 = performance.now();
          const { taskId } = await ctx.clients.tasks.submitTask(req, { signal: ctx.signal, timeoutMs: o.callTimeoutMs });
          const t1 = performance.now();
          const { task, at: t2, seenAt } = await watchUntilTerminal(ctx.clients, taskId, ctx.signal, o.callTimeoutMs);
          const count = outputOf(task)?.count;
          if (task.state !== TaskState.SUCCEEDED) throw new Error(describeFailure(task));
          if (count !== o.values) throw new Error(`task ${taskId} output count ${String(count)}, expected ${o.values}`);
          consecutive = 0;
          if (i < warmup) continue;
          submitMs.push(t1 - t0);
          totalMs.push(t2 - t0);
          const tl = timelineOf(task, seenAt);
          if (tl) timelines.push(tl);
          const p = processingMs(task);
          if (p !== undefined) {
            procMs.push(p);
            overheadMs.push(t2 - t0 - p);
          }
        } catch (err) {
          if (ctx.signal.aborted) break;
          consecutive++;
          failures.add(errorText(err));
        }
        if ((i + 1) % 50 === 0) ctx.progress(`submit-latency: ${i + 1}/${warmup + n}`);
      }

      const submit = summarize(submitMs), total = summarize(totalMs);
      const wholeMs = procMs.length > 0 && procMs.every((x) => Number.isInteger(x));
      if (!ctx.signal.aborted && total.n < n) failures.add(`measured ${total.n} of ${n} tasks`);
      return {
        rows: [
          { metric: "SubmitTask round trip (submission overhead)", value: fmtSummary(submit) },
          { metric: "Submit → terminal state seen on WatchTask", value: fmtSummary(total) },
          { metric: "Agent processing time (handler in worker)", value: fmtSummary(summarize(procMs)) },
          { metric: "Coordination overhead (submit → terminal − processing)", value: fmtSummary(summarize(overheadMs)) },
          { metric: "Where the time went (coordinator and agent timestamps, whole ms)", value: fmtTimelines(timelines) },
        ],
        checks: [
          { target: "submission", measure: "SubmitTask round trip, p50", ms: submit.p50 },
          { target: "submission", measure: "SubmitTask round trip, p99", ms: submit.p99 },
          { target: "edge-analytics", measure: `submit → result, ${o.values}-value stats, p50`, ms: total.p50 },
          { target: "edge-analytics", measure: `submit → result, ${o.values}-value stats, p99`, ms: total.p99 },
        ],
        failures: failures.list(),
        notes: [
          `${n} measured tasks after ${warmup} warm-up tasks, strictly one in flight; LOCAL mode, devices round-robin over the agents; JSON input of ${o.values} values; mean submit → result ${fmtMs(total.mean)} ms.`,
          ...(wholeMs ? ["Every processing time arrived in whole milliseconds (Task.processingTime is rounded before it reaches clients), so sub-millisecond handlers read 0."] : []),
        ],
      };
    },
  };
}
