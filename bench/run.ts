// `npm run bench`: starts one coordinator and N agents as real child processes on loopback, runs the scenario list in
// order, prints the results as Markdown and appends them to bench/RESULTS.md. Exits 1 when anything failed.
// Owns the process lifecycle: the children are killed on every way out (success, error, SIGINT).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { ProcessingMode } from "../gen/edgeplane/v1/types_pb.js";
import { BenchFleet, logProblems } from "./fleet.js";
import { fmtInt } from "./measure.js";
import { parseBenchOptions, USAGE, type BenchOptions } from "./options.js";
import { appendResults, describeMachine, renderMarkdown, type RunReport } from "./report.js";
import type { Scenario, ScenarioContext, ScenarioResult } from "./scenario.js";
import { batchThroughputScenario } from "./scenarios/batch-throughput.js";
import { distributedSeriesScenario } from "./scenarios/distributed-series.js";
import { largeSeriesScenario } from "./scenarios/large-series.js";
import { submitLatencyScenario } from "./scenarios/submit-latency.js";

/**
 * The scenarios, run in this order against one fleet. Adding a mode is one more entry, e.g.
 * `largeSeriesScenario({ mode: ProcessingMode.DISTRIBUTED, target: "distributed-coordination", … })`.
 */
const SCENARIOS: readonly Scenario[] = [
  submitLatencyScenario({ n: { full: 300, quick: 30 }, warmup: { full: 50, quick: 10 }, values: 100, budgetMs: 120_000, callTimeoutMs: 10_000 }),
  batchThroughputScenario({
    tasks: { full: 20_000, quick: 2_000 }, batchSize: 500, inFlight: 4, values: 100, pollMs: 100,
    budgetMs: { full: 600_000, quick: 120_000 }, stallMs: 30_000, callTimeoutMs: 60_000,
  }),
  largeSeriesScenario({
    mode: ProcessingMode.LOCAL, values: 1_000_000, runs: { full: 5, quick: 1 }, warmup: { full: 1, quick: 1 },
    target: "local-processing", callTimeoutMs: 60_000,
  }),
  distributedSeriesScenario({ values: 1_000_000, shards: [2, 4], runs: { full: 5, quick: 1 }, warmup: { full: 1, quick: 1 }, callTimeoutMs: 60_000 }),
];

/** The repository root: the nearest directory above this file holding package.json (works from dist/bench/). */
function repoRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
    dir = up;
  }
  return dir;
}

/** The commit the build came from, read-only (`git rev-parse`); uncommitted changes are not detected. */
function codeVersion(): string {
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot(), encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    return `commit ${sha} (plus whatever was uncommitted in the working tree when dist/ was built)`;
  } catch {
    return "unknown (not a git checkout)";
  }
}

/** The command as the user typed it, for the report. */
function commandLine(argv: readonly string[]): string {
  const args = argv.length > 0 ? ` ${argv.join(" ")}` : "";
  return process.env.npm_lifecycle_event === "bench" ? `npm run bench${args ? ` --${args}` : ""}` : `node dist/bench/run.js${args}`;
}

/** Where the CPU went during a scenario: the coordinator, the agents together, and this client. */
function cpuNote(before: Map<string, number>, after: Map<string, number>, client: NodeJS.CpuUsage, wallMs: number): string {
  let agents = 0, coordinator = Number.NaN;
  for (const [name, s] of after) {
    const d = s - (before.get(name) ?? 0);
    if (name === "coordinator") coordinator = d;
    else agents += d;
  }
  const clientS = (client.user + client.system) / 1e6;
  const f = (s: number) => (Number.isFinite(s) ? `${s.toFixed(1)} s` : "n/a");
  return `CPU used: coordinator ${f(coordinator)}, agents ${f(agents)} together, benchmark client ${f(clientS)}, of ${f((wallMs / 1000) * availableParallelism())} available (${availableParallelism()} cores × ${f(wallMs / 1000)}).`;
}

const progress = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let opts: BenchOptions;
  try {
    const parsed = parseBenchOptions(argv);
    if (parsed === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const interrupt = new AbortController();
  const fleet = new BenchFleet({ agents: opts.agents, workers: opts.workers, logLevel: opts.logLevel, clusterId: "bench" });
  // A synchronous last resort: whatever way the process ends, no child outlives it.
  process.on("exit", () => fleet.killNow());
  process.on("SIGINT", () => {
    if (interrupt.signal.aborted) {
      fleet.killNow();
      process.exit(130);
    }
    progress("interrupted: stopping the fleet (Ctrl-C again to kill it at once)");
    interrupt.abort(new Error("interrupted"));
  });
  process.on("SIGTERM", () => interrupt.abort(new Error("terminated")));

  const report: RunReport = {
    startedAt: new Date(),
    command: commandLine(argv),
    quick: opts.quick,
    machine: describeMachine(),
    config: [
      `Code: ${codeVersion()}.`,
      `${opts.agents} agents × ${opts.workers} worker thread${opts.workers === 1 ? "" : "s"} (\`--workers ${opts.workers}\`) = ${opts.agents * opts.workers} task slots, one cluster \`bench\`, agent i serving device \`sensor-i\`; coordinator with default options; log level ${opts.logLevel}.`,
      `Coordinator, ${opts.agents} agent processes, ${opts.agents * opts.workers} worker threads and the client all share this machine's ${availableParallelism()} cores over 127.0.0.1; one worker per agent because ${opts.agents} slots already exceed the cores.`,
    ],
    scenarios: [],
    failures: [],
    notes: [],
    logDir: fleet.dir,
  };

  try {
    progress(`starting coordinator and ${opts.agents} agents (logs in ${fleet.dir})`);
    await fleet.start(interrupt.signal);
    progress(`fleet ready: coordinator on ${fleet.address}`);
    report.config.push(`Coordinator: ${fleet.storeDescription()}.`);
    const ctx: ScenarioContext = {
      clients: fleet.clients, agents: fleet.agents, slotsPerAgent: opts.workers, quick: opts.quick, signal: interrupt.signal, progress,
    };

    for (const s of SCENARIOS) {
      if (interrupt.signal.aborted) break;
      progress(`scenario ${s.id}: ${s.title}`);
      const t0 = performance.now();
      const cpu0 = fleet.cpuSeconds(), client0 = process.cpuUsage();
      let result: ScenarioResult;
      try {
        result = await s.run(ctx);
      } catch (err) {
        result = { rows: [], checks: [], notes: [], failures: [`${s.id}: aborted: ${(err as Error).message}`] };
      }
      result.notes.push(cpuNote(cpu0, fleet.cpuSeconds(), process.cpuUsage(client0), performance.now() - t0));
      report.scenarios.push({ id: s.id, title: s.title, result, durationMs: performance.now() - t0 });
      progress(`scenario ${s.id} done in ${fmtInt((performance.now() - t0) / 1000)} s, ${result.failures.length} problem(s)`);
      const dead = fleet.deadChildren();
      if (dead.length > 0) {
        report.failures.push(...dead);
        break;
      }
    }
    // Read the logs before stopping: shutdown itself logs warnings (agents leaving) that are not findings.
    for (const c of fleet.children) {
      const p = logProblems(c);
      if (p.errors > 0) report.failures.push(`${c.name} logged ${p.errors} error(s) and ${p.warnings} warning(s) (${c.logFile}); first:\n${p.samples.join("\n")}`);
      else if (p.warnings > 0) report.notes.push(`${c.name} logged ${p.warnings} warning(s) during the run; first: \`${p.samples[0]}\``);
    }
  } catch (err) {
    report.failures.push(`fleet: ${(err as Error).message}`);
  } finally {
    progress("stopping the fleet");
    await fleet.stop();
  }

  if (interrupt.signal.aborted) {
    progress(`interrupted; nothing written. Logs: ${fleet.dir}`);
    return 130;
  }
  const markdown = renderMarkdown(report);
  process.stdout.write(`\n${markdown}\n`);
  const failed = report.failures.length + report.scenarios.reduce((n, s) => n + s.result.failures.length, 0);
  if (opts.write && report.scenarios.length > 0) {
    const path = resolve(repoRoot(), "bench/RESULTS.md");
    appendResults(path, markdown);
    progress(`appended to ${path}`);
  }
  if (failed > 0) progress(`${failed} problem(s): see "Problems" above; child logs in ${fleet.dir}`);
  return failed > 0 ? 1 : 0;
}

process.exit(await main());
