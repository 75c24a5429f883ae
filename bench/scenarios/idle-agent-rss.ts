// Coordinator memory per idle agent: the coordinator's RSS (VmRSS in /proc) alone, then with N idle agents connected
// — stand-ins opened from this process, each its own connection and stream, registering and heartbeating like
// agent/main.ts — each figure the median of several samples once things settle (the coordinator's GC cannot be
// forced from outside). edgeplane only.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { NodeState } from "../../gen/edgeplane/v1/types_pb.js";
import { fmtInt, fmtMs, Failures, summarize } from "../measure.js";
import type { Scenario, ScenarioResult } from "../scenario.js";
import { StandInAgent } from "../stand-in-agent.js";
import { errorText } from "../tasks.js";

export interface IdleAgentRssOptions {
  /** Idle agents connected (full / --quick). */
  agents: { full: number; quick: number };
  /** Wait before sampling, after start and after the agents registered, in ms (covers several heartbeat intervals). */
  settleMs: number;
  /** RSS samples per figure and the time between them, in ms. */
  samples: number;
  sampleEveryMs: number;
  /** Streams opened at once while connecting. */
  connectBatch: number;
  /** How long all of them may take to register, in ms. */
  registerTimeoutMs: number;
}

const CLUSTER = "bench-idle";

export function idleAgentRssScenario(o: IdleAgentRssOptions): Scenario {
  const id = "idle-agent-rss";
  return {
    id,
    title: "Coordinator RSS per idle agent",
    async run(ctx): Promise<ScenarioResult> {
      const n = ctx.quick ? o.agents.quick : o.agents.full;
      const failures = new Failures(id);
      // The coordinator alone: no real agents, so only the stand-ins' cost is added.
      const fleet = await ctx.startFleet({ agents: 0, workers: 1 }, id);
      const standIns: StandInAgent[] = [];
      try {
        const sample = async (): Promise<{ median: number; all: number[] }> => {
          const all: number[] = [];
          for (let i = 0; i < o.samples && !ctx.signal.aborted; i++) {
            all.push(fleet.coordinatorRssKb());
            await sleep(o.sampleEveryMs);
          }
          return { median: summarize(all).p50, all };
        };
        // Enrolment is once per node, not what an idle agent costs: done before the baseline.
        const plans = Array.from({ length: n }, (_, k) => ({ nodeId: `idle-${k + 1}`, clusterId: CLUSTER, deviceIds: [`idle-sensor-${k + 1}`] }));
        await fleet.enrolStandIns(plans);
        await sleep(o.settleMs);
        const before = await sample();
        if (!Number.isFinite(before.median)) throw new Error("cannot read the coordinator's VmRSS from /proc (not Linux?)");

        const t0 = performance.now();
        for (let i = 0; i < n && !ctx.signal.aborted; i += o.connectBatch) {
          const batch: StandInAgent[] = [];
          for (let k = i; k < Math.min(n, i + o.connectBatch); k++) {
            batch.push(new StandInAgent(fleet, plans[k]));
          }
          standIns.push(...batch);
          const deadline = sleep(o.registerTimeoutMs, "timeout", { ref: false });
          const r = await Promise.race([Promise.allSettled(batch.map((a) => a.registered)), deadline]);
          if (r === "timeout") throw new Error(`stand-in agents ${i + 1}–${i + batch.length} did not register within ${o.registerTimeoutMs} ms`);
        }
        const connectMs = performance.now() - t0;
        const failed = standIns.filter((a) => a.state !== "registered");
        for (const a of failed.slice(0, 5)) failures.add(a.problem ?? "a stand-in agent did not register");
        if (failed.length > 0) failures.add(`${failed.length} of ${n} stand-in agents are not registered`);
        ctx.progress(`${id}: ${fmtInt(n - failed.length)} idle agents registered in ${fmtMs(connectMs)} ms; settling`);

        await sleep(o.settleMs);
        const after = await sample();
        // Still all there, and READY (heartbeats arriving), after the samples.
        const { nodes } = await fleet.clients.clusters.listNodes({ clusterId: CLUSTER }, { signal: ctx.signal, timeoutMs: 10_000 });
        const ready = nodes.filter((x) => x.state === NodeState.READY).length;
        if (ready < n) failures.add(`only ${ready} of ${n} idle agents are READY in ListNodes after the samples`);
        for (const a of standIns) if (a.problem) failures.add(a.problem);
        const beats = standIns.reduce((s, a) => s + a.heartbeats, 0);

        const perAgentKb = (after.median - before.median) / n;
        const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
        return {
          rows: [
            { metric: "coordinator RSS, no agents (median)", value: `${mb(before.median)} (samples ${before.all.map((x) => fmtInt(x)).join(", ")} KB)` },
            {
              metric: `coordinator RSS, ${fmtInt(n)} idle agents (median)`,
              value: `${mb(after.median)} (samples ${after.all.map((x) => fmtInt(x)).join(", ")} KB)`,
            },
            { metric: "RSS per idle agent", value: `${perAgentKb.toFixed(1)} KB` },
            {
              metric: "stand-ins registered / READY at the end",
              value: `${fmtInt(n - failed.length)} / ${fmtInt(ready)} (in ${fmtMs(connectMs)} ms; ${fmtInt(beats)} heartbeats sent)`,
            },
          ],
          checks: [{ target: "idle-agent-rss", measure: `(RSS with ${fmtInt(n)} idle agents − RSS without) ÷ ${fmtInt(n)}`, value: perAgentKb }],
          failures: failures.list(),
          notes: [
            `${fmtInt(n)} stand-in agents in this benchmark process, each on its own HTTP/2 connection with one AgentService.Connect stream: Register as agent/main.ts sends it (cluster ${CLUSTER}, one device, the built-in handlers, this machine's CPU and memory), then a heartbeat on the interval the coordinator asked for, one outstanding at a time. Each RSS figure is the median of ${o.samples} samples ${o.sampleEveryMs} ms apart after ${fmtInt(o.settleMs)} ms of settling; the coordinator had no other agents and no tasks.`,
          ],
        };
      } catch (err) {
        failures.add(errorText(err));
        return { rows: [], checks: [], failures: failures.list(), notes: [] };
      } finally {
        // The fleet first: its logs are read before it stops, and stand-ins leaving would log a warning each.
        await ctx.stopFleet(fleet);
        await Promise.all(standIns.map((a) => a.close()));
      }
    },
  };
}
