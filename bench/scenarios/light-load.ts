// Light-load latency: strictly one task in flight; submit (SubmitTask / Queue.add) → its terminal state seen on the
// run's completion stream (WatchTasks by label, opened before the first submission / QueueEvents), and the submit
// call's own round trip. edgeplane and BullMQ alternating, fresh processes per run.
import { performance } from "node:perf_hooks";
import { alternateRuns, combineRuns, type Measured } from "../compare.js";
import { fmtSummary, Failures, summarize } from "../measure.js";
import type { Scenario, ScenarioResult, TargetCheck } from "../scenario.js";
import { errorText } from "../tasks.js";

export interface LightLoadOptions {
  agents: number;
  slots: number;
  /** Measured tasks (full / --quick). */
  n: { full: number; quick: number };
  /** Tasks run first and not measured (connections, JIT, warm workers). */
  warmup: { full: number; quick: number };
  /** One run stops after this long, in ms. */
  budgetMs: number;
  callTimeoutMs: number;
}

/** Consecutive failed tasks after which a run gives up: the system is broken, not slow. */
const GIVE_UP_AFTER = 10;

export function lightLoadScenario(o: LightLoadOptions): Scenario {
  const id = "light-load";
  return {
    id,
    comparesBullmq: true,
    title: `Light load: one task in flight, ${o.agents} agents × ${o.slots}`,
    async run(ctx): Promise<ScenarioResult> {
      const n = ctx.quick ? o.n.quick : o.n.full;
      const warmup = ctx.quick ? o.warmup.quick : o.warmup.full;
      const runs = await alternateRuns(
        ctx,
        { id, agents: o.agents, slots: o.slots, lanes: 1, callTimeoutMs: o.callTimeoutMs },
        async (sys, log, round): Promise<Measured> => {
          const failures = new Failures(`${id} r${round}`);
          const submitMs: number[] = [],
            totalMs: number[] = [];
          const end = performance.now() + o.budgetMs;
          let consecutive = 0;
          for (let i = 0; i < warmup + n && !ctx.signal.aborted; i++) {
            if (performance.now() > end) {
              failures.add(`time budget of ${o.budgetMs} ms used up after ${i} of ${warmup + n} tasks`);
              break;
            }
            if (consecutive >= GIVE_UP_AFTER) {
              failures.add(`gave up after ${GIVE_UP_AFTER} consecutive failed tasks`);
              break;
            }
            try {
              const t0 = performance.now();
              const taskId = await sys.submitOne({ input: i, priority: "normal", device: i }, 0, ctx.signal);
              const t1 = performance.now();
              const c = await log.waitFor(taskId, o.callTimeoutMs, ctx.signal);
              if (!c.ok) throw new Error(c.problem ?? `task ${taskId} did not succeed`);
              consecutive = 0;
              if (i < warmup) continue;
              submitMs.push(t1 - t0);
              totalMs.push(c.at - t0);
            } catch (err) {
              if (ctx.signal.aborted) break;
              consecutive++;
              failures.add(errorText(err));
            }
          }
          const submit = summarize(submitMs),
            total = summarize(totalMs);
          if (!ctx.signal.aborted && total.n < n) failures.add(`measured ${total.n} of ${n} tasks`);
          const checks: TargetCheck[] =
            sys.system !== "edgeplane"
              ? []
              : [
                  { target: "light-load-p50", measure: "submit → terminal seen, p50", value: total.p50 },
                  { target: "light-load-p99", measure: "submit → terminal seen, p99", value: total.p99 },
                  { target: "submission", measure: "SubmitTask round trip, p50", value: submit.p50 },
                  { target: "submission", measure: "SubmitTask round trip, p99", value: submit.p99 },
                  { target: "edge-analytics", measure: "submit → result, 100-value stats, p99", value: total.p99 },
                ];
          return {
            rows: [
              { metric: "submit → terminal seen on the completion stream", value: fmtSummary(total) },
              { metric: `submit call round trip (${sys.system.startsWith("edgeplane") ? "SubmitTask, durable" : "Queue.add"})`, value: fmtSummary(submit) },
            ],
            checks,
            failures: failures.list(),
            notes: [],
            headline: total.p50,
          };
        },
      );
      return combineRuns(runs, { what: "submit → terminal p50", better: "lower" }, [
        `${n} measured tasks per run after ${warmup} warm-up, strictly one in flight (the next is submitted when the previous one's terminal state has arrived); \`stats\` over 100 numbers; latency from just before the submit call to the arrival of the terminal state on the completion stream that was opened (and proven live by a probe task) before the first submission.`,
      ]);
    },
  };
}
