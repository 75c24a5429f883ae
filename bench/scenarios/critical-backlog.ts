// CRITICAL behind a backlog: queue 20,000 LOW tasks (batches from concurrent submitters), then, while they drain,
// submit CRITICAL tasks one by one on a fixed spacing; how long each CRITICAL task waits to be handed to a worker
// (client send time → the system's own stamp of its start on a worker) and until its terminal state is seen.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { alternateRuns, combineRuns, type Measured } from "../compare.js";
import { fmtInt, fmtMs, fmtRate, fmtSummary, Failures, summarize } from "../measure.js";
import type { Scenario, ScenarioResult, TargetCheck } from "../scenario.js";
import { submitInBatches } from "../submit.js";
import { errorText } from "../tasks.js";

export interface CriticalBacklogOptions {
  agents: number;
  slots: number;
  /** LOW tasks queued first (full / --quick). */
  low: { full: number; quick: number };
  /** CRITICAL tasks then submitted one by one (full / --quick). */
  critical: { full: number; quick: number };
  /** Time between CRITICAL submissions, in ms (a fixed schedule: a slow call does not delay the next one). */
  spacingMs: number;
  /** Submitters and batch size for the LOW backlog. */
  submitters: number;
  batchSize: number;
  /** How long each CRITICAL task may take to come back, in ms. */
  waitMs: number;
  callTimeoutMs: number;
}

/** A CRITICAL task submitted when fewer LOW tasks than this were outstanding did not really wait behind a backlog. */
const THIN_BACKLOG = 1_000;

export function criticalBacklogScenario(o: CriticalBacklogOptions): Scenario {
  const id = "critical-backlog";
  return {
    id,
    comparesBullmq: true,
    title: `CRITICAL behind a LOW backlog, ${o.agents} agents × ${o.slots}`,
    async run(ctx): Promise<ScenarioResult> {
      const lowTotal = ctx.quick ? o.low.quick : o.low.full;
      const critTotal = ctx.quick ? o.critical.quick : o.critical.full;
      const runs = await alternateRuns(
        ctx,
        { id, agents: o.agents, slots: o.slots, lanes: o.submitters, callTimeoutMs: o.callTimeoutMs },
        async (sys, log, round): Promise<Measured> => {
          const failures = new Failures(`${id} r${round}`);
          const low = await submitInBatches(
            sys,
            {
              total: lowTotal,
              batchSize: o.batchSize,
              submitters: o.submitters,
              order: (i) => ({ input: i, priority: "low", device: i }),
            },
            ctx.signal,
            failures,
          );
          if (low.accepted.size < lowTotal) failures.add(`${fmtInt(lowTotal - low.accepted.size)} of ${fmtInt(lowTotal)} LOW tasks were not accepted`);
          ctx.progress(
            `${id}: ${fmtInt(low.accepted.size)} LOW tasks queued in ${fmtMs(low.endAt - low.startAt)} ms; ${fmtInt(low.accepted.size - log.size)} outstanding`,
          );

          // CRITICAL tasks on a fixed schedule, each its own submit call, not waiting for earlier ones.
          const crit: { sendEpoch: number; sendAt: number; backlog: number; id?: string; rtt?: number }[] = [];
          const calls: Promise<void>[] = [];
          const epochOffset = wallClockOffset();
          const start = performance.now();
          for (let j = 0; j < critTotal && !ctx.signal.aborted; j++) {
            const due = start + j * o.spacingMs;
            const wait = due - performance.now();
            if (wait > 0) await sleep(wait);
            const critBack = crit.filter((c) => c.id !== undefined && log.byId.has(c.id)).length;
            // The send time on this machine's wall clock (what the systems stamp dispatches with), to the microsecond.
            const sendAt = performance.now();
            const entry: (typeof crit)[number] = { sendEpoch: epochOffset + sendAt, sendAt, backlog: low.accepted.size - (log.size - critBack) };
            crit.push(entry);
            calls.push(
              sys.submitOne({ input: j, priority: "critical", device: j }, j % o.submitters, ctx.signal).then(
                (tid) => {
                  entry.id = tid;
                  entry.rtt = performance.now() - sendAt;
                },
                (err: unknown) => failures.add(`CRITICAL ${j}: ${errorText(err)}`),
              ),
            );
          }
          await Promise.all(calls);
          const waitMs: number[] = [],
            terminalMs: number[] = [];
          const ids = crit.flatMap((c) => (c.id ? [c.id] : []));
          await Promise.all(
            crit.map(async (c) => {
              if (!c.id) return;
              try {
                const done = await log.waitFor(c.id, o.waitMs, ctx.signal);
                if (!done.ok) failures.add(done.problem ?? `CRITICAL task ${c.id} did not succeed`);
                else terminalMs.push(done.at - c.sendAt);
              } catch (err) {
                if (!ctx.signal.aborted) failures.add(errorText(err));
              }
            }),
          );
          const started = await sys.startTimes(ids);
          const stages = (await sys.stageTimes?.(ids)) ?? new Map<string, { received: number; dispatched: number }>();
          // Where the system stamps its own steps (edgeplane), the wait in three parts: before its handler ran (the
          // client, the network, a busy or paused event loop), placement, and the way to the agent's worker.
          const toReceivedMs: number[] = [],
            toDispatchedMs: number[] = [],
            toStartedMs: number[] = [];
          for (const c of crit) {
            const at = c.id ? started.get(c.id) : undefined;
            if (at !== undefined) waitMs.push(at - c.sendEpoch);
            else if (c.id && log.byId.get(c.id)?.ok) failures.add(`CRITICAL task ${c.id} has no start time`);
            const st = c.id ? stages.get(c.id) : undefined;
            if (st !== undefined && at !== undefined) {
              toReceivedMs.push(st.received - c.sendEpoch);
              toDispatchedMs.push(st.dispatched - st.received);
              toStartedMs.push(at - st.dispatched);
            }
          }
          let lowFailed = 0;
          for (const [tid, c] of log.byId) if (low.accepted.has(tid) && !c.ok) lowFailed++;
          if (lowFailed > 0) failures.add(`${fmtInt(lowFailed)} LOW tasks did not succeed`);

          const backlog = summarize(crit.map((c) => c.backlog));
          const thin = crit.filter((c) => c.backlog < THIN_BACKLOG).length;
          const wait = summarize(waitMs);
          const checks: TargetCheck[] =
            sys.system !== "edgeplane" ? [] : [{ target: "critical-wait-p99", measure: "CRITICAL submit → started on a worker, p99", value: wait.p99 }];
          return {
            rows: [
              { metric: "CRITICAL submit → started on a worker", value: fmtSummary(wait) },
              ...(toReceivedMs.length === 0
                ? []
                : [
                    { metric: "CRITICAL submit → received (the coordinator's createdAt)", value: fmtSummary(summarize(toReceivedMs)) },
                    { metric: "CRITICAL received → dispatched (placed)", value: fmtSummary(summarize(toDispatchedMs)) },
                    { metric: "CRITICAL dispatched → started (the agent's handler start)", value: fmtSummary(summarize(toStartedMs)) },
                  ]),
              { metric: "CRITICAL submit → terminal seen", value: fmtSummary(summarize(terminalMs)) },
              { metric: "CRITICAL submit call round trip", value: fmtSummary(summarize(crit.flatMap((c) => (c.rtt === undefined ? [] : [c.rtt])))) },
              {
                metric: "LOW tasks outstanding when each CRITICAL was sent",
                value: `median ${fmtInt(backlog.p50)} · min ${fmtInt(backlog.min)} · max ${fmtInt(backlog.max)}${thin > 0 ? `; ${thin} of ${crit.length} sent with fewer than ${fmtInt(THIN_BACKLOG)} outstanding` : ""}`,
              },
              {
                metric: "LOW backlog submitted",
                value: `${fmtInt(low.accepted.size)} tasks at ${fmtRate(low.accepted.size / ((low.endAt - low.startAt) / 1000))}`,
              },
            ],
            checks,
            failures: failures.list(),
            notes: [],
            headline: wait.p99,
          };
        },
      );
      return combineRuns(runs, { what: "CRITICAL submit → started p99", better: "lower" }, [
        `${fmtInt(lowTotal)} LOW tasks per run queued from ${o.submitters} submitters in batches of ${o.batchSize}; then ${critTotal} CRITICAL tasks, one submit call each, every ${o.spacingMs} ms on a fixed schedule, while the backlog drains (the run ends when the CRITICAL tasks are done; the rest of the backlog goes with the processes). "Started" is the system's own timestamp of the task's start on a worker: edgeplane's first attempt startedAt (the agent's clock, as the handler starts), BullMQ's processedOn (the worker's clock, as it takes the job); until 2026-12-03 edgeplane's side was the attempt's dispatchedAt (the coordinator placing it), which left out the way to the agent. The send time is performance.now() in the client mapped onto the wall clock (calibrated at the start of the CRITICAL phase on a Date.now() tick). All are this machine's wall clock; the systems' timestamps are whole milliseconds (truncated), so a wait can read up to 1 ms short. edgeplane's wait is also split at its own stamps: "submit → received" (its createdAt, stamped when the coordinator's handler took the request) is the client, the network and the coordinator's event loop before it got to the request; "received → dispatched" is placement; "dispatched → started" the dispatch's way to the agent and its worker (BullMQ's job timestamp is the client's, so it has no such split). BullMQ priorities: CRITICAL 1, LOW 10.`,
      ]);
    },
  };
}

/**
 * Date.now() − performance.now(), read just after Date.now() ticks to a new millisecond, so that offset +
 * performance.now() is the wall clock to well under a millisecond for the next seconds (performance.timeOrigin
 * drifts from the wall clock over a long run as NTP adjusts it).
 */
function wallClockOffset(): number {
  const first = Date.now();
  let now = first;
  const give = performance.now() + 5;
  while (now === first && performance.now() < give) now = Date.now();
  return now - performance.now();
}
