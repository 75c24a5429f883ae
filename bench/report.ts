// Renders a benchmark run as a Markdown section and appends it to bench/RESULTS.md. Never measures anything.
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { renderProfile } from "./cpuprofile.js";
import { fmtInt } from "./measure.js";
import { fileSystemOf } from "./proc.js";
import type { ScenarioResult, TargetCheck } from "./scenario.js";
import { fmtLimit, fmtValue, TARGETS, verdict } from "./targets.js";

export interface Machine {
  cpuModel: string;
  cpus: number;
  memoryBytes: number;
  node: string;
  os: string;
  /** Load averages (1, 5, 15 min) when the run started: other work on the machine skews every number. */
  loadAvg: number[];
  /** The file system the run's directory (databases, journals, Redis AOF) is on: fsync costs depend on it. */
  fileSystem: string;
}

export function describeMachine(runDir: string): Machine {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() || "unknown",
    cpus: cpus.length,
    memoryBytes: os.totalmem(),
    node: process.version,
    os: `${os.type()} ${os.release()} (${os.platform()}/${os.arch()})`,
    loadAvg: os.loadavg(),
    fileSystem: fileSystemOf(runDir),
  };
}

export interface RunReport {
  startedAt: Date;
  command: string;
  quick: boolean;
  profiled: boolean;
  machine: Machine;
  /** Load averages when the run ended. */
  loadAvgEnd?: number[];
  /** Configuration lines, e.g. the commit and the BullMQ version. */
  config: string[];
  scenarios: { id: string; title: string; result: ScenarioResult; durationMs: number }[];
  /** Failures outside any scenario (start-up, Redis, the run's own errors). */
  failures: string[];
  /** Observations outside any scenario. */
  notes: string[];
  /** The run's directory: every fleet's logs and data, profiles, BullMQ worker logs. */
  runDir: string;
}

const cell = (s: string): string => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
const loads = (l: readonly number[]): string => l.map((x) => x.toFixed(2)).join(" / ");

export function renderMarkdown(r: RunReport): string {
  const failures = [...r.scenarios.flatMap((s) => s.result.failures), ...r.failures];
  const gib = (r.machine.memoryBytes / 2 ** 30).toFixed(1);
  const lines: string[] = [
    `## ${r.startedAt.toISOString()}${r.quick ? " (quick)" : ""}${r.profiled ? " (profiled: slower than unprofiled runs)" : ""}`,
    "",
    `- **Status:** ${failures.length === 0 ? "OK — every task succeeded" : `FAILED — ${failures.length} problem(s), listed below`}`,
    `- **Command:** \`${r.command}\``,
    `- **Machine:** ${r.machine.cpuModel}, ${r.machine.cpus} CPUs, ${gib} GiB RAM; Node ${r.machine.node}; ${r.machine.os}; run directory on ${r.machine.fileSystem}`,
    `- **Machine load** (1 / 5 / 15 min load average): ${loads(r.machine.loadAvg)} at start${r.loadAvgEnd ? `, ${loads(r.loadAvgEnd)} at the end` : ""}; each run's "CPU used" row also shows what other processes used meanwhile`,
    "- **Configuration:**",
    ...r.config.map((c) => `  - ${c}`),
    "- **How to read it:** docs/performance.md",
    "",
    "| Scenario | Metric | Result |",
    "|---|---|---|",
  ];
  for (const s of r.scenarios) {
    for (const row of s.result.rows) lines.push(`| ${cell(s.title)} | ${cell(row.metric)} | ${cell(row.value)} |`);
  }

  const checks: TargetCheck[] = r.scenarios.flatMap((s) => s.result.checks);
  lines.push("", "Against the targets (issue 8's done-when figures, and the original design targets with their aim):", "");
  if (checks.length > 0) lines.push("| Target | Source | Limit | Measurement | Value | Verdict |", "|---|---|---|---|---|---|");
  const unmeasured: string[] = [];
  for (const t of TARGETS) {
    const mine = checks.filter((c) => c.target === t.id);
    if (mine.length === 0) unmeasured.push(t.label);
    for (const c of mine) {
      const aim = t.aim === undefined ? "" : `; aim ${fmtLimit(t, t.aim)}: ${verdict(t, c.value, t.aim)}`;
      lines.push(`| ${cell(t.label)} | ${t.source} | ${fmtLimit(t)} | ${cell(c.measure)} | ${fmtValue(c.value, t.unit)} | ${verdict(t, c.value)}${aim} |`);
    }
  }
  if (unmeasured.length > 0) lines.push("", `Not measured in this run: ${unmeasured.join("; ")}.`);

  const profiles = r.scenarios.flatMap((s) => s.result.profiles ?? []);
  if (profiles.length > 0) {
    lines.push("", "Where the time goes (CPU profiles of the main threads, top functions by self time; `--profile`):", "");
    for (const p of profiles) lines.push(...renderProfile(p));
  }

  const notes = [
    ...r.scenarios.flatMap((s) => s.result.notes.map((n) => `- ${cell(s.title)}: ${n}`)),
    ...r.scenarios.map((s) => `- ${cell(s.title)}: took ${fmtInt(s.durationMs / 1000)} s.`),
    ...r.notes.map((n) => `- ${n}`),
  ];
  if (notes.length > 0) lines.push("", "Notes:", "", ...notes);
  if (failures.length > 0) lines.push("", "Problems:", "", ...failures.map((f) => `- ${f.split("\n").join("\n  ")}`));
  lines.push("", `Logs, data and profiles: \`${r.runDir}\` (not kept across machines).`, "");
  return lines.join("\n");
}

const HEADER = `# Benchmark results

Each section below is one run of \`npm run bench\` (\`bench/run.ts\`, see \`bench/README.md\`), appended by the run
itself; the newest is last. \`--no-write\` runs (smoke runs, verification) write nothing here. How to read a section
— what each scenario measures, how, and what the machine load means — is in \`docs/performance.md\`.
`;

/** Appends the section, creating the file with its header first if needed. */
export function appendResults(path: string, section: string): void {
  if (!existsSync(path)) writeFileSync(path, HEADER);
  appendFileSync(path, `\n${section}`);
}
