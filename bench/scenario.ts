// What a benchmark scenario is: a named run against a started fleet that returns rows for the results table,
// measurements checked against the design targets, and every failure it saw. Types only.
import type { EdgeplaneClients } from "../cli/client.js";

/** The design targets results are compared with (report.ts holds their numbers). */
export type TargetId = "submission" | "edge-analytics" | "local-processing" | "distributed-coordination";

/** An agent of the benchmark fleet. */
export interface BenchAgent {
  nodeId: string;
  clusterId: string;
  /** Devices it serves: LOCAL tasks for them run on it first. */
  deviceIds: string[];
}

export interface ScenarioContext {
  clients: EdgeplaneClients;
  agents: readonly BenchAgent[];
  /** Tasks each agent runs at once (its worker threads). */
  slotsPerAgent: number;
  /** Smoke run: scenarios use their small sizes. */
  quick: boolean;
  /** Aborted on SIGINT: every loop stops at its next step. */
  signal: AbortSignal;
  /** A progress line on stderr. */
  progress(line: string): void;
}

/** One line of the results table. */
export interface ResultRow {
  metric: string;
  value: string;
}

/** A measured figure compared with a design target. */
export interface TargetCheck {
  target: TargetId;
  /** What was measured, e.g. "SubmitTask round trip, p99". */
  measure: string;
  ms: number;
}

export interface ScenarioResult {
  rows: ResultRow[];
  checks: TargetCheck[];
  /** Anything that went wrong (task not succeeded, RPC error, stall, time budget). Any failure fails the run. */
  failures: string[];
  /** Facts needed to read the rows, e.g. sample sizes. */
  notes: string[];
}

export interface Scenario {
  /** Short stable id, e.g. `submit-latency`. */
  id: string;
  /** Title in the results table. */
  title: string;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}
