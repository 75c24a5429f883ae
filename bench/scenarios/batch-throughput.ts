// End-to-end throughput with batched submission: many small tasks through SubmitTasks, several batches in flight,
// completion followed on ClusterService.GetStatus counters polled every pollMs (polling is fine in a benchmark).
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { GetStatusResponse } from "../../gen/edgeplane/v1/cluster_pb.js";
import { NodeState, TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { fmtInt, fmtMs, fmtSummary, Failures, summarize } from "../measure.js";
import type { Scenario, ScenarioContext, ScenarioResult } from "../scenario.js";
import { describeFailure, errorText, exactMs, jsonStatsRequest, jsonValuesInput, readings } from "../tasks.js";
import { fmtTimelines, nodeTurnarounds, timelineOf, type Timeline } from "../timeline.js";

export interface BatchThroughputOptions {
  /** Tasks submitted (full / --quick). */
  tasks: { full: number; quick: number };
  /** Tasks per SubmitTasks call. */
  batchSize: number;
  /** SubmitTasks calls in flight at once. */
  inFlight: number;
  /** Values in each task's JSON input. */
  values: number;
  /** GetStatus polling interval, in ms: the resolution of the completion time. */
  pollMs: number;
  /** The whole scenario stops after this long, in ms (full / --quick). */
  budgetMs: { full: number; quick: number };
  /** No task reaching a terminal state for this long, with tasks outstanding, is a stall, in ms. */
  stallMs: number;
  /** Per-call deadline, in ms. */
  callTimeoutMs: number;
}

/** Tasks (the newest) whose timestamps show where the time went. */
const SAMPLE = 1_000;

/** Consecutive failed GetStatus polls after which the scenario gives up. */
const POLL_GIVE_UP = 20;

export function batchThroughputScenario(o: BatchThroughputOptions): Scenario {
  return {
    id: "batch-throughput",
    title: `Throughput: ${o.values}-value stats via SubmitTasks ×${o.batchSize}, ${o.inFlight} batches in flight`,
    async run(ctx): Promise<ScenarioResult> {
      const total = ctx.quick ? o.tasks.quick : o.tasks.full;
      const budgetMs = ctx.quick ? o.budgetMs.quick : o.budgetMs.full;
      const failures = new Failures("batch-throughput");
      const call = () => ({ signal: ctx.signal, timeoutMs: o.callTimeoutMs });
      const base = await ctx.clients.clusters.getStatus({}, call());
      const inputs = Array.from({ length: 16 }, (_, k) => jsonValuesInput(readings(o.values, k * 977)));

      // Submitters stop early when the poller gives up (stall, budget) or on SIGINT.
      const stop = new AbortController();
      const submitSignal = AbortSignal.any([ctx.signal, stop.signal]);
      const batches = Math.ceil(total / o.batchSize);
      const batchMs: number[] = [];
      let nextBatch = 0, accepted = 0, submitDone = false, submitEnd = Number.NaN;
      const t0 = performance.now();

      const submitter = async (): Promise<void> => {
        for (let b = nextBatch++; b < batches && !submitSignal.aborted; b = nextBatch++) {
          const first = b * o.batchSize;
          const size = Math.min(o.batchSize, total - first);
          const tasks = Array.from({ length: size }, (_, k) =>
            jsonStatsRequest(inputs[(first + k) % inputs.length], ctx.agents[(first + k) % ctx.agents.length].deviceIds[0]));
          const s = performance.now();
          try {
            const res = await ctx.clients.tasks.submitTasks({ tasks }, { signal: submitSignal, timeoutMs: o.callTimeoutMs });
            batchMs.push(performance.now() - s);
            if (res.results.length !== size) failures.add(`SubmitTasks batch ${b}: ${res.results.length} results for ${size} tasks`);
            for (const r of res.results) {
              if (r.accepted) accepted++;
              else failures.add(`SubmitTasks batch ${b} rejected a task: ${r.errorCode}: ${r.errorMessage}`);
            }
          } catch (err) {
            if (!submitSignal.aborted) failures.add(`SubmitTasks batch ${b} of ${size} tasks failed after ${fmtMs(performance.now() - s)} ms: ${errorText(err)}`);
          }
        }
      };
      const submitting = Promise.all(Array.from({ length: o.inFlight }, submitter)).then(() => {
        submitDone = true;
        submitEnd = performance.now();
        ctx.progress(`batch-throughput: ${fmtInt(accepted)} tasks submitted in ${fmtMs(submitEnd - t0)} ms`);
      });

      let done = 0, lastDone = -1, lastProgressAt = t0, lastReport = t0, completeAt = Number.NaN, maxQueued = 0, pollErrors = 0;
      let last: GetStatusResponse | undefined;
      while (!ctx.signal.aborted) {
        await sleep(o.pollMs);
        const now = performance.now();
        try {
          last = await ctx.clients.clusters.getStatus({}, { signal: ctx.signal, timeoutMs: 5_000 });
          pollErrors = 0;
        } catch (err) {
          if (ctx.signal.aborted) break;
          failures.add(`GetStatus poll failed: ${errorText(err)}`);
          if (++pollErrors >= POLL_GIVE_UP) break;
          continue;
        }
        done = Number(last.totalProcessed - base.totalProcessed);
        maxQueued = Math.max(maxQueued, Number(last.queuedTasks));
        if (done !== lastDone) {
          lastDone = done;
          lastProgressAt = now;
        }
        if (submitDone && done >= accepted) {
          completeAt = now;
          break;
        }
        if (now - lastProgressAt > o.stallMs) {
          failures.add(`stalled: no task reached a terminal state for ${o.stallMs} ms; ${fmtInt(done)} of ${fmtInt(submitDone ? accepted : total)} done, ${await diagnose(ctx, last)}`);
          break;
        }
        if (now - t0 > budgetMs) {
          failures.add(`time budget of ${budgetMs} ms used up with ${fmtInt(done)} of ${fmtInt(total)} done; ${await diagnose(ctx, last)}`);
          break;
        }
        if (now - lastReport > 2_000) {
          lastReport = now;
          ctx.progress(`batch-throughput: ${fmtInt(done)}/${fmtInt(total)} terminal, ${fmtInt(Number(last.queuedTasks))} queued, ${fmtInt(Number(last.activeTasks))} active`);
        }
      }
      stop.abort();
      await submitting;

      // Every accepted task must have succeeded.
      const end = await ctx.clients.clusters.getStatus({}, call());
      const succeeded = Number(end.succeeded - base.succeeded);
      if (accepted < total) failures.add(`${fmtInt(total - accepted)} of ${fmtInt(total)} tasks were not accepted`);
      if (succeeded < accepted) {
        const d = (k: "failed" | "cancelled" | "expired") => Number(end[k] - base[k]);
        failures.add(`${fmtInt(accepted - succeeded)} of ${fmtInt(accepted)} accepted tasks did not succeed: failed ${d("failed")}, cancelled ${d("cancelled")}, expired ${d("expired")}, still queued ${end.queuedTasks}, active ${end.activeTasks}`);
        const { tasks } = await ctx.clients.tasks.listTasks({ states: [TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED], pageSize: 5 }, call());
        for (const t of tasks) failures.add(describeFailure(t));
      }

      // Where a task's time went, from the newest tasks (the end of the run, when the queue drains).
      const { tasks: sample } = await ctx.clients.tasks.listTasks({ states: [TaskState.SUCCEEDED], pageSize: SAMPLE }, call());
      const timelines = sample.map((t) => timelineOf(t)).filter((t): t is Timeline => t !== undefined);
      const turnaround = ctx.slotsPerAgent === 1
        ? [{ metric: `Node turnaround: handler end → next dispatch to that node, while tasks wait (newest ${fmtInt(SAMPLE)} tasks)`, value: fmtSummary(summarize(nodeTurnarounds(timelines))) }]
        : [];

      const submitS = (submitEnd - t0) / 1000, completeS = (completeAt - t0) / 1000;
      return {
        rows: [
          { metric: "Submit rate (first submit → last SubmitTasks response)", value: `${fmtInt(accepted / submitS)} tasks/s (${fmtInt(accepted)} tasks in ${fmtMs(submitS * 1000)} ms)` },
          { metric: `SubmitTasks round trip (${o.batchSize} tasks, ${o.inFlight} in flight)`, value: fmtSummary(summarize(batchMs)) },
          { metric: "Completion rate (first submit → last terminal state)", value: Number.isFinite(completeS) ? `${fmtInt(accepted / completeS)} tasks/s (${fmtInt(accepted)} tasks in ${fmtMs(completeS * 1000)} ms)` : "did not complete" },
          { metric: "Largest queue seen (GetStatus queuedTasks)", value: fmtInt(maxQueued) },
          { metric: "Mean agent processing time (GetStatus, all tasks so far)", value: `${fmtMs(end.averageProcessingTime ? exactMs(end.averageProcessingTime) : Number.NaN)} ms` },
          { metric: `Where the time went, newest ${fmtInt(SAMPLE)} tasks (timestamps, whole ms)`, value: fmtTimelines(timelines) },
          ...turnaround,
        ],
        checks: [],
        failures: failures.list(),
        notes: [
          `${fmtInt(total)} tasks in ${batches} SubmitTasks calls of ${o.batchSize}, ${o.inFlight} in flight; LOCAL mode, devices round-robin; completion from GetStatus totalProcessed polled every ${o.pollMs} ms (so the completion time is late by up to one poll).`,
        ],
      };
    },
  };
}

/** A one-line picture of where tasks are stuck: counters, a few active tasks and every node. */
async function diagnose(ctx: ScenarioContext, status: GetStatusResponse | undefined): Promise<string> {
  const parts: string[] = [];
  if (status) parts.push(`queued ${status.queuedTasks}, active ${status.activeTasks}, succeeded ${status.succeeded}, failed ${status.failed}`);
  try {
    const opts = { signal: ctx.signal, timeoutMs: 5_000 };
    const { tasks } = await ctx.clients.tasks.listTasks({ states: [TaskState.DISPATCHED, TaskState.RUNNING], pageSize: 5 }, opts);
    const now = Date.now();
    for (const t of tasks) {
      const age = t.updatedAt ? `${fmtMs(now - timestampMs(t.updatedAt))} ms` : "?";
      parts.push(`task ${t.id} ${TaskState[t.state]} on ${t.assignedNode} attempt ${t.attempt} for ${age}`);
    }
    const { nodes } = await ctx.clients.clusters.listNodes({}, opts);
    for (const n of nodes) {
      parts.push(`node ${n.id} ${NodeState[n.state]} running ${n.runningTaskIds.length}/${n.maxConcurrentTasks} free cpu ${n.freeCpuMillis}m`);
    }
  } catch (err) {
    parts.push(`(diagnosis failed: ${errorText(err)})`);
  }
  return parts.join("; ");
}
