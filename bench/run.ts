// `npm run bench`: runs the scenario list in order — each scenario starting fresh coordinators and agents (real child
// processes on loopback) and, when comparing, BullMQ workers — prints the results as Markdown and appends them to
// bench/RESULTS.md. Exits 1 when anything failed. Owns the process lifecycle: every child is killed on every way out.
import { execFileSync } from "node:child_process";
import { setMaxListeners } from "node:events";
import { existsSync, mkdtempSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { ProcessingMode } from "../gen/edgeplane/v1/types_pb.js";
import { FleetPool } from "./fleet-pool.js";
import { fmtInt } from "./measure.js";
import { parseBenchOptions, selectScenarios, USAGE, type BenchOptions } from "./options.js";
import { machineBusySeconds } from "./proc.js";
import { appendResults, describeMachine, renderMarkdown, type RunReport } from "./report.js";
import type { Scenario, ScenarioContext, ScenarioResult } from "./scenario.js";
import { criticalBacklogScenario } from "./scenarios/critical-backlog.js";
import { distributedSeriesScenario } from "./scenarios/distributed-series.js";
import { idleAgentRssScenario } from "./scenarios/idle-agent-rss.js";
import { largeSeriesScenario } from "./scenarios/large-series.js";
import { lightLoadScenario } from "./scenarios/light-load.js";
import { openLoopScenario } from "./scenarios/open-loop.js";
import { throughputScenario } from "./scenarios/throughput.js";
import { bullmqVersion, killBullmqWorkersNow, type BullmqSetup } from "./systems/bullmq.js";
import { describeRedis, FsyncRedis } from "./systems/redis.js";
import { errorText } from "./tasks.js";

/** The scenarios, run in this order. Sizes are { full, quick }; every one starts its own processes. */
function scenarioList(o: BenchOptions): Scenario[] {
  const agents = o.agents,
    slots = o.workers;
  const throughput = (s: number, target: "throughput-4x1" | "throughput-4x8") =>
    throughputScenario({
      agents,
      slots: s,
      tasks: { full: 20_000, quick: 2_000 },
      submitters: 50,
      batchSize: 100,
      budgetMs: { full: 180_000, quick: 120_000 },
      stallMs: 30_000,
      callTimeoutMs: 60_000,
      // issue 8's figures are for four agents
      target: agents === 4 ? target : undefined,
    });
  return [
    lightLoadScenario({ agents, slots, n: { full: 500, quick: 50 }, warmup: { full: 100, quick: 20 }, budgetMs: 120_000, callTimeoutMs: 10_000 }),
    throughput(1, "throughput-4x1"),
    throughput(8, "throughput-4x8"),
    openLoopScenario({
      agents,
      slots,
      ratePerS: 2_000,
      durationS: { full: 20, quick: 5 },
      lanes: 16,
      drainTimeoutMs: { full: 30_000, quick: 15_000 },
      maxBehindS: 5,
      stallMs: 15_000,
      callTimeoutMs: 60_000,
    }),
    criticalBacklogScenario({
      agents,
      slots,
      low: { full: 20_000, quick: 3_000 },
      critical: { full: 50, quick: 10 },
      spacingMs: 20,
      submitters: 50,
      batchSize: 100,
      waitMs: 30_000,
      callTimeoutMs: 60_000,
    }),
    idleAgentRssScenario({ agents: { full: 500, quick: 100 }, settleMs: 3_000, samples: 7, sampleEveryMs: 300, connectBatch: 50, registerTimeoutMs: 30_000 }),
    largeSeriesScenario({
      mode: ProcessingMode.LOCAL,
      values: 1_000_000,
      runs: { full: 5, quick: 1 },
      warmup: { full: 1, quick: 1 },
      target: "local-processing",
      callTimeoutMs: 60_000,
    }),
    distributedSeriesScenario({ values: 1_000_000, shards: [2, 4], runs: { full: 5, quick: 1 }, warmup: { full: 1, quick: 1 }, callTimeoutMs: 60_000 }),
  ];
}

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

/** The commit the build came from and whether the working tree had changes (read-only git calls). */
function codeVersion(): string {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: repoRoot(), encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    const sha = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
    return `commit ${sha}${dirty ? " with uncommitted changes in the working tree" : ""} (dist/ as last built)`;
  } catch {
    return "unknown (not a git checkout)";
  }
}

/** The command as the user typed it, for the report. */
function commandLine(argv: readonly string[]): string {
  const args = argv.length > 0 ? ` ${argv.join(" ")}` : "";
  return process.env.npm_lifecycle_event === "bench" ? `npm run bench${args ? ` --${args}` : ""}` : `node dist/bench/run.js${args}`;
}

const progress = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let opts: BenchOptions;
  let selected: Scenario[];
  try {
    const parsed = parseBenchOptions(argv);
    if (parsed === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    opts = parsed;
    const all = scenarioList(opts);
    if (opts.list) {
      for (const s of all)
        process.stdout.write(`${s.id.padEnd(22)} ${s.group ? `(group ${s.group}) ` : ""}${s.title}${s.comparesBullmq ? " — with BullMQ" : ""}\n`);
      return 0;
    }
    selected = selectScenarios(all, opts.only);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const runDir = mkdtempSync(join(tmpdir(), "edgeplane-bench-"));
  const interrupt = new AbortController();
  // Every call of every scenario listens on it (directly or through AbortSignal.any): many at once is expected.
  setMaxListeners(0, interrupt.signal);
  const pool = new FleetPool({ runDir, logLevel: opts.logLevel, security: opts.security, profile: opts.profile, repoRoot: repoRoot() });
  let fsyncRedis: FsyncRedis | undefined;
  // A synchronous last resort: whatever way the process ends, no child outlives it.
  process.on("exit", () => {
    pool.killNow();
    killBullmqWorkersNow();
    fsyncRedis?.killNow();
  });
  process.on("SIGINT", () => {
    if (interrupt.signal.aborted) process.exit(130);
    progress("interrupted: stopping (Ctrl-C again to kill everything at once)");
    interrupt.abort(new Error("interrupted"));
  });
  process.on("SIGTERM", () => interrupt.abort(new Error("terminated")));

  const report: RunReport = {
    startedAt: new Date(),
    command: commandLine(argv),
    quick: opts.quick,
    profiled: opts.profile,
    machine: describeMachine(runDir),
    config: [
      `Code: ${codeVersion()}.`,
      `Every scenario, and every run of a comparing scenario, starts fresh processes: a coordinator with default options (durable SQLite store in the fleet's directory) and ${opts.agents} agents from dist/cli/main.js on 127.0.0.1, ${opts.security === "insecure" ? "plaintext (--insecure)" : `TLS + bearer token for clients, enrolled agents on mTLS (the product's default)${opts.securityCost ? "; comparing scenarios also run edgeplane with --insecure (plaintext) each round, to show what TLS + auth cost" : ""}`}; log level ${opts.logLevel}. Agents × slots per scenario are in its title; \`--workers ${opts.workers}\` where a scenario does not fix it.`,
      `Everything shares this machine's ${availableParallelism()} cores: coordinator, agents and their worker threads, BullMQ workers, Redis and the benchmark client.`,
    ],
    scenarios: [],
    failures: [],
    notes: [],
    runDir,
  };

  try {
    let bullmq: BullmqSetup | undefined;
    if (opts.compareBullmq && selected.some((s) => s.comparesBullmq)) {
      // Loud: a comparison that was asked for and cannot run is a failed run, not a skipped part.
      const shared = await describeRedis(opts.redis.host, opts.redis.port, "the shared Redis (--redis)");
      if (opts.redisFsync) {
        fsyncRedis = new FsyncRedis(join(runDir, "redis-fsync"));
        await fsyncRedis.start();
      }
      bullmq = { version: bullmqVersion(), shared, fsync: fsyncRedis };
      report.config.push(
        `BullMQ ${bullmq.version} side by side, alternating with edgeplane for ${opts.rounds} round(s); on ${shared.description}${fsyncRedis?.target ? `, and on the benchmark's own ${fsyncRedis.target.description}` : ""}.`,
      );
    } else {
      report.config.push(opts.compareBullmq ? "No selected scenario compares with BullMQ." : "BullMQ comparison off (--no-compare-bullmq).");
    }

    const ctx: ScenarioContext = {
      quick: opts.quick,
      signal: interrupt.signal,
      progress,
      defaultShape: { agents: opts.agents, workers: opts.workers },
      startFleet: (shape, label, security) => pool.start(shape, label, interrupt.signal, progress, security),
      securityCost: opts.securityCost,
      stopFleet: (fleet) => pool.stop(fleet),
      bullmq,
      rounds: opts.rounds,
      runDir,
    };

    for (const s of selected) {
      if (interrupt.signal.aborted) break;
      progress(`scenario ${s.id}: ${s.title}`);
      pool.beginScenario(s.id);
      const t0 = performance.now(),
        busy0 = machineBusySeconds(),
        fleetCpu0 = pool.cpuSeconds(),
        client0 = process.cpuUsage();
      let result: ScenarioResult;
      try {
        result = await s.run(ctx);
      } catch (err) {
        result = { rows: [], checks: [], notes: [], failures: [`${s.id}: aborted: ${errorText(err)}`] };
      }
      await pool.stopAll();
      const found = pool.takeFindings();
      result.failures.push(...found.failures.map((f) => `${s.id}: ${f}`));
      result.notes.push(...found.notes);
      if (found.profiles.length > 0) result.profiles = [...(result.profiles ?? []), ...found.profiles];
      if (!s.comparesBullmq) {
        const fleetCpu = pool.cpuSeconds(),
          client = process.cpuUsage(client0);
        const wall = (performance.now() - t0) / 1000;
        const ours = fleetCpu.coordinator - fleetCpu0.coordinator + fleetCpu.agents - fleetCpu0.agents + (client.user + client.system) / 1e6;
        const others = machineBusySeconds() - busy0 - ours;
        result.notes.push(
          `CPU used: coordinator ${(fleetCpu.coordinator - fleetCpu0.coordinator).toFixed(1)} s, agents ${(fleetCpu.agents - fleetCpu0.agents).toFixed(1)} s, benchmark client ${((client.user + client.system) / 1e6).toFixed(1)} s; other processes on the machine ${Number.isFinite(others) ? `${Math.max(0, others).toFixed(1)} s` : "n/a"}; of ${(wall * availableParallelism()).toFixed(1)} s available.`,
        );
      }
      report.scenarios.push({ id: s.id, title: s.title, result, durationMs: performance.now() - t0 });
      progress(`scenario ${s.id} done in ${fmtInt((performance.now() - t0) / 1000)} s, ${result.failures.length} problem(s)`);
    }
  } catch (err) {
    report.failures.push(errorText(err));
  } finally {
    progress("stopping");
    await pool.stopAll();
    await fsyncRedis?.stop();
  }
  report.loadAvgEnd = loadavg();

  if (interrupt.signal.aborted) {
    progress(`interrupted; nothing written. Logs: ${runDir}`);
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
  if (failed > 0) progress(`${failed} problem(s): see "Problems" above; logs in ${runDir}`);
  return failed > 0 ? 1 : 0;
}

process.exit(await main());
