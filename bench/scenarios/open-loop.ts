// Open loop: tasks offered at a fixed rate (2,000/s) for a fixed time on a schedule that never waits for the system
// (each arrival its own submit call, sent at its intended time whatever earlier calls are doing), latency measured
// from the intended send time so a lagging client or system cannot hide waiting (no coordinated omission); p50 /
// p99 / p99.9, the completion rate achieved and whether the system kept up (open-loop-rule.ts).
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { alternateRuns, combineRuns, type Measured } from "../compare.js";
import { fmtInt, fmtMs, fmtRate, fmtSummary, Failures, summarize } from "../measure.js";
import { DEFAULT_KEPT_UP_RULE, intendedAt, judgeOpenLoop } from "../open-loop-rule.js";
import type { Scenario, ScenarioResult, TargetCheck } from "../scenario.js";
import { errorText } from "../tasks.js";

export interface OpenLoopOptions {
  agents: number;
  slots: number;
  /** Arrivals per second offered. */
  ratePerS: number;
  /** How long arrivals are offered, in s (full / --quick). */
  durationS: { full: number; quick: number };
  /** Client connections the arrivals are spread over (round-robin). */
  lanes: number;
  /** After the last arrival, how long to wait for the backlog to clear before calling it, in ms (full / --quick). */
  drainTimeoutMs: { full: number; quick: number };
  /** Stop offering once this many seconds of arrivals are outstanding (the system is that far behind). */
  maxBehindS: number;
  /** No completion for this long while tasks are outstanding is a stall (a failure), in ms. */
  stallMs: number;
  callTimeoutMs: number;
}

export function openLoopScenario(o: OpenLoopOptions): Scenario {
  const id = "open-loop";
  return {
    id,
    comparesBullmq: true,
    title: `Open loop: ${fmtInt(o.ratePerS)} tasks/s offered, ${o.agents} agents × ${o.slots}`,
    async run(ctx): Promise<ScenarioResult> {
      const durationS = ctx.quick ? o.durationS.quick : o.durationS.full;
      const drainTimeoutMs = ctx.quick ? o.drainTimeoutMs.quick : o.drainTimeoutMs.full;
      const arrivals = Math.round(o.ratePerS * durationS);
      const runs = await alternateRuns(
        ctx,
        { id, agents: o.agents, slots: o.slots, lanes: o.lanes, callTimeoutMs: o.callTimeoutMs },
        async (sys, log, round): Promise<Measured> => {
          const failures = new Failures(`${id} r${round}`);
          const stop = new AbortController();
          const signal = AbortSignal.any([ctx.signal, stop.signal]);
          // Every open call listens on it: thousands at once are expected, not a leak.
          setMaxListeners(0, signal);
          const sentAt = new Float64Array(arrivals).fill(Number.NaN),
            rtt = new Float64Array(arrivals).fill(Number.NaN);
          const ids: (string | undefined)[] = new Array(arrivals);
          let callsOpen = 0,
            accepted = 0,
            rejected = 0,
            maxOutstanding = 0,
            sent = 0;
          const t0 = performance.now() + 20;
          const fire = (k: number): void => {
            sentAt[k] = performance.now();
            callsOpen++;
            sys
              .submitOne({ input: k, priority: "normal", device: k }, k % o.lanes, signal)
              .then(
                (taskId) => {
                  ids[k] = taskId;
                  rtt[k] = performance.now() - sentAt[k];
                  accepted++;
                },
                (err: unknown) => {
                  if (signal.aborted) return;
                  rejected++;
                  failures.add(`arrival ${k}: ${errorText(err)}`);
                },
              )
              .finally(() => callsOpen--);
          };

          // The schedule: every arrival whose time has come goes out now; then sleep until the next one is due. The
          // timer's granularity (~1 ms) and any lag of this process delay sends; that delay is part of the latency.
          let stoppedEarly = false;
          while (sent < arrivals && !ctx.signal.aborted) {
            const now = performance.now();
            while (sent < arrivals && intendedAt(t0, o.ratePerS, sent) <= now) fire(sent++);
            const outstanding = sent - log.size;
            if (outstanding > maxOutstanding) maxOutstanding = outstanding;
            if (outstanding > o.ratePerS * o.maxBehindS) {
              stoppedEarly = true;
              ctx.progress(
                `${id}: ${fmtInt(outstanding)} outstanding (over ${o.maxBehindS} s of arrivals): stopping the schedule at ${fmtInt(sent)} of ${fmtInt(arrivals)}`,
              );
              break;
            }
            if (sent >= arrivals) break;
            await sleep(Math.max(0, intendedAt(t0, o.ratePerS, sent) - performance.now()));
          }
          const lastIntended = intendedAt(t0, o.ratePerS, Math.max(0, sent - 1));

          // Drain: wait for every call to return and every accepted task to come back, up to the drain timeout.
          const drainEnd = performance.now() + drainTimeoutMs;
          let lastSize = log.size,
            lastChange = performance.now(),
            timedOut = false;
          while (!ctx.signal.aborted) {
            // Only this run's tasks reach the log (probes are left out), so its size counts accepted tasks back.
            if (callsOpen === 0 && log.size >= accepted) break;
            const now = performance.now();
            if (log.size !== lastSize) {
              lastSize = log.size;
              lastChange = now;
            }
            if (sys.streamProblem()) {
              failures.add(`${sys.streamProblem()}`);
              break;
            }
            if (now - lastChange > o.stallMs) {
              failures.add(`stalled: no completion for ${fmtInt(o.stallMs)} ms with ${fmtInt(sent - log.size)} outstanding; ${await sys.diagnose()}`);
              break;
            }
            if (now > drainEnd) {
              timedOut = true;
              break;
            }
            await sleep(10);
          }
          const callsLeft = callsOpen;
          stop.abort();

          // Latency of every sent arrival from its intended time; one never seen back counts as infinitely late.
          const latency: number[] = [],
            lag: number[] = [],
            calls: number[] = [];
          let succeeded = 0,
            completed = 0,
            notBack = 0;
          for (let k = 0; k < sent; k++) {
            lag.push(sentAt[k] - intendedAt(t0, o.ratePerS, k));
            if (Number.isFinite(rtt[k])) calls.push(rtt[k]);
            const tid = ids[k];
            if (tid === undefined) continue;
            const c = log.byId.get(tid);
            if (!c) {
              notBack++;
              latency.push(Number.POSITIVE_INFINITY);
              continue;
            }
            completed++;
            if (!c.ok) failures.add(c.problem ?? `task ${tid} did not succeed`);
            else succeeded++;
            latency.push(c.at - intendedAt(t0, o.ratePerS, k));
          }
          const v = judgeOpenLoop({
            offeredPerS: o.ratePerS,
            arrivals,
            sent,
            accepted,
            succeeded,
            completed,
            firstIntendedAt: t0,
            lastIntendedAt: lastIntended,
            lastCompletionAt: log.lastAt,
          });
          const lat = summarize(latency);
          const checks: TargetCheck[] =
            sys.system !== "edgeplane"
              ? []
              : [
                  { target: "open-loop-kept-up", measure: `${fmtInt(o.ratePerS)}/s offered for ${durationS} s`, value: v.keptUp },
                  { target: "open-loop-p99", measure: "intended send → terminal seen, p99", value: lat.p99 },
                ];
          const reasons = [
            ...v.reasons,
            ...(callsLeft > 0
              ? [
                  `${fmtInt(callsLeft)} submit calls had not returned when the run ended (of the ${fmtInt(sent - accepted)} not accepted; ${fmtInt(rejected)} rejected)`,
                ]
              : []),
            ...(timedOut ? [`${fmtInt(notBack)} accepted tasks still outstanding ${fmtInt(drainTimeoutMs)} ms after the last arrival`] : []),
          ];
          return {
            rows: [
              {
                metric: "intended send → terminal seen",
                value: `${fmtSummary(lat, { p999: true })}${notBack > 0 ? `; ${fmtInt(notBack)} never came back (counted as infinitely late)` : ""}`,
              },
              {
                metric: "completion rate (first intended arrival → last completion)",
                value: `${fmtRate(v.completionRate)} (${Number.isFinite(v.completionRate) ? ((100 * v.completionRate) / o.ratePerS).toFixed(1) : "n/a"}% of offered)`,
              },
              {
                metric: "backlog (sent, not yet terminal)",
                value: `at most ${fmtInt(maxOutstanding)}; cleared ${Number.isFinite(v.drainMs) ? `${fmtMs(v.drainMs)} ms` : "never"} after the last intended arrival`,
              },
              {
                metric: "kept up",
                value: v.keptUp
                  ? `yes (rate ≥ ${DEFAULT_KEPT_UP_RULE.rateShare * 100}% of offered, backlog cleared within ${fmtInt(DEFAULT_KEPT_UP_RULE.drainMs)} ms)`
                  : `no: ${reasons.join("; ")}`,
              },
              { metric: "client lag (actual send − intended send)", value: fmtSummary(summarize(lag)) },
              { metric: "submit call round trip under load", value: fmtSummary(summarize(calls), { p999: true }) },
              ...(stoppedEarly
                ? [
                    {
                      metric: "schedule",
                      value: `stopped after ${fmtInt(sent)} of ${fmtInt(arrivals)} arrivals: more than ${o.maxBehindS} s of arrivals outstanding`,
                    },
                  ]
                : []),
            ],
            checks,
            failures: failures.list(),
            notes: [],
            headline: lat.p99,
          };
        },
      );
      return combineRuns(runs, { what: "intended send → terminal p99", better: "lower" }, [
        `${fmtInt(arrivals)} arrivals per run at ${fmtInt(o.ratePerS)}/s (${durationS} s) on a fixed schedule (arrival k due at start + k/rate), each its own submit call (SubmitTask / Queue.add) on one of ${o.lanes} connections round-robin, never waiting for earlier calls or completions. Latency counts from the intended send time, so the client's own lag (reported) and any queueing before the call count too (no coordinated omission). Kept up = every arrival sent, accepted and succeeded, completion rate ≥ ${DEFAULT_KEPT_UP_RULE.rateShare * 100}% of offered and the backlog back to 0 within ${fmtInt(DEFAULT_KEPT_UP_RULE.drainMs)} ms of the last intended arrival. The schedule stops once ${o.maxBehindS} s of arrivals are outstanding; the drain then waits at most ${fmtInt(drainTimeoutMs)} ms.`,
      ]);
    },
  };
}
