// Throughput: 20,000 small `stats` tasks (100 numbers each) from 50 concurrent submitters in batches (SubmitTasks /
// addBulk), completions observed on one stream (WatchTasks by the run's label / QueueEvents), on fresh processes
// per run, edgeplane and BullMQ alternating. A factory: one entry per agent shape (4 × 1 slot, 4 × 8 slots).
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { alternateRuns, combineRuns, type Measured } from "../compare.js";
import { fmtInt, fmtMs, fmtRate, fmtSummary, Failures, summarize } from "../measure.js";
import type { Scenario, ScenarioResult, TargetCheck } from "../scenario.js";
import { submitInBatches } from "../submit.js";
import type { TargetId } from "../targets.js";

export interface ThroughputOptions {
  /** Agents (BullMQ: worker processes). */
  agents: number;
  /** Slots per agent: the agent's --workers (BullMQ: each worker's concurrency). */
  slots: number;
  /** Tasks per run (full / --quick). */
  tasks: { full: number; quick: number };
  /** Concurrent submitters, each on its own connection. */
  submitters: number;
  /** Tasks per SubmitTasks / addBulk call. */
  batchSize: number;
  /** One run stops after this long, in ms (full / --quick). */
  budgetMs: { full: number; quick: number };
  /** No completion for this long, with tasks outstanding, is a stall, in ms. */
  stallMs: number;
  callTimeoutMs: number;
  /** The issue-8 target the edgeplane completion rate is checked against (only for the shape it names). */
  target?: TargetId;
}

export function throughputScenario(o: ThroughputOptions): Scenario {
  const id = `throughput-${o.agents}x${o.slots}`;
  return {
    id,
    comparesBullmq: true,
    group: "throughput",
    title: `Throughput: ${o.agents} agents × ${o.slots} slot${o.slots === 1 ? "" : "s"}, ${o.submitters} submitters × batches of ${o.batchSize}`,
    async run(ctx): Promise<ScenarioResult> {
      const total = ctx.quick ? o.tasks.quick : o.tasks.full;
      const budgetMs = ctx.quick ? o.budgetMs.quick : o.budgetMs.full;
      const runs = await alternateRuns(
        ctx,
        { id, agents: o.agents, slots: o.slots, lanes: o.submitters, callTimeoutMs: o.callTimeoutMs },
        async (sys, log, round): Promise<Measured> => {
          const failures = new Failures(`${id} r${round}`);
          const stop = new AbortController();
          const signal = AbortSignal.any([ctx.signal, stop.signal]);
          setMaxListeners(0, signal); // one listener per open call
          let submitted: Awaited<ReturnType<typeof submitInBatches>> | undefined;
          const submitting = submitInBatches(
            sys,
            {
              total,
              batchSize: o.batchSize,
              submitters: o.submitters,
              order: (i) => ({ input: i, priority: "normal", device: i }),
            },
            signal,
            failures,
          ).then((s) => {
            submitted = s;
            ctx.progress(`${id}: ${fmtInt(s.accepted.size)} tasks submitted in ${fmtMs(s.endAt - s.startAt)} ms`);
          });
          const t0 = performance.now();

          // Wait for every accepted task's completion; the completion time is the last one's arrival, not a poll's.
          let lastSize = -1,
            lastChange = t0,
            lastReport = t0;
          while (!ctx.signal.aborted) {
            await sleep(20);
            const now = performance.now();
            if (submitted && log.size >= submitted.accepted.size) break;
            if (sys.streamProblem()) {
              failures.add(`${sys.streamProblem()}`);
              break;
            }
            if (log.size !== lastSize) {
              lastSize = log.size;
              lastChange = now;
            }
            if (now - lastChange > o.stallMs) {
              failures.add(
                `stalled: no completion for ${fmtInt(o.stallMs)} ms with ${fmtInt(log.size)} of ${fmtInt(submitted?.accepted.size ?? total)} done; ${await sys.diagnose()}`,
              );
              break;
            }
            if (now - t0 > budgetMs) {
              failures.add(`time budget of ${fmtInt(budgetMs)} ms used up with ${fmtInt(log.size)} of ${fmtInt(total)} done; ${await sys.diagnose()}`);
              break;
            }
            if (now - lastReport > 5_000) {
              lastReport = now;
              ctx.progress(`${id}: ${fmtInt(log.size)}/${fmtInt(total)} done`);
            }
          }
          stop.abort();
          await submitting;
          const s = submitted!;

          // Every accepted task must have succeeded, and nothing else may have come back.
          let missing = 0,
            foreign = 0;
          for (const tid of s.accepted) {
            const c = log.byId.get(tid);
            if (!c) missing++;
            else if (!c.ok) failures.add(c.problem ?? `task ${tid} did not succeed`);
          }
          for (const tid of log.byId.keys()) if (!s.accepted.has(tid)) foreign++;
          if (s.accepted.size < total) failures.add(`${fmtInt(total - s.accepted.size)} of ${fmtInt(total)} tasks were not accepted`);
          if (missing > 0) failures.add(`${fmtInt(missing)} accepted tasks never came back terminal`);
          if (foreign > 0) failures.add(`${fmtInt(foreign)} completions for tasks this run did not submit`);

          const complete = missing === 0 && s.accepted.size > 0;
          const submitS = (s.endAt - s.startAt) / 1000,
            completeS = (log.lastAt - s.startAt) / 1000;
          const completionRate = complete ? s.accepted.size / completeS : Number.NaN;
          const checks: TargetCheck[] = sys.system === "edgeplane" && o.target ? [{ target: o.target, measure: "completion rate", value: completionRate }] : [];
          return {
            rows: [
              {
                metric: "completion rate (first submit → last completion seen)",
                value: complete
                  ? `${fmtRate(completionRate)} (${fmtInt(s.accepted.size)} tasks in ${fmtMs(completeS * 1000)} ms)`
                  : `did not complete (${fmtInt(log.size)} of ${fmtInt(s.accepted.size)})`,
              },
              {
                metric: "submit rate (first submit → last batch acknowledged)",
                value: `${fmtRate(s.accepted.size / submitS)} (${fmtInt(s.accepted.size)} tasks in ${fmtMs(submitS * 1000)} ms)`,
              },
              { metric: `batch round trip (${o.batchSize} tasks, ${o.submitters} submitters)`, value: fmtSummary(summarize(s.batchMs)) },
            ],
            checks,
            failures: failures.list(),
            notes: [],
            headline: completionRate,
          };
        },
      );
      return combineRuns(runs, { what: `completion rate, ${o.agents} × ${o.slots}`, better: "higher", target: o.target ? "vs-bullmq" : undefined }, [
        `${fmtInt(total)} tasks per run, each \`stats\` over 100 numbers (16 distinct inputs), in ${Math.ceil(total / o.batchSize)} batches of ${o.batchSize} from ${o.submitters} concurrent submitters (each its own connection, next batch when the last is acknowledged); edgeplane acknowledges a batch once it is durable. Every run starts on fresh processes; the completion rate counts from the first submission to the arrival of the last task's terminal state on the run's completion stream.`,
      ]);
    },
  };
}
