// Runs a measurement against each system in alternating rounds (edgeplane, BullMQ, [BullMQ fsync], edgeplane, …),
// each on fresh processes, and folds the runs into one scenario result with the edgeplane ÷ BullMQ ratio per round.
// Also the completion log every run's completions land in. Owns opening and closing systems; measures nothing itself.
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { fmtMs } from "./measure.js";
import { machineBusySeconds } from "./proc.js";
import type { ResultRow, ScenarioContext, ScenarioResult, TargetCheck, TargetId } from "./scenario.js";
import { bullmqSystems, openBullmq } from "./systems/bullmq.js";
import { openEdgeplane } from "./systems/edgeplane.js";
import type { Completion, SystemId, SystemRun, SystemRunOptions } from "./systems/system.js";
import { errorText } from "./tasks.js";

/** Every completion a run's stream delivered, by task id, with waiters for single tasks. */
export class CompletionLog {
  readonly byId = new Map<string, Completion>();
  ok = 0;
  /** performance.now() of the newest completion. */
  lastAt = Number.NaN;
  /** Completions of an id seen more than once (a stream must report each task's terminal state once). */
  duplicates = 0;
  private readonly waiters = new Map<string, (c: Completion) => void>();

  readonly add = (c: Completion): void => {
    if (this.byId.has(c.id)) {
      this.duplicates++;
      return;
    }
    this.byId.set(c.id, c);
    if (c.ok) this.ok++;
    this.lastAt = c.at;
    const w = this.waiters.get(c.id);
    if (w) {
      this.waiters.delete(c.id);
      w(c);
    }
  };

  get size(): number {
    return this.byId.size;
  }

  /** The task's completion, when it arrives (at once if it already has); rejects after timeoutMs or on abort. */
  waitFor(id: string, timeoutMs: number, signal: AbortSignal): Promise<Completion> {
    const done = this.byId.get(id);
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => {
      const onAbort = () => finish(() => reject(signal.reason));
      const timer = setTimeout(() => finish(() => reject(new Error(`task ${id} not seen terminal within ${timeoutMs} ms`))), timeoutMs);
      const finish = (f: () => void) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.waiters.delete(id);
        f();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.set(id, (c) => finish(() => resolve(c)));
    });
  }
}

/** What one run measured. `headline` is the figure compared across systems (tasks/s, or ms). */
export interface Measured {
  rows: ResultRow[];
  checks: TargetCheck[];
  failures: string[];
  notes: string[];
  headline: number;
}

export interface ComparedRun extends Measured {
  round: number;
  system: SystemId;
  title: string;
}

export interface AlternateOptions {
  /** Scenario id, for messages and fleet labels. */
  id: string;
  /** Agents (BullMQ: worker processes) and slots per agent (BullMQ: concurrency per worker). */
  agents: number;
  slots: number;
  /** Client connections for submissions. */
  lanes: number;
  callTimeoutMs: number;
  /** Run BullMQ too (default: whenever the runner prepared it). */
  bullmq?: boolean;
}

const SYSTEM_SHORT: Record<SystemId, string> = {
  edgeplane: "edgeplane",
  "edgeplane-insecure": "edgeplane --insecure",
  bullmq: "BullMQ",
  "bullmq-fsync": "BullMQ fsync",
};

/**
 * For each round, for each system: opens a fresh run of it (its completions into a new CompletionLog), calls
 * `measure`, then cross-checks the system's own counters, reads where the time went and the CPU used, and closes
 * it. An error in one run becomes that run's failure; the other runs go on.
 */
export async function alternateRuns(
  ctx: ScenarioContext,
  o: AlternateOptions,
  measure: (sys: SystemRun, log: CompletionLog, round: number) => Promise<Measured>,
): Promise<ComparedRun[]> {
  const systems: SystemId[] = [
    "edgeplane",
    ...(ctx.securityCost ? ["edgeplane-insecure" as const] : []),
    ...(o.bullmq === false ? [] : bullmqSystems(ctx.bullmq)),
  ];
  const out: ComparedRun[] = [];
  for (let round = 1; round <= ctx.rounds; round++) {
    for (const system of systems) {
      if (ctx.signal.aborted) return out;
      const tag = `r${round} · ${SYSTEM_SHORT[system]}`;
      ctx.progress(`${o.id}: ${tag}`);
      const log = new CompletionLog();
      const opts: SystemRunOptions = {
        label: `${o.id} r${round}`,
        agents: o.agents,
        slots: o.slots,
        lanes: o.lanes,
        onCompletion: log.add,
        callTimeoutMs: o.callTimeoutMs,
      };
      let sys: SystemRun | undefined;
      let m: Measured = { rows: [], checks: [], failures: [], notes: [], headline: Number.NaN };
      let title: string = SYSTEM_SHORT[system];
      try {
        sys =
          system === "edgeplane" || system === "edgeplane-insecure"
            ? await openEdgeplane(ctx, opts, system === "edgeplane-insecure")
            : await openBullmq(ctx, system, opts);
        title = sys.title;
        // Every reading starts once the system is up: its start-up (spawning, TLS, enrolment, connecting) is not the
        // run's, and counting it on one side only showed as "other processes".
        const cpu0 = sys.cpuSeconds(),
          busy0 = machineBusySeconds(),
          client0 = process.cpuUsage(),
          t0 = performance.now();
        m = await measure(sys, log, round);
        m.failures.push(...(await sys.verify(log.ok)));
        if (log.duplicates > 0) m.failures.push(`the completion stream reported ${log.duplicates} task(s) terminal more than once`);
        m.rows.push(...(await sys.insights()));
        m.rows.push({ metric: "CPU used", value: cpuLine(cpu0, sys.cpuSeconds(), process.cpuUsage(client0), busy0, performance.now() - t0) });
        if (round === 1) m.notes.push(...sys.notes());
      } catch (err) {
        m.failures.push(errorText(err));
      } finally {
        try {
          await sys?.close();
        } catch (err) {
          // a run that cannot be closed leaves processes or data behind: say so
          m.failures.push(`closing ${title}: ${errorText(err)}`);
        }
      }
      out.push({
        ...m,
        round,
        system,
        title,
        rows: m.rows.map((r) => ({ metric: `${tag}: ${r.metric}`, value: r.value })),
        failures: m.failures.map((f) => `${o.id} ${tag}: ${f}`),
        checks: m.checks.map((c) => ({ ...c, measure: `${c.measure}, ${tag}` })),
      });
    }
  }
  return out;
}

/** "coordinator 3.1 s, agents 5.2 s, client 0.8 s; other processes 1.2 s; of 20.4 s (2 cores × 10.2 s)". */
function cpuLine(before: Record<string, number>, after: Record<string, number>, client: NodeJS.CpuUsage, busy0: number, wallMs: number): string {
  const parts: string[] = [];
  let ours = 0;
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (Number.isFinite(d)) ours += d;
    parts.push(`${k} ${Number.isFinite(d) ? `${d.toFixed(1)} s` : "n/a"}`);
  }
  const clientS = (client.user + client.system) / 1e6;
  ours += clientS;
  parts.push(`benchmark client ${clientS.toFixed(1)} s`);
  const busy = machineBusySeconds() - busy0;
  const others = busy - ours;
  const cores = availableParallelism();
  const avail = (wallMs / 1000) * cores;
  return `${parts.join(", ")}; other processes on the machine ${Number.isFinite(others) ? `${Math.max(0, others).toFixed(1)} s` : "n/a"}; of ${avail.toFixed(1)} s available (${cores} cores × ${fmtMs(wallMs / 1000)} s)`;
}

/** How runs are compared: which headline, which way is better, and the target the ratio is checked against. */
export interface RatioSpec {
  /** e.g. "completion rate" or "submit → result p50". */
  what: string;
  better: "higher" | "lower";
  /** Target the ratio edgeplane ÷ BullMQ (as configured) is checked against. */
  target?: TargetId;
}

/** Folds the runs into one result: each run's rows, then one ratio row per round and BullMQ variant. */
export function combineRuns(runs: readonly ComparedRun[], ratio: RatioSpec, extraNotes: string[] = []): ScenarioResult {
  const rows: ResultRow[] = runs.flatMap((r) => r.rows);
  const checks: TargetCheck[] = runs.flatMap((r) => r.checks);
  const failures = runs.flatMap((r) => r.failures);
  const notes = [...extraNotes, ...runs.flatMap((r) => r.notes)];
  const rounds = [...new Set(runs.map((r) => r.round))];
  for (const round of rounds) {
    const ep = runs.find((r) => r.round === round && r.system === "edgeplane");
    for (const other of runs.filter((r) => r.round === round && r.system !== "edgeplane")) {
      const value = ep ? ep.headline / other.headline : Number.NaN;
      const edgeplaneBetter = ratio.better === "higher" ? value > 1 : value < 1;
      const reading = value === 1 ? "equal" : `${edgeplaneBetter ? "edgeplane" : SYSTEM_SHORT[other.system]} better`;
      rows.push({
        metric: `r${round}: edgeplane ÷ ${SYSTEM_SHORT[other.system]}, ${ratio.what} (${ratio.better} is better)`,
        value: Number.isFinite(value) ? `${value.toFixed(2)}× (${reading})` : "n/a",
      });
      // edgeplane ÷ its own plaintext run is what TLS + auth cost, not a comparison with BullMQ.
      if (ratio.target && other.system !== "edgeplane-insecure")
        checks.push({ target: ratio.target, measure: `edgeplane ÷ ${other.title}, ${ratio.what}, r${round}`, value });
    }
  }
  return { rows, checks, failures, notes };
}
