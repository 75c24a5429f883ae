// Renders a benchmark run as a Markdown section and appends it to bench/RESULTS.md. Never measures anything.
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { fmtInt, fmtMs } from "./measure.js";
import type { ScenarioResult, TargetCheck, TargetId } from "./scenario.js";

/** The original design targets, in ms; our aim is an order of magnitude lower. */
export const TARGETS: readonly { id: TargetId; label: string; designMs: number }[] = [
  { id: "local-processing", label: "Local processing", designMs: 50 },
  { id: "edge-analytics", label: "Edge analytics", designMs: 100 },
  { id: "distributed-coordination", label: "Distributed coordination", designMs: 200 },
  { id: "submission", label: "Submission overhead", designMs: 10 },
];

/** How far below the design target we aim: 10 = an order of magnitude. */
export const AIM_FACTOR = 10;

export interface Machine {
  cpuModel: string;
  cpus: number;
  memoryBytes: number;
  node: string;
  os: string;
  /** One-minute load average when the run started: other work on the machine skews every number. */
  loadAvg1m: number;
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() || "unknown",
    cpus: cpus.length,
    memoryBytes: os.totalmem(),
    node: process.version,
    os: `${os.type()} ${os.release()} (${os.platform()}/${os.arch()})`,
    loadAvg1m: os.loadavg()[0],
  };
}

export interface RunReport {
  startedAt: Date;
  command: string;
  quick: boolean;
  machine: Machine;
  /** Configuration lines, e.g. "4 agents × 1 worker thread". */
  config: string[];
  scenarios: { id: string; title: string; result: ScenarioResult; durationMs: number }[];
  /** Failures outside any scenario (start-up, crashed children, errors in child logs). */
  failures: string[];
  /** Observations outside any scenario, e.g. warnings the children logged. */
  notes: string[];
  /** Where the child processes' logs are. */
  logDir: string;
}

const cell = (s: string): string => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** Whether a measured time meets a limit, as a word. */
const verdict = (ms: number, limitMs: number): string => (!Number.isFinite(ms) ? "not measured" : ms < limitMs ? "met" : `missed (${fmtMs(ms / limitMs)}×)`);

export function renderMarkdown(r: RunReport): string {
  const failures = [...r.scenarios.flatMap((s) => s.result.failures), ...r.failures];
  const gib = (r.machine.memoryBytes / 2 ** 30).toFixed(1);
  const lines: string[] = [
    `## ${r.startedAt.toISOString()}${r.quick ? " (quick)" : ""}`,
    "",
    `- **Status:** ${failures.length === 0 ? "OK — every task succeeded" : `FAILED — ${failures.length} problem(s), listed below`}`,
    `- **Command:** \`${r.command}\``,
    `- **Machine:** ${r.machine.cpuModel}, ${r.machine.cpus} CPUs, ${gib} GiB RAM; Node ${r.machine.node}; ${r.machine.os}; load average ${r.machine.loadAvg1m.toFixed(2)} (1 min) at start`,
    "- **Configuration:**",
    ...r.config.map((c) => `  - ${c}`),
    "",
    "| Scenario | Metric | Result |",
    "|---|---|---|",
  ];
  for (const s of r.scenarios) {
    for (const row of s.result.rows) lines.push(`| ${cell(s.title)} | ${cell(row.metric)} | ${cell(row.value)} |`);
  }
  lines.push("", "Against the design targets (aim: an order of magnitude lower):", "");
  lines.push("| Target | Design | Aim | Measurement | Value | vs design | vs aim |", "|---|---|---|---|---|---|---|");
  const checks: TargetCheck[] = r.scenarios.flatMap((s) => s.result.checks);
  for (const t of TARGETS) {
    const mine = checks.filter((c) => c.target === t.id);
    const aimMs = t.designMs / AIM_FACTOR;
    const head = `| ${t.label} | < ${fmtMs(t.designMs)} ms | < ${fmtMs(aimMs)} ms |`;
    if (mine.length === 0) lines.push(`${head} not measured by this benchmark yet | | | |`);
    for (const c of mine) lines.push(`${head} ${cell(c.measure)} | ${fmtMs(c.ms)} ms | ${verdict(c.ms, t.designMs)} | ${verdict(c.ms, aimMs)} |`);
  }
  const notes = [
    ...r.scenarios.flatMap((s) => s.result.notes.map((n) => `- ${cell(s.title)}: ${n} (scenario took ${fmtInt(s.durationMs / 1000)} s)`)),
    ...r.notes.map((n) => `- ${n}`),
  ];
  if (notes.length > 0) lines.push("", "Notes:", "", ...notes);
  if (failures.length > 0) lines.push("", "Problems:", "", ...failures.map((f) => `- ${f.split("\n").join("\n  ")}`));
  lines.push("", `Child process logs: \`${r.logDir}\` (not kept across machines).`, "");
  return lines.join("\n");
}

const HEADER = `# Benchmark results

Each section below is one run of \`npm run bench\` (\`bench/run.ts\`, see \`bench/README.md\`), appended by the run
itself; the newest is last. \`node dist/bench/run.js --quick --no-write\` is the smoke run and writes nothing here.

How to read a section:

- **Status** says whether every task of every scenario succeeded. A run with problems still lands here, with
  its problems listed, so regressions stay visible; do not quote its numbers as performance.
- **Machine** and **Configuration**: every process — the coordinator, each agent with its worker threads, and the
  benchmark client — runs on this one machine and shares its cores, over loopback gRPC (127.0.0.1). On a small
  machine (2 cores) the times include contention between them that a real fleet, with one agent per node, would
  not have; network latency, which a real fleet would have, is absent. The load average at start shows other
  work on the machine: above the core count, every number is inflated by it. Compare runs only on the same
  machine, code and configuration (commit, task store).
- **Latencies** are client-side wall times (\`performance.now()\`) in milliseconds. Percentiles are nearest-rank
  over the measured samples only (warm-up excluded): p99 of 300 samples is the 297th smallest. Small samples
  (under 20) show median, min and max instead.
- **Processing time** is what the agent measured around the handler in its worker thread; **coordination
  overhead** is the client's wall time minus that: submission, queueing, placement, dispatch, result report and
  the WatchTask update reaching the client. **Where the time went** splits one task's path by the timestamps the
  coordinator (created, dispatched, result recorded) and the agent's worker (handler start and end) put on it:
  whole milliseconds, medians.
- **Throughput**: the submit rate counts from the first SubmitTasks call to the last response; the completion
  rate from the first submit to the first GetStatus poll (every 100 ms) that shows every task terminal. **Node
  turnaround** is how long a node's only slot stays empty between a handler's end and the next dispatch to it
  while tasks are waiting (sampled from the newest 1,000 tasks): one slot's cycle is turnaround + dispatched →
  handler end, so it caps what one-slot agents can complete.
- **CPU used** (notes) is user + system time of the coordinator and of the agents (from /proc, worker threads
  included) and of the benchmark client during each scenario, next to what the cores could have given.
- **Targets**: the original design targets were under 50 ms local processing, under 100 ms edge analytics,
  under 200 ms distributed coordination and under 10 ms submission overhead; our aim is an order of magnitude
  lower (5 / 10 / 20 / 1 ms). "missed (2.5×)" means the measurement is 2.5 times the limit.
`;

/** Appends the section, creating the file with its header first if needed. */
export function appendResults(path: string, section: string): void {
  if (!existsSync(path)) writeFileSync(path, HEADER);
  appendFileSync(path, `\n${section}`);
}
