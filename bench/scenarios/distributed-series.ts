// One big `stats` task over a packed series (e.g. 1,000,000 values): LOCAL on one node against DISTRIBUTED over 2 and
// over 4 agents (capped with the edgeplane.io/max-shards label), runs interleaved so machine noise hits every variant.
// Reports wall time submit → result, time inside handlers (the slowest shard: shards run in parallel) and the
// coordination overhead (wall − handler time), which is what the 200 ms distributed-coordination budget is about.
import { performance } from "node:perf_hooks";
import { ProcessingMode, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import { fmtInt, fmtMs, fmtSummary, Failures, summarize } from "../measure.js";
import type { BenchFleet } from "../fleet.js";
import type { ResultRow, Scenario, ScenarioContext, ScenarioResult, TargetCheck } from "../scenario.js";
import { describeFailure, errorText, exactMs, outputOf, processingMs, readings, seriesStatsRequest, watchUntilTerminal } from "../tasks.js";

export interface DistributedSeriesOptions {
  values: number;
  /** Shard counts to compare with LOCAL, e.g. [2, 4]; a count above the fleet's agents is skipped. */
  shards: number[];
  runs: { full: number; quick: number };
  warmup: { full: number; quick: number };
  callTimeoutMs: number;
}

interface Variant {
  label: string;
  mode: ProcessingMode;
  shards: number;
}
interface Samples {
  wall: number[];
  handler: number[];
  overhead: number[];
  merge: number[];
  nodes: Set<string>;
}

/** Time inside handlers on the critical path: LOCAL's attempt, or the slowest shard of a split task. */
function handlerMs(t: Task): number {
  if (t.shards.length === 0) return processingMs(t) ?? Number.NaN;
  return Math.max(...t.shards.map((s) => (s.processingTime ? exactMs(s.processingTime) : 0)));
}

export function distributedSeriesScenario(o: DistributedSeriesOptions): Scenario {
  const id = "distributed-series";
  return {
    id,
    title: `LOCAL vs DISTRIBUTED: ${fmtInt(o.values)}-value stats, packed series`,
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
    const deviceId = fleet.agents[0].deviceIds[0];
    const values = readings(o.values);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variants: Variant[] = [
      { label: "LOCAL, 1 node", mode: ProcessingMode.LOCAL, shards: 1 },
      ...o.shards.filter((k) => k <= fleet.agents.length).map((k) => ({ label: `DISTRIBUTED, ${k} agents`, mode: ProcessingMode.DISTRIBUTED, shards: k })),
    ];
    const skipped = o.shards.filter((k) => k > fleet.agents.length);
    const samples = new Map<string, Samples>(variants.map((v) => [v.label, { wall: [], handler: [], overhead: [], merge: [], nodes: new Set() }]));

    for (let i = 0; i < warmup + runs && !ctx.signal.aborted; i++) {
      for (const v of variants) {
        try {
          const req = seriesStatsRequest(values, v.mode, deviceId);
          if (v.mode === ProcessingMode.DISTRIBUTED) req.task!.labels["edgeplane.io/max-shards"] = String(v.shards);
          const t0 = performance.now();
          const { taskId } = await fleet.clients.tasks.submitTask(req, { signal: ctx.signal, timeoutMs: o.callTimeoutMs });
          const { task, at } = await watchUntilTerminal(fleet.clients, taskId, ctx.signal, o.callTimeoutMs);
          check(task, o.values, mean, v.shards);
          ctx.progress(`${id}: ${v.label} run ${i + 1}/${warmup + runs} ${fmtMs(at - t0)} ms`);
          if (i < warmup) continue;
          const s = samples.get(v.label)!;
          const h = handlerMs(task);
          s.wall.push(at - t0);
          s.handler.push(h);
          s.overhead.push(at - t0 - h);
          s.merge.push(task.mergeTime ? exactMs(task.mergeTime) : 0);
          for (const sh of task.shards) s.nodes.add(sh.nodeId);
          if (task.shards.length === 0) s.nodes.add(task.assignedNode);
        } catch (err) {
          if (ctx.signal.aborted) break;
          failures.add(`${v.label}: ${errorText(err)}`);
        }
      }
    }

    const rows: ResultRow[] = [];
    const checks: TargetCheck[] = [];
    for (const v of variants) {
      const s = samples.get(v.label)!;
      const w = summarize(s.wall),
        ov = summarize(s.overhead);
      if (!ctx.signal.aborted && w.n < runs) failures.add(`${v.label}: measured ${w.n} of ${runs} runs`);
      rows.push(
        { metric: `${v.label}: submit → result wall time`, value: fmtSummary(w) },
        { metric: `${v.label}: time inside handlers (slowest shard)`, value: fmtSummary(summarize(s.handler)) },
        { metric: `${v.label}: coordination overhead (wall − handlers)`, value: fmtSummary(ov) },
      );
      if (v.mode === ProcessingMode.DISTRIBUTED) {
        rows.push({ metric: `${v.label}: merge in the coordinator`, value: fmtSummary(summarize(s.merge)) });
        checks.push({
          target: "distributed-coordination",
          measure: `DISTRIBUTED over ${v.shards} agents, ${fmtInt(o.values)}-value stats, coordination overhead (wall − slowest shard), median`,
          value: ov.p50,
        });
      }
    }
    return {
      rows,
      checks,
      failures: failures.list(),
      notes: [
        `${runs} measured runs of each variant after ${warmup} warm-up, interleaved; series of ${fmtInt(o.values)} doubles for device ${deviceId}.`,
        `Nodes used over all runs (each DISTRIBUTED run uses as many nodes as it has shards; which ones varies with their free capacity): ${variants.map((v) => `${v.label}: ${[...samples.get(v.label)!.nodes].sort().join(", ")}`).join("; ")}.`,
        "Coordination overhead includes sending the 8 MB series to the coordinator and storing it, slicing it, storing each shard (its points as a reference to the parent's) and sending it to its agent, the shards' results back, the merge, and WatchTask's updates (which leave the series out).",
        ...(skipped.length > 0 ? [`Skipped DISTRIBUTED over ${skipped.join(", ")} agents: the fleet has ${fleet.agents.length}.`] : []),
      ],
    };
  }
}

/** Throws unless the task succeeded with the right count and mean, split as asked. */
function check(task: Task, count: number, mean: number, shards: number): void {
  if (task.state !== TaskState.SUCCEEDED) throw new Error(describeFailure(task));
  const out = outputOf(task);
  if (out?.count !== count) throw new Error(`task ${task.id} output count ${String(out?.count)}, expected ${count}`);
  if (typeof out.mean !== "number" || Math.abs(out.mean - mean) > 1e-9 * Math.max(1, Math.abs(mean))) {
    throw new Error(`task ${task.id} output mean ${String(out.mean)}, expected ${mean}`);
  }
  if (shards > 1 && task.shards.length !== shards) throw new Error(`task ${task.id} ran as ${task.shards.length} shard(s), expected ${shards}`);
}
